//! Read handlers' answers: [`Found`] turns what a cache read returned into the response an API
//! gives (the record as JSON, 404, or the error's status), and [`Failure`] is a cache error as
//! a response.
//!
//! | the read returned | the response |
//! |---|---|
//! | `Ok(Some(record))` | 200, the record as JSON |
//! | `Ok(None)` | 404 `{"error": "not found"}` |
//! | `Err(TooManyMisses)` | 429 `{"error": "too many requests", "retry_after": s}` with `Retry-After` |
//! | `Err(Source(RateLimited))`, `Err(Source(Transient))`, `Err(Store)` | 503 with `Retry-After` |
//! | any other error (Airtable refused, a record that does not fit the model) | 502 |
//!
//! ```
//! use axum::{extract::{Path, State}, routing::get, Router};
//! use podium_cache_core::{Cache, Cacheable};
//! use podium_cache_tower::Found;
//!
//! async fn by_id<T: Cacheable>(State(cache): State<Cache>, Path(id): Path<String>) -> Found<T> {
//!     cache.get::<T>(&id).await.into()
//! }
//! ```

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderValue, StatusCode};
use podium_cache_core::source::SourceError;
use podium_cache_core::CacheError;
use serde::Serialize;
use serde_json::json;

/// What a cache read returned, as a response (see the [module](self) table).
#[derive(Debug)]
pub struct Found<T>(pub Result<Option<T>, CacheError>);

impl<T> From<Result<Option<T>, CacheError>> for Found<T> {
    fn from(read: Result<Option<T>, CacheError>) -> Self {
        Self(read)
    }
}

impl<T: Serialize> IntoResponse for Found<T> {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(Some(record)) => Json(record).into_response(),
            Ok(None) => {
                (StatusCode::NOT_FOUND, Json(json!({ "error": "not found" }))).into_response()
            }
            Err(error) => Failure(error).into_response(),
        }
    }
}

/// A cache error as a response (see the [module](self) table); logged at `warn` (a refused
/// client's 429 at `debug` only, since a flooding client makes many).
///
/// ```
/// use axum::response::IntoResponse;
/// use podium_cache_core::CacheError;
/// use podium_cache_tower::Failure;
///
/// let refused = CacheError::TooManyMisses { retry_after: std::time::Duration::from_millis(1500) };
/// let response = Failure(refused).into_response();
/// assert_eq!(response.status(), 429);
/// assert_eq!(response.headers()["retry-after"], "2");
/// ```
#[derive(Debug)]
pub struct Failure(pub CacheError);

impl From<CacheError> for Failure {
    fn from(error: CacheError) -> Self {
        Self(error)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        if let CacheError::TooManyMisses { retry_after } = &self.0 {
            return too_many_misses(*retry_after);
        }
        let (status, retry) = match &self.0 {
            CacheError::Source(err) => match err.as_ref() {
                SourceError::RateLimited(_) => (StatusCode::SERVICE_UNAVAILABLE, Some("30")),
                SourceError::Transient(_) => (StatusCode::SERVICE_UNAVAILABLE, Some("5")),
                SourceError::NotFound(_) => (StatusCode::NOT_FOUND, None),
                _ => (StatusCode::BAD_GATEWAY, None),
            },
            CacheError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, Some("5")),
            CacheError::UnknownIndex { .. } => (StatusCode::INTERNAL_SERVER_ERROR, None),
            _ => (StatusCode::BAD_GATEWAY, None),
        };
        tracing::warn!(error = %self.0, status = status.as_u16(), "cache read failed");
        let mut response = (status, Json(json!({ "error": self.0.to_string() }))).into_response();
        if let Some(seconds) = retry {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        response
    }
}

/// 429 for a client with too many misses outstanding: `Retry-After` in whole seconds (at least
/// one).
fn too_many_misses(retry_after: Duration) -> Response {
    let seconds = (retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1);
    tracing::debug!(
        retry_after = seconds,
        "too many outstanding misses for this client: 429"
    );
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({ "error": "too many requests", "retry_after": seconds })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}
