//! What the daemon reports is what the provider holds: an active instance
//! whose server is deleted behind the daemon's back ends `lost` (or is
//! placed again when its request asked for that), a server stopped at the
//! provider shows SHUTOFF, and a deletion made while the daemon was down
//! is noticed after its start.

use std::sync::Arc;
use std::time::Duration;

use crate::support::fleet::{all_reach, ask, fast_config, fleet_on, sim_of, sim_region};
use crate::support::{compute, eventually, server_action};
use oms_actors::model::{Instance, InstanceState};
use oms_actors::store::{InstanceFilter, Store};
use oms_actors::{Fleet, FleetConfig, NewLaunch};
use oms_sim::Simulator;

fn config() -> FleetConfig {
    FleetConfig {
        daemon_id: "losttest".into(),
        // The full listing of the leak scan must not be what notices:
        // the polls must.
        leak_interval: Duration::from_secs(3600),
        ..fast_config()
    }
}

fn server_of(instance: &Instance) -> String {
    instance
        .attempt
        .as_ref()
        .and_then(|a| a.server_id.clone())
        .expect("an active instance has a server")
}

async fn reaches(store: &Arc<dyn Store>, id: &str, state: InstanceState) -> Instance {
    eventually(Duration::from_secs(15), state.as_str(), || async {
        store.get_instance(id).unwrap().filter(|i| i.state == state)
    })
    .await
}

fn keypairs(sim: &oms_sim::Simulator) -> Vec<String> {
    sim_region(sim, "p", "p-1")["keypairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect()
}

fn server_deletions(sim: &oms_sim::Simulator) -> usize {
    sim_region(sim, "p", "p-1")["deletions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "server")
        .count()
}

/// One region, and `launch` active in it.
async fn running(launch: NewLaunch) -> (Simulator, Fleet, Arc<dyn Store>, Vec<Instance>) {
    let sim = sim_of(&["p"], |p| p.regions.truncate(1)).await;
    let (fleet, store) = fleet_on(&sim, config()).await;
    let launched = fleet.launch(launch).await.unwrap();
    let active = all_reach(
        &store,
        &launched.request.id,
        InstanceState::Active,
        Duration::from_secs(30),
    )
    .await;
    (sim, fleet, store, active)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_server_deleted_behind_our_back_makes_its_instance_lost() {
    let (sim, fleet, store, active) = running(NewLaunch {
        public_key: Some(crate::support::PUBLIC_KEY.into()),
        ..ask("ci", 2)
    })
    .await;
    assert_eq!(keypairs(&sim).len(), 2);

    let nova = compute(&sim, "p-1").await;
    nova.delete_server(&server_of(&active[0])).await.unwrap();

    let lost = reaches(&store, &active[0].id, InstanceState::Lost).await;
    assert!(lost.address.is_none(), "a lost instance has no address");
    let failure = lost.failure.clone().unwrap();
    assert!(failure.contains("vanished"), "{failure}");
    let events = store.events(&lost.id).unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.state, InstanceState::Lost);
    assert!(
        last.message.contains("noticed by a poll") && last.message.contains("404"),
        "the event says how it was noticed: {}",
        last.message
    );
    // Its key pair goes with it; the other instance keeps everything.
    eventually(Duration::from_secs(5), "lost key pair deleted", || async {
        (keypairs(&sim).len() == 1).then_some(())
    })
    .await;
    let other = store.get_instance(&active[1].id).unwrap().unwrap();
    assert_eq!(other.state, InstanceState::Active);
    assert_eq!(sim_region(&sim, "p", "p-1")["servers_alive"], 1);
    // Only the person's delete: the daemon deleted no server.
    assert_eq!(server_deletions(&sim), 1);
    // A lost instance is finished: the client's limit no longer counts it.
    let live = store.list_instances(&InstanceFilter::live()).unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, active[1].id);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_instance_is_placed_again_when_its_request_asks() {
    let (sim, fleet, store, mut active) = running(NewLaunch {
        replace_lost: true,
        ..ask("ci", 1)
    })
    .await;
    let first = active.remove(0);
    let gone = server_of(&first);
    compute(&sim, "p-1")
        .await
        .delete_server(&gone)
        .await
        .unwrap();

    let again = eventually(Duration::from_secs(20), "a replacement", || async {
        store
            .get_instance(&first.id)
            .unwrap()
            .filter(|i| i.state == InstanceState::Active && server_of(i) != gone)
    })
    .await;
    assert_eq!(again.replaced, 1);
    assert!(again.address.is_some());
    let events = store.events(&first.id).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.message.contains("placing a replacement")),
        "{events:#?}"
    );
    assert_eq!(sim_region(&sim, "p", "p-1")["servers_alive"], 1);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_at_the_provider_shows_shutoff_until_it_runs_again() {
    let (sim, fleet, store, mut active) = running(ask("ci", 1)).await;
    let instance = active.remove(0);
    let server = server_of(&instance);

    assert_eq!(server_action(&sim, "p-1", &server, "os-stop").await, 202);
    let stopped = eventually(Duration::from_secs(10), "SHUTOFF shown", || async {
        store
            .get_instance(&instance.id)
            .unwrap()
            .filter(|i| i.provider_status.as_deref() == Some("SHUTOFF"))
    })
    .await;
    // Still ours and still there: active, with what the provider says.
    assert_eq!(stopped.state, InstanceState::Active);
    // Nova refuses to stop it twice, as real Nova does.
    assert_eq!(server_action(&sim, "p-1", &server, "os-stop").await, 409);

    assert_eq!(server_action(&sim, "p-1", &server, "os-start").await, 202);
    eventually(Duration::from_secs(10), "ACTIVE again", || async {
        store
            .get_instance(&instance.id)
            .unwrap()
            .filter(|i| i.provider_status.is_none())
    })
    .await;
    let messages: Vec<String> = store
        .events(&instance.id)
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(
        messages
            .iter()
            .filter(|m| m.contains("SHUTOFF at the provider"))
            .count(),
        1,
        "one event per change: {messages:#?}"
    );
    assert!(messages.iter().any(|m| m.contains("ACTIVE again")));
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_deleted_while_the_daemon_was_down_is_noticed_after_its_start() {
    let (sim, fleet, store, active) = running(ask("ci", 2)).await;
    fleet.shutdown().await;

    compute(&sim, "p-1")
        .await
        .delete_server(&server_of(&active[1]))
        .await
        .unwrap();
    // Gone for good (its tombstone outside any changes-since window the
    // restarted daemon could ask for) before the daemon comes back.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let fleet = Fleet::start(store.clone(), config()).await.unwrap();
    let lost = reaches(&store, &active[1].id, InstanceState::Lost).await;
    let last = store.events(&lost.id).unwrap().pop().unwrap();
    assert!(
        last.message.contains("full listing"),
        "noticed by the full listing after the start: {}",
        last.message
    );
    // The other stays active through the restart.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        store.get_instance(&active[0].id).unwrap().unwrap().state,
        InstanceState::Active
    );
    fleet.shutdown().await;
}
