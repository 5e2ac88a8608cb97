//! Group commit: many writers, one flush. Each caller takes a ticket; one
//! caller at a time flushes on behalf of every ticket taken before it began;
//! the others wait for a flush that covers their ticket.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, watch};

/// Coalesces durable flushes.
#[derive(Debug)]
pub struct GroupCommit {
    tickets: AtomicU64,
    flushed: watch::Sender<u64>,
    leader: Mutex<()>,
}

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit {
            tickets: AtomicU64::new(0),
            flushed: watch::Sender::new(0),
            leader: Mutex::new(()),
        }
    }
}

impl GroupCommit {
    /// Returns once a run of `flush` that started after this call began has
    /// succeeded.
    pub async fn commit<F, Fut, E>(&self, flush: F) -> Result<(), E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        let mut flushed = self.flushed.subscribe();
        loop {
            if *flushed.borrow_and_update() >= ticket {
                return Ok(());
            }
            if let Ok(leading) = self.leader.try_lock() {
                let covered = self.tickets.load(Ordering::SeqCst);
                let result = flush().await;
                // Step down before telling the others, so that a waiter
                // whose ticket this flush did not cover can lead the next.
                drop(leading);
                match result {
                    Ok(()) => self
                        .flushed
                        .send_modify(|done| *done = (*done).max(covered)),
                    Err(error) => {
                        // Wake the waiters anyway: one of them leads a retry.
                        self.flushed.send_modify(|_| {});
                        return Err(error);
                    }
                }
                continue;
            }
            // Someone else is flushing; wait for it, then look again.
            let _ = flushed.changed().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_commits_share_few_flushes() {
        let group = Arc::new(GroupCommit::default());
        let flushes = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let group = group.clone();
            let flushes = flushes.clone();
            tasks.push(tokio::spawn(async move {
                group
                    .commit(|| {
                        let flushes = flushes.clone();
                        async move {
                            flushes.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                            Ok::<(), ()>(())
                        }
                    })
                    .await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let count = flushes.load(Ordering::SeqCst);
        assert!((1..200).contains(&count), "{count} flushes for 200 commits");
    }

    #[tokio::test]
    async fn a_failed_flush_is_reported_to_its_caller() {
        let group = GroupCommit::default();
        let result = group
            .commit(|| async { Err::<(), &str>("disk full") })
            .await;
        assert_eq!(result, Err("disk full"));
        group.commit(|| async { Ok::<(), &str>(()) }).await.unwrap();
    }
}
