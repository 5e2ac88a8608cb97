//! Deletes: a region that created a server deletes it (and its key pair)
//! and holds its quota slot until a GET answers 404; refused DELETEs are
//! retried with backoff, accepted ones checked at doubling waits.

use std::time::Duration;

use ractor::ActorRef;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{RegionState, Tracked};
use crate::ledger::Footprint;
use crate::messages::{OutcomeKind, RegionMsg};
use crate::model::Attempt;
use crate::openstack::{Class, ProviderError};
use crate::region_calls::{spawn_delete, spawn_delete_keypair, spawn_show};

/// The first wait before asking whether a deleted server is gone; later
/// checks double it, up to the poll interval.
pub(super) const FIRST_GONE_CHECK: Duration = Duration::from_millis(250);
/// The first wait before sending a refused DELETE again, and the longest.
pub(super) const DELETE_RETRY: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(32));

#[derive(Debug)]
pub(super) enum AfterDelete {
    /// The client asked: report `Deleted`.
    Deleted,
    /// The attempt failed and was reported at once (its instance moved
    /// on); the region only owns the server and its quota slot until it
    /// is gone.
    Retired,
    /// A leak: nobody to tell.
    Leak,
}

#[derive(Debug)]
pub(super) struct Deleting {
    instance_id: String,
    pub(super) attempt_id: String,
    keypair: Option<String>,
    footprint: Footprint,
    then: AfterDelete,
    accepted: bool,
    /// When the (last) DELETE was sent: the server existed then.
    sent_at: Option<Instant>,
    in_flight: bool,
    next_try: Instant,
    /// Deletes refused, until one is accepted; then gone-checks that found
    /// it still there.
    tries: u32,
}

impl Deleting {
    /// A deletion to start now.
    pub(super) fn new(
        instance_id: String,
        attempt_id: String,
        keypair: Option<String>,
        footprint: Footprint,
        then: AfterDelete,
    ) -> Deleting {
        Deleting {
            instance_id,
            attempt_id,
            keypair,
            footprint,
            then,
            accepted: false,
            sent_at: None,
            in_flight: false,
            next_try: Instant::now(),
            tries: 0,
        }
    }

    /// Puts the next try off by `base` doubled per earlier try, at most
    /// `max`; the wait.
    pub(super) fn retry_later(&mut self, base: Duration, max: Duration) -> Duration {
        let wait = crate::restart::backoff(base, self.tries, max);
        self.tries += 1;
        self.next_try = Instant::now() + wait;
        wait
    }
}

impl RegionState {
    /// The client asked to delete an instance whose attempt is here.
    pub(super) fn delete_asked(
        &mut self,
        myself: &ActorRef<RegionMsg>,
        instance_id: String,
        attempt: &Attempt,
    ) {
        if let Some(cancel) = self.creating.get_mut(&instance_id) {
            *cancel = true;
        } else if let Some(entry) = self.adopting.get_mut(&attempt.id) {
            entry.cancel = true;
        } else if let Some(server_id) = self
            .tracked
            .iter()
            .find(|(_, t)| t.instance_id == instance_id)
            .map(|(id, _)| id.clone())
            .or(attempt.server_id.clone())
        {
            let footprint = match self.tracked.remove(&server_id) {
                Some(t) => t.footprint,
                None => self
                    .watched
                    .remove(&server_id)
                    .map_or_else(Footprint::unknown_flavor, |w| w.footprint),
            };
            if !self.deleting.contains_key(&server_id) {
                self.start_delete(
                    server_id,
                    Deleting::new(
                        instance_id,
                        attempt.id.clone(),
                        attempt.keypair.clone(),
                        footprint,
                        AfterDelete::Deleted,
                    ),
                );
            }
        } else {
            self.outcome(&instance_id, &attempt.id, OutcomeKind::Deleted);
        }
        self.drive_deletes(myself);
    }

    /// A DELETE was answered.
    pub(super) fn delete_done(
        &mut self,
        myself: &ActorRef<RegionMsg>,
        server_id: String,
        result: Result<(), ProviderError>,
    ) {
        let gone_check_max = self.ctx.config.poll_interval.max(FIRST_GONE_CHECK);
        self.observe(result.as_ref().map(|_| ()), None);
        if let Some(d) = self.deleting.get_mut(&server_id) {
            d.in_flight = false;
            match result {
                Ok(()) => {
                    // Ask soon whether it is gone: a failed build's
                    // slot is reusable, and its instance reroutable,
                    // only then.
                    d.accepted = true;
                    d.tries = 0;
                    let wait = d.retry_later(FIRST_GONE_CHECK, gone_check_max);
                    myself.send_after(wait, || RegionMsg::DriveDeletes);
                }
                Err(error) => {
                    d.retry_later(DELETE_RETRY.0, DELETE_RETRY.1);
                    warn!(account = %self.account.name, region = %self.region, server = %server_id, %error, "delete refused; will retry");
                }
            }
        }
    }

    /// A gone-check was answered (`true`: 404), for a deleted server or a
    /// watched one suspected lost.
    pub(super) fn checked(
        &mut self,
        myself: &ActorRef<RegionMsg>,
        server_id: &str,
        result: Result<bool, ProviderError>,
    ) {
        self.observe(result.as_ref().map(drop), None);
        if self.watched.contains_key(server_id) {
            return self.lost_checked(server_id, result);
        }
        match result {
            Ok(true) => self.gone(server_id),
            Ok(false) => {
                let gone_check_max = self.ctx.config.poll_interval.max(FIRST_GONE_CHECK);
                if let Some(d) = self.deleting.get_mut(server_id) {
                    d.in_flight = false;
                    let wait = d.retry_later(FIRST_GONE_CHECK, gone_check_max);
                    myself.send_after(wait, || RegionMsg::DriveDeletes);
                }
            }
            Err(_) => {
                if let Some(d) = self.deleting.get_mut(server_id) {
                    d.in_flight = false;
                }
            }
        }
    }

    pub(super) fn failed_server(
        &mut self,
        server_id: String,
        t: Tracked,
        class: Class,
        message: String,
    ) {
        // The instance moves on at once; the server, its key pair and its
        // quota slot stay this region's until a GET says it is gone.
        self.outcome(
            &t.instance_id,
            &t.attempt_id,
            OutcomeKind::Failed { class, message },
        );
        self.start_delete(
            server_id,
            Deleting::new(
                t.instance_id,
                t.attempt_id,
                t.keypair,
                t.footprint,
                AfterDelete::Retired,
            ),
        );
    }

    /// A deleted server is confirmed gone (404): finish its deletion.
    pub(super) fn gone(&mut self, server_id: &str) {
        let Some(d) = self.deleting.remove(server_id) else {
            return;
        };
        if !self.ledger.server_gone(d.footprint, d.sent_at) {
            self.usage_stale = true;
        }
        if let (Some(keypair), Some(compute)) = (d.keypair.clone(), self.compute()) {
            spawn_delete_keypair(compute, self.pacer.clone(), keypair);
        }
        match d.then {
            AfterDelete::Deleted => {
                self.outcome(&d.instance_id, &d.attempt_id, OutcomeKind::Deleted);
            }
            AfterDelete::Retired => {
                info!(account = %self.account.name, region = %self.region, server = %server_id, "the server of a failed attempt is gone");
            }
            AfterDelete::Leak => {
                info!(account = %self.account.name, region = %self.region, server = %server_id, "leaked server collected");
            }
        }
    }

    /// Sends the DELETEs that are due, and checks accepted ones (one GET
    /// each: listings may lag, a 404 does not).
    pub(super) fn drive_deletes(&mut self, myself: &ActorRef<RegionMsg>) {
        let Some(compute) = self.compute() else {
            return;
        };
        let now = Instant::now();
        for (server_id, d) in self.deleting.iter_mut() {
            if d.in_flight || d.next_try > now {
                continue;
            }
            d.in_flight = true;
            if d.accepted {
                spawn_show(
                    compute.clone(),
                    self.pacer.clone(),
                    server_id.clone(),
                    myself.clone(),
                    |server_id, result| RegionMsg::Checked { server_id, result },
                );
            } else {
                d.sent_at = Some(now);
                spawn_delete(
                    compute.clone(),
                    self.pacer.clone(),
                    server_id.clone(),
                    myself.clone(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_checks_start_quickly_and_slow_to_the_poll_interval() {
        let mut deleting = Deleting::new(
            "i".into(),
            "a".into(),
            None,
            Footprint::default(),
            AfterDelete::Deleted,
        );
        let poll = Duration::from_secs(3);
        let waits: Vec<u64> = (0..6)
            .map(|_| deleting.retry_later(FIRST_GONE_CHECK, poll).as_millis() as u64)
            .collect();
        assert_eq!(waits, vec![250, 500, 1000, 2000, 3000, 3000]);
    }
}
