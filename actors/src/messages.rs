//! Messages between the actors, and the context they share.

use std::sync::Arc;
use std::time::Duration;

use ractor::RpcReplyPort;

use crate::breaker::BreakerConfig;
use crate::model::{Attempt, Instance, LaunchRequest};
use crate::openstack::{Class, Client, ClientConfig, ProviderError, Server, ServerListing};
use crate::placement::Policy;
use crate::restart::RestartPolicy;
use crate::status::RegionBoard;
use crate::store::Store;

/// Tunables of the actor tree; the defaults suit real clouds, tests shorten
/// them.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// This deployment's id: its servers are tagged `oms-<daemon id>` and
    /// its key pairs named after it ([`crate::ownership`]).
    pub daemon_id: String,
    /// How often a region lists its building and deleting servers.
    pub poll_interval: Duration,
    /// How often a region refreshes limits, flavors and images.
    pub refresh_interval: Duration,
    /// How often the dispatcher looks at waiting instances and deadlines.
    pub dispatch_interval: Duration,
    /// How often expired leases are looked for.
    pub lease_interval: Duration,
    /// How long finished instances (and their events) are kept.
    pub retention: Duration,
    /// How often what is past its retention is purged.
    pub purge_interval: Duration,
    /// How long a failed region is avoided by the instance that failed there.
    pub reroute_backoff: Duration,
    /// How long a flavor that failed to build is avoided in its region.
    pub flavor_not_now: Duration,
    /// How long after a restart a region looks for the server of an
    /// attempt whose create may or may not have reached the provider
    /// before deciding it did not: a create sent before the crash reached
    /// Nova within its own timeout or never will, so the create call's
    /// timeout and a margin.
    pub adoption_grace: Duration,
    /// How often each region looks for leaked servers and key pairs.
    pub leak_interval: Duration,
    /// How long something unknown must stay before it is collected.
    pub leak_grace: Duration,
    /// How long a recovered region keeps showing its last error.
    pub last_error_memory: Duration,
    /// Circuit breaker thresholds.
    pub breaker: BreakerConfig,
    /// Restart backoff and intensity of every supervisor.
    pub restart: RestartPolicy,
    /// How often supervisors ask children whether they are alive.
    pub probe_interval: Duration,
    /// How long a child may take to answer.
    pub probe_timeout: Duration,
    /// Timeouts and limits of provider calls.
    pub client: ClientConfig,
    /// Deadline of a request that does not say.
    pub default_deadline: Duration,
    /// Attempts per instance when a request does not say.
    pub default_max_attempts: u32,
    /// How instances are placed (the naive policy is for benchmarks).
    pub policy: Policy,
    /// How often each region's status is sampled into its history.
    pub history_interval: Duration,
    /// Samples kept per region (with the interval: how far back).
    pub history_samples: usize,
    /// Closes provider calls when a cluster leader's lease may have ended.
    pub fence: crate::fence::Fence,
    /// Start without the dispatcher, the reconciler and the account
    /// supervisors, until [`crate::Fleet::lead`]: a cluster follower,
    /// which serves reads from the shared store.
    pub standby: bool,
}

/// What adoption waits beyond a create call's timeout: Nova finishing a
/// request its client has given up on, and the listing that shows it.
pub const ADOPTION_MARGIN: Duration = Duration::from_secs(5);

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            daemon_id: crate::model::new_id()[..12].to_owned(),
            poll_interval: Duration::from_secs(3),
            refresh_interval: Duration::from_secs(20),
            dispatch_interval: Duration::from_secs(1),
            lease_interval: Duration::from_secs(5),
            retention: Duration::from_secs(30 * 24 * 3600),
            purge_interval: Duration::from_secs(3600),
            reroute_backoff: Duration::from_secs(30),
            flavor_not_now: Duration::from_secs(300),
            adoption_grace: ClientConfig::default().request_timeout + ADOPTION_MARGIN,
            leak_interval: Duration::from_secs(60),
            leak_grace: Duration::from_secs(120),
            last_error_memory: Duration::from_secs(60),
            breaker: BreakerConfig::default(),
            restart: RestartPolicy::default(),
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(5),
            client: ClientConfig::default(),
            default_deadline: Duration::from_secs(30 * 60),
            default_max_attempts: 10,
            policy: Policy::Pooled,
            // Three hours at ten seconds.
            history_interval: Duration::from_secs(10),
            history_samples: 1080,
            fence: crate::fence::Fence::open(),
            standby: false,
        }
    }
}

/// What happened to launches, for metrics; sent on a broadcast channel
/// that readers may lag on without slowing the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum FleetEvent {
    /// An instance became active this long after it was accepted.
    Active {
        /// Seconds from acceptance to active.
        seconds: f64,
    },
    /// An instance ended failed.
    Failed,
    /// An active instance's server vanished at the provider.
    Lost {
        /// Whether it is placed again.
        replaced: bool,
    },
    /// An instance was scheduled again: an earlier attempt failed, was
    /// refused, or its server was lost.
    Rerouted,
    /// One attempt failed with this class.
    AttemptFailed {
        /// The failure class.
        class: Class,
    },
    /// A step was skipped because the store could not be read (fail
    /// closed: it never runs as if nothing were known).
    Skipped {
        /// Which step.
        step: Step,
    },
}

/// Housekeeping steps that need the store to decide anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Collecting leaked servers and key pairs.
    LeakScan,
    /// Rebuilding a region's in-flight work after a start.
    Rebuild,
    /// Ending expired leases.
    Leases,
    /// Purging finished instances past their retention.
    Purge,
}

impl Step {
    /// Stable name, for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::LeakScan => "leak_scan",
            Step::Rebuild => "rebuild",
            Step::Leases => "leases",
            Step::Purge => "purge",
        }
    }
}

/// Registry names, prefixed per fleet so several fleets can share a
/// process (tests).
#[derive(Debug, Clone)]
pub(crate) struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: String) -> Names {
        Names { prefix }
    }
    pub fn root(&self) -> String {
        format!("{}/root", self.prefix)
    }
    pub fn dispatcher(&self) -> String {
        format!("{}/dispatcher", self.prefix)
    }
    pub fn reconciler(&self) -> String {
        format!("{}/reconciler", self.prefix)
    }
    pub fn account(&self, account_id: &str) -> String {
        format!("{}/account/{account_id}", self.prefix)
    }
    pub fn region(&self, account_id: &str, region: &str) -> String {
        format!("{}/region/{account_id}/{region}", self.prefix)
    }
}

/// What every actor of one fleet shares.
#[derive(Debug, Clone)]
pub(crate) struct FleetCtx {
    pub store: Arc<dyn Store>,
    pub board: RegionBoard,
    pub accounts: crate::status::AccountBoard,
    pub claims: crate::one_project::ProjectClaims,
    pub config: Arc<FleetConfig>,
    pub client: Client,
    pub names: Names,
    pub events: tokio::sync::broadcast::Sender<FleetEvent>,
}

impl FleetCtx {
    /// Who owns what `account_id` creates for this deployment.
    pub fn owner(&self, account_id: &str) -> crate::ownership::Owner {
        crate::ownership::Owner::new(&self.config.daemon_id, account_id)
    }

    /// Tells metrics a step was skipped on a store error.
    pub fn skipped(&self, step: Step) {
        let _ = self.events.send(FleetEvent::Skipped { step });
    }

    pub fn dispatcher(&self) -> Option<ractor::ActorRef<DispatcherMsg>> {
        ractor::registry::where_is(self.names.dispatcher()).map(Into::into)
    }

    pub fn region(&self, account_id: &str, region: &str) -> Option<ractor::ActorRef<RegionMsg>> {
        ractor::registry::where_is(self.names.region(account_id, region)).map(Into::into)
    }

    /// Tells the dispatcher; if it is restarting, the store has the truth
    /// and it rebuilds from there.
    pub fn tell_dispatcher(&self, message: DispatcherMsg) {
        if let Some(dispatcher) = self.dispatcher() {
            let _ = dispatcher.send_message(message);
        }
    }
}

/// Deliberate failures, to prove supervision (tests only call these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chaos {
    /// Panic in the handler.
    Panic,
    /// Stop answering (sleep for an hour in the handler).
    Hang,
}

/// Messages of the dispatcher.
#[derive(Debug)]
pub(crate) enum DispatcherMsg {
    /// A request was stored; queue its instances.
    Submit { request_id: String },
    /// A client wants an instance gone.
    Delete {
        instance_id: String,
        reply: RpcReplyPort<()>,
    },
    /// Something happened to an attempt.
    Outcome(Outcome),
    /// A region changed; capacity may have freed.
    Wake,
    /// Run a placement pass now.
    Pass,
    /// Periodic: deadlines and retries.
    Tick,
    /// Liveness probe.
    Ping(RpcReplyPort<()>),
    /// Deliberate failure.
    Chaos(Chaos),
}

/// An attempt's result, from a region actor.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub instance_id: String,
    pub attempt_id: String,
    pub kind: OutcomeKind,
}

/// What happened.
#[derive(Debug, Clone)]
pub(crate) enum OutcomeKind {
    /// The region would not try (no room, breaker open, ...): nothing was
    /// sent to the provider.
    Refused(String),
    /// The provider accepted the create.
    Created {
        server_id: String,
        /// Where the time to this went (the provider's answers, the call
        /// budget), for the timeline.
        detail: Option<String>,
    },
    /// The server is ACTIVE.
    Active { address: Option<String> },
    /// The attempt failed; its server, if any, is confirmed gone.
    Failed { class: Class, message: String },
    /// The instance's server is confirmed gone after a client's delete.
    Deleted,
    /// An active instance's server is confirmed gone although nobody here
    /// deleted it; `how` says how it was noticed.
    Lost { how: String },
    /// An active instance's server is in another status at the provider
    /// (`None`: ACTIVE again).
    ProviderStatus {
        status: Option<String>,
        detail: Option<String>,
    },
}

/// A launch for a region: the instance (with its attempt, already
/// durable) and its request.
#[derive(Debug, Clone)]
pub(crate) struct LaunchOrder {
    pub instance: Instance,
    pub request: Arc<LaunchRequest>,
    /// The profile's boot timeout when the attempt was scheduled.
    pub boot_timeout: Duration,
}

/// Messages of a region actor.
#[derive(Debug)]
pub(crate) enum RegionMsg {
    /// Create this instance's server.
    Launch(Box<LaunchOrder>),
    /// Delete this instance's server.
    Delete {
        instance_id: String,
        attempt: Attempt,
    },
    /// A create task finished.
    CreateDone(Box<crate::region_calls::CreateDone>),
    /// Time to list servers.
    PollTick,
    /// Time to ask for the few building servers one by one.
    BuildTick,
    /// What a GET said of a building server (`None`: 404).
    BuildSeen {
        server_id: String,
        result: Result<Option<Server>, ProviderError>,
    },
    /// Send the deletes and gone-checks that are due.
    DriveDeletes,
    /// The listing came back.
    PollDone(
        Result<ServerListing, ProviderError>,
        crate::region_calls::PollAsked,
    ),
    /// Time to refresh limits; `full` also re-reads flavors, images and
    /// profiles.
    Refresh { full: bool },
    /// The refresh came back.
    Refreshed(Box<crate::region_calls::Refreshed>),
    /// A delete call finished.
    DeleteDone {
        server_id: String,
        result: Result<(), ProviderError>,
    },
    /// Time to look for leaks.
    LeakTick,
    /// The leak scan, its listing asked for at the instant, came back: our
    /// servers and key pairs.
    LeakScanned(
        Result<(Vec<Server>, Vec<String>), ProviderError>,
        tokio::time::Instant,
    ),
    /// Whether a deleted server is gone came back.
    Checked {
        server_id: String,
        result: Result<Option<Server>, ProviderError>,
    },
    /// Liveness probe.
    Ping(RpcReplyPort<()>),
    /// Deliberate failure.
    Chaos(Chaos),
}
