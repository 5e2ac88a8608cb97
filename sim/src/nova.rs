//! Nova's compute API for one region: versions, servers, flavors, key
//! pairs, limits, quota sets. Shapes, status codes and error bodies follow
//! transcripts 005–064.

use serde_json::{Value, json};
use tokio::time::Instant;
use warp::http::Method;

use crate::Sim;
use crate::http::{Reply, Request};
use crate::keystone;
use crate::nova_keypairs::{create_keypair, delete_keypair, list_keypairs};
use crate::nova_quota::{limits, quota_detail, reset_quota, set_quota};
use crate::nova_servers::{
    add_tag, addresses, create_server, delete_server, links, list_servers, render_server,
    server_action, with_server,
};
use crate::world::{Provider, Region, User};

/// A resource over quota: name, requested, used, limit.
pub(crate) type Over = (&'static str, i64, i64, i64);

/// A compute microversion as (major, minor).
pub(crate) type Mv = (u16, u16);

const MIN_MV: Mv = (2, 1);

fn parse_mv(text: &str) -> Option<Mv> {
    let (a, b) = text.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn show_mv(mv: Mv) -> String {
    format!("{}.{}", mv.0, mv.1)
}

/// A Nova fault body: `{"<kind>": {"code": N, "message": "..."}}`.
pub fn fault(status: u16, kind: &str, message: &str) -> Reply {
    Reply::json_fault(
        status,
        &json!({ kind: {"code": status, "message": message} }),
    )
}

pub(crate) fn not_found(message: &str) -> Reply {
    fault(404, "itemNotFound", message)
}

pub(crate) fn bad_request(message: &str) -> Reply {
    fault(400, "badRequest", message)
}

/// Nova's answer to an unexpected failure (the random error fault).
pub fn unexpected_error() -> Reply {
    fault(
        500,
        "computeFault",
        "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.\n<class 'oslo_db.exception.DBConnectionError'>",
    )
}

/// Everything a request handler needs, resolved under the world lock.
pub(crate) struct Call<'a> {
    pub(crate) provider: &'a mut Provider,
    pub(crate) r: usize,
    pub(crate) user: User,
    pub(crate) mv: Mv,
    pub(crate) now: Instant,
}

impl Call<'_> {
    pub(crate) fn region(&mut self) -> &mut Region {
        &mut self.provider.regions[self.r]
    }
}

/// Answers one request under `/compute` of region `r` of provider `p`.
pub fn handle(sim: &Sim, p: usize, r: usize, request: &Request, rest: &[&str]) -> Reply {
    let mut world = sim.world();
    let provider = &mut world.providers[p];
    let max_mv = parse_mv(&provider.regions[r].config.max_microversion).unwrap_or((2, 104));
    let base = format!("{}/compute", provider.regions[r].base_url);
    match rest {
        [] => return versions(&base, max_mv),
        ["v2.1"] => {
            return Reply::json(200, &json!({"version": v21(&base, max_mv, true)}))
                .header("OpenStack-API-Version", "compute 2.1")
                .header("X-OpenStack-Nova-API-Version", "2.1");
        }
        _ => {}
    }
    let token = request.header("X-Auth-Token").unwrap_or_default();
    let Some(user) = provider.validate(token).cloned() else {
        let root = provider.keystone_url.trim_end_matches("/v3").to_owned();
        return keystone::unauthorized(&root);
    };
    let requested = request
        .header("OpenStack-API-Version")
        .and_then(|v| v.trim().strip_prefix("compute"))
        .map(str::trim)
        .or_else(|| request.header("X-OpenStack-Nova-API-Version"))
        .map(str::to_owned);
    let mv = match requested.as_deref() {
        None => MIN_MV,
        Some("latest") => max_mv,
        Some(text) => match parse_mv(text) {
            Some(mv) if mv >= MIN_MV && mv <= max_mv => mv,
            Some(_) => {
                let message = format!(
                    "Version {text} is not supported by the API. Minimum is 2.1 and maximum is {}.",
                    show_mv(max_mv)
                );
                return fault(406, "computeFault", &message)
                    .header("OpenStack-API-Version", format!("compute {text}"))
                    .header("X-OpenStack-Nova-API-Version", text);
            }
            None => {
                return bad_request(&format!("API Version String {text} is of invalid format."));
            }
        },
    };
    provider.regions[r].purge(Instant::now());
    let mut call = Call {
        provider,
        r,
        user,
        mv,
        now: Instant::now(),
    };
    let reply = route(&mut call, request, &rest[1..], &base);
    let version = show_mv(mv);
    reply
        .header("OpenStack-API-Version", format!("compute {version}"))
        .header("X-OpenStack-Nova-API-Version", version)
        .header("Vary", "OpenStack-API-Version")
        .header("Vary", "X-OpenStack-Nova-API-Version")
}

fn route(call: &mut Call<'_>, request: &Request, path: &[&str], base: &str) -> Reply {
    let method = &request.method;
    match (method, path) {
        (&Method::GET, ["servers"]) => list_servers(call, request, base, false),
        (&Method::GET, ["servers", "detail"]) => list_servers(call, request, base, true),
        (&Method::POST, ["servers"]) => create_server(call, request, base),
        (&Method::GET, ["servers", id]) => with_server(call, id, |call, s| {
            Reply::json(200, &json!({"server": render_server(call, s, base, true)}))
        }),
        (&Method::DELETE, ["servers", id]) => delete_server(call, id),
        (&Method::POST, ["servers", id, "action"]) => server_action(call, id, request),
        (&Method::GET, ["servers", id, "ips"]) => with_server(call, id, |call, s| {
            let (_, addresses) = addresses(call, s, false);
            Reply::json(200, &json!({"addresses": addresses}))
        }),
        (&Method::GET, ["servers", id, "metadata"]) => with_server(call, id, |_, s| {
            Reply::json(200, &json!({"metadata": s.metadata}))
        }),
        (&Method::GET, ["servers", id, "os-interface"]) => with_server(call, id, |call, s| {
            let network = call.region().network_id.clone();
            Reply::json(
                200,
                &json!({"interfaceAttachments": [{
                "net_id": network, "port_id": uuid::Uuid::new_v4().to_string(),
                "mac_addr": s.mac, "port_state": "ACTIVE",
                "fixed_ips": [{"subnet_id": uuid::Uuid::new_v4().to_string(), "ip_address": s.address}],
                "tag": null}]}),
            )
        }),
        (&Method::PUT, ["servers", id, "tags", tag]) => add_tag(call, id, tag, base),
        (&Method::GET, ["flavors"]) => flavors(call, base, false),
        (&Method::GET, ["flavors", "detail"]) => flavors(call, base, true),
        (&Method::GET, ["os-keypairs"]) => list_keypairs(call),
        (&Method::POST, ["os-keypairs"]) => create_keypair(call, request),
        (&Method::DELETE, ["os-keypairs", name]) => delete_keypair(call, name),
        (&Method::GET, ["limits"]) => limits(call),
        (&Method::GET, ["os-quota-sets", project, "detail"]) => quota_detail(call, project),
        (&Method::PUT, ["os-quota-sets", project]) => set_quota(call, project, request),
        (&Method::DELETE, ["os-quota-sets", project]) => reset_quota(call, project),
        _ => fault(404, "itemNotFound", "The resource could not be found."),
    }
}

fn versions(base: &str, max: Mv) -> Reply {
    let root = base.to_owned();
    Reply::json(
        200,
        &json!({"versions": [
            {"id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "",
             "updated": "2025-07-04T12:00:00Z", "links": [{"rel": "self", "href": format!("{root}/v2/")}]},
            v21(base, max, false)
        ]}),
    )
}

fn v21(base: &str, max: Mv, full: bool) -> Value {
    let mut version = json!({
        "id": "v2.1", "status": "CURRENT", "version": show_mv(max), "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{base}/v2.1/")}]
    });
    if full {
        if let Some(links) = version["links"].as_array_mut() {
            links.push(json!({"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}));
        }
        version["media-types"] = json!([{"base": "application/json",
            "type": "application/vnd.openstack.compute+json;version=2.1"}]);
    }
    version
}

fn flavors(call: &mut Call<'_>, base: &str, detail: bool) -> Reply {
    let mv = call.mv;
    let flavors: Vec<Value> = call
        .region()
        .config
        .flavors
        .iter()
        .map(|f| {
            if !detail {
                return json!({"id": f.id, "name": f.name, "links": links(base, "flavors", &f.id)});
            }
            let mut v = json!({"id": f.id, "name": f.name, "ram": f.ram, "disk": f.disk, "swap": 0,
                "OS-FLV-EXT-DATA:ephemeral": 0, "vcpus": f.vcpus, "os-flavor-access:is_public": true,
                "links": links(base, "flavors", &f.id)});
            // Gone from 2.102 on (seen against real Nova 34).
            if mv < (2, 102) {
                v["OS-FLV-DISABLED:disabled"] = json!(false);
                v["rxtx_factor"] = json!(1.0);
            }
            if mv >= (2, 55) {
                v["description"] = Value::Null;
            }
            if mv >= (2, 61) {
                v["extra_specs"] = json!({});
            }
            v
        })
        .collect();
    Reply::json(200, &json!({ "flavors": flavors }))
}
