//! `GET /v1/cluster`: the members, the leader and its lease, as this
//! daemon reads them from etcd.

use warp::http::StatusCode;

use crate::error::ApiError;
use crate::router::Call;

/// The cluster's status; 404 for a daemon that runs alone.
pub(crate) async fn status(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let Some(cluster) = call.api.fleet.cluster() else {
        return Err(ApiError::not_found(
            "this daemon runs alone (store backend sled): it has no cluster",
        ));
    };
    let status = cluster
        .status()
        .await
        .map_err(|why| ApiError::unavailable(format!("cannot read the cluster: {why}")))?;
    Ok(crate::json_response(StatusCode::OK, &status))
}
