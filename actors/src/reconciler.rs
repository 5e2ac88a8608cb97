//! Reconciler: the periodic housekeeping that no single region owns. It
//! ends leases (an active instance whose `expires_at` has passed is deleted
//! like a client's delete) and purges what finished longer ago than the
//! retention period, so the store does not grow for ever. (Start-up replay
//! is done by each region and the dispatcher rebuilding from the store.)

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::{info, warn};

use crate::messages::{DispatcherMsg, FleetCtx, Step};
use crate::model::InstanceState;
use crate::store::InstanceFilter;

/// Instances purged per pass: a pass holds the reconciler briefly.
const PURGE_BATCH: usize = 1_000;

/// The actor.
pub(crate) struct Reconciler;

/// Its messages.
#[derive(Debug)]
pub(crate) enum ReconcilerMsg {
    /// Look for expired leases.
    Leases,
    /// Purge finished instances past their retention.
    Purge,
    /// Liveness probe.
    Ping(RpcReplyPort<()>),
}

impl Actor for Reconciler {
    type Msg = ReconcilerMsg;
    type State = FleetCtx;
    type Arguments = FleetCtx;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        ctx: FleetCtx,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(ctx.config.lease_interval, || ReconcilerMsg::Leases);
        myself.send_interval(ctx.config.purge_interval, || ReconcilerMsg::Purge);
        Ok(ctx)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        ctx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ReconcilerMsg::Leases => {
                let now = Utc::now();
                let active = match ctx.store.list_instances(&InstanceFilter {
                    states: vec![InstanceState::Active],
                    ..InstanceFilter::default()
                }) {
                    Ok(active) => active,
                    Err(error) => {
                        // The next tick tries again; restarting the actor
                        // would not make the store readable.
                        warn!(%error, "store unreadable; lease pass skipped");
                        ctx.skipped(Step::Leases);
                        return Ok(());
                    }
                };
                for instance in active
                    .into_iter()
                    .filter(|i| i.expires_at.is_some_and(|e| e <= now))
                {
                    info!(instance = %instance.id, "lease expired; deleting");
                    if let Some(dispatcher) = ctx.dispatcher() {
                        let _ = dispatcher
                            .call(
                                |reply| DispatcherMsg::Delete {
                                    instance_id: instance.id.clone(),
                                    reply,
                                },
                                Some(ctx.config.probe_timeout),
                            )
                            .await;
                    }
                }
            }
            ReconcilerMsg::Purge => {
                let before = Utc::now()
                    - chrono::Duration::from_std(ctx.config.retention).unwrap_or_default();
                let store = ctx.store.clone();
                // A walk of every record: off the async workers.
                let purged =
                    tokio::task::spawn_blocking(move || store.purge_finished(before, PURGE_BATCH))
                        .await?;
                match purged {
                    Ok(0) => {}
                    Ok(n) => {
                        info!(purged = n, %before, "finished instances past their retention purged");
                        if n == PURGE_BATCH {
                            // More are due: the next batch soon, not in an hour.
                            myself.send_after(std::time::Duration::from_millis(100), || {
                                ReconcilerMsg::Purge
                            });
                        }
                    }
                    Err(error) => {
                        warn!(%error, "store error; purge skipped");
                        ctx.skipped(Step::Purge);
                    }
                }
            }
            ReconcilerMsg::Ping(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}
