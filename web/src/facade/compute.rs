//! Nova's API over the pool: version documents, flavors (our profiles),
//! servers (our instances: one `POST /servers` is one launch request),
//! limits (the client's), availability zones (providers and their
//! regions). Microversions 2.1 to 2.52, negotiated as Nova does: none
//! asked is 2.1, `latest` is 2.52, more is Nova's 406; the answers change
//! with the version as Nova's do (locked 2.9, description 2.19, tags 2.26,
//! the flavor embedded 2.47, tags at create 2.52; key pair type 2.2).

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::SecondsFormat;
use oms_actors::model::{Instance, InstanceState, PlacementHints};
use oms_actors::store::InstanceFilter;
use oms_actors::{FleetError, NewLaunch};
use serde_json::{Value, json};
use warp::http::{Method, StatusCode};

use super::{Call, NETWORK, answer, nova_error, stable_id};
use crate::auth::Principal;

/// The highest microversion served.
const MAX_MINOR: u32 = 52;

fn unauthorized() -> warp::reply::Response {
    nova_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "The request you have made requires authentication.",
    )
}

fn not_found(what: &str) -> warp::reply::Response {
    nova_error(StatusCode::NOT_FOUND, "itemNotFound", what)
}

fn bad_request(message: &str) -> warp::reply::Response {
    nova_error(StatusCode::BAD_REQUEST, "badRequest", message)
}

/// Nova's answer to what the fleet refused.
fn refused(error: FleetError) -> warp::reply::Response {
    match error {
        FleetError::NotFound(what) => not_found(&what),
        FleetError::Invalid(why) => bad_request(&why),
        FleetError::LimitReached(why) => nova_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("Quota exceeded for instances: {why}"),
        ),
        FleetError::Conflict(why) => nova_error(StatusCode::CONFLICT, "conflictingRequest", &why),
        other => nova_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "computeFault",
            &format!("the pool cannot answer now: {other}"),
        ),
    }
}

fn version(call: &Call<'_>) -> Value {
    json!({
        "id": "v2.1", "status": "CURRENT", "version": format!("2.{MAX_MINOR}"), "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{}/compute/v2.1/", call.base)},
                  {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
    })
}

/// The microversion the call asked for (2.1 when it says none), or what
/// it asked that is not served.
fn negotiate(call: &Call<'_>) -> Result<u32, String> {
    let asked = call
        .headers
        .get("OpenStack-API-Version")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("compute"))
        .map(|v| v.trim().to_owned())
        .or_else(|| {
            call.headers
                .get("X-OpenStack-Nova-API-Version")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned())
        });
    let Some(asked) = asked else {
        return Ok(1);
    };
    if asked == "latest" {
        return Ok(MAX_MINOR);
    }
    match asked
        .split_once('.')
        .map(|(major, minor)| (major, minor.parse::<u32>()))
    {
        Some(("2", Ok(minor))) if (1..=MAX_MINOR).contains(&minor) => Ok(minor),
        Some(("2", Ok(0))) => Ok(1),
        _ => Err(asked),
    }
}

pub(super) async fn handle(call: &Call<'_>) -> warp::reply::Response {
    let minor = negotiate(call);
    let mut response = match &minor {
        Ok(minor) => route(call, *minor).await,
        Err(asked) => nova_error(
            StatusCode::NOT_ACCEPTABLE,
            "computeFault",
            &format!(
                "Version {asked} is not supported by the API. Minimum is 2.1 and maximum is 2.{MAX_MINOR}."
            ),
        ),
    };
    let said = format!("2.{}", minor.unwrap_or(1));
    let headers = response.headers_mut();
    if let Ok(value) = warp::http::HeaderValue::from_str(&format!("compute {said}")) {
        headers.insert("OpenStack-API-Version", value);
    }
    if let Ok(value) = warp::http::HeaderValue::from_str(&said) {
        headers.insert("X-OpenStack-Nova-API-Version", value);
    }
    headers.insert(
        warp::http::header::VARY,
        warp::http::HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"),
    );
    response
}

async fn route(call: &Call<'_>, minor: u32) -> warp::reply::Response {
    let segments = call.segments.as_slice();
    match (&call.method, segments) {
        (&Method::GET, []) => {
            return answer(StatusCode::OK, &json!({"versions": [version(call)]}));
        }
        (&Method::GET, ["v2.1"]) => {
            return answer(StatusCode::OK, &json!({"version": version(call)}));
        }
        _ => {}
    }
    let Some(rest) = segments.strip_prefix(&["v2.1"]) else {
        return not_found("The resource could not be found.");
    };
    let Some(principal) = call.principal() else {
        return unauthorized();
    };
    // Nova's paths may carry the project id: /v2.1/{project_id}/servers.
    let rest = match rest {
        [first, tail @ ..] if *first == super::identity::project_id(&principal) => tail,
        other => other,
    };
    match (&call.method, rest) {
        (&Method::GET, ["flavors"]) => flavors(call, false),
        (&Method::GET, ["flavors", "detail"]) => flavors(call, true),
        (&Method::GET, ["flavors", id]) => flavor_show(call, id),
        (&Method::GET, ["flavors", _, "os-extra_specs"]) => {
            answer(StatusCode::OK, &json!({"extra_specs": {}}))
        }
        (&Method::GET, ["limits"]) => limits(call, &principal),
        (&Method::GET, ["os-availability-zone"]) => zones(call),
        (&Method::GET, ["os-availability-zone", "detail"]) => zones(call),
        (&Method::GET, ["os-keypairs"]) => keypairs(call, &principal, minor),
        (&Method::POST, ["os-keypairs"]) => import_keypair(call, &principal, minor).await,
        (&Method::GET, ["os-keypairs", name]) => {
            match call.api.fleet.keypair(&principal.name, name).ok().flatten() {
                Some(key) => answer(
                    StatusCode::OK,
                    &json!({"keypair": keypair(&principal, &key, true, minor)}),
                ),
                None => not_found(&format!(
                    "Keypair {name} not found for user {}",
                    principal.name
                )),
            }
        }
        (&Method::DELETE, ["os-keypairs", name]) => {
            match call.api.fleet.remove_keypair(&principal.name, name).await {
                Ok(()) => answer(StatusCode::ACCEPTED, &json!({})),
                Err(FleetError::NotFound(_)) => not_found(&format!(
                    "Keypair {name} not found for user {}",
                    principal.name
                )),
                Err(error) => refused(error),
            }
        }
        (&Method::POST, ["servers"]) => create(call, &principal, minor).await,
        (&Method::GET, ["servers"]) => servers(call, &principal, false, minor),
        (&Method::GET, ["servers", "detail"]) => servers(call, &principal, true, minor),
        (&Method::GET, ["servers", id]) => match own(call, &principal, id) {
            Some(instance) => answer(
                StatusCode::OK,
                &json!({"server": server(call, &principal, &instance, minor, &Lookups::new(call, &principal))}),
            ),
            None => not_found(&format!("Instance {id} could not be found.")),
        },
        (&Method::GET, ["servers", id, "tags"]) if minor >= 26 => match own(call, &principal, id) {
            Some(instance) => answer(StatusCode::OK, &json!({"tags": tags_of(call, &instance)})),
            None => not_found(&format!("Instance {id} could not be found.")),
        },
        (&Method::DELETE, ["servers", id]) => match own(call, &principal, id) {
            Some(instance) => match call.api.fleet.delete(&instance.id).await {
                Ok(_) => crate::no_content(),
                Err(error) => refused(error),
            },
            None => not_found(&format!("Instance {id} could not be found.")),
        },
        (&Method::GET, ["servers", id, "os-security-groups"]) => match own(call, &principal, id) {
            Some(_) => answer(StatusCode::OK, &json!({"security_groups": []})),
            None => not_found(&format!("Instance {id} could not be found.")),
        },
        (
            _,
            [
                "os-volumes_boot" | "os-volumes" | "os-snapshots" | "os-floating-ips"
                | "os-security-groups" | "os-server-groups",
                ..,
            ],
        )
        | (&Method::POST, ["servers", _, "action"])
        | (&Method::PUT, ["servers", ..]) => nova_error(
            StatusCode::NOT_IMPLEMENTED,
            "notImplemented",
            "OpenMultiStack does not offer this: see the compatibility matrix in its README.",
        ),
        _ => not_found("The resource could not be found."),
    }
}

fn keypair(
    principal: &Principal,
    key: &oms_actors::model::KeyPair,
    detail: bool,
    minor: u32,
) -> Value {
    let mut view = json!({"name": key.name, "public_key": key.public_key,
                          "fingerprint": crate::keys::fingerprint(&key.public_key)});
    if minor >= 2 {
        view["type"] = json!("ssh");
    }
    if detail {
        view["user_id"] = json!(super::identity::user_id(principal));
        view["created_at"] = json!(key.created_at.to_rfc3339_opts(SecondsFormat::Micros, true));
        view["deleted"] = json!(false);
        view["id"] = json!(0);
    }
    view
}

fn keypairs(call: &Call<'_>, principal: &Principal, minor: u32) -> warp::reply::Response {
    let listed: Vec<Value> = call
        .api
        .fleet
        .keypairs(&principal.name)
        .unwrap_or_default()
        .iter()
        .map(|k| json!({"keypair": keypair(principal, k, false, minor)}))
        .collect();
    answer(StatusCode::OK, &json!({"keypairs": listed}))
}

/// Imports a public key, or generates a pair and answers its private key
/// once, as Nova does at 2.1.
async fn import_keypair(
    call: &Call<'_>,
    principal: &Principal,
    minor: u32,
) -> warp::reply::Response {
    let Some(body) = call.json() else {
        return bad_request("Malformed request body");
    };
    let k = &body["keypair"];
    let Some(name) = k["name"].as_str() else {
        return bad_request(
            "Invalid input for field/attribute keypair. Value: 'name' is a required property",
        );
    };
    let (public_key, private_key) = match k["public_key"].as_str() {
        Some(key) if crate::keys::one_public_key(key) => (key.trim_end().to_owned(), None),
        Some(_) => return bad_request("Keypair data is invalid: failed to generate fingerprint"),
        None => match crate::keys::generate_key(&format!("openmultistack-{}", principal.name)) {
            Ok((public, private)) => (public, Some(private)),
            Err(error) => {
                return nova_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "computeFault",
                    &error.message,
                );
            }
        },
    };
    let key = oms_actors::model::KeyPair {
        client: principal.name.clone(),
        name: name.to_owned(),
        public_key,
        created_at: chrono::Utc::now(),
    };
    match call.api.fleet.add_keypair(key.clone()).await {
        Ok(()) => {
            let mut view = keypair(principal, &key, true, minor);
            if let Some(private) = private_key {
                view["private_key"] = json!(secrecy::ExposeSecret::expose_secret(&private));
            }
            answer(StatusCode::OK, &json!({"keypair": view}))
        }
        Err(error) => refused(error),
    }
}

/// A flavor for a profile: the profile's name is its id.
fn flavor(call: &Call<'_>, p: &oms_actors::model::Profile, detail: bool) -> Value {
    let links = json!([
        {"rel": "self", "href": format!("{}/compute/v2.1/flavors/{}", call.base, p.name)},
        {"rel": "bookmark", "href": format!("{}/compute/flavors/{}", call.base, p.name)},
    ]);
    if !detail {
        return json!({"id": p.name, "name": p.name, "links": links, "description": null});
    }
    json!({
        "id": p.name, "name": p.name, "vcpus": p.min_vcpus, "ram": p.min_ram_mb, "disk": p.min_disk_gb,
        "swap": "", "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": false,
        "rxtx_factor": 1.0, "os-flavor-access:is_public": true, "links": links,
    })
}

fn flavors(call: &Call<'_>, detail: bool) -> warp::reply::Response {
    let profiles = call.api.fleet.profiles().unwrap_or_default();
    let listed: Vec<Value> = profiles
        .iter()
        // Ad-hoc profiles (launches by constraints) are not offered.
        .filter(|p| !p.name.starts_with("adhoc-"))
        .map(|p| flavor(call, p, detail))
        .collect();
    answer(StatusCode::OK, &json!({"flavors": listed}))
}

fn flavor_show(call: &Call<'_>, id: &str) -> warp::reply::Response {
    match call.api.fleet.profile(id).ok().flatten() {
        Some(p) => answer(StatusCode::OK, &json!({"flavor": flavor(call, &p, true)})),
        None => not_found(&format!("Flavor {id} could not be found.")),
    }
}

fn live_instances(call: &Call<'_>, principal: &Principal) -> Vec<Instance> {
    call.api
        .fleet
        .instances(&InstanceFilter {
            client: Some(principal.name.clone()),
            states: InstanceState::LIVE.to_vec(),
            ..InstanceFilter::default()
        })
        .unwrap_or_default()
}

/// What the regions' limits allow in all: instances, cores, RAM (MiB);
/// -1 in a dimension one of them does not limit.
fn pool_capacity(limits: impl IntoIterator<Item = oms_actors::ledger::Footprint>) -> [i64; 3] {
    let mut total = [0i64; 3];
    for limit in limits {
        for (sum, max) in total
            .iter_mut()
            .zip([limit.instances, limit.cores, limit.ram])
        {
            if *sum >= 0 {
                *sum = if max < 0 { -1 } else { *sum + max };
            }
        }
    }
    total
}

/// The client's limit and use, and the pool's capacity in cores and RAM.
fn limits(call: &Call<'_>, principal: &Principal) -> warp::reply::Response {
    let live = live_instances(call, principal);
    let mut profiles: BTreeMap<String, Option<oms_actors::model::Profile>> = BTreeMap::new();
    let (mut cores, mut ram) = (0u64, 0u64);
    for instance in &live {
        let profile = profiles
            .entry(instance.profile.clone())
            .or_insert_with(|| call.api.fleet.profile(&instance.profile).ok().flatten());
        if let Some(p) = profile {
            cores += u64::from(p.min_vcpus);
            ram += p.min_ram_mb;
        }
    }
    // Regions another account's project holds, or disabled, take nothing.
    let regions = call.api.fleet.regions();
    let counted = regions
        .iter()
        .filter(|r| r.conflict.is_none() && r.enabled)
        .filter_map(|r| r.limit);
    let [instances, max_cores, max_ram] = pool_capacity(counted);
    // The client's own limit; without one, what the pool holds.
    let max = principal.instance_limit.map_or(instances, i64::from);
    answer(
        StatusCode::OK,
        &json!({"limits": {"rate": [], "absolute": {
            "maxTotalInstances": max, "totalInstancesUsed": live.len(),
            "maxTotalCores": max_cores, "totalCoresUsed": cores,
            "maxTotalRAMSize": max_ram, "totalRAMUsed": ram,
            "maxServerMeta": 128, "maxImageMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240,
            "maxTotalKeypairs": 100, "maxSecurityGroups": -1, "maxSecurityGroupRules": -1,
            "maxServerGroups": 0, "maxServerGroupMembers": 0, "maxTotalFloatingIps": 0,
            "totalFloatingIpsUsed": 0, "totalSecurityGroupsUsed": 0, "totalServerGroupsUsed": 0,
        }}}),
    )
}

/// Providers and `provider/region` as zones: a zone in a create pins the
/// launch there.
fn zones(call: &Call<'_>) -> warp::reply::Response {
    let regions = call.api.fleet.regions();
    let mut zones: BTreeMap<String, bool> = BTreeMap::new();
    for r in &regions {
        let up = r.enabled && r.health == oms_actors::status::RegionHealth::Healthy;
        *zones.entry(r.account.clone()).or_default() |= up;
        zones.insert(format!("{}/{}", r.account, r.region), up);
    }
    let listed: Vec<Value> = zones
        .iter()
        .map(|(name, up)| json!({"zoneName": name, "zoneState": {"available": up}, "hosts": null}))
        .collect();
    answer(StatusCode::OK, &json!({"availabilityZoneInfo": listed}))
}

/// The client's instance `id`, unless deleted (Nova forgets those).
fn own(call: &Call<'_>, principal: &Principal, id: &str) -> Option<Instance> {
    let instance = call.api.fleet.instance_alone(id).ok().flatten()?;
    (instance.client == principal.name && instance.state != InstanceState::Deleted)
        .then_some(instance)
}

fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Nova's status, task and vm states for ours.
fn states(state: InstanceState) -> (&'static str, Option<&'static str>, &'static str) {
    match state {
        InstanceState::Pending => ("BUILD", Some("scheduling"), "building"),
        InstanceState::Scheduled => ("BUILD", Some("scheduling"), "building"),
        InstanceState::Building => ("BUILD", Some("spawning"), "building"),
        InstanceState::Active => ("ACTIVE", None, "active"),
        InstanceState::Deleting => ("ACTIVE", Some("deleting"), "active"),
        InstanceState::Deleted => ("DELETED", None, "deleted"),
        InstanceState::Failed | InstanceState::Lost => ("ERROR", None, "error"),
    }
}

/// The tags the instance's request carries.
fn tags_of(call: &Call<'_>, i: &Instance) -> Vec<String> {
    call.api
        .fleet
        .request(&i.request_id)
        .ok()
        .flatten()
        .map(|r| r.tags)
        .unwrap_or_default()
}

/// What server views look up, read once per answer rather than once per
/// server: a listing of a thousand servers reads the store a few times,
/// not thousands.
struct Lookups {
    names: std::collections::HashMap<String, String>,
    profiles: BTreeMap<String, oms_actors::model::Profile>,
    keypairs: Vec<oms_actors::model::KeyPair>,
    requests: std::cell::RefCell<BTreeMap<String, Option<oms_actors::model::LaunchRequest>>>,
}

impl Lookups {
    fn new(call: &Call<'_>, principal: &Principal) -> Lookups {
        let fleet = &call.api.fleet;
        Lookups {
            names: fleet.account_names().unwrap_or_default(),
            profiles: fleet
                .profiles()
                .unwrap_or_default()
                .into_iter()
                .map(|p| (p.name.clone(), p))
                .collect(),
            keypairs: fleet.keypairs(&principal.name).unwrap_or_default(),
            requests: Default::default(),
        }
    }

    fn request(&self, call: &Call<'_>, id: &str) -> Option<oms_actors::model::LaunchRequest> {
        self.requests
            .borrow_mut()
            .entry(id.to_owned())
            .or_insert_with(|| call.api.fleet.request(id).ok().flatten())
            .clone()
    }
}

fn server(
    call: &Call<'_>,
    principal: &Principal,
    i: &Instance,
    minor: u32,
    seen: &Lookups,
) -> Value {
    let (status, task, vm) = states(i.state);
    let image = seen
        .profiles
        .get(&i.profile)
        .map(|p| p.image.clone())
        .unwrap_or_default();
    let image_id = stable_id("image", &image);
    let mut addresses = json!({});
    if let Some(address) = &i.address {
        let version = if address.contains(':') { 6 } else { 4 };
        addresses[NETWORK] = json!([{"version": version, "addr": address, "OS-EXT-IPS:type": "fixed",
                                      "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:00"}]);
    }
    let zone = i
        .attempt
        .as_ref()
        .map(|a| {
            let account = seen.names.get(&a.account_id).map_or("", String::as_str);
            format!("{account}/{}", a.region)
        })
        .unwrap_or_default();
    // What the request asked for: its metadata, and the key pair of the
    // client's whose public key it carries.
    let request = seen.request(call, &i.request_id);
    let metadata = request
        .as_ref()
        .map_or_else(|| json!({}), |r| json!(r.metadata));
    let key_name = request
        .as_ref()
        .and_then(|r| r.public_key.as_ref())
        .and_then(|key| {
            seen.keypairs
                .iter()
                .find(|k| k.public_key == *key)
                .map(|k| k.name.clone())
        });
    let mut server = json!({
        "id": i.id, "name": i.name, "status": status,
        "tenant_id": super::identity::project_id(principal),
        "user_id": super::identity::user_id(principal),
        "metadata": metadata, "hostId": "", "accessIPv4": "", "accessIPv6": "",
        "image": {"id": image_id, "links": [{"rel": "bookmark", "href": format!("{}/compute/images/{image_id}", call.base)}]},
        "flavor": {"id": i.profile, "links": [{"rel": "bookmark", "href": format!("{}/compute/flavors/{}", call.base, i.profile)}]},
        "addresses": addresses,
        "created": time(i.created_at), "updated": time(i.updated_at),
        "progress": if status == "ACTIVE" { 100 } else { 0 },
        "key_name": key_name, "config_drive": "", "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": zone,
        "OS-EXT-STS:task_state": task, "OS-EXT-STS:vm_state": vm,
        "OS-EXT-STS:power_state": if status == "ACTIVE" { 1 } else { 0 },
        "OS-SRV-USG:launched_at": null, "OS-SRV-USG:terminated_at": null,
        "os-extended-volumes:volumes_attached": [], "security_groups": [{"name": "default"}],
        "links": [{"rel": "self", "href": format!("{}/compute/v2.1/servers/{}", call.base, i.id)},
                  {"rel": "bookmark", "href": format!("{}/compute/servers/{}", call.base, i.id)}],
    });
    if minor >= 9 {
        server["locked"] = json!(false);
    }
    if minor >= 19 {
        server["description"] = Value::Null;
    }
    if minor >= 26 {
        server["tags"] = json!(request.as_ref().map(|r| r.tags.clone()).unwrap_or_default());
    }
    if minor >= 47
        && let Some(profile) = seen.profiles.get(&i.profile)
    {
        server["flavor"] = json!({"vcpus": profile.min_vcpus, "ram": profile.min_ram_mb,
            "disk": profile.min_disk_gb, "ephemeral": 0, "swap": 0,
            "original_name": profile.name, "extra_specs": {}});
    }
    if status == "ERROR" {
        let message = i
            .failure
            .clone()
            .unwrap_or_else(|| "the server vanished at its provider".into());
        server["fault"] = json!({"code": 500, "message": message, "created": time(i.updated_at)});
    }
    server
}

fn servers(
    call: &Call<'_>,
    principal: &Principal,
    detail: bool,
    minor: u32,
) -> warp::reply::Response {
    let seen = Lookups::new(call, principal);
    // Deleted servers are gone, except to a client asking what changed
    // since a time (Nova lists them DELETED then, so pollers see them go).
    let since = call.query("changes-since").is_some();
    let mut instances: Vec<Instance> = call
        .api
        .fleet
        .instances(&InstanceFilter {
            client: Some(principal.name.clone()),
            ..InstanceFilter::default()
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|i| since || i.state != InstanceState::Deleted)
        .collect();
    if let Some(name) = call.query("name") {
        // Nova's name filter is a regular expression; a substring covers
        // what clients send (an exact name, or a prefix).
        let name = name.trim_start_matches('^').trim_end_matches('$');
        instances.retain(|i| i.name.contains(name));
    }
    if let Some(status) = call.query("status") {
        instances.retain(|i| states(i.state).0.eq_ignore_ascii_case(status));
    }
    // Nova's tag filters (2.26): all of `tags`, any of `tags-any`.
    if minor >= 26 && (call.query("tags").is_some() || call.query("tags-any").is_some()) {
        let split = |k: &str| -> Vec<String> {
            call.query(k)
                .map(|t| t.split(',').map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let (all, any) = (split("tags"), split("tags-any"));
        instances.retain(|i| {
            let tags = seen
                .request(call, &i.request_id)
                .map(|r| r.tags)
                .unwrap_or_default();
            all.iter().all(|t| tags.contains(t))
                && (any.is_empty() || any.iter().any(|t| tags.contains(t)))
        });
    }
    if let Some(since) = call
        .query("changes-since")
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    {
        instances.retain(|i| i.updated_at >= since);
    }
    // Newest first, as Nova lists.
    instances.reverse();
    if let Some(marker) = call.query("marker") {
        match instances.iter().position(|i| i.id == marker) {
            Some(at) => {
                instances.drain(..=at);
            }
            None => return bad_request(&format!("marker [{marker}] not found")),
        }
    }
    if let Some(limit) = call.query("limit").and_then(|l| l.parse::<usize>().ok()) {
        instances.truncate(limit);
    }
    let listed: Vec<Value> = instances
        .iter()
        .map(|i| {
            if detail {
                server(call, principal, i, minor, &seen)
            } else {
                json!({"id": i.id, "name": i.name,
                       "links": [{"rel": "self", "href": format!("{}/compute/v2.1/servers/{}", call.base, i.id)}]})
            }
        })
        .collect();
    answer(StatusCode::OK, &json!({"servers": listed}))
}

async fn create(call: &Call<'_>, principal: &Principal, minor: u32) -> warp::reply::Response {
    let Some(body) = call.json() else {
        return bad_request("Malformed request body");
    };
    let s = &body["server"];
    let Some(name) = s["name"].as_str() else {
        return bad_request(
            "Invalid input for field/attribute server. Value: 'name' is a required property",
        );
    };
    let flavor = s["flavorRef"]
        .as_str()
        .map(|f| f.rsplit('/').next().unwrap_or(f).to_owned())
        .unwrap_or_default();
    let fleet = &call.api.fleet;
    let Some(profile) = fleet.profile(&flavor).ok().flatten() else {
        return bad_request(&format!("Flavor {flavor} could not be found."));
    };
    // An image other than the flavor's: the same minima with that image.
    let image = s["imageRef"]
        .as_str()
        .map(|i| i.rsplit('/').next().unwrap_or(i).to_owned());
    let profile_name = match image {
        Some(image)
            if !image.is_empty()
                && image != stable_id("image", &profile.image)
                && image != profile.image =>
        {
            let Some(name) = super::image::names(call)
                .into_iter()
                .find(|n| stable_id("image", n) == image || *n == image)
            else {
                return bad_request(&format!("Image {image} could not be found."));
            };
            match fleet
                .ad_hoc_profile(oms_actors::model::Profile {
                    name: String::new(),
                    image: name,
                    ..profile.clone()
                })
                .await
            {
                Ok(name) => name,
                Err(error) => return refused(error),
            }
        }
        _ => profile.name.clone(),
    };
    // The one network, by id or name; "auto" and "none" as Nova takes them.
    if let Some(networks) = s["networks"].as_array() {
        for network in networks {
            if network.get("port").is_some() {
                return bad_request(
                    "Ports cannot be given: the pool attaches each server to its provider's network.",
                );
            }
            if let Some(id) = network["uuid"].as_str()
                && id != stable_id("network", NETWORK)
                && id != NETWORK
            {
                return bad_request(&format!("Network {id} could not be found."));
            }
        }
    } else if let Some(choice) = s["networks"].as_str()
        && !matches!(choice, "auto" | "none")
    {
        return bad_request("Invalid input for field/attribute networks.");
    }
    let count = s["max_count"]
        .as_u64()
        .or(s["min_count"].as_u64())
        .unwrap_or(1);
    let user_data = match s["user_data"].as_str() {
        Some(encoded) => match base64::engine::general_purpose::STANDARD.decode(encoded) {
            Ok(bytes) => Some(bytes),
            Err(_) => return bad_request("User data needs to be valid base 64."),
        },
        None => None,
    };
    let metadata: BTreeMap<String, String> = s["metadata"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let mut hints = PlacementHints::default();
    if let Some(zone) = s["availability_zone"].as_str().filter(|z| !z.is_empty()) {
        match zone.split_once('/') {
            Some((provider, region)) => {
                hints.allow_providers = vec![provider.to_owned()];
                hints.allow_regions = vec![region.to_owned()];
            }
            None => hints.allow_providers = vec![zone.to_owned()],
        }
    }
    let public_key = match s["key_name"].as_str() {
        Some(name) => match fleet.keypair(&principal.name, name).ok().flatten() {
            Some(key) => Some(key.public_key),
            None => return bad_request("Invalid key_name provided."),
        },
        None => None,
    };
    let tags: Vec<String> = match s.get("tags") {
        None => Vec::new(),
        Some(_) if minor < 52 => {
            return bad_request(
                "Invalid input for field/attribute server. Additional properties are not allowed ('tags' was unexpected)",
            );
        }
        Some(tags) => match tags.as_array() {
            Some(tags) => tags
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
            None => return bad_request("Invalid input for field/attribute tags."),
        },
    };
    let ask = NewLaunch {
        client: principal.name.clone(),
        tags,
        public_key,
        profile: profile_name,
        count: u32::try_from(count).unwrap_or(u32::MAX),
        name_prefix: Some(name.to_owned()),
        exact_name: true,
        user_data,
        metadata,
        hints,
        instance_limit: principal.instance_limit,
        ..NewLaunch::default()
    };
    if let Err(why) = ask.check_shape() {
        return bad_request(&why);
    }
    match fleet.launch(ask).await {
        Ok(launched) => {
            let Some(first) = launched.instances.first() else {
                return refused(FleetError::Invalid("nothing launched".into()));
            };
            let mut response = answer(
                StatusCode::ACCEPTED,
                &json!({"server": {"id": first.id, "links": [
                    {"rel": "self", "href": format!("{}/compute/v2.1/servers/{}", call.base, first.id)}],
                    "OS-DCF:diskConfig": "MANUAL", "security_groups": [{"name": "default"}],
                    "adminPass": ""}}),
            );
            if let Ok(location) = warp::http::HeaderValue::from_str(&format!(
                "{}/compute/v2.1/servers/{}",
                call.base, first.id
            )) {
                response
                    .headers_mut()
                    .insert(warp::http::header::LOCATION, location);
            }
            response
        }
        Err(error) => refused(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_actors::ledger::Footprint;

    fn limit(instances: i64, cores: i64, ram: i64) -> Footprint {
        Footprint {
            instances,
            cores,
            ram,
        }
    }

    #[test]
    fn the_pool_capacity_sums_regions_and_one_unlimited_makes_it_unlimited() {
        assert_eq!(
            pool_capacity([limit(20, 40, 1000), limit(10, 8, 500)]),
            [30, 48, 1500]
        );
        assert_eq!(
            pool_capacity([limit(20, 40, 1000), limit(10, -1, 500), limit(5, 4, 100)]),
            [35, -1, 1600]
        );
        assert_eq!(pool_capacity([]), [0, 0, 0]);
    }
}
