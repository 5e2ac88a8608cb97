//! Neutron, read-only: the one façade network (`oms`) with one subnet, so
//! `openstack server create --network oms` and address lookups find what
//! they look for; everything a client could create is Neutron's 501.

use serde_json::{Value, json};
use warp::http::{Method, StatusCode};

use super::{Call, NETWORK, answer, stable_id};

fn network(call: &Call<'_>) -> Value {
    json!({
        "id": stable_id("network", NETWORK), "name": NETWORK, "status": "ACTIVE", "admin_state_up": true,
        "shared": true, "external": false, "router:external": false, "mtu": 1500,
        "subnets": [stable_id("subnet", NETWORK)], "tenant_id": "", "project_id": "",
        "availability_zones": [], "availability_zone_hints": [], "port_security_enabled": true,
        "description": format!("every provider's network, as one; reached at {}", call.base),
        "tags": [], "is_default": true, "ipv4_address_scope": null, "ipv6_address_scope": null,
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "revision_number": 1,
    })
}

fn not_found() -> warp::reply::Response {
    answer(
        StatusCode::NOT_FOUND,
        &json!({"NeutronError": {"type": "HTTPNotFound", "message": "The resource could not be found.", "detail": ""}}),
    )
}

pub(super) fn handle(call: &Call<'_>) -> warp::reply::Response {
    match (&call.method, call.segments.as_slice()) {
        (&Method::GET, []) => {
            return answer(
                StatusCode::OK,
                &json!({"versions": [{"id": "v2.0", "status": "CURRENT",
                    "links": [{"rel": "self", "href": format!("{}/network/v2.0/", call.base)}]}]}),
            );
        }
        (&Method::GET, ["v2.0"]) => {
            return answer(
                StatusCode::OK,
                &json!({"resources": [{"name": "network", "collection": "networks",
                    "links": [{"rel": "self", "href": format!("{}/network/v2.0/networks", call.base)}]}]}),
            );
        }
        _ => {}
    }
    if call.principal().is_none() {
        return answer(
            StatusCode::UNAUTHORIZED,
            &json!({"NeutronError": {"type": "HTTPUnauthorized", "message": "Authentication required", "detail": ""}}),
        );
    }
    let id = stable_id("network", NETWORK);
    match (&call.method, call.segments.as_slice()) {
        (&Method::GET, ["v2.0", "networks"]) => {
            let matches = call.query("name").is_none_or(|n| n == NETWORK)
                && call.query("id").is_none_or(|i| i == id);
            let listed: Vec<Value> = if matches {
                vec![network(call)]
            } else {
                Vec::new()
            };
            answer(StatusCode::OK, &json!({"networks": listed}))
        }
        (&Method::GET, ["v2.0", "networks", wanted]) if *wanted == id || *wanted == NETWORK => {
            answer(StatusCode::OK, &json!({"network": network(call)}))
        }
        (&Method::GET, ["v2.0", "subnets"]) => answer(
            StatusCode::OK,
            &json!({"subnets": [{"id": stable_id("subnet", NETWORK), "name": NETWORK, "network_id": id,
                "ip_version": 4, "cidr": "0.0.0.0/0", "enable_dhcp": true, "gateway_ip": null,
                "allocation_pools": [], "dns_nameservers": [], "host_routes": [], "tags": []}]}),
        ),
        (&Method::GET, ["v2.0", "extensions"]) => {
            answer(StatusCode::OK, &json!({"extensions": []}))
        }
        (
            &Method::GET,
            [
                "v2.0",
                "ports" | "floatingips" | "security-groups" | "availability_zones" | "routers",
            ],
        ) => {
            let key = call.segments[1].replace('-', "_");
            answer(StatusCode::OK, &json!({ key: [] }))
        }
        (&Method::GET, _) => not_found(),
        _ => answer(
            StatusCode::NOT_IMPLEMENTED,
            &json!({"NeutronError": {"type": "HTTPNotImplemented",
                "message": "OpenMultiStack's network is read-only: see the compatibility matrix in its README.", "detail": ""}}),
        ),
    }
}
