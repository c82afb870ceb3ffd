//! `GET /v0/meta/whoami`: the user and scopes of the calling token.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::shared::Shared;

/// The routes of this module, merged into the server's router.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/v0/meta/whoami", get(whoami))
}

/// `GET /v0/meta/whoami`: "No scopes are required for this endpoint"
/// (<https://airtable.com/developers/web/api/get-user-id-scopes>, "Requirements"). It is not
/// addressed to a base, so it is counted in the overall `total` only and no base's rate limit
/// applies (Airtable limits it per token, 50 a second:
/// <https://airtable.com/developers/web/api/rate-limits>; not enforced here).
async fn whoami(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    match shared.authenticate(&headers) {
        Ok(token) => Json(token.whoami()).into_response(),
        Err(error) => error.into_response(),
    }
}
