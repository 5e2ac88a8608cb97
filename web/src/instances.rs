//! `/v1/instances`: launch, list, show, delete. Clients see and touch only
//! their own instances; another client's instance is a 404.

use std::collections::BTreeMap;

use oms_actors::NewLaunch;
use oms_actors::model::{InstanceState, PlacementHints, Profile};
use oms_actors::store::InstanceFilter;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use warp::http::StatusCode;

use crate::body;
use crate::error::ApiError;
use crate::router::Call;
use crate::views;

/// Largest cloud-init payload, raw bytes (Nova allows 65535 encoded).
const MAX_USER_DATA: usize = 48 * 1024;
/// Most metadata entries a client may set (Nova allows 128, we add some).
const MAX_METADATA: usize = 100;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Constraints {
    min_vcpus: u32,
    min_ram_mb: u64,
    min_disk_gb: u64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LaunchBody {
    profile: Option<String>,
    flavor: Option<Constraints>,
    image: Option<String>,
    #[serde(default = "one")]
    count: u32,
    name_prefix: Option<String>,
    user_data: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    public_key: Option<String>,
    /// Without `public_key`: generate a key pair and answer its private
    /// key once (the default), or boot with no key at all (`false`).
    #[serde(default = "yes")]
    generate_key: bool,
    #[serde(default)]
    placement: PlacementHints,
    expires_in: Option<u64>,
    deadline: Option<u64>,
    max_attempts: Option<u32>,
    #[serde(default)]
    replace_lost: bool,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The profile named by the body, or an ad-hoc one for explicit
/// constraints (stored so regions can resolve it).
async fn profile_for(call: &Call<'_>, launch: &LaunchBody) -> Result<String, ApiError> {
    match (&launch.profile, &launch.flavor, &launch.image) {
        (Some(name), None, None) => {
            if call.api.fleet.profile(name)?.is_none() {
                return Err(ApiError::invalid(format!("unknown profile {name:?}")));
            }
            Ok(name.clone())
        }
        (None, Some(c), Some(image)) => Ok(call
            .api
            .fleet
            .ad_hoc_profile(Profile {
                name: String::new(),
                min_vcpus: c.min_vcpus,
                min_ram_mb: c.min_ram_mb,
                min_disk_gb: c.min_disk_gb,
                image: image.clone(),
                boot_timeout_secs: 600,
            })
            .await?),
        _ => Err(ApiError::invalid(
            "give either `profile`, or both `flavor` (min_vcpus, min_ram_mb, min_disk_gb) and `image`",
        )),
    }
}

fn validate(call: &Call<'_>, launch: &LaunchBody) -> Result<(), ApiError> {
    let max = call.api.config.max_count;
    if launch.count == 0 || launch.count > max {
        return Err(ApiError::invalid(format!(
            "count must be between 1 and {max}"
        )));
    }
    if let Some(prefix) = &launch.name_prefix
        && !valid_name(prefix)
    {
        return Err(ApiError::invalid("name_prefix: 1 to 40 of a-z, 0-9 and -"));
    }
    if let Some(profile) = &launch.profile {
        oms_actors::bounds::name("profile", profile).map_err(ApiError::invalid)?;
    }
    if launch
        .user_data
        .as_ref()
        .is_some_and(|u| u.len() > MAX_USER_DATA)
    {
        return Err(ApiError::invalid(format!(
            "user_data larger than {MAX_USER_DATA} bytes"
        )));
    }
    if launch.metadata.len() > MAX_METADATA {
        return Err(ApiError::invalid(format!(
            "at most {MAX_METADATA} metadata entries"
        )));
    }
    for (key, value) in &launch.metadata {
        if key.is_empty() || key.len() > 255 || value.len() > 255 {
            return Err(ApiError::invalid(
                "metadata keys and values: 1 to 255 characters",
            ));
        }
        if key.starts_with("oms-") {
            return Err(ApiError::invalid(
                "metadata keys starting with oms- are reserved",
            ));
        }
    }
    if let Some(key) = &launch.public_key
        && !crate::keys::one_public_key(key)
    {
        return Err(ApiError::invalid(
            "public_key: exactly one OpenSSH public key, on one line",
        ));
    }
    Ok(())
}

/// `POST /v1/instances`.
pub(crate) async fn launch(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let principal = call.principal().clone();
    let raw = body::value(call)?;
    // Same key and same body: compare what the client sent, canonically.
    let digest: String = Sha256::digest(raw.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let launch: LaunchBody = body::shape(raw)?;
    validate(call, &launch)?;
    let key = match call.headers.get("Idempotency-Key") {
        Some(value) => {
            let key = value
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    ApiError::bad_request("Idempotency-Key must be 1 to 255 visible characters")
                })?;
            Some(key.to_owned())
        }
        None => None,
    };
    let (public_key, private_key) = match &launch.public_key {
        Some(key) => (Some(key.trim_end().to_owned()), None),
        None if !launch.generate_key => (None, None),
        None => {
            let (public, private) =
                crate::keys::generate_key(&format!("openmultistack-{}", principal.name))?;
            (Some(public), Some(private))
        }
    };
    let mut ask = NewLaunch {
        client: principal.name.clone(),
        idempotency_key: key,
        profile: String::new(),
        count: launch.count,
        name_prefix: launch.name_prefix.clone(),
        exact_name: false,
        tags: Vec::new(),
        user_data: launch.user_data.clone().map(String::into_bytes),
        metadata: launch.metadata.clone(),
        public_key,
        hints: launch.placement.clone(),
        expires_in_secs: launch.expires_in,
        deadline_secs: launch.deadline,
        max_attempts: launch.max_attempts,
        replace_lost: launch.replace_lost,
        body_digest: Some(digest),
        instance_limit: principal.instance_limit,
    };
    // Everything is checked before an ad-hoc profile is stored.
    ask.check_shape().map_err(ApiError::invalid)?;
    ask.profile = profile_for(call, &launch).await?;
    let launched = call.api.fleet.launch(ask).await?;
    let names = call.api.fleet.account_names()?;
    let request = &launched.request;
    let answer = views::Launched {
        request: views::RequestView {
            id: &request.id,
            profile: &request.profile,
            count: request.count,
            deadline: request.deadline,
            replace_lost: request.replace_lost,
            created_at: request.created_at,
        },
        instances: launched
            .instances
            .iter()
            .map(|i| views::instance(i, &names))
            .collect(),
        replayed: launched.replayed,
        private_key: private_key
            .as_ref()
            .filter(|_| !launched.replayed)
            .map(|p| p.expose_secret()),
    };
    let mut response = crate::json_response(StatusCode::ACCEPTED, &answer);
    if launched.replayed {
        response.headers_mut().insert(
            "Idempotent-Replayed",
            warp::http::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// `GET /v1/instances`.
pub(crate) fn list(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let principal = call.principal();
    let fleet = &call.api.fleet;
    let names = fleet.account_names()?;
    let states = match call.query("status") {
        Some(statuses) => statuses
            .split(',')
            .map(|status| {
                serde_json::from_value::<InstanceState>(json!(status)).map_err(|_| {
                    ApiError::bad_request(
                        "status: one or more (comma-separated) of pending, scheduled, \
                         building, active, deleting, deleted, failed, lost",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let account_id = call
        .query("provider")
        .map(|name| views::account_id_named(&names, name));
    let client = if principal.is_admin() {
        call.query("client").map(str::to_owned)
    } else {
        Some(principal.name.clone())
    };
    let limit = match call.query("limit") {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=call.api.config.max_page).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request(format!("limit must be 1 to {}", call.api.config.max_page))
            })?,
        None => 50,
    };
    let filter = InstanceFilter {
        client,
        states,
        account_id,
        region: call.query("region").map(str::to_owned),
        profile: call.query("profile").map(str::to_owned),
        request_id: call.query("request").map(str::to_owned),
        name_contains: call.query("name").map(str::to_owned),
        after: call.query("cursor").map(str::to_owned),
        limit: limit + 1,
    };
    let mut instances = fleet.instances(&filter)?;
    let more = instances.len() > limit;
    instances.truncate(limit);
    let next = more
        .then(|| instances.last().map(|i| i.id.clone()))
        .flatten();
    Ok(crate::json_response(
        StatusCode::OK,
        &views::InstancePage {
            instances: instances
                .iter()
                .map(|i| views::instance(i, &names))
                .collect(),
            next_cursor: next,
        },
    ))
}

/// The instance `id` if the caller may see it.
fn visible(
    call: &Call<'_>,
    id: &str,
) -> Result<(oms_actors::model::Instance, Vec<oms_actors::model::Event>), ApiError> {
    let principal = call.principal();
    match call.api.fleet.instance(id)? {
        Some((instance, events)) if principal.is_admin() || instance.client == principal.name => {
            Ok((instance, events))
        }
        _ => Err(ApiError::not_found(format!("instance {id} not found"))),
    }
}

/// `GET /v1/instances/{id}`.
pub(crate) fn get(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let (instance, events) = visible(call, &call.params[0])?;
    let names = call.api.fleet.account_names()?;
    let view = views::InstanceDetail {
        instance: views::instance(&instance, &names),
        events: events.iter().map(views::event).collect(),
    };
    Ok(crate::json_response(StatusCode::OK, &view))
}

/// `DELETE /v1/instances/{id}`.
pub(crate) async fn delete(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let (instance, _) = visible(call, &call.params[0])?;
    let instance = if instance.state.is_terminal() {
        instance
    } else {
        call.api.fleet.delete(&instance.id).await?
    };
    let names = call.api.fleet.account_names()?;
    Ok(crate::json_response(
        StatusCode::ACCEPTED,
        &views::instance(&instance, &names),
    ))
}
