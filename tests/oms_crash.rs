//! The real `oms` binary against `oms sim`: a listing that hides new
//! servers for 10 s gets none of them collected as a leak; a provider that
//! refuses DELETE for a while leaves the instance `deleting`, the delete
//! is retried, and it completes when the provider recovers.

use std::time::Duration;

use crate::support::binary::{
    ADMIN, all_instances, private_file, serve, sim_calls, sim_servers, sim_state, start,
};
use crate::support::eventually;
use serde_json::{Value, json};

/// Starts `oms sim` (one provider, one region, `faults` as TOML) and
/// `oms serve` on it; returns both, the control URL and the API URL.
fn setup(
    dir: &std::path::Path,
    faults: &str,
) -> (
    crate::support::binary::Proc,
    crate::support::binary::Proc,
    String,
    String,
) {
    let sim_config = dir.join("sim.toml");
    std::fs::write(
        &sim_config,
        format!("[[providers]]\nname = \"solo\"\n[[providers.regions]]\nname = \"solo-1\"\nbuild_secs = 0.5\ndelete_secs = 0.3\n[providers.regions.faults]\n{faults}\n"),
    )
    .unwrap();
    let (sim, lines) = start(&["sim", "--config", sim_config.to_str().unwrap()], 2);
    let control = lines[0]
        .trim_start_matches("control  ")
        .trim_end_matches("/_sim/state")
        .to_owned();
    let words: Vec<&str> = lines[1].split_whitespace().collect();
    let auth_url = words[words.iter().position(|w| *w == "auth_url").unwrap() + 1].to_owned();
    private_file(&dir.join("admin-token"), ADMIN);
    private_file(&dir.join("demo-password"), "secret");
    let config = dir.join("oms.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\nadmin_token_file = \"admin-token\"\n[fleet]\npoll_interval_secs = 0.3\nrefresh_interval_secs = 1.0\nleak_interval_secs = 0.5\nleak_grace_secs = 2.0\n[[profiles]]\nname = \"small\"\nmin_vcpus = 1\nmin_ram_mb = 512\nmin_disk_gb = 1\nimage = \"cirros-fake\"\n[[accounts]]\nname = \"solo\"\nauth_url = \"{auth_url}\"\nusername = \"demo\"\nproject_name = \"demo\"\npassword_file = \"demo-password\"\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    let (daemon, base) = serve(config.to_str().unwrap());
    (sim, daemon, control, base)
}

async fn launch(http: &reqwest::Client, base: &str, count: u32) -> Vec<String> {
    // Accepted at once; the instances wait until the region is reached.
    let body: Value = http
        .post(format!("{base}/v1/instances"))
        .bearer_auth(ADMIN)
        .json(&json!({"profile": "small", "count": count}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_hidden_by_a_lagging_listing_are_not_collected() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, _daemon, control, base) = setup(dir.path(), "list_lag_secs = 10.0");
    let http = reqwest::Client::new();
    let ids = launch(&http, &base, 5).await;
    assert_eq!(ids.len(), 5);
    eventually(Duration::from_secs(60), "all active", || async {
        (all_instances(&http, &base, Some("active")).await.len() == 5).then_some(())
    })
    .await;
    // Leak scans ran every 0.5 s with a 2 s grace while the servers hid.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let state = sim_state(&control).await;
    assert_eq!(sim_servers(&state).len(), 5);
    assert_eq!(
        sim_calls(&state, "DELETE/compute/v2.1/servers/{id}"),
        0,
        "a server was collected"
    );
    for instance in all_instances(&http, &base, None).await {
        assert_eq!(instance["status"], "active");
        assert_eq!(instance["attempts"], 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_delete_keeps_the_instance_deleting_until_the_provider_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, _daemon, control, base) = setup(dir.path(), "");
    let http = reqwest::Client::new();
    let ids = launch(&http, &base, 2).await;
    eventually(Duration::from_secs(60), "active", || async {
        (all_instances(&http, &base, Some("active")).await.len() == 2).then_some(())
    })
    .await;
    let faults = |rate: f64| json!({"delete_error_rate": rate});
    let put = |body: Value| {
        let http = http.clone();
        let url = format!("{control}/_sim/providers/solo/regions/solo-1/faults");
        async move {
            http.put(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(put(faults(1.0)).await, 200);
    for id in &ids {
        let answer = http
            .delete(format!("{base}/v1/instances/{id}"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 202);
    }
    eventually(
        Duration::from_secs(20),
        "deletes refused and retried",
        || async {
            (sim_calls(
                &sim_state(&control).await,
                "DELETE/compute/v2.1/servers/{id}",
            ) >= 4)
                .then_some(())
        },
    )
    .await;
    for instance in all_instances(&http, &base, None).await {
        assert_eq!(instance["status"], "deleting");
    }
    assert_eq!(sim_servers(&sim_state(&control).await).len(), 2);
    assert_eq!(put(faults(0.0)).await, 200);
    eventually(Duration::from_secs(90), "deleted", || async {
        (all_instances(&http, &base, Some("deleted")).await.len() == 2).then_some(())
    })
    .await;
    assert!(sim_servers(&sim_state(&control).await).is_empty());
}
