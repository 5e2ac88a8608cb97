//! Dispatcher: the queue of instances waiting for a place, in FIFO order
//! (oldest request first, so nothing starves), placed one pass at a time
//! with the pure placement function. It writes every decision to the store
//! and flushes before any region acts on it, and it never waits on a
//! provider: regions report back with outcomes, which the pure
//! [`crate::transitions::decide`] turns into transitions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::messages::{
    Chaos, DispatcherMsg, FleetCtx, FleetEvent, LaunchOrder, Outcome, RegionMsg,
};
use crate::model::{Attempt, Event, Instance, InstanceState, LaunchRequest, new_id};
use crate::placement::{Candidate, Policy, choose};
use crate::refusals::{Outlook, Refusals};
use crate::status::{ProfileFit, RegionKey, RegionStatus};
use crate::store::InstanceFilter;
use crate::transitions::{Exclusion, Transition, decide};

/// Every how many ticks scheduled instances are checked for a dead region.
const ORPHAN_SCAN_EVERY: u64 = 5;

/// The actor.
pub(crate) struct Dispatcher;

/// An instance waiting for a place.
#[derive(Debug, Clone, Default)]
struct Waiting {
    /// (account id, region, until) pairs not to use again; `None`: never.
    excluded: Vec<(String, String, Option<Instant>)>,
    /// The last "why it waits" written to its timeline.
    last_wait_reason: Option<String>,
    /// Regions that refused it, not offered again for a while.
    refusals: Refusals,
}

/// The dispatcher's state.
pub(crate) struct DispatcherState {
    ctx: FleetCtx,
    waiting: BTreeMap<String, Waiting>,
    /// What instances out being tried knew while waiting (where they
    /// failed, who refused them), given back if they return.
    tried: HashMap<String, Waiting>,
    requests: HashMap<String, Arc<LaunchRequest>>,
    /// Launches sent per region, to discount headroom the region has not
    /// reported yet.
    sent: HashMap<RegionKey, u64>,
    pass_queued: bool,
    ticks: u64,
}

impl DispatcherState {
    fn request(&mut self, id: &str) -> Option<Arc<LaunchRequest>> {
        if let Some(request) = self.requests.get(id) {
            return Some(request.clone());
        }
        let request = Arc::new(self.ctx.store.get_request(id).ok()??);
        self.requests.insert(id.to_owned(), request.clone());
        Some(request)
    }

    fn queue_pass(&mut self, myself: &ActorRef<DispatcherMsg>) {
        if !self.pass_queued && !self.waiting.is_empty() {
            self.pass_queued = true;
            let _ = myself.send_message(DispatcherMsg::Pass);
        }
    }

    fn record(
        &self,
        instance: &mut Instance,
        state: InstanceState,
        account_region: Option<String>,
        message: String,
    ) {
        self.record_detailed(instance, state, account_region, message, None);
    }

    /// Like [`DispatcherState::record`], with the particulars behind the
    /// message.
    fn record_detailed(
        &self,
        instance: &mut Instance,
        state: InstanceState,
        account_region: Option<String>,
        message: String,
        detail: Option<String>,
    ) {
        let read = instance.updated_at;
        instance.state = state;
        instance.updated_at = Utc::now();
        let event = Event {
            at: instance.updated_at,
            state,
            account_region: account_region.clone(),
            message: message.clone(),
            detail,
            repeated: 0,
            last_at: None,
        };
        // The change and its event together: a crash keeps both or neither.
        match self.ctx.store.transition(read, instance, &event) {
            // Counted into the last event: said once already.
            Ok(true) => {
                debug!(instance = %instance.id, state = state.as_str(), account_region = account_region.as_deref().unwrap_or("-"), "{message} (again)")
            }
            Ok(false) => {
                info!(instance = %instance.id, state = state.as_str(), account_region = account_region.as_deref().unwrap_or("-"), "{message}")
            }
            // Only this actor writes instances: another version means a
            // second writer. Carry on from what is stored, never over it.
            Err(error @ crate::store::StoreError::Stale(_)) => {
                error!(instance = %instance.id, %error, "instance changed by another writer; going on from the stored version");
                if let Ok(Some(stored)) = self.ctx.store.get_instance(&instance.id) {
                    *instance = stored;
                }
            }
            Err(error) => {
                warn!(instance = %instance.id, %error, "cannot store the instance's change")
            }
        }
    }

    /// An instance is done with placement (active or finished): what the
    /// dispatcher kept of it, and of its request once no sibling waits or
    /// is out being tried, leaves its memory.
    fn forget(&mut self, instance: &Instance) {
        self.waiting.remove(&instance.id);
        self.tried.remove(&instance.id);
        let prefix = format!("{}-", instance.request_id);
        let siblings = self
            .waiting
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(id, _)| id.starts_with(&prefix))
            || self.tried.keys().any(|id| id.starts_with(&prefix));
        if !siblings {
            self.requests.remove(&instance.request_id);
        }
    }

    fn fail(&mut self, mut instance: Instance, reason: String) {
        self.forget(&instance);
        let _ = self.ctx.events.send(FleetEvent::Failed);
        instance.failure = Some(reason.clone());
        let place = instance
            .placement()
            .map(|(a, r)| format!("{}/{r}", self.account_name(&a)));
        self.record(&mut instance, InstanceState::Failed, place, reason);
    }

    /// Candidates for `profile`, one per board entry in board order,
    /// discounting launches not yet seen by their regions.
    fn candidates(&self, board: &[RegionStatus], profile: &str) -> Vec<Candidate> {
        board
            .iter()
            .cloned()
            .map(|s| {
                let key = (s.account_id.clone(), s.region.clone());
                let unseen = self
                    .sent
                    .get(&key)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(s.launches_seen);
                let pending = unseen as i64;
                let (headroom, unresolvable, not_now) = match s.profiles.get(profile) {
                    Some(ProfileFit::Fits { headroom, .. }) => (headroom - pending, None, None),
                    Some(ProfileFit::Unresolvable { reason }) => (0, Some(reason.clone()), None),
                    Some(ProfileFit::NotNow { reason, headroom }) => {
                        (headroom - pending, None, Some(reason.clone()))
                    }
                    None => (0, Some("profile not resolved yet".to_owned()), None),
                };
                let not_now = not_now.or_else(|| s.paused.then(|| "rate limited".to_owned()));
                Candidate {
                    account_id: s.account_id,
                    account: s.account,
                    region: s.region,
                    enabled: s.enabled,
                    drain: s.drain,
                    priority: s.priority,
                    health: s.breaker,
                    headroom,
                    unresolvable: if let Some(conflict) = s.conflict {
                        Some(conflict)
                    } else if s.connected {
                        unresolvable
                    } else {
                        Some("region not reached yet".into())
                    },
                    not_now,
                    latency_ms: s.latency_ms,
                }
            })
            .collect()
    }

    /// Places every waiting instance that can be placed now, oldest first.
    async fn pass(&mut self) {
        let now = Instant::now();
        // Candidates per profile, built once per pass; an assignment takes
        // one slot off its region in every list (same board order).
        let mut per_profile: HashMap<String, Vec<Candidate>> = HashMap::new();
        let mut orders: Vec<LaunchOrder> = Vec::new();
        let ids: Vec<String> = self.waiting.keys().cloned().collect();
        // One copy of the board per pass, not one per waiting instance.
        let board = self.ctx.board.snapshot();
        for id in ids {
            let Ok(Some(mut instance)) = self.ctx.store.get_instance(&id) else {
                self.waiting.remove(&id);
                continue;
            };
            if instance.state != InstanceState::Pending {
                self.waiting.remove(&id);
                continue;
            }
            let Some(request) = self.request(&instance.request_id) else {
                self.waiting.remove(&id);
                continue;
            };
            if Utc::now() >= instance.deadline(&request) {
                let reason = format!(
                    "deadline passed after {} attempt(s){}",
                    instance.attempts,
                    self.waiting[&id]
                        .last_wait_reason
                        .as_ref()
                        .map(|r| format!("; waiting because {r}"))
                        .unwrap_or_default()
                );
                self.fail(instance, reason);
                continue;
            }
            if instance.attempts >= request.max_attempts {
                let reason = format!("all {} attempts used", request.max_attempts);
                self.fail(instance, reason);
                continue;
            }
            let waiting = self.waiting.get_mut(&id).expect("waiting");
            waiting
                .excluded
                .retain(|(_, _, until)| until.is_none_or(|u| u > now));
            // For good (a bad request) or for a while (a failure there).
            let (hard, soft): (Vec<_>, Vec<_>) = waiting
                .excluded
                .iter()
                .partition(|(_, _, until)| until.is_none());
            let pair = |(a, r, _): &&(String, String, Option<Instant>)| (a.clone(), r.clone());
            let mut excluded: Vec<(String, String)> = hard.iter().map(pair).collect();
            let avoided: Vec<(String, String)> = soft.iter().map(pair).collect();
            excluded.extend(waiting.refusals.blocked(&board, &request.profile, now));
            if !per_profile.contains_key(&request.profile) {
                let built = self.candidates(&board, &request.profile);
                per_profile.insert(request.profile.clone(), built);
            }
            let candidates = &per_profile[&request.profile];
            let policy = self.ctx.config.policy;
            let mut decision = choose(policy, candidates, &request.hints, &excluded, &avoided);
            if policy == Policy::Naive && decision.best.is_none() && !excluded.is_empty() {
                // The naive strategy went through the list: from the top again.
                self.waiting.get_mut(&id).expect("waiting").excluded.clear();
                decision = choose(policy, candidates, &request.hints, &[], &[]);
            }
            let Some(best) = decision.best else {
                // A short line that stays the same while the picture does;
                // the region-by-region detail goes with it.
                let (reason, detail) = if candidates.is_empty() {
                    ("no account-region is registered".to_owned(), None)
                } else {
                    (
                        format!("no region can take it now: {}", decision.summary()),
                        Some(decision.explain()),
                    )
                };
                if self.waiting[&id].last_wait_reason.as_ref() != Some(&reason) {
                    self.waiting.get_mut(&id).expect("waiting").last_wait_reason =
                        Some(reason.clone());
                    self.record_detailed(
                        &mut instance,
                        InstanceState::Pending,
                        None,
                        format!("waiting: {reason}"),
                        detail,
                    );
                }
                continue;
            };
            let chosen = candidates
                .iter()
                .position(|c| std::ptr::eq(c, best))
                .expect("chosen from the list");
            let best = best.clone();
            let passed = decision.explain();
            drop(decision);
            for list in per_profile.values_mut() {
                list[chosen].headroom -= 1;
            }
            instance.attempts += 1;
            let attempt_id = new_id();
            let keypair = request
                .public_key
                .as_ref()
                .map(|_| self.ctx.owner(&best.account_id).keypair_name(&attempt_id));
            instance.attempt = Some(Attempt {
                id: attempt_id,
                account_id: best.account_id.clone(),
                region: best.region.clone(),
                server_id: None,
                keypair,
                started_at: Utc::now(),
            });
            let mut message = format!("attempt {} scheduled", instance.attempts);
            if !passed.is_empty() {
                message.push_str(&format!("; passed over: {passed}"));
            }
            let place = format!("{}/{}", best.account, best.region);
            self.record(
                &mut instance,
                InstanceState::Scheduled,
                Some(place),
                message,
            );
            if instance.attempts > 1 {
                let _ = self.ctx.events.send(FleetEvent::Rerouted);
            }
            // Where it failed, and who refused it, stays known while it
            // is out being tried.
            if let Some(waiting) = self.waiting.remove(&id) {
                self.tried.insert(id.clone(), waiting);
            }
            let boot_timeout = Duration::from_secs(
                self.ctx
                    .store
                    .get_profile(&request.profile)
                    .ok()
                    .flatten()
                    .map_or(600, |p| p.boot_timeout_secs),
            );
            orders.push(LaunchOrder {
                instance,
                request,
                boot_timeout,
            });
        }
        if orders.is_empty() {
            return;
        }
        // Write intent: every attempt is durable before any create is sent.
        if let Err(error) = self.ctx.store.flush().await {
            warn!(%error, "store flush failed; launches held back");
            for order in orders {
                let mut instance = order.instance;
                instance.attempts = instance.attempts.saturating_sub(1);
                instance.attempt = None;
                self.record(
                    &mut instance,
                    InstanceState::Pending,
                    None,
                    format!("held back: {error}"),
                );
                let known = self.tried.remove(&instance.id).unwrap_or_default();
                self.waiting.insert(instance.id.clone(), known);
            }
            return;
        }
        for order in orders {
            let attempt = order.instance.attempt.clone().expect("scheduled");
            let key = (attempt.account_id.clone(), attempt.region.clone());
            match self.ctx.region(&attempt.account_id, &attempt.region) {
                Some(region)
                    if region
                        .send_message(RegionMsg::Launch(Box::new(order.clone())))
                        .is_ok() =>
                {
                    *self.sent.entry(key).or_default() += 1;
                }
                _ => self.back_to_waiting(
                    order.instance,
                    "region actor not running".into(),
                    Exclusion::None,
                    true,
                ),
            }
        }
    }

    /// Returns an instance to the queue, optionally keeping it away from
    /// the region it just tried.
    fn back_to_waiting(
        &mut self,
        mut instance: Instance,
        reason: String,
        exclusion: Exclusion,
        refund: bool,
    ) {
        let place = instance.placement();
        if refund {
            instance.attempts = instance.attempts.saturating_sub(1);
        }
        let label = place
            .as_ref()
            .map(|(a, r)| format!("{}/{r}", self.account_name(a)));
        self.record(&mut instance, InstanceState::Pending, label, reason);
        let entry = self.waiting.entry(instance.id.clone()).or_insert_with(|| {
            let mut known = self.tried.remove(&instance.id).unwrap_or_default();
            known.last_wait_reason = None;
            known
        });
        let until = match exclusion {
            Exclusion::None => return,
            Exclusion::For(wait) => Some(Instant::now() + wait),
            Exclusion::Always => None,
        };
        if let Some((account, region)) = place {
            entry.excluded.push((account, region, until));
        }
    }

    fn account_name(&self, account_id: &str) -> String {
        self.ctx
            .board
            .snapshot()
            .into_iter()
            .find(|s| s.account_id == account_id)
            .map_or_else(|| account_id.to_owned(), |s| s.account)
    }

    /// Carries out what [`decide`] makes of a region's news.
    fn outcome(&mut self, outcome: Outcome) {
        let Ok(Some(mut instance)) = self.ctx.store.get_instance(&outcome.instance_id) else {
            return;
        };
        let current = instance.attempt.as_ref().map(|a| a.id.as_str());
        if current != Some(outcome.attempt_id.as_str()) {
            return; // An older attempt's news.
        }
        let place = instance
            .placement()
            .map(|(a, r)| format!("{}/{r}", self.account_name(&a)));
        let config = &self.ctx.config;
        match decide(
            outcome.kind,
            instance.state,
            config.policy,
            config.reroute_backoff,
        ) {
            Transition::Ignore => {}
            Transition::Created {
                server_id,
                detail,
                deleting,
            } => {
                if let Some(known) = self.tried.get_mut(&instance.id) {
                    known.refusals.reset();
                }
                if let Some(attempt) = instance.attempt.as_mut() {
                    attempt.server_id = Some(server_id.clone());
                }
                let state = if deleting {
                    InstanceState::Deleting
                } else {
                    InstanceState::Building
                };
                self.record_detailed(
                    &mut instance,
                    state,
                    place,
                    format!("server {server_id} created; building"),
                    detail,
                );
            }
            Transition::Active { address } => {
                instance.address = address.clone();
                let request = self.request(&instance.request_id);
                instance.expires_at = request
                    .and_then(|r| r.expires_in_secs)
                    .map(|secs| Utc::now() + chrono::Duration::seconds(secs as i64));
                let waited = (Utc::now() - instance.created_at).num_milliseconds() as f64 / 1000.0;
                let _ = self.ctx.events.send(FleetEvent::Active { seconds: waited });
                let message = format!(
                    "active at {} after {waited:.1} s",
                    address.as_deref().unwrap_or("no address")
                );
                self.record(&mut instance, InstanceState::Active, place, message);
                self.forget(&instance);
            }
            Transition::Lost { how } => self.lost(instance, place, how),
            Transition::ProviderStatus { status, detail } => {
                if instance.provider_status == status {
                    return;
                }
                let message = match (&status, detail) {
                    (None, _) => "server ACTIVE again at the provider".to_owned(),
                    (Some(status), None) => format!("server {status} at the provider"),
                    (Some(status), Some(detail)) => {
                        format!("server {status} at the provider: {detail}")
                    }
                };
                instance.provider_status = status;
                self.record(&mut instance, InstanceState::Active, place, message);
            }
            Transition::Deleted { why } => {
                self.forget(&instance);
                self.record(&mut instance, InstanceState::Deleted, place, why.into());
            }
            Transition::Retry {
                why,
                exclusion,
                refund,
                refused,
                class,
            } => {
                if let Some(class) = class {
                    let _ = self.ctx.events.send(FleetEvent::AttemptFailed { class });
                }
                let refused_by = refused.then(|| instance.placement()).flatten();
                let id = instance.id.clone();
                let profile = instance.profile.clone();
                self.back_to_waiting(instance, why, exclusion, refund);
                // Nothing reached the provider: the region is not offered
                // this instance again until what it publishes changes or a
                // doubling wait passes ([`Refusals`]).
                if let Some((account_id, region)) = refused_by {
                    let seen = self
                        .ctx
                        .board
                        .get(&account_id, &region)
                        .map(|s| Outlook::of(&s, &profile));
                    if let Some(waiting) = self.waiting.get_mut(&id) {
                        waiting
                            .refusals
                            .record(&account_id, &region, seen, Instant::now());
                    }
                }
            }
        }
    }

    /// An active instance's server vanished: the instance ends `lost`,
    /// or is placed again when its request asked for that.
    fn lost(&mut self, mut instance: Instance, place: Option<String>, how: String) {
        let server = instance
            .attempt
            .as_ref()
            .and_then(|a| a.server_id.clone())
            .unwrap_or_default();
        let replace = self
            .request(&instance.request_id)
            .filter(|r| r.replace_lost);
        let _ = self.ctx.events.send(FleetEvent::Lost {
            replaced: replace.is_some(),
        });
        warn!(instance = %instance.id, %server, how = %how, "active server vanished at the provider");
        instance.address = None;
        instance.provider_status = None;
        instance.expires_at = None;
        let Some(request) = replace else {
            instance.failure = Some(format!("server {server} vanished ({how})"));
            self.record(
                &mut instance,
                InstanceState::Lost,
                place,
                format!("lost: server {server} vanished ({how})"),
            );
            return;
        };
        // A fresh budget and deadline: the loss was not the request's doing.
        instance.replaced += 1;
        instance.attempts = 0;
        instance.deadline = Some(Utc::now() + request.patience());
        self.record(
            &mut instance,
            InstanceState::Pending,
            place,
            format!("server {server} vanished ({how}); placing a replacement"),
        );
        self.waiting.insert(instance.id.clone(), Waiting::default());
    }

    fn delete(&mut self, instance_id: &str) {
        let Ok(Some(mut instance)) = self.ctx.store.get_instance(instance_id) else {
            return;
        };
        match instance.state {
            InstanceState::Pending => {
                self.forget(&instance);
                self.record(
                    &mut instance,
                    InstanceState::Deleted,
                    None,
                    "deleted before it was placed".into(),
                );
            }
            InstanceState::Scheduled | InstanceState::Building | InstanceState::Active => {
                let attempt = instance.attempt.clone();
                let place = instance
                    .placement()
                    .map(|(a, r)| format!("{}/{r}", self.account_name(&a)));
                self.record(
                    &mut instance,
                    InstanceState::Deleting,
                    place,
                    "delete requested".into(),
                );
                if let Some(attempt) = attempt {
                    let sent = self
                        .ctx
                        .region(&attempt.account_id, &attempt.region)
                        .is_some_and(|region| {
                            region
                                .send_message(RegionMsg::Delete {
                                    instance_id: instance_id.to_owned(),
                                    attempt: attempt.clone(),
                                })
                                .is_ok()
                        });
                    if !sent {
                        warn!(instance = %instance_id, "region actor not running; it will delete on restart");
                    }
                }
            }
            InstanceState::Deleting
            | InstanceState::Deleted
            | InstanceState::Failed
            | InstanceState::Lost => {}
        }
    }

    /// Scheduled instances whose region actor is gone (account removed,
    /// disabled or failing to authenticate) and that no region will pick up
    /// on restart go back to the queue.
    fn reclaim_orphans(&mut self) {
        // A launch whose flush failed (a shared store without quorum
        // answered 503) may be committed later without ever being
        // submitted: pending instances the queue does not hold join it.
        let pending = InstanceFilter {
            states: vec![InstanceState::Pending],
            ..InstanceFilter::default()
        };
        for instance in self.ctx.store.list_instances(&pending).unwrap_or_default() {
            self.waiting.entry(instance.id).or_default();
        }
        let grace = chrono::Duration::from_std(self.ctx.config.adoption_grace).unwrap_or_default();
        let filter = InstanceFilter {
            states: vec![InstanceState::Scheduled],
            ..InstanceFilter::default()
        };
        for instance in self.ctx.store.list_instances(&filter).unwrap_or_default() {
            let Some(attempt) = instance.attempt.clone() else {
                continue;
            };
            let stale = Utc::now() - attempt.started_at > grace;
            if stale
                && self
                    .ctx
                    .region(&attempt.account_id, &attempt.region)
                    .is_none()
            {
                self.back_to_waiting(
                    instance,
                    "region no longer running".into(),
                    Exclusion::Always,
                    true,
                );
            }
        }
    }

    /// Reloads the queue from the store (start and restart). An
    /// unreadable store fails the start, so the supervisor retries:
    /// an empty queue would strand every pending request.
    fn rebuild(&mut self) -> Result<(), crate::store::StoreError> {
        let filter = InstanceFilter {
            states: vec![InstanceState::Pending],
            ..InstanceFilter::default()
        };
        for instance in self.ctx.store.list_instances(&filter)? {
            self.waiting.entry(instance.id).or_default();
        }
        Ok(())
    }
}

impl Actor for Dispatcher {
    type Msg = DispatcherMsg;
    type State = DispatcherState;
    type Arguments = FleetCtx;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        ctx: FleetCtx,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(ctx.config.dispatch_interval, || DispatcherMsg::Tick);
        let mut state = DispatcherState {
            ctx,
            waiting: BTreeMap::new(),
            tried: HashMap::new(),
            requests: HashMap::new(),
            sent: HashMap::new(),
            pass_queued: false,
            ticks: 0,
        };
        if let Err(error) = state.rebuild() {
            state.ctx.skipped(crate::messages::Step::Rebuild);
            return Err(error.into());
        }
        state.queue_pass(&myself);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DispatcherMsg::Submit { request_id } => {
                for instance in state.ctx.store.request_instances(&request_id)? {
                    if instance.state == InstanceState::Pending {
                        state.waiting.entry(instance.id).or_default();
                    }
                }
                state.queue_pass(&myself);
            }
            DispatcherMsg::Delete { instance_id, reply } => {
                state.delete(&instance_id);
                let _ = reply.send(());
            }
            DispatcherMsg::Outcome(outcome) => {
                state.outcome(outcome);
                state.queue_pass(&myself);
            }
            DispatcherMsg::Wake => state.queue_pass(&myself),
            DispatcherMsg::Tick => {
                state.ticks += 1;
                if state.ticks % ORPHAN_SCAN_EVERY == 0 {
                    state.reclaim_orphans();
                }
                state.queue_pass(&myself);
            }
            DispatcherMsg::Pass => {
                state.pass_queued = false;
                state.pass().await;
            }
            DispatcherMsg::Ping(reply) => {
                let _ = reply.send(());
            }
            DispatcherMsg::Chaos(Chaos::Panic) => panic!("deliberate panic in the dispatcher"),
            DispatcherMsg::Chaos(Chaos::Hang) => {
                tokio::time::sleep(Duration::from_secs(3600)).await
            }
        }
        Ok(())
    }
}
