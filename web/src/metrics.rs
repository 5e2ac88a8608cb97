//! `/metrics` in the OpenMetrics text format (what prometheus-client
//! writes, served with its own content type), base units throughout:
//! launches by outcome, failed attempts by class, reroutes, time to
//! active, API requests by route and status, the waiting queue, build
//! info, and per account-region gauges and counters read from the fleet at
//! scrape time.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use oms_actors::breaker::BreakerState;
use oms_actors::model::InstanceState;
use oms_actors::store::InstanceFilter;
use oms_actors::{Fleet, FleetEvent};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::broadcast::error::RecvError;

type Labels = Vec<(String, String)>;

/// The content type of OpenMetrics, what prometheus-client writes and what
/// Prometheus asks for first.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic text format, for every other reader (curl, promtool).
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics (Prometheus does).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// OpenMetrics text as the classic text format: a counter family is named
/// with its `_total` (OpenMetrics names it without), and there is no
/// `# EOF`. Everything else prometheus-client writes is the same in both.
pub fn to_text_format(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}
type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    api_requests: Family<Labels, Counter>,
    launches: Family<Labels, Counter>,
    attempt_failures: Family<Labels, Counter>,
    skipped: Family<Labels, Counter>,
    lost: Family<Labels, Counter>,
    reroutes: Counter,
    time_to_active: Histogram,
    queue_depth: Gauge,
    queue_oldest: FloatGauge,
    build_info: Family<Labels, Gauge>,
    breaker: Family<Labels, Gauge>,
    calls_failed: Family<Labels, Counter>,
    region_healthy: Family<Labels, Gauge>,
    account_up: Family<Labels, Gauge>,
    quota_used: Family<Labels, Gauge>,
    quota_limit: Family<Labels, Gauge>,
    in_flight: Family<Labels, Gauge>,
    latency: Family<Labels, FloatGauge>,
    cluster_leader: Family<Labels, Gauge>,
    cluster_revision: Family<Labels, Gauge>,
    cluster_lease: Family<Labels, FloatGauge>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("oms");
        let metrics = Metrics {
            api_requests: Family::default(),
            launches: Family::default(),
            attempt_failures: Family::default(),
            skipped: Family::default(),
            lost: Family::default(),
            reroutes: Counter::default(),
            queue_depth: Gauge::default(),
            queue_oldest: FloatGauge::default(),
            build_info: Family::default(),
            breaker: Family::default(),
            calls_failed: Family::default(),
            time_to_active: Histogram::new([
                1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
            ]),
            region_healthy: Family::default(),
            account_up: Family::default(),
            quota_used: Family::default(),
            quota_limit: Family::default(),
            in_flight: Family::default(),
            latency: Family::default(),
            cluster_leader: Family::default(),
            cluster_revision: Family::default(),
            cluster_lease: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "api_requests",
            "API requests by route and status",
            metrics.api_requests.clone(),
        );
        registry.register(
            "instances_finished",
            "Instances that became active or failed",
            metrics.launches.clone(),
        );
        registry.register(
            "attempts_failed",
            "Failed attempts by failure class",
            metrics.attempt_failures.clone(),
        );
        registry.register(
            "steps_skipped",
            "Housekeeping steps skipped because the store could not be read",
            metrics.skipped.clone(),
        );
        registry.register(
            "instances_lost",
            "Active instances whose server vanished at the provider, by whether a replacement was placed",
            metrics.lost.clone(),
        );
        registry.register(
            "time_to_active_seconds",
            "From acceptance to active",
            metrics.time_to_active.clone(),
        );
        registry.register(
            "region_healthy",
            "1 when the region was reached, its breaker is closed and no call failed since the last success",
            metrics.region_healthy.clone(),
        );
        registry.register(
            "account_up",
            "1 when the account authenticated and runs its regions; 0 when it fails, has no compute region, clashes with another account's project or is disabled",
            metrics.account_up.clone(),
        );
        registry.register(
            "region_instances_used",
            "Instances used, ours reserved included",
            metrics.quota_used.clone(),
        );
        registry.register(
            "region_instances_limit",
            "Instance quota (-1 unlimited)",
            metrics.quota_limit.clone(),
        );
        registry.register(
            "region_in_flight",
            "Creates in flight and servers building",
            metrics.in_flight.clone(),
        );
        registry.register(
            "region_latency_seconds",
            "Recent call latency (moving average)",
            metrics.latency.clone(),
        );
        registry.register(
            "reroutes",
            "Instances scheduled again after an attempt failed, was refused or lost its server",
            metrics.reroutes.clone(),
        );
        registry.register(
            "queue_depth",
            "Instances accepted and waiting for a region",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "queue_oldest_seconds",
            "Seconds since the longest-waiting instance was accepted (0 when none waits)",
            metrics.queue_oldest.clone(),
        );
        registry.register(
            "build_info",
            "The daemon's version (always 1)",
            metrics.build_info.clone(),
        );
        registry.register(
            "region_breaker_state",
            "1 for the region's circuit breaker state (closed, open, half_open), 0 for the others",
            metrics.breaker.clone(),
        );
        registry.register(
            "region_calls_failed",
            "Provider calls that failed, by failure class, since the region's actor started",
            metrics.calls_failed.clone(),
        );
        registry.register(
            "cluster_leader",
            "1 when this member leads its cluster, 0 when it follows (etcd store only)",
            metrics.cluster_leader.clone(),
        );
        registry.register(
            "cluster_store_revision",
            "The etcd revision this member's replica of the store reflects",
            metrics.cluster_revision.clone(),
        );
        registry.register(
            "cluster_lease_remaining_seconds",
            "How long this member's etcd lease surely still runs",
            metrics.cluster_lease.clone(),
        );
        metrics
            .build_info
            .get_or_create(&vec![("version".into(), env!("CARGO_PKG_VERSION").into())])
            .set(1);
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Counts one API request. Methods come from a closed set: anyone can
    /// send `RND123`, and every label value is a new series kept forever.
    pub fn request(&self, route: &str, method: &str, status: u16) {
        const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
        let method = KNOWN
            .iter()
            .find(|m| m.eq_ignore_ascii_case(method))
            .copied()
            .unwrap_or("other");
        self.api_requests
            .get_or_create(&vec![
                ("route".into(), route.into()),
                ("method".into(), method.into()),
                ("status".into(), status.to_string()),
            ])
            .inc();
    }

    fn record(&self, event: &FleetEvent) {
        match event {
            FleetEvent::Active { seconds } => {
                self.launches
                    .get_or_create(&vec![("outcome".into(), "active".into())])
                    .inc();
                self.time_to_active.observe(*seconds);
            }
            FleetEvent::Failed => {
                self.launches
                    .get_or_create(&vec![("outcome".into(), "failed".into())])
                    .inc();
            }
            FleetEvent::Rerouted => {
                self.reroutes.inc();
            }
            FleetEvent::AttemptFailed { class } => {
                self.attempt_failures
                    .get_or_create(&vec![("class".into(), class.as_str().into())])
                    .inc();
            }
            FleetEvent::Lost { replaced } => {
                self.lost
                    .get_or_create(&vec![("replaced".into(), replaced.to_string())])
                    .inc();
            }
            FleetEvent::Skipped { step } => {
                self.skipped
                    .get_or_create(&vec![("step".into(), step.as_str().into())])
                    .inc();
            }
        }
    }

    /// Follows the fleet's events until it stops.
    pub fn follow(self: &Arc<Self>, fleet: &Fleet) {
        let mut events = fleet.subscribe();
        let metrics = self.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => metrics.record(&event),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "metrics missed fleet events")
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    /// The exposition text, region gauges refreshed from `fleet`.
    pub fn render(&self, fleet: &Fleet) -> String {
        for family in [
            &self.region_healthy,
            &self.account_up,
            &self.quota_used,
            &self.quota_limit,
            &self.in_flight,
            &self.breaker,
        ] {
            family.clear();
        }
        self.latency.clear();
        for region in fleet.regions() {
            let labels: Labels = vec![
                ("account".into(), region.account.clone()),
                ("region".into(), region.region.clone()),
            ];
            self.region_healthy
                .get_or_create(&labels)
                .set(i64::from(region.healthy && region.conflict.is_none()));
            self.quota_used
                .get_or_create(&labels)
                .set(region.used.instances);
            self.quota_limit
                .get_or_create(&labels)
                .set(region.limit.map_or(-1, |l| l.instances));
            self.in_flight
                .get_or_create(&labels)
                .set(i64::from(region.creating) + region.building as i64);
            self.latency
                .get_or_create(&labels)
                .set(region.latency_ms / 1000.0);
            for state in BreakerState::ALL {
                let mut labels = labels.clone();
                labels.push(("state".into(), state.as_str().into()));
                self.breaker
                    .get_or_create(&labels)
                    .set(i64::from(region.breaker == state));
            }
            for (class, count) in &region.calls_failed {
                let mut labels = labels.clone();
                labels.push(("class".into(), (*class).into()));
                let counter = self.calls_failed.get_or_create(&labels);
                // The region's own count, since its actor started: a
                // restarted actor counts from zero again, and a counter
                // never goes down.
                counter.inc_by(count.saturating_sub(counter.get()));
            }
        }
        let waiting = fleet
            .instances(&InstanceFilter {
                states: vec![InstanceState::Pending],
                ..InstanceFilter::default()
            })
            .unwrap_or_default();
        self.queue_depth.set(waiting.len() as i64);
        let now = chrono::Utc::now();
        self.queue_oldest.set(
            waiting
                .iter()
                .map(|i| (now - i.created_at).num_milliseconds() as f64 / 1000.0)
                .fold(0.0, f64::max),
        );
        for account in fleet.account_statuses().unwrap_or_default() {
            self.account_up
                .get_or_create(&vec![("account".into(), account.account.clone())])
                .set(i64::from(account.health.is_up()));
        }
        if let Some(cluster) = fleet.cluster() {
            let labels: Labels = vec![("member".into(), cluster.member())];
            self.cluster_leader
                .get_or_create(&labels)
                .set(i64::from(cluster.leads()));
            self.cluster_revision
                .get_or_create(&labels)
                .set(cluster.revision());
            self.cluster_lease
                .get_or_create(&labels)
                .set(cluster.lease_remaining().as_secs_f64());
        }
        self.render_registry()
    }

    fn render_registry(&self) -> String {
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            tracing::error!("metrics could not be encoded");
        }
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_counters_with_their_total() {
        let metrics = Metrics::new();
        metrics.request("/v1/instances", "GET", 200);
        let open = metrics.render_registry();
        assert!(open.contains("# TYPE oms_api_requests counter"), "{open}");
        assert!(open.ends_with("# EOF\n"));
        let text = to_text_format(&open);
        assert!(
            text.contains("# HELP oms_api_requests_total API requests"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE oms_api_requests_total counter"),
            "{text}"
        );
        assert!(
            text.contains("oms_api_requests_total{route=\"/v1/instances\""),
            "{text}"
        );
        assert!(
            text.contains("# TYPE oms_time_to_active_seconds histogram"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn reroutes_and_failed_attempts_are_counted() {
        let metrics = Metrics::new();
        metrics.record(&FleetEvent::Rerouted);
        metrics.record(&FleetEvent::Rerouted);
        metrics.record(&FleetEvent::AttemptFailed {
            class: oms_actors::openstack::Class::BuildFailed,
        });
        let text = metrics.render_registry();
        assert!(text.contains("oms_reroutes_total 2"), "{text}");
        assert!(
            text.contains("oms_attempts_failed_total{class=\"build_failed\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let metrics = Metrics::new();
        for i in 0..100 {
            metrics.request("unmatched", &format!("RND{i}"), 405);
        }
        metrics.request("/v1/instances", "get", 200);
        let mut text = String::new();
        encode(&mut text, &metrics.registry).expect("encodes");
        assert_eq!(text.matches("method=\"other\"").count(), 1, "{text}");
        assert!(text.contains("method=\"GET\""), "{text}");
        assert!(!text.contains("RND"), "{text}");
    }
}
