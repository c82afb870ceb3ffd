//! A response never outlives its purge key: records change while a flood of stored responses
//! evicts the store, and no read after an applied change (over real sockets) returns the old
//! version. The in-memory store is far smaller than what is written, so it evicts all along;
//! its state (purge tag sets, generations, change announcements) is never evicted for capacity,
//! only its data.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::{cache_over, fields, harness, now_ms, serve, Event, StoreKind};
use podium_cache_core::cache::{Cache, UpsertOutcome};
use podium_cache_core::store::{MemoryStore, Store};
use podium_cache_tower::CacheLayer;
use serde_json::Value;

const EVENTS: usize = 100;
/// More than the records and their responses, far less than the flood writes.
const MEMORY_CAPACITY: u64 = 1_000;
/// Lookups of slugs nobody has, each a stored 404, before the changes start.
const FLOOD_BEFORE: u64 = 3_000;

async fn event(State(cache): State<Cache>, Path(id): Path<String>) -> Response {
    match cache.get::<Event>(&id).await {
        Ok(Some(event)) => Json(event).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

async fn by_slug(State(cache): State<Cache>, Path(slug): Path<String>) -> Response {
    match cache.get_by_index::<Event>("slug", &slug).await {
        Ok(Some(event)) => Json(event).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

async fn no_stale_response_after_an_applied_change_under_an_eviction_flood(kind: StoreKind) {
    let harness = harness(kind).await;
    let airtable = &harness.airtable;
    let cache = match kind {
        StoreKind::Memory => {
            let store: Arc<dyn Store> = Arc::new(MemoryStore::new(MEMORY_CAPACITY));
            cache_over(airtable, store)
        }
        StoreKind::Redis => harness.cache.clone(),
    };
    let ids: Vec<String> = (0..EVENTS)
        .map(|i| airtable.insert(common::BASE, "Events", fields(&format!("v0 {i}"))))
        .collect();
    // Every 404 of the flood is stored: no bound on them here.
    let layer = CacheLayer::builder(&cache)
        .max_not_found(usize::MAX)
        .build();
    let app = Router::new()
        .route("/events/{id}", get(event))
        .route("/by-slug/{slug}", get(by_slug))
        .layer(layer)
        .with_state(cache.clone());
    let base = Arc::new(serve(app).await);
    let http = reqwest::Client::new();
    // Hot entries: each record's response read several times.
    for _ in 0..4 {
        for id in &ids {
            let response = http
                .get(format!("{base}/events/{id}"))
                .send()
                .await
                .expect("answer");
            assert_eq!(response.status(), 200);
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flooded = Arc::new(AtomicU64::new(0));
    let mut flood = Vec::new();
    for worker in 0..4u64 {
        let (http, base, stop, flooded) = (
            http.clone(),
            Arc::clone(&base),
            Arc::clone(&stop),
            Arc::clone(&flooded),
        );
        flood.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = http
                    .get(format!("{base}/by-slug/flood-{worker}-{n}"))
                    .send()
                    .await;
                flooded.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while flooded.load(Ordering::Relaxed) < FLOOD_BEFORE {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flood made only {} requests in 120 s",
            flooded.load(Ordering::Relaxed)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let mut stale = Vec::new();
    for round in 1..=2 {
        for id in &ids {
            let name = format!("v{round} {id}");
            assert!(airtable.update(common::BASE, "Events", id, fields(&name)));
            let event = Event {
                id: id.clone(),
                name: name.clone(),
                slug: name.to_lowercase().replace(' ', "-"),
            };
            let outcome = cache.upsert(&event, now_ms()).await.expect("upsert");
            assert_eq!(outcome, UpsertOutcome::Applied);
            let response = http
                .get(format!("{base}/events/{id}"))
                .send()
                .await
                .expect("answer");
            let body: Value = response.json().await.expect("json");
            if body["name"] != name.as_str() {
                stale.push(format!("{id}: {} instead of {name}", body["name"]));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for worker in flood {
        worker.await.expect("flood worker");
    }
    let flooded = flooded.load(Ordering::Relaxed);
    println!(
        "{kind:?}: {} changes applied, {flooded} flood requests, stale after applied: {}",
        2 * EVENTS,
        stale.len()
    );
    if kind == StoreKind::Memory {
        assert!(
            flooded > MEMORY_CAPACITY,
            "the store must have been over capacity for this test to mean anything"
        );
    }
    assert!(stale.is_empty(), "served stale after `applied`: {stale:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_response_is_served_stale_after_applied_while_a_flood_evicts_the_memory_store() {
    no_stale_response_after_an_applied_change_under_an_eviction_flood(StoreKind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_response_is_served_stale_after_applied_during_a_flood_on_redis() {
    no_stale_response_after_an_applied_change_under_an_eviction_flood(StoreKind::Redis).await;
}
