//! `/v1/tokens` (admin): create (the value is shown once), list, revoke.

use oms_actors::model::Role;
use oms_actors::tokens::NewToken;
use secrecy::ExposeSecret;
use serde::Deserialize;
use warp::http::StatusCode;

use crate::body;
use crate::error::ApiError;
use crate::router::Call;
use crate::views;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenBody {
    name: String,
    role: Role,
    instance_limit: Option<u32>,
    /// Id of the earlier token of this name that this one rotates.
    continues: Option<String>,
}

/// `GET /v1/tokens`.
pub(crate) fn list(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let tokens = call.api.fleet.tokens()?;
    Ok(crate::json_response(
        StatusCode::OK,
        &views::Tokens {
            tokens: tokens.iter().map(views::token).collect(),
        },
    ))
}

/// `POST /v1/tokens`.
pub(crate) async fn create(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    let body: TokenBody = body::json(call)?;
    let (token, value) = call
        .api
        .fleet
        .issue_token(NewToken {
            name: body.name,
            role: body.role,
            instance_limit: body.instance_limit,
            continues: body.continues,
        })
        .await?;
    let mut view = views::token(&token);
    view.token = Some(value.expose_secret());
    Ok(crate::json_response(StatusCode::CREATED, &view))
}

/// `DELETE /v1/tokens/{id}`.
pub(crate) async fn revoke(call: &Call<'_>) -> Result<warp::reply::Response, ApiError> {
    call.api.fleet.revoke_token(&call.params[0]).await?;
    Ok(crate::no_content())
}
