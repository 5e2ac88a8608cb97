//! Region history: what every region's status showed over the last hours,
//! one sample per interval in a ring buffer per region, so the pages can
//! show whether a region has been failing for a minute or for an hour.
//! Memory only: a restarted daemon starts a new history.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::status::{RegionHealth, RegionStatus};

/// One interval of one region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// End of the interval.
    pub at: DateTime<Utc>,
    /// Launches the region took during the interval.
    pub launches: u64,
    /// Provider calls that failed during the interval, by failure class.
    pub failures: BTreeMap<&'static str, u64>,
    /// Call latency at the end of the interval (moving average), ms.
    pub latency_ms: f64,
    /// Instances used, ours in flight included.
    pub used: i64,
    /// The instance quota, when known (-1: unlimited).
    pub limit: Option<i64>,
    /// Health at the end of the interval.
    pub health: RegionHealth,
}

/// The samples of one region, and the counters the next delta is from.
#[derive(Debug, Default)]
struct Track {
    samples: VecDeque<Sample>,
    launches_seen: u64,
    calls_failed: BTreeMap<&'static str, u64>,
}

/// Every region's recent samples.
#[derive(Debug)]
pub struct History {
    capacity: usize,
    tracks: HashMap<(String, String), Track>,
}

/// How far `now` moved from `before`: a counter that went down was reset
/// (its actor restarted), so all of it is new.
fn delta(now: u64, before: u64) -> u64 {
    if now >= before { now - before } else { now }
}

impl History {
    /// A history keeping `capacity` samples per region.
    pub fn new(capacity: usize) -> History {
        History {
            capacity: capacity.max(1),
            tracks: HashMap::new(),
        }
    }

    /// Adds a sample per region of `statuses`, taken at `now`; regions no
    /// longer there are forgotten.
    pub fn record(&mut self, statuses: &[RegionStatus], now: DateTime<Utc>) {
        self.tracks.retain(|(account, region), _| {
            statuses
                .iter()
                .any(|s| &s.account_id == account && &s.region == region)
        });
        for status in statuses {
            let key = (status.account_id.clone(), status.region.clone());
            let fresh = !self.tracks.contains_key(&key);
            let track = self.tracks.entry(key).or_default();
            let failures: BTreeMap<&'static str, u64> = status
                .calls_failed
                .iter()
                .map(|(class, n)| {
                    let before = track.calls_failed.get(class).copied().unwrap_or(0);
                    (*class, delta(*n, before))
                })
                .filter(|(_, n)| *n > 0)
                .collect();
            let launches = delta(status.launches_seen, track.launches_seen);
            track.launches_seen = status.launches_seen;
            track.calls_failed = status.calls_failed.clone();
            if fresh {
                // What happened before the first look has no interval.
                continue;
            }
            if track.samples.len() == self.capacity {
                track.samples.pop_front();
            }
            track.samples.push_back(Sample {
                at: now,
                launches,
                failures,
                latency_ms: status.latency_ms,
                used: status.used.instances,
                limit: status.limit.map(|l| l.instances),
                health: status.health,
            });
        }
    }

    /// One region's samples, oldest first.
    pub fn of(&self, account_id: &str, region: &str) -> Vec<Sample> {
        self.tracks
            .get(&(account_id.to_owned(), region.to_owned()))
            .map(|t| t.samples.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerState;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn samples_hold_what_happened_in_each_interval() {
        let mut history = History::new(3);
        let mut status = RegionStatus::sample(BreakerState::Closed);
        status.launches_seen = 5;
        status.calls_failed.insert("transport", 2);
        history.record(std::slice::from_ref(&status), at(0));
        assert!(history.of("a", "r1").is_empty(), "no interval yet");

        status.launches_seen = 8;
        status.calls_failed.insert("transport", 6);
        status.calls_failed.insert("quota", 1);
        status.health = RegionHealth::Down;
        history.record(std::slice::from_ref(&status), at(10));
        let samples = history.of("a", "r1");
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].launches, 3);
        assert_eq!(samples[0].failures.get("transport"), Some(&4));
        assert_eq!(samples[0].failures.get("quota"), Some(&1));
        assert_eq!(samples[0].health, RegionHealth::Down);

        // The actor restarted: its counters began again from zero.
        status.launches_seen = 2;
        status.calls_failed.clear();
        history.record(std::slice::from_ref(&status), at(20));
        let last = history.of("a", "r1").pop().unwrap();
        assert_eq!(last.launches, 2);
        assert!(last.failures.is_empty());
    }

    #[test]
    fn the_ring_keeps_the_newest_and_forgets_removed_regions() {
        let mut history = History::new(3);
        let status = RegionStatus::sample(BreakerState::Closed);
        for i in 0..10 {
            history.record(std::slice::from_ref(&status), at(i * 10));
        }
        let samples = history.of("a", "r1");
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[2].at, at(90));
        assert_eq!(samples[0].at, at(70));
        history.record(&[], at(100));
        assert!(history.of("a", "r1").is_empty());
    }
}
