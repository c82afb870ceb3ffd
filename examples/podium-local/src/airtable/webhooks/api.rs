//! What every webhook and schema handler shares: the state it is given and how a result
//! becomes a response.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use crate::airtable::api_error::ApiError;
use crate::airtable::shared::Shared;
use crate::airtable::store::Store;

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
