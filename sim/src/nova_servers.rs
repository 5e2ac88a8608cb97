//! Nova's server API: create (with Nova's quota check and refusal),
//! show, list with filters and pagination, delete, tags, addresses.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::Utc;
use serde_json::{Map, Value, json};

use crate::faults::Faults;
use crate::http::{Reply, Request};
use crate::nova::{Call, Mv, Over, bad_request, fault, not_found, unexpected_error};
use crate::world::{Phase, ServerRecord};

pub(crate) fn with_server(
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

pub(crate) fn links(base: &str, kind: &str, id: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{base}/v2.1/{kind}/{id}")},
        {"rel": "bookmark", "href": format!("{base}/{kind}/{id}")}
    ])
}

pub(crate) fn phase(call: &mut Call<'_>, server: &ServerRecord) -> Phase {
    let now = call.now;
    let (build, delete) = call.region().timings();
    server.phase(now, build, delete)
}

pub(crate) fn addresses(
    call: &mut Call<'_>,
    server: &ServerRecord,
    detail: bool,
) -> (Phase, Value) {
    let phase = phase(call, server);
    let has_address = !matches!(
        phase,
        Phase::Scheduling | Phase::Spawning | Phase::Error | Phase::Gone
    );
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

pub(crate) fn render_server(
    call: &mut Call<'_>,
    s: &ServerRecord,
    base: &str,
    show: bool,
) -> Value {
    let mv = call.mv;
    let (phase, addresses) = addresses(call, s, true);
    let (status, vm_state, task_state, power) = match phase {
        Phase::Scheduling => ("BUILD", "building", json!("scheduling"), 0),
        Phase::Spawning => ("BUILD", "building", json!("spawning"), 0),
        Phase::Active => ("ACTIVE", "active", Value::Null, 1),
        Phase::Stopped => ("SHUTOFF", "stopped", Value::Null, 4),
        Phase::Error => ("ERROR", "error", Value::Null, 0),
        Phase::Deleting => ("ACTIVE", "active", json!("deleting"), 1),
        Phase::Gone => ("DELETED", "deleted", Value::Null, 0),
    };
    let on_host = phase != Phase::Scheduling;
    let created = s.created_wall.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (build, delete) = call.region().timings();
    let updated = s
        .updated_at(call.now, build, delete)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let launched = (matches!(phase, Phase::Active | Phase::Stopped | Phase::Deleting)
        || phase == Phase::Gone && !s.fails)
        .then(|| {
            s.created_wall
                .format("%Y-%m-%dT%H:%M:%S.000000")
                .to_string()
        });
    let terminated = (phase == Phase::Gone).then(|| {
        s.updated_at(call.now, build, delete)
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
        "status": status, "tenant_id": s.project_id, "user_id": s.user_id, "updated": updated,
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": if on_host { "nova" } else { "" },
        "config_drive": "", "key_name": s.key_name,
        "OS-SRV-USG:launched_at": launched, "OS-SRV-USG:terminated_at": terminated,
        "OS-EXT-STS:task_state": task_state, "OS-EXT-STS:vm_state": vm_state,
        "OS-EXT-STS:power_state": power, "os-extended-volumes:volumes_attached": [],
    });
    let o = v.as_object_mut().expect("object literal");
    // Nova shows progress only while a server builds or runs.
    if matches!(status, "BUILD" | "ACTIVE") {
        o.insert("progress".into(), json!(0));
    }
    if on_host && phase != Phase::Gone {
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

pub(crate) fn md5_of(text: &str) -> u128 {
    use md5::Digest;
    u128::from_be_bytes(md5::Md5::digest(text.as_bytes()).into())
}

/// Nova's default `[api] max_limit`: the largest page it answers.
const MAX_LIMIT: usize = 1000;

pub(crate) fn list_servers(
    call: &mut Call<'_>,
    request: &Request,
    base: &str,
    detail: bool,
) -> Reply {
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
    // Nova answers at most `[api] max_limit` (1,000) servers per page,
    // whatever limit is asked for, and links to the next page.
    let limit = get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .map_or(MAX_LIMIT, |l| l.min(MAX_LIMIT));
    let marker = get("marker");
    let changes_since = match get("changes-since") {
        None => None,
        // Nova takes RFC 3339, and a time without an offset as UTC.
        Some(text) => match chrono::DateTime::parse_from_rfc3339(&text)
            .map(|at| at.to_utc())
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f")
                    .map(|at| at.and_utc())
            }) {
            Ok(at) => Some(at),
            Err(_) => {
                return bad_request(&format!(
                    "Invalid input for query parameters changes-since. Value: {text}. \
                     '{text}' is not a 'date-time'"
                ));
            }
        },
    };
    let lag = std::time::Duration::from_secs_f64(call.region().faults.list_lag_secs.max(0.0));
    let now = call.now;
    let (build, delete) = call.region().timings();
    let project = call.user.project_id.clone();
    let every_project = all_tenants && call.user.admin;
    let region = call.region();
    // Deleted servers are listed only to a `changes-since` query.
    let deleted = region.tombstones.iter().filter(|_| changes_since.is_some());
    let mut servers: Vec<ServerRecord> = region
        .servers
        .values()
        .chain(deleted)
        .filter(|s| every_project || s.project_id == project)
        .filter(|s| now.saturating_duration_since(s.created) >= lag)
        .filter(|s| name.as_ref().is_none_or(|re| re.is_match(&s.name)))
        .filter(|s| tags.iter().all(|t| s.tags.contains(t)))
        .filter(|s| {
            changes_since.is_none_or(|since| {
                // Nova stores times to the second.
                s.updated_at(now, build, delete).timestamp() >= since.timestamp()
            })
        })
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
        if rendered.len() == limit {
            call.region().counters.servers_listed += rendered.len() as u64;
            // One more exists: link to the next page, with the query as
            // asked and the last id shown as the marker, as Nova does.
            let last = rendered
                .last()
                .and_then(|s: &Value| s["id"].as_str())
                .unwrap_or_default()
                .to_owned();
            let mut query: Vec<&str> = request
                .query
                .split('&')
                .filter(|p| !p.is_empty() && !p.starts_with("marker="))
                .collect();
            let marker = format!("marker={last}");
            query.push(&marker);
            let path = if detail { "servers/detail" } else { "servers" };
            let href = format!("{base}/v2.1/{path}?{}", query.join("&"));
            return Reply::json(
                200,
                &json!({"servers": rendered, "servers_links": [{"rel": "next", "href": href}]}),
            );
        }
        rendered.push(if detail {
            full
        } else {
            json!({"id": s.id, "name": s.name, "links": links(base, "servers", &s.id)})
        });
    }
    call.region().counters.servers_listed += rendered.len() as u64;
    Reply::json(200, &json!({"servers": rendered}))
}

pub(crate) fn create_server(call: &mut Call<'_>, request: &Request, base: &str) -> Reply {
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
    let fails = region.faults.build_fails_at(region.counters.accepted);
    region.counters.accepted += 1;
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
        stopped: false,
        power_changed: None,
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

pub(crate) fn delete_server(call: &mut Call<'_>, id: &str) -> Reply {
    let project = call.user.project_id.clone();
    let by_user = call.user.name.clone();
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
            let deletion = crate::world::Deletion {
                kind: "server",
                id: server.id.clone(),
                name: server.name.clone(),
                tags: server.tags.clone(),
                by_user,
                owner: server.project_id.clone(),
            };
            call.region().counters.deleted(deletion);
            Reply::empty(204, "application/json")
        }
        None => not_found(&format!("Instance {id} could not be found.")),
    }
}

pub(crate) fn add_tag(call: &mut Call<'_>, id: &str, tag: &str, base: &str) -> Reply {
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

/// `POST /servers/{id}/action` with `os-stop` or `os-start`: 202, or 409
/// when the server is not in the state the action needs, as Nova answers.
pub(crate) fn server_action(call: &mut Call<'_>, id: &str, request: &Request) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return bad_request("Malformed request body");
    };
    let action = match body.as_object().map(|o| o.keys().next().cloned()) {
        Some(Some(action)) if action == "os-stop" || action == "os-start" => action,
        _ => return bad_request("There is no such action"),
    };
    let project = call.user.project_id.clone();
    let now = call.now;
    let (build, delete) = call.region().timings();
    let Some(server) = call
        .region()
        .servers
        .get_mut(id)
        .filter(|s| s.project_id == project)
    else {
        return not_found(&format!("Instance {id} could not be found."));
    };
    let phase = server.phase(now, build, delete);
    let (wanted, verb) = if action == "os-stop" {
        (Phase::Active, "stop")
    } else {
        (Phase::Stopped, "start")
    };
    if phase != wanted {
        let vm_state = match phase {
            Phase::Scheduling | Phase::Spawning => "building",
            Phase::Active | Phase::Deleting => "active",
            Phase::Stopped => "stopped",
            Phase::Error => "error",
            Phase::Gone => "deleted",
        };
        return crate::nova::fault(
            409,
            "conflictingRequest",
            &format!("Cannot '{verb}' instance {id} while it is in vm_state {vm_state}"),
        );
    }
    server.stopped = verb == "stop";
    server.power_changed = Some(now);
    Reply::empty(202, "application/json")
}
