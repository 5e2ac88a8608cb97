//! No event storms: a waiting instance whose every region is down (breakers
//! open, probing now and then) is not offered again and again to regions
//! that refuse it. Over a minute it gets a handful of events and the daemon
//! writes a handful of log lines, not thousands.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use oms_actors::breaker::BreakerState;
use oms_actors::model::InstanceState;
use oms_sim::{Faults, Outage};

use crate::support::eventually;
use crate::support::fleet::{ask, fast_config, fleet_on, sim_of};

/// Counts the lines written to it, and keeps the last few to show.
#[derive(Clone, Default)]
struct Lines(Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let lines = buf.iter().filter(|b| **b == b'\n').count();
        self.0.fetch_add(lines, Ordering::Relaxed);
        let mut kept = self.1.lock().unwrap();
        kept.push(String::from_utf8_lossy(buf).into_owned());
        if kept.len() > 150 {
            kept.remove(0);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Seconds every region stays down (`STORM_SECS`, 60 by default).
fn down_for() -> Duration {
    Duration::from_secs(
        std::env::var("STORM_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_instance_with_every_region_down_stays_quiet() {
    let lines = Lines::default();
    let writer = lines.clone();
    // The daemon's default level; nextest runs each test in its own process.
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(move || writer.clone())
            .finish(),
    )
    .expect("the only subscriber of this test process");

    let sim = sim_of(&["p"], |_| {}).await;
    let (fleet, store) = fleet_on(&sim, fast_config()).await;
    for region in ["p-1", "p-2"] {
        sim.set_faults(
            "p",
            Some(region),
            Faults {
                outage: Some(Outage::Maintenance),
                ..Faults::default()
            },
        )
        .unwrap();
    }
    eventually(Duration::from_secs(15), "every breaker open", || async {
        fleet
            .regions()
            .iter()
            .all(|r| r.breaker != BreakerState::Closed)
            .then_some(())
    })
    .await;

    let before = lines.0.load(Ordering::Relaxed);
    let launched = fleet.launch(ask("ci", 1)).await.unwrap();
    let id = launched.instances[0].id.clone();
    tokio::time::sleep(down_for()).await;
    let logged = lines.0.load(Ordering::Relaxed) - before;
    let events = store.events(&id).unwrap();
    let instance = store.get_instance(&id).unwrap().unwrap();
    let timeline: Vec<String> = events.iter().map(|e| e.message.clone()).collect();
    eprintln!(
        "{} events and {logged} log lines in {:?}: {timeline:#?}",
        events.len(),
        down_for()
    );
    assert!(
        events.len() < 20,
        "{} events in {:?}: {timeline:#?}",
        events.len(),
        down_for()
    );
    assert!(
        logged < 100,
        "{logged} log lines in {:?}: {}",
        down_for(),
        lines.1.lock().unwrap().join("")
    );
    assert_ne!(instance.state, InstanceState::Active);
    // The "why" is a short summary, with the detail beside it.
    let waiting = events
        .iter()
        .rev()
        .find(|e| e.message.starts_with("waiting:"))
        .expect("the instance says why it waits");
    assert!(waiting.message.len() < 120, "{}", waiting.message);
    assert!(waiting.detail.is_some(), "the detail goes beside it");

    // Back up: it is placed without waiting out a long back-off.
    for region in ["p-1", "p-2"] {
        sim.set_faults("p", Some(region), Faults::default())
            .unwrap();
    }
    eventually(Duration::from_secs(20), "active after recovery", || async {
        store
            .get_instance(&id)
            .unwrap()
            .filter(|i| i.state == InstanceState::Active)
    })
    .await;
    fleet.shutdown().await;
}
