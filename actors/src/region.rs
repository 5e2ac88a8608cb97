//! RegionActor: the only thing that talks to one account-region. It owns
//! the breaker, the quota ledger, the pacer and the "not now" memory; it
//! creates, polls (one listing per tick for all its servers) and deletes,
//! and publishes a status snapshot after every change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::breaker::{Breaker, Permit};
use crate::leaks::{LeakWatch, Sighting};
use crate::ledger::{Footprint, Ledger};
use crate::messages::{
    Chaos, DispatcherMsg, FleetCtx, LaunchOrder, Outcome, OutcomeKind, RegionMsg,
};
use crate::model::{Account, InstanceState, Profile};
use crate::openstack::{Class, ComputeClient, ImageClient, ProviderError, Server, Session};
use crate::pacer::Pacer;
use crate::placement::Policy;
use crate::profiles::{Resolved, resolve};
use crate::provider_clock::ProviderClock;
use crate::region_calls::{
    CreateJob, Refreshed, attempt_tag, spawn_check_gone, spawn_create, spawn_delete,
    spawn_delete_keypair, spawn_leak_scan, spawn_poll, spawn_refresh,
};
use crate::status::{ProfileFit, RegionStatus};
use crate::store::InstanceFilter;

/// Every how many refreshes flavors and images are read again.
const FULL_REFRESH_EVERY: u64 = 10;
/// Weight of the newest sample in the moving averages.
const EWMA: f64 = 0.2;

/// The first wait before asking whether a deleted server is gone; later
/// checks double it, up to the poll interval.
const FIRST_GONE_CHECK: Duration = Duration::from_millis(250);
/// The first wait before sending a refused DELETE again, and the longest.
const DELETE_RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(32));

/// The actor.
pub(crate) struct RegionActor;

/// What it starts from.
pub(crate) struct RegionArgs {
    pub ctx: FleetCtx,
    pub account: Account,
    pub region: String,
    pub session: Arc<Session>,
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
}

/// An attempt from before a restart whose server is not known yet.
#[derive(Debug, Clone)]
struct Adopting {
    instance_id: String,
    /// When the search began (the grace period counts from here).
    since: Instant,
    /// When the attempt was written down.
    attempt_at: DateTime<Utc>,
    /// The client asked for a delete meanwhile.
    cancel: bool,
}

#[derive(Debug)]
enum AfterDelete {
    /// The client asked: report `Deleted`.
    Deleted,
    /// The attempt failed: report `Failed` once the server is gone.
    Failed { class: Class, message: String },
    /// A leak: nobody to tell.
    Leak,
}

#[derive(Debug)]
struct Deleting {
    instance_id: String,
    attempt_id: String,
    keypair: Option<String>,
    footprint: Footprint,
    then: AfterDelete,
    accepted: bool,
    in_flight: bool,
    next_try: Instant,
    /// Deletes refused, until one is accepted; then gone-checks that found
    /// it still there.
    tries: u32,
}

impl Deleting {
    /// A deletion to start now.
    fn new(
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
            in_flight: false,
            next_try: Instant::now(),
            tries: 0,
        }
    }

    /// Puts the next try off by `base` doubled per earlier try, at most
    /// `max`; the wait.
    fn retry_later(&mut self, base: Duration, max: Duration) -> Duration {
        let wait = crate::restart::backoff(base, self.tries, max);
        self.tries += 1;
        self.next_try = Instant::now() + wait;
        wait
    }
}

/// The actor's state.
pub(crate) struct RegionState {
    ctx: FleetCtx,
    account: Account,
    region: String,
    session: Arc<Session>,
    clients: Option<(ComputeClient, ImageClient)>,
    breaker: Breaker,
    ledger: Ledger,
    pacer: Pacer,
    profiles: BTreeMap<String, Profile>,
    resolved: BTreeMap<String, Result<Resolved, String>>,
    flavor_not_now: HashMap<String, Instant>,
    /// Creates in flight: instance id → cancel requested.
    creating: HashMap<String, bool>,
    tracked: HashMap<String, Tracked>,
    /// Attempts from before a restart whose server is not known yet, by
    /// attempt id.
    adopting: HashMap<String, Adopting>,
    /// The provider's clock, for the poll's `changes-since`.
    clock: ProviderClock,
    deleting: HashMap<String, Deleting>,
    polling: bool,
    refreshing: bool,
    scanning: bool,
    leaks: LeakWatch,
    /// A full refresh is owed.
    want_full: bool,
    refreshes: u64,
    latency_ms: f64,
    error_rate: f64,
    last_error: Option<String>,
    launches_seen: u64,
}

impl RegionState {
    fn compute(&self) -> Option<ComputeClient> {
        self.clients.as_ref().map(|(c, _)| c.clone())
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
    /// leave the latency average alone.
    fn observe(&mut self, result: Result<(), &ProviderError>, elapsed: Option<Duration>) {
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
        match result {
            // The call's task told the pacer already (region_calls::heed).
            Err(e) if e.class == Class::RateLimited => {}
            Err(e) => {
                self.last_error = Some(e.to_string());
                self.pacer.calm();
            }
            Ok(()) => self.pacer.calm(),
        }
        if let Some(state) = self.breaker.record(class, now) {
            info!(account = %self.account.name, region = %self.region, breaker = ?state, "breaker changed");
        }
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
            last_error: self.last_error.clone(),
            profiles: self
                .profiles
                .keys()
                .map(|name| (name.clone(), self.fit(name, now)))
                .collect(),
            launches_seen: self.launches_seen,
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
        self.profiles = self
            .ctx
            .store
            .list_profiles()
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.name.clone(), p))
            .collect();
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
        self.creating.insert(order.instance.id.clone(), false);
        spawn_create(
            CreateJob {
                compute,
                pacer: self.pacer.clone(),
                order,
                ticket,
                flavor_id: resolved.flavor.id.clone(),
                image_id: resolved.image.id.clone(),
                daemon_tag: self.ctx.daemon_tag(),
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
            .unwrap_or(Footprint {
                instances: 1,
                cores: 0,
                ram: 0,
            })
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
                if let (Some(keypair), Some(compute)) = (done.keypair, self.compute()) {
                    spawn_delete_keypair(compute, self.pacer.clone(), keypair);
                }
                let kind = if cancelled {
                    OutcomeKind::Deleted
                } else {
                    OutcomeKind::Failed {
                        class: error.class,
                        message: error.to_string(),
                    }
                };
                self.outcome(&instance_id, &attempt_id, kind);
            }
        }
    }

    fn poll_done(&mut self, myself: &ActorRef<RegionMsg>, servers: Vec<Server>) {
        let now = Instant::now();
        let by_id: HashMap<&str, &Server> = servers.iter().map(|s| (s.id.as_str(), s)).collect();
        // Building servers.
        let ids: Vec<String> = self.tracked.keys().cloned().collect();
        for id in ids {
            let server = by_id.get(id.as_str());
            let status = server.map(|s| s.status.as_str());
            let Some(t) = self.tracked.get(&id) else {
                continue;
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
                }
                Some("ERROR") => {
                    let fault = server
                        .and_then(|s| s.fault.as_ref())
                        .map_or("server went to ERROR".to_owned(), |f| f.message.clone());
                    let t = self.tracked.remove(&id).expect("tracked");
                    self.breaker.record(Class::BuildFailed, now);
                    self.flavor_not_now
                        .insert(t.flavor_id.clone(), now + self.ctx.config.flavor_not_now);
                    self.last_error = Some(format!("build failed: {fault}"));
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
        // Attempts from before a restart.
        let attempts: Vec<String> = self.adopting.keys().cloned().collect();
        for attempt_id in attempts {
            let tag = attempt_tag(&attempt_id);
            let found = servers.iter().find(|s| s.tags.contains(&tag));
            let Adopting {
                instance_id,
                since,
                attempt_at,
                cancel,
            } = self.adopting[&attempt_id].clone();
            match found {
                Some(server) => {
                    self.adopting.remove(&attempt_id);
                    let footprint = Footprint {
                        instances: 1,
                        cores: 0,
                        ram: 0,
                    };
                    if cancel {
                        self.start_delete(
                            server.id.clone(),
                            Deleting::new(
                                instance_id,
                                attempt_id,
                                None,
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
                        },
                    );
                }
                None if now.saturating_duration_since(since) > self.ctx.config.adoption_grace => {
                    self.adopting.remove(&attempt_id);
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
        self.drive_deletes(myself);
    }

    fn failed_server(&mut self, server_id: String, t: Tracked, class: Class, message: String) {
        self.start_delete(
            server_id,
            Deleting::new(
                t.instance_id,
                t.attempt_id,
                None,
                t.footprint,
                AfterDelete::Failed { class, message },
            ),
        );
    }

    /// A deleted server is confirmed gone (404): finish its deletion.
    fn gone(&mut self, server_id: &str) {
        let Some(d) = self.deleting.remove(server_id) else {
            return;
        };
        self.ledger.server_gone(d.footprint);
        if let (Some(keypair), Some(compute)) = (d.keypair.clone(), self.compute()) {
            spawn_delete_keypair(compute, self.pacer.clone(), keypair);
        }
        let kind = match d.then {
            AfterDelete::Deleted => OutcomeKind::Deleted,
            AfterDelete::Failed { class, message } => OutcomeKind::Failed { class, message },
            AfterDelete::Leak => {
                info!(account = %self.account.name, region = %self.region, server = %server_id, "leaked server collected");
                return;
            }
        };
        self.outcome(&d.instance_id, &d.attempt_id, kind);
    }

    /// Attempts a live instance accounts for in this region.
    fn known_attempts(&self) -> std::collections::HashSet<String> {
        let filter = InstanceFilter {
            account_id: Some(self.account.id.clone()),
            region: Some(self.region.clone()),
            ..InstanceFilter::live()
        };
        let mut known: std::collections::HashSet<String> = self
            .ctx
            .store
            .list_instances(&filter)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.attempt.map(|a| a.id))
            .collect();
        known.extend(self.adopting.keys().cloned());
        known.extend(self.tracked.values().map(|t| t.attempt_id.clone()));
        known.extend(self.deleting.values().map(|d| d.attempt_id.clone()));
        known
    }

    /// Collects what a leak scan found unaccounted for, twice.
    fn leak_scan(&mut self, servers: Vec<Server>, keypairs: Vec<String>) {
        let known_attempts = self.known_attempts();
        // The store is read after the listing: a create that finished in
        // between is known by its attempt already.
        let mut seen: Vec<Sighting> = servers
            .iter()
            .map(|s| Sighting::Server {
                id: s.id.clone(),
                attempt: s
                    .tags
                    .iter()
                    .find_map(|t| t.strip_prefix("oms-a-"))
                    .map(str::to_owned),
            })
            .collect();
        seen.extend(keypairs.into_iter().filter_map(|name| {
            let attempt = name.strip_prefix("oms-k-")?.to_owned();
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
            Sighting::Keypair { attempt, .. } => known_attempts.contains(attempt),
        };
        let leaks = self
            .leaks
            .scan(seen, known, Instant::now(), self.ctx.config.leak_grace);
        for leak in leaks {
            match leak {
                Sighting::Server { id, attempt } => {
                    warn!(account = %self.account.name, region = %self.region, server = %id, "server of ours unknown to the store; deleting");
                    self.start_delete(
                        id,
                        Deleting::new(
                            String::new(),
                            attempt.unwrap_or_default(),
                            None,
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

    /// Sends the DELETEs that are due, and checks accepted ones (one GET
    /// each: listings may lag, a 404 does not).
    fn drive_deletes(&mut self, myself: &ActorRef<RegionMsg>) {
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
                spawn_check_gone(
                    compute.clone(),
                    self.pacer.clone(),
                    server_id.clone(),
                    myself.clone(),
                );
            } else {
                spawn_delete(
                    compute.clone(),
                    self.pacer.clone(),
                    server_id.clone(),
                    myself.clone(),
                );
            }
        }
    }

    /// Rebuilds in-flight work from the store after a (re)start.
    fn rebuild(&mut self) {
        let filter = InstanceFilter {
            account_id: Some(self.account.id.clone()),
            region: Some(self.region.clone()),
            states: vec![
                InstanceState::Scheduled,
                InstanceState::Building,
                InstanceState::Deleting,
            ],
            ..InstanceFilter::default()
        };
        let now = Instant::now();
        for instance in self.ctx.store.list_instances(&filter).unwrap_or_default() {
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
                            footprint: Footprint::default(),
                            flavor_id: String::new(),
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
                        },
                    );
                }
            }
        }
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
            ledger: Ledger::default(),
            pacer: Pacer::new(limits.mutating_per_sec, limits.read_per_sec),
            profiles: BTreeMap::new(),
            resolved: BTreeMap::new(),
            flavor_not_now: HashMap::new(),
            creating: HashMap::new(),
            tracked: HashMap::new(),
            adopting: HashMap::new(),
            clock: ProviderClock::default(),
            deleting: HashMap::new(),
            polling: false,
            refreshing: false,
            scanning: false,
            leaks: LeakWatch::default(),
            want_full: true,
            refreshes: 0,
            latency_ms: 0.0,
            error_rate: 0.0,
            last_error: None,
            launches_seen: 0,
            clients: None,
            ctx: args.ctx,
            account: args.account,
            region: args.region,
            session: args.session,
        };
        state.rebuild();
        myself.send_interval(config.poll_interval, || RegionMsg::PollTick);
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
            } => {
                if let Some(cancel) = state.creating.get_mut(&instance_id) {
                    *cancel = true;
                } else if let Some(entry) = state.adopting.get_mut(&attempt.id) {
                    entry.cancel = true;
                } else if let Some(server_id) = state
                    .tracked
                    .iter()
                    .find(|(_, t)| t.instance_id == instance_id)
                    .map(|(id, _)| id.clone())
                    .or(attempt.server_id.clone())
                {
                    let footprint = state
                        .tracked
                        .remove(&server_id)
                        .map_or_else(Footprint::default, |t| t.footprint);
                    if !state.deleting.contains_key(&server_id) {
                        state.start_delete(
                            server_id,
                            Deleting::new(
                                instance_id,
                                attempt.id.clone(),
                                attempt.keypair.clone(),
                                if footprint == Footprint::default() {
                                    Footprint {
                                        instances: 1,
                                        cores: 0,
                                        ram: 0,
                                    }
                                } else {
                                    footprint
                                },
                                AfterDelete::Deleted,
                            ),
                        );
                    }
                } else {
                    state.outcome(&instance_id, &attempt.id, OutcomeKind::Deleted);
                }
                state.drive_deletes(&myself);
            }
            RegionMsg::DeleteDone { server_id, result } => {
                let gone_check_max = state.ctx.config.poll_interval.max(FIRST_GONE_CHECK);
                state.observe(result.as_ref().map(|_| ()), None);
                if let Some(d) = state.deleting.get_mut(&server_id) {
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
                            warn!(account = %state.account.name, region = %state.region, server = %server_id, %error, "delete refused; will retry");
                        }
                    }
                }
            }
            RegionMsg::Checked { server_id, result } => {
                state.observe(result.as_ref().map(drop), None);
                match result {
                    Ok(true) => state.gone(&server_id),
                    Ok(false) => {
                        let gone_check_max = state.ctx.config.poll_interval.max(FIRST_GONE_CHECK);
                        if let Some(d) = state.deleting.get_mut(&server_id) {
                            d.in_flight = false;
                            let wait = d.retry_later(FIRST_GONE_CHECK, gone_check_max);
                            myself.send_after(wait, || RegionMsg::DriveDeletes);
                        }
                    }
                    Err(_) => {
                        if let Some(d) = state.deleting.get_mut(&server_id) {
                            d.in_flight = false;
                        }
                    }
                }
            }
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
                        state.ctx.daemon_tag(),
                        myself.clone(),
                    );
                }
            }
            RegionMsg::LeakScanned(result) => {
                state.scanning = false;
                state.observe(result.as_ref().map(drop), None);
                match result {
                    Ok((servers, keypairs)) => {
                        state.leak_scan(servers, keypairs);
                        state.drive_deletes(&myself);
                    }
                    Err(error) => {
                        warn!(account = %state.account.name, region = %state.region, %error, "leak scan failed")
                    }
                }
            }
            RegionMsg::PollTick => {
                state.drive_deletes(&myself);
                // Deletions are confirmed one by one (a listing can lag, a
                // 404 cannot); the listing is for servers being waited on.
                let oldest = state
                    .tracked
                    .values()
                    .map(|t| t.attempt_at)
                    .chain(state.adopting.values().map(|a| a.attempt_at))
                    .min();
                if let Some(oldest) = oldest
                    && !state.polling
                    && let Some(compute) = state.compute()
                    && state.breaker.permit(Instant::now()) != Permit::Refused
                {
                    state.polling = true;
                    spawn_poll(
                        compute,
                        state.pacer.clone(),
                        state.ctx.daemon_tag(),
                        state.clock.changes_since(oldest),
                        myself.clone(),
                    );
                }
            }
            RegionMsg::PollDone(result, asked_at) => {
                state.polling = false;
                let elapsed = Instant::now().saturating_duration_since(asked_at);
                state.observe(result.as_ref().map(drop), Some(elapsed));
                if let Ok(listing) = result {
                    state.clock.observe(listing.provider_date, Utc::now());
                    state.poll_done(&myself, listing.servers);
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
                state.observe(result.as_ref().map(drop), Some(elapsed));
                match result {
                    Ok(discovery) => {
                        state.ledger.update(&discovery.limits, discovery.asked_at);
                        if let Some((flavors, images)) = discovery.catalog {
                            state.resolve_profiles(&flavors, &images);
                        }
                        if state.want_full {
                            let _ = myself.send_message(RegionMsg::Refresh { full: true });
                        }
                    }
                    Err(error) => {
                        warn!(account = %state.account.name, region = %state.region, %error, "refresh failed");
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
