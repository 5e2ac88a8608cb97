//! `/v1/profiles`: list and show (any client); create, replace and
//! delete (admin). A create of a name that exists is a conflict: only a
//! PUT to the profile's own path replaces it.

use oms_actors::model::Profile;
use serde::Deserialize;
use warp::http::StatusCode;

use crate::body;
use crate::error::ApiError;
use crate::router::Call;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfileBody {
    name: String,
    min_vcpus: u32,
    min_ram_mb: u64,
    min_disk_gb: u64,
    image: String,
    #[serde(default = "default_boot_timeout")]
    boot_timeout_secs: u64,
}

fn default_boot_timeout() -> u64 {
    600
}

/// `GET /v1/profiles`.
pub(crate) fn list(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let profiles = call.api.fleet.profiles()?;
    Ok(crate::json_response(
        StatusCode::OK,
        &crate::views::Profiles { profiles },
    ))
}

impl ProfileBody {
    fn into_profile(self) -> Profile {
        Profile {
            name: self.name,
            min_vcpus: self.min_vcpus,
            min_ram_mb: self.min_ram_mb,
            min_disk_gb: self.min_disk_gb,
            image: self.image,
            boot_timeout_secs: self.boot_timeout_secs,
        }
    }
}

/// `GET /v1/profiles/{name}`.
pub(crate) fn get(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let name = &call.params[0];
    let profile = call
        .api
        .fleet
        .profile(name)?
        .ok_or_else(|| ApiError::not_found(format!("no profile {name}")))?;
    Ok(crate::json_response(StatusCode::OK, &profile))
}

/// `POST /v1/profiles`: a new profile.
pub(crate) async fn create(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let profile = body::json::<ProfileBody>(call)?.into_profile();
    call.api.fleet.add_profile(profile.clone()).await?;
    Ok(crate::json_response(StatusCode::CREATED, &profile))
}

/// `PUT /v1/profiles/{name}`: creates or replaces; the body's name is the
/// path's.
pub(crate) async fn put(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let profile = body::json::<ProfileBody>(call)?.into_profile();
    if profile.name != call.params[0] {
        return Err(ApiError::invalid(
            "name: the body's name must be the one in the path",
        ));
    }
    let existed = call.api.fleet.profile(&profile.name)?.is_some();
    call.api.fleet.put_profile(profile.clone()).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(crate::json_response(status, &profile))
}

/// `DELETE /v1/profiles/{name}`.
pub(crate) async fn delete(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    call.api.fleet.remove_profile(&call.params[0]).await?;
    Ok(crate::no_content())
}
