//! `oms demo`: the daemon over an embedded simulator of three providers
//! with two regions each (quota 20), one of them flapping in and out of
//! maintenance, a few instances launched, and an admin token printed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use oms_actors::model::{Account, AccountAuth, Profile, RegionLimits, Role};
use oms_actors::openstack::{Domain, IdentityVersion, Interface, Named};
use oms_actors::store::{MemoryStore, Store};
use oms_actors::tokens::NewToken;
use oms_actors::{FleetConfig, NewLaunch};
use oms_sim::{Faults, Outage, SimConfig, Simulator};
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

/// Runs the demo until SIGINT or SIGTERM.
pub async fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let stop = stop_signal()?;
    let mut config = SimConfig::default();
    for provider in &mut config.providers {
        for region in &mut provider.regions {
            region.build_secs = 4.0;
            region.faults.latency_ms = 30;
        }
    }
    let sim = Simulator::start(config).await?;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let daemon = Daemon::start(
        store.clone(),
        listen,
        FleetConfig::default(),
        ApiConfig::default(),
    )
    .await?;
    for profile in profiles() {
        daemon.fleet.put_profile(profile).await?;
    }
    for provider in sim.providers() {
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
        daemon.fleet.put_account(account).await?;
    }
    let (_, admin) = daemon
        .fleet
        .issue_token(NewToken {
            name: "demo-admin".into(),
            role: Role::Admin,
            instance_limit: None,
            continues: None,
        })
        .await?;
    let base = format!("http://{}", daemon.addr);
    println!(
        "OpenMultiStack demo: 3 simulated providers × 2 regions, {FLAPPING} flapping in and out of maintenance"
    );
    println!("web      {base}/  (sign in with the token below)");
    println!("api      {base}/v1/regions");
    println!("token    {}", admin.expose_secret());
    println!("simulator control {}/_sim/state", sim.control_url());
    println!(
        "try      curl -H 'Authorization: Bearer {}' {base}/v1/instances",
        admin.expose_secret()
    );
    println!("stop     Ctrl-C");

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
