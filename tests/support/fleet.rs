//! A fleet on the simulator: accounts for every simulated provider, a
//! profile, fast timings, and helpers to wait for instance states.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use oms_actors::model::{Account, AccountAuth, Instance, InstanceState, Profile, RegionLimits};
use oms_actors::openstack::{ClientConfig, Domain, IdentityVersion, Interface, Named};
use oms_actors::store::{InstanceFilter, MemoryStore, Store};
use oms_actors::{Fleet, FleetConfig, NewLaunch};
use oms_sim::Simulator;
use secrecy::SecretString;

/// Timings short enough for tests.
pub fn fast_config() -> FleetConfig {
    let mut config = FleetConfig {
        poll_interval: Duration::from_millis(200),
        refresh_interval: Duration::from_millis(1000),
        dispatch_interval: Duration::from_millis(200),
        reroute_backoff: Duration::from_secs(5),
        adoption_grace: Duration::from_secs(3),
        lease_interval: Duration::from_millis(200),
        leak_interval: Duration::from_millis(500),
        leak_grace: Duration::from_secs(2),
        probe_interval: Duration::from_millis(500),
        probe_timeout: Duration::from_secs(2),
        history_interval: Duration::from_millis(250),
        client: ClientConfig {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        },
        ..FleetConfig::default()
    };
    config.breaker.open_for = Duration::from_millis(500);
    config.breaker.max_open_for = Duration::from_secs(2);
    config.restart.base = Duration::from_millis(50);
    config
}

/// An account for the demo user of a simulated provider.
pub fn account_for(name: &str, auth_url: &str) -> Account {
    account_with_password(name, auth_url, "secret")
}

/// An account for the demo user, with the password the simulator expects.
pub fn account_with_password(name: &str, auth_url: &str, password: &str) -> Account {
    Account {
        id: String::new(),
        name: name.into(),
        auth_url: auth_url.parse().unwrap(),
        identity_version: IdentityVersion::V3,
        interface: Interface::Public,
        auth: AccountAuth::Password {
            user: Named::Name {
                name: "demo".into(),
                domain: Domain::Name("Default".into()),
            },
            project: Named::Name {
                name: "demo".into(),
                domain: Domain::Name("Default".into()),
            },
        },
        secret: SecretString::from(password),
        regions: vec![],
        networks: vec![],
        enabled: true,
        drain: false,
        priority: 0,
        limits: RegionLimits {
            mutating_per_sec: 50.0,
            read_per_sec: 100.0,
            max_concurrent_creates: 10,
            mutating_burst: 5,
        },
        pins: BTreeMap::new(),
        created_at: Utc::now(),
    }
}

/// The profile every test launches.
pub fn small() -> Profile {
    Profile {
        name: "small".into(),
        min_vcpus: 1,
        min_ram_mb: 512,
        min_disk_gb: 1,
        image: "cirros-fake".into(),
        boot_timeout_secs: 60,
    }
}

/// A fleet with every provider of `sim` registered, regions discovered.
pub async fn fleet_on(sim: &Simulator, config: FleetConfig) -> (Fleet, Arc<dyn Store>) {
    fleet_on_with(sim, config, |_| {}).await
}

/// Like [`fleet_on`], each account changed by `adjust` first.
pub async fn fleet_on_with(
    sim: &Simulator,
    config: FleetConfig,
    adjust: impl Fn(&mut Account),
) -> (Fleet, Arc<dyn Store>) {
    fleet_on_store(sim, config, Arc::new(MemoryStore::new()), adjust).await
}

/// Like [`fleet_on_with`], on `store`.
pub async fn fleet_on_store(
    sim: &Simulator,
    config: FleetConfig,
    store: Arc<dyn Store>,
    adjust: impl Fn(&mut Account),
) -> (Fleet, Arc<dyn Store>) {
    let fleet = Fleet::start(store.clone(), config).await.unwrap();
    fleet.put_profile(small()).await.unwrap();
    let mut regions = 0;
    for provider in sim.providers() {
        let password = &provider.users[0].password;
        let mut account = account_with_password(&provider.name, &provider.auth_url, password);
        adjust(&mut account);
        fleet.put_account(account).await.unwrap();
        regions += provider.regions.len();
    }
    super::eventually(Duration::from_secs(20), "regions resolved", || async {
        let ready = fleet
            .regions()
            .iter()
            .filter(|r| r.connected && r.profiles.contains_key("small"))
            .count();
        (ready == regions).then_some(())
    })
    .await;
    (fleet, store)
}

/// A launch of `count` small instances for `client`.
pub fn ask(client: &str, count: u32) -> NewLaunch {
    NewLaunch {
        client: client.into(),
        profile: "small".into(),
        count,
        ..NewLaunch::default()
    }
}

/// Instances of `request` in `state`, once all of them are; on timeout,
/// panics with every instance's timeline.
pub async fn all_reach(
    store: &Arc<dyn Store>,
    request_id: &str,
    state: InstanceState,
    limit: Duration,
) -> Vec<Instance> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let instances = store.request_instances(request_id).unwrap();
        if instances.iter().all(|i| i.state == state) {
            return instances;
        }
        if tokio::time::Instant::now() >= deadline {
            let mut report = String::new();
            for i in &instances {
                report.push_str(&format!(
                    "{} {} attempts {}\n",
                    i.id,
                    i.state.as_str(),
                    i.attempts
                ));
                for e in store.events(&i.id).unwrap() {
                    report.push_str(&format!(
                        "    {} {:?} {}\n",
                        e.state.as_str(),
                        e.account_region,
                        e.message
                    ));
                }
            }
            panic!(
                "timed out waiting for all instances {}:\n{report}",
                state.as_str()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Counts instances by state.
pub fn count(store: &Arc<dyn Store>, state: InstanceState) -> usize {
    store
        .list_instances(&InstanceFilter {
            states: vec![state],
            ..InstanceFilter::default()
        })
        .unwrap()
        .len()
}

/// A simulator with providers `names`, builds of half a second, each
/// provider changed by `adjust`.
pub async fn sim_of(names: &[&str], adjust: impl Fn(&mut oms_sim::ProviderConfig)) -> Simulator {
    let providers = names
        .iter()
        .map(|name| {
            let mut p = oms_sim::ProviderConfig::named(name);
            for r in &mut p.regions {
                r.build_secs = 0.5;
                r.delete_secs = 0.2;
            }
            adjust(&mut p);
            p
        })
        .collect();
    Simulator::start(oms_sim::SimConfig {
        providers,
        ..oms_sim::SimConfig::default()
    })
    .await
    .unwrap()
}

/// The simulator's view of one region.
pub fn sim_region(sim: &Simulator, provider: &str, region: &str) -> serde_json::Value {
    let state = sim.state();
    state["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == provider)
        .and_then(|p| {
            p["regions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == region)
                .cloned()
        })
        .unwrap()
}

/// Servers alive in every region of the simulator.
pub fn sim_servers(sim: &Simulator) -> u64 {
    let state = sim.state();
    state["providers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["regions"].as_array().unwrap().iter())
        .map(|r| r["servers_alive"].as_u64().unwrap())
        .sum()
}
