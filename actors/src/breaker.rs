//! A region's circuit breaker: closed while calls succeed, open after
//! consecutive failures of the classes that count against health, half-open
//! after a wait to let one probe through, closed again on a good probe.
//! Each reopening waits longer, up to a ceiling.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::openstack::Class;

/// The three states, as shown to operators.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls are refused until the wait ends.
    Open,
    /// One probe call at a time decides.
    HalfOpen,
}

impl BreakerState {
    /// Every state, for a metric with one series each.
    pub const ALL: [BreakerState; 3] = [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
    ];

    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// Thresholds and waits.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// First wait before probing.
    pub open_for: Duration,
    /// Longest wait before probing.
    pub max_open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 3,
            open_for: Duration::from_secs(5),
            max_open_for: Duration::from_secs(120),
        }
    }
}

/// May a call be made now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Yes.
    Call,
    /// Yes, as the probe of a half-open breaker.
    Probe,
    /// No.
    Refused,
}

/// The breaker of one account-region.
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: BreakerState,
    failures: u32,
    open_until: Instant,
    next_wait: Duration,
    probe_in_flight: bool,
    last_change: Instant,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig, now: Instant) -> Breaker {
        Breaker {
            config,
            state: BreakerState::Closed,
            failures: 0,
            open_until: now,
            next_wait: config.open_for,
            probe_in_flight: false,
            last_change: now,
        }
    }

    /// The current state (an open breaker whose wait ended reads half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            BreakerState::Open if now >= self.open_until => BreakerState::HalfOpen,
            state => state,
        }
    }

    /// When the state last changed.
    pub fn last_change(&self) -> Instant {
        self.last_change
    }

    /// Asks to make a call; a `Probe` must be followed by `record`.
    pub fn permit(&mut self, now: Instant) -> Permit {
        match self.state(now) {
            BreakerState::Closed => Permit::Call,
            BreakerState::Open => Permit::Refused,
            BreakerState::HalfOpen if self.probe_in_flight => Permit::Refused,
            BreakerState::HalfOpen => {
                self.transition(BreakerState::HalfOpen, now);
                self.probe_in_flight = true;
                Permit::Probe
            }
        }
    }

    /// A call found nothing listening: the service is down, and waiting
    /// for more failures would only send more calls into it.
    pub fn unreachable(&mut self, now: Instant) -> Option<BreakerState> {
        let before = self.state(now);
        self.probe_in_flight = false;
        self.trip(now);
        (before != BreakerState::Open).then_some(BreakerState::Open)
    }

    /// Feeds a call's outcome; returns the new state if it changed.
    pub fn record(&mut self, class: Class, now: Instant) -> Option<BreakerState> {
        let before = self.state(now);
        self.probe_in_flight = false;
        match class {
            Class::Ok => {
                self.failures = 0;
                if before != BreakerState::Closed {
                    self.next_wait = self.config.open_for;
                    self.transition(BreakerState::Closed, now);
                }
            }
            Class::Unauthorized => self.trip(now),
            class if class.counts_against_health() => {
                self.failures += 1;
                if before == BreakerState::HalfOpen
                    || self.failures >= self.config.failure_threshold
                {
                    self.trip(now);
                }
            }
            // Quota, rate limits and bad requests say nothing of health; a
            // probe that got one still reached a working service.
            _ => {
                if before == BreakerState::HalfOpen {
                    self.failures = 0;
                    self.transition(BreakerState::Closed, now);
                }
            }
        }
        let after = self.state(now);
        (after != before).then_some(after)
    }

    fn trip(&mut self, now: Instant) {
        self.open_until = now + self.next_wait;
        self.next_wait = (self.next_wait * 2).min(self.config.max_open_for);
        self.failures = 0;
        self.transition(BreakerState::Open, now);
    }

    fn transition(&mut self, state: BreakerState, now: Instant) {
        if self.state != state {
            self.last_change = now;
        }
        self.state = state;
    }
}

#[cfg(test)]
mod unreachable_tests {
    use super::*;

    #[test]
    fn nothing_listening_opens_at_once() {
        let now = Instant::now();
        let mut breaker = Breaker::new(BreakerConfig::default(), now);
        assert_eq!(breaker.unreachable(now), Some(BreakerState::Open));
        assert_eq!(breaker.permit(now), Permit::Refused);
        assert_eq!(breaker.unreachable(now), None, "already open");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> (Breaker, Instant) {
        let now = Instant::now();
        (Breaker::new(BreakerConfig::default(), now), now)
    }

    #[test]
    fn opens_after_consecutive_failures_and_probes_after_the_wait() {
        let (mut b, now) = breaker();
        assert_eq!(b.record(Class::ServerError, now), None);
        assert_eq!(b.record(Class::Transport, now), None);
        assert_eq!(b.record(Class::ServerError, now), Some(BreakerState::Open));
        assert_eq!(b.permit(now), Permit::Refused);
        let later = now + Duration::from_secs(5);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert_eq!(b.permit(later), Permit::Probe);
        assert_eq!(b.permit(later), Permit::Refused, "one probe at a time");
        assert_eq!(b.record(Class::Ok, later), Some(BreakerState::Closed));
        assert_eq!(b.permit(later), Permit::Call);
    }

    #[test]
    fn a_failed_probe_reopens_for_longer() {
        let (mut b, now) = breaker();
        for _ in 0..3 {
            b.record(Class::ServerError, now);
        }
        let probe_at = now + Duration::from_secs(5);
        assert_eq!(b.permit(probe_at), Permit::Probe);
        assert_eq!(
            b.record(Class::Transport, probe_at),
            Some(BreakerState::Open)
        );
        assert_eq!(
            b.state(probe_at + Duration::from_secs(9)),
            BreakerState::Open
        );
        assert_eq!(
            b.state(probe_at + Duration::from_secs(10)),
            BreakerState::HalfOpen
        );
    }

    #[test]
    fn success_resets_the_failure_count() {
        let (mut b, now) = breaker();
        b.record(Class::ServerError, now);
        b.record(Class::ServerError, now);
        b.record(Class::Ok, now);
        b.record(Class::ServerError, now);
        assert_eq!(b.state(now), BreakerState::Closed);
    }

    #[test]
    fn quota_and_rate_limits_do_not_count() {
        let (mut b, now) = breaker();
        for _ in 0..10 {
            b.record(Class::Quota, now);
            b.record(Class::RateLimited, now);
            b.record(Class::BadRequest, now);
        }
        assert_eq!(b.state(now), BreakerState::Closed);
    }

    #[test]
    fn unauthorized_after_reauth_opens_at_once() {
        let (mut b, now) = breaker();
        assert_eq!(b.record(Class::Unauthorized, now), Some(BreakerState::Open));
    }
}
