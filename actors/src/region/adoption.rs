//! Adoption: after a restart, a region rebuilds its in-flight work from
//! the store and finds the servers of attempts whose create may have
//! reached the provider, by their attempt tag. A create the dead process
//! sent has either reached Nova within its own timeout or never will, so
//! what a listing asked for after the grace period (the create call's
//! timeout and a margin, counted from the restart) does not show never
//! reached it and is rerouted.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tracing::info;

use super::deletes::{AfterDelete, Deleting};
use super::lost::Watched;
use super::{RegionState, Tracked};
use crate::ledger::Footprint;
use crate::messages::OutcomeKind;
use crate::model::InstanceState;
use crate::openstack::Server;
use crate::region_calls::spawn_delete_keypair;
use crate::store::{InstanceFilter, StoreError};

/// An attempt from before a restart whose server is not known yet.
#[derive(Debug, Clone)]
pub(super) struct Adopting {
    pub(super) instance_id: String,
    /// When the search began (the grace period counts from here).
    pub(super) since: Instant,
    /// When the attempt was written down.
    pub(super) attempt_at: DateTime<Utc>,
    /// The client asked for a delete meanwhile.
    pub(super) cancel: bool,
    /// The key pair imported for the attempt, deleted with its server.
    pub(super) keypair: Option<String>,
}

impl RegionState {
    /// Adopts, from a poll's listing asked for at `asked`, the servers of
    /// attempts from before a restart.
    pub(super) fn adopt_from(&mut self, servers: &[Server], asked: Instant) {
        let owner = self.owner();
        let attempts: Vec<String> = self.adopting.keys().cloned().collect();
        for attempt_id in attempts {
            let found = servers
                .iter()
                .find(|s| owner.may_adopt(&s.tags, &attempt_id));
            let Adopting {
                instance_id,
                since,
                attempt_at,
                cancel,
                keypair,
            } = self.adopting[&attempt_id].clone();
            match found {
                Some(server) => {
                    self.adopting.remove(&attempt_id);
                    let footprint = Footprint::unknown_flavor();
                    if cancel {
                        self.start_delete(
                            server.id.clone(),
                            Deleting::new(
                                instance_id,
                                attempt_id,
                                keypair,
                                footprint,
                                AfterDelete::Deleted,
                            ),
                        );
                        continue;
                    }
                    info!(account = %self.account.name, region = %self.region, server = %server.id, "adopted a server created before a restart");
                    self.outcome(
                        &instance_id,
                        &attempt_id,
                        OutcomeKind::Created {
                            server_id: server.id.clone(),
                            detail: Some("adopted after a restart".into()),
                        },
                    );
                    self.tracked.insert(
                        server.id.clone(),
                        Tracked {
                            instance_id,
                            attempt_id,
                            started: since,
                            attempt_at,
                            boot_timeout: Duration::from_secs(600),
                            footprint,
                            flavor_id: String::new(),
                            keypair,
                        },
                    );
                }
                // Only a listing asked for after the grace proves absence.
                None if asked.saturating_duration_since(since) > self.ctx.config.adoption_grace => {
                    self.adopting.remove(&attempt_id);
                    // Imported before a create that never came.
                    if let (Some(name), Some(compute)) = (keypair, self.compute()) {
                        spawn_delete_keypair(compute, self.pacer.clone(), name);
                    }
                    let kind = if cancel {
                        OutcomeKind::Deleted
                    } else {
                        OutcomeKind::Refused("the create never reached the provider".into())
                    };
                    self.outcome(&instance_id, &attempt_id, kind);
                }
                None => {}
            }
        }
    }

    /// Rebuilds in-flight work and the watched active servers from the
    /// store after a (re)start. An
    /// unreadable store fails the start (the supervisor retries later):
    /// a region that knew nothing would report every server as unknown.
    pub(super) fn rebuild(&mut self) -> Result<(), StoreError> {
        let filter = InstanceFilter {
            account_id: Some(self.account.id.clone()),
            region: Some(self.region.clone()),
            states: vec![
                InstanceState::Scheduled,
                InstanceState::Building,
                InstanceState::Active,
                InstanceState::Deleting,
            ],
            ..InstanceFilter::default()
        };
        let now = Instant::now();
        for instance in self.ctx.store.list_instances(&filter)? {
            let Some(attempt) = instance.attempt.clone() else {
                continue;
            };
            let age = (Utc::now() - attempt.started_at)
                .to_std()
                .unwrap_or_default();
            let since = now.checked_sub(age).unwrap_or(now);
            match (instance.state, attempt.server_id.clone()) {
                (InstanceState::Deleting, Some(server_id)) => self.start_delete(
                    server_id,
                    Deleting::new(
                        instance.id.clone(),
                        attempt.id.clone(),
                        attempt.keypair.clone(),
                        Footprint::default(),
                        AfterDelete::Deleted,
                    ),
                ),
                (InstanceState::Active, Some(server_id)) => {
                    self.watched.insert(
                        server_id,
                        Watched {
                            instance_id: instance.id.clone(),
                            attempt_id: attempt.id.clone(),
                            keypair: attempt.keypair.clone(),
                            footprint: Footprint::unknown_flavor(),
                            status: instance.provider_status.clone(),
                            suspected: None,
                            observed: Instant::now(),
                        },
                    );
                }
                (InstanceState::Active, None) => {}
                (InstanceState::Building, Some(server_id)) => {
                    let boot = self
                        .ctx
                        .store
                        .get_profile(&instance.profile)
                        .ok()
                        .flatten()
                        .map_or(600, |p| p.boot_timeout_secs);
                    self.tracked.insert(
                        server_id,
                        Tracked {
                            instance_id: instance.id.clone(),
                            attempt_id: attempt.id.clone(),
                            started: since,
                            attempt_at: attempt.started_at,
                            boot_timeout: Duration::from_secs(boot),
                            footprint: Footprint::unknown_flavor(),
                            flavor_id: String::new(),
                            keypair: attempt.keypair.clone(),
                        },
                    );
                }
                (state, _) => {
                    let cancel = state == InstanceState::Deleting;
                    self.adopting.insert(
                        attempt.id.clone(),
                        Adopting {
                            instance_id: instance.id.clone(),
                            since: now,
                            attempt_at: attempt.started_at,
                            cancel,
                            keypair: attempt.keypair.clone(),
                        },
                    );
                }
            }
        }
        Ok(())
    }
}
