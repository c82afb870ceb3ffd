//! The cache layer in an axum app, with `.layer(..)` and `.route_layer(..)`.
//!
//! Starts the local Airtable-compatible server with three events, builds a core `Cache` over the
//! in-memory store (or Redis when `PODIUM_REDIS_URL` is set), serves the app on a loopback
//! port, and shows a miss, a hit, a record change purging exactly the responses that read it,
//! and the status headers:
//!
//! ```text
//! cargo run -p podium-cache-tower --example axum_router
//! cargo run -p podium-cache-tower --example axum_router -- --serve   # keep serving afterwards
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use podium_cache_core::cache::{Cache, Query};
use podium_cache_core::source::AirtableSource;
use podium_cache_core::store::{MemoryStore, RedisStore, Store};
use podium_cache_core::Cacheable;
use podium_cache_tower::policy::Audience;
use podium_cache_tower::{CacheLayer, CacheTags};
use podium_local::airtable::AirtableServer;
use serde::{Deserialize, Serialize};

const BASE: &str = "appEXAMPLEEXAMPL1";

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema, Cacheable)]
#[cacheable(table = "Events")]
struct Event {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    #[cacheable(index)]
    slug: String,
}

async fn event(State(cache): State<Cache>, Path(id): Path<String>) -> Response {
    match cache.get::<Event>(&id).await {
        Ok(Some(event)) => Json(event).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "not found"})),
        )
            .into_response(),
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

async fn events(State(cache): State<Cache>) -> Response {
    match cache.query::<Event>(&Query::formula_text("TRUE()")).await {
        Ok(list) => Json(list).into_response(),
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

/// A response built from something other than records, tagged by hand.
async fn banner() -> impl IntoResponse {
    (
        CacheTags::new().entity("events"),
        "Welcome to podium (purged whenever any event changes)",
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let airtable = AirtableServer::builder()
        .rate_limit(Some(5))
        .start()
        .await?;
    let mut ids = Vec::new();
    for (name, slug) in [
        ("Kickoff", "kickoff"),
        ("Demo day", "demo-day"),
        ("Retro", "retro"),
    ] {
        let fields = serde_json::json!({"name": name, "slug": slug});
        if let serde_json::Value::Object(map) = fields {
            ids.push(airtable.insert(BASE, "Events", map));
        }
    }
    airtable.declare_fields(BASE, "Events", &["name", "slug"]);

    let store: Arc<dyn Store> = match std::env::var("PODIUM_REDIS_URL") {
        Ok(url) => Arc::new(RedisStore::connect(&url).await?),
        Err(_) => Arc::new(MemoryStore::new(100_000)),
    };
    let source = AirtableSource::builder(airtable.api_key(), BASE)
        .api_url(airtable.url())
        .build()?;
    let cache = Cache::builder(store, Arc::new(source)).build();

    let layer = CacheLayer::builder(&cache)
        .ttl(Duration::from_secs(600))
        .stale_while_revalidate(Duration::from_secs(30))
        .private_cookies(["session"])
        // This demo prints `X-Airtable-Calls`, a detail only the clients given it get.
        .detailed_status(Audience::Everyone)
        .build();
    let app = Router::new()
        // `.layer`: every route above it is cached.
        .route("/events/{id}", get(event))
        .route("/events", get(events))
        .layer(layer.clone())
        // `.route_layer`: only matched routes pass the layer (unmatched paths 404 untouched).
        .merge(
            Router::new()
                .route("/banner", get(banner))
                .route_layer(layer),
        )
        .route("/health", get(|| async { "ok" }))
        .with_state(cache.clone());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("serving on http://{addr}\n");

    let first = &ids[0];
    for path in [
        format!("/events/{first}"),
        format!("/events/{first}"),
        format!("/events/{}", ids[1]),
        "/events".to_owned(),
        "/banner".to_owned(),
        "/banner".to_owned(),
    ] {
        show(addr, &path).await?;
    }

    println!("\n-- cache.upsert(event {first}) → purges /events/{first}, /events and /banner --\n");
    let changed = Event {
        id: first.clone(),
        name: "Kickoff (moved)".into(),
        slug: "kickoff".into(),
    };
    // What a webhook delivery does: Airtable has the change, the cache applies it.
    if let serde_json::Value::Object(fields) =
        serde_json::json!({"name": changed.name, "slug": changed.slug})
    {
        airtable.update(BASE, "Events", first, fields);
    }
    cache.upsert(&changed, chrono_like_now()).await?;
    for path in [
        format!("/events/{first}"),
        format!("/events/{}", ids[1]),
        "/events".to_owned(),
        "/banner".to_owned(),
    ] {
        show(addr, &path).await?;
    }

    if std::env::args().any(|a| a == "--serve") {
        println!("\nstill serving on http://{addr} (Ctrl-C to stop)");
        server.await??;
    }
    Ok(())
}

/// GETs `path` over real HTTP and prints the status headers.
async fn show(addr: SocketAddr, path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = http::Request::get(format!("http://{addr}{path}")).body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let line = format!(
        "GET {path:<28} {} | Cache-Status: {:<32} | X-Cache: {:<6} | X-Airtable-Calls: {}",
        response.status().as_u16(),
        header("cache-status"),
        header("x-cache"),
        header("x-airtable-calls"),
    );
    let body = response.into_body().collect().await?.to_bytes();
    let preview: String = String::from_utf8_lossy(&body).chars().take(60).collect();
    println!("{line}\n    {preview}");
    Ok(())
}

/// Milliseconds since the epoch: the timestamp of the change.
fn chrono_like_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
