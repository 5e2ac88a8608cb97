//! The simulated clouds' state: users, tokens, servers, key pairs, quotas,
//! and the counters tests read back. Time moves servers along: a server's
//! status is computed from when it was created, not by a background task.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::config::{FlavorConfig, ProviderConfig, QuotaConfig, RegionConfig, SimConfig};
use crate::faults::Faults;

/// Every provider, indexed as in the config.
#[derive(Debug)]
pub struct World {
    /// Providers in config order.
    pub providers: Vec<Provider>,
}

/// One provider's identity data and regions.
#[derive(Debug)]
pub struct Provider {
    /// Its configuration (users, lifetimes, ...).
    pub config: ProviderConfig,
    /// Users with their ids.
    pub users: Vec<User>,
    /// Issued tokens by value.
    pub tokens: HashMap<String, TokenRecord>,
    /// Keystone's faults.
    pub keystone_faults: Faults,
    /// Keystone's rate window.
    pub keystone_window: VecDeque<Instant>,
    /// Keystone's call counters.
    pub keystone_counters: Counters,
    /// Regions in config order.
    pub regions: Vec<Region>,
    /// URL of Keystone once it listens.
    pub keystone_url: String,
}

/// A user with the ids Keystone gave it and its project.
#[derive(Debug, Clone)]
pub struct User {
    /// User id.
    pub id: String,
    /// User name.
    pub name: String,
    /// Password.
    pub password: String,
    /// Domain id (lowercase name).
    pub domain_id: String,
    /// Domain name.
    pub domain_name: String,
    /// Project id.
    pub project_id: String,
    /// Project name.
    pub project_name: String,
    /// Whether the user has the admin role.
    pub admin: bool,
}

/// An issued token.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    /// Index of the user in `Provider::users`.
    pub user: usize,
    /// Local expiry.
    pub expires: Instant,
}

/// One region's compute and image state.
#[derive(Debug)]
pub struct Region {
    /// Its configuration.
    pub config: RegionConfig,
    /// Current faults.
    pub faults: Faults,
    /// Quota by project id (projects without an entry use the config's).
    pub quotas: HashMap<String, QuotaConfig>,
    /// Image ids by name.
    pub images: Vec<(String, String)>,
    /// The one network every server attaches to.
    pub network_id: String,
    /// Servers by id, including those being deleted.
    pub servers: BTreeMap<String, ServerRecord>,
    /// Deleted servers, oldest first: Nova keeps their rows (soft delete)
    /// and lists them as `DELETED` to a `changes-since` query.
    pub tombstones: VecDeque<ServerRecord>,
    /// Key pairs by (user id, name).
    pub keypairs: BTreeMap<(String, String), KeypairRecord>,
    /// Counters for `/_sim/state`.
    pub counters: Counters,
    /// Calls within the last second, for the rate limit.
    pub recent_calls: VecDeque<Instant>,
    /// URL of the region's port once it listens.
    pub base_url: String,
    next_ip: u32,
}

/// A server and everything needed to render it at any moment.
#[derive(Debug, Clone)]
pub struct ServerRecord {
    /// Server id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Owning project.
    pub project_id: String,
    /// Creating user.
    pub user_id: String,
    /// Flavor at create.
    pub flavor: FlavorConfig,
    /// Image id.
    pub image_id: String,
    /// Key pair name.
    pub key_name: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Created, local clock.
    pub created: Instant,
    /// Created, wall clock.
    pub created_wall: DateTime<Utc>,
    /// Whether the build will end in ERROR.
    pub fails: bool,
    /// When DELETE was accepted.
    pub deleted: Option<Instant>,
    /// Stopped by `os-stop` (until `os-start`).
    pub stopped: bool,
    /// When it was last stopped or started: its `updated`.
    pub power_changed: Option<Instant>,
    /// Fixed IPv4 address.
    pub address: String,
    /// MAC address of its port.
    pub mac: String,
}

/// Where a server is in its life at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// BUILD, task_state `scheduling` (not yet on a host).
    Scheduling,
    /// BUILD, task_state `spawning`.
    Spawning,
    /// ACTIVE.
    Active,
    /// SHUTOFF after `os-stop`.
    Stopped,
    /// ERROR with a "No valid host" fault.
    Error,
    /// Still shown, task_state `deleting`.
    Deleting,
    /// Gone.
    Gone,
}

impl ServerRecord {
    /// The wall-clock time of the server's last change at `now` (Nova's
    /// `updated`, which `changes-since` compares with): its create, the
    /// start of spawning, the end of its build, its delete, its removal.
    pub fn updated_at(&self, now: Instant, build: Duration, delete: Duration) -> DateTime<Utc> {
        let deleted = || {
            self.deleted
                .map_or(build, |d| d.saturating_duration_since(self.created))
        };
        let since_create = match self.phase(now, build, delete) {
            Phase::Scheduling => Duration::ZERO,
            Phase::Spawning => build / 2,
            Phase::Error => build,
            Phase::Active | Phase::Stopped => self
                .power_changed
                .map_or(build, |s| s.saturating_duration_since(self.created)),
            Phase::Deleting => deleted(),
            Phase::Gone => deleted() + delete,
        };
        self.created_wall + chrono::Duration::from_std(since_create).unwrap_or_default()
    }

    /// The server's phase at `now` for a region with these timings.
    pub fn phase(&self, now: Instant, build: Duration, delete: Duration) -> Phase {
        if let Some(deleted) = self.deleted {
            return if now >= deleted + delete {
                Phase::Gone
            } else {
                Phase::Deleting
            };
        }
        let age = now.saturating_duration_since(self.created);
        if age < build / 2 {
            Phase::Scheduling
        } else if age < build {
            Phase::Spawning
        } else if self.fails {
            Phase::Error
        } else if self.stopped {
            Phase::Stopped
        } else {
            Phase::Active
        }
    }
}

/// A key pair.
#[derive(Debug, Clone)]
pub struct KeypairRecord {
    /// Name.
    pub name: String,
    /// OpenSSH public key.
    pub public_key: String,
    /// MD5 fingerprint.
    pub fingerprint: String,
    /// Owner.
    pub user_id: String,
}

/// What tests read back about a region.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Create calls that reached quota checking.
    pub creates: u64,
    /// Servers accepted (created): what seeded build failures count.
    pub accepted: u64,
    /// Creates refused with 403 quota.
    pub creates_refused_quota: u64,
    /// When calls were answered 429 (ms since the epoch).
    pub rate_limited: Vec<f64>,
    /// Calls by `METHOD /route`, each with its times (ms since the epoch).
    pub calls: BTreeMap<String, Vec<f64>>,
    /// Calls by `User-Agent`, with their times: which daemon of a
    /// cluster called when.
    pub agents: BTreeMap<String, Vec<f64>>,
    /// Servers returned by listings, all pages summed: what polling costs.
    pub servers_listed: u64,
    /// Accepted deletes of servers and key pairs, oldest first, with who
    /// asked (the newest [`MAX_DELETIONS`]): tests check that nobody's
    /// resources but one's own go.
    pub deletions: VecDeque<Deletion>,
}

/// One accepted delete.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Deletion {
    /// `server` or `keypair`.
    pub kind: &'static str,
    /// Server id, or key pair name.
    pub id: String,
    /// Server name, or key pair name.
    pub name: String,
    /// The deleted server's tags (none for key pairs).
    pub tags: Vec<String>,
    /// Name of the user whose token asked.
    pub by_user: String,
    /// The resource's project (servers) or owning user's id (key pairs).
    pub owner: String,
}

/// Deletes remembered per region for tests; a demo runs for days.
pub const MAX_DELETIONS: usize = 10_000;

impl Counters {
    /// Records an accepted delete, forgetting the oldest beyond the cap.
    pub fn deleted(&mut self, deletion: Deletion) {
        if self.deletions.len() >= MAX_DELETIONS {
            self.deletions.pop_front();
        }
        self.deletions.push_back(deletion);
    }
}

/// Deleted servers remembered per region for `changes-since` listings.
const MAX_TOMBSTONES: usize = 10_000;

/// Wall-clock milliseconds since the epoch, as the counters record.
pub fn now_ms() -> f64 {
    Utc::now().timestamp_micros() as f64 / 1000.0
}

/// Most timestamps kept per route.
const MAX_CALL_TIMES: usize = 20_000;

impl Counters {
    /// Records one call, by route and by the caller's `User-Agent`.
    pub fn record(&mut self, route: String, agent: &str) {
        let now = now_ms();
        for times in [
            self.calls.entry(route).or_default(),
            self.agents.entry(agent.to_owned()).or_default(),
        ] {
            if times.len() >= MAX_CALL_TIMES {
                times.remove(0);
            }
            times.push(now);
        }
    }
}

/// A random lowercase hex id of 32 characters, as Keystone uses.
pub fn hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl World {
    /// Builds the initial state from the config.
    pub fn new(config: &SimConfig) -> World {
        World {
            providers: config.providers.iter().map(Provider::new).collect(),
        }
    }

    /// Finds a provider by name.
    pub fn provider_index(&self, name: &str) -> Option<usize> {
        self.providers.iter().position(|p| p.config.name == name)
    }
}

impl Provider {
    fn new(config: &ProviderConfig) -> Provider {
        let mut projects: HashMap<(String, String), String> = HashMap::new();
        let users = config
            .users
            .iter()
            .map(|u| {
                let domain_id = u.domain.to_lowercase();
                let project_id = projects
                    .entry((domain_id.clone(), u.project.clone()))
                    .or_insert_with(hex_id)
                    .clone();
                User {
                    id: hex_id(),
                    name: u.name.clone(),
                    password: u.password.clone(),
                    domain_id,
                    domain_name: u.domain.clone(),
                    project_id,
                    project_name: u.project.clone(),
                    admin: u.admin,
                }
            })
            .collect();
        Provider {
            config: config.clone(),
            users,
            tokens: HashMap::new(),
            keystone_faults: config.keystone_faults.clone(),
            keystone_window: VecDeque::new(),
            keystone_counters: Counters::default(),
            regions: {
                // One Glance per provider, as in the captured cloud: an image
                // has the same id in every region that offers it.
                let mut image_ids: HashMap<String, String> = HashMap::new();
                config
                    .regions
                    .iter()
                    .map(|r| {
                        let mut region = Region::new(r);
                        for (id, name) in &mut region.images {
                            *id = image_ids
                                .entry(name.clone())
                                .or_insert_with(|| id.clone())
                                .clone();
                        }
                        region
                    })
                    .collect()
            },
            keystone_url: String::new(),
        }
    }

    /// Issues a token for user `user` valid for the configured lifetime.
    pub fn issue_token(&mut self, user: usize) -> (String, DateTime<Utc>, DateTime<Utc>) {
        let now = Instant::now();
        self.tokens.retain(|_, t| t.expires > now);
        let lifetime = Duration::from_secs_f64(self.config.token_lifetime_secs.max(0.0));
        let value = format!("gAAAAAB{}{}", hex_id(), hex_id());
        self.tokens.insert(
            value.clone(),
            TokenRecord {
                user,
                expires: now + lifetime,
            },
        );
        let issued = Utc::now();
        let expires = issued + chrono::Duration::from_std(lifetime).unwrap_or_default();
        (value, issued, expires)
    }

    /// The user a valid token belongs to.
    pub fn validate(&self, token: &str) -> Option<&User> {
        let record = self.tokens.get(token)?;
        (record.expires > Instant::now()).then(|| &self.users[record.user])
    }
}

impl Region {
    fn new(config: &RegionConfig) -> Region {
        Region {
            faults: config.faults.clone(),
            quotas: HashMap::new(),
            images: config
                .images
                .iter()
                .map(|name| (uuid::Uuid::new_v4().to_string(), name.clone()))
                .collect(),
            network_id: uuid::Uuid::new_v4().to_string(),
            servers: BTreeMap::new(),
            tombstones: VecDeque::new(),
            keypairs: BTreeMap::new(),
            counters: Counters::default(),
            recent_calls: VecDeque::new(),
            base_url: String::new(),
            next_ip: 10,
            config: config.clone(),
        }
    }

    /// Build and delete durations.
    pub fn timings(&self) -> (Duration, Duration) {
        (
            Duration::from_secs_f64(self.config.build_secs.max(0.0)),
            Duration::from_secs_f64(self.config.delete_secs.max(0.0)),
        )
    }

    /// Moves servers whose deletion has finished to the tombstones.
    pub fn purge(&mut self, now: Instant) {
        let (build, delete) = self.timings();
        let gone: Vec<String> = self
            .servers
            .iter()
            .filter(|(_, s)| s.phase(now, build, delete) == Phase::Gone)
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(mut server) = self.servers.remove(&id) {
                // Nova drops a deleted server's tags for good (so a
                // `tags` filter never finds it) and soft-deletes its
                // metadata.
                server.tags.clear();
                server.metadata.clear();
                if self.tombstones.len() >= MAX_TOMBSTONES {
                    self.tombstones.pop_front();
                }
                self.tombstones.push_back(server);
            }
        }
    }

    /// The project's quota here.
    pub fn quota(&self, project_id: &str) -> QuotaConfig {
        self.quotas
            .get(project_id)
            .copied()
            .unwrap_or(self.config.quota)
    }

    /// Instances, cores and RAM the project uses (deleting servers count
    /// until they are gone, as in Nova).
    pub fn usage(&self, project_id: &str) -> (i64, i64, i64) {
        self.servers
            .values()
            .filter(|s| s.project_id == project_id)
            .fold((0, 0, 0), |(i, c, r), s| {
                (i + 1, c + s.flavor.vcpus, r + s.flavor.ram)
            })
    }

    /// The next fixed address on the region's private network.
    pub fn allocate_address(&mut self) -> (String, String) {
        let n = self.next_ip;
        self.next_ip = self.next_ip.wrapping_add(1);
        let address = format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
        let mac = format!(
            "fa:16:3e:{:02x}:{:02x}:{:02x}",
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff
        );
        (address, mac)
    }

    /// Whether one more call this second exceeds the rate limit; records it.
    pub fn over_rate(&mut self, now: Instant) -> bool {
        over_rate(&mut self.recent_calls, self.faults.rate_limit_per_sec, now)
    }
}

/// Sliding one-second window shared by regions and Keystone.
pub fn over_rate(window: &mut VecDeque<Instant>, limit: Option<f64>, now: Instant) -> bool {
    let Some(limit) = limit else {
        return false;
    };
    while window
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(1))
    {
        window.pop_front();
    }
    if window.len() as f64 >= limit {
        return true;
    }
    window.push_back(now);
    false
}
