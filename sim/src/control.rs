//! `/_sim/`: fault injection at run time and the counters tests read.
//!
//! - `GET  /_sim/state`
//! - `PUT  /_sim/providers/{p}/faults` — Keystone and every region
//! - `PUT  /_sim/providers/{p}/keystone/faults`
//! - `PUT  /_sim/providers/{p}/regions/{r}/faults`
//! - `PUT  /_sim/providers/{p}/regions/{r}/quota` — the default project quota
//! - `DELETE /_sim/providers/{p}/tokens` — revoke every token (as an
//!   operator's `openstack token revoke` would)

use std::collections::BTreeMap;

use serde_json::{Value, json};
use warp::http::Method;

use crate::config::QuotaConfig;
use crate::faults::Faults;
use crate::http::{Reply, Request};
use crate::world::Phase;
use crate::{Port, Sim, SimError};

fn error(status: u16, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"code": status, "message": message}}),
    )
}

/// Answers one control request.
pub fn handle(sim: &Sim, request: &Request) -> Reply {
    let segments = request.segments();
    match (&request.method, segments.as_slice()) {
        (&Method::GET, ["_sim", "state"]) => Reply::json(200, &state(sim)),
        (&Method::PUT, ["_sim", "providers", p, "faults"]) => {
            let Some(faults) = parse::<Faults>(request) else {
                return error(400, "body is not a valid faults document");
            };
            let ports: Vec<Port> = match resolve(sim, p, None) {
                Ok(Port::Keystone(pi)) => {
                    let regions = sim.world().providers[pi].regions.len();
                    std::iter::once(Port::Keystone(pi))
                        .chain((0..regions).map(|r| Port::Region(pi, r)))
                        .collect()
                }
                Ok(port) => vec![port],
                Err(e) => return error(404, &e.to_string()),
            };
            for port in ports {
                sim.set_faults(port, faults.clone());
            }
            Reply::json(200, &json!({"faults": faults}))
        }
        (&Method::DELETE, ["_sim", "providers", p, "tokens"]) => match resolve(sim, p, None) {
            Ok(Port::Keystone(pi)) => {
                sim.world().providers[pi].tokens.clear();
                Reply::empty(204, "application/json")
            }
            Ok(_) => error(404, "not a provider"),
            Err(e) => error(404, &e.to_string()),
        },
        (&Method::PUT, ["_sim", "providers", p, "keystone", "faults"]) => {
            set_one(sim, request, p, None)
        }
        (&Method::PUT, ["_sim", "providers", p, "regions", r, "faults"]) => {
            set_one(sim, request, p, Some(r))
        }
        (&Method::PUT, ["_sim", "providers", p, "regions", r, "quota"]) => {
            let Some(quota) = parse::<QuotaConfig>(request) else {
                return error(400, "body is not a valid quota document");
            };
            match resolve(sim, p, Some(r)) {
                Ok(Port::Region(pi, ri)) => {
                    let mut world = sim.world();
                    let region = &mut world.providers[pi].regions[ri];
                    region.config.quota = quota;
                    region.quotas.clear();
                    Reply::json(200, &json!({"quota": quota}))
                }
                Ok(_) => error(404, "not a region"),
                Err(e) => error(404, &e.to_string()),
            }
        }
        _ => error(404, "no such control route"),
    }
}

fn parse<T: serde::de::DeserializeOwned>(request: &Request) -> Option<T> {
    serde_json::from_slice(&request.body).ok()
}

fn set_one(sim: &Sim, request: &Request, provider: &str, region: Option<&str>) -> Reply {
    let Some(faults) = parse::<Faults>(request) else {
        return error(400, "body is not a valid faults document");
    };
    match resolve(sim, provider, region) {
        Ok(port) => {
            sim.set_faults(port, faults.clone());
            Reply::json(200, &json!({"faults": faults}))
        }
        Err(e) => error(404, &e.to_string()),
    }
}

/// The port of a provider's Keystone, or of one of its regions.
pub(crate) fn resolve(sim: &Sim, provider: &str, region: Option<&str>) -> Result<Port, SimError> {
    let world = sim.world();
    let p = world
        .provider_index(provider)
        .ok_or_else(|| SimError::Unknown(provider.to_owned()))?;
    match region {
        None => Ok(Port::Keystone(p)),
        Some(name) => world.providers[p]
            .regions
            .iter()
            .position(|r| r.config.name == name)
            .map(|r| Port::Region(p, r))
            .ok_or_else(|| SimError::Unknown(format!("{provider}/{name}"))),
    }
}

/// A call's route with ids replaced, e.g. `GET /compute/v2.1/servers/{id}`.
pub(crate) fn route_label(method: &Method, segments: &[&str]) -> String {
    let mut label = method.as_str().to_owned();
    let mut previous = "";
    for segment in segments {
        let templated = match previous {
            "servers" if *segment != "detail" => "{id}",
            "os-keypairs" => "{name}",
            "tags" => "{tag}",
            "os-quota-sets" => "{project}",
            _ => segment,
        };
        label.push('/');
        label.push_str(templated);
        previous = segment;
    }
    label
}

/// Calls by route (or by agent) with their count and times.
fn calls_json(calls: &std::collections::BTreeMap<String, Vec<f64>>) -> Value {
    calls
        .iter()
        .map(|(route, times)| {
            (
                route.clone(),
                json!({"count": times.len(), "times_ms": times}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Everything tests need to know, as JSON.
pub(crate) fn state(sim: &Sim) -> Value {
    let world = sim.world();
    let now = tokio::time::Instant::now();
    let providers: Vec<Value> = world
        .providers
        .iter()
        .map(|provider| {
            let regions: Vec<Value> = provider
                .regions
                .iter()
                .map(|region| {
                    let (build, delete) = region.timings();
                    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
                    let mut servers = Vec::new();
                    for server in region.servers.values() {
                        let status = match server.phase(now, build, delete) {
                            Phase::Scheduling | Phase::Spawning => "BUILD",
                            Phase::Active => "ACTIVE",
                            Phase::Stopped => "SHUTOFF",
                            Phase::Error => "ERROR",
                            Phase::Deleting => "DELETING",
                            Phase::Gone => continue,
                        };
                        *by_status.entry(status).or_default() += 1;
                        servers.push(
                            json!({"id": server.id, "name": server.name, "status": status,
                            "tags": server.tags, "metadata": server.metadata,
                            "key_name": server.key_name}),
                        );
                    }
                    let keypairs: Vec<&String> =
                        region.keypairs.values().map(|k| &k.name).collect();
                    json!({
                        "name": region.config.name,
                        "url": region.base_url,
                        "faults": region.faults,
                        "servers_alive": servers.len(),
                        "servers_by_status": by_status,
                        "servers": servers,
                        "creates": region.counters.creates,
                        "creates_refused_quota": region.counters.creates_refused_quota,
                        "rate_limited_ms": region.counters.rate_limited,
                        "calls": calls_json(&region.counters.calls),
                        "agents": calls_json(&region.counters.agents),
                        "servers_listed": region.counters.servers_listed,
                        "keypairs": keypairs,
                        "deletions": region.counters.deletions,
                    })
                })
                .collect();
            json!({"name": provider.config.name, "auth_url": provider.keystone_url,
                   "keystone_faults": provider.keystone_faults,
                   "keystone_calls": calls_json(&provider.keystone_counters.calls),
                   "keystone_agents": calls_json(&provider.keystone_counters.agents),
                   "regions": regions})
        })
        .collect();
    json!({ "providers": providers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_hide_ids() {
        assert_eq!(
            route_label(&Method::GET, &["compute", "v2.1", "servers", "abc"]),
            "GET/compute/v2.1/servers/{id}"
        );
        assert_eq!(
            route_label(&Method::GET, &["compute", "v2.1", "servers", "detail"]),
            "GET/compute/v2.1/servers/detail"
        );
        assert_eq!(
            route_label(&Method::DELETE, &["compute", "v2.1", "os-keypairs", "k"]),
            "DELETE/compute/v2.1/os-keypairs/{name}"
        );
    }
}
