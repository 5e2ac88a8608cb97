//! `oms serve`: the daemon as operators run it. Configuration applied on
//! start and on SIGHUP (each account on its own), systemd readiness and
//! watchdog, and an orderly stop on SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use oms_actors::Fleet;
use oms_actors::model::{ApiToken, Role};
use secrecy::ExposeSecret;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::daemon::{Daemon, stop_signal};
use crate::state::open_store;

/// Id of the admin token that `admin_token_file` provides.
const CONFIG_ADMIN: &str = "config-admin";

/// Creates or updates what the configuration declares. A bad account is
/// logged and skipped; the others are applied. Returns how many were bad.
pub async fn apply(fleet: &Fleet, config: &Config) -> anyhow::Result<usize> {
    for profile in config.profiles() {
        fleet.put_profile(profile).await?;
    }
    let existing = fleet.accounts()?;
    let mut bad = 0;
    for declared in &config.accounts {
        let mut account = match config.account(declared) {
            Ok(account) => account,
            Err(problem) => {
                error!(account = %declared.name, %problem, "account in the configuration is invalid; skipped");
                bad += 1;
                continue;
            }
        };
        if let Some(current) = existing.iter().find(|a| a.name == account.name) {
            account.id = current.id.clone();
            account.created_at = current.created_at;
            let same = serde_json::to_value(current)? == serde_json::to_value(&account)?
                && current.secret.expose_secret() == account.secret.expose_secret();
            if same {
                continue;
            }
        }
        let name = account.name.clone();
        match fleet.put_account(account).await {
            Ok(_) => info!(account = %name, "account applied from the configuration"),
            Err(oms_actors::FleetError::Conflict(problem)) => {
                error!(account = %name, %problem, "account in the configuration refused");
                bad += 1;
            }
            Err(other) => return Err(other.into()),
        }
    }
    if let Some(file) = &config.admin_token_file {
        match config.read_secret(file) {
            Ok(value) => {
                let token = ApiToken {
                    id: CONFIG_ADMIN.into(),
                    name: CONFIG_ADMIN.into(),
                    role: Role::Admin,
                    hash: oms_actors::tokens::hash_token(&value),
                    instance_limit: None,
                    revoked: false,
                    created_at: Utc::now(),
                };
                fleet.install_token(&token).await?;
            }
            Err(problem) => error!(%problem, "admin_token_file unusable"),
        }
    }
    Ok(bad)
}

/// Pings systemd's watchdog while the actor tree answers.
pub fn watchdog(fleet: Arc<Fleet>) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if fleet.ready().await {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            } else {
                warn!("actor tree not answering; withholding the watchdog ping");
            }
        }
    });
}

/// Runs the daemon until SIGTERM or SIGINT: alone on sled, or as a
/// cluster member on etcd.
pub async fn run(config_path: &Path, required: bool, config: Config) -> anyhow::Result<()> {
    match config.store.backend {
        crate::config::Backend::Sled => run_alone(config_path, required, config).await,
        #[cfg(feature = "etcd")]
        crate::config::Backend::Etcd => crate::cluster::run(config_path, required, config).await,
        #[cfg(not(feature = "etcd"))]
        crate::config::Backend::Etcd => anyhow::bail!(
            "store.backend = \"etcd\": this oms was built without etcd support \
             (cargo build --release --features etcd)"
        ),
    }
}

async fn run_alone(config_path: &Path, required: bool, mut config: Config) -> anyhow::Result<()> {
    let stop = stop_signal()?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let store = open_store(&config.state_dir)?;
    // The daemon id persists, so a restart recognizes its own servers.
    let fleet_config = oms_actors::FleetConfig {
        daemon_id: crate::state::daemon_id(&config.state_dir)?,
        ..config.fleet_config()
    };
    let daemon = Daemon::start(store, config.listen, fleet_config, config.api_config()).await?;
    apply(&daemon.fleet, &config).await?;
    println!("listening on http://{}", daemon.addr);
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    watchdog(daemon.fleet.clone());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = hangup.recv() => {
                info!(config = %config_path.display(), "reloading the configuration");
                match Config::load(config_path, required) {
                    Ok(fresh) => {
                        config = fresh;
                        match apply(&daemon.fleet, &config).await {
                            Ok(bad) => info!(skipped = bad, "configuration reloaded"),
                            Err(e) => error!(error = %e, "reload failed"),
                        }
                    }
                    Err(problems) => {
                        for problem in problems {
                            error!(%problem, "configuration not reloaded");
                        }
                    }
                }
            }
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    daemon.stop().await;
    Ok(())
}
