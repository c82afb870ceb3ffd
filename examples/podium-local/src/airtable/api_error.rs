//! Airtable-shaped error answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The message Airtable gives for an unknown base or table, or a token without the scope or
/// the access a call needs (<https://airtable.com/developers/web/api/errors>, "403 Forbidden").
const MODEL_NOT_FOUND: &str = "Invalid permissions, or the requested model was not found. Check that both your user and your token have the required permissions, and that the model names and/or ids are correct.";

/// An error answer of the REST API.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ApiError {
    /// 401: no or wrong `Authorization: Bearer` key.
    Unauthorized,
    /// 429: over the per-base limit.
    RateLimited,
    /// 404 `{"error":"NOT_FOUND"}`: unknown record id or route ("the resource doesn't exist
    /// (e.g. has been deleted)", <https://airtable.com/developers/web/api/errors>; the plain
    /// string body is what airtable.js's own test server answers, `test/test_helpers.js`).
    NotFound,
    /// 403 `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`: an unknown base or table, or a token
    /// without the scope the call needs. Airtable does not tell these apart ("You don't have
    /// the right permission for the resource, or the resource was not found",
    /// <https://airtable.com/developers/web/api/errors>).
    Forbidden,
    /// 422: malformed body or parameters.
    InvalidRequest,
    /// 422: too many or too few records in a batch.
    InvalidRecords(String),
    /// 422: `fields[]` or `sort` names a field the table does not have.
    UnknownField(String),
    /// 422: `filterByFormula` does not parse.
    InvalidFormula(String),
    /// 422: the `offset` is not a live iterator.
    IteratorNotAvailable,
    /// 422 `TOO_MANY_WEBHOOKS_IN_BASE`: the base already has its 10 webhooks ("The number of
    /// webhooks per base is limited to 10", <https://airtable.com/developers/web/api/create-a-webhook>).
    TooManyWebhooks,
    /// 414: a list request's URL is longer than Airtable's 16,000 characters
    /// (<https://support.airtable.com/docs/enforcement-of-url-length-limit-for-web-api-requests>).
    /// The article gives no status or body; 414 URI Too Long is HTTP's own answer for it
    /// (RFC 9110, section 15.5.15).
    UrlTooLong,
    /// An injected fault with this status.
    Injected(u16),
}

impl ApiError {
    fn status_and_body(&self) -> (StatusCode, Value) {
        let typed =
            |kind: &str, message: &str| json!({"error": {"type": kind, "message": message}});
        match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                typed("AUTHENTICATION_REQUIRED", "Authentication required"),
            ),
            ApiError::RateLimited => (StatusCode::TOO_MANY_REQUESTS, rate_limit_body()),
            ApiError::NotFound => (StatusCode::NOT_FOUND, json!({"error": "NOT_FOUND"})),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                typed("INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", MODEL_NOT_FOUND),
            ),
            ApiError::InvalidRequest => (
                StatusCode::UNPROCESSABLE_ENTITY,
                typed(
                    "INVALID_REQUEST_UNKNOWN",
                    "Invalid request: parameter validation failed. Check your request data.",
                ),
            ),
            ApiError::InvalidRecords(message) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                typed("INVALID_RECORDS", message),
            ),
            ApiError::UnknownField(name) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                typed("UNKNOWN_FIELD_NAME", &format!("Unknown field name: \"{name}\"")),
            ),
            ApiError::InvalidFormula(detail) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                typed(
                    "INVALID_FILTER_BY_FORMULA",
                    &format!("The formula for filtering records is invalid: {detail}"),
                ),
            ),
            ApiError::IteratorNotAvailable => (
                StatusCode::UNPROCESSABLE_ENTITY,
                typed(
                    "LIST_RECORDS_ITERATOR_NOT_AVAILABLE",
                    "The offset is not valid (it may have expired); start listing from the beginning.",
                ),
            ),
            ApiError::TooManyWebhooks => (
                StatusCode::UNPROCESSABLE_ENTITY,
                typed(
                    "TOO_MANY_WEBHOOKS_IN_BASE",
                    "A base can have at most 10 webhooks. Delete one before creating another.",
                ),
            ),
            ApiError::UrlTooLong => (
                StatusCode::URI_TOO_LONG,
                typed(
                    "INVALID_REQUEST_URL_TOO_LONG",
                    "The URL is longer than 16,000 characters; list with POST …/listRecords instead.",
                ),
            ),
            ApiError::Injected(status) => injected(*status),
        }
    }
}

/// The body Airtable sends with a 429.
pub(crate) fn rate_limit_body() -> Value {
    json!({"errors": [{
        "error": "RATE_LIMIT_REACHED",
        "message": "Rate limit exceeded. Please try again later"
    }]})
}

/// An Airtable-shaped answer for an injected status.
fn injected(status: u16) -> (StatusCode, Value) {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let typed = |kind: &str, message: &str| json!({"error": {"type": kind, "message": message}});
    let body = match code.as_u16() {
        429 => rate_limit_body(),
        401 => typed("AUTHENTICATION_REQUIRED", "Authentication required"),
        403 => typed("INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", MODEL_NOT_FOUND),
        404 => json!({"error": "NOT_FOUND"}),
        422 => typed(
            "INVALID_REQUEST_UNKNOWN",
            "Invalid request: parameter validation failed. Check your request data.",
        ),
        502 => typed("BAD_GATEWAY", "Bad gateway (injected fault)"),
        503 => typed(
            "SERVICE_UNAVAILABLE",
            "The service is temporarily unavailable (injected fault)",
        ),
        504 => typed("GATEWAY_TIMEOUT", "Gateway timeout (injected fault)"),
        _ => typed(
            "SERVER_ERROR",
            "Try again. If the problem persists, contact support. (injected fault)",
        ),
    };
    (code, body)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        (status, Json(body)).into_response()
    }
}
