//! `oms demo`: the daemon over an embedded simulator of three providers
//! with two regions each (quota 20), one of them flapping in and out of
//! maintenance, a few instances launched, and an admin token printed.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use oms_actors::model::{Account, AccountAuth, Profile, RegionLimits, Role};
use oms_actors::openstack::{Domain, IdentityVersion, Interface, Named};
use oms_actors::store::{MemoryStore, Store};
use oms_actors::tokens::NewToken;
use oms_actors::{FleetConfig, NewLaunch};
use oms_sim::{Faults, Outage, SimConfig, Simulator, UserConfig};
use oms_web::ApiConfig;
use secrecy::{ExposeSecret, SecretString};
use tracing::info;

use crate::daemon::{Daemon, stop_signal};

/// The provider that flaps.
const FLAPPING: &str = "gamma";
/// How long each phase of the flapping lasts.
const FLAP_EVERY: Duration = Duration::from_secs(45);

fn profiles() -> Vec<Profile> {
    vec![
        Profile {
            name: "small".into(),
            min_vcpus: 1,
            min_ram_mb: 1024,
            min_disk_gb: 10,
            image: "debian-12".into(),
            boot_timeout_secs: 300,
        },
        Profile {
            name: "medium".into(),
            min_vcpus: 2,
            min_ram_mb: 4096,
            min_disk_gb: 20,
            image: "ubuntu-24.04".into(),
            boot_timeout_secs: 300,
        },
    ]
}

/// Where the demo keeps its log, its clouds.yaml and (with
/// `--state-dir`) its store: the given directory, or a fresh one under
/// the temporary directory.
pub fn directory(state_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match state_dir {
        Some(dir) => dir.to_path_buf(),
        None => std::env::temp_dir().join(format!("oms-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", dir.display()))?;
    Ok(dir)
}

/// How the demo runs.
pub struct DemoOptions {
    /// Address of the API and pages.
    pub listen: SocketAddr,
    /// From [`directory`].
    pub dir: PathBuf,
    /// Whether the store lives in `dir` (else in memory).
    pub keep_state: bool,
    /// Where the log goes, when not to the terminal.
    pub log_file: Option<PathBuf>,
}

/// A user on every simulated provider whose project the demo does not
/// register, so `oms account import-clouds` has something to import.
const SPARE_USER: &str = "ops";

/// Where the simulated providers were, by name, so a kept store's
/// accounts follow them to the ports of the next run.
const PROVIDERS_FILE: &str = "demo-providers.json";

/// Runs the demo until SIGINT or SIGTERM.
pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let stop = stop_signal()?;
    let mut config = SimConfig::default();
    for provider in &mut config.providers {
        provider.users.push(UserConfig {
            name: SPARE_USER.into(),
            project: SPARE_USER.into(),
            ..UserConfig::default()
        });
        for region in &mut provider.regions {
            region.build_secs = 4.0;
            region.faults.latency_ms = 30;
        }
    }
    let sim = Simulator::start(config).await?;
    let dir = &options.dir;
    let (store, fleet_config): (Arc<dyn Store>, FleetConfig) = if options.keep_state {
        let fleet_config = FleetConfig {
            daemon_id: crate::state::daemon_id(dir)?,
            ..FleetConfig::default()
        };
        (crate::state::open_store(dir)?, fleet_config)
    } else {
        (Arc::new(MemoryStore::new()), FleetConfig::default())
    };
    let daemon = Daemon::start(
        store.clone(),
        options.listen,
        fleet_config,
        ApiConfig::default(),
    )
    .await?;
    for profile in profiles() {
        daemon.fleet.put_profile(profile).await?;
    }
    register(&daemon.fleet, &sim, dir).await?;
    let admin = admin_token(&daemon.fleet).await?;
    let clouds = dir.join("clouds.yaml");
    write_private(&clouds, &clouds_yaml(&sim))?;
    banner(
        &options,
        &sim,
        &format!("http://{}", daemon.addr),
        admin.expose_secret(),
        &clouds,
    );

    // A few instances so there is something to watch.
    let fleet = daemon.fleet.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let ask = NewLaunch {
            client: "demo-admin".into(),
            profile: "small".into(),
            count: 6,
            name_prefix: Some("demo".into()),
            ..NewLaunch::default()
        };
        if let Err(error) = fleet.launch(ask).await {
            tracing::warn!(%error, "demo launch failed");
        }
    });
    let sim = Arc::new(sim);
    let flapper = sim.clone();
    let flapping = tokio::spawn(async move {
        let mut down = false;
        loop {
            tokio::time::sleep(FLAP_EVERY).await;
            down = !down;
            let faults = Faults {
                outage: down.then_some(Outage::Maintenance),
                latency_ms: 30,
                ..Faults::default()
            };
            for region in ["gamma-1", "gamma-2"] {
                let _ = flapper.set_faults(FLAPPING, Some(region), faults.clone());
            }
            info!(
                provider = FLAPPING,
                maintenance = down,
                "demo provider flapped"
            );
        }
    });
    stop.await;
    flapping.abort();
    daemon.stop().await;
    if let Ok(sim) = Arc::try_unwrap(sim) {
        sim.shutdown().await;
    }
    Ok(())
}

/// Registers every simulated provider's demo project; with a kept store,
/// accounts registered before follow their provider to this run's port.
async fn register(fleet: &oms_actors::Fleet, sim: &Simulator, dir: &Path) -> anyhow::Result<()> {
    let moved: BTreeMap<String, String> = std::fs::read_to_string(dir.join(PROVIDERS_FILE))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    let now: BTreeMap<String, String> = sim
        .providers()
        .iter()
        .map(|p| (p.name.clone(), p.auth_url.clone()))
        .collect();
    let existing = fleet.accounts()?;
    for mut account in existing.iter().cloned() {
        let provider = moved.iter().find(|(_, url)| {
            account.auth_url.as_str().trim_end_matches('/') == url.trim_end_matches('/')
        });
        if let Some((name, _)) = provider
            && let Some(url) = now.get(name)
        {
            account.auth_url = url.parse()?;
            fleet.put_account(account).await?;
        }
    }
    std::fs::write(
        dir.join(PROVIDERS_FILE),
        serde_json::to_string_pretty(&now)?,
    )?;
    let existing = fleet.accounts()?;
    for provider in sim.providers() {
        if existing.iter().any(|a| a.name == provider.name) {
            continue;
        }
        let user = &provider.users[0];
        let account = Account {
            id: String::new(),
            name: provider.name.clone(),
            auth_url: provider.auth_url.parse()?,
            identity_version: IdentityVersion::V3,
            interface: Interface::Public,
            auth: AccountAuth::Password {
                user: Named::Name {
                    name: user.name.clone(),
                    domain: Domain::Name(user.domain.clone()),
                },
                project: Named::Name {
                    name: user.project.clone(),
                    domain: Domain::Name(user.domain.clone()),
                },
            },
            secret: SecretString::from(user.password.clone()),
            regions: Vec::new(),
            networks: Vec::new(),
            enabled: true,
            drain: false,
            priority: 0,
            limits: RegionLimits::default(),
            pins: BTreeMap::new(),
            created_at: Utc::now(),
        };
        fleet.put_account(account).await?;
    }
    Ok(())
}

/// A new admin token named `demo-admin`; with a kept store, one that
/// continues the last run's (a name is one line of tokens).
async fn admin_token(fleet: &oms_actors::Fleet) -> anyhow::Result<SecretString> {
    let previous = fleet
        .tokens()?
        .into_iter()
        .filter(|t| t.name == "demo-admin" && !t.revoked)
        .max_by_key(|t| t.created_at)
        .map(|t| t.id);
    let (_, admin) = fleet
        .issue_token(NewToken {
            name: "demo-admin".into(),
            role: Role::Admin,
            instance_limit: None,
            continues: previous,
        })
        .await?;
    Ok(admin)
}

/// A clouds.yaml of the spare projects, ready for `oms account
/// import-clouds`.
fn clouds_yaml(sim: &Simulator) -> String {
    let mut text = String::from(
        "# The simulated providers' spare projects, not registered yet:\n\
         #   oms account import-clouds THIS_FILE\n\
         clouds:\n",
    );
    for provider in sim.providers() {
        let Some(user) = provider.users.iter().find(|u| u.name == SPARE_USER) else {
            continue;
        };
        text.push_str(&format!(
            "  {name}-{project}:\n    auth:\n      auth_url: {url}\n      username: {user}\n      \
             password: {password}\n      project_name: {project}\n      user_domain_name: {domain}\n      \
             project_domain_name: {domain}\n    identity_api_version: 3\n    regions: [{regions}]\n",
            name = provider.name,
            project = user.project,
            url = provider.auth_url,
            user = user.name,
            password = user.password,
            domain = user.domain,
            regions = provider.regions.join(", "),
        ));
    }
    text
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// What the terminal keeps: the logs go to a file, so this stays on
/// screen.
fn banner(options: &DemoOptions, sim: &Simulator, base: &str, token: &str, clouds: &Path) {
    let oms = std::env::args().next().unwrap_or_else(|| "oms".into());
    println!(
        "OpenMultiStack demo: 3 simulated providers × 2 regions; {FLAPPING} goes in and out of \
         maintenance every {} s\n",
        FLAP_EVERY.as_secs()
    );
    println!("web      {base}/  (sign in with the token)");
    println!("api      {base}/v1/regions");
    println!("token    {token}");
    match &options.log_file {
        Some(log) => println!("logs     {}  (--verbose: here instead)", log.display()),
        None => println!("logs     on standard error"),
    }
    if options.keep_state {
        println!(
            "state    {}  (kept; the simulated providers start empty each run, so servers \
             of an earlier run are found gone)",
            options.dir.display()
        );
    } else {
        println!(
            "state    in memory: forgotten on exit (--state-dir DIR keeps it; oms token cannot \
             reach an in-memory store, use POST /v1/tokens)"
        );
    }
    println!("\nSimulated providers (Keystone v3), registered as accounts of their demo project:");
    for provider in sim.providers() {
        let users: Vec<String> = provider
            .users
            .iter()
            .filter(|u| u.name != "admin")
            .map(|u| format!("{}/{} (project {})", u.name, u.password, u.project))
            .collect();
        println!(
            "  {:<6} {}  regions {}  users {}",
            provider.name,
            provider.auth_url,
            provider.regions.join(","),
            users.join(", ")
        );
    }
    println!(
        "clouds   {}  (the {SPARE_USER} projects, not registered yet)",
        clouds.display()
    );
    println!("\nTry:");
    println!("  export OMS_URL={base} OMS_TOKEN={token}");
    println!("  {oms} regions");
    println!("  {oms} launch --profile small --count 3 --wait");
    println!("  {oms} account import-clouds {}", clouds.display());
    println!("stop     Ctrl-C");
}
