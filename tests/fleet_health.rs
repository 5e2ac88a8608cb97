//! Health that tells the truth within seconds: one failing call marks a
//! region unhealthy (not the breaker's threshold, not the next refresh),
//! the first success clears it, and the last error, with its time, ages
//! out once the region has recovered.

use std::time::Duration;

use oms_actors::FleetConfig;
use oms_sim::{Faults, Outage};

use crate::support::eventually;
use crate::support::fleet::{fast_config, fleet_on, sim_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_call_marks_the_region_unhealthy_until_one_succeeds() {
    let sim = sim_of(&["p"], |p| p.regions.truncate(1)).await;
    let config = FleetConfig {
        last_error_memory: Duration::from_secs(2),
        ..fast_config()
    };
    let (fleet, _store) = fleet_on(&sim, config).await;
    let region = || fleet.regions().into_iter().next().unwrap();
    eventually(Duration::from_secs(5), "healthy at first", || async {
        region().healthy.then_some(())
    })
    .await;

    sim.set_faults(
        "p",
        Some("p-1"),
        Faults {
            outage: Some(Outage::Maintenance),
            ..Faults::default()
        },
    )
    .unwrap();
    let down = eventually(Duration::from_secs(5), "unhealthy", || async {
        let r = region();
        (!r.healthy).then_some(r)
    })
    .await;
    assert!(down.failing_since.is_some(), "{down:?}");
    assert!(
        down.last_error
            .as_deref()
            .is_some_and(|e| e.contains("503")),
        "{down:?}"
    );
    assert!(down.last_error_at.is_some());

    sim.set_faults("p", Some("p-1"), Faults::default()).unwrap();
    let up = eventually(Duration::from_secs(10), "healthy again", || async {
        let r = region();
        r.healthy.then_some(r)
    })
    .await;
    assert!(up.failing_since.is_none());
    // The error stays visible for a while after recovery, then ages out.
    eventually(Duration::from_secs(10), "last error aged out", || async {
        region().last_error.is_none().then_some(())
    })
    .await;
    assert!(region().healthy);
    fleet.shutdown().await;
}
