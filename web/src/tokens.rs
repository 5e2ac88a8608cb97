//! `/v1/tokens` (admin): create (the value is shown once), list, revoke.

use oms_actors::model::Role;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use crate::auth::create_token;
use crate::body;
use crate::error::ApiError;
use crate::router::Call;
use crate::views;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    role: Role,
    instance_limit: Option<u32>,
}

/// `GET /v1/tokens`.
pub(crate) fn list(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let tokens = call.api.fleet.store().list_tokens()?;
    Ok(crate::json_response(
        StatusCode::OK,
        &json!({"tokens": tokens.iter().map(views::token).collect::<Vec<_>>()}),
    ))
}

/// `POST /v1/tokens`.
pub(crate) async fn create(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let body: TokenBody = body::json(call)?;
    let name_ok = !body.name.is_empty()
        && body.name.len() <= 64
        && body
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(ApiError::invalid("name: 1 to 64 of letters, digits, - _ ."));
    }
    let (token, value) = create_token(
        call.api.fleet.store().as_ref(),
        &body.name,
        body.role,
        body.instance_limit,
    )
    .await?;
    let mut view = views::token(&token);
    view["token"] = json!(value.expose_secret());
    Ok(crate::json_response(StatusCode::CREATED, &view))
}

/// `DELETE /v1/tokens/{id}`.
pub(crate) async fn revoke(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let store = call.api.fleet.store();
    let id = &call.params[0];
    let mut token = store
        .list_tokens()?
        .into_iter()
        .find(|t| t.id == *id)
        .ok_or_else(|| ApiError::not_found(format!("token {id} not found")))?;
    token.revoked = true;
    store.put_token(&token)?;
    store.flush().await?;
    let mut response = warp::reply::Response::new(Vec::<u8>::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}
