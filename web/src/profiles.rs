//! `/v1/profiles`: list (any client), create or replace (admin).

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

/// `POST /v1/profiles`.
pub(crate) async fn put(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let p: ProfileBody = body::json(call)?;
    let profile = Profile {
        name: p.name,
        min_vcpus: p.min_vcpus,
        min_ram_mb: p.min_ram_mb,
        min_disk_gb: p.min_disk_gb,
        image: p.image,
        boot_timeout_secs: p.boot_timeout_secs,
    };
    call.api.fleet.put_profile(profile.clone()).await?;
    Ok(crate::json_response(StatusCode::CREATED, &profile))
}
