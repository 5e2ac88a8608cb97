//! The fence: whether this daemon may still act on providers. A daemon
//! alone is never fenced. A cluster's leader holds its fence only until
//! its etcd lease could have ended, counted on the monotonic clock from
//! the last keepalive it sent: a leader paused past its lease (SIGSTOP, a
//! long GC, a partition) finds the fence closed when it resumes, before
//! any call leaves, while another daemon already leads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Shared by the keepalive loop (which extends it) and the provider
/// client (which checks it before every call).
#[derive(Debug, Clone, Default)]
pub struct Fence(Option<Arc<Deadline>>);

#[derive(Debug)]
struct Deadline {
    base: Instant,
    /// Nanoseconds after `base` until which the fence holds; 0 is closed.
    until: AtomicU64,
}

impl Fence {
    /// A daemon alone: always holds.
    pub fn open() -> Fence {
        Fence(None)
    }

    /// A cluster member's fence, closed until [`Fence::extend_until`].
    pub fn leased() -> Fence {
        Fence(Some(Arc::new(Deadline {
            base: Instant::now(),
            until: AtomicU64::new(0),
        })))
    }

    /// Holds until `until` (never shortens: keepalive answers may arrive
    /// out of order).
    pub fn extend_until(&self, until: Instant) {
        if let Some(deadline) = &self.0 {
            let nanos = until.saturating_duration_since(deadline.base).as_nanos() as u64;
            deadline.until.fetch_max(nanos.max(1), Ordering::SeqCst);
        }
    }

    /// Closes for good: leadership is lost.
    pub fn close(&self) {
        if let Some(deadline) = &self.0 {
            deadline.until.store(0, Ordering::SeqCst);
        }
    }

    /// Whether this is a cluster member's fence.
    pub fn is_leased(&self) -> bool {
        self.0.is_some()
    }

    /// Whether the holder may act now.
    pub fn holds(&self) -> bool {
        match &self.0 {
            None => true,
            Some(deadline) => {
                let now = deadline.base.elapsed().as_nanos() as u64;
                now < deadline.until.load(Ordering::SeqCst)
            }
        }
    }

    /// How long it still holds (`None` for a daemon alone).
    pub fn remaining(&self) -> Option<Duration> {
        let deadline = self.0.as_ref()?;
        let now = deadline.base.elapsed().as_nanos() as u64;
        Some(Duration::from_nanos(
            deadline.until.load(Ordering::SeqCst).saturating_sub(now),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_alone_always_holds() {
        assert!(Fence::open().holds());
        assert_eq!(Fence::open().remaining(), None);
    }

    #[test]
    fn a_leased_fence_holds_until_its_deadline_and_never_shortens() {
        let fence = Fence::leased();
        assert!(!fence.holds(), "closed before the first keepalive");
        fence.extend_until(Instant::now() + Duration::from_secs(60));
        assert!(fence.holds());
        fence.extend_until(Instant::now());
        assert!(fence.holds(), "an older keepalive does not shorten it");
        fence.close();
        assert!(!fence.holds());
    }

    #[test]
    fn a_fence_past_its_deadline_is_closed() {
        let fence = Fence::leased();
        fence.extend_until(Instant::now() + Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!fence.holds());
        assert_eq!(fence.remaining(), Some(Duration::ZERO));
    }
}
