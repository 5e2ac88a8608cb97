//! The speed benchmark against real Keystone and Nova (`conformance/bench`,
//! not part of `conformance/run`): four scenarios with the daemon's own
//! defaults and a quota of 10 per region, each launch split into phases by
//! the daemon's events and Nova's logs (millisecond times). Prints Markdown tables of
//! medians; asserts only that every launch became active and that nothing
//! was left behind. `BENCH_RUNS` (default 1) repeats each scenario.
//!
//! - S1: 16 launches at once over both regions.
//! - S2: 8 launches with RegionOne's nova-api stopped just before.
//! - S3: 6 launches after both quotas were cut to 3 behind the daemon's back.
//! - S4: 8 launches with RegionOne's `m1.tiny` requiring a CPU trait no
//!   host has: every build there goes to ERROR ("No valid host was found").
//!
//! Before the first run, two launches warm Nova's API up (its first
//! creates after a start take seconds longer; a cloud in service is warm).
//! Besides the phases: in S2, the calls the daemon sent to the stopped
//! region (from its DEBUG log of provider calls); in S4, how long after
//! Nova set a server to ERROR (nova-conductor's log, in milliseconds) the
//! daemon scheduled the next attempt.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Value, json};

use super::cloud::{REGIONS, Scoped, login, nova_api};
use super::daemon::{Daemon, Options};

const TRAIT: &str = "trait:HW_CPU_X86_AVX512F";

/// One active instance's timeline, in seconds.
#[derive(Debug, Clone, Copy)]
struct Phases {
    to_scheduled: f64,
    to_created: f64,
    /// Create answered → Nova wrote ACTIVE.
    to_launched: f64,
    to_seen: f64,
    total: f64,
    /// `total` less what Nova took from answering the create to writing
    /// ACTIVE: at most the daemon's share (Nova's build began a little
    /// before its answer).
    share: f64,
    /// What Nova's API took to answer the create and key-pair import (the
    /// daemon's timeline says), within `share`.
    api: f64,
    /// The median time Nova's API took to answer the daemon's GETs of one
    /// server during this instance's burst: the floor under seeing ACTIVE.
    nova_get: f64,
}

fn time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

/// The last event of `status` in a view's timeline.
fn last_event(view: &Value, status: &str) -> DateTime<Utc> {
    let events = view["events"].as_array().unwrap();
    events
        .iter()
        .rev()
        .find(|e| e["status"] == status)
        .and_then(|e| time(e["at"].as_str()?))
        .unwrap_or_else(|| panic!("no {status} event: {view}"))
}

/// When Nova wrote ACTIVE for each server, by id: nova-compute logs "Took
/// … to build instance" just after that save, to the millisecond.
/// (`launched_at` and `created` are stored to the second, truncated: up to
/// a second early.)
fn actives_written() -> HashMap<String, DateTime<Utc>> {
    REGIONS
        .iter()
        .flat_map(|r| nova_log_times(r, "compute", "seconds to build instance"))
        .collect()
}

/// When Nova wrote ACTIVE for one server: from nova-compute's log, or
/// else (to the second) from `launched_at`.
async fn active_written(
    demo: &Scoped,
    written: &HashMap<String, DateTime<Utc>>,
    region: &str,
    server_id: &str,
) -> DateTime<Utc> {
    if let Some(at) = written.get(server_id) {
        return *at;
    }
    let (status, server) = demo.server(region, server_id).await;
    assert_eq!(status, 200, "{server}");
    time(server["server"]["OS-SRV-USG:launched_at"].as_str().unwrap()).unwrap()
}

async fn phases(demo: &Scoped, written: &HashMap<String, DateTime<Utc>>, view: &Value) -> Phases {
    let submitted = time(view["events"][0]["at"].as_str().unwrap()).unwrap();
    let scheduled = last_event(view, "scheduled");
    let created = last_event(view, "building");
    let active = last_event(view, "active");
    let region = view["region"].as_str().unwrap();
    let server_id = view["server_id"].as_str().unwrap();
    let launched = active_written(demo, written, region, server_id).await;
    let nova_build = secs(created, launched);
    let total = secs(submitted, active);
    let api = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["status"] == "building")
        .and_then(|e| e["detail"].as_str())
        .map_or(0.0, |detail| {
            ["answered the create in ", "key pair import in "]
                .iter()
                .filter_map(|label| {
                    detail
                        .split(label)
                        .nth(1)?
                        .split(' ')
                        .next()?
                        .parse::<f64>()
                        .ok()
                })
                .sum()
        });
    Phases {
        to_scheduled: secs(submitted, scheduled),
        to_created: secs(scheduled, created),
        to_launched: secs(created, launched),
        to_seen: secs(launched, active),
        total,
        share: total - nova_build,
        api,
        nova_get: f64::NAN,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Launches `count` instances at once (one launch each) and measures
/// them; their ids, to delete once the scenario's fault is undone.
async fn burst(
    daemon: &Daemon,
    demo: &Scoped,
    count: usize,
) -> (Vec<String>, Vec<Phases>, Vec<Value>) {
    let from = log_len(daemon);
    let launches = (0..count).map(|_| daemon.launch(json!({"profile": "tiny"})));
    let ids: Vec<String> = futures_util::future::join_all(launches)
        .await
        .iter()
        .flat_map(Daemon::ids)
        .collect();
    let views = daemon
        .wait_for(&ids, "active", Duration::from_secs(300))
        .await;
    let written = actives_written();
    let nova_get = median(get_seconds(&log_since(daemon, from)));
    let mut measured = Vec::new();
    for view in &views {
        let mut phases = phases(demo, &written, view).await;
        phases.nova_get = nova_get;
        measured.push(phases);
    }
    (ids, measured, views)
}

/// The daemon's log from byte `from` on (plain text: it is no terminal).
fn log_since(daemon: &Daemon, from: usize) -> String {
    let log = std::fs::read(daemon.dir.join("oms.log")).unwrap_or_default();
    String::from_utf8_lossy(&log[from.min(log.len())..]).into_owned()
}

fn log_len(daemon: &Daemon) -> usize {
    std::fs::metadata(daemon.dir.join("oms.log")).map_or(0, |m| m.len() as usize)
}

/// Calls to `port` in a stretch of the daemon's log: all of them, and the
/// creates and key-pair imports (POSTs) sent after the first refusal came
/// back (a call's start is its log line's time less its `elapsed_ms`).
fn calls_to(log: &str, port: u16) -> (usize, usize) {
    let port = format!(" port={port} ");
    let calls: Vec<(DateTime<Utc>, DateTime<Utc>, &str)> = log
        .lines()
        .filter(|l| l.contains("provider call") && l.contains(&port))
        .filter_map(|l| {
            let ended = time(l.split_whitespace().next()?)?;
            let ms: i64 = l.split("elapsed_ms=").nth(1)?.trim().parse().ok()?;
            Some((ended - chrono::Duration::milliseconds(ms), ended, l))
        })
        .collect();
    let first_refusal = calls
        .iter()
        .filter(|(_, _, l)| l.contains("provider call failed"))
        .map(|(_, ended, _)| *ended)
        .min();
    let posts_after = first_refusal.map_or(0, |refused| {
        calls
            .iter()
            .filter(|(started, _, l)| *started > refused && l.contains("method=POST"))
            .count()
    });
    (calls.len(), posts_after)
}

/// How long each GET of one server took, in a stretch of the daemon's log.
fn get_seconds(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains("provider call method=GET") && l.contains("path=/v2.1/servers/"))
        .filter(|l| !l.contains("path=/v2.1/servers/detail"))
        .filter_map(|l| l.split("elapsed_ms=").nth(1)?.trim().parse::<f64>().ok())
        .map(|ms| ms / 1000.0)
        .collect()
}

/// When a Nova `service` of `region` logged `needle` for each server, by
/// server id (its log's local time is UTC on the tier's machine).
fn nova_log_times(region: &str, service: &str, needle: &str) -> HashMap<String, DateTime<Utc>> {
    let n = if region == "RegionOne" { 1 } else { 2 };
    let state = std::env::var("MOS_STATE").unwrap_or_else(|_| "/var/tmp/oms-conformance".into());
    let log =
        std::fs::read_to_string(format!("{state}/log/nova{n}-{service}.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| {
            let at = NaiveDateTime::parse_from_str(l.get(..23)?, "%Y-%m-%d %H:%M:%S%.3f").ok()?;
            let id = l.split("[instance: ").nth(1)?.split(']').next()?;
            Some((id.to_owned(), at.and_utc()))
        })
        .collect()
}

/// For every failed build in `views`: seconds from Nova setting its server
/// to ERROR to the daemon scheduling the instance's next attempt.
fn reroutes(views: &[Value]) -> Vec<f64> {
    let errored: HashMap<String, DateTime<Utc>> = REGIONS
        .iter()
        .flat_map(|r| nova_log_times(r, "conductor", "Setting instance to ERROR state"))
        .collect();
    let mut out = Vec::new();
    for view in views {
        let events = view["events"].as_array().unwrap();
        for (i, e) in events.iter().enumerate() {
            let message = e["message"].as_str().unwrap_or_default();
            let Some(server) = message
                .strip_prefix("server ")
                .and_then(|m| m.split_whitespace().next())
            else {
                continue;
            };
            let Some(failed) = errored.get(server) else {
                continue;
            };
            let next = events[i + 1..]
                .iter()
                .find(|e| e["status"] == "scheduled")
                .and_then(|e| time(e["at"].as_str()?));
            if let Some(next) = next {
                out.push(secs(*failed, next));
            }
        }
    }
    out
}

/// Deletes a scenario's instances and waits until Nova holds nothing.
async fn clean(daemon: &Daemon, demo: &Scoped, ids: &[String]) {
    daemon.delete(ids).await;
    demo.wait_empty(Duration::from_secs(180)).await;
}

async fn flavor_id(admin: &Scoped, region: &str, name: &str) -> String {
    let (status, body) = admin
        .nova(region, reqwest::Method::GET, "/flavors", None, None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["flavors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .and_then(|f| f["id"].as_str())
        .unwrap_or_else(|| panic!("no flavor {name} in {region}"))
        .to_owned()
}

/// Puts everything back even when the benchmark fails half-way.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        if std::thread::panicking() {
            nova_api("start", "RegionOne");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark against real OpenStack: run conformance/bench"]
async fn launch_phases_against_real_nova() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let demo = login("demo").await;
    let admin = login("admin").await;
    demo.wipe().await;
    let quota = |n: u32| {
        let admin = &admin;
        let project = demo.project_id.clone();
        async move {
            for region in REGIONS {
                admin.instance_quota(region, &project, Some(n)).await;
            }
        }
    };
    quota(10).await;
    let tiny_one = flavor_id(&admin, "RegionOne", "m1.tiny").await;
    let mut daemon = Daemon::start(
        "bench",
        Options {
            defaults: true,
            log: Some("info,oms_actors::openstack::http=debug"),
            ..Options::default()
        },
    );
    let _restore = Restore;
    let dead_port = url::Url::parse(demo.compute("RegionOne"))
        .unwrap()
        .port_or_known_default()
        .unwrap();
    wait_ready(&daemon).await;
    let (ids, _, _) = burst(&daemon, &demo, 2).await;
    clean(&daemon, &demo, &ids).await;
    let mut table: Vec<(&str, Vec<Phases>)> = Vec::new();
    let mut dead_calls = Vec::new();
    let mut rerouted = Vec::new();
    for run in 0..runs {
        if run > 0 {
            // S4 taught this daemon that m1.tiny fails in RegionOne (it
            // stays a last resort there for minutes): start afresh.
            daemon.restart();
        }
        wait_ready(&daemon).await;
        let (ids, s1, _) = burst(&daemon, &demo, 16).await;
        clean(&daemon, &demo, &ids).await;
        push(&mut table, "S1: 16 at once", s1);

        wait_ready(&daemon).await;
        nova_api("stop", "RegionOne");
        let from = log_len(&daemon);
        let (ids, s2, _) = burst(&daemon, &demo, 8).await;
        dead_calls.push(calls_to(&log_since(&daemon, from), dead_port));
        nova_api("start", "RegionOne");
        wait_ready(&daemon).await;
        clean(&daemon, &demo, &ids).await;
        push(&mut table, "S2: RegionOne's nova-api stopped", s2);

        quota(3).await;
        let (ids, s3, _) = burst(&daemon, &demo, 6).await;
        clean(&daemon, &demo, &ids).await;
        quota(10).await;
        push(&mut table, "S3: quotas cut to 3 behind its back", s3);

        wait_ready(&daemon).await;
        let path = format!("/flavors/{tiny_one}/os-extra_specs");
        let (status, body) = admin
            .nova(
                "RegionOne",
                reqwest::Method::POST,
                &path,
                Some(json!({"extra_specs": {TRAIT: "required"}})),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (ids, s4, views) = burst(&daemon, &demo, 8).await;
        rerouted.extend(reroutes(&views));
        let (status, body) = admin
            .nova(
                "RegionOne",
                reqwest::Method::DELETE,
                &format!("{path}/{TRAIT}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        clean(&daemon, &demo, &ids).await;
        push(&mut table, "S4: RegionOne's builds all ERROR", s4);
        // What is known so far, in case a later run fails.
        println!("\n{}", render(&table, run + 1));
        println!("{}", extras(&dead_calls, &rerouted));
    }
    println!("\n{}", render(&table, runs));
    println!("{}", extras(&dead_calls, &rerouted));
    assert!(demo.our_keypairs().await.is_empty(), "key pairs left");
}

async fn wait_ready(daemon: &Daemon) {
    for region in REGIONS {
        daemon
            .wait_region(region, Duration::from_secs(180), |r| {
                r["profiles"]["tiny"]["fit"] == "fits" && r["breaker"] == "closed"
            })
            .await;
    }
}

fn push(table: &mut Vec<(&'static str, Vec<Phases>)>, name: &'static str, measured: Vec<Phases>) {
    match table.iter_mut().find(|(n, _)| *n == name) {
        Some((_, all)) => all.extend(measured),
        None => table.push((name, measured)),
    }
}

/// S2's calls to the stopped region and S4's reroute times.
fn extras(dead_calls: &[(usize, usize)], rerouted: &[f64]) -> String {
    let mut sorted = rerouted.to_vec();
    sorted.sort_by(f64::total_cmp);
    let max = sorted.last().copied().unwrap_or(f64::NAN);
    format!(
        "S2, calls to the stopped region per run (all; creates and imports after the first refusal): {}\n\
         S4, Nova's ERROR → next attempt scheduled, {} failed builds: median {:.2} s, max {max:.2} s\n",
        dead_calls
            .iter()
            .map(|(all, posts)| format!("{all}; {posts}"))
            .collect::<Vec<_>>()
            .join(" · "),
        sorted.len(),
        median(sorted.clone()),
    )
}

fn render(table: &[(&str, Vec<Phases>)], runs: usize) -> String {
    let mut out = format!(
        "| median over {runs} run(s), seconds | POST → scheduled | scheduled → create answered | create answered → Nova wrote ACTIVE | Nova wrote ACTIVE → daemon says active | submit → active | daemon's share (at most) | of which Nova's API answering | daemon's own | Nova's GET of a server |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for (name, all) in table {
        let m = |f: fn(&Phases) -> f64| median(all.iter().map(f).collect());
        out += &format!(
            "| {name} ({} instances) | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            all.len(),
            m(|p| p.to_scheduled),
            m(|p| p.to_created),
            m(|p| p.to_launched),
            m(|p| p.to_seen),
            m(|p| p.total),
            m(|p| p.share),
            m(|p| p.api),
            m(|p| p.share - p.api),
            m(|p| p.nova_get),
        );
    }
    out
}
