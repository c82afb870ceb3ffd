//! Shared helpers of the layer's integration tests: a model, the local Airtable server seeded
//! with it, a real redis-server or the in-memory store, a core `Cache` over them, an axum app
//! whose routes read records through that cache, and a one-line way to send a request.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::BodyExt;
use podium_cache_core::cache::{Cache, Query};
use podium_cache_core::source::AirtableSource;
use podium_cache_core::store::{MemoryStore, RedisStore, Store, TieredStore};
use podium_cache_core::Cacheable;
use podium_cache_tower::CacheLayer;
use podium_local::airtable::{AirtableServer, RunningAirtable};
use podium_local::redis::RedisServer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tower::ServiceExt;

pub mod origin;

pub const BASE: &str = "appTOWERTOWERTW01";

/// The test model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Cacheable)]
#[cacheable(table = "Events")]
pub struct Event {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    #[cacheable(index)]
    pub slug: String,
}

pub fn fields(name: &str) -> Map<String, Value> {
    match json!({ "name": name, "slug": name.to_lowercase().replace(' ', "-") }) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Which store a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Redis,
}

impl StoreKind {
    pub const ALL: [StoreKind; 2] = [StoreKind::Memory, StoreKind::Redis];
}

/// The local Airtable server with `Events` records, a store, and a core cache over them.
pub struct Harness {
    pub kind: StoreKind,
    pub airtable: RunningAirtable,
    pub redis: Option<RedisServer>,
    pub store: Arc<dyn Store>,
    pub cache: Cache,
    pub ids: Vec<String>,
}

pub async fn harness(kind: StoreKind) -> Harness {
    let airtable = AirtableServer::builder()
        .rate_limit(None)
        .start()
        .await
        .expect("local airtable server");
    let ids = (0..4)
        .map(|i| airtable.insert(BASE, "Events", fields(&format!("Event {i}"))))
        .collect();
    airtable.declare_fields(BASE, "Events", &["name", "slug"]);
    let (redis, store): (Option<RedisServer>, Arc<dyn Store>) = match kind {
        StoreKind::Memory => (None, Arc::new(MemoryStore::new(100_000))),
        StoreKind::Redis => {
            let server = RedisServer::start().expect("redis-server (is it installed?)");
            let store = redis_store(&server.url()).await;
            (Some(server), store)
        }
    };
    let cache = cache_over(&airtable, Arc::clone(&store));
    Harness {
        kind,
        airtable,
        redis,
        store,
        cache,
        ids,
    }
}

pub async fn redis_store(url: &str) -> Arc<dyn Store> {
    // Generous for debug builds on a loaded 2-core machine.
    Arc::new(
        RedisStore::builder(url)
            .call_timeout(Duration::from_secs(2))
            .connect()
            .await
            .expect("redis store"),
    )
}

pub fn cache_over(airtable: &RunningAirtable, store: Arc<dyn Store>) -> Cache {
    let source = AirtableSource::builder(airtable.api_key(), BASE)
        .api_url(airtable.url())
        .rate_limit(1_000, Duration::from_secs(1))
        .retries(2, Duration::from_millis(10), Duration::from_millis(50))
        .build()
        .expect("airtable source");
    Cache::builder(store, Arc::new(source)).build()
}

impl Harness {
    /// A second instance: its own store client (on the same Redis) and its own core cache.
    pub async fn second_instance(&self) -> Cache {
        let store = match &self.redis {
            Some(server) => redis_store(&server.url()).await,
            None => Arc::clone(&self.store),
        };
        cache_over(&self.airtable, store)
    }

    /// Airtable API calls answered so far.
    pub fn airtable_calls(&self) -> u64 {
        self.airtable.calls().total
    }
}

/// State of the events app: the cache and a count of handler runs.
#[derive(Clone)]
pub struct AppState {
    pub cache: Cache,
    pub runs: Arc<AtomicUsize>,
}

impl AppState {
    pub fn new(cache: &Cache) -> Self {
        Self {
            cache: cache.clone(),
            runs: Arc::new(AtomicUsize::new(0)),
        }
    }
    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

async fn event(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    state.runs.fetch_add(1, Ordering::SeqCst);
    match state.cache.get::<Event>(&id).await {
        Ok(Some(event)) => Json(event).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, Json(json!({"error": "not found"}))).into_response(),
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

async fn events(State(state): State<AppState>) -> Response {
    state.runs.fetch_add(1, Ordering::SeqCst);
    match state
        .cache
        .query::<Event>(&Query::formula_text("TRUE()"))
        .await
    {
        Ok(mut list) => {
            list.sort_by(|a, b| a.id.cmp(&b.id));
            Json(list).into_response()
        }
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

/// `GET /events/{id}` (one record through the cache) and `GET /events` (a list), under `layer`.
pub fn events_app(state: &AppState, layer: CacheLayer) -> Router {
    Router::new()
        .route("/events/{id}", get(event))
        .route("/events", get(events))
        .layer(layer)
        .with_state(state.clone())
}

/// What a request got back.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn cache_status(&self) -> &str {
        self.header("cache-status")
    }
    pub fn x_cache(&self) -> &str {
        self.header("x-cache")
    }
    pub fn is_layer_hit(&self) -> bool {
        self.cache_status().starts_with("podium; hit")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

pub fn req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

pub fn req_with(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::get(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).expect("request")
}

/// Sends `request` through `app` (a real axum router) and reads the whole reply.
pub async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// The whole body of `response`, read.
pub async fn body_of<B>(response: http::Response<B>) -> Bytes
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

/// A `TieredStore` on the harness's Redis (its in-process tier serving, subscribed to the
/// invalidation bus).
pub async fn tiered(h: &Harness) -> Arc<TieredStore> {
    let url = h.redis.as_ref().expect("a Redis harness").url();
    let store = TieredStore::builder(redis_store(&url).await)
        .capacity(1_000)
        .bus_url(url)
        .call_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_millis(200))
        .link_wait(Duration::from_secs(5))
        .connect()
        .await
        .expect("tiered store");
    assert!(store.tier().is_serving(), "subscribed before serving");
    Arc::new(store)
}

/// A counter handlers can bump, shared with the test.
#[derive(Clone, Default)]
pub struct Counter(pub Arc<AtomicUsize>);

impl Counter {
    pub fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Milliseconds since the epoch (for upsert timestamps).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `app` served on a free loopback port over real sockets, with the peer address (so the layer
/// names each client by it); the base URL. The server stops when the test's runtime ends.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    format!("http://{addr}")
}

/// Waits until `done()` holds, checking every few milliseconds; fails the test with `what` if
/// it still does not hold after `within` of real time (a deadline, not a bound on speed:
/// generous, so only a hang trips it).
pub async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up after {within:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Awaits `future`, failing the test with `what` if it has not finished after `within` of
/// real time (a deadline against hangs, not a bound on speed).
pub async fn within<T>(
    what: &str,
    within: Duration,
    future: impl std::future::Future<Output = T>,
) -> T {
    let deadline = std::time::Instant::now() + within;
    tokio::pin!(future);
    loop {
        tokio::select! {
            out = &mut future => return out,
            () = tokio::time::sleep(Duration::from_millis(50)) => assert!(
                std::time::Instant::now() < deadline,
                "gave up after {within:?} waiting for {what}"
            ),
        }
    }
}

/// Waits until the wall clock has left this millisecond. Invalidation stamps and response
/// times are in milliseconds, and a response stored in its invalidation's own millisecond
/// cannot be ordered after it, so it is conservatively not reused (a miss, never a stale hit):
/// a test that expects a refill right after an unsafe request to be reused waits for this first.
pub async fn leave_this_millisecond() {
    tokio::time::sleep(Duration::from_millis(2)).await;
}
