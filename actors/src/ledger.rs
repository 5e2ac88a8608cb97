//! A region's quota ledger: what Nova's limits say, plus the launches we
//! have reserved that Nova may not count yet, plus what quota refusals
//! taught us. A launch reserves before its create call, so a create the
//! ledger knows would be refused is never sent.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::openstack::AbsoluteLimits;

/// Resources one server takes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, schemars::JsonSchema, serde::Deserialize,
)]
pub struct Footprint {
    /// Instances (always 1 for one server).
    pub instances: i64,
    /// vCPUs.
    pub cores: i64,
    /// RAM, MiB.
    pub ram: i64,
}

impl Footprint {
    /// One server of a flavor.
    pub fn server(vcpus: u32, ram_mb: u64) -> Footprint {
        Footprint {
            instances: 1,
            cores: i64::from(vcpus),
            ram: ram_mb as i64,
        }
    }

    /// One server whose flavor is not known (adopted, or rebuilt after a
    /// restart): it counts as an instance only.
    pub fn unknown_flavor() -> Footprint {
        Footprint::server(0, 0)
    }

    fn add(self, other: Footprint) -> Footprint {
        Footprint {
            instances: self.instances + other.instances,
            cores: self.cores + other.cores,
            ram: self.ram + other.ram,
        }
    }
}

/// A slot taken for a launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reservation {
    id: u64,
    footprint: Footprint,
    /// When the create call returned; None while it is in flight.
    created_at: Option<Instant>,
}

/// How long a quota refusal caps a region when usage does not drop.
pub const QUOTA_MEMORY: Duration = Duration::from_secs(15 * 60);

/// The ledger of one account-region.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    limits: Option<Limits>,
    reservations: Vec<Reservation>,
    next_id: u64,
    /// Learned from a refusal: at most this many instances fit, until
    /// usage drops below it or the memory expires.
    learned_cap: Option<(i64, Instant)>,
}

/// Limits and usage as last reported by Nova.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Limits (-1: unlimited).
    pub max: Footprint,
    /// Usage Nova reported.
    pub used: Footprint,
    /// When that report was asked for.
    pub asked_at: Instant,
    /// When it was answered: Nova counted at some moment in between.
    pub answered_at: Instant,
}

/// A reservation handle; give it back with `created`, `release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

impl Ledger {
    /// Takes in a `GET /limits` report asked for at `asked_at` and answered
    /// by `answered_at`. Creates that returned before it was asked are in
    /// the report and stop counting extra.
    pub fn update(&mut self, report: &AbsoluteLimits, asked_at: Instant, answered_at: Instant) {
        let used = Footprint {
            instances: report.total_instances_used,
            cores: report.total_cores_used,
            ram: report.total_ram_used,
        };
        self.limits = Some(Limits {
            max: Footprint {
                instances: report.max_total_instances,
                cores: report.max_total_cores,
                ram: report.max_total_ram_size,
            },
            used,
            asked_at,
            answered_at,
        });
        self.reservations
            .retain(|r| r.created_at.is_none_or(|created| created >= asked_at));
        self.forget_cap_below_it();
    }

    /// Whether limits are known at all.
    pub fn is_known(&self) -> bool {
        self.limits.is_some()
    }

    /// The last report.
    pub fn limits(&self) -> Option<Limits> {
        self.limits
    }

    /// Usage counting our reservations Nova has not seen yet.
    pub fn occupied(&self) -> Footprint {
        let base = self.limits.map(|l| l.used).unwrap_or_default();
        self.reservations
            .iter()
            .fold(base, |sum, r| sum.add(r.footprint))
    }

    /// Reservations not yet reflected in Nova's report.
    pub fn in_flight(&self) -> usize {
        self.reservations.len()
    }

    /// How many more servers of `footprint` fit now.
    pub fn headroom(&self, footprint: Footprint, now: Instant) -> i64 {
        let Some(limits) = self.limits else {
            return 0;
        };
        let occupied = self.occupied();
        let room = |max: i64, used: i64, each: i64| -> i64 {
            if max < 0 || each <= 0 {
                i64::MAX
            } else {
                ((max - used) / each).max(0)
            }
        };
        let mut max_instances = limits.max.instances;
        if let Some((cap, since)) = self.learned_cap
            && now.saturating_duration_since(since) < QUOTA_MEMORY
            && (max_instances < 0 || cap < max_instances)
        {
            max_instances = cap;
        }
        room(max_instances, occupied.instances, footprint.instances)
            .min(room(limits.max.cores, occupied.cores, footprint.cores))
            .min(room(limits.max.ram, occupied.ram, footprint.ram))
    }

    /// Takes a slot if one is free.
    pub fn reserve(&mut self, footprint: Footprint, now: Instant) -> Option<Ticket> {
        if self.headroom(footprint, now) < 1 {
            return None;
        }
        Some(self.reserve_regardless(footprint))
    }

    /// A reservation even past the limit: the naive policy does not look.
    pub fn reserve_regardless(&mut self, footprint: Footprint) -> Ticket {
        self.next_id += 1;
        self.reservations.push(Reservation {
            id: self.next_id,
            footprint,
            created_at: None,
        });
        Ticket(self.next_id)
    }

    /// The create call for `ticket` returned: the slot stays taken until a
    /// limits report asked for after now includes it.
    pub fn created(&mut self, ticket: Ticket, now: Instant) {
        if let Some(r) = self.reservations.iter_mut().find(|r| r.id == ticket.0) {
            r.created_at = Some(now);
        }
    }

    /// The create was not sent or was refused: the slot is free again.
    pub fn release(&mut self, ticket: Ticket) {
        self.reservations.retain(|r| r.id != ticket.0);
    }

    /// Nova refused a create for quota although the ledger saw room: the
    /// real cap is what is occupied now, until usage drops.
    pub fn learn_refusal(&mut self, ticket: Ticket, now: Instant) {
        self.release(ticket);
        self.learned_cap = Some((self.occupied().instances, now));
    }

    /// A server of ours is gone, and still existed at `existed_at` (its
    /// DELETE was sent then): count it gone before Nova reports it, if the
    /// last report surely counted it (answered before then). Otherwise the
    /// report may already leave it out, and subtracting again would free a
    /// slot Nova holds (a create refused for quota): false, and the caller
    /// asks Nova for its usage again.
    pub fn server_gone(&mut self, footprint: Footprint, existed_at: Option<Instant>) -> bool {
        let counted = match (&self.limits, existed_at) {
            (Some(limits), Some(existed)) => limits.answered_at <= existed,
            _ => false,
        };
        if !counted {
            return false;
        }
        if let Some(limits) = &mut self.limits {
            limits.used.instances = (limits.used.instances - footprint.instances).max(0);
            limits.used.cores = (limits.used.cores - footprint.cores).max(0);
            limits.used.ram = (limits.used.ram - footprint.ram).max(0);
        }
        self.forget_cap_below_it();
        true
    }

    /// A learned cap holds until what we occupy (Nova's usage and our
    /// creates it does not count yet, as when the cap was learned) drops
    /// below it: a report that merely counts one of our creates in flight
    /// is no drop.
    fn forget_cap_below_it(&mut self) {
        if let Some((cap, _)) = self.learned_cap
            && self.occupied().instances < cap
        {
            self.learned_cap = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(max: i64, used: i64) -> AbsoluteLimits {
        AbsoluteLimits {
            max_total_instances: max,
            max_total_cores: 100,
            max_total_ram_size: 100_000,
            total_instances_used: used,
            total_cores_used: used,
            total_ram_used: used * 512,
            ..AbsoluteLimits::default()
        }
    }

    const TINY: Footprint = Footprint {
        instances: 1,
        cores: 1,
        ram: 512,
    };

    #[test]
    fn unknown_limits_give_no_room() {
        let ledger = Ledger::default();
        assert_eq!(ledger.headroom(TINY, Instant::now()), 0);
    }

    #[test]
    fn reservations_count_until_a_later_report_includes_them() {
        let now = Instant::now();
        let mut ledger = Ledger::default();
        ledger.update(&report(3, 1), now, now);
        let a = ledger.reserve(TINY, now).unwrap();
        let _b = ledger.reserve(TINY, now).unwrap();
        assert!(ledger.reserve(TINY, now).is_none(), "3 of 3 taken");
        let t1 = now + Duration::from_secs(1);
        ledger.created(a, t1);
        // A report asked before the create returned does not include it.
        ledger.update(
            &report(3, 1),
            now + Duration::from_millis(500),
            now + Duration::from_millis(500),
        );
        assert_eq!(ledger.headroom(TINY, t1), 0);
        // A report asked after does: `a` counts once, `b` still in flight.
        ledger.update(
            &report(3, 2),
            t1 + Duration::from_secs(1),
            t1 + Duration::from_secs(1),
        );
        assert_eq!(ledger.in_flight(), 1);
        assert_eq!(ledger.headroom(TINY, t1), 0);
    }

    #[test]
    fn a_released_slot_is_free_again() {
        let now = Instant::now();
        let mut ledger = Ledger::default();
        ledger.update(&report(1, 0), now, now);
        let t = ledger.reserve(TINY, now).unwrap();
        ledger.release(t);
        assert_eq!(ledger.headroom(TINY, now), 1);
    }

    #[test]
    fn cores_and_ram_limit_too() {
        let now = Instant::now();
        let mut ledger = Ledger::default();
        ledger.update(
            &AbsoluteLimits {
                max_total_instances: 100,
                max_total_cores: 4,
                max_total_ram_size: -1,
                ..AbsoluteLimits::default()
            },
            now,
            now,
        );
        assert_eq!(ledger.headroom(Footprint::server(2, 2048), now), 2);
    }

    #[test]
    fn a_refusal_teaches_the_real_cap_until_usage_drops() {
        let now = Instant::now();
        let mut ledger = Ledger::default();
        // Limits claim 10, the provider really enforces 2.
        ledger.update(&report(10, 2), now, now);
        let t = ledger.reserve(TINY, now).unwrap();
        ledger.learn_refusal(t, now);
        assert_eq!(ledger.headroom(TINY, now), 0);
        ledger.update(
            &report(10, 2),
            now + Duration::from_secs(30),
            now + Duration::from_secs(30),
        );
        assert_eq!(ledger.headroom(TINY, now + Duration::from_secs(30)), 0);
        ledger.update(
            &report(10, 1),
            now + Duration::from_secs(60),
            now + Duration::from_secs(60),
        );
        assert_eq!(ledger.headroom(TINY, now + Duration::from_secs(60)), 9);
    }

    #[test]
    fn a_report_counting_a_create_in_flight_keeps_the_learned_cap() {
        let now = Instant::now();
        let mut ledger = Ledger::default();
        // Limits claim 10, the provider enforces 3: two servers and one
        // create in flight when the fourth is refused.
        ledger.update(&report(10, 2), now, now);
        let in_flight = ledger.reserve(TINY, now).unwrap();
        let refused = ledger.reserve(TINY, now).unwrap();
        ledger.learn_refusal(refused, now);
        assert_eq!(ledger.headroom(TINY, now), 0);
        // A report asked before the create returned still says 2 used.
        let later = now + Duration::from_secs(5);
        ledger.update(&report(10, 2), later, later);
        assert_eq!(ledger.headroom(TINY, later), 0, "nothing went away");
        ledger.created(in_flight, later);
        ledger.update(
            &report(10, 3),
            later + Duration::from_secs(1),
            later + Duration::from_secs(1),
        );
        assert_eq!(ledger.headroom(TINY, later), 0);
    }

    #[test]
    fn the_learned_cap_expires() {
        let now = Instant::now();
        let mut ledger = Ledger::default();
        ledger.update(&report(10, 2), now, now);
        let t = ledger.reserve(TINY, now).unwrap();
        ledger.learn_refusal(t, now);
        assert_eq!(ledger.headroom(TINY, now + QUOTA_MEMORY), 8);
    }

    #[test]
    fn a_deleted_server_frees_its_slot_at_once() {
        let now = Instant::now();
        let mut ledger = Ledger::default();
        ledger.update(&report(2, 2), now, now);
        assert_eq!(ledger.headroom(TINY, now), 0);
        // Its DELETE was sent after the report was answered: the report
        // counted it.
        assert!(ledger.server_gone(TINY, Some(now + Duration::from_millis(1))));
        assert_eq!(ledger.headroom(TINY, now), 1);
    }

    #[test]
    fn a_server_gone_maybe_before_the_report_is_not_subtracted_twice() {
        let now = Instant::now();
        let mut ledger = Ledger::default();
        // The DELETE went out, then a report was answered that may or may
        // not have counted the server: 1 of 2 used.
        let deleted = now;
        ledger.update(&report(2, 1), now, now + Duration::from_millis(700));
        assert!(!ledger.server_gone(TINY, Some(deleted)));
        assert_eq!(
            ledger.headroom(TINY, now),
            1,
            "not 2: the slot was counted free once"
        );
        // Nothing known of when a lost server went: ask Nova again.
        assert!(!ledger.server_gone(TINY, None));
        assert_eq!(ledger.headroom(TINY, now), 1);
    }
}
