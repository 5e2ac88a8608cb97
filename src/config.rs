//! The configuration file (`/etc/openmultistack/oms.toml`), `OMS_*`
//! environment overrides, secrets read from files (systemd credentials),
//! and the conversion of declared accounts and profiles into the model,
//! each account on its own so one bad entry does not stop the others.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use oms_actors::FleetConfig;
use oms_actors::model::{Account, AccountAuth, Pin, Profile, RegionLimits};
use oms_actors::openstack::{ApplicationCredentialRef, Domain, IdentityVersion, Interface, Named};
use oms_web::{ApiConfig, SecureCookies};
use secrecy::SecretString;
use serde::Deserialize;

/// Default path of the configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/openmultistack/oms.toml";

/// The whole file. Every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the REST API.
    pub listen: SocketAddr,
    /// Where the store and the sealing key live.
    pub state_dir: PathBuf,
    /// JSON log lines.
    pub log_json: bool,
    /// A file holding an admin token value (a systemd credential, say);
    /// it is accepted as the admin token `config-admin`.
    pub admin_token_file: Option<PathBuf>,
    /// API limits.
    pub api: ApiSection,
    /// The operator pages.
    pub web: WebSection,
    /// The OpenStack façade.
    pub facade: FacadeSection,
    /// Actor tree timings.
    pub fleet: FleetSection,
    /// Where the state lives: sled (one daemon) or etcd (a cluster).
    pub store: StoreSection,
    /// This daemon as a member of a cluster (with the etcd store).
    pub cluster: ClusterSection,
    /// Profiles to create or update on start and reload.
    pub profiles: Vec<ProfileConfig>,
    /// Accounts to create or update on start and reload.
    pub accounts: Vec<AccountConfig>,
    /// Where relative secret files are looked up (not in the file).
    #[serde(skip)]
    pub secrets: SecretPlaces,
}

/// Where relative secret files are looked up: `$CREDENTIALS_DIRECTORY`
/// under systemd; otherwise `credentials/` beside the configuration file
/// (where the README installs them), then the file's own directory.
#[derive(Debug, Clone, Default)]
pub struct SecretPlaces {
    /// Searched in order; the first that holds the file wins.
    pub dirs: Vec<PathBuf>,
    /// Whether one of `dirs` is a credentials directory, so a secret that
    /// is not there is surely missing; outside systemd with none,
    /// `check-config` cannot see what the unit will load.
    pub known: bool,
}

impl SecretPlaces {
    /// The places for a configuration file at `path`.
    pub fn for_file(path: &Path) -> SecretPlaces {
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            return SecretPlaces::only(PathBuf::from(dir));
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let credentials = dir.join("credentials");
        SecretPlaces {
            known: credentials.is_dir(),
            dirs: vec![credentials, dir],
        }
    }

    /// One directory, known to be where the secrets are.
    pub fn only(dir: PathBuf) -> SecretPlaces {
        SecretPlaces {
            dirs: vec![dir],
            known: true,
        }
    }

    /// Where `file` is: itself when absolute, else the first place that
    /// has it (the first place when none has).
    pub fn resolve(&self, file: &Path) -> PathBuf {
        if file.is_absolute() {
            return file.to_path_buf();
        }
        self.dirs
            .iter()
            .map(|dir| dir.join(file))
            .find(|candidate| candidate.exists())
            .unwrap_or_else(|| {
                self.dirs
                    .first()
                    .map_or(file.to_path_buf(), |d| d.join(file))
            })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("literal address"),
            state_dir: crate::state::DEFAULT_STATE_DIR.into(),
            log_json: false,
            admin_token_file: None,
            api: ApiSection::default(),
            web: WebSection::default(),
            facade: FacadeSection::default(),
            fleet: FleetSection::default(),
            store: StoreSection::default(),
            cluster: ClusterSection::default(),
            profiles: Vec::new(),
            accounts: Vec::new(),
            secrets: SecretPlaces::default(),
        }
    }
}

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    /// Largest `count` per launch.
    pub max_count: u32,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Requests per second per token.
    pub client_rate_per_sec: u32,
    /// Burst per token.
    pub client_burst: u32,
}

impl Default for ApiSection {
    fn default() -> Self {
        let d = ApiConfig::default();
        ApiSection {
            max_count: d.max_count,
            body_limit: d.body_limit,
            client_rate_per_sec: d.client_rate_per_sec,
            client_burst: d.client_burst,
        }
    }
}

/// `[web]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSection {
    /// `"auto"`: the session cookie is `Secure` when a TLS terminator
    /// sends `X-Forwarded-Proto: https`; `"always"`: whatever it sends.
    pub secure_cookies: SecureCookies,
}

/// `[facade]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FacadeSection {
    /// Whether `/identity`, `/compute`, `/image` and `/network` answer.
    pub enabled: bool,
    /// The region the façade's catalog names.
    pub region: String,
}

impl Default for FacadeSection {
    fn default() -> Self {
        let d = ApiConfig::default();
        FacadeSection {
            enabled: d.facade,
            region: d.facade_region,
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// `sled` (the default: one daemon, its state directory) or `etcd`
    /// (several daemons on one etcd cluster).
    pub backend: Backend,
    /// `[store.etcd]`.
    pub etcd: EtcdSection,
    /// The key that seals account secrets, which every member of a
    /// cluster must share (a systemd credential); `secret.key` in the
    /// state directory when not given.
    pub sealing_key_file: Option<PathBuf>,
}

/// Which store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded, in the state directory.
    #[default]
    Sled,
    /// Shared, on etcd.
    Etcd,
}

/// `[store.etcd]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdSection {
    /// Client URLs of the etcd members (`https://` with TLS).
    pub endpoints: Vec<String>,
    /// Prefix of every key; clusters sharing an etcd use different ones.
    pub prefix: String,
    /// etcd user, when etcd's authentication is on.
    pub user: Option<String>,
    /// File holding the user's password (a systemd credential).
    pub password_file: Option<PathBuf>,
    /// CA bundle that signed etcd's certificates.
    pub ca_file: Option<PathBuf>,
    /// Client certificate, for etcd's client-certificate authentication.
    pub cert_file: Option<PathBuf>,
    /// Its key (a systemd credential).
    pub key_file: Option<PathBuf>,
    /// Longest wait for a connection, seconds.
    pub dial_timeout_secs: f64,
    /// Longest wait for a commit before a write answers 503, seconds.
    pub request_timeout_secs: f64,
}

impl Default for EtcdSection {
    fn default() -> Self {
        EtcdSection {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            prefix: "/openmultistack/".into(),
            user: None,
            password_file: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            dial_timeout_secs: 5.0,
            request_timeout_secs: 5.0,
        }
    }
}

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    /// This member's name, unique in the cluster (the host name when
    /// empty).
    pub member: String,
    /// Where the other members reach this one's API (to forward writes
    /// to the leader); `http://<listen>` when empty.
    pub advertise_url: String,
    /// The leader's lease, seconds: a dead leader is replaced within it.
    pub lease_ttl_secs: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            member: String::new(),
            advertise_url: String::new(),
            lease_ttl_secs: 10,
        }
    }
}

impl ClusterSection {
    /// The member name: configured, else the host name.
    pub fn member_name(&self) -> String {
        if !self.member.is_empty() {
            return self.member.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "oms".into())
    }
}

/// `[fleet]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetSection {
    /// Seconds between server listings per region.
    pub poll_interval_secs: f64,
    /// Seconds between limit refreshes per region.
    pub refresh_interval_secs: f64,
    /// Deadline of requests that do not give one, seconds.
    pub default_deadline_secs: u64,
    /// Attempts per instance when requests do not say.
    pub default_max_attempts: u32,
    /// Seconds a restarted region looks for servers of in-flight attempts.
    pub adoption_grace_secs: u64,
    /// Seconds between leak scans per region.
    pub leak_interval_secs: f64,
    /// Seconds something unknown must stay before it is collected.
    pub leak_grace_secs: f64,
    /// Days finished instances and their events are kept.
    pub retention_days: f64,
}

impl Default for FleetSection {
    fn default() -> Self {
        let d = FleetConfig::default();
        FleetSection {
            poll_interval_secs: d.poll_interval.as_secs_f64(),
            refresh_interval_secs: d.refresh_interval.as_secs_f64(),
            default_deadline_secs: d.default_deadline.as_secs(),
            default_max_attempts: d.default_max_attempts,
            adoption_grace_secs: d.adoption_grace.as_secs(),
            leak_interval_secs: d.leak_interval.as_secs_f64(),
            leak_grace_secs: d.leak_grace.as_secs_f64(),
            retention_days: d.retention.as_secs_f64() / 86_400.0,
        }
    }
}

/// `[[profiles]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Name.
    pub name: String,
    /// At least this many vCPUs.
    pub min_vcpus: u32,
    /// At least this much RAM, MiB.
    pub min_ram_mb: u64,
    /// At least this much disk, GB.
    #[serde(default)]
    pub min_disk_gb: u64,
    /// Image name.
    pub image: String,
    /// Boot timeout, seconds.
    #[serde(default = "default_boot_timeout")]
    pub boot_timeout_secs: u64,
}

fn default_boot_timeout() -> u64 {
    600
}

/// `[[accounts]]`: one provider account; the secret inline, in a file,
/// or in a systemd credential.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Name, unique.
    pub name: String,
    /// Keystone URL.
    pub auth_url: String,
    /// `v3` (default) or `v2.0`.
    #[serde(default)]
    pub identity_version: IdentityVersion,
    /// `public` (default), `internal` or `admin`.
    #[serde(default)]
    pub interface: Interface,
    /// User name (or `user_id`).
    pub username: Option<String>,
    /// User id.
    pub user_id: Option<String>,
    /// User's domain name (default `Default`).
    pub user_domain_name: Option<String>,
    /// Project name (or `project_id`).
    pub project_name: Option<String>,
    /// Project id.
    pub project_id: Option<String>,
    /// Project's domain name (default: the user's).
    pub project_domain_name: Option<String>,
    /// Password, inline (prefer `password_file`).
    pub password: Option<String>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
    /// Application credential id.
    pub application_credential_id: Option<String>,
    /// Application credential name (with `username`).
    pub application_credential_name: Option<String>,
    /// Application credential secret, inline.
    pub application_credential_secret: Option<String>,
    /// File holding the application credential secret.
    pub application_credential_secret_file: Option<PathBuf>,
    /// Regions to use (all when empty).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Networks to attach.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Enabled.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Draining.
    #[serde(default)]
    pub drain: bool,
    /// Priority (higher first).
    #[serde(default)]
    pub priority: i32,
    /// Rate and concurrency limits.
    #[serde(default)]
    pub limits: RegionLimits,
    /// Profile → pinned names.
    #[serde(default)]
    pub pins: BTreeMap<String, Pin>,
}

fn yes() -> bool {
    true
}

/// A problem with the configuration, located when possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem with no place in the file.
    pub fn unplaced(message: String) -> Problem {
        Problem {
            line: None,
            column: None,
            message,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "line {line}, column {column}: {}", self.message)
            }
            (Some(line), None) => write!(f, "line {line}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// Sets `OMS_A__B=value` as key `a.b` of the document, the value read as
/// a TOML value when it parses as one, else as a string.
fn apply_env(document: &mut toml::Table, vars: impl Iterator<Item = (String, String)>) {
    for (name, raw) in vars {
        let Some(path) = name.strip_prefix("OMS_") else {
            continue;
        };
        // Variables of the command line, not of the file.
        if ["LOG_JSON", "CONFIG", "URL", "TOKEN"].contains(&path) {
            continue;
        }
        let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw));
        set_path(document, &keys, value);
    }
}

/// Sets `value` at `keys` in `table`, creating tables on the way.
fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) {
    match keys {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(inner) = entry.as_table_mut() {
                set_path(inner, rest, value);
            }
        }
    }
}

impl Config {
    /// Reads `path` (a missing default file means defaults), applies
    /// `OMS_*` overrides, and checks types and settings. Problems carry
    /// lines and columns.
    pub fn load(path: &Path, required: bool) -> Result<Config, Vec<Problem>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => String::new(),
            Err(e) => {
                return Err(vec![Problem::unplaced(format!(
                    "cannot read {}: {e}",
                    path.display()
                ))]);
            }
        };
        Config::parse(&text, path, std::env::vars())
    }

    /// Parses `text` as if read from `path`, with `env` overrides: every
    /// syntax and type problem of the file, then every setting out of
    /// bounds (accounts are checked on their own by [`Config::check`]).
    pub fn parse(
        text: &str,
        path: &Path,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, Vec<Problem>> {
        let (config, problems) = Config::parse_all(text, path, env);
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(problems),
        }
    }

    /// Like [`Config::parse`], but what could be read (the keys of the
    /// wrong type left at their defaults) comes with the problems, so a
    /// check goes on to the accounts; nothing when the syntax is wrong.
    pub fn parse_all(
        text: &str,
        path: &Path,
        env: impl Iterator<Item = (String, String)>,
    ) -> (Option<Config>, Vec<Problem>) {
        let (file_only, mut problems) = crate::check_config::typed(text);
        let Some(mut config) = file_only else {
            return (None, problems);
        };
        if problems.is_empty() {
            // The environment overrides keys of the file, by path.
            let mut document: toml::Table = text.parse().unwrap_or_default();
            apply_env(&mut document, env);
            match toml::Table::try_into::<Config>(document) {
                Ok(merged) => config = merged,
                // The file alone deserialized: an OMS_ variable is wrong.
                Err(e) => problems.push(Problem::unplaced(format!(
                    "an OMS_ environment variable: {}",
                    e.message().trim_end()
                ))),
            }
        }
        config.secrets = SecretPlaces::for_file(path);
        problems.extend(config.settings_problems(text));
        (Some(config), problems)
    }

    /// Settings the daemon cannot run with: intervals that are not
    /// positive, no attempt, limits of zero, profiles out of bounds or
    /// declared twice.
    fn settings_problems(&self, text: &str) -> Vec<Problem> {
        use crate::check_config::at;
        let mut problems = Vec::new();
        let mut need = |ok: bool, path: &str, what: &str| {
            if !ok {
                problems.push(at(text, path, format!("{path}: {what}")));
            }
        };
        let f = &self.fleet;
        let positive = |v: f64| v.is_finite() && v > 0.0;
        for (value, key) in [
            (f.poll_interval_secs, "poll_interval_secs"),
            (f.refresh_interval_secs, "refresh_interval_secs"),
            (f.leak_interval_secs, "leak_interval_secs"),
            (f.retention_days, "retention_days"),
        ] {
            need(
                positive(value),
                &format!("fleet.{key}"),
                "must be more than 0",
            );
        }
        need(
            f.leak_grace_secs.is_finite() && f.leak_grace_secs >= 0.0,
            "fleet.leak_grace_secs",
            "must be 0 or more",
        );
        let max_deadline = oms_actors::bounds::MAX_DEADLINE.as_secs();
        need(
            (1..=max_deadline).contains(&f.default_deadline_secs),
            "fleet.default_deadline_secs",
            &format!("1 to {max_deadline}"),
        );
        let max_attempts = oms_actors::bounds::MAX_ATTEMPTS;
        need(
            (1..=max_attempts).contains(&f.default_max_attempts),
            "fleet.default_max_attempts",
            &format!("1 to {max_attempts}: at least one attempt"),
        );
        let a = &self.api;
        need(a.max_count >= 1, "api.max_count", "at least 1");
        need(
            a.body_limit >= 1024,
            "api.body_limit",
            "at least 1024 bytes: a launch with a public key needs that much",
        );
        need(
            a.client_rate_per_sec >= 1,
            "api.client_rate_per_sec",
            "at least 1",
        );
        need(a.client_burst >= 1, "api.client_burst", "at least 1");
        need(
            oms_actors::bounds::name("region", &self.facade.region).is_ok(),
            "facade.region",
            "1 to 64 of letters, digits, - _ .",
        );
        if self.store.backend == Backend::Etcd {
            let e = &self.store.etcd;
            need(
                cfg!(feature = "etcd"),
                "store.backend",
                "this oms was built without etcd support (cargo build --release --features etcd)",
            );
            need(
                !e.endpoints.is_empty()
                    && e.endpoints
                        .iter()
                        .all(|u| u.starts_with("http://") || u.starts_with("https://")),
                "store.etcd.endpoints",
                "one or more http:// or https:// URLs",
            );
            need(
                !e.prefix.is_empty() && e.prefix.starts_with('/'),
                "store.etcd.prefix",
                "a key prefix beginning with /",
            );
            for (value, key) in [
                (e.dial_timeout_secs, "store.etcd.dial_timeout_secs"),
                (e.request_timeout_secs, "store.etcd.request_timeout_secs"),
            ] {
                need(positive(value), key, "must be more than 0");
            }
            need(
                e.cert_file.is_some() == e.key_file.is_some(),
                "store.etcd.cert_file",
                "cert_file and key_file go together",
            );
            need(
                e.user.is_some() == e.password_file.is_some(),
                "store.etcd.user",
                "user and password_file go together",
            );
            need(
                (3..=60).contains(&self.cluster.lease_ttl_secs),
                "cluster.lease_ttl_secs",
                "3 to 60",
            );
            need(
                !self.listen.ip().is_unspecified() || !self.cluster.advertise_url.is_empty(),
                "cluster.advertise_url",
                "needed when listen is on every address: where the other members reach this one",
            );
            // One launch is one etcd transaction: its instances, the
            // request and the reservation, under etcd's 128 operations.
            need(
                self.api.max_count <= 100,
                "api.max_count",
                "at most 100 with the etcd store (etcd's --max-txn-ops is 128)",
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, profile) in self.profiles().iter().enumerate() {
            if !names.insert(profile.name.clone()) {
                problems.push(at(
                    text,
                    &format!("profiles[{i}].name"),
                    format!("profile {} is declared twice", profile.name),
                ));
            }
            if let Err(message) = profile.check_bounds() {
                problems.push(at(
                    text,
                    &format!("profiles[{i}]"),
                    format!("profile {}: {message}", profile.name),
                ));
            }
        }
        problems
    }

    /// Every problem the daemon would meet with accounts and secrets:
    /// bad accounts, unreadable secret files, duplicate names, two
    /// accounts on one project. A secret file that cannot be looked for
    /// here (no credentials directory: systemd will load it) is a note,
    /// not a problem, and the account is checked without it.
    pub fn check(&self, text: &str) -> Checked {
        use crate::check_config::at;
        let mut checked = Checked::default();
        let mut names = std::collections::BTreeSet::new();
        let mut built: Vec<oms_actors::model::Account> = Vec::new();
        for (i, declared) in self.accounts.iter().enumerate() {
            let place = format!("accounts[{i}].name");
            let name = &declared.name;
            if !names.insert(name.clone()) {
                checked.problems.push(at(
                    text,
                    &place,
                    format!("account {name} is declared twice"),
                ));
            }
            let mut declared = declared.clone();
            for (file, key) in [
                (&mut declared.password_file, "password_file"),
                (
                    &mut declared.application_credential_secret_file,
                    "application_credential_secret_file",
                ),
            ] {
                if let Some(note) = file.as_deref().and_then(|f| self.unseen_secret(f)) {
                    checked.notes.push(at(
                        text,
                        &format!("accounts[{i}].{key}"),
                        format!("account {name}: {note}"),
                    ));
                    *file = None;
                    if key == "password_file" {
                        declared.password = Some("unseen".into());
                    } else {
                        declared.application_credential_secret = Some("unseen".into());
                    }
                }
            }
            match self
                .account(&declared)
                .and_then(|a| a.check_bounds().map(|()| a))
            {
                Err(message) => {
                    checked
                        .problems
                        .push(at(text, &place, format!("account {name}: {message}")));
                }
                Ok(mut account) => {
                    account.id = account.name.clone();
                    if let Some(other) = oms_actors::one_project::declared_clash(&account, &built) {
                        checked.problems.push(at(
                            text,
                            &place,
                            format!(
                                "account {name}: {}",
                                oms_actors::one_project::clash_message(&other.name)
                            ),
                        ));
                    }
                    built.push(account);
                }
            }
        }
        let etcd = &self.store.etcd;
        let clustered = self.store.backend == Backend::Etcd;
        for (file, key) in [
            (self.admin_token_file.as_ref(), "admin_token_file"),
            (
                etcd.password_file.as_ref().filter(|_| clustered),
                "store.etcd.password_file",
            ),
            (
                etcd.key_file.as_ref().filter(|_| clustered),
                "store.etcd.key_file",
            ),
            (
                self.store.sealing_key_file.as_ref().filter(|_| clustered),
                "store.sealing_key_file",
            ),
        ] {
            let Some(file) = file else { continue };
            if let Some(note) = self.unseen_secret(file) {
                checked.notes.push(at(text, key, format!("{key}: {note}")));
            } else if let Err(message) = self.read_secret(file) {
                checked
                    .problems
                    .push(at(text, key, format!("{key}: {message}")));
            }
        }
        checked
    }

    /// Why a secret file cannot be looked for here, if it cannot: it is
    /// in none of the places and none of them is a credentials directory.
    fn unseen_secret(&self, file: &Path) -> Option<String> {
        if self.secrets.known || file.is_absolute() || self.secrets.resolve(file).exists() {
            return None;
        }
        let name = file.display();
        let places: Vec<String> = self
            .secrets
            .dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        Some(format!(
            "{name} is not in {}; not checked. Under systemd it is read from \
             $CREDENTIALS_DIRECTORY (LoadCredential={name}:/etc/openmultistack/credentials/{name}); \
             give --credentials DIR to check it",
            places.join(" or ")
        ))
    }

    /// The fleet's settings.
    pub fn fleet_config(&self) -> FleetConfig {
        let f = &self.fleet;
        FleetConfig {
            poll_interval: Duration::from_secs_f64(f.poll_interval_secs.max(0.05)),
            refresh_interval: Duration::from_secs_f64(f.refresh_interval_secs.max(0.1)),
            default_deadline: Duration::from_secs(f.default_deadline_secs),
            default_max_attempts: f.default_max_attempts,
            adoption_grace: Duration::from_secs(f.adoption_grace_secs),
            leak_interval: Duration::from_secs_f64(f.leak_interval_secs.max(0.1)),
            leak_grace: Duration::from_secs_f64(f.leak_grace_secs.max(0.0)),
            retention: Duration::from_secs_f64(f.retention_days.max(0.0) * 86_400.0),
            ..FleetConfig::default()
        }
    }

    /// The API's settings.
    pub fn api_config(&self) -> ApiConfig {
        ApiConfig {
            max_count: self.api.max_count,
            body_limit: self.api.body_limit,
            client_rate_per_sec: self.api.client_rate_per_sec,
            client_burst: self.api.client_burst,
            secure_cookies: self.web.secure_cookies,
            facade: self.facade.enabled,
            facade_region: self.facade.region.clone(),
            ..ApiConfig::default()
        }
    }

    /// Reads a secret file (relative to the secrets directory); refuses
    /// one that other users can read.
    pub fn read_secret(&self, file: &Path) -> Result<String, String> {
        let path = self.secrets.resolve(file);
        let metadata =
            std::fs::metadata(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if metadata.permissions().mode() & 0o007 != 0 {
            return Err(format!(
                "{} is readable by other users; chmod o-rwx it",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(text.trim_end_matches(['\n', '\r']).to_owned())
    }

    fn secret(
        &self,
        inline: &Option<String>,
        file: &Option<PathBuf>,
        what: &str,
    ) -> Result<Option<String>, String> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(format!("give {what} or {what}_file, not both")),
            (Some(value), None) => Ok(Some(value.clone())),
            (None, Some(file)) => self.read_secret(file).map(Some),
            (None, None) => Ok(None),
        }
    }

    /// The model account for a declared one, or why it is invalid.
    pub fn account(&self, c: &AccountConfig) -> Result<Account, String> {
        let name_ok = !c.name.is_empty()
            && c.name.len() <= 64
            && c.name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'));
        if !name_ok {
            return Err("name: 1 to 64 of letters, digits, - _ .".into());
        }
        let auth_url: url::Url = c
            .auth_url
            .parse()
            .ok()
            .filter(|u: &url::Url| matches!(u.scheme(), "http" | "https"))
            .ok_or("auth_url must be an http(s) URL")?;
        let user_domain = c
            .user_domain_name
            .clone()
            .unwrap_or_else(|| "Default".into());
        let user = match (&c.user_id, &c.username) {
            (Some(id), _) => Some(Named::Id(id.clone())),
            (None, Some(name)) => Some(Named::Name {
                name: name.clone(),
                domain: Domain::Name(user_domain.clone()),
            }),
            (None, None) => None,
        };
        let password = self.secret(&c.password, &c.password_file, "password")?;
        let app_secret = self.secret(
            &c.application_credential_secret,
            &c.application_credential_secret_file,
            "application_credential_secret",
        )?;
        let (auth, secret) = match (password, app_secret) {
            (Some(password), None) => {
                let user = user.ok_or("username or user_id is required with a password")?;
                let project = match (&c.project_id, &c.project_name) {
                    (Some(id), _) => Named::Id(id.clone()),
                    (None, Some(name)) => Named::Name {
                        name: name.clone(),
                        domain: Domain::Name(c.project_domain_name.clone().unwrap_or(user_domain)),
                    },
                    (None, None) => {
                        return Err("project_name or project_id is required with a password".into());
                    }
                };
                (AccountAuth::Password { user, project }, password)
            }
            (None, Some(secret)) => {
                let credential = match (
                    &c.application_credential_id,
                    &c.application_credential_name,
                    user,
                ) {
                    (Some(id), _, _) => ApplicationCredentialRef::Id(id.clone()),
                    (None, Some(name), Some(user)) => ApplicationCredentialRef::Name {
                        name: name.clone(),
                        user,
                    },
                    _ => {
                        return Err(
                            "application_credential_id, or its name with username, is required"
                                .into(),
                        );
                    }
                };
                (AccountAuth::ApplicationCredential { credential }, secret)
            }
            (Some(_), Some(_)) => {
                return Err("give a password or an application credential, not both".into());
            }
            (None, None) => {
                return Err("a password or an application credential secret is required".into());
            }
        };
        if secret.is_empty() {
            return Err("the secret is empty".into());
        }
        if c.identity_version == IdentityVersion::V2
            && !matches!(
                auth,
                AccountAuth::Password {
                    user: Named::Name { .. },
                    ..
                }
            )
        {
            return Err("keystone v2.0 needs a password and the user by name".into());
        }
        Ok(Account {
            id: String::new(),
            name: c.name.clone(),
            auth_url,
            identity_version: c.identity_version,
            interface: c.interface,
            auth,
            secret: SecretString::from(secret),
            regions: c.regions.clone(),
            networks: c.networks.clone(),
            enabled: c.enabled,
            drain: c.drain,
            priority: c.priority,
            limits: c.limits,
            pins: c.pins.clone(),
            created_at: Utc::now(),
        })
    }

    /// The declared profiles.
    pub fn profiles(&self) -> Vec<Profile> {
        self.profiles
            .iter()
            .map(|p| Profile {
                name: p.name.clone(),
                min_vcpus: p.min_vcpus,
                min_ram_mb: p.min_ram_mb,
                min_disk_gb: p.min_disk_gb,
                image: p.image.clone(),
                boot_timeout_secs: p.boot_timeout_secs,
            })
            .collect()
    }
}

/// What [`Config::check`] found.
#[derive(Debug, Default)]
pub struct Checked {
    /// What the daemon would refuse.
    pub problems: Vec<Problem>,
    /// What could not be checked here, and why.
    pub notes: Vec<Problem>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, Vec<Problem>> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::parse(
            text,
            Path::new("/etc/openmultistack/oms.toml"),
            env.collect::<Vec<_>>().into_iter(),
        )
    }

    #[test]
    fn the_shipped_example_parses() {
        let config = parse(include_str!("../systemd/oms.toml.example"), &[]).unwrap();
        assert_eq!(config.accounts.len(), 2);
        assert_eq!(config.profiles.len(), 1);
        assert_eq!(config.accounts[0].limits.max_concurrent_creates, 10);
    }

    #[test]
    fn the_shipped_cluster_example_parses_where_etcd_is_built_in() {
        let parsed = parse(include_str!("../systemd/oms-cluster.toml.example"), &[]);
        if cfg!(feature = "etcd") {
            let config = parsed.unwrap();
            assert_eq!(config.store.backend, Backend::Etcd);
            assert_eq!(config.store.etcd.endpoints.len(), 3);
            assert_eq!(config.cluster.member_name(), "oms-a");
        } else {
            let problems = parsed.unwrap_err();
            assert!(
                problems[0].message.contains("--features etcd"),
                "{problems:#?}"
            );
        }
    }

    #[test]
    fn cluster_settings_the_daemon_cannot_run_with_are_refused() {
        let text = "listen = \"0.0.0.0:8080\"\n[api]\nmax_count = 200\n[store]\nbackend = \"etcd\"\n[store.etcd]\nendpoints = [\"10.0.0.1:2379\"]\ncert_file = \"c.pem\"\n[cluster]\nlease_ttl_secs = 1\n";
        let problems = parse(text, &[]).unwrap_err();
        let said: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        for expected in [
            "store.etcd.endpoints: one or more http:// or https:// URLs",
            "store.etcd.cert_file: cert_file and key_file go together",
            "cluster.lease_ttl_secs: 3 to 60",
            "cluster.advertise_url: needed when listen is on every address",
            "api.max_count: at most 100 with the etcd store",
        ] {
            assert!(
                said.iter().any(|s| s.starts_with(expected)),
                "{expected}: {said:#?}"
            );
        }
        assert!(problems.iter().all(|p| p.line.is_some()), "{problems:#?}");
    }

    #[test]
    fn settings_the_daemon_cannot_run_with_are_refused_each_at_its_line() {
        let text = "[fleet]\npoll_interval_secs = -3\ndefault_max_attempts = 0\nleak_grace_secs = -1.0\n\n[api]\nmax_count = 0\n\n[[profiles]]\nname = \"small\"\nmin_vcpus = 1\nmin_ram_mb = 512\nimage = \"i\"\n\n[[profiles]]\nname = \"small\"\nmin_vcpus = 0\nmin_ram_mb = 512\nimage = \"i\"\n";
        let problems = parse(text, &[]).unwrap_err();
        let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
        assert_eq!(
            lines,
            [Some(2), Some(4), Some(3), Some(7), Some(16), Some(15)],
            "{problems:#?}"
        );
        // From the environment too, though no line can be given then.
        let problems = parse("", &[("OMS_FLEET__POLL_INTERVAL_SECS", "0")]).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        let problems = parse("", &[("OMS_API__MAX_COUNT", "\"x\"")]).unwrap_err();
        assert!(problems[0].message.contains("OMS_"), "{problems:?}");
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        let config = parse("", &[]).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.api.max_count, ApiConfig::default().max_count);
    }

    #[test]
    fn environment_overrides_every_key() {
        let config = parse(
            "listen = \"127.0.0.1:1\"\n[api]\nmax_count = 5\n",
            &[
                ("OMS_LISTEN", "0.0.0.0:9000"),
                ("OMS_API__MAX_COUNT", "7"),
                ("OMS_FLEET__POLL_INTERVAL_SECS", "0.5"),
                ("OMS_LOG_JSON", "true"),
            ],
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(config.api.max_count, 7);
        assert_eq!(config.fleet.poll_interval_secs, 0.5);
    }

    #[test]
    fn syntax_errors_say_the_line() {
        let problems = parse("listen = \"x\"\n\n[api\nmax_count = 1\n", &[]).unwrap_err();
        assert_eq!(problems[0].line, Some(3), "{problems:?}");
    }

    #[test]
    fn bad_accounts_are_reported_each_with_its_line() {
        let text = r#"
[[accounts]]
name = "good"
auth_url = "https://k.example/v3"
username = "u"
project_name = "p"
password = "pw"

[[accounts]]
name = "nopass"
auth_url = "https://k.example/v3"
username = "u"
project_name = "p"

[[accounts]]
name = "badurl"
auth_url = "k.example"
application_credential_id = "x"
application_credential_secret = "s"
"#;
        let config = parse(text, &[]).unwrap();
        let problems = config.check(text).problems;
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].line, Some(10));
        assert!(problems[0].message.contains("nopass"));
        assert_eq!(problems[1].line, Some(16));
        assert!(config.account(&config.accounts[0]).is_ok());
    }

    #[test]
    fn a_second_account_on_one_project_is_a_problem_naming_the_first() {
        let text = r#"
[[accounts]]
name = "acme"
auth_url = "https://k.example/v3"
username = "u"
project_name = "p"
password = "pw"

[[accounts]]
name = "acme-again"
auth_url = "https://K.example:443/v3/"
username = "other"
project_name = "p"
password = "pw2"

[[accounts]]
name = "acme-r2"
auth_url = "https://k.example/v3"
username = "u"
project_name = "q"
password = "pw"
"#;
        let config = parse(text, &[]).unwrap();
        let problems = config.check(text).problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, Some(10));
        assert!(
            problems[0].message.contains("acme-again")
                && problems[0].message.contains("same project as account acme"),
            "{problems:?}"
        );
    }

    #[test]
    fn secrets_come_from_files_that_others_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let text = format!(
            "[[accounts]]\nname = \"a\"\nauth_url = \"https://k/v3\"\nusername = \"u\"\nproject_name = \"p\"\npassword_file = \"{}\"\n",
            file.display()
        );
        let config = parse(&text, &[]).unwrap();
        let account = config.account(&config.accounts[0]).unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&account.secret),
            "from-file"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            config
                .account(&config.accounts[0])
                .unwrap_err()
                .contains("other users")
        );
    }
}
