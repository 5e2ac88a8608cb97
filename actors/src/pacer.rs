//! The call budget of one account-region: a governor limiter measured start
//! to start, a pause that honours Retry-After for every kind of call, and a
//! penalty spacing that grows on each 429 and shrinks back slowly.
//! Key-pair imports have a budget of their own at the same rate: a launch
//! of many instances imports a key for each, and those imports must not
//! queue ahead of the creates of launches whose keys are in. Mutating
//! calls may come in a burst (the account's `mutating_burst`): a burst of
//! launches after a quiet spell goes out at once rather than one every
//! 1/rate seconds, and the rate still holds over time.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

/// Successful calls after which the penalty spacing is halved.
const RECOVERY_CALLS: u32 = 10;
/// Largest penalty spacing.
const MAX_PENALTY: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct Slowdown {
    paused_until: Option<Instant>,
    penalty: Duration,
    next_slot: Option<Instant>,
    calm_calls: u32,
}

/// Shared by every call task of a region.
#[derive(Debug, Clone)]
pub struct Pacer {
    mutating: Arc<DefaultDirectRateLimiter>,
    imports: Arc<DefaultDirectRateLimiter>,
    reads: Arc<DefaultDirectRateLimiter>,
    slowdown: Arc<Mutex<Slowdown>>,
    base_spacing: Duration,
}

/// Which budget a call draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Create, delete.
    Mutating,
    /// Key-pair import and delete.
    Import,
    /// Show, list, limits.
    Read,
}

fn limiter(per_sec: f64, burst: u32) -> DefaultDirectRateLimiter {
    let period = Duration::from_secs_f64(1.0 / per_sec.clamp(0.01, 10_000.0));
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
    RateLimiter::direct(quota)
}

impl Pacer {
    /// A pacer allowing `mutating_per_sec` (in bursts of `mutating_burst`)
    /// and `read_per_sec`.
    pub fn new(mutating_per_sec: f64, mutating_burst: u32, read_per_sec: f64) -> Pacer {
        Pacer {
            mutating: Arc::new(limiter(mutating_per_sec, mutating_burst)),
            imports: Arc::new(limiter(mutating_per_sec, mutating_burst)),
            reads: Arc::new(limiter(read_per_sec, 1)),
            slowdown: Arc::new(Mutex::new(Slowdown::default())),
            base_spacing: Duration::from_secs_f64(1.0 / mutating_per_sec.clamp(0.01, 10_000.0)),
        }
    }

    fn slowdown(&self) -> std::sync::MutexGuard<'_, Slowdown> {
        self.slowdown.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until a call of `kind` may start.
    pub async fn acquire(&self, kind: CallKind) {
        self.wait_out_pause().await;
        let slot = {
            let mut s = self.slowdown();
            if s.penalty > Duration::ZERO {
                let now = Instant::now();
                let slot = s.next_slot.map_or(now, |n| n.max(now));
                s.next_slot = Some(slot + s.penalty);
                Some(slot)
            } else {
                None
            }
        };
        if let Some(slot) = slot {
            tokio::time::sleep_until(slot).await;
            // A pause may have begun while this call waited for its slot.
            self.wait_out_pause().await;
        }
        match kind {
            CallKind::Mutating => self.mutating.until_ready().await,
            CallKind::Import => self.imports.until_ready().await,
            CallKind::Read => self.reads.until_ready().await,
        };
    }

    async fn wait_out_pause(&self) {
        while let Some(until) = self.paused_until() {
            tokio::time::sleep_until(until).await;
        }
    }

    /// The provider said 429: no call before `retry_after`, and calls
    /// spaced further apart for a while.
    pub fn rate_limited(&self, retry_after: Option<Duration>) {
        let mut s = self.slowdown();
        let now = Instant::now();
        let until = now + retry_after.unwrap_or(Duration::from_secs(1));
        s.paused_until = Some(s.paused_until.map_or(until, |u| u.max(until)));
        s.penalty = (s.penalty * 2).max(self.base_spacing).min(MAX_PENALTY);
        s.calm_calls = 0;
    }

    /// A call went through without a 429: recover gradually.
    pub fn calm(&self) {
        let mut s = self.slowdown();
        if s.penalty == Duration::ZERO {
            return;
        }
        s.calm_calls += 1;
        if s.calm_calls >= RECOVERY_CALLS {
            s.calm_calls = 0;
            s.penalty /= 2;
            if s.penalty < self.base_spacing / 4 {
                s.penalty = Duration::ZERO;
                s.next_slot = None;
            }
        }
    }

    /// When calls may resume, if they are paused.
    pub fn paused_until(&self) -> Option<Instant> {
        self.slowdown()
            .paused_until
            .filter(|until| *until > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mutating_calls_come_in_bursts_then_at_the_rate() {
        let pacer = Pacer::new(0.1, 3, 1000.0);
        for _ in 0..3 {
            assert!(pacer.mutating.check().is_ok());
        }
        // The burst is spent: the next waits a period of ten seconds.
        assert!(pacer.mutating.check().is_err());
        // Reads are not bursty.
        let pacer = Pacer::new(1000.0, 3, 0.1);
        assert!(pacer.reads.check().is_ok());
        assert!(pacer.reads.check().is_err());
    }

    #[tokio::test]
    async fn imports_do_not_spend_the_budget_of_creates() {
        let pacer = Pacer::new(0.1, 1, 1000.0);
        pacer.acquire(CallKind::Import).await;
        // The import used its own budget: the next import must wait ten
        // seconds, a create need not.
        assert!(pacer.imports.check().is_err());
        assert!(pacer.mutating.check().is_ok());
        assert!(pacer.mutating.check().is_err());
    }

    #[tokio::test]
    async fn nothing_starts_before_retry_after() {
        let pacer = Pacer::new(1000.0, 1, 1000.0);
        pacer.rate_limited(Some(Duration::from_millis(300)));
        assert!(pacer.paused_until().is_some());
        let start = std::time::Instant::now();
        pacer.acquire(CallKind::Read).await;
        assert!(start.elapsed() >= Duration::from_millis(290));
    }

    #[test]
    fn penalty_recovers_after_calm_calls() {
        let pacer = Pacer::new(10.0, 1, 10.0);
        pacer.rate_limited(None);
        assert!(pacer.slowdown().penalty > Duration::ZERO);
        for _ in 0..(RECOVERY_CALLS * 4) {
            pacer.calm();
        }
        assert_eq!(pacer.slowdown().penalty, Duration::ZERO);
    }
}
