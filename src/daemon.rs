//! The composition root: the actor tree over a store, the REST API on a
//! listener, and an orderly stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use oms_actors::store::Store;
use oms_actors::{Fleet, FleetConfig};
use oms_web::{Api, ApiConfig};
use tokio::net::TcpListener;
use tracing::info;

/// A running daemon.
pub struct Daemon {
    /// The fleet, shared with the API.
    pub fleet: Arc<Fleet>,
    /// Where the API listens.
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

/// How long in-flight API requests get to finish on stop.
const GRACE: Duration = Duration::from_secs(10);

impl Daemon {
    /// Starts the fleet on `store` and serves the API on `listen`.
    pub async fn start(
        store: Arc<dyn Store>,
        listen: SocketAddr,
        fleet_config: FleetConfig,
        api_config: ApiConfig,
    ) -> anyhow::Result<Daemon> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        Daemon::start_on(store, listener, fleet_config, api_config).await
    }

    /// Like [`Daemon::start`], on a listener already bound (a cluster
    /// member announces its address before it serves).
    pub async fn start_on(
        store: Arc<dyn Store>,
        listener: TcpListener,
        fleet_config: FleetConfig,
        api_config: ApiConfig,
    ) -> anyhow::Result<Daemon> {
        let addr = listener.local_addr()?;
        let fleet = Arc::new(Fleet::start(store, fleet_config).await?);
        let api = Api::new(fleet.clone(), api_config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(oms_web::serve(listener, api, async {
            let _ = stopped.await;
        }));
        info!(%addr, "api listening");
        Ok(Daemon {
            fleet,
            addr,
            stop,
            server,
        })
    }

    /// Stops accepting requests, lets in-flight ones finish (within a
    /// grace period), stops the actor tree and flushes the store.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(GRACE, self.server).await;
        // Others may still hold the fleet (the watchdog task): the tree
        // stops regardless.
        self.fleet.shutdown().await;
        info!("stopped");
    }
}

/// Resolves on SIGTERM or SIGINT. Install it before announcing readiness.
pub fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
