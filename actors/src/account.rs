//! AccountSupervisor: authenticates one account, reads its catalog, runs
//! one RegionActor per region with a compute endpoint, restarts a region
//! that dies (with backoff, escalating past the intensity limit) and kills
//! one that stops answering its liveness probe.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::messages::FleetCtx;
use crate::messages::RegionMsg;
use crate::model::Account;
use crate::one_project::clash_message;
use crate::openstack::{ProviderError, Session};
use crate::region::{RegionActor, RegionArgs};
use crate::restart::{Decision, RestartHistory};
use crate::root::RootMsg;
use crate::status::{AccountHealth, AccountStatus};

/// The actor.
pub(crate) struct AccountSupervisor;

/// Messages of an account supervisor.
#[derive(Debug)]
pub(crate) enum AccountMsg {
    /// Authenticate and read the catalog.
    Connect,
    /// The catalog's compute regions and the token's project, or why not.
    Connected(Result<(Vec<String>, Option<String>), ProviderError>),
    /// Start (again) the actor of a region.
    Spawn(String),
    /// Probe every region.
    Probe,
    /// Liveness probe from the root.
    Ping(RpcReplyPort<()>),
}

/// Its state.
pub(crate) struct AccountState {
    ctx: FleetCtx,
    account: Account,
    session: Arc<Session>,
    regions: HashMap<String, ActorCell>,
    histories: HashMap<String, RestartHistory>,
    connect_failures: u32,
    /// Why its regions take no launches: another account holds its project.
    conflict: Option<String>,
}

impl AccountState {
    fn publish(&self, health: AccountHealth, reason: Option<String>, project_id: Option<String>) {
        self.ctx.accounts.publish(AccountStatus {
            account_id: self.account.id.clone(),
            account: self.account.name.clone(),
            health,
            reason,
            since: Utc::now(),
            project_id,
            regions: self.regions.keys().cloned().collect(),
        });
    }

    /// Connects again after a growing wait.
    fn retry_connect(&mut self, myself: &ActorRef<AccountMsg>) -> Duration {
        self.connect_failures += 1;
        let delay = crate::restart::backoff(
            Duration::from_millis(500),
            self.connect_failures,
            Duration::from_secs(60),
        );
        myself.send_after(delay, || AccountMsg::Connect);
        delay
    }

    async fn spawn_region(
        &mut self,
        myself: &ActorRef<AccountMsg>,
        region: String,
    ) -> Result<(), ActorProcessingErr> {
        if self.regions.contains_key(&region) {
            return Ok(());
        }
        let args = RegionArgs {
            ctx: self.ctx.clone(),
            account: self.account.clone(),
            region: region.clone(),
            session: self.session.clone(),
            conflict: self.conflict.clone(),
        };
        let name = self.ctx.names.region(&self.account.id, &region);
        if let Some(stale) = ractor::registry::where_is(name.clone()) {
            // Left over from a supervisor that was killed.
            let _ = stale.kill_and_wait(Some(Duration::from_secs(5))).await;
        }
        match Actor::spawn_linked(Some(name), RegionActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                self.regions.insert(region, actor.get_cell());
            }
            Err(e) => {
                warn!(account = %self.account.name, %region, error = %e, "region actor failed to start; retrying");
                let delay = self.decide(&region);
                myself.send_after(delay?, move || AccountMsg::Spawn(region));
            }
        }
        Ok(())
    }

    /// The wait before restarting `region`, or escalation.
    fn decide(&mut self, region: &str) -> Result<Duration, ActorProcessingErr> {
        let policy = self.ctx.config.restart;
        match self
            .histories
            .entry(region.to_owned())
            .or_default()
            .on_death(&policy, Instant::now())
        {
            Decision::RestartAfter(delay) => Ok(delay),
            Decision::Escalate => Err(format!(
                "region {region} of account {} keeps failing; escalating",
                self.account.name
            )
            .into()),
        }
    }
}

impl Actor for AccountSupervisor {
    type Msg = AccountMsg;
    type State = AccountState;
    type Arguments = (FleetCtx, Account);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (ctx, account): (FleetCtx, Account),
    ) -> Result<Self::State, ActorProcessingErr> {
        let session = Session::new(ctx.client.clone(), account.auth_spec());
        myself.send_interval(ctx.config.probe_interval, || AccountMsg::Probe);
        let _ = myself.send_message(AccountMsg::Connect);
        let state = AccountState {
            ctx,
            account,
            session,
            regions: HashMap::new(),
            histories: HashMap::new(),
            connect_failures: 0,
            conflict: None,
        };
        state.publish(AccountHealth::Connecting, None, None);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AccountMsg::Connect => {
                let session = state.session.clone();
                let wanted = state.account.regions.clone();
                let me = myself.clone();
                tokio::spawn(async move {
                    let result = session.token().await.map(|token| {
                        let regions = token
                            .catalog
                            .regions("compute", session.spec().interface)
                            .into_iter()
                            .filter(|r| wanted.is_empty() || wanted.contains(r))
                            .collect();
                        (regions, token.project_id.clone())
                    });
                    let _ = me.send_message(AccountMsg::Connected(result));
                });
            }
            AccountMsg::Connected(Ok((regions, project_id))) => {
                if regions.is_empty() {
                    let reason = if state.account.regions.is_empty() {
                        "no compute region in the catalog".to_owned()
                    } else {
                        format!(
                            "none of the selected regions ({}) has compute in the catalog",
                            state.account.regions.join(", ")
                        )
                    };
                    let delay = state.retry_connect(&myself);
                    warn!(account = %state.account.name, %reason, retry_in = ?delay, "account has no compute region");
                    state.publish(AccountHealth::NoRegion, Some(reason), project_id);
                    return Ok(());
                }
                state.connect_failures = 0;
                if let Some(project) = &project_id {
                    let claimed = state.ctx.claims.claim(&state.account, project, &regions);
                    for displaced in claimed.displaced {
                        // A younger account on this project ran first: it
                        // connects again and finds the project held.
                        if let Some(root) = ractor::registry::where_is(state.ctx.names.root()) {
                            let root: ActorRef<RootMsg> = root.into();
                            let _ = root.send_message(RootMsg::AccountChanged(displaced));
                        }
                    }
                    state.conflict = claimed.held_by.as_deref().map(clash_message);
                }
                match &state.conflict {
                    Some(reason) => {
                        warn!(account = %state.account.name, %reason, "account refused: it takes no launches");
                    }
                    None => {
                        info!(account = %state.account.name, regions = ?regions, "account connected")
                    }
                }
                for region in regions {
                    state.spawn_region(&myself, region).await?;
                }
                let health = if state.conflict.is_some() {
                    AccountHealth::Conflict
                } else {
                    AccountHealth::Connected
                };
                state.publish(health, state.conflict.clone(), project_id);
            }
            AccountMsg::Connected(Err(e)) => {
                let delay = state.retry_connect(&myself);
                error!(account = %state.account.name, error = %e, retry_in = ?delay, "cannot authenticate or read the catalog");
                let health = if e.class == crate::openstack::Class::Unauthorized {
                    AccountHealth::AuthFailed
                } else {
                    AccountHealth::Failing
                };
                state.publish(health, Some(e.to_string()), None);
            }
            AccountMsg::Spawn(region) => state.spawn_region(&myself, region).await?,
            AccountMsg::Probe => {
                let timeout = state.ctx.config.probe_timeout;
                for (region, cell) in &state.regions {
                    let actor: ActorRef<RegionMsg> = cell.clone().into();
                    let cell = cell.clone();
                    let account = state.account.name.clone();
                    let region = region.clone();
                    tokio::spawn(async move {
                        let answered = actor.call(RegionMsg::Ping, Some(timeout)).await;
                        if !matches!(answered, Ok(ractor::rpc::CallResult::Success(()))) {
                            warn!(%account, %region, "region actor stopped answering; killing it");
                            cell.kill();
                        }
                    });
                }
            }
            AccountMsg::Ping(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, why)) = crate::restart::death(event) else {
            return Ok(());
        };
        let Some(region) = state
            .regions
            .iter()
            .find(|(_, c)| c.get_id() == cell.get_id())
            .map(|(r, _)| r.clone())
        else {
            return Ok(());
        };
        state.regions.remove(&region);
        let delay = state.decide(&region)?;
        warn!(account = %state.account.name, %region, %why, restart_in = ?delay, "region actor died; restarting");
        myself.send_after(delay, move || AccountMsg::Spawn(region));
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for cell in state.regions.values() {
            cell.stop(Some("account supervisor stopped".into()));
        }
        state.ctx.claims.release(&state.account.id);
        state.ctx.accounts.remove(&state.account.id);
        Ok(())
    }
}
