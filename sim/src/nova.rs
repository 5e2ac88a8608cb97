//! Nova's compute API for one region: versions, servers, flavors, key
//! pairs, limits, quota sets. Shapes, status codes and error bodies follow
//! transcripts 005–064.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use warp::http::Method;

use crate::Sim;
use crate::faults::Faults;
use crate::http::{Reply, Request};
use crate::keystone;
use crate::world::{KeypairRecord, Phase, Provider, Region, ServerRecord, User};

/// A resource over quota: name, requested, used, limit.
type Over = (&'static str, i64, i64, i64);

/// A compute microversion as (major, minor).
type Mv = (u16, u16);

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

fn not_found(message: &str) -> Reply {
    fault(404, "itemNotFound", message)
}

fn bad_request(message: &str) -> Reply {
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
struct Call<'a> {
    provider: &'a mut Provider,
    r: usize,
    user: User,
    mv: Mv,
    now: Instant,
}

impl Call<'_> {
    fn region(&mut self) -> &mut Region {
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

fn with_server(
    call: &mut Call<'_>,
    id: &str,
    answer: impl FnOnce(&mut Call<'_>, &ServerRecord) -> Reply,
) -> Reply {
    let project = call.user.project_id.clone();
    match call
        .region()
        .servers
        .get(id)
        .filter(|s| s.project_id == project)
        .cloned()
    {
        Some(server) => answer(call, &server),
        None => not_found(&format!("Instance {id} could not be found.")),
    }
}

fn links(base: &str, kind: &str, id: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{base}/v2.1/{kind}/{id}")},
        {"rel": "bookmark", "href": format!("{base}/{kind}/{id}")}
    ])
}

fn phase(call: &mut Call<'_>, server: &ServerRecord) -> Phase {
    let now = call.now;
    let (build, delete) = call.region().timings();
    server.phase(now, build, delete)
}

fn addresses(call: &mut Call<'_>, server: &ServerRecord, detail: bool) -> (Phase, Value) {
    let phase = phase(call, server);
    let has_address = !matches!(phase, Phase::Scheduling | Phase::Spawning | Phase::Error);
    let mut map = Map::new();
    if has_address {
        let mut address = json!({"version": 4, "addr": server.address});
        if detail {
            address["OS-EXT-IPS:type"] = json!("fixed");
            address["OS-EXT-IPS-MAC:mac_addr"] = json!(server.mac);
        }
        map.insert("private".into(), json!([address]));
    }
    (phase, Value::Object(map))
}

fn render_server(call: &mut Call<'_>, s: &ServerRecord, base: &str, show: bool) -> Value {
    let mv = call.mv;
    let (phase, addresses) = addresses(call, s, true);
    let (status, vm_state, task_state, power) = match phase {
        Phase::Scheduling => ("BUILD", "building", json!("scheduling"), 0),
        Phase::Spawning => ("BUILD", "building", json!("spawning"), 0),
        Phase::Active => ("ACTIVE", "active", Value::Null, 1),
        Phase::Error => ("ERROR", "error", Value::Null, 0),
        Phase::Deleting | Phase::Gone => ("ACTIVE", "active", json!("deleting"), 1),
    };
    let on_host = phase != Phase::Scheduling;
    let created = s.created_wall.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let launched = matches!(phase, Phase::Active | Phase::Deleting).then(|| {
        s.created_wall
            .format("%Y-%m-%dT%H:%M:%S.000000")
            .to_string()
    });
    let flavor = if mv >= (2, 47) {
        json!({"vcpus": s.flavor.vcpus, "ram": s.flavor.ram, "disk": s.flavor.disk,
               "ephemeral": 0, "swap": 0, "original_name": s.flavor.name, "extra_specs": {}})
    } else {
        json!({"id": s.flavor.id, "links": [{"rel": "bookmark", "href": format!("{base}/flavors/{}", s.flavor.id)}]})
    };
    let mut image = json!({"id": s.image_id,
        "links": [{"rel": "bookmark", "href": format!("{base}/images/{}", s.image_id)}]});
    if mv >= (2, 98) {
        image["properties"] = json!({});
    }
    let host_id = if on_host && phase != Phase::Error {
        format!("{:x}", md5_of(&format!("{}{}", s.project_id, "compute-1")))
    } else {
        String::new()
    };
    let mut v = json!({
        "accessIPv4": "", "accessIPv6": "", "addresses": addresses, "created": created,
        "flavor": flavor, "hostId": host_id, "id": s.id, "image": image,
        "links": links(base, "servers", &s.id), "metadata": s.metadata, "name": s.name,
        "status": status, "tenant_id": s.project_id, "user_id": s.user_id, "updated": created,
        "OS-DCF:diskConfig": "MANUAL", "progress": 0,
        "OS-EXT-AZ:availability_zone": if on_host { "nova" } else { "" },
        "config_drive": "", "key_name": s.key_name,
        "OS-SRV-USG:launched_at": launched, "OS-SRV-USG:terminated_at": null,
        "OS-EXT-STS:task_state": task_state, "OS-EXT-STS:vm_state": vm_state,
        "OS-EXT-STS:power_state": power, "os-extended-volumes:volumes_attached": [],
    });
    let o = v.as_object_mut().expect("object literal");
    if on_host {
        o.insert("security_groups".into(), json!([{"name": "default"}]));
    }
    if phase == Phase::Error {
        o.insert(
            "fault".into(),
            json!({"code": 500, "created": created,
            "message": "No valid host was found. There are not enough hosts available."}),
        );
    }
    let since = |at: Mv| mv >= at;
    if since((2, 9)) {
        o.insert("locked".into(), json!(false));
    }
    if since((2, 19)) {
        o.insert("description".into(), Value::Null);
    }
    if since((2, 26)) {
        o.insert("tags".into(), json!(s.tags));
    }
    if since((2, 63)) {
        o.insert("trusted_image_certificates".into(), Value::Null);
    }
    if show && since((2, 71)) {
        o.insert("server_groups".into(), json!([]));
    }
    if since((2, 73)) {
        o.insert("locked_reason".into(), Value::Null);
    }
    if since((2, 90)) {
        o.insert("OS-EXT-SRV-ATTR:hostname".into(), json!(s.name));
    }
    if since((2, 96)) {
        o.insert("pinned_availability_zone".into(), Value::Null);
    }
    if since((2, 100)) {
        o.insert("scheduler_hints".into(), json!({}));
    }
    v
}

fn md5_of(text: &str) -> u128 {
    use md5::Digest;
    u128::from_be_bytes(md5::Md5::digest(text.as_bytes()).into())
}

fn list_servers(call: &mut Call<'_>, request: &Request, base: &str, detail: bool) -> Reply {
    let query = request.query_pairs();
    let get = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let all_tenants = get("all_tenants").is_some();
    if all_tenants && call.user.admin && get("metadata").is_some() {
        return bad_request("Invalid filter field: metadata.");
    }
    let name = match get("name").map(|n| regex::Regex::new(&n)) {
        Some(Ok(re)) => Some(re),
        Some(Err(_)) => return bad_request("Invalid filter field: name."),
        None => None,
    };
    let tags: Vec<String> = get("tags")
        .map(|t| t.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let status = get("status");
    let limit: Option<usize> = get("limit").and_then(|l| l.parse().ok());
    let marker = get("marker");
    let lag = std::time::Duration::from_secs_f64(call.region().faults.list_lag_secs.max(0.0));
    let now = call.now;
    let project = call.user.project_id.clone();
    let every_project = all_tenants && call.user.admin;
    let mut servers: Vec<ServerRecord> = call
        .region()
        .servers
        .values()
        .filter(|s| every_project || s.project_id == project)
        .filter(|s| now.saturating_duration_since(s.created) >= lag)
        .filter(|s| name.as_ref().is_none_or(|re| re.is_match(&s.name)))
        .filter(|s| tags.iter().all(|t| s.tags.contains(t)))
        .cloned()
        .collect();
    // Nova lists newest first.
    servers.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
    if let Some(marker) = marker {
        match servers.iter().position(|s| s.id == marker) {
            Some(i) => {
                servers.drain(..=i);
            }
            None => return bad_request(&format!("marker [{marker}] not found")),
        }
    }
    let mut rendered = Vec::new();
    for s in &servers {
        let full = render_server(call, s, base, false);
        if status
            .as_ref()
            .is_some_and(|wanted| full["status"].as_str() != Some(wanted.as_str()))
        {
            continue;
        }
        rendered.push(if detail {
            full
        } else {
            json!({"id": s.id, "name": s.name, "links": links(base, "servers", &s.id)})
        });
    }
    let mut body = json!({});
    if let Some(limit) = limit
        && rendered.len() > limit
    {
        rendered.truncate(limit);
        let last = rendered
            .last()
            .and_then(|s| s["id"].as_str())
            .unwrap_or_default()
            .to_owned();
        let path = if detail { "servers/detail" } else { "servers" };
        body["servers_links"] = json!([{"rel": "next",
            "href": format!("{base}/v2.1/{path}?limit={limit}&marker={last}")}]);
    }
    body["servers"] = Value::Array(rendered);
    Reply::json(200, &body)
}

fn create_server(call: &mut Call<'_>, request: &Request, base: &str) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return bad_request("Malformed request body");
    };
    let server = &body["server"];
    let Some(name) = server["name"].as_str().filter(|n| !n.is_empty()) else {
        return bad_request(
            "Invalid input for field/attribute server. Value: {}. 'name' is a required property",
        );
    };
    let flavor_ref = server["flavorRef"].as_str().unwrap_or_default().to_owned();
    let image_ref = server["imageRef"].as_str().unwrap_or_default().to_owned();
    if call.mv >= (2, 37) && server.get("networks").is_none() {
        return bad_request(
            "Invalid input for field/attribute server. 'networks' is a required property",
        );
    }
    let Some(flavor) = call
        .region()
        .config
        .flavors
        .iter()
        .find(|f| f.id == flavor_ref)
        .cloned()
    else {
        return bad_request(&format!("Flavor {flavor_ref} could not be found."));
    };
    if !call.region().images.iter().any(|(id, _)| *id == image_ref) {
        return bad_request("Can not find requested image");
    }
    let key_name = server["key_name"].as_str().map(str::to_owned);
    if let Some(key) = &key_name {
        let owner = call.user.id.clone();
        if !call.region().keypairs.contains_key(&(owner, key.clone())) {
            return bad_request("Invalid key_name provided.");
        }
    }
    if let Some(data) = server["user_data"].as_str()
        && base64::engine::general_purpose::STANDARD
            .decode(data)
            .is_err()
    {
        return bad_request("User data needs to be valid base 64.");
    }
    let metadata: BTreeMap<String, String> = server["metadata"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let tags: Vec<String> = if call.mv >= (2, 52) {
        server["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let project = call.user.project_id.clone();
    let region = call.region();
    region.counters.creates += 1;
    let quota = region.quota(&project);
    let (instances, cores, ram) = region.usage(&project);
    let over: Vec<Over> = [
        ("cores", flavor.vcpus, cores, quota.cores),
        ("instances", 1, instances, quota.instances),
        ("ram", flavor.ram, ram, quota.ram),
    ]
    .into_iter()
    .filter(|(_, want, used, limit)| *limit >= 0 && used + want > *limit)
    .collect();
    if !over.is_empty() {
        region.counters.creates_refused_quota += 1;
        let column =
            |pick: fn(&Over) -> String| over.iter().map(pick).collect::<Vec<_>>().join(", ");
        let names = column(|o| o.0.to_owned());
        let message = format!(
            "Quota exceeded for {names}: Requested {}, but already used {} of {} {names}",
            column(|o| o.1.to_string()),
            column(|o| o.2.to_string()),
            column(|o| o.3.to_string()),
        );
        return fault(403, "forbidden", &message);
    }
    let id = uuid::Uuid::new_v4().to_string();
    let (address, mac) = region.allocate_address();
    let fails = Faults::roll(region.faults.build_error_rate);
    let record = ServerRecord {
        id: id.clone(),
        name: name.to_owned(),
        project_id: project,
        user_id: call.user.id.clone(),
        flavor,
        image_id: image_ref,
        key_name,
        metadata,
        tags,
        created: call.now,
        created_wall: Utc::now(),
        fails,
        deleted: None,
        address,
        mac,
    };
    call.region().servers.insert(id.clone(), record);
    let admin_pass: String = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    Reply::json(
        202,
        &json!({"server": {"id": id, "links": links(base, "servers", &id),
            "OS-DCF:diskConfig": "MANUAL", "security_groups": [{"name": "default"}],
            "adminPass": admin_pass}}),
    )
    .header("location", format!("{base}/v2.1/servers/{id}"))
}

fn delete_server(call: &mut Call<'_>, id: &str) -> Reply {
    let project = call.user.project_id.clone();
    let now = call.now;
    let refuse = Faults::roll(call.region().faults.delete_error_rate);
    match call
        .region()
        .servers
        .get_mut(id)
        .filter(|s| s.project_id == project)
    {
        Some(_) if refuse => unexpected_error(),
        Some(server) => {
            server.deleted.get_or_insert(now);
            Reply::empty(204, "application/json")
        }
        None => not_found(&format!("Instance {id} could not be found.")),
    }
}

fn add_tag(call: &mut Call<'_>, id: &str, tag: &str, base: &str) -> Reply {
    if call.mv < (2, 26) {
        return fault(404, "itemNotFound", "The resource could not be found.");
    }
    let project = call.user.project_id.clone();
    match call
        .region()
        .servers
        .get_mut(id)
        .filter(|s| s.project_id == project)
    {
        Some(server) => {
            if !server.tags.iter().any(|t| t == tag) {
                server.tags.push(tag.to_owned());
            }
            Reply::empty(201, "text/html; charset=UTF-8")
                .header("Location", format!("{base}/v2.1/servers/{id}/tags/{tag}"))
        }
        None => not_found(&format!("Instance {id} could not be found.")),
    }
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

fn list_keypairs(call: &mut Call<'_>) -> Reply {
    let owner = call.user.id.clone();
    let keypairs: Vec<Value> = call
        .region()
        .keypairs
        .values()
        .filter(|k| k.user_id == owner)
        .map(|k| {
            json!({"keypair": {"name": k.name, "public_key": k.public_key,
                               "fingerprint": k.fingerprint, "type": "ssh"}})
        })
        .collect();
    Reply::json(200, &json!({ "keypairs": keypairs }))
}

fn create_keypair(call: &mut Call<'_>, request: &Request) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return bad_request("Malformed request body");
    };
    let keypair = &body["keypair"];
    let Some(name) = keypair["name"].as_str().map(str::to_owned) else {
        return bad_request(
            "Invalid input for field/attribute keypair. 'name' is a required property",
        );
    };
    let (public_key, private_key) = match keypair["public_key"].as_str() {
        Some(key) => (key.to_owned(), None),
        None if call.mv >= (2, 92) => {
            let shown = serde_json::to_string(keypair)
                .unwrap_or_default()
                .replace('"', "'")
                .replace(':', ": ");
            return bad_request(&format!(
                "Invalid input for field/attribute keypair. Value: {shown}. 'public_key' is a required property"
            ));
        }
        None => match generate_key(&name) {
            Some(pair) => (pair.0, Some(pair.1)),
            None => return unexpected_error(),
        },
    };
    let Some(fingerprint) = fingerprint(&public_key) else {
        return bad_request("Keypair data is invalid: failed to generate fingerprint");
    };
    let owner = call.user.id.clone();
    let limit = call.region().config.quota.key_pairs;
    let region = call.region();
    if region.keypairs.contains_key(&(owner.clone(), name.clone())) {
        return fault(
            409,
            "conflictingRequest",
            &format!("Key pair '{name}' already exists."),
        );
    }
    if region.keypairs.keys().filter(|(u, _)| *u == owner).count() as i64 >= limit {
        return fault(403, "forbidden", "Quota exceeded, too many key pairs.");
    }
    region.keypairs.insert(
        (owner.clone(), name.clone()),
        KeypairRecord {
            name: name.clone(),
            public_key: public_key.clone(),
            fingerprint: fingerprint.clone(),
            user_id: owner.clone(),
        },
    );
    let mut answer = json!({"type": "ssh", "name": name, "public_key": public_key,
                            "fingerprint": fingerprint, "user_id": owner});
    if let Some(private_key) = private_key {
        answer["private_key"] = json!(private_key);
    }
    Reply::json(201, &json!({ "keypair": answer }))
}

fn generate_key(name: &str) -> Option<(String, String)> {
    let mut rng = ssh_key::rand_core::OsRng;
    let key = ssh_key::PrivateKey::random(&mut rng, ssh_key::Algorithm::Ed25519).ok()?;
    let public = key.public_key().to_openssh().ok()?;
    let private = key.to_openssh(ssh_key::LineEnding::LF).ok()?.to_string();
    Some((format!("{public} Generated-by-Nova-{name}"), private))
}

/// Nova's MD5 fingerprint of an OpenSSH public key.
fn fingerprint(public_key: &str) -> Option<String> {
    use md5::Digest;
    let blob = public_key.split_whitespace().nth(1)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let digest = md5::Md5::digest(&bytes);
    Some(
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

fn delete_keypair(call: &mut Call<'_>, name: &str) -> Reply {
    let owner = call.user.id.clone();
    match call
        .region()
        .keypairs
        .remove(&(owner.clone(), name.to_owned()))
    {
        Some(_) => Reply::empty(204, "application/json"),
        None => not_found(&format!("Keypair {name} not found for user {owner}")),
    }
}

fn limits(call: &mut Call<'_>) -> Reply {
    let project = call.user.project_id.clone();
    let region = call.region();
    let quota = region.quota(&project);
    let (instances, cores, ram) = region.usage(&project);
    let stale = region.faults.stale_quota_extra;
    Reply::json(
        200,
        &json!({"limits": {"rate": [], "absolute": {
            "maxTotalCores": quota.cores, "maxTotalInstances": quota.instances + stale,
            "maxTotalKeypairs": quota.key_pairs, "maxServerMeta": 128,
            "maxTotalRAMSize": quota.ram, "maxServerGroups": 10, "maxServerGroupMembers": 10,
            "totalRAMUsed": ram, "totalCoresUsed": cores, "totalInstancesUsed": instances,
            "totalServerGroupsUsed": 0
        }}}),
    )
}

fn forbidden_unless_admin(call: &Call<'_>) -> Option<Reply> {
    (!call.user.admin).then(|| {
        fault(
            403,
            "forbidden",
            "Policy doesn't allow os_compute_api:os-quota-sets:update to be performed.",
        )
    })
}

fn quota_detail(call: &mut Call<'_>, project: &str) -> Reply {
    let region = call.region();
    let quota = region.quota(project);
    let (instances, cores, ram) = region.usage(project);
    let item = |limit: i64, used: i64| json!({"limit": limit, "in_use": used, "reserved": 0});
    Reply::json(
        200,
        &json!({"quota_set": {"id": project, "cores": item(quota.cores, cores),
            "instances": item(quota.instances, instances), "key_pairs": item(quota.key_pairs, 0),
            "metadata_items": item(128, 0), "ram": item(quota.ram, ram),
            "server_group_members": item(10, 0), "server_groups": item(10, 0)}}),
    )
}

fn set_quota(call: &mut Call<'_>, project: &str, request: &Request) -> Reply {
    if let Some(refused) = forbidden_unless_admin(call) {
        return refused;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return bad_request("Malformed request body");
    };
    let region = call.region();
    let mut quota = region.quota(project);
    let set = &body["quota_set"];
    for (key, slot) in [
        ("instances", &mut quota.instances),
        ("cores", &mut quota.cores),
        ("ram", &mut quota.ram),
        ("key_pairs", &mut quota.key_pairs),
    ] {
        if let Some(value) = set[key].as_i64() {
            *slot = value;
        }
    }
    region.quotas.insert(project.to_owned(), quota);
    Reply::json(
        200,
        &json!({"quota_set": {"cores": quota.cores, "instances": quota.instances,
            "key_pairs": quota.key_pairs, "metadata_items": 128, "ram": quota.ram,
            "server_group_members": 10, "server_groups": 10}}),
    )
}

fn reset_quota(call: &mut Call<'_>, project: &str) -> Reply {
    if let Some(refused) = forbidden_unless_admin(call) {
        return refused;
    }
    call.region().quotas.remove(project);
    Reply::empty(202, "application/json")
}
