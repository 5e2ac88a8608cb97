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
    let sim = Simulator::start(config).await?;
    println!("control  {}/_sim/state", sim.control_url());
    for provider in sim.providers() {
        for user in &provider.users {
            println!(
                "provider {:<10} auth_url {}  user {} password {} project {} domain {}  regions {}",
                provider.name,
                provider.auth_url,
                user.name,
                user.password,
                user.project,
                user.domain,
                provider.regions.join(",")
            );
        }
    }
    wait_for_stop().await;
    sim.shutdown().await;
    Ok(())
}

async fn wait_for_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
