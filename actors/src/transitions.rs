//! Transitions: what the dispatcher does with a region's news of an
//! attempt, decided by one pure function of the news, the instance's state
//! and the placement policy. The dispatcher's actor file only carries the
//! decision out (store, events, queue).

use std::time::Duration;

use crate::messages::OutcomeKind;
use crate::model::InstanceState;
use crate::openstack::Class;
use crate::placement::Policy;

/// How long a region is kept from an instance that failed there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exclusion {
    /// Not at all: the failure says nothing about the region (quota, 429).
    None,
    /// Avoided for a while: used only when nothing else has room.
    For(Duration),
    /// Never again for this instance (a bad request there will repeat).
    Always,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Transition {
    /// Nothing: the news changes nothing (an older state, a duplicate).
    Ignore,
    /// The provider accepted the create: building (or still deleting).
    Created {
        server_id: String,
        detail: Option<String>,
        deleting: bool,
    },
    /// Active, with its address.
    Active { address: Option<String> },
    /// Its active server vanished at the provider.
    Lost { how: String },
    /// Its active server is in another status at the provider.
    ProviderStatus {
        status: Option<String>,
        detail: Option<String>,
    },
    /// Its server is gone after a delete; `why` for the timeline.
    Deleted { why: &'static str },
    /// Back to the queue.
    Retry {
        why: String,
        exclusion: Exclusion,
        /// The attempt does not count (nothing reached the provider, or
        /// the provider only asked us to wait).
        refund: bool,
        /// A refusal by the region itself: it is not offered the instance
        /// again until what it publishes changes ([`crate::refusals`]).
        refused: bool,
        /// The failure class, for metrics.
        class: Option<Class>,
    },
}

/// How an event of a failed attempt begins.
pub const ATTEMPT_FAILED: &str = "attempt failed";
/// How an event of a refused attempt begins.
pub const REGION_REFUSED: &str = "region refused";

/// Decides what `kind` means for an instance in `state`.
pub(crate) fn decide(
    kind: OutcomeKind,
    state: InstanceState,
    policy: Policy,
    reroute_backoff: Duration,
) -> Transition {
    let deleting = state == InstanceState::Deleting;
    match kind {
        OutcomeKind::Created { server_id, detail } => Transition::Created {
            server_id,
            detail,
            deleting,
        },
        OutcomeKind::Active { .. } if deleting => Transition::Ignore,
        OutcomeKind::Active { address } => Transition::Active { address },
        OutcomeKind::Lost { how } if state == InstanceState::Active => Transition::Lost { how },
        OutcomeKind::ProviderStatus { status, detail } if state == InstanceState::Active => {
            Transition::ProviderStatus { status, detail }
        }
        OutcomeKind::Lost { .. } | OutcomeKind::ProviderStatus { .. } => Transition::Ignore,
        OutcomeKind::Deleted => Transition::Deleted {
            why: "server deleted",
        },
        // The client deleted it meanwhile; nothing is left there.
        OutcomeKind::Refused(_) | OutcomeKind::Failed { .. } if deleting => Transition::Deleted {
            why: "deleted before it was built",
        },
        OutcomeKind::Refused(reason) => Transition::Retry {
            why: format!("{REGION_REFUSED}: {reason}"),
            exclusion: Exclusion::None,
            refund: true,
            // The naive policy just waits for the region.
            refused: policy == Policy::Pooled,
            class: None,
        },
        OutcomeKind::Failed { class, message } => Transition::Retry {
            why: format!("{ATTEMPT_FAILED}: {message}"),
            exclusion: match (policy, class) {
                // The naive strategy moves on after any error.
                (Policy::Naive, _) | (_, Class::BadRequest) => Exclusion::Always,
                (_, Class::Quota | Class::RateLimited) => Exclusion::None,
                _ => Exclusion::For(reroute_backoff),
            },
            // A 429 created nothing: it does not use up an attempt.
            refund: class == Class::RateLimited,
            refused: false,
            class: Some(class),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Duration = Duration::from_secs(30);

    fn failed(class: Class) -> OutcomeKind {
        OutcomeKind::Failed {
            class,
            message: format!("{class}"),
        }
    }

    fn retry(t: Transition) -> (Exclusion, bool, bool) {
        match t {
            Transition::Retry {
                exclusion,
                refund,
                refused,
                ..
            } => (exclusion, refund, refused),
            other => panic!("not a retry: {other:?}"),
        }
    }

    #[test]
    fn failures_reroute_as_the_failure_semantics_table_says() {
        let pooled = |class| {
            retry(decide(
                failed(class),
                InstanceState::Scheduled,
                Policy::Pooled,
                BACKOFF,
            ))
        };
        // Quota: rerouted, no penalty; the region stays usable.
        assert_eq!(pooled(Class::Quota), (Exclusion::None, false, false));
        // 429: retried here, the attempt refunded.
        assert_eq!(pooled(Class::RateLimited), (Exclusion::None, true, false));
        // Bad request: never that region again for this instance.
        assert_eq!(pooled(Class::BadRequest), (Exclusion::Always, false, false));
        // The provider unwell or builds failing: avoided for a while.
        for class in [
            Class::ServerError,
            Class::Transport,
            Class::Unauthorized,
            Class::BuildFailed,
            Class::BuildTimeout,
        ] {
            assert_eq!(pooled(class), (Exclusion::For(BACKOFF), false, false));
        }
    }

    #[test]
    fn the_naive_policy_moves_on_after_any_error_and_waits_out_refusals() {
        let naive = retry(decide(
            failed(Class::Quota),
            InstanceState::Building,
            Policy::Naive,
            BACKOFF,
        ));
        assert_eq!(naive, (Exclusion::Always, false, false));
        let refused = retry(decide(
            OutcomeKind::Refused("too many creates in flight".into()),
            InstanceState::Scheduled,
            Policy::Naive,
            BACKOFF,
        ));
        assert_eq!(refused, (Exclusion::None, true, false));
    }

    #[test]
    fn a_refusal_costs_no_attempt_and_blocks_the_region() {
        let t = decide(
            OutcomeKind::Refused("circuit breaker open".into()),
            InstanceState::Scheduled,
            Policy::Pooled,
            BACKOFF,
        );
        assert_eq!(retry(t), (Exclusion::None, true, true));
    }

    #[test]
    fn news_for_a_deleting_instance_ends_it_deleted() {
        for kind in [
            failed(Class::BuildFailed),
            OutcomeKind::Refused("no quota left".into()),
        ] {
            assert_eq!(
                decide(kind, InstanceState::Deleting, Policy::Pooled, BACKOFF),
                Transition::Deleted {
                    why: "deleted before it was built"
                }
            );
        }
        assert_eq!(
            decide(
                OutcomeKind::Active { address: None },
                InstanceState::Deleting,
                Policy::Pooled,
                BACKOFF
            ),
            Transition::Ignore
        );
        assert_eq!(
            decide(
                OutcomeKind::Created {
                    server_id: "s".into(),
                    detail: None,
                },
                InstanceState::Deleting,
                Policy::Pooled,
                BACKOFF
            ),
            Transition::Created {
                server_id: "s".into(),
                detail: None,
                deleting: true
            }
        );
    }

    #[test]
    fn only_an_active_instance_can_be_lost_or_change_status() {
        let lost = || OutcomeKind::Lost { how: "404".into() };
        assert_eq!(
            decide(lost(), InstanceState::Active, Policy::Pooled, BACKOFF),
            Transition::Lost { how: "404".into() }
        );
        for state in [
            InstanceState::Deleting,
            InstanceState::Deleted,
            InstanceState::Building,
        ] {
            assert_eq!(
                decide(lost(), state, Policy::Pooled, BACKOFF),
                Transition::Ignore
            );
            assert_eq!(
                decide(
                    OutcomeKind::ProviderStatus {
                        status: Some("SHUTOFF".into()),
                        detail: None
                    },
                    state,
                    Policy::Pooled,
                    BACKOFF
                ),
                Transition::Ignore
            );
        }
    }
}
