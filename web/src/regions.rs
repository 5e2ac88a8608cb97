//! `/v1/regions` and readiness.

use warp::http::StatusCode;

use crate::error::ApiError;
use crate::router::Call;
use crate::views;

/// `GET /v1/regions`: every account-region's latest status, and how every
/// account stands (one that fails to authenticate has no region to show).
pub(crate) fn list(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let statuses = call.api.fleet.account_statuses()?;
    Ok(crate::json_response(
        StatusCode::OK,
        &views::Regions {
            regions: call.api.fleet.regions(),
            accounts: statuses.iter().map(views::account_status).collect(),
        },
    ))
}

/// `GET /readyz`: the store answers and the actor tree runs.
pub(crate) async fn ready(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    call.api.fleet.profiles()?;
    if !call.api.fleet.ready().await {
        return Err(ApiError::unavailable("actor tree not running"));
    }
    Ok(crate::json_response(
        StatusCode::OK,
        &views::Health { status: "ready" },
    ))
}
