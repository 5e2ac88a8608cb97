//! `oms sim`: the simulator alone, until SIGINT or SIGTERM.

use std::path::Path;

use anyhow::Context as _;
use oms_sim::{SimConfig, Simulator};

/// Starts the simulator from `config` (or the default 3 × 2 providers),
/// prints how to reach each provider, and serves until asked to stop.
pub async fn run(config: Option<&Path>) -> anyhow::Result<()> {
    let config = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            SimConfig::from_toml(&text).with_context(|| format!("invalid {}", path.display()))?
        }
        None => SimConfig::default(),
    };
    // Listen for signals before announcing anything, so a supervisor that
    // signals right after reading the output is heard.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    let sim = Simulator::start(config).await?;
    println!("control  {}/_sim/state", sim.control_url());
    for provider in sim.providers() {
        let users: Vec<String> = provider
            .users
            .iter()
            .map(|u| format!("{}/{}@{}/{}", u.name, u.password, u.project, u.domain))
            .collect();
        println!(
            "provider {:<8} auth_url {}  regions {}  users (user/password@project/domain) {}",
            provider.name,
            provider.auth_url,
            provider.regions.join(","),
            users.join(" ")
        );
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    sim.shutdown().await;
    Ok(())
}
