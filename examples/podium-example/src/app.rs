//! The app's routes: reads through the core `Cache`, deletes through it, health and metrics.
//!
//! Every read route answers the record as one flat JSON object (`id` plus the model's fields
//! under their Airtable names), or 404 `{"error": "not found"}`. Every write (`DELETE`, any
//! method that is not safe) needs `Authorization: Bearer <admin token>` ([`crate::admin`]):
//! without it, `401` and nothing changes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::Mutex;
use podium_cache_core::{Cache, Cacheable};
use podium_cache_tower::policy::Audience;
use podium_cache_tower::{CacheLayer, Failure, Found};
use serde_json::json;

use crate::admin::{self, AdminToken};
use crate::models::{Event, Project, Referral, User, Vote};

/// Shared state of the routes.
#[derive(Clone)]
pub struct AppState {
    /// The read-through cache.
    pub cache: Cache,
    /// Webhook answers by status code, for `/metrics`.
    pub webhooks: Arc<WebhookCounters>,
    /// The header naming the client behind a trusted proxy (setting `trusted_client_header`);
    /// none: the peer address. Misses are queued and limited per client.
    pub trusted_client_header: Option<String>,
    /// The token the writes require; its holder also gets the cache's detailed status headers.
    pub admin: AdminToken,
}

/// Webhook answers counted by HTTP status.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    by_status: Mutex<BTreeMap<u16, u64>>,
    total: AtomicU64,
}

impl WebhookCounters {
    /// Counts one answer.
    pub fn count(&self, status: u16) {
        self.total.fetch_add(1, Ordering::Relaxed);
        *self.by_status.lock().entry(status).or_default() += 1;
    }

    /// `(status, count)` pairs.
    pub fn snapshot(&self) -> Vec<(u16, u64)> {
        self.by_status
            .lock()
            .iter()
            .map(|(s, n)| (*s, *n))
            .collect()
    }
}

/// The cached routes, none of which reads a query parameter.
const QUERYLESS_ROUTES: [&str; 8] = [
    "/events/{id}",
    "/events/by-slug/{slug}",
    "/events/{id}/projects",
    "/projects/{id}",
    "/users/{id}",
    "/users/by-email/{email}",
    "/votes/{id}",
    "/referrals/{id}",
];

/// The read and delete routes, behind the HTTP response cache, plus `/healthz` and
/// `/metrics` (never cached); every write behind the admin token.
pub fn routes(state: AppState) -> Router {
    let cached = Router::new()
        .route(
            "/events/{id}",
            get(get_record::<Event>).delete(delete_record::<Event>),
        )
        .route("/events/by-slug/{slug}", get(event_by_slug))
        .route("/events/{id}/projects", get(event_projects))
        .route(
            "/projects/{id}",
            get(get_record::<Project>).delete(delete_record::<Project>),
        )
        .route(
            "/users/{id}",
            get(get_record::<User>).delete(delete_record::<User>),
        )
        .route("/users/by-email/{email}", get(user_by_email))
        .route(
            "/votes/{id}",
            get(get_record::<Vote>).delete(delete_record::<Vote>),
        )
        .route(
            "/referrals/{id}",
            get(get_record::<Referral>).delete(delete_record::<Referral>),
        )
        .layer(cache_layer(&state));
    let admin = state.admin.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(cached)
        .layer(middleware::from_fn_with_state(
            admin,
            admin::require_for_writes,
        ))
        .with_state(state)
}

/// The HTTP response cache, naming each request's client by the trusted header when one is
/// configured, else by the peer address. Its status headers say hit or miss only; the holder of
/// the admin token (whose requests, carrying `Authorization`, bypass the cache) also gets the
/// record reads, hits, misses and Airtable calls of what it asks.
///
/// None of the cached routes reads a query parameter, so each has an empty allow-list: a query
/// string (a cache buster, random junk) shares the entry of the path without it instead of
/// making a new one.
fn cache_layer(state: &AppState) -> CacheLayer {
    let admin = state.admin.clone();
    let builder = QUERYLESS_ROUTES
        .iter()
        .fold(CacheLayer::builder(&state.cache), |builder, route| {
            builder.query_params(*route, [] as [&str; 0])
        })
        .detailed_status(Audience::trusted(move |parts| {
            admin.accepts(&parts.headers)
        }));
    match &state.trusted_client_header {
        Some(header) => builder.trusted_client_header(header).build(),
        None => builder.build(),
    }
}

async fn get_record<T: Cacheable>(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Found<T> {
    state.cache.get::<T>(&id).await.into()
}

async fn delete_record<T: Cacheable>(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, Failure> {
    state.cache.delete::<T>(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn event_by_slug(State(state): State<AppState>, Path(slug): Path<String>) -> Found<Event> {
    state.cache.get_by_index("slug", &slug).await.into()
}

async fn user_by_email(State(state): State<AppState>, Path(email): Path<String>) -> Found<User> {
    state.cache.get_by_index("email", &email).await.into()
}

/// The event's projects, read by the ids the event links (one store round trip; misses
/// batched into one Airtable call).
async fn event_projects(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Found<Vec<Project>>, Failure> {
    let Some(event) = state.cache.get::<Event>(&id).await? else {
        return Ok(Found(Ok(None)));
    };
    let projects = state.cache.get_many::<Project>(&event.projects).await?;
    Ok(Found(Ok(Some(projects.into_iter().flatten().collect()))))
}

async fn healthz(State(state): State<AppState>) -> Response {
    let store = state.cache.store();
    let reachable = store.get("podium-health-probe").await.is_ok();
    Json(json!({
        "status": "ok",
        "store": { "kind": store.name(), "reachable": reachable },
    }))
    .into_response()
}

/// Prometheus text exposition of the engine's and the webhook's counters.
async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    let m = state.cache.metrics();
    for (name, value) in m.pairs() {
        out.push_str(&format!(
            "# TYPE podium_cache_{name}_total counter\npodium_cache_{name}_total {value}\n"
        ));
    }
    // The in-process tier (PODIUM_L1_CAPACITY > 0 with redis): hits, broadcasts, link drops.
    if let Some(tier) = state.cache.store().typed_tier() {
        let l1 = tier.metrics();
        for (name, value) in l1.counters() {
            out.push_str(&format!(
                "# TYPE podium_l1_{name}_total counter\npodium_l1_{name}_total {value}\n"
            ));
        }
        out.push_str(&format!(
            "# TYPE podium_l1_serving gauge\npodium_l1_serving {}\n# TYPE podium_l1_entries gauge\npodium_l1_entries {}\n",
            u8::from(l1.serving),
            l1.entries
        ));
    }
    let source = state.cache.source().stats();
    out.push_str(&format!(
        "# TYPE podium_airtable_requests_total counter\npodium_airtable_requests_total {}\n",
        source.requests
    ));
    out.push_str(&format!(
        "# TYPE podium_airtable_rate_limited_total counter\npodium_airtable_rate_limited_total {}\n",
        source.rate_limited
    ));
    out.push_str("# TYPE podium_webhooks_total counter\n");
    for (status, count) in state.webhooks.snapshot() {
        let outcome = match status {
            200..=299 => "accepted",
            401 => "unauthorized",
            413 => "too_large",
            400 | 422 => "invalid",
            503 => "unavailable",
            _ => "other",
        };
        out.push_str(&format!(
            "podium_webhooks_total{{status=\"{status}\",outcome=\"{outcome}\"}} {count}\n"
        ));
    }
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
}
