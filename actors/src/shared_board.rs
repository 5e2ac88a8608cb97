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

/// How often the leader publishes (when something changed) and followers
/// read.
pub const EVERY: Duration = Duration::from_secs(2);

/// Publishes while `leading`, copies otherwise; runs until aborted.
pub(crate) async fn run(ctx: FleetCtx, leading: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut published: Vec<u8> = Vec::new();
    loop {
        tick.tick().await;
        if leading.load(Ordering::SeqCst) {
            let board = SharedBoard {
                regions: ctx.board.snapshot(),
                accounts: ctx.accounts.snapshot(),
            };
            let Ok(bytes) = serde_json::to_vec(&board) else {
                continue;
            };
            if bytes == published {
                continue;
            }
            let written = match ctx.store.put_shared(DOCUMENT, &bytes) {
                Ok(()) => ctx.store.flush().await,
                Err(e) => Err(e),
            };
            match written {
                Ok(()) => published = bytes,
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
