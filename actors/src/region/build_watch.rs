//! The build watch: each server building in a region is asked for by id
//! in turn (a GET is quick where a listing under load takes seconds), so
//! ACTIVE and ERROR are seen soon after Nova writes them. The pace is one
//! GET per `PER_GET` for the region, each server at most every `EVERY`:
//! half the default read budget at most, the rest left to listings and
//! refreshes.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Duration;

use ractor::ActorRef;
use tokio::time::Instant;

use super::RegionState;
use crate::breaker::BreakerState;
use crate::messages::RegionMsg;
use crate::openstack::{ProviderError, Server};
use crate::region_calls::spawn_show;

/// How often the watch looks whether a check is due.
pub(super) const TICK: Duration = Duration::from_millis(100);
/// How long after a server's last check the next is due, at the soonest.
pub(super) const EVERY: Duration = Duration::from_millis(400);
/// The region's GETs are this far apart on average: with many servers
/// building, each is asked for less often.
pub(super) const PER_GET: Duration = Duration::from_millis(100);

/// When each building server was last asked for, and whether an answer
/// is awaited.
#[derive(Debug, Default)]
pub(super) struct BuildWatch {
    checks: HashMap<String, (Instant, bool)>,
}

impl BuildWatch {
    /// The servers among `building` to ask for now, marked in flight.
    pub(super) fn due<'a>(
        &mut self,
        building: impl Iterator<Item = &'a String>,
        now: Instant,
    ) -> Vec<String> {
        let building: Vec<&String> = building.collect();
        self.checks.retain(|id, _| building.contains(&id));
        let every = EVERY.max(PER_GET * building.len() as u32);
        let mut due = Vec::new();
        for id in building {
            let asked = match self.checks.entry(id.clone()) {
                // Nothing builds in no time: the first check waits too.
                Entry::Vacant(first) => {
                    first.insert((now, false));
                    false
                }
                Entry::Occupied(mut seen) => {
                    let (last, in_flight) = seen.get_mut();
                    let ask = !*in_flight && now.saturating_duration_since(*last) >= every;
                    if ask {
                        *last = now;
                        *in_flight = true;
                    }
                    ask
                }
            };
            if asked {
                due.push(id.clone());
            }
        }
        due
    }

    /// An answer for `id` came back.
    pub(super) fn answered(&mut self, id: &str) {
        if let Some((_, in_flight)) = self.checks.get_mut(id) {
            *in_flight = false;
        }
    }
}

impl RegionState {
    /// Asks for the building servers whose check is due.
    pub(super) fn watch_builds(&mut self, myself: &ActorRef<RegionMsg>) {
        let now = Instant::now();
        if self.breaker.state(now) != BreakerState::Closed {
            return;
        }
        let Some(compute) = self.compute() else {
            return;
        };
        for id in self.builds.due(self.tracked.keys(), now) {
            spawn_show(
                compute.clone(),
                self.pacer.clone(),
                id,
                myself.clone(),
                |server_id, result| RegionMsg::BuildSeen { server_id, result },
            );
        }
    }

    /// What a GET said of a building server (`None`: 404).
    pub(super) fn build_answered(
        &mut self,
        id: String,
        result: Result<Option<Server>, ProviderError>,
    ) {
        self.builds.answered(&id);
        self.observe(result.as_ref().map(drop), None);
        if let Ok(Some(server)) = result {
            // Answered now: no older than that (a conservative stamp).
            self.build_seen(id, Some(&server), Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("s{i}")).collect()
    }

    #[test]
    fn a_few_builds_are_asked_for_each_at_its_pace() {
        let mut watch = BuildWatch::default();
        let now = Instant::now();
        let building = ids(2);
        assert!(watch.due(building.iter(), now).is_empty(), "just created");
        assert_eq!(watch.due(building.iter(), now + EVERY), building);
        // In flight: not again, however late.
        assert!(watch.due(building.iter(), now + EVERY * 3).is_empty());
        watch.answered("s0");
        let later = now + EVERY * 3;
        assert_eq!(watch.due(building.iter(), later), vec!["s0".to_owned()]);
        watch.answered("s0");
        assert!(
            watch.due(building.iter(), later + EVERY / 2).is_empty(),
            "too soon"
        );
    }

    #[test]
    fn many_builds_are_each_asked_for_less_often() {
        let mut watch = BuildWatch::default();
        let now = Instant::now();
        let building = ids(20);
        assert!(watch.due(building.iter(), now).is_empty());
        // Twenty building: each every two seconds, not every 400 ms.
        assert!(watch.due(building.iter(), now + EVERY).is_empty());
        assert_eq!(watch.due(building.iter(), now + PER_GET * 20).len(), 20);
    }

    #[test]
    fn finished_builds_are_forgotten() {
        let mut watch = BuildWatch::default();
        let now = Instant::now();
        watch.due(ids(3).iter(), now);
        watch.due(ids(1).iter(), now + EVERY);
        assert_eq!(watch.checks.len(), 1);
    }
}
