//! Refusals: a region that refused an instance (breaker open, full, too
//! many creates, draining) without calling its provider is not offered
//! that instance again until what it publishes changes, or a wait that
//! doubles with every refusal (2 s up to a minute) has passed. Without
//! this, placement and the region disagree in a loop: a half-open region
//! looks usable to placement and refuses every launch, thousands of times
//! a minute, each with its events and log lines.

use std::time::Duration;

use tokio::time::Instant;

use crate::breaker::BreakerState;
use crate::status::{ProfileFit, RegionStatus};

/// The first wait after a refusal, and the longest.
pub(crate) const REFUSAL_WAIT: (Duration, Duration) =
    (Duration::from_secs(2), Duration::from_secs(60));

/// What of a region's published status decides whether it could take an
/// instance of a profile: when any of it changes, a refusal is stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outlook {
    breaker: BreakerState,
    connected: bool,
    enabled: bool,
    drain: bool,
    room: bool,
    creates_free: bool,
    paused: bool,
    conflict: bool,
}

impl Outlook {
    /// The outlook of `status` for `profile`.
    pub(crate) fn of(status: &RegionStatus, profile: &str) -> Outlook {
        let room = match status.profiles.get(profile) {
            Some(ProfileFit::Fits { headroom, .. } | ProfileFit::NotNow { headroom, .. }) => {
                *headroom > 0
            }
            _ => false,
        };
        Outlook {
            breaker: status.breaker,
            connected: status.connected,
            enabled: status.enabled,
            drain: status.drain,
            room,
            creates_free: status.creating < status.max_creating,
            paused: status.paused,
            conflict: status.conflict.is_some(),
        }
    }
}

#[derive(Debug, Clone)]
struct Refusal {
    account_id: String,
    region: String,
    until: Instant,
    seen: Option<Outlook>,
}

/// The refusals one waiting instance has met.
#[derive(Debug, Clone, Default)]
pub(crate) struct Refusals {
    list: Vec<Refusal>,
    /// Refusals in a row, for the doubling wait.
    count: u32,
}

impl Refusals {
    /// Notes that `account_id`/`region` refused, its status then being
    /// `seen` (if it published one); the wait before it is offered again
    /// unless its status changes.
    pub(crate) fn record(
        &mut self,
        account_id: &str,
        region: &str,
        seen: Option<Outlook>,
        now: Instant,
    ) -> Duration {
        let wait = crate::restart::backoff(REFUSAL_WAIT.0, self.count, REFUSAL_WAIT.1);
        self.count += 1;
        self.list
            .retain(|r| !(r.account_id == account_id && r.region == region));
        self.list.push(Refusal {
            account_id: account_id.to_owned(),
            region: region.to_owned(),
            until: now + wait,
            seen,
        });
        wait
    }

    /// The regions not to offer the instance now: those whose refusal is
    /// recent and whose status (for `profile`) is as it was. Stale ones are
    /// forgotten.
    pub(crate) fn blocked(
        &mut self,
        board: &[RegionStatus],
        profile: &str,
        now: Instant,
    ) -> Vec<(String, String)> {
        self.list.retain(|r| {
            let current = board
                .iter()
                .find(|s| s.account_id == r.account_id && s.region == r.region)
                .map(|s| Outlook::of(s, profile));
            r.until > now && current == r.seen
        });
        self.list
            .iter()
            .map(|r| (r.account_id.clone(), r.region.clone()))
            .collect()
    }

    /// The instance got somewhere: the next refusal waits the least again.
    pub(crate) fn reset(&mut self) {
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(breaker: BreakerState) -> RegionStatus {
        RegionStatus::sample(breaker)
    }

    #[test]
    fn a_refusing_region_is_blocked_for_a_doubling_wait() {
        let now = Instant::now();
        let mut refusals = Refusals::default();
        let board = vec![status(BreakerState::HalfOpen)];
        let seen = Some(Outlook::of(&board[0], "small"));
        let waits: Vec<u64> = (0..7)
            .map(|_| refusals.record("a", "r1", seen.clone(), now).as_secs())
            .collect();
        assert_eq!(waits, vec![2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(
            refusals.blocked(&board, "small", now + Duration::from_secs(59)),
            vec![("a".to_owned(), "r1".to_owned())]
        );
        assert!(
            refusals
                .blocked(&board, "small", now + Duration::from_secs(61))
                .is_empty()
        );
    }

    #[test]
    fn a_change_in_what_the_region_publishes_lifts_the_block() {
        let now = Instant::now();
        let mut refusals = Refusals::default();
        let before = vec![status(BreakerState::HalfOpen)];
        refusals.record("a", "r1", Some(Outlook::of(&before[0], "small")), now);
        assert_eq!(refusals.blocked(&before, "small", now).len(), 1);
        // Busy in other ways (latency, updated time): still blocked.
        let mut busy = before.clone();
        busy[0].latency_ms = 50.0;
        busy[0].updated_at = chrono::Utc::now();
        assert_eq!(refusals.blocked(&busy, "small", now).len(), 1);
        // Its breaker closed: offered again at once.
        let closed = vec![status(BreakerState::Closed)];
        assert!(refusals.blocked(&closed, "small", now).is_empty());
        // A region gone from the board is not blocked either.
        refusals.record("a", "r1", Some(Outlook::of(&before[0], "small")), now);
        assert!(refusals.blocked(&[], "small", now).is_empty());
    }
}
