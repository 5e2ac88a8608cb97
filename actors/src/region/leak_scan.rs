//! Leak scan: every so often a region lists the servers and key pairs
//! that are provably this deployment's and this account's, and deletes
//! those no live instance accounts for, on a second sighting after a
//! grace period ([`crate::leaks::LeakWatch`]).

use std::collections::HashSet;

use tokio::time::Instant;
use tracing::warn;

use super::RegionState;
use super::deletes::{AfterDelete, Deleting};
use crate::leaks::Sighting;
use crate::ledger::Footprint;
use crate::messages::Step;
use crate::openstack::Server;
use crate::region_calls::spawn_delete_keypair;
use crate::store::{InstanceFilter, StoreError};

impl RegionState {
    /// Attempts a live instance accounts for in this region. A store that
    /// cannot be read is an error, never an empty set: an empty set would
    /// make every server of ours look leaked.
    pub(super) fn known_attempts(&self) -> Result<HashSet<String>, StoreError> {
        let filter = InstanceFilter {
            account_id: Some(self.account.id.clone()),
            region: Some(self.region.clone()),
            ..InstanceFilter::live()
        };
        let mut known: HashSet<String> = self
            .ctx
            .store
            .list_instances(&filter)?
            .into_iter()
            .filter_map(|i| i.attempt.map(|a| a.id))
            .collect();
        known.extend(self.adopting.keys().cloned());
        known.extend(self.tracked.values().map(|t| t.attempt_id.clone()));
        known.extend(self.deleting.values().map(|d| d.attempt_id.clone()));
        Ok(known)
    }

    /// Collects what a leak scan found unaccounted for, twice. Only what
    /// is provably this deployment's and this account's is looked at.
    pub(super) fn leak_scan(&mut self, servers: Vec<Server>, keypairs: Vec<String>) {
        // The store is read after the listing: a create that finished in
        // between is known by its attempt already.
        let known_attempts = match self.known_attempts() {
            Ok(known) => known,
            Err(error) => {
                warn!(account = %self.account.name, region = %self.region, %error, "store unreadable; leak scan skipped");
                self.ctx.skipped(Step::LeakScan);
                return;
            }
        };
        let owner = self.owner();
        let mut seen: Vec<Sighting> = servers
            .iter()
            .filter_map(|s| {
                let attempt = owner.server_attempt(&s.tags)?;
                Some(Sighting::Server {
                    id: s.id.clone(),
                    attempt,
                })
            })
            .collect();
        seen.extend(keypairs.into_iter().filter_map(|name| {
            let attempt = owner.keypair_attempt(&name)?;
            Some(Sighting::Keypair { name, attempt })
        }));
        let tracked = &self.tracked;
        let deleting = &self.deleting;
        let known = |s: &Sighting| match s {
            Sighting::Server { id, attempt } => {
                tracked.contains_key(id)
                    || deleting.contains_key(id)
                    || attempt.as_ref().is_some_and(|a| known_attempts.contains(a))
            }
            // A key pair imported for a create in flight belongs to an
            // attempt the store already has as scheduled.
            // And one whose failed server this region is still deleting.
            Sighting::Keypair { attempt, .. } => {
                known_attempts.contains(attempt)
                    || deleting.values().any(|d| d.attempt_id == *attempt)
            }
        };
        let leaks = self
            .leaks
            .scan(seen, known, Instant::now(), self.ctx.config.leak_grace);
        for leak in leaks {
            match leak {
                Sighting::Server { id, attempt } => {
                    warn!(account = %self.account.name, region = %self.region, server = %id, "server of ours unknown to the store; deleting");
                    let keypair = attempt.as_deref().map(|a| owner.keypair_name(a));
                    self.start_delete(
                        id,
                        Deleting::new(
                            String::new(),
                            attempt.unwrap_or_default(),
                            keypair,
                            Footprint::default(),
                            AfterDelete::Leak,
                        ),
                    );
                }
                Sighting::Keypair { name, .. } => {
                    warn!(account = %self.account.name, region = %self.region, keypair = %name, "key pair of ours unknown to the store; deleting");
                    if let Some(compute) = self.compute() {
                        spawn_delete_keypair(compute, self.pacer.clone(), name);
                    }
                }
            }
        }
    }
}
