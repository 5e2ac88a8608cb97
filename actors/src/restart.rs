//! When a supervisor restarts a child and when it gives up: exponential
//! backoff, and an intensity limit (at most N restarts within a window)
//! beyond which the failure is escalated instead of looping.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Backoff and intensity settings.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// Wait before the first restart.
    pub base: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Restarts allowed within `window` before escalating.
    pub intensity: usize,
    /// The window.
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_secs(30),
            intensity: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// What to do about a child that died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart it after this wait.
    RestartAfter(Duration),
    /// Too many restarts: fail upwards.
    Escalate,
}

/// The child that died and why, if `event` is a death (a supervisor
/// ignores the other events).
pub(crate) fn death(event: ractor::SupervisionEvent) -> Option<(ractor::ActorCell, String)> {
    match event {
        ractor::SupervisionEvent::ActorTerminated(cell, _, reason) => {
            Some((cell, reason.unwrap_or_else(|| "stopped".into())))
        }
        ractor::SupervisionEvent::ActorFailed(cell, error) => Some((cell, error.to_string())),
        _ => None,
    }
}

/// The restart history of one child.
#[derive(Debug, Clone, Default)]
pub struct RestartHistory {
    recent: VecDeque<Instant>,
}

impl RestartHistory {
    /// Records a death at `now` and decides.
    pub fn on_death(&mut self, policy: &RestartPolicy, now: Instant) -> Decision {
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > policy.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= policy.intensity {
            return Decision::Escalate;
        }
        let exponent = self.recent.len() as u32;
        self.recent.push_back(now);
        Decision::RestartAfter(backoff(policy.base, exponent, policy.max))
    }
}

/// `base` doubled `n` times, at most `max`: the wait before a retry.
pub(crate) fn backoff(base: Duration, n: u32, max: Duration) -> Duration {
    base.saturating_mul(1 << n.min(20)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_then_escalates() {
        let policy = RestartPolicy::default();
        let mut history = RestartHistory::default();
        let now = Instant::now();
        let waits: Vec<Decision> = (0..6).map(|_| history.on_death(&policy, now)).collect();
        assert_eq!(waits[0], Decision::RestartAfter(Duration::from_millis(100)));
        assert_eq!(waits[1], Decision::RestartAfter(Duration::from_millis(200)));
        assert_eq!(
            waits[4],
            Decision::RestartAfter(Duration::from_millis(1600))
        );
        assert_eq!(waits[5], Decision::Escalate);
    }

    #[test]
    fn old_deaths_fall_out_of_the_window() {
        let policy = RestartPolicy::default();
        let mut history = RestartHistory::default();
        let now = Instant::now();
        for _ in 0..5 {
            history.on_death(&policy, now);
        }
        let later = now + Duration::from_secs(61);
        assert_eq!(
            history.on_death(&policy, later),
            Decision::RestartAfter(Duration::from_millis(100))
        );
    }
}
