//! oms-sim: an OpenStack simulator for tests, demos and benchmarks.
//!
//! It serves several providers at once, each with its own Keystone port and
//! one port per region (Nova under `/compute`, Glance under `/image`), plus a
//! control port with `/_sim/` to inject faults and read counters. It is
//! written from the captured real exchanges in `tests/transcripts`, not
//! from the OpenMultiStack client, so that a misreading of the wire format
//! cannot hide in both.

mod config;
mod control;
mod faults;
mod glance;
mod http;
mod keystone;
mod nova;
mod nova_keypairs;
mod nova_quota;
mod nova_servers;
mod world;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{
    AppCredentialConfig, FlavorConfig, ProviderConfig, QuotaConfig, RegionConfig, SimConfig,
    UserConfig,
};
pub use faults::{Faults, Outage, build_fails};

use http::{Reply, Request};
use world::World;

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Port {
    Keystone(usize),
    Region(usize, usize),
}

/// Shared state behind every port.
#[derive(Debug)]
pub(crate) struct Sim {
    world: Mutex<World>,
    switches: Mutex<HashMap<Port, watch::Sender<bool>>>,
}

impl Sim {
    /// The world, locked. Never held across an await.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens or closes a port to match its faults' outage.
    fn apply_switch(&self, port: Port, faults: &Faults) {
        let refused = faults.outage == Some(Outage::Refused);
        if let Some(switch) = self
            .switches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&port)
        {
            switch.send_replace(refused);
        }
    }

    /// Replaces the faults of one port.
    pub(crate) fn set_faults(&self, port: Port, faults: Faults) {
        {
            let mut world = self.world();
            match port {
                Port::Keystone(p) => world.providers[p].keystone_faults = faults.clone(),
                Port::Region(p, r) => world.providers[p].regions[r].faults = faults.clone(),
            }
        }
        self.apply_switch(port, &faults);
    }
}

/// How to reach and log in to one simulated provider.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderInfo {
    /// Provider name.
    pub name: String,
    /// Keystone URL, ending in `/v3`.
    pub auth_url: String,
    /// Region names.
    pub regions: Vec<String>,
    /// Users as (name, password, project, domain).
    pub users: Vec<UserInfo>,
}

/// A user's credentials, printed by `oms sim` for operators to use.
#[derive(Debug, Clone, Serialize)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// Password.
    pub password: String,
    /// Project name.
    pub project: String,
    /// Domain name.
    pub domain: String,
}

/// Errors starting or steering the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// No provider or region has that name.
    #[error("no such provider or region: {0}")]
    Unknown(String),
}

/// A running simulator. Dropping it stops every port.
#[derive(Debug)]
pub struct Simulator {
    sim: Arc<Sim>,
    control_url: String,
    providers: Vec<ProviderInfo>,
    tasks: Vec<JoinHandle<()>>,
    /// Dropping these ends the port tasks.
    _stop: Vec<watch::Sender<bool>>,
}

async fn bind(ip: std::net::IpAddr, port: u16) -> Result<TcpListener, SimError> {
    let addr = SocketAddr::new(ip, port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })
}

fn url_of(listener: &TcpListener) -> String {
    let addr = listener
        .local_addr()
        .expect("bound listener has an address");
    format!("http://{addr}")
}

impl Simulator {
    /// Binds every port and starts serving.
    pub async fn start(config: SimConfig) -> Result<Simulator, SimError> {
        let mut world = World::new(&config);
        let mut listeners = Vec::new();
        for (p, provider) in config.providers.iter().enumerate() {
            let keystone = bind(config.listen, provider.port).await?;
            world.providers[p].keystone_url = format!("{}/v3", url_of(&keystone));
            listeners.push((Port::Keystone(p), keystone));
            for (r, region) in provider.regions.iter().enumerate() {
                let listener = bind(config.listen, region.port).await?;
                world.providers[p].regions[r].base_url = url_of(&listener);
                listeners.push((Port::Region(p, r), listener));
            }
        }
        let providers = world
            .providers
            .iter()
            .map(|p| ProviderInfo {
                name: p.config.name.clone(),
                auth_url: p.keystone_url.clone(),
                regions: p.regions.iter().map(|r| r.config.name.clone()).collect(),
                users: p
                    .config
                    .users
                    .iter()
                    .map(|u| UserInfo {
                        name: u.name.clone(),
                        password: u.password.clone(),
                        project: u.project.clone(),
                        domain: u.domain.clone(),
                    })
                    .collect(),
            })
            .collect();
        let sim = Arc::new(Sim {
            world: Mutex::new(world),
            switches: Mutex::new(HashMap::new()),
        });
        let mut tasks = Vec::new();
        let mut stop = Vec::new();
        for (port, listener) in listeners {
            let (switch, down) = watch::channel(false);
            sim.switches
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(port, switch);
            let handler_sim = sim.clone();
            let handler = move |request: Request| {
                let sim = handler_sim.clone();
                async move { serve(&sim, port, request).await }
            };
            tasks.push(http::spawn_port(listener, handler, down));
        }
        // Apply the configured outages now that the switches exist.
        let initial: Vec<(Port, Faults)> =
            {
                let world = sim.world();
                world
                    .providers
                    .iter()
                    .enumerate()
                    .flat_map(|(p, provider)| {
                        std::iter::once((Port::Keystone(p), provider.keystone_faults.clone()))
                            .chain(provider.regions.iter().enumerate().map(move |(r, region)| {
                                (Port::Region(p, r), region.faults.clone())
                            }))
                    })
                    .collect()
            };
        for (port, faults) in initial {
            sim.apply_switch(port, &faults);
        }
        let control = bind(config.listen, config.control_port).await?;
        let control_url = url_of(&control);
        let (control_stop, control_down) = watch::channel(false);
        stop.push(control_stop);
        let control_sim = sim.clone();
        tasks.push(http::spawn_port(
            control,
            move |request: Request| {
                let sim = control_sim.clone();
                async move { control::handle(&sim, &request) }
            },
            control_down,
        ));
        Ok(Simulator {
            sim,
            control_url,
            providers,
            tasks,
            _stop: stop,
        })
    }

    /// Base URL of the control API (`/_sim/...`).
    pub fn control_url(&self) -> &str {
        &self.control_url
    }

    /// The providers with their auth URLs and users.
    pub fn providers(&self) -> &[ProviderInfo] {
        &self.providers
    }

    /// Replaces the faults of a region, or of Keystone when `region` is None.
    pub fn set_faults(
        &self,
        provider: &str,
        region: Option<&str>,
        faults: Faults,
    ) -> Result<(), SimError> {
        let port = control::resolve(&self.sim, provider, region)?;
        self.sim.set_faults(port, faults);
        Ok(())
    }

    /// Revokes every token the provider issued; the next call gets 401.
    pub fn revoke_tokens(&self, provider: &str) -> Result<(), SimError> {
        match control::resolve(&self.sim, provider, None)? {
            Port::Keystone(p) => self.sim.world().providers[p].tokens.clear(),
            Port::Region(..) => {}
        }
        Ok(())
    }

    /// The same document `GET /_sim/state` returns.
    pub fn state(&self) -> serde_json::Value {
        control::state(&self.sim)
    }

    /// Stops serving and waits briefly for the ports to close.
    pub async fn shutdown(self) {
        let Simulator { sim, tasks, .. } = self;
        sim.switches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        for task in tasks {
            task.abort();
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
    }
}

/// Applies the port's faults, then routes the request.
async fn serve(sim: &Sim, port: Port, request: Request) -> Reply {
    let agent = request
        .headers
        .get(hyper::header::USER_AGENT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let (faults, over_rate) = {
        let mut world = sim.world();
        let now = tokio::time::Instant::now();
        match port {
            Port::Keystone(p) => {
                let provider = &mut world.providers[p];
                let limit = provider.keystone_faults.rate_limit_per_sec;
                provider.keystone_counters.record(
                    control::route_label(&request.method, &request.segments()),
                    &agent,
                );
                let over = world::over_rate(&mut provider.keystone_window, limit, now);
                (provider.keystone_faults.clone(), over)
            }
            Port::Region(p, r) => {
                let region = &mut world.providers[p].regions[r];
                region.counters.record(
                    control::route_label(&request.method, &request.segments()),
                    &agent,
                );
                let over = region.over_rate(now);
                (region.faults.clone(), over)
            }
        }
    };
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.outage == Some(Outage::Maintenance) {
        return Reply::html(
            503,
            "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n",
        );
    }
    if over_rate {
        if let Port::Region(p, r) = port {
            let mut world = sim.world();
            world.providers[p].regions[r]
                .counters
                .rate_limited
                .push(world::now_ms());
        }
        return nova::fault(429, "overLimit", "This request was rate-limited.")
            .header("Retry-After", "1");
    }
    if Faults::roll(faults.error_rate) {
        return nova::unexpected_error();
    }
    let segments = request.segments();
    match (port, segments.as_slice()) {
        (Port::Keystone(p), _) => keystone::handle(sim, p, &request),
        (Port::Region(p, r), ["compute", rest @ ..]) => nova::handle(sim, p, r, &request, rest),
        (Port::Region(p, r), ["image", rest @ ..]) => glance::handle(sim, p, r, &request, rest),
        (Port::Region(..), _) => {
            Reply::html(404, "<html><body><h1>404 Not Found</h1></body></html>")
        }
    }
}
