//! What every webhook and schema handler shares: the state it is given and how a result
//! becomes a response.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use crate::airtable::api_error::ApiError;
use crate::airtable::shared::Shared;
use crate::airtable::store::Store;
use crate::airtable::tokens::Token;

pub(super) type AppState = State<Arc<Shared>>;

pub(super) fn respond(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(error) => error.into_response(),
    }
}

pub(super) fn base_exists(store: &Store, base: &str) -> Result<(), ApiError> {
    if store.base_ids().iter().any(|b| b == base) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Lets a call through the gate every call passes (key, `scope`, the base's rate limit,
/// latency, injected faults) and gives its token, or the answer that refuses it.
pub(super) async fn gate(
    shared: &Shared,
    base: &str,
    scope: &'static str,
    headers: &HeaderMap,
) -> Result<Token, Response> {
    shared
        .gate_with(base, |_| {}, &[scope], headers)
        .await
        .map_err(IntoResponse::into_response)
}
