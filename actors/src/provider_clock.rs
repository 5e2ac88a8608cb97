//! Which servers a region's poll asks for. Listing every server of ours
//! on every tick grows with the fleet (thousands of servers, several pages,
//! megabytes a second); Nova's `changes-since` returns only servers whose
//! `updated` is at or after a time, and every server the poll waits on was
//! created after its attempt was written down. So the poll asks for
//! changes since the oldest attempt it waits on — in the provider's clock,
//! estimated from the `Date` header of its answers.

use chrono::{DateTime, Duration, DurationRound, Utc};

/// Margin for clock drift between two polls and for jitter; the estimate
/// itself already errs early (see [`ProviderClock::observe`]).
const SLACK: Duration = Duration::seconds(5);

/// The offset of one provider's clock from ours, as last seen.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProviderClock {
    offset: Option<Duration>,
}

impl ProviderClock {
    /// Learns from an answer whose `Date` header said `provider_date`,
    /// received at `received` on our clock. The header is truncated to the
    /// second and was written before we received it, so the estimate is
    /// never later than the provider's real clock: a cursor made from it
    /// errs towards listing more, never less.
    pub(crate) fn observe(
        &mut self,
        provider_date: Option<DateTime<Utc>>,
        received: DateTime<Utc>,
    ) {
        if let Some(date) = provider_date {
            self.offset = Some(date - received);
        }
    }

    /// The `changes-since` for a poll that waits on attempts started at
    /// `oldest` (our clock) at the earliest; `None` asks for a full listing,
    /// which happens until an answer has told the provider's clock.
    pub(crate) fn changes_since(&self, oldest: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = oldest + self.offset? - SLACK;
        // Nova keeps `updated` to the second.
        Some(at.duration_trunc(Duration::seconds(1)).unwrap_or(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn lists_everything_until_the_provider_clock_is_known() {
        let mut clock = ProviderClock::default();
        assert_eq!(clock.changes_since(at("2026-12-01T10:00:00Z")), None);
        clock.observe(None, at("2026-12-01T10:00:00Z"));
        assert_eq!(clock.changes_since(at("2026-12-01T10:00:00Z")), None);
    }

    #[test]
    fn cursor_follows_a_provider_clock_that_runs_ahead_or_behind() {
        let mut clock = ProviderClock::default();
        // The provider's clock is 2 minutes ahead of ours.
        clock.observe(
            Some(at("2026-12-01T10:02:00Z")),
            at("2026-12-01T10:00:00.400Z"),
        );
        assert_eq!(
            clock.changes_since(at("2026-12-01T09:59:00Z")),
            Some(at("2026-12-01T10:00:54Z"))
        );
        // Later it is 30 s behind: the newest reading counts.
        clock.observe(Some(at("2026-12-01T10:09:30Z")), at("2026-12-01T10:10:00Z"));
        assert_eq!(
            clock.changes_since(at("2026-12-01T10:05:00.700Z")),
            Some(at("2026-12-01T10:04:25Z"))
        );
    }

    #[test]
    fn cursor_is_never_after_the_provider_time_of_the_oldest_attempt() {
        // Whatever the sub-second parts, a server created at or after
        // `oldest` (provider time >= oldest + true offset) is listed.
        let true_offset = Duration::milliseconds(1_234);
        for received_ms in [0, 1, 499, 999] {
            let received = at("2026-12-01T10:00:00Z") + Duration::milliseconds(received_ms);
            let provider_now = received + true_offset;
            let date = provider_now.duration_trunc(Duration::seconds(1)).unwrap();
            let mut clock = ProviderClock::default();
            clock.observe(Some(date), received);
            let oldest = at("2026-12-01T09:59:59.999Z");
            let since = clock.changes_since(oldest).unwrap();
            assert!(since <= oldest + true_offset);
        }
    }
}
