//! `GET /limits` and the admin quota sets.

use serde_json::{Value, json};

use crate::http::{Reply, Request};
use crate::nova::{Call, bad_request, fault};

pub(crate) fn limits(call: &mut Call<'_>) -> Reply {
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

pub(crate) fn forbidden_unless_admin(call: &Call<'_>) -> Option<Reply> {
    (!call.user.admin).then(|| {
        fault(
            403,
            "forbidden",
            "Policy doesn't allow os_compute_api:os-quota-sets:update to be performed.",
        )
    })
}

pub(crate) fn quota_detail(call: &mut Call<'_>, project: &str) -> Reply {
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

pub(crate) fn set_quota(call: &mut Call<'_>, project: &str, request: &Request) -> Reply {
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

pub(crate) fn reset_quota(call: &mut Call<'_>, project: &str) -> Reply {
    if let Some(refused) = forbidden_unless_admin(call) {
        return refused;
    }
    call.region().quotas.remove(project);
    Reply::empty(202, "application/json")
}
