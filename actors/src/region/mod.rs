//! RegionActor: the only thing that talks to one account-region. It owns
//! the breaker, the quota ledger, the pacer and the "not now" memory; it
//! creates, polls (one listing per tick for all its servers) and deletes,
//! and publishes a status snapshot after every change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;
use tracing::{debug, info, warn};

mod adoption;
mod build_watch;
mod deletes;
mod leak_scan;
mod lost;

use adoption::Adopting;
use deletes::{AfterDelete, Deleting};
pub(crate) use lost::PollPlan;
use lost::{Watched, plan_poll};

use crate::breaker::{Breaker, BreakerState, Permit};
use crate::leaks::LeakWatch;
use crate::ledger::{Footprint, Ledger};
use crate::messages::{
    Chaos, DispatcherMsg, FleetCtx, LaunchOrder, Outcome, OutcomeKind, RegionMsg,
};
use crate::model::{Account, Profile};
use crate::openstack::{Class, ComputeClient, ImageClient, ProviderError, Server, Session};
use crate::ownership::Owner;
use crate::pacer::Pacer;
use crate::placement::Policy;
use crate::profiles::{Resolved, resolve};
use crate::provider_clock::ProviderClock;
use crate::region_calls::{
    CreateJob, Refreshed, spawn_create, spawn_delete_keypair, spawn_leak_scan, spawn_poll,
    spawn_refresh,
};
use crate::status::{ProfileFit, RegionStatus};

/// Every how many refreshes flavors and images are read again.
const FULL_REFRESH_EVERY: u64 = 10;
/// Weight of the newest sample in the moving averages.
const EWMA: f64 = 0.2;

/// The actor.
pub(crate) struct RegionActor;

/// What it starts from.
pub(crate) struct RegionArgs {
    pub ctx: FleetCtx,
    pub account: Account,
    pub region: String,
    pub session: Arc<Session>,
    /// Why it takes no launches: another account holds its project.
    pub conflict: Option<String>,
}

#[derive(Debug)]
struct Tracked {
    instance_id: String,
    attempt_id: String,
    started: Instant,
    /// When its attempt was written down: the server changed after that.
    attempt_at: DateTime<Utc>,
    boot_timeout: Duration,
    footprint: Footprint,
    flavor_id: String,
    /// The key pair imported for its attempt, deleted with its server.
    keypair: Option<String>,
}

/// The actor's state.
pub(crate) struct RegionState {
    ctx: FleetCtx,
    account: Account,
    region: String,
    session: Arc<Session>,
    conflict: Option<String>,
    clients: Option<(ComputeClient, ImageClient)>,
    breaker: Breaker,
    /// Whether the breaker is closed, for creates already queued behind
    /// the pacer: when the region went down meanwhile they are held back
    /// rather than sent into it.
    calls_open: Arc<AtomicBool>,
    ledger: Ledger,
    pacer: Pacer,
    profiles: BTreeMap<String, Profile>,
    resolved: BTreeMap<String, Result<Resolved, String>>,
    /// The shapes of the flavors last read.
    flavors: Option<Arc<[crate::status::FlavorShape]>>,
    flavor_not_now: HashMap<String, Instant>,
    /// Creates in flight: instance id → cancel requested.
    creating: HashMap<String, bool>,
    tracked: HashMap<String, Tracked>,
    /// Per-server checks of the building servers, while they are few.
    builds: build_watch::BuildWatch,
    /// Attempts from before a restart whose server is not known yet, by
    /// attempt id.
    adopting: HashMap<String, Adopting>,
    /// The servers of active instances, by server id.
    watched: HashMap<String, Watched>,
    /// When the last successful poll was asked (our clock): a watching
    /// poll asks for changes since then.
    last_poll: Option<DateTime<Utc>>,
    /// A full listing is owed (after a start: changes made while nobody
    /// watched are in no `changes-since` window).
    full_poll_owed: bool,
    /// The provider's clock, for the poll's `changes-since`.
    clock: ProviderClock,
    deleting: HashMap<String, Deleting>,
    polling: bool,
    refreshing: bool,
    scanning: bool,
    leaks: LeakWatch,
    /// A full refresh is owed.
    want_full: bool,
    /// A server went that the last usage report may or may not have
    /// counted: ask Nova again rather than guess.
    usage_stale: bool,
    /// Provider calls failed, by class, since the actor started.
    calls_failed: BTreeMap<&'static str, u64>,
    refreshes: u64,
    latency_ms: f64,
    error_rate: f64,
    /// The last failed call's error, and when (our clock).
    last_error: Option<(String, DateTime<Utc>)>,
    /// Since when every call fails: set by the first failure that says the
    /// provider is unwell, cleared by the next success.
    failing_since: Option<DateTime<Utc>>,
    launches_seen: u64,
}

impl RegionState {
    fn compute(&self) -> Option<ComputeClient> {
        self.clients.as_ref().map(|(c, _)| c.clone())
    }

    /// Who owns what this account-region creates.
    fn owner(&self) -> Owner {
        self.ctx.owner(&self.account.id)
    }

    fn label(&self) -> String {
        format!("{}/{}", self.account.name, self.region)
    }

    fn outcome(&self, instance_id: &str, attempt_id: &str, kind: OutcomeKind) {
        self.ctx.tell_dispatcher(DispatcherMsg::Outcome(Outcome {
            instance_id: instance_id.to_owned(),
            attempt_id: attempt_id.to_owned(),
            kind,
        }));
    }

    /// Feeds one call's outcome to the breaker, the pacer and the averages.
    /// `elapsed` is `None` for calls whose duration was not measured; they
    /// leave the latency average alone. True when the call failed exactly
    /// as the calls before it: every probe of a region that is down does,
    /// and that is worth one warning, not one a second.
    fn observe(&mut self, result: Result<(), &ProviderError>, elapsed: Option<Duration>) -> bool {
        let now = Instant::now();
        let class = result.map_or_else(|e| e.class, |()| Class::Ok);
        if let Some(elapsed) = elapsed {
            self.latency_ms =
                self.latency_ms * (1.0 - EWMA) + elapsed.as_secs_f64() * 1000.0 * EWMA;
        }
        let failed = if class.counts_against_health() {
            1.0
        } else {
            0.0
        };
        self.error_rate = self.error_rate * (1.0 - EWMA) + failed * EWMA;
        let wall = Utc::now();
        let mut repeat = false;
        if let Err(e) = result {
            *self.calls_failed.entry(e.class.as_str()).or_default() += 1;
        }
        match result {
            // The call's task told the pacer already (region_calls::heed).
            Err(e) if e.class == Class::RateLimited => {}
            Err(e) => {
                let said = e.to_string();
                repeat = self.failing_since.is_some()
                    && self.last_error.as_ref().is_some_and(|(m, _)| *m == said);
                self.last_error = Some((said, wall));
                if class.counts_against_health() || class == Class::Unauthorized {
                    self.failing_since.get_or_insert(wall);
                }
                self.pacer.calm();
            }
            Ok(()) => {
                self.failing_since = None;
                self.pacer.calm();
            }
        }
        // A recovered region's last error ages out.
        if self.failing_since.is_none()
            && let Some((_, at)) = &self.last_error
            && (wall - *at).to_std().unwrap_or_default() > self.ctx.config.last_error_memory
        {
            self.last_error = None;
        }
        let before = self.breaker.state(now);
        let changed = match result {
            Err(e) if e.unreachable => self.breaker.unreachable(now),
            _ => self.breaker.record(class, now),
        };
        // Creates queued behind the pacer look at this before calling.
        self.calls_open.store(
            self.breaker.state(now) == BreakerState::Closed,
            Ordering::Relaxed,
        );
        if let Some(state) = changed {
            // Going down and coming back are news; a failed probe of a
            // region already down is not.
            if before == BreakerState::Closed || state == BreakerState::Closed {
                info!(account = %self.account.name, region = %self.region, breaker = ?state, "breaker changed");
            } else {
                debug!(account = %self.account.name, region = %self.region, breaker = ?state, "breaker changed");
            }
        }
        repeat
    }

    fn fit(&self, profile: &str, now: Instant) -> ProfileFit {
        match self.resolved.get(profile) {
            None => ProfileFit::Unresolvable {
                reason: if self.clients.is_none() {
                    "region not reached yet".into()
                } else {
                    "unknown profile".into()
                },
            },
            Some(Err(reason)) => ProfileFit::Unresolvable {
                reason: reason.clone(),
            },
            Some(Ok(resolved)) => {
                let footprint = Footprint::server(resolved.flavor.vcpus, resolved.flavor.ram);
                let slots =
                    self.account.limits.max_concurrent_creates as i64 - self.creating.len() as i64;
                let headroom = self.ledger.headroom(footprint, now).min(slots.max(0));
                if self
                    .flavor_not_now
                    .get(&resolved.flavor.id)
                    .is_some_and(|until| *until > now)
                {
                    return ProfileFit::NotNow {
                        reason: format!("flavor {} failed to build recently", resolved.flavor.name),
                        headroom,
                    };
                }
                ProfileFit::Fits {
                    headroom,
                    flavor: resolved.flavor.name.clone(),
                    image: resolved.image.name.clone().unwrap_or_default(),
                }
            }
        }
    }

    fn publish(&self) {
        let now = Instant::now();
        let limits = self.ledger.limits();
        let status = RegionStatus {
            account_id: self.account.id.clone(),
            account: self.account.name.clone(),
            region: self.region.clone(),
            enabled: self.account.enabled,
            drain: self.account.drain,
            priority: self.account.priority,
            connected: self.clients.is_some(),
            breaker: self.breaker.state(now),
            limit: limits.map(|l| l.max),
            used: self.ledger.occupied(),
            reserved: self.ledger.in_flight(),
            building: self.tracked.len() + self.adopting.len(),
            creating: self.creating.len() as u32,
            max_creating: self.account.limits.max_concurrent_creates,
            paused: self.pacer.paused_until().is_some(),
            latency_ms: self.latency_ms,
            error_rate: self.error_rate,
            healthy: self.clients.is_some()
                && self.failing_since.is_none()
                && self.breaker.state(now) == BreakerState::Closed,
            health: Default::default(),
            failing_since: self.failing_since,
            last_error: self.last_error.as_ref().map(|(e, _)| e.clone()),
            last_error_at: self.last_error.as_ref().map(|(_, at)| *at),
            profiles: self
                .profiles
                .keys()
                .map(|name| (name.clone(), self.fit(name, now)))
                .collect(),
            flavors: self.flavors.clone(),
            launches_seen: self.launches_seen,
            calls_failed: self.calls_failed.clone(),
            conflict: self.conflict.clone(),
            updated_at: Utc::now(),
        };
        self.ctx.board.publish(status);
        self.ctx.tell_dispatcher(DispatcherMsg::Wake);
    }

    fn resolve_profiles(
        &mut self,
        flavors: &[crate::openstack::Flavor],
        images: &[crate::openstack::Image],
    ) {
        self.flavors = Some(flavors.iter().map(Into::into).collect());
        let profiles = match self.ctx.store.list_profiles() {
            Ok(profiles) => profiles,
            Err(error) => {
                // Keep what is known; the next full refresh tries again.
                warn!(account = %self.account.name, region = %self.region, %error, "store unreadable; profiles kept");
                self.want_full = true;
                return;
            }
        };
        self.profiles = profiles.into_iter().map(|p| (p.name.clone(), p)).collect();
        self.resolved = self
            .profiles
            .values()
            .map(|p| {
                (
                    p.name.clone(),
                    resolve(p, flavors, images, self.account.pins.get(&p.name)),
                )
            })
            .collect();
    }

    /// Tries to start a create; says why not if it cannot.
    fn launch(&mut self, myself: &ActorRef<RegionMsg>, order: LaunchOrder) -> Result<(), String> {
        let now = Instant::now();
        let compute = self.compute().ok_or("region not reached yet")?;
        if !self.account.accepts_launches() {
            return Err("account does not accept launches".into());
        }
        if let Some(conflict) = &self.conflict {
            return Err(conflict.clone());
        }
        let resolved = match self.resolved.get(&order.request.profile) {
            Some(Ok(resolved)) => resolved.clone(),
            Some(Err(why)) => return Err(why.clone()),
            None => return Err(format!("profile {} unknown here", order.request.profile)),
        };
        // The naive policy (for comparison) sends whatever it is given. A
        // "not now" region is the dispatcher's last resort: it was asked.
        let naive = self.ctx.config.policy == Policy::Naive;
        if self.creating.len() as u32 >= self.account.limits.max_concurrent_creates {
            return Err("too many creates in flight".into());
        }
        let footprint = Footprint::server(resolved.flavor.vcpus, resolved.flavor.ram);
        if self.ledger.headroom(footprint, now) < 1 && !naive {
            return Err("no quota left".into());
        }
        if !naive && self.breaker.permit(now) == Permit::Refused {
            return Err("circuit breaker open".into());
        }
        let ticket = if naive {
            self.ledger.reserve_regardless(footprint)
        } else {
            self.ledger.reserve(footprint, now).ok_or("no quota left")?
        };
        let attempt_id = order
            .instance
            .attempt
            .as_ref()
            .map(|a| a.id.clone())
            .ok_or("a launch order carries its attempt")?;
        self.creating.insert(order.instance.id.clone(), false);
        spawn_create(
            CreateJob {
                compute,
                pacer: self.pacer.clone(),
                calls_open: self.calls_open.clone(),
                order,
                ticket,
                flavor_id: resolved.flavor.id.clone(),
                image_id: resolved.image.id.clone(),
                tags: self.owner().server_tags(&attempt_id),
                networks: self.account.networks.clone(),
            },
            myself.clone(),
        );
        Ok(())
    }

    fn footprint_of_flavor(&self, flavor_id: &str) -> Footprint {
        self.resolved
            .values()
            .filter_map(|r| r.as_ref().ok())
            .find(|r| r.flavor.id == flavor_id)
            .map(|r| Footprint::server(r.flavor.vcpus, r.flavor.ram))
            .unwrap_or_else(Footprint::unknown_flavor)
    }

    fn start_delete(&mut self, server_id: String, entry: Deleting) {
        self.deleting.insert(server_id, entry);
    }

    fn create_done(&mut self, done: crate::region_calls::CreateDone) {
        let now = Instant::now();
        let instance_id = done.order.instance.id.clone();
        let attempt_id = done
            .order
            .instance
            .attempt
            .as_ref()
            .map(|a| a.id.clone())
            .unwrap_or_default();
        let cancelled = self.creating.remove(&instance_id).unwrap_or(false);
        if !done.sent {
            self.ledger.release(done.ticket);
            let why = match (&done.result, done.times.import) {
                // The key-pair import was answered with an error (or not
                // at all): that is news of the region, for its breaker, as
                // a create's would be; a refused connection opens it at
                // once, so the launches behind this one go elsewhere.
                (Err(error), Some(took)) => {
                    self.observe(Err(error), Some(took));
                    format!("the key pair import failed: {error}")
                }
                // Held back before any call: the region went down while
                // it waited. Nothing was learnt about the region.
                _ => "held back: the region went down before the create was sent".into(),
            };
            let kind = OutcomeKind::Refused(why);
            self.no_server(&instance_id, &attempt_id, done.keypair, cancelled, kind);
            return;
        }
        self.observe(done.result.as_ref().map(drop), Some(done.elapsed));
        let footprint = self.footprint_of_flavor(&done.flavor_id);
        match done.result {
            Ok(server_id) => {
                self.ledger.created(done.ticket, now);
                if cancelled {
                    self.start_delete(
                        server_id,
                        Deleting::new(
                            instance_id,
                            attempt_id,
                            done.keypair,
                            footprint,
                            AfterDelete::Deleted,
                        ),
                    );
                    return;
                }
                self.outcome(
                    &instance_id,
                    &attempt_id,
                    OutcomeKind::Created {
                        server_id: server_id.clone(),
                        detail: Some(done.times.describe(done.elapsed)),
                    },
                );
                let attempt_at = done
                    .order
                    .instance
                    .attempt
                    .as_ref()
                    .map_or_else(Utc::now, |a| a.started_at);
                self.tracked.insert(
                    server_id,
                    Tracked {
                        instance_id,
                        attempt_id,
                        started: now,
                        attempt_at,
                        boot_timeout: done.order.boot_timeout,
                        footprint,
                        flavor_id: done.flavor_id,
                        keypair: done.keypair,
                    },
                );
            }
            Err(error) => {
                if error.class == Class::Quota {
                    warn!(account = %self.account.name, region = %self.region, "quota refused although the ledger saw room; learning");
                    self.ledger.learn_refusal(done.ticket, now);
                } else {
                    self.ledger.release(done.ticket);
                }
                let kind = OutcomeKind::Failed {
                    class: error.class,
                    message: error.to_string(),
                };
                self.no_server(&instance_id, &attempt_id, done.keypair, cancelled, kind);
            }
        }
    }

    /// A create that made no server: its key pair goes, and the instance
    /// is told `kind`, or `Deleted` when the client asked meanwhile.
    fn no_server(
        &mut self,
        instance_id: &str,
        attempt_id: &str,
        keypair: Option<String>,
        cancelled: bool,
        kind: OutcomeKind,
    ) {
        if let (Some(keypair), Some(compute)) = (keypair, self.compute()) {
            spawn_delete_keypair(compute, self.pacer.clone(), keypair);
        }
        let kind = if cancelled {
            OutcomeKind::Deleted
        } else {
            kind
        };
        self.outcome(instance_id, attempt_id, kind);
    }

    /// Builds past their boot timeout in a region that cannot be listed
    /// (its breaker is not closed): the instance moves on, and the server
    /// stays this region's to delete once it answers again.
    fn expire_unseen_builds(&mut self) {
        let now = Instant::now();
        if self.breaker.state(now) == BreakerState::Closed {
            return;
        }
        let expired: Vec<String> = self
            .tracked
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(t.started) > t.boot_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let t = self.tracked.remove(&id).expect("tracked");
            let message = format!(
                "build_timeout: not active after {} s, and the region stopped answering",
                t.boot_timeout.as_secs()
            );
            self.failed_server(id, t, Class::BuildTimeout, message);
        }
    }

    /// What a listing or a GET, asked for at `observed`, shows of building
    /// server `id` (`None`: not shown, which says nothing): active, failed,
    /// or past its boot timeout.
    fn build_seen(&mut self, id: String, server: Option<&Server>, observed: Instant) {
        let now = Instant::now();
        let status = server.map(|s| s.status.as_str());
        let Some(t) = self.tracked.get(&id) else {
            return;
        };
        let timed_out = now.saturating_duration_since(t.started) > t.boot_timeout;
        match status {
            Some("ACTIVE") => {
                let address = server.and_then(|s| s.primary_address()).map(str::to_owned);
                let t = self.tracked.remove(&id).expect("tracked");
                self.breaker.record(Class::Ok, now);
                self.outcome(
                    &t.instance_id,
                    &t.attempt_id,
                    OutcomeKind::Active { address },
                );
                self.watched.insert(
                    id,
                    Watched {
                        instance_id: t.instance_id,
                        attempt_id: t.attempt_id,
                        keypair: t.keypair,
                        footprint: t.footprint,
                        status: None,
                        suspected: None,
                        observed,
                    },
                );
            }
            Some("ERROR") => {
                let fault = server
                    .and_then(|s| s.fault.as_ref())
                    .map_or("server went to ERROR".to_owned(), |f| f.message.clone());
                let t = self.tracked.remove(&id).expect("tracked");
                self.breaker.record(Class::BuildFailed, now);
                self.flavor_not_now
                    .insert(t.flavor_id.clone(), now + self.ctx.config.flavor_not_now);
                self.last_error = Some((format!("build failed: {fault}"), Utc::now()));
                self.failed_server(id, t, Class::BuildFailed, format!("build_failed: {fault}"));
            }
            _ if timed_out => {
                let t = self.tracked.remove(&id).expect("tracked");
                self.breaker.record(Class::BuildTimeout, now);
                let message = format!(
                    "build_timeout: not active after {} s",
                    t.boot_timeout.as_secs()
                );
                self.failed_server(id, t, Class::BuildTimeout, message);
            }
            _ => {}
        }
    }

    fn poll_done(
        &mut self,
        myself: &ActorRef<RegionMsg>,
        servers: Vec<Server>,
        full: bool,
        asked: Instant,
    ) {
        let by_id: HashMap<&str, &Server> = servers.iter().map(|s| (s.id.as_str(), s)).collect();
        // Building servers.
        let ids: Vec<String> = self.tracked.keys().cloned().collect();
        for id in ids {
            self.build_seen(id.clone(), by_id.get(id.as_str()).copied(), asked);
        }
        // Attempts from before a restart.
        self.adopt_from(&servers, asked);
        self.watch_listing(myself, &servers, full, asked);
        self.drive_deletes(myself);
    }
}

impl Actor for RegionActor {
    type Msg = RegionMsg;
    type State = RegionState;
    type Arguments = RegionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RegionArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let config = args.ctx.config.clone();
        let limits = args.account.limits;
        let mut state = RegionState {
            breaker: Breaker::new(config.breaker, Instant::now()),
            builds: build_watch::BuildWatch::default(),
            calls_open: Arc::new(AtomicBool::new(true)),
            ledger: Ledger::default(),
            pacer: Pacer::new(
                limits.mutating_per_sec,
                limits.mutating_burst,
                limits.read_per_sec,
            ),
            profiles: BTreeMap::new(),
            resolved: BTreeMap::new(),
            flavors: None,
            flavor_not_now: HashMap::new(),
            creating: HashMap::new(),
            tracked: HashMap::new(),
            adopting: HashMap::new(),
            watched: HashMap::new(),
            last_poll: None,
            full_poll_owed: true,
            clock: ProviderClock::default(),
            deleting: HashMap::new(),
            polling: false,
            refreshing: false,
            scanning: false,
            leaks: LeakWatch::default(),
            want_full: true,
            usage_stale: false,
            calls_failed: BTreeMap::new(),
            refreshes: 0,
            latency_ms: 0.0,
            error_rate: 0.0,
            last_error: None,
            failing_since: None,
            launches_seen: 0,
            clients: None,
            ctx: args.ctx,
            account: args.account,
            region: args.region,
            session: args.session,
            conflict: args.conflict,
        };
        if let Err(error) = state.rebuild() {
            state.ctx.skipped(crate::messages::Step::Rebuild);
            return Err(error.into());
        }
        myself.send_interval(config.poll_interval, || RegionMsg::PollTick);
        myself.send_interval(build_watch::TICK, || RegionMsg::BuildTick);
        myself.send_interval(config.leak_interval, || RegionMsg::LeakTick);
        myself.send_interval(config.refresh_interval, || RegionMsg::Refresh {
            full: false,
        });
        let _ = myself.send_message(RegionMsg::Refresh { full: true });
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RegionMsg::Launch(order) => {
                state.launches_seen += 1;
                let instance_id = order.instance.id.clone();
                let attempt_id = order
                    .instance
                    .attempt
                    .as_ref()
                    .map(|a| a.id.clone())
                    .unwrap_or_default();
                if let Err(reason) = state.launch(&myself, *order) {
                    state.outcome(&instance_id, &attempt_id, OutcomeKind::Refused(reason));
                }
            }
            RegionMsg::CreateDone(done) => state.create_done(*done),
            RegionMsg::Delete {
                instance_id,
                attempt,
            } => state.delete_asked(&myself, instance_id, &attempt),
            RegionMsg::DeleteDone { server_id, result } => {
                state.delete_done(&myself, server_id, result)
            }
            RegionMsg::Checked { server_id, result } => {
                // Nova shows a deleted server to admins (and to
                // changes-since) before it answers 404.
                let gone = result.map(|s| s.is_none_or(|s| s.status == "DELETED"));
                state.checked(&myself, &server_id, gone);
            }
            RegionMsg::BuildTick => {
                state.watch_builds(&myself);
                if state.usage_stale && !state.refreshing {
                    state.usage_stale = false;
                    let _ = myself.send_message(RegionMsg::Refresh { full: false });
                }
            }
            RegionMsg::BuildSeen { server_id, result } => state.build_answered(server_id, result),
            RegionMsg::DriveDeletes => state.drive_deletes(&myself),
            RegionMsg::LeakTick => {
                if !state.scanning
                    && let Some(compute) = state.compute()
                    && state.breaker.state(Instant::now()) == crate::breaker::BreakerState::Closed
                {
                    state.scanning = true;
                    spawn_leak_scan(
                        compute,
                        state.pacer.clone(),
                        state.owner().tags(),
                        myself.clone(),
                    );
                }
            }
            RegionMsg::LeakScanned(result, asked) => {
                state.scanning = false;
                state.observe(result.as_ref().map(drop), None);
                match result {
                    Ok((servers, keypairs)) => {
                        state.watch_listing(&myself, &servers, true, asked);
                        state.leak_scan(servers, keypairs);
                        state.drive_deletes(&myself);
                    }
                    Err(error) => {
                        warn!(account = %state.account.name, region = %state.region, %error, "leak scan failed")
                    }
                }
            }
            RegionMsg::PollTick => {
                state.expire_unseen_builds();
                state.drive_deletes(&myself);
                // Deletions are confirmed one by one (a listing can lag, a
                // 404 cannot); the listing is for servers being waited on.
                let oldest = state
                    .tracked
                    .values()
                    .map(|t| t.attempt_at)
                    .chain(state.adopting.values().map(|a| a.attempt_at))
                    .min();
                let watching = !state.watched.is_empty();
                if (oldest.is_some() || watching)
                    && !state.polling
                    && let Some(compute) = state.compute()
                    && state.breaker.permit(Instant::now()) != Permit::Refused
                {
                    state.polling = true;
                    let plan = plan_poll(
                        oldest,
                        watching,
                        state.last_poll,
                        state.full_poll_owed,
                        &state.clock,
                        state.owner().deployment_tag(),
                    );
                    spawn_poll(compute, state.pacer.clone(), plan, myself.clone());
                }
            }
            RegionMsg::PollDone(result, asked) => {
                state.polling = false;
                let elapsed = Instant::now().saturating_duration_since(asked.at);
                state.observe(result.as_ref().map(drop), Some(elapsed));
                if let Ok(listing) = result {
                    state.clock.observe(listing.provider_date, Utc::now());
                    state.last_poll = Some(asked.wall);
                    if asked.full {
                        state.full_poll_owed = false;
                    }
                    state.poll_done(&myself, listing.servers, asked.full, asked.at);
                }
            }
            RegionMsg::Refresh { full } => {
                let now = Instant::now();
                state.refreshes += 1;
                // Flavors and images change rarely: every tenth refresh.
                let full = full
                    || state.want_full
                    || state.clients.is_none()
                    || state.refreshes % FULL_REFRESH_EVERY == 0;
                if state.refreshing {
                    state.want_full |= full;
                } else if state.breaker.permit(now) == Permit::Refused {
                    state.want_full |= full;
                    // Probe as soon as the breaker lets us.
                    myself.send_after(Duration::from_millis(500), || RegionMsg::Refresh {
                        full: false,
                    });
                } else {
                    state.refreshing = true;
                    state.want_full = false;
                    spawn_refresh(
                        state.session.clone(),
                        state.region.clone(),
                        state.clients.clone(),
                        state.pacer.clone(),
                        full,
                        myself.clone(),
                    );
                }
            }
            RegionMsg::Refreshed(refreshed) => {
                let Refreshed {
                    clients,
                    result,
                    elapsed,
                } = *refreshed;
                state.refreshing = false;
                if clients.is_some() {
                    state.clients = clients;
                }
                let repeated = state.observe(result.as_ref().map(drop), Some(elapsed));
                match result {
                    Ok(discovery) => {
                        state
                            .ledger
                            .update(&discovery.limits, discovery.asked_at, Instant::now());
                        if let Some((flavors, images)) = discovery.catalog {
                            state.resolve_profiles(&flavors, &images);
                        }
                        if state.want_full {
                            let _ = myself.send_message(RegionMsg::Refresh { full: true });
                        }
                    }
                    Err(error) => {
                        if repeated {
                            debug!(account = %state.account.name, region = %state.region, %error, "refresh failed again");
                        } else {
                            warn!(account = %state.account.name, region = %state.region, %error, "refresh failed");
                        }
                        state.want_full = true;
                        if state.clients.is_none() {
                            // Not connected yet: try again soon.
                            myself.send_after(state.ctx.config.poll_interval, || {
                                RegionMsg::Refresh { full: true }
                            });
                        }
                    }
                }
            }
            RegionMsg::Ping(reply) => {
                let _ = reply.send(());
                return Ok(());
            }
            RegionMsg::Chaos(Chaos::Panic) => {
                panic!("deliberate panic in region {}", state.label())
            }
            RegionMsg::Chaos(Chaos::Hang) => tokio::time::sleep(Duration::from_secs(3600)).await,
        }
        state.publish();
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A stopped region takes no launches; its successor republishes.
        state
            .ctx
            .board
            .remove_region(&state.account.id, &state.region);
        Ok(())
    }
}
