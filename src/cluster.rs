//! `oms serve` as a member of a cluster (`[store] backend = "etcd"`).
//!
//! Every member serves the API and the pages from its replica of the
//! shared store, and campaigns for the lead. The leader applies the
//! configuration and runs the actors; its provider calls and writes are
//! fenced by its lease. A member whose lease ends (etcd unreachable past
//! the TTL, a pause, a partition) or whose writes were fenced off starts
//! over: it executes itself again, the way Kubernetes controllers exit
//! when they lose their lease, so nothing of its old term survives in
//! memory; it comes back as a follower.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use oms_actors::cluster_view::Member;
use oms_actors::store::{Sealer, Store, StoreError};
use oms_cluster::{Cluster, EtcdOptions};
use secrecy::SecretString;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::daemon::{Daemon, stop_signal};

/// The etcd options of a configuration, its password read from its file.
pub fn etcd_options(config: &Config) -> anyhow::Result<EtcdOptions> {
    let e = &config.store.etcd;
    let password = match &e.password_file {
        Some(file) => {
            Some(SecretString::from(config.read_secret(file).map_err(
                |why| anyhow::anyhow!("store.etcd.password_file: {why}"),
            )?))
        }
        None => None,
    };
    Ok(EtcdOptions {
        endpoints: e.endpoints.clone(),
        prefix: e.prefix.clone(),
        user: e.user.clone(),
        password,
        ca_file: e.ca_file.as_ref().map(|f| config.secrets.resolve(f)),
        cert_file: e.cert_file.as_ref().map(|f| config.secrets.resolve(f)),
        key_file: e.key_file.as_ref().map(|f| config.secrets.resolve(f)),
        dial_timeout: Duration::from_secs_f64(e.dial_timeout_secs),
        request_timeout: Duration::from_secs_f64(e.request_timeout_secs),
    })
}

/// This member as the others see it.
fn me(config: &Config, listen: std::net::SocketAddr) -> Member {
    let url = if config.cluster.advertise_url.is_empty() {
        format!("http://{listen}")
    } else {
        config.cluster.advertise_url.clone()
    };
    Member {
        name: config.cluster.member_name(),
        url,
        started_at: Utc::now(),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// Runs this member until SIGTERM or SIGINT; starts over when its lease
/// ends.
pub async fn run(config_path: &Path, required: bool, mut config: Config) -> anyhow::Result<()> {
    let stop = stop_signal()?;
    tokio::pin!(stop);
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    crate::state::ensure_dir(&config.state_dir)?;
    std::fs::write(
        config.state_dir.join(crate::state::CLUSTER_MARKER),
        "This daemon keeps its state in etcd ([store] backend = \"etcd\").\n",
    )
    .context("cannot mark the state directory as a cluster member's")?;
    // Every member must hold the same key: account secrets sealed by one
    // are opened by the others.
    let key = match &config.store.sealing_key_file {
        Some(file) => config.secrets.resolve(file),
        None => config.state_dir.join("secret.key"),
    };
    let sealer = Sealer::load_or_create(&key)?;
    let options = etcd_options(&config)?;
    let ttl = Duration::from_secs(config.cluster.lease_ttl_secs);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let me = me(&config, listener.local_addr()?);
    // etcd may be without quorum now (a member starting over in an
    // outage): wait for it, but give up at once on a wrong sealing key.
    let mut attempts = 0u32;
    let cluster = loop {
        match Cluster::join(&options, sealer.clone(), me.clone(), ttl).await {
            Ok(cluster) => break cluster,
            Err(
                e @ (oms_cluster::ClusterError::Etcd(_)
                | oms_cluster::ClusterError::Store(StoreError::Unavailable(_))),
            ) => {
                if attempts % 15 == 0 {
                    warn!(error = %e, endpoints = %options.endpoints.join(","), "etcd does not answer; waiting to join the cluster");
                }
                attempts += 1;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = &mut stop => return Ok(()),
                }
            }
            Err(other) => {
                return Err(other).with_context(|| {
                    format!("cannot join the cluster on {}", options.endpoints.join(","))
                });
            }
        }
    };
    let mut fleet_config = oms_actors::FleetConfig {
        // Server tags carry the cluster's id: whichever member leads
        // recognizes the servers the others created.
        daemon_id: cluster.id.clone(),
        fence: cluster.membership.fence(),
        standby: true,
        ..config.fleet_config()
    };
    // Providers' logs tell which member called.
    fleet_config.client.user_agent =
        format!("{} (member {})", fleet_config.client.user_agent, me.name);
    let store: Arc<dyn Store> = Arc::new(cluster.store.clone());
    let daemon = Daemon::start_on(store, listener, fleet_config, config.api_config()).await?;
    daemon.fleet.set_cluster(cluster.clone());
    info!(member = %me.name, url = %me.url, cluster = %cluster.id, "cluster member serving");
    println!("listening on http://{}", daemon.addr);
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    crate::serve::watchdog(daemon.fleet.clone());

    let campaign = {
        let cluster = cluster.clone();
        async move { cluster.lead().await }
    };
    tokio::pin!(campaign);
    let mut campaigning = true;
    let ended = loop {
        tokio::select! {
            _ = &mut stop => break None,
            led = &mut campaign, if campaigning => {
                campaigning = false;
                match led {
                    Ok(()) => {
                        if let Err(e) = crate::serve::apply(&daemon.fleet, &config).await {
                            error!(error = %e, "cannot apply the configuration as the new leader");
                        }
                        daemon.fleet.lead()?;
                        info!("leading: the dispatcher and the account supervisors run here");
                    }
                    Err(e) => break Some(e.to_string()),
                }
            }
            why = cluster.ended() => break Some(why),
            _ = hangup.recv() => {
                info!(config = %config_path.display(), "reloading the configuration");
                match Config::load(config_path, required) {
                    Ok(fresh) => {
                        config = fresh;
                        if daemon.fleet.is_leading() {
                            match crate::serve::apply(&daemon.fleet, &config).await {
                                Ok(bad) => info!(skipped = bad, "configuration reloaded"),
                                Err(e) => error!(error = %e, "reload failed"),
                            }
                        } else {
                            info!("configuration read; the leader applies its own to the cluster");
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
    };
    match ended {
        None => {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
            // Hand the lead over at once rather than after the TTL.
            cluster.membership.resign().await;
            daemon.stop().await;
            Ok(())
        }
        Some(why) => {
            // Requests in flight get their 503 rather than a cut
            // connection; nothing is written or sent meanwhile (the store
            // refuses, the fence is closed).
            cluster.store.stop_writes(&why);
            let _ = tokio::time::timeout(Duration::from_secs(2), daemon.stop()).await;
            start_over(&why)
        }
    }
}

/// Replaces this process with a fresh one of the same command line: no
/// task of the old term can act after this.
fn start_over(why: &str) -> anyhow::Result<()> {
    warn!(%why, "this member lost its lease; starting over as a follower");
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let error = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .exec();
    // exec returns only on failure (the binary was replaced, say): exit,
    // and let the service manager start us again.
    error!(error = %error, exe = %exe.display(), "cannot start over; exiting");
    std::process::exit(75);
}
