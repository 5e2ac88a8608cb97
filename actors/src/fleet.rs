//! `Fleet`: the facade the web crate and the CLI use. Launch, delete, read
//! instances and regions, manage accounts and profiles; no actor type
//! crosses it. Writes a client must be able to rely on are flushed before
//! the call returns.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ractor::{Actor, ActorRef};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::messages::{Chaos, DispatcherMsg, FleetConfig, FleetCtx, FleetEvent, Names, RegionMsg};
use crate::model::{
    Account, ApiToken, Event, Instance, InstanceState, KeyPair, LaunchRequest, PlacementHints,
    Profile, new_id,
};
use crate::openstack::Client;
use crate::root::{RootMsg, RootSupervisor};
use crate::status::{AccountHealth, AccountStatus, ProfileFit, RegionBoard, RegionStatus};
use crate::store::{Inserted, InstanceFilter, Store, StoreError};
use crate::tokens::{NewToken, TokenError};

/// Why a fleet operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ask itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// No such instance, account or profile.
    #[error("{0} not found")]
    NotFound(String),
    /// The client would hold more instances than it may.
    #[error("{0}")]
    LimitReached(String),
    /// The change clashes with what exists (an account on a project
    /// another account holds).
    #[error("{0}")]
    Conflict(String),
    /// The idempotency key was used with another body.
    #[error("idempotency key already used with a different request")]
    IdempotencyConflict,
    /// The actor tree is not running.
    #[error("the fleet is not running: {0}")]
    Unavailable(String),
}

impl From<TokenError> for FleetError {
    fn from(error: TokenError) -> FleetError {
        match error {
            TokenError::Store(e) => FleetError::Store(e),
            TokenError::Invalid(why) => FleetError::Invalid(why),
            TokenError::Conflict(why) => FleetError::Conflict(why),
            TokenError::NotFound => FleetError::NotFound("token".into()),
        }
    }
}

/// A client's ask for instances, before it is accepted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewLaunch {
    /// Who asks (the token's client name).
    pub client: String,
    /// Same key, same body: the same answer, never a second launch.
    pub idempotency_key: Option<String>,
    /// Profile name.
    pub profile: String,
    /// How many instances.
    pub count: u32,
    /// Prefix of instance names.
    pub name_prefix: Option<String>,
    /// One instance named `name_prefix` itself, as Nova names one server
    /// (the OpenStack façade); otherwise `<prefix>-<index>`.
    pub exact_name: bool,
    /// cloud-init user data.
    pub user_data: Option<Vec<u8>>,
    /// Metadata for every server.
    pub metadata: BTreeMap<String, String>,
    /// OpenSSH public key to inject.
    pub public_key: Option<String>,
    /// Placement hints.
    pub hints: PlacementHints,
    /// Lease from active, seconds.
    pub expires_in_secs: Option<u64>,
    /// Give up on instances not active after this many seconds.
    pub deadline_secs: Option<u64>,
    /// Attempts per instance.
    pub max_attempts: Option<u32>,
    /// Place an instance again when its active server vanishes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace_lost: bool,
    /// The client's tags, kept with the request.
    pub tags: Vec<String>,
    /// Digest of the client's own request body, when the caller computed
    /// one (the API does, because it adds a generated key); otherwise the
    /// digest of this structure.
    #[serde(skip)]
    pub body_digest: Option<String>,
    /// Most non-terminal instances the client may hold, counting these.
    #[serde(skip)]
    pub instance_limit: Option<u32>,
}

impl NewLaunch {
    /// Why this ask cannot be accepted, naming the field.
    pub fn check_bounds(&self) -> Result<(), String> {
        crate::bounds::name("profile", &self.profile)?;
        self.check_shape()
    }

    /// Like [`NewLaunch::check_bounds`] but for the profile, which a
    /// caller may still have to resolve: it checks the rest first so that
    /// a refused ask changes nothing.
    pub fn check_shape(&self) -> Result<(), String> {
        use crate::bounds;
        if self.count == 0 {
            return Err("count must be at least 1".into());
        }
        bounds::list("tags", &self.tags)?;
        if let Some(prefix) = &self.name_prefix {
            bounds::name("name_prefix", prefix)?;
        }
        if let Some(secs) = self.expires_in_secs {
            bounds::seconds("expires_in", secs, bounds::MAX_LEASE)?;
        }
        if let Some(secs) = self.deadline_secs {
            bounds::seconds("deadline", secs, bounds::MAX_DEADLINE)?;
        }
        if self
            .max_attempts
            .is_some_and(|n| n == 0 || n > bounds::MAX_ATTEMPTS)
        {
            return Err(format!("max_attempts: 1 to {}", bounds::MAX_ATTEMPTS));
        }
        self.hints.check_bounds()
    }
}

/// An accepted launch.
#[derive(Debug, Clone)]
pub struct Launched {
    /// The request.
    pub request: LaunchRequest,
    /// Its instances as they are now.
    pub instances: Vec<Instance>,
    /// True when this answers a repeated idempotency key.
    pub replayed: bool,
}

/// Which actor to disturb in a supervision test.
#[derive(Debug, Clone)]
pub enum ChaosTarget {
    /// The dispatcher.
    Dispatcher,
    /// One region actor.
    Region {
        /// Account id.
        account_id: String,
        /// Region name.
        region: String,
    },
}

/// The running actor tree and its store.
#[derive(Debug)]
pub struct Fleet {
    ctx: FleetCtx,
    /// Serializes launches so instance limits hold under concurrency.
    launching: tokio::sync::Mutex<()>,
    root: ActorRef<RootMsg>,
    /// Taken by the first shutdown.
    root_task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Every region's recent past, sampled from the board.
    history: Arc<std::sync::Mutex<crate::history::History>>,
    /// The task that samples it; it ends with the fleet.
    _sampler: AbortOnDrop,
    /// Whether this daemon runs the actors (false for a cluster follower
    /// until it leads).
    leading: Arc<std::sync::atomic::AtomicBool>,
    /// The task that shares the boards through the store in a cluster.
    _sharer: Option<AbortOnDrop>,
    /// The cluster this daemon belongs to, if any.
    cluster: std::sync::OnceLock<Arc<dyn crate::cluster_view::ClusterView>>,
}

/// A task that stops when its handle is dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Fleet {
    /// Starts the actor tree on `store`; returns once the dispatcher runs.
    pub async fn start(store: Arc<dyn Store>, config: FleetConfig) -> Result<Fleet, FleetError> {
        let client = Client::new(config.client.clone())
            .map_err(|e| FleetError::Unavailable(e.to_string()))?
            .fenced(config.fence.clone());
        let ctx = FleetCtx {
            store,
            board: RegionBoard::default(),
            accounts: Default::default(),
            claims: Default::default(),
            config: Arc::new(config),
            client,
            names: Names::new(format!("oms-{}", new_id())),
            events: tokio::sync::broadcast::Sender::new(4096),
        };
        let (root, root_task) = Actor::spawn(Some(ctx.names.root()), RootSupervisor, ctx.clone())
            .await
            .map_err(|e| FleetError::Unavailable(e.to_string()))?;
        let history = Arc::new(std::sync::Mutex::new(crate::history::History::new(
            ctx.config.history_samples,
        )));
        let sampler = tokio::spawn({
            let board = ctx.board.clone();
            let history = history.clone();
            let every = ctx.config.history_interval;
            async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    let snapshot = board.snapshot();
                    history
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .record(&snapshot, Utc::now());
                }
            }
        });
        let leading = Arc::new(std::sync::atomic::AtomicBool::new(!ctx.config.standby));
        let sharer = ctx.config.fence.is_leased().then(|| {
            AbortOnDrop(tokio::spawn(crate::shared_board::run(
                ctx.clone(),
                leading.clone(),
            )))
        });
        Ok(Fleet {
            ctx,
            launching: tokio::sync::Mutex::new(()),
            root,
            root_task: tokio::sync::Mutex::new(Some(root_task)),
            history,
            _sampler: AbortOnDrop(sampler),
            leading,
            _sharer: sharer,
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// Starts the dispatcher, the reconciler and the account supervisors
    /// of a fleet started on standby: this daemon now leads its cluster.
    /// Their start is the restart path: in-flight creates are adopted by
    /// their tags.
    pub fn lead(&self) -> Result<(), FleetError> {
        self.leading
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.root
            .cast(RootMsg::Lead)
            .map_err(|e| FleetError::Unavailable(e.to_string()))
    }

    /// Joins this fleet to its cluster (once, at start).
    pub fn set_cluster(&self, cluster: Arc<dyn crate::cluster_view::ClusterView>) {
        let _ = self.cluster.set(cluster);
    }

    /// The cluster this daemon belongs to, if any.
    pub fn cluster(&self) -> Option<&Arc<dyn crate::cluster_view::ClusterView>> {
        self.cluster.get()
    }

    /// Whether this daemon runs the actors: always alone, only the
    /// leader in a cluster.
    pub fn is_leading(&self) -> bool {
        self.leading.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How often region history is sampled.
    pub fn history_interval(&self) -> Duration {
        self.ctx.config.history_interval
    }

    /// One region's samples of the last hours, oldest first.
    pub fn region_history(&self, account_id: &str, region: &str) -> Vec<crate::history::Sample> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .of(account_id, region)
    }

    /// Whether the store answers and the tree's core actors run.
    pub async fn ready(&self) -> bool {
        self.root
            .call(RootMsg::Ready, Some(Duration::from_secs(2)))
            .await
            .is_ok_and(|r| matches!(r, ractor::rpc::CallResult::Success(true)))
    }

    /// Every API token, revoked ones included (values are never stored).
    pub fn tokens(&self) -> Result<Vec<ApiToken>, FleetError> {
        Ok(self.ctx.store.list_tokens()?)
    }

    /// Issues a token ([`crate::tokens::issue`]); its value is returned
    /// once and exists nowhere else.
    pub async fn issue_token(
        &self,
        new: NewToken,
    ) -> Result<(ApiToken, secrecy::SecretString), FleetError> {
        Ok(crate::tokens::issue(self.ctx.store.as_ref(), new).await?)
    }

    /// Stores a token whose value the operator holds (the configuration's
    /// `admin_token_file`), replacing the record of the same id.
    pub async fn install_token(&self, token: &ApiToken) -> Result<(), FleetError> {
        self.ctx.store.put_token(token)?;
        self.ctx.store.flush().await?;
        Ok(())
    }

    /// Revokes a token: it authenticates no more and sessions signed in
    /// with it end.
    pub async fn revoke_token(&self, id: &str) -> Result<ApiToken, FleetError> {
        Ok(crate::tokens::revoke(self.ctx.store.as_ref(), id).await?)
    }

    /// The live token whose value is `value`, if any.
    pub fn authenticate(&self, value: &str) -> Result<Option<ApiToken>, FleetError> {
        Ok(crate::tokens::live_by_value(
            self.ctx.store.as_ref(),
            value,
        )?)
    }

    /// The launch request `id`.
    pub fn request(&self, id: &str) -> Result<Option<LaunchRequest>, FleetError> {
        Ok(self.ctx.store.get_request(id)?)
    }

    /// Token `id`, revoked or not.
    pub fn token(&self, id: &str) -> Result<Option<ApiToken>, FleetError> {
        Ok(crate::tokens::find(self.ctx.store.as_ref(), id)?)
    }

    /// Whether token `id` exists and is not revoked.
    pub fn token_live(&self, id: &str) -> Result<bool, FleetError> {
        Ok(self.token(id)?.is_some_and(|t| !t.revoked))
    }

    /// One account (secrets included: callers must not show them).
    pub fn account(&self, id: &str) -> Result<Option<Account>, FleetError> {
        Ok(self.ctx.store.get_account(id)?)
    }

    /// One profile.
    pub fn profile(&self, name: &str) -> Result<Option<Profile>, FleetError> {
        Ok(self.ctx.store.get_profile(name)?)
    }

    /// Launch events as they happen, for metrics.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<FleetEvent> {
        self.ctx.events.subscribe()
    }

    /// The configuration the tree runs with.
    pub fn config(&self) -> &FleetConfig {
        &self.ctx.config
    }

    /// Accepts a launch: validated, stored and flushed, then queued.
    pub async fn launch(&self, ask: NewLaunch) -> Result<Launched, FleetError> {
        ask.check_bounds().map_err(FleetError::Invalid)?;
        let store = &self.ctx.store;
        let Some(profile) = store.get_profile(&ask.profile)? else {
            return Err(FleetError::Invalid(format!(
                "unknown profile {:?}",
                ask.profile
            )));
        };
        self.can_fit(&profile)?;
        let digest = match &ask.body_digest {
            Some(digest) => digest.clone(),
            None => {
                let body =
                    serde_json::to_vec(&ask).map_err(|e| FleetError::Invalid(e.to_string()))?;
                Sha256::digest(&body)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            }
        };
        // Serializes the checks and the writes (instance limits and
        // idempotency keys hold under concurrency), not the flush: launches
        // waiting for the disk share one (the store commits in groups).
        let serial = self.launching.lock().await;
        if let Some(key) = &ask.idempotency_key
            && let Some(existing) = store.find_request_by_key(&ask.client, key)?
        {
            drop(serial);
            if existing.body_digest != digest {
                return Err(FleetError::IdempotencyConflict);
            }
            let instances = store.request_instances(&existing.id)?;
            // What a replay answers is durable, even if the first launch's
            // flush has not finished yet.
            store.flush().await?;
            // The first launch may have failed its flush (a shared store
            // without quorum, answered 503) and so never reached the
            // dispatcher, though its writes were committed later.
            self.ctx.tell_dispatcher(DispatcherMsg::Submit {
                request_id: existing.id.clone(),
            });
            return Ok(Launched {
                request: existing,
                instances,
                replayed: true,
            });
        }
        if let Some(limit) = ask.instance_limit {
            let held = store
                .list_instances(&InstanceFilter {
                    client: Some(ask.client.clone()),
                    ..InstanceFilter::live()
                })?
                .len();
            if held + ask.count as usize > limit as usize {
                return Err(FleetError::LimitReached(format!(
                    "client {} holds {held} instance(s); its limit is {limit}",
                    ask.client
                )));
            }
        }
        let now = Utc::now();
        let config = &self.ctx.config;
        let deadline = ask
            .deadline_secs
            .map_or(config.default_deadline, Duration::from_secs);
        let request = LaunchRequest {
            id: new_id(),
            client: ask.client.clone(),
            idempotency_key: ask.idempotency_key.clone(),
            body_digest: digest,
            profile: ask.profile.clone(),
            count: ask.count,
            name_prefix: ask
                .name_prefix
                .clone()
                .unwrap_or_else(|| ask.profile.clone()),
            user_data: ask.user_data.clone(),
            metadata: ask.metadata.clone(),
            public_key: ask.public_key.clone(),
            hints: ask.hints.clone(),
            expires_in_secs: ask.expires_in_secs,
            deadline: now + chrono::Duration::from_std(deadline).unwrap_or_default(),
            max_attempts: ask.max_attempts.unwrap_or(config.default_max_attempts),
            created_at: now,
            replace_lost: ask.replace_lost,
            tags: ask.tags.clone(),
        };
        let instances: Vec<Instance> = (0..ask.count)
            .map(|index| {
                let name = if ask.exact_name && ask.count == 1 {
                    request.name_prefix.clone()
                } else {
                    format!("{}-{index}", request.name_prefix)
                };
                Instance::pending(&request, index, name)
            })
            .collect();
        match store.insert_request(&request, &instances)? {
            Inserted::Existing(existing) => {
                drop(serial);
                if existing.body_digest != request.body_digest {
                    return Err(FleetError::IdempotencyConflict);
                }
                let instances = store.request_instances(&existing.id)?;
                store.flush().await?;
                self.ctx.tell_dispatcher(DispatcherMsg::Submit {
                    request_id: existing.id.clone(),
                });
                return Ok(Launched {
                    request: *existing,
                    instances,
                    replayed: true,
                });
            }
            Inserted::New => {}
        }
        for instance in &instances {
            store.append_event(
                &instance.id,
                &Event {
                    at: now,
                    state: InstanceState::Pending,
                    account_region: None,
                    message: "accepted".into(),
                    detail: None,
                    repeated: 0,
                    last_at: None,
                },
            )?;
        }
        drop(serial);
        store.flush().await?;
        self.ctx.tell_dispatcher(DispatcherMsg::Submit {
            request_id: request.id.clone(),
        });
        Ok(Launched {
            request,
            instances,
            replayed: false,
        })
    }

    /// Asks for an instance to be deleted; returns it as it is now.
    pub async fn delete(&self, instance_id: &str) -> Result<Instance, FleetError> {
        if self.ctx.store.get_instance(instance_id)?.is_none() {
            return Err(FleetError::NotFound(format!("instance {instance_id}")));
        }
        let dispatcher = self
            .ctx
            .dispatcher()
            .ok_or_else(|| FleetError::Unavailable("dispatcher restarting".into()))?;
        dispatcher
            .call(
                |reply| DispatcherMsg::Delete {
                    instance_id: instance_id.to_owned(),
                    reply,
                },
                Some(self.ctx.config.probe_timeout),
            )
            .await
            .map_err(|e| FleetError::Unavailable(e.to_string()))?;
        self.ctx.store.flush().await?;
        self.ctx
            .store
            .get_instance(instance_id)?
            .ok_or_else(|| FleetError::NotFound(format!("instance {instance_id}")))
    }

    /// One instance without its timeline (what polling clients ask for).
    pub fn instance_alone(&self, id: &str) -> Result<Option<Instance>, FleetError> {
        Ok(self.ctx.store.get_instance(id)?)
    }

    /// One instance with its timeline.
    pub fn instance(&self, id: &str) -> Result<Option<(Instance, Vec<Event>)>, FleetError> {
        let Some(instance) = self.ctx.store.get_instance(id)? else {
            return Ok(None);
        };
        let events = self.ctx.store.events(id)?;
        Ok(Some((instance, events)))
    }

    /// Instances matching `filter`.
    pub fn instances(&self, filter: &InstanceFilter) -> Result<Vec<Instance>, FleetError> {
        Ok(self.ctx.store.list_instances(filter)?)
    }

    /// Every account-region's latest status.
    pub fn regions(&self) -> Vec<RegionStatus> {
        self.ctx.board.snapshot()
    }

    /// How every account stands, in id order: its supervisor's view, or
    /// `disabled` for an account the operator switched off.
    pub fn account_statuses(&self) -> Result<Vec<AccountStatus>, FleetError> {
        Ok(self.account_statuses_of(&self.ctx.store.list_accounts()?))
    }

    /// Like [`Fleet::account_statuses`], for accounts the caller has read.
    pub fn account_statuses_of(&self, accounts: &[Account]) -> Vec<AccountStatus> {
        accounts
            .iter()
            .map(|a| {
                self.ctx
                    .accounts
                    .get(&a.id)
                    .unwrap_or_else(|| AccountStatus {
                        health: if a.enabled {
                            AccountHealth::Connecting
                        } else {
                            AccountHealth::Disabled
                        },
                        reason: (!a.enabled).then(|| "disabled by the operator".to_owned()),
                        since: a.created_at,
                        project_id: None,
                        regions: Vec::new(),
                        account_id: a.id.clone(),
                        account: a.name.clone(),
                    })
            })
            .collect()
    }

    /// Account id → name, for views that name providers.
    pub fn account_names(&self) -> Result<std::collections::HashMap<String, String>, FleetError> {
        Ok(self.ctx.store.account_names()?.into_iter().collect())
    }

    /// Every account (secrets included: callers must not show them).
    pub fn accounts(&self) -> Result<Vec<Account>, FleetError> {
        Ok(self.ctx.store.list_accounts()?)
    }

    /// Refuses a profile that no enabled account-region could ever boot:
    /// it would wait out its deadline. A region's own resolution (which
    /// knows its pins and images) decides; one that has not resolved the
    /// profile yet is judged by its flavors, and one not reached yet gets
    /// the benefit of the doubt.
    fn can_fit(&self, profile: &Profile) -> Result<(), FleetError> {
        let board = self.ctx.board.snapshot();
        let enabled: Vec<&RegionStatus> = board.iter().filter(|s| s.enabled).collect();
        let could_boot = |s: &&RegionStatus| match s.profiles.get(&profile.name) {
            Some(ProfileFit::Fits { .. } | ProfileFit::NotNow { .. }) => true,
            Some(ProfileFit::Unresolvable { .. }) => !s.connected,
            None => s
                .flavors
                .as_ref()
                .is_none_or(|f| f.iter().any(|shape| shape.fits(profile))),
        };
        if enabled.is_empty() || enabled.iter().any(could_boot) {
            return Ok(());
        }
        Err(FleetError::Invalid(format!(
            "no enabled account-region can boot profile {:?} ({} vCPU, {} MiB RAM, {} GB disk, image {:?}) on any of its {} flavor lists",
            profile.name,
            profile.min_vcpus,
            profile.min_ram_mb,
            profile.min_disk_gb,
            profile.image,
            enabled.len()
        )))
    }

    /// Adds or replaces an account and (re)starts its supervisor; one on
    /// another's project is refused ([`Fleet::check_account`]).
    pub async fn put_account(&self, mut account: Account) -> Result<Account, FleetError> {
        if account.id.is_empty() {
            account.id = new_id();
        }
        account.check_bounds().map_err(FleetError::Invalid)?;
        self.check_account(&account)?;
        self.ctx.store.put_account(&account)?;
        self.ctx.store.flush().await?;
        let _ = self
            .root
            .send_message(RootMsg::AccountChanged(account.id.clone()));
        Ok(account)
    }

    /// Authenticates as `account` and lists the compute regions it would
    /// use, with the fleet's own HTTP client (its timeouts, its TLS
    /// roots): the check a registration can ask for before it is saved.
    pub async fn test_connection(&self, account: &Account) -> Result<Vec<String>, FleetError> {
        let session = crate::openstack::Session::new(self.ctx.client.clone(), account.auth_spec());
        let catalog = session
            .catalog()
            .await
            .map_err(|e| FleetError::Invalid(format!("connection test failed: {e}")))?;
        let regions: Vec<String> = catalog
            .regions("compute", account.interface)
            .into_iter()
            .filter(|r| account.regions.is_empty() || account.regions.contains(r))
            .collect();
        if regions.is_empty() {
            return Err(FleetError::Invalid(
                "connection test: no compute region in the catalog".into(),
            ));
        }
        Ok(regions)
    }

    /// Refuses an account on the project (Keystone, project, regions) of
    /// another, as registrations declare them or as authentication found.
    pub fn check_account(&self, account: &Account) -> Result<(), FleetError> {
        let others = self.ctx.store.list_accounts()?;
        let holder = crate::one_project::declared_clash(account, &others)
            .map(|other| other.name.clone())
            .or_else(|| self.ctx.claims.holder_of(account));
        match holder {
            Some(holder) => Err(FleetError::Conflict(format!(
                "account {}: {}",
                account.name,
                crate::one_project::clash_message(&holder)
            ))),
            None => Ok(()),
        }
    }

    /// Removes an account and stops its actors; refused while it holds
    /// instances (placed there and not finished), whose servers nobody
    /// would manage any more.
    pub async fn remove_account(&self, id: &str) -> Result<(), FleetError> {
        let Some(account) = self.ctx.store.get_account(id)? else {
            return Err(FleetError::NotFound(format!("account {id}")));
        };
        let held = self
            .ctx
            .store
            .list_instances(&InstanceFilter {
                account_id: Some(id.to_owned()),
                ..InstanceFilter::live()
            })?
            .iter()
            .filter(|i| i.state != InstanceState::Pending)
            .count();
        if held > 0 {
            return Err(FleetError::Conflict(format!(
                "account {} still holds {held} instance(s); drain it and delete them first",
                account.name
            )));
        }
        if !self.ctx.store.delete_account(id)? {
            return Err(FleetError::NotFound(format!("account {id}")));
        }
        self.ctx.store.flush().await?;
        let _ = self
            .root
            .send_message(RootMsg::AccountRemoved(id.to_owned()));
        Ok(())
    }

    /// The profile for explicit minima and an image, stored under a name
    /// derived from them (so the same ask finds the same profile) for
    /// regions to resolve like any other.
    pub async fn ad_hoc_profile(&self, shape: Profile) -> Result<String, FleetError> {
        let profile = Profile {
            name: crate::profiles::ad_hoc_name(&shape),
            ..shape
        };
        if self.ctx.store.get_profile(&profile.name)?.is_none() {
            self.put_profile(profile.clone()).await?;
        }
        Ok(profile.name)
    }

    /// Every profile.
    pub fn profiles(&self) -> Result<Vec<Profile>, FleetError> {
        Ok(self.ctx.store.list_profiles()?)
    }

    /// Stores a client's new key pair; a name the client uses is a
    /// conflict (Nova's).
    pub async fn add_keypair(&self, keypair: KeyPair) -> Result<(), FleetError> {
        crate::bounds::text("name", &keypair.name, crate::bounds::MAX_TEXT)
            .map_err(FleetError::Invalid)?;
        if self
            .ctx
            .store
            .get_keypair(&keypair.client, &keypair.name)?
            .is_some()
        {
            return Err(FleetError::Conflict(format!(
                "Key pair '{}' already exists.",
                keypair.name
            )));
        }
        self.ctx.store.put_keypair(&keypair)?;
        self.ctx.store.flush().await?;
        Ok(())
    }

    /// One of a client's key pairs.
    pub fn keypair(&self, client: &str, name: &str) -> Result<Option<KeyPair>, FleetError> {
        Ok(self.ctx.store.get_keypair(client, name)?)
    }

    /// A client's key pairs.
    pub fn keypairs(&self, client: &str) -> Result<Vec<KeyPair>, FleetError> {
        Ok(self.ctx.store.list_keypairs(client)?)
    }

    /// Removes a client's key pair (servers booted with it keep it).
    pub async fn remove_keypair(&self, client: &str, name: &str) -> Result<(), FleetError> {
        if !self.ctx.store.delete_keypair(client, name)? {
            return Err(FleetError::NotFound(format!("key pair {name}")));
        }
        self.ctx.store.flush().await?;
        Ok(())
    }

    /// Adds a profile; one of that name is a conflict, so a create does
    /// not silently replace what others launch with.
    pub async fn add_profile(&self, profile: Profile) -> Result<(), FleetError> {
        if self.ctx.store.get_profile(&profile.name)?.is_some() {
            return Err(FleetError::Conflict(format!(
                "profile {} exists; PUT /v1/profiles/{} replaces it",
                profile.name, profile.name
            )));
        }
        self.put_profile(profile).await
    }

    /// Removes a profile; refused while unfinished instances use it (their
    /// boot timeout and reroutes need it).
    pub async fn remove_profile(&self, name: &str) -> Result<(), FleetError> {
        if self.ctx.store.get_profile(name)?.is_none() {
            return Err(FleetError::NotFound(format!("profile {name}")));
        }
        let users = self.ctx.store.list_instances(&InstanceFilter {
            profile: Some(name.to_owned()),
            ..InstanceFilter::live()
        })?;
        if !users.is_empty() {
            return Err(FleetError::Conflict(format!(
                "profile {name} is used by {} instance(s) that are not finished",
                users.len()
            )));
        }
        self.ctx.store.delete_profile(name)?;
        self.ctx.store.flush().await?;
        self.refresh_regions();
        Ok(())
    }

    /// Asks every region to read profiles and limits again.
    fn refresh_regions(&self) {
        for status in self.ctx.board.snapshot() {
            if let Some(region) = self.ctx.region(&status.account_id, &status.region) {
                let _ = region.send_message(RegionMsg::Refresh { full: true });
            }
        }
    }

    /// Adds or replaces a profile; regions resolve it on their next refresh.
    pub async fn put_profile(&self, profile: Profile) -> Result<(), FleetError> {
        profile.check_bounds().map_err(FleetError::Invalid)?;
        self.ctx.store.put_profile(&profile)?;
        self.ctx.store.flush().await?;
        self.refresh_regions();
        Ok(())
    }

    /// Makes an actor panic or hang, to prove supervision restarts it.
    pub fn inject_chaos(&self, target: ChaosTarget, chaos: Chaos) -> Result<(), FleetError> {
        let sent = match target {
            ChaosTarget::Dispatcher => self
                .ctx
                .dispatcher()
                .map(|d| d.send_message(DispatcherMsg::Chaos(chaos)).is_ok()),
            ChaosTarget::Region { account_id, region } => self
                .ctx
                .region(&account_id, &region)
                .map(|r| r.send_message(RegionMsg::Chaos(chaos)).is_ok()),
        };
        match sent {
            Some(true) => Ok(()),
            _ => Err(FleetError::NotFound("actor".into())),
        }
    }

    /// The actor id of a region actor (changes when it is restarted).
    pub fn region_actor_id(&self, account_id: &str, region: &str) -> Option<String> {
        self.ctx
            .region(account_id, region)
            .map(|r| r.get_id().to_string())
    }

    /// The actor id of the dispatcher (changes when it is restarted).
    pub fn dispatcher_actor_id(&self) -> Option<String> {
        self.ctx.dispatcher().map(|r| r.get_id().to_string())
    }

    /// Stops the tree; in-flight provider work is left for the next start
    /// to adopt. Works through a shared reference: whoever else holds the
    /// fleet (the API, the watchdog) must not keep the tree alive.
    pub async fn shutdown(&self) {
        self.root.stop(Some("shutdown".into()));
        if let Some(task) = self.root_task.lock().await.take() {
            match tokio::time::timeout(Duration::from_secs(10), task).await {
                Ok(_) => tracing::info!("actor tree stopped"),
                Err(_) => tracing::warn!("actor tree did not stop within 10 s"),
            }
        }
        let _ = self.ctx.store.flush().await;
    }
}
