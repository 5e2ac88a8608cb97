//! RootSupervisor: runs the Dispatcher, the Reconciler and one
//! AccountSupervisor per enabled account; restarts any of them that dies,
//! with backoff, and kills one that stops answering its liveness probe.
//! Nothing is above it: past the intensity limit it keeps restarting at
//! the longest backoff and logs the escalation.

use std::collections::HashMap;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::account::{AccountMsg, AccountSupervisor};
use crate::dispatcher::Dispatcher;
use crate::messages::{DispatcherMsg, FleetCtx};
use crate::reconciler::{Reconciler, ReconcilerMsg};
use crate::restart::{Decision, RestartHistory};

/// The actor.
pub(crate) struct RootSupervisor;

/// A child of the root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Child {
    Dispatcher,
    Reconciler,
    Account(String),
}

/// Messages of the root.
#[derive(Debug)]
pub(crate) enum RootMsg {
    /// Start (or restart) a child.
    Spawn(Child),
    /// An account was added or changed: restart its supervisor.
    AccountChanged(String),
    /// An account was removed: stop its supervisor.
    AccountRemoved(String),
    /// Probe every child.
    Probe,
    /// Whether every child is running.
    Ready(RpcReplyPort<bool>),
    /// This daemon leads its cluster now: start the children.
    Lead,
}

/// Its state.
pub(crate) struct RootState {
    ctx: FleetCtx,
    children: HashMap<Child, ActorCell>,
    histories: HashMap<Child, RestartHistory>,
    /// Children stopped on purpose, not to be restarted.
    retiring: Vec<ractor::ActorId>,
    /// Whether the children run (false for a cluster follower).
    leading: bool,
}

impl RootState {
    async fn spawn(&mut self, myself: &ActorRef<RootMsg>, child: Child) {
        if self.children.contains_key(&child) {
            return;
        }
        let names = &self.ctx.names;
        let supervisor = myself.get_cell();
        let name = match &child {
            Child::Dispatcher => names.dispatcher(),
            Child::Reconciler => names.reconciler(),
            Child::Account(id) => names.account(id),
        };
        if let Some(stale) = ractor::registry::where_is(name.clone()) {
            let _ = stale
                .kill_and_wait(Some(std::time::Duration::from_secs(5)))
                .await;
        }
        let spawned = match &child {
            Child::Dispatcher => {
                Actor::spawn_linked(Some(name), Dispatcher, self.ctx.clone(), supervisor)
                    .await
                    .map(|(a, _)| a.get_cell())
            }
            Child::Reconciler => {
                Actor::spawn_linked(Some(name), Reconciler, self.ctx.clone(), supervisor)
                    .await
                    .map(|(a, _)| a.get_cell())
            }
            Child::Account(id) => {
                let account = match self.ctx.store.get_account(id) {
                    Ok(Some(account)) if account.enabled => account,
                    Ok(_) => return,
                    Err(e) => {
                        error!(account = %id, error = %e, "cannot read account");
                        return;
                    }
                };
                Actor::spawn_linked(
                    Some(name),
                    AccountSupervisor,
                    (self.ctx.clone(), account),
                    supervisor,
                )
                .await
                .map(|(a, _)| a.get_cell())
            }
        };
        match spawned {
            Ok(cell) => {
                self.children.insert(child, cell);
            }
            Err(e) => {
                warn!(?child, error = %e, "child failed to start");
                self.restart_later(myself, child);
            }
        }
    }

    async fn lead(&mut self, myself: &ActorRef<RootMsg>) -> Result<(), ActorProcessingErr> {
        if self.leading {
            return Ok(());
        }
        self.leading = true;
        self.spawn(myself, Child::Dispatcher).await;
        self.spawn(myself, Child::Reconciler).await;
        for account in self.ctx.store.list_accounts()? {
            self.spawn(myself, Child::Account(account.id)).await;
        }
        Ok(())
    }

    fn restart_later(&mut self, myself: &ActorRef<RootMsg>, child: Child) {
        let policy = self.ctx.config.restart;
        let delay = match self
            .histories
            .entry(child.clone())
            .or_default()
            .on_death(&policy, Instant::now())
        {
            Decision::RestartAfter(delay) => delay,
            Decision::Escalate => {
                error!(
                    ?child,
                    "child keeps failing; restarting at the longest backoff"
                );
                policy.max
            }
        };
        myself.send_after(delay, move || RootMsg::Spawn(child));
    }

    fn stop(&mut self, child: &Child) {
        if let Some(cell) = self.children.remove(child) {
            self.retiring.push(cell.get_id());
            cell.stop(Some("retired".into()));
        }
    }
}

impl Actor for RootSupervisor {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = FleetCtx;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        ctx: FleetCtx,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(ctx.config.probe_interval, || RootMsg::Probe);
        let standby = ctx.config.standby;
        let mut state = RootState {
            ctx,
            children: HashMap::new(),
            histories: HashMap::new(),
            retiring: Vec::new(),
            leading: false,
        };
        if !standby {
            state.lead(&myself).await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RootMsg::Spawn(child) if state.leading => state.spawn(&myself, child).await,
            RootMsg::Spawn(_) => {}
            RootMsg::Lead => state.lead(&myself).await?,
            RootMsg::AccountChanged(_) | RootMsg::AccountRemoved(_) if !state.leading => {}
            RootMsg::AccountChanged(id) => {
                let child = Child::Account(id.clone());
                state.stop(&child);
                state.ctx.board.remove_account(&id);
                // Its regions must be gone before new ones take their names.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                state.spawn(&myself, child).await;
            }
            RootMsg::AccountRemoved(id) => {
                state.stop(&Child::Account(id.clone()));
                state.ctx.board.remove_account(&id);
            }
            RootMsg::Probe => {
                let timeout = state.ctx.config.probe_timeout;
                for (child, cell) in &state.children {
                    let cell = cell.clone();
                    let child = child.clone();
                    tokio::spawn(async move {
                        let answered = match &child {
                            Child::Dispatcher => ActorRef::<DispatcherMsg>::from(cell.clone())
                                .call(DispatcherMsg::Ping, Some(timeout))
                                .await
                                .is_ok_and(|r| r.is_success()),
                            Child::Reconciler => ActorRef::<ReconcilerMsg>::from(cell.clone())
                                .call(ReconcilerMsg::Ping, Some(timeout))
                                .await
                                .is_ok_and(|r| r.is_success()),
                            Child::Account(_) => ActorRef::<AccountMsg>::from(cell.clone())
                                .call(AccountMsg::Ping, Some(timeout))
                                .await
                                .is_ok_and(|r| r.is_success()),
                        };
                        if !answered {
                            warn!(?child, "child stopped answering; killing it");
                            cell.kill();
                        }
                    });
                }
            }
            RootMsg::Ready(reply) => {
                // A follower is ready when it answers: it runs no child.
                let ready = !state.leading
                    || (state.children.contains_key(&Child::Dispatcher)
                        && state.children.contains_key(&Child::Reconciler));
                let _ = reply.send(ready);
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
        if let Some(i) = state.retiring.iter().position(|id| *id == cell.get_id()) {
            state.retiring.swap_remove(i);
            return Ok(());
        }
        let Some(child) = state
            .children
            .iter()
            .find(|(_, c)| c.get_id() == cell.get_id())
            .map(|(child, _)| child.clone())
        else {
            return Ok(());
        };
        state.children.remove(&child);
        info!(?child, %why, "child died; restarting");
        state.restart_later(&myself, child);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for cell in state.children.values() {
            cell.stop(Some("shutting down".into()));
        }
        Ok(())
    }
}
