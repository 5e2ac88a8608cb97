//! Region and account health shared through the store: in a cluster only
//! the leader runs region actors, so it publishes its boards as one
//! document, and every follower copies that document onto its own boards
//! to answer `/v1/regions`, the pages and the metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::warn;

use crate::messages::FleetCtx;
use crate::status::SharedBoard;

/// The shared document's name.
pub const DOCUMENT: &str = "board";

/// How often the leader publishes (when something that matters changed)
/// and followers read.
pub const EVERY: Duration = Duration::from_secs(2);

/// How often the leader publishes when only moving averages and times
/// changed: every publication is an etcd revision kept until compaction.
pub const REFRESH: Duration = Duration::from_secs(30);

/// The board without what changes on every call (latency and error-rate
/// averages, snapshot times): a change here is published at once.
fn significant(board: &SharedBoard) -> Vec<u8> {
    let mut board = board.clone();
    for region in &mut board.regions {
        region.latency_ms = 0.0;
        region.error_rate = 0.0;
        region.updated_at = chrono::DateTime::UNIX_EPOCH;
    }
    serde_json::to_vec(&board).unwrap_or_default()
}

/// Publishes while `leading`, copies otherwise; runs until aborted.
pub(crate) async fn run(ctx: FleetCtx, leading: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut published: Vec<u8> = Vec::new();
    let mut published_at = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        if leading.load(Ordering::SeqCst) {
            let board = SharedBoard {
                regions: ctx.board.snapshot(),
                accounts: ctx.accounts.snapshot(),
            };
            let now = significant(&board);
            if now == published && published_at.elapsed() < REFRESH {
                continue;
            }
            let Ok(bytes) = serde_json::to_vec(&board) else {
                continue;
            };
            let written = match ctx.store.put_shared(DOCUMENT, &bytes) {
                Ok(()) => ctx.store.flush().await,
                Err(e) => Err(e),
            };
            match written {
                Ok(()) => {
                    published = now;
                    published_at = tokio::time::Instant::now();
                }
                Err(e) => warn!(error = %e, "cannot publish region health"),
            }
        } else {
            match ctx.store.get_shared(DOCUMENT) {
                Ok(Some(bytes)) => match serde_json::from_slice::<SharedBoard>(&bytes) {
                    Ok(board) => {
                        ctx.board.replace_all(board.regions);
                        ctx.accounts.replace_all(board.accounts);
                    }
                    Err(e) => warn!(error = %e, "unreadable region health from the leader"),
                },
                Ok(None) => {}
                Err(e) => warn!(error = %e, "cannot read region health"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerState;
    use crate::status::RegionStatus;

    #[test]
    fn averages_and_times_alone_are_not_significant_health_is() {
        let board = |change: &dyn Fn(&mut RegionStatus)| {
            let mut region = RegionStatus::sample(BreakerState::Closed);
            change(&mut region);
            SharedBoard {
                regions: vec![region],
                accounts: vec![],
            }
        };
        let base = significant(&board(&|_| {}));
        assert_eq!(base, significant(&board(&|r| r.latency_ms = 812.0)));
        assert_eq!(base, significant(&board(&|r| r.error_rate = 0.05)));
        assert_ne!(
            base,
            significant(&board(&|r| r.breaker = BreakerState::Open))
        );
        assert_ne!(base, significant(&board(&|r| r.building = 3)));
    }
}
