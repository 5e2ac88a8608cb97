//! Lost servers: what the daemon reports as active must be what the
//! provider holds. A region watches the servers of its active instances in
//! every poll (a `changes-since` listing shows a server deleted behind our
//! back as DELETED; tags are gone by then, so that listing is not filtered
//! by tag) and in every full listing (where a server of ours is missing).
//! A listing only raises a suspicion; a GET answering 404 proves the loss,
//! as for our own deletes. A server in another status (SHUTOFF, ERROR
//! after ACTIVE) is reported as such.

use chrono::{DateTime, Utc};
use ractor::ActorRef;
use tokio::time::Instant;
use tracing::info;

use super::RegionState;
use crate::ledger::Footprint;
use crate::messages::{OutcomeKind, RegionMsg};
use crate::openstack::{ProviderError, Server};
use crate::provider_clock::ProviderClock;
use crate::region_calls::{spawn_delete_keypair, spawn_show};

/// The server of an active instance.
#[derive(Debug, Clone)]
pub(super) struct Watched {
    pub(super) instance_id: String,
    pub(super) attempt_id: String,
    pub(super) keypair: Option<String>,
    pub(super) footprint: Footprint,
    /// The provider's status when it is not ACTIVE, as last reported.
    pub(super) status: Option<String>,
    /// How the loss was suspected, while a GET is out to prove it.
    pub(super) suspected: Option<Suspicion>,
    /// When what `status` says was asked for: a listing asked earlier
    /// (a slow one, answered after a GET) is older news and says nothing.
    pub(super) observed: Instant,
}

/// Why a watched server may be gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Suspicion {
    /// A full listing of ours did not show it.
    Missing,
    /// A `changes-since` listing showed it DELETED.
    ListedDeleted,
}

impl Suspicion {
    /// How it was noticed, for the instance's timeline.
    fn how(self) -> &'static str {
        match self {
            Suspicion::Missing => "noticed by a full listing (missing from it)",
            Suspicion::ListedDeleted => "noticed by a poll (listed as DELETED)",
        }
    }
}

/// What one listing says of a watched server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Nothing new.
    Same,
    /// Maybe gone: ask for it by id.
    Suspect(Suspicion),
    /// In another status (`None`: ACTIVE again).
    Status(Option<String>),
}

/// Judges a watched server whose last reported status was `known` (`None`:
/// ACTIVE) by its status in a listing (`None`: not listed). A `full`
/// listing shows every server of ours, so a missing one is suspect; a
/// `changes-since` listing shows only what changed, so a missing one is not.
/// A listing asked for before what is known was observed (`stale`) is
/// older news: a slow listing answered after a GET must not take a server
/// back to BUILD.
pub(super) fn judge(known: Option<&str>, listed: Option<&str>, full: bool, stale: bool) -> Verdict {
    if stale {
        return Verdict::Same;
    }
    match listed {
        None if full => Verdict::Suspect(Suspicion::Missing),
        None => Verdict::Same,
        Some("DELETED") => Verdict::Suspect(Suspicion::ListedDeleted),
        Some("ACTIVE") if known.is_some() => Verdict::Status(None),
        Some("ACTIVE") => Verdict::Same,
        Some(status) if known == Some(status) => Verdict::Same,
        Some(status) => Verdict::Status(Some(status.to_owned())),
    }
}

/// What a poll asks the provider for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PollPlan {
    /// Tags every listed server carries.
    pub tags: Vec<String>,
    /// Only servers changed since then (provider's clock); all when `None`.
    pub changes_since: Option<DateTime<Utc>>,
}

impl PollPlan {
    /// Whether the listing shows every server of ours (missing = suspect).
    pub fn is_full(&self) -> bool {
        self.changes_since.is_none()
    }
}

/// Plans a poll for a region waiting on attempts started at `oldest` at
/// the earliest, watching active servers when `watching`, whose last
/// successful poll was asked at `last_poll` (our clock). A full listing,
/// filtered by our deployment tag, when one is owed (after a start) or the
/// provider's clock is unknown; otherwise changes since the earlier of the
/// two, unfiltered when watching (deleted servers lose their tags).
pub(super) fn plan_poll(
    oldest: Option<DateTime<Utc>>,
    watching: bool,
    last_poll: Option<DateTime<Utc>>,
    full_owed: bool,
    clock: &ProviderClock,
    deployment_tag: String,
) -> PollPlan {
    let full = PollPlan {
        tags: vec![deployment_tag.clone()],
        changes_since: None,
    };
    if full_owed {
        return full;
    }
    let since = match (oldest, watching.then_some(last_poll)) {
        (_, Some(None)) => return full,
        (Some(a), Some(Some(b))) => a.min(b),
        (Some(a), None) => a,
        (None, Some(Some(b))) => b,
        (None, None) => return full,
    };
    match clock.changes_since(since) {
        None => full,
        Some(at) => PollPlan {
            tags: if watching {
                Vec::new()
            } else {
                vec![deployment_tag]
            },
            changes_since: Some(at),
        },
    }
}

impl RegionState {
    /// Compares what a listing asked for at `asked` shows with the
    /// watched servers.
    pub(super) fn watch_listing(
        &mut self,
        myself: &ActorRef<RegionMsg>,
        servers: &[Server],
        full: bool,
        asked: Instant,
    ) {
        let listed: std::collections::HashMap<&str, &Server> =
            servers.iter().map(|s| (s.id.as_str(), s)).collect();
        let mut suspects = Vec::new();
        let mut changed = Vec::new();
        for (id, w) in self.watched.iter_mut() {
            let server = listed.get(id.as_str());
            let status = server.map(|s| s.status.as_str());
            match judge(w.status.as_deref(), status, full, w.observed > asked) {
                Verdict::Same => {}
                Verdict::Suspect(why) => {
                    if w.suspected.is_none() {
                        w.suspected = Some(why);
                        suspects.push(id.clone());
                    }
                }
                Verdict::Status(status) => {
                    let detail = server
                        .and_then(|s| s.fault.as_ref())
                        .map(|f| f.message.clone());
                    info!(account = %self.account.name, region = %self.region, server = %id, status = status.as_deref().unwrap_or("ACTIVE"), "active server changed status at the provider");
                    w.status = status.clone();
                    w.observed = asked;
                    changed.push((
                        w.instance_id.clone(),
                        w.attempt_id.clone(),
                        OutcomeKind::ProviderStatus { status, detail },
                    ));
                }
            }
        }
        for (instance_id, attempt_id, kind) in changed {
            self.outcome(&instance_id, &attempt_id, kind);
        }
        let Some(compute) = self.compute() else {
            return;
        };
        for id in suspects {
            spawn_show(
                compute.clone(),
                self.pacer.clone(),
                id,
                myself.clone(),
                |server_id, result| RegionMsg::Checked { server_id, result },
            );
        }
    }

    /// Whether a suspected server is gone came back (`true`: 404 or
    /// DELETED).
    pub(super) fn lost_checked(&mut self, server_id: &str, result: Result<bool, ProviderError>) {
        let Some(w) = self.watched.get_mut(server_id) else {
            return;
        };
        let suspicion = w.suspected.take();
        if !matches!(result, Ok(true)) {
            // Still there, or unknown: the next listing judges again.
            return;
        }
        let w = self.watched.remove(server_id).expect("watched");
        if !self.ledger.server_gone(w.footprint, None) {
            self.usage_stale = true;
        }
        if let (Some(keypair), Some(compute)) = (w.keypair, self.compute()) {
            spawn_delete_keypair(compute, self.pacer.clone(), keypair);
        }
        let how = suspicion.map_or("noticed", Suspicion::how);
        self.outcome(
            &w.instance_id,
            &w.attempt_id,
            OutcomeKind::Lost {
                how: format!("{how}, confirmed by a 404 from {}", self.label()),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_suspects_only_what_it_would_show() {
        // A changes-since listing leaves out what did not change.
        assert_eq!(judge(None, None, false, false), Verdict::Same);
        assert_eq!(
            judge(None, None, true, false),
            Verdict::Suspect(Suspicion::Missing)
        );
        assert_eq!(
            judge(None, Some("DELETED"), false, false),
            Verdict::Suspect(Suspicion::ListedDeleted)
        );
        assert_eq!(
            judge(Some("SHUTOFF"), Some("DELETED"), true, false),
            Verdict::Suspect(Suspicion::ListedDeleted)
        );
    }

    #[test]
    fn a_listing_older_than_what_is_known_says_nothing() {
        // A GET saw the server ACTIVE after a slow listing was asked for
        // that still shows it building.
        assert_eq!(judge(None, Some("BUILD"), false, true), Verdict::Same);
        assert_eq!(judge(None, None, true, true), Verdict::Same);
        assert_eq!(
            judge(None, Some("BUILD"), false, false),
            Verdict::Status(Some("BUILD".into()))
        );
    }

    #[test]
    fn status_changes_are_reported_once_each_way() {
        assert_eq!(judge(None, Some("ACTIVE"), false, false), Verdict::Same);
        assert_eq!(
            judge(None, Some("SHUTOFF"), false, false),
            Verdict::Status(Some("SHUTOFF".into()))
        );
        assert_eq!(
            judge(Some("SHUTOFF"), Some("SHUTOFF"), true, false),
            Verdict::Same
        );
        assert_eq!(
            judge(Some("SHUTOFF"), Some("ERROR"), true, false),
            Verdict::Status(Some("ERROR".into()))
        );
        assert_eq!(
            judge(Some("ERROR"), Some("ACTIVE"), false, false),
            Verdict::Status(None)
        );
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn known_clock() -> ProviderClock {
        let mut clock = ProviderClock::default();
        clock.observe(Some(at("2026-12-01T10:00:00Z")), at("2026-12-01T10:00:00Z"));
        clock
    }

    #[test]
    fn watching_polls_changes_since_the_last_poll_without_a_tag_filter() {
        let plan = plan_poll(
            None,
            true,
            Some(at("2026-12-01T10:00:30Z")),
            false,
            &known_clock(),
            "oms-d".into(),
        );
        assert!(plan.tags.is_empty(), "deleted servers have lost their tags");
        assert_eq!(plan.changes_since, Some(at("2026-12-01T10:00:25Z")));
        // The older of the two cursors wins.
        let plan = plan_poll(
            Some(at("2026-12-01T10:00:10Z")),
            true,
            Some(at("2026-12-01T10:00:30Z")),
            false,
            &known_clock(),
            "oms-d".into(),
        );
        assert_eq!(plan.changes_since, Some(at("2026-12-01T10:00:05Z")));
    }

    #[test]
    fn building_only_polls_by_tag_since_the_oldest_attempt() {
        let plan = plan_poll(
            Some(at("2026-12-01T10:00:10Z")),
            false,
            None,
            false,
            &known_clock(),
            "oms-d".into(),
        );
        assert_eq!(plan.tags, vec!["oms-d".to_owned()]);
        assert_eq!(plan.changes_since, Some(at("2026-12-01T10:00:05Z")));
    }

    #[test]
    fn a_full_listing_after_a_start_or_before_the_clock_is_known() {
        let owed = plan_poll(
            Some(at("2026-12-01T10:00:10Z")),
            true,
            Some(at("2026-12-01T10:00:30Z")),
            true,
            &known_clock(),
            "oms-d".into(),
        );
        assert!(owed.is_full());
        assert_eq!(owed.tags, vec!["oms-d".to_owned()]);
        let never_polled = plan_poll(None, true, None, false, &known_clock(), "oms-d".into());
        assert!(never_polled.is_full());
        let unknown_clock = plan_poll(
            Some(at("2026-12-01T10:00:10Z")),
            false,
            None,
            false,
            &ProviderClock::default(),
            "oms-d".into(),
        );
        assert!(unknown_clock.is_full());
    }
}
