//! The domain: accounts, profiles, launch requests, instances and their
//! events, API tokens. These are what the store keeps and the facade shows;
//! none of them holds a provider's wire format.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::openstack::{
    ApplicationCredentialRef, AuthSpec, Credentials, Domain, IdentityVersion, Interface, Named,
};

/// A new time-ordered id: sorting ids sorts by creation.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// How an account authenticates, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum AccountAuth {
    /// User and password, scoped to a project.
    Password {
        /// The user.
        user: Named,
        /// The project (v2.0 tenant).
        project: Named,
    },
    /// A Keystone v3 application credential.
    ApplicationCredential {
        /// The credential.
        credential: ApplicationCredentialRef,
    },
}

/// Per-account limits on how hard each of its regions is driven.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct RegionLimits {
    /// Mutating calls (create, delete, import) per second per region.
    pub mutating_per_sec: f64,
    /// How many mutating calls may go at once after a quiet spell (a token
    /// bucket's depth): the rate holds over time, and a burst of launches
    /// is not sent one every 1/rate seconds.
    pub mutating_burst: u32,
    /// Read calls (show, list, limits) per second per region.
    pub read_per_sec: f64,
    /// Creates in flight at once per region.
    pub max_concurrent_creates: u32,
}

impl Default for RegionLimits {
    fn default() -> Self {
        RegionLimits {
            mutating_per_sec: 5.0,
            mutating_burst: 5,
            read_per_sec: 20.0,
            max_concurrent_creates: 10,
        }
    }
}

impl RegionLimits {
    /// Why these limits cannot drive a region: a rate of zero would never
    /// send, and beyond 1000 no provider's API keeps up.
    pub fn check_bounds(&self) -> Result<(), String> {
        let ok = self.mutating_per_sec > 0.0
            && self.mutating_per_sec <= 1000.0
            && self.read_per_sec > 0.0
            && self.read_per_sec <= 1000.0
            && (1..=1000).contains(&self.mutating_burst)
            && (1..=1000).contains(&self.max_concurrent_creates);
        ok.then_some(()).ok_or_else(|| {
            "limits: rates in (0, 1000] per second, mutating_burst and max_concurrent_creates 1 to 1000".into()
        })
    }
}

/// Flavor and image names an account forces for a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Pin {
    /// Flavor name.
    pub flavor: Option<String>,
    /// Image name.
    pub image: Option<String>,
}

/// Credentials on one provider and how to use them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// Stable id.
    pub id: String,
    /// Operator-chosen name, unique (usually the provider's name).
    pub name: String,
    /// Keystone URL.
    pub auth_url: Url,
    /// Keystone API version.
    pub identity_version: IdentityVersion,
    /// Catalog interface.
    #[serde(default)]
    pub interface: Interface,
    /// Who the account is.
    pub auth: AccountAuth,
    /// Password or application-credential secret. Never serialized: the
    /// store seals it separately.
    #[serde(skip, default = "empty_secret")]
    pub secret: SecretString,
    /// Regions to use; all regions with compute when empty.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Networks to attach new servers to; Nova's `auto` when empty.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Off: no new launches, no calls.
    pub enabled: bool,
    /// Draining: no new launches; existing instances stay managed.
    pub drain: bool,
    /// Higher is preferred by placement.
    pub priority: i32,
    /// Rate and concurrency settings.
    #[serde(default)]
    pub limits: RegionLimits,
    /// Profile name → pinned flavor/image names.
    #[serde(default)]
    pub pins: BTreeMap<String, Pin>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

fn empty_secret() -> SecretString {
    SecretString::from("")
}

impl Account {
    /// What the OpenStack client needs to authenticate as this account.
    pub fn auth_spec(&self) -> AuthSpec {
        let credentials = match &self.auth {
            AccountAuth::Password { user, project } => Credentials::Password {
                user: user.clone(),
                password: self.secret.clone(),
                project: project.clone(),
            },
            AccountAuth::ApplicationCredential { credential } => {
                Credentials::ApplicationCredential {
                    credential: credential.clone(),
                    secret: self.secret.clone(),
                }
            }
        };
        AuthSpec {
            auth_url: self.auth_url.clone(),
            identity_version: self.identity_version,
            credentials,
            interface: self.interface,
        }
    }

    /// Whether placement may send new launches here.
    pub fn accepts_launches(&self) -> bool {
        self.enabled && !self.drain
    }

    /// Why this account cannot be stored, naming the field.
    pub fn check_bounds(&self) -> Result<(), String> {
        use crate::bounds::{self, MAX_TEXT};
        bounds::name("name", &self.name)?;
        bounds::url("auth_url", &self.auth_url)?;
        let named = |field: &str, named: &Named| match named {
            Named::Id(id) => bounds::text(field, id, MAX_TEXT),
            Named::Name { name, domain } => {
                bounds::text(field, name, MAX_TEXT)?;
                match domain {
                    Domain::Id(d) | Domain::Name(d) => bounds::text(field, d, MAX_TEXT),
                }
            }
        };
        match &self.auth {
            AccountAuth::Password { user, project } => {
                named("user", user)?;
                named("project", project)?;
            }
            AccountAuth::ApplicationCredential { credential } => match credential {
                ApplicationCredentialRef::Id(id) => {
                    bounds::text("application_credential.id", id, MAX_TEXT)?;
                }
                ApplicationCredentialRef::Name { name, user } => {
                    bounds::text("application_credential.name", name, MAX_TEXT)?;
                    named("application_credential.user", user)?;
                }
            },
        }
        let secret = self.secret.expose_secret();
        if secret.is_empty() || secret.len() > bounds::MAX_SECRET {
            return Err(format!(
                "the secret: 1 to {} characters",
                bounds::MAX_SECRET
            ));
        }
        bounds::list("regions", &self.regions)?;
        bounds::list("networks", &self.networks)?;
        self.limits.check_bounds()?;
        bounds::list("pins", self.pins.keys())?;
        for pin in self.pins.values() {
            bounds::list("pins", pin.flavor.iter().chain(&pin.image))?;
        }
        Ok(())
    }
}

/// A client's key pair, by name (the OpenStack façade's `os-keypairs`):
/// only its public key is kept, and it is imported into a region when a
/// launch there names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPair {
    /// Owning client.
    pub client: String,
    /// Name, unique per client.
    pub name: String,
    /// One OpenSSH public key line.
    pub public_key: String,
    /// When it was imported.
    pub created_at: DateTime<Utc>,
}

/// A provider-independent shape, resolved per account-region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Profile {
    /// Name clients ask for.
    pub name: String,
    /// At least this many vCPUs.
    pub min_vcpus: u32,
    /// At least this much RAM, MiB.
    pub min_ram_mb: u64,
    /// At least this much root disk, GB.
    pub min_disk_gb: u64,
    /// Image name.
    pub image: String,
    /// Seconds a server may take to become ACTIVE.
    pub boot_timeout_secs: u64,
}

impl Profile {
    /// Most vCPUs a profile may ask for: more than any cloud's flavors.
    pub const MAX_VCPUS: u32 = 1024;
    /// Most RAM, MiB (16 TiB).
    pub const MAX_RAM_MB: u64 = 16 * 1024 * 1024;
    /// Most root disk, GB (1 PB).
    pub const MAX_DISK_GB: u64 = 1_000_000;

    /// Why this profile cannot be stored (the minima cannot be a real
    /// machine, a name is malformed), naming the field.
    pub fn check_bounds(&self) -> Result<(), String> {
        crate::bounds::name("name", &self.name)?;
        crate::bounds::text("image", &self.image, crate::bounds::MAX_TEXT)?;
        if self.min_vcpus == 0 || self.min_ram_mb == 0 {
            return Err("min_vcpus and min_ram_mb must be positive".into());
        }
        if !(1..=86_400).contains(&self.boot_timeout_secs) {
            return Err("boot_timeout_secs: 1 to 86400".into());
        }
        if self.min_vcpus > Self::MAX_VCPUS {
            return Err(format!("min_vcpus: at most {}", Self::MAX_VCPUS));
        }
        if self.min_ram_mb > Self::MAX_RAM_MB {
            return Err(format!("min_ram_mb: at most {}", Self::MAX_RAM_MB));
        }
        if self.min_disk_gb > Self::MAX_DISK_GB {
            return Err(format!("min_disk_gb: at most {}", Self::MAX_DISK_GB));
        }
        Ok(())
    }
}

/// Where a client allows or forbids its instances to go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct PlacementHints {
    /// Only these account names, if any.
    pub allow_providers: Vec<String>,
    /// Never these account names.
    pub deny_providers: Vec<String>,
    /// Only these regions, if any.
    pub allow_regions: Vec<String>,
    /// Never these regions.
    pub deny_regions: Vec<String>,
}

impl PlacementHints {
    /// Why these hints cannot be stored, naming the list.
    pub fn check_bounds(&self) -> Result<(), String> {
        crate::bounds::list("placement.allow_providers", &self.allow_providers)?;
        crate::bounds::list("placement.deny_providers", &self.deny_providers)?;
        crate::bounds::list("placement.allow_regions", &self.allow_regions)?;
        crate::bounds::list("placement.deny_regions", &self.deny_regions)
    }
}

/// A client's ask for `count` instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchRequest {
    /// Stable id; time-ordered, so it is also the FIFO order.
    pub id: String,
    /// Who asked.
    pub client: String,
    /// The client's idempotency key, if it sent one.
    pub idempotency_key: Option<String>,
    /// Digest of the request body, to refuse a reused key with a new body.
    pub body_digest: String,
    /// Profile name.
    pub profile: String,
    /// How many instances.
    pub count: u32,
    /// Prefix of instance names.
    pub name_prefix: String,
    /// cloud-init user data.
    pub user_data: Option<Vec<u8>>,
    /// Metadata passed to every server.
    pub metadata: BTreeMap<String, String>,
    /// OpenSSH public key to inject.
    pub public_key: Option<String>,
    /// Placement hints.
    pub hints: PlacementHints,
    /// Lease length from active, seconds.
    pub expires_in_secs: Option<u64>,
    /// When the request gives up on instances not yet active.
    pub deadline: DateTime<Utc>,
    /// Attempts allowed per instance.
    pub max_attempts: u32,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// Place an instance again when its active server vanishes, instead
    /// of ending it `lost`.
    #[serde(default)]
    pub replace_lost: bool,
    /// The client's tags (the OpenStack façade's server tags).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl LaunchRequest {
    /// How long the request gives an instance to become active: from
    /// acceptance to the deadline, and again from a replacement.
    pub fn patience(&self) -> chrono::Duration {
        self.deadline - self.created_at
    }
}

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Waiting for a place.
    Pending,
    /// A region was chosen; the create is about to be (or being) sent.
    Scheduled,
    /// The provider accepted the create; the server is building.
    Building,
    /// The server is ACTIVE.
    Active,
    /// A delete was asked and is being carried out.
    Deleting,
    /// The server is gone.
    Deleted,
    /// Given up before becoming active.
    Failed,
    /// Was active, then its server vanished from the provider (deleted
    /// behind our back): nothing of it is left to manage.
    Lost,
}

impl InstanceState {
    /// Every state in which something may still happen: the working set,
    /// bounded by capacity, unlike the finished records that accumulate.
    pub const LIVE: [InstanceState; 5] = [
        InstanceState::Pending,
        InstanceState::Scheduled,
        InstanceState::Building,
        InstanceState::Active,
        InstanceState::Deleting,
    ];

    /// Whether nothing more will happen to the instance.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            InstanceState::Deleted | InstanceState::Failed | InstanceState::Lost
        )
    }

    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Scheduled => "scheduled",
            InstanceState::Building => "building",
            InstanceState::Active => "active",
            InstanceState::Deleting => "deleting",
            InstanceState::Deleted => "deleted",
            InstanceState::Failed => "failed",
            InstanceState::Lost => "lost",
        }
    }
}

/// One try at creating an instance's server in one account-region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Fresh id per attempt; tags and names carry it.
    pub id: String,
    /// Account id.
    pub account_id: String,
    /// Region name.
    pub region: String,
    /// Nova's server id once the create was accepted.
    pub server_id: Option<String>,
    /// Key pair imported for this attempt.
    pub keypair: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// One server OpenMultiStack creates or created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// `<request id>-<index>`: an instance's request is its id's prefix.
    pub id: String,
    /// The launch request.
    pub request_id: String,
    /// The owning client.
    pub client: String,
    /// Instance name (prefix and index).
    pub name: String,
    /// Profile name.
    pub profile: String,
    /// Current state.
    pub state: InstanceState,
    /// The current (or last) attempt.
    pub attempt: Option<Attempt>,
    /// Attempts made so far.
    pub attempts: u32,
    /// Primary address once active.
    pub address: Option<String>,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// Lease end.
    pub expires_at: Option<DateTime<Utc>>,
    /// The provider's status of an active instance's server when it is
    /// not ACTIVE (SHUTOFF, ERROR, ...): what the provider holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
    /// When a replaced instance gives up (the request's deadline counts
    /// from acceptance, a replacement's from its loss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    /// Servers of this instance that vanished and were replaced.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replaced: u32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Instance {
    /// Instance `index` of `request`, named `name`, as a launch accepts
    /// it: pending, never tried.
    pub fn pending(request: &LaunchRequest, index: u32, name: String) -> Instance {
        Instance {
            id: Instance::id_for(&request.id, index),
            request_id: request.id.clone(),
            client: request.client.clone(),
            name,
            profile: request.profile.clone(),
            state: InstanceState::Pending,
            attempt: None,
            attempts: 0,
            address: None,
            failure: None,
            expires_at: None,
            provider_status: None,
            deadline: None,
            replaced: 0,
            created_at: request.created_at,
            updated_at: request.created_at,
        }
    }

    /// When the instance gives up waiting for a place.
    pub fn deadline(&self, request: &LaunchRequest) -> DateTime<Utc> {
        self.deadline.unwrap_or(request.deadline)
    }

    /// The id of instance `index` of request `request_id`.
    pub fn id_for(request_id: &str, index: u32) -> String {
        format!("{request_id}-{index:05}")
    }

    /// "provider/region" of the current attempt, for events and logs.
    pub fn placement(&self) -> Option<(String, String)> {
        self.attempt
            .as_ref()
            .map(|a| (a.account_id.clone(), a.region.clone()))
    }
}

/// Something that happened to an instance; its timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When.
    pub at: DateTime<Utc>,
    /// State after the event.
    pub state: InstanceState,
    /// Account name and region, when it concerns one.
    pub account_region: Option<String>,
    /// What happened and why, in words.
    pub message: String,
    /// The particulars behind a summary (every region passed over, why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How many more times the same thing happened right after (one event
    /// with a count, not a timeline of identical lines).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeated: u32,
    /// When it last happened, if it repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<DateTime<Utc>>,
}

impl Event {
    /// Whether it tells of a failure: an attempt that failed or was
    /// refused, an instance that failed or lost its server (pages show it
    /// red, not as the waiting that follows).
    pub fn is_failure(&self) -> bool {
        matches!(self.state, InstanceState::Failed | InstanceState::Lost)
            || self.message.starts_with(crate::transitions::ATTEMPT_FAILED)
            || self.message.starts_with(crate::transitions::REGION_REFUSED)
    }

    /// Whether `next` says the same as this event (state, place, words).
    pub fn is_repeated_by(&self, next: &Event) -> bool {
        self.state == next.state
            && self.account_region == next.account_region
            && self.message == next.message
    }

    /// Counts `next`, which says the same, into this event.
    pub fn absorb(&mut self, next: &Event) {
        self.repeated += 1;
        self.last_at = Some(next.at);
    }
}

/// Role of an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages accounts, profiles and tokens; sees every instance.
    Admin,
    /// Launches and sees only its own instances.
    Client,
}

/// An API token, stored as the SHA-256 of its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Stable id (shown in lists; not the secret).
    pub id: String,
    /// Human name; also the client identity of its instances.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Hex SHA-256 of the token value.
    pub hash: String,
    /// Most instances the client may hold at once.
    pub instance_limit: Option<u32>,
    /// Revoked tokens authenticate no more.
    pub revoked: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
}
