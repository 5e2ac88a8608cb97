//! Helpers shared by the end-to-end tests: a simulator and sessions on it.

#![allow(dead_code)]

pub mod api;
pub mod binary;
#[cfg(feature = "etcd")]
pub mod cluster;
pub mod contract;
pub mod failing_store;
pub mod fleet;
pub mod pages;
pub mod promtool;

use std::sync::Arc;
use std::time::Duration;

use oms_actors::openstack::{
    AuthSpec, Client, ClientConfig, ComputeClient, Credentials, Domain, IdentityVersion, Interface,
    Named, Session,
};
use oms_sim::{ProviderConfig, RegionConfig, SimConfig, Simulator};
use secrecy::SecretString;

/// An OpenSSH public key for launches and imports (its private half is
/// nowhere: nothing logs in).
pub const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpDFr+8I0HQV9icG0+dBIJHThN1YYprA6OMhadAwztn ci";

/// A simulator with one provider `p` whose regions are `p-1` and `p-2`,
/// changed by `adjust` before it starts.
pub async fn sim_with(adjust: impl FnOnce(&mut ProviderConfig)) -> Simulator {
    let mut provider = ProviderConfig::named("p");
    for region in &mut provider.regions {
        region.build_secs = 0.4;
        region.delete_secs = 0.2;
    }
    adjust(&mut provider);
    Simulator::start(SimConfig {
        providers: vec![provider],
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// A region config named `name` with the test timings.
pub fn region(name: &str) -> RegionConfig {
    RegionConfig {
        build_secs: 0.4,
        delete_secs: 0.2,
        ..RegionConfig::named(name)
    }
}

/// A client with short timeouts so failure tests stay quick.
pub fn client() -> Client {
    Client::new(ClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(3),
        ..ClientConfig::default()
    })
    .expect("client builds")
}

/// Password credentials of `user` (project of the same name as in the sim).
pub fn password(user: &str, secret: &str, project: &str) -> Credentials {
    Credentials::Password {
        user: Named::Name {
            name: user.into(),
            domain: Domain::Name("Default".into()),
        },
        password: SecretString::from(secret),
        project: Named::Name {
            name: project.into(),
            domain: Domain::Id("default".into()),
        },
    }
}

/// A v3 session of the demo user on the sim's first provider.
pub fn demo_session(sim: &Simulator) -> Arc<Session> {
    session(sim, IdentityVersion::V3, password("demo", "secret", "demo"))
}

/// A session with the given identity version and credentials.
pub fn session(
    sim: &Simulator,
    version: IdentityVersion,
    credentials: Credentials,
) -> Arc<Session> {
    let auth_url = match version {
        IdentityVersion::V3 => sim.providers()[0].auth_url.clone(),
        IdentityVersion::V2 => sim.providers()[0].auth_url.replace("/v3", "/v2.0"),
    };
    Session::new(
        client(),
        AuthSpec {
            auth_url: auth_url.parse().expect("auth url"),
            identity_version: version,
            credentials,
            interface: Interface::Public,
        },
    )
}

/// The compute client of region `region` for the demo user.
pub async fn compute(sim: &Simulator, region: &str) -> ComputeClient {
    ComputeClient::connect(demo_session(sim), region)
        .await
        .expect("compute connects")
}

/// Polls `check` every 50 ms until it returns Some, or panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks Nova for a server action (`os-stop`, `os-start`) as the demo user
/// of the sim's first provider: what a person does behind the daemon's back.
pub async fn server_action(sim: &Simulator, region: &str, server_id: &str, action: &str) -> u16 {
    let token = demo_session(sim).token().await.expect("demo token");
    let endpoint = token
        .catalog
        .endpoint("compute", region, Interface::Public)
        .expect("compute endpoint")
        .clone();
    let url = format!(
        "{}/servers/{server_id}/action",
        endpoint.as_str().trim_end_matches('/')
    );
    reqwest::Client::new()
        .post(url)
        .header(
            "X-Auth-Token",
            secrecy::ExposeSecret::expose_secret(&token.value),
        )
        .json(&serde_json::json!({ action: null }))
        .send()
        .await
        .expect("action answered")
        .status()
        .as_u16()
}

/// Log output kept in memory, for tests that read what was logged.
#[derive(Clone, Default)]
pub struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
