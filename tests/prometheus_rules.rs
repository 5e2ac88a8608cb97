//! The shipped Prometheus alert rules (`docs/prometheus/`) and Grafana
//! dashboard (`docs/grafana/`): valid PromQL, the alerts firing as their
//! unit tests say, and both naming only series the daemon exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use oms_actors::model::Role;
use oms_web::ApiConfig;
use serde_json::{Value, json};

use crate::support::api::start;
use crate::support::promtool;

fn file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every query of the dashboard's panels.
fn dashboard_queries() -> Vec<String> {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(file("docs/grafana/openmultistack.json")).unwrap(),
    )
    .unwrap();
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_alert_rules_are_valid_and_fire_as_tested() {
    promtool::check(&["check", "rules", "docs/prometheus/alerts.yml"], None);
    promtool::check(&["test", "rules", "docs/prometheus/alerts_test.yml"], None);
}

#[test]
fn the_dashboard_queries_are_valid_promql() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 14, "{queries:?}");
    // promtool parses the PromQL of rules: one recording rule per query.
    let rules = queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            format!(
                "      - record: dashboard:query{i}\n        expr: {}\n",
                json!(q)
            )
        })
        .collect::<String>();
    let dir = std::env::temp_dir().join(format!("oms-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dashboard-rules.yml");
    std::fs::write(
        &path,
        format!("groups:\n  - name: dashboard\n    rules:\n{rules}"),
    )
    .unwrap();
    promtool::check(&["check", "rules", path.to_str().unwrap()], None);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_the_alerts_and_the_dashboard_use_is_exported() {
    let rules = std::fs::read_to_string(file("docs/prometheus/alerts.yml")).unwrap();
    let queries = dashboard_queries().join("\n");
    let used: BTreeSet<&str> = [rules.as_str(), queries.as_str()]
        .into_iter()
        .flat_map(|text| text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|word| word.starts_with("oms_"))
        .collect();
    assert!(used.len() >= 12, "{used:?}");
    let h = start(ApiConfig::default()).await;
    // One launch, so that more families have a series.
    let client = h.token("ci", Role::Client, None).await;
    h.call(
        "POST",
        "/v1/instances",
        Some(&client),
        Some(json!({"profile": "small"})),
    )
    .await;
    let text = h.call("GET", "/metrics", None, None).await.text;
    let exported: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    // A family shows only once it has a series (no failed provider call
    // yet, say): the rest must at least be registered under that name.
    let source = std::fs::read_to_string(file("web/src/metrics.rs")).unwrap();
    for name in used {
        let family = name
            .trim_start_matches("oms_")
            .trim_end_matches("_bucket")
            .trim_end_matches("_total");
        let exported_family =
            exported.contains(name) || exported.contains(format!("oms_{family}").as_str());
        assert!(
            exported_family || source.contains(&format!("\"{family}\",")),
            "{name} is neither exported nor registered: {exported:?}"
        );
    }
}
