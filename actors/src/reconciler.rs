//! Reconciler: the periodic housekeeping that no single region owns. For
//! now it ends leases: an active instance whose `expires_at` has passed is
//! deleted like a client's delete. (Start-up replay is done by each region
//! and the dispatcher rebuilding from the store.)

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::{info, warn};

use crate::messages::{DispatcherMsg, FleetCtx, Step};
use crate::model::InstanceState;
use crate::store::InstanceFilter;

/// The actor.
pub(crate) struct Reconciler;

/// Its messages.
#[derive(Debug)]
pub(crate) enum ReconcilerMsg {
    /// Look for expired leases.
    Leases,
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
        Ok(ctx)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
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
            ReconcilerMsg::Ping(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}
