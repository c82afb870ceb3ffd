//! The axum webhook router: `POST /api/webhooks/airtable` (signed automation deliveries) and
//! `GET /api/webhooks/health`.
//!
//! Every refusal answers a JSON body `{"error": "...", "code": "...", "detail": ...}` and applies
//! nothing: no or bad signature 401, timestamp outside the tolerance 401 saying so, body over the
//! limit 413, malformed JSON 400, unknown table 400 naming the known ones, a record that does not
//! fit the model 422 with the field path, Airtable failing or refusing (403) the re-read of the
//! record 502, store unavailable 503 (so the script retries): [`receive_status`] maps each
//! [`ReceiveErrorKind`] of core to its status. Success is 200 `{"status": "applied" | "stale" |
//! "gone", "table", "record_id"}` (see [`podium_cache_core::webhook::receiver`] for what each
//! means); a replayed delivery id is 200 with `"duplicate": true` and is applied once only.
//!
//! [`WebhookRoutes::from_settings`] builds them from the app's settings in one call; or by
//! hand:
//!
//! ```no_run
//! use podium_cache_core::webhook::{Models, Receiver, WebhookSecret};
//! use podium_cache_tower::webhook::WebhookRoutes;
//! # fn demo(cache: podium_cache_core::Cache, secret: WebhookSecret) -> axum::Router {
//! let receiver = Receiver::new(cache, Models::new(), vec![secret]);
//! let app: axum::Router = WebhookRoutes::new(receiver).into_router();
//! app
//! # }
//! ```

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use podium_cache_core::cache::SetupError;
use podium_cache_core::config::Settings;
use podium_cache_core::webhook::native::NativeErrorKind;
use podium_cache_core::webhook::{
    Models, NativeError, NativeWebhooks, ReceiveError, ReceiveErrorKind, Receiver,
};
use podium_cache_core::Cache;
use serde_json::json;

/// Default path of the automation webhook.
pub const DEFAULT_PATH: &str = "/api/webhooks/airtable";
/// Default path of the health check.
pub const DEFAULT_HEALTH_PATH: &str = "/api/webhooks/health";
/// Default path of Airtable's native-webhook notifications (see [`WebhookRoutes::native`]).
pub const DEFAULT_NATIVE_PATH: &str = "/api/webhooks/airtable/notify";

/// Builds the webhook routes.
#[derive(Clone, Debug)]
pub struct WebhookRoutes {
    receiver: Arc<Receiver>,
    path: String,
    health_path: String,
    native: Option<NativeWebhooks>,
    native_path: String,
}

impl WebhookRoutes {
    /// Routes for `receiver` at the default paths.
    pub fn new(receiver: Receiver) -> Self {
        Self {
            receiver: Arc::new(receiver),
            path: DEFAULT_PATH.to_owned(),
            health_path: DEFAULT_HEALTH_PATH.to_owned(),
            native: None,
            native_path: DEFAULT_NATIVE_PATH.to_owned(),
        }
    }

    /// The routes `settings` describe, at the default paths: deliveries verified with every
    /// configured secret (`webhook_secret` and `webhook_secrets`), the legacy
    /// `X-Airtable-Secret` header when `allow_legacy_secret` is on, and Airtable's native
    /// notifications when `airtable_webhook_id` and `airtable_webhook_mac_secret` are set (see
    /// [`Receiver::from_settings`] and [`NativeWebhooks::from_settings`]). A setting that cannot
    /// be used is an error naming it.
    ///
    /// ```no_run
    /// use podium_cache_core::config::Settings;
    /// use podium_cache_core::webhook::Models;
    /// use podium_cache_core::Cache;
    /// use podium_cache_tower::webhook::WebhookRoutes;
    /// # async fn demo(models: Models) -> Result<axum::Router, podium_cache_core::cache::SetupError> {
    /// let settings = Settings::load(std::path::Path::new("."))?;
    /// let cache = Cache::from_settings(&settings).await?;
    /// let app: axum::Router = WebhookRoutes::from_settings(&cache, models, &settings)?.into_router();
    /// # Ok(app) }
    /// ```
    pub fn from_settings(
        cache: &Cache,
        models: Models,
        settings: &Settings,
    ) -> Result<Self, SetupError> {
        let receiver = Receiver::from_settings(cache.clone(), models.clone(), settings)?;
        let routes = Self::new(receiver);
        Ok(
            match NativeWebhooks::from_settings(cache.clone(), models, settings)? {
                Some(native) => routes.native(native),
                None => routes,
            },
        )
    }

    /// Also receive Airtable's native-webhook notifications at `POST
    /// /api/webhooks/airtable/notify` (see [`WebhookRoutes::native_path`]): the MAC is
    /// verified and the ping recorded in the store, then the answer is at once 200 with an
    /// empty body, as Airtable asks ("respond with an HTTP 200 or 204 status code and an empty
    /// response body", <https://airtable.com/developers/web/api/webhooks-overview>); the
    /// payloads are applied in the background (see [`podium_cache_core::webhook::native`]). A
    /// missing or bad `X-Airtable-Content-MAC` is 401, a malformed body 400, a body over the
    /// limit 413 and the store failing 503 (Airtable retries), all with the JSON error body
    /// (see [`native_status`]).
    pub fn native(mut self, native: NativeWebhooks) -> Self {
        self.native = Some(native);
        self
    }

    /// Where native-webhook notifications are posted (default `/api/webhooks/airtable/notify`).
    pub fn native_path(mut self, path: impl Into<String>) -> Self {
        self.native_path = path.into();
        self
    }

    /// Where deliveries are posted (default `/api/webhooks/airtable`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Where the health check answers (default `/api/webhooks/health`).
    pub fn health_path(mut self, path: impl Into<String>) -> Self {
        self.health_path = path.into();
        self
    }

    /// The receiver behind the routes.
    pub fn receiver(&self) -> &Arc<Receiver> {
        &self.receiver
    }

    /// The axum router (merge it into the app's router).
    pub fn into_router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let mut router = Router::new()
            .route(&self.path, post(receive))
            .route(&self.health_path, get(health));
        if let Some(native) = self.native {
            // Work a previous process left recorded in the store is finished now.
            native.resume();
            let native = Arc::new(native);
            router = router.route(
                &self.native_path,
                post(move |headers: HeaderMap, body: Body| {
                    let native = Arc::clone(&native);
                    async move { notify(&native, headers, body).await }
                }),
            );
        }
        router.with_state(self.receiver)
    }
}

/// A refusal as the JSON error body.
pub fn error_response(
    status: u16,
    code: &str,
    message: String,
    detail: serde_json::Value,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(json!({ "error": message, "code": code, "detail": detail })),
    )
        .into_response()
}

/// The HTTP status of a refused delivery's kind: 401 unauthorized, 413 too large, 400
/// malformed or unknown table, 422 a record that does not fit the model, 502 Airtable failing
/// or refusing the re-read, 503 the store failing (the last two are retried by the script).
///
/// ```
/// use podium_cache_core::webhook::ReceiveErrorKind;
/// use podium_cache_tower::webhook::receive_status;
/// assert_eq!(receive_status(ReceiveErrorKind::Unauthorized), 401);
/// assert_eq!(receive_status(ReceiveErrorKind::SourceFailed), 502);
/// ```
pub fn receive_status(kind: ReceiveErrorKind) -> u16 {
    match kind {
        ReceiveErrorKind::Unauthorized => 401,
        ReceiveErrorKind::TooLarge => 413,
        ReceiveErrorKind::Malformed | ReceiveErrorKind::UnknownTable => 400,
        ReceiveErrorKind::Unprocessable => 422,
        ReceiveErrorKind::SourceFailed => 502,
        ReceiveErrorKind::StoreFailed => 503,
        // A kind added later: the sender may retry.
        _ => 500,
    }
}

fn refusal(err: &ReceiveError) -> Response {
    error_response(
        receive_status(err.kind()),
        err.code(),
        err.to_string(),
        err.detail(),
    )
}

/// Reads the body up to `limit` bytes; `Err(size)` when it is larger.
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, Result<usize, String>> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(Ok(limit + 1)),
        Err(err) => Err(Err(err.to_string())),
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limit = receiver.max_body();
    let bytes = match read_limited(body, limit).await {
        Ok(bytes) => bytes,
        Err(Ok(size)) => return refusal(&ReceiveError::TooLarge { size, limit }),
        Err(Err(message)) => {
            return refusal(&ReceiveError::Malformed(format!(
                "reading the body: {message}"
            )))
        }
    };
    let lookup = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let now = chrono_now_secs();
    match receiver.receive(lookup, &bytes, now).await {
        Ok(receipt) => (StatusCode::OK, Json(receipt)).into_response(),
        Err(err) => refusal(&err),
    }
}

/// The HTTP status of a native-webhook error kind: the only place kinds meet statuses.
pub fn native_status(kind: NativeErrorKind) -> u16 {
    match kind {
        NativeErrorKind::TooLarge => 413,
        NativeErrorKind::Unauthorized => 401,
        NativeErrorKind::Malformed => 400,
        NativeErrorKind::AirtableForbidden | NativeErrorKind::AirtableUnavailable => 502,
        NativeErrorKind::StoreUnavailable | NativeErrorKind::Busy => 503,
        _ => 500,
    }
}

fn native_refusal(err: &NativeError) -> Response {
    error_response(
        native_status(err.kind()),
        err.code(),
        err.to_string(),
        err.detail(),
    )
}

async fn notify(native: &NativeWebhooks, headers: HeaderMap, body: Body) -> Response {
    let limit = native.max_body();
    let bytes = match read_limited(body, limit).await {
        Ok(bytes) => bytes,
        Err(Ok(size)) => return native_refusal(&NativeError::TooLarge { size, limit }),
        Err(Err(message)) => {
            return native_refusal(&NativeError::Malformed(format!(
                "reading the body: {message}"
            )))
        }
    };
    let lookup = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match native.notify(lookup, &bytes).await {
        // Recorded: the payloads are applied in the background; Airtable wants an empty body.
        Ok(_) => StatusCode::OK.into_response(),
        Err(err) => native_refusal(&err),
    }
}

async fn health(State(receiver): State<Arc<Receiver>>) -> Response {
    let store = receiver.cache().store();
    let store_ok = store.get("podium-health-probe").await.is_ok();
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if store_ok { "ok" } else { "degraded" },
            "store": { "kind": store.name(), "reachable": store_ok },
            "tables": receiver.models().tables(),
        })),
    )
        .into_response()
}

fn chrono_now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
