//! `Cache-Status`, `X-Cache`, and for the clients given the details `X-Cache-Hits`,
//! `X-Cache-Misses` and `X-Airtable-Calls`, on every response, cached or not. (What a default
//! response leaves out is proven over real sockets in `least_information.rs`.)

mod common;

use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{events_app, harness, req, send, AppState, Event, StoreKind};
use podium_cache_tower::policy::Audience;
use podium_cache_tower::CacheLayer;

/// Reads records 0 and 1 (whatever the method).
async fn two_records(State(state): State<(AppState, Vec<String>)>) -> impl IntoResponse {
    let (app, ids) = state;
    let first = app.cache.get::<Event>(&ids[0]).await.ok().flatten();
    let second = app.cache.get::<Event>(&ids[1]).await.ok().flatten();
    Json((first, second))
}

#[tokio::test]
async fn detailed_responses_report_their_record_reads_and_layer_hits_report_one_hit() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let state = (AppState::new(&h.cache), h.ids.clone());
        let app = Router::new()
            .route("/pair", get(two_records))
            .route("/pair-post", post(two_records))
            .layer(
                CacheLayer::builder(&h.cache)
                    .detailed_status(Audience::Everyone)
                    .build(),
            )
            .with_state(state);
        let post_pair = || {
            Request::post("/pair-post")
                .body(Body::empty())
                .expect("request")
        };

        // Nothing cached: both records come from Airtable.
        let miss = send(&app, req("/pair")).await;
        assert_eq!(miss.cache_status(), "podium; fwd=miss; stored");
        assert_eq!(miss.x_cache(), "MISS", "{kind:?}");
        assert_eq!(miss.header("x-cache-hits"), "0");
        assert_eq!(miss.header("x-cache-misses"), "2");
        let calls: u64 = miss.header("x-airtable-calls").parse().unwrap_or(0);
        assert!(calls >= 1, "{kind:?}: x-airtable-calls {calls}");

        // Served by the layer.
        let hit = send(&app, req("/pair")).await;
        assert_eq!(hit.x_cache(), "HIT");
        assert_eq!(hit.header("x-cache-hits"), "1");
        assert_eq!(hit.header("x-cache-misses"), "0");
        assert_eq!(hit.header("x-airtable-calls"), "0");

        // Produced by the handler (POST is never cached), every record from the store.
        let handled = send(&app, post_pair()).await;
        assert_eq!(handled.cache_status(), "podium; fwd=method");
        assert_eq!(handled.x_cache(), "HIT", "{kind:?}");
        assert_eq!(handled.header("x-cache-hits"), "2");
        assert_eq!(handled.header("x-airtable-calls"), "0");

        // One record dropped from the store: one hit, one miss.
        h.cache
            .invalidate::<Event>(&h.ids[1])
            .await
            .expect("invalidate");
        let mixed = send(&app, post_pair()).await;
        assert_eq!(mixed.x_cache(), "MIXED", "{kind:?}");
        assert_eq!(mixed.header("x-cache-hits"), "1");
        assert_eq!(mixed.header("x-cache-misses"), "1");
        assert_eq!(mixed.header("x-airtable-calls"), "1");
    }
}

#[tokio::test]
async fn status_headers_can_be_switched_off() {
    let h = harness(StoreKind::Memory).await;
    let state = AppState::new(&h.cache);
    let app = events_app(
        &state,
        CacheLayer::builder(&h.cache).status_headers(false).build(),
    );
    let url = format!("/events/{}", h.ids[0]);
    send(&app, req(&url)).await;
    let hit = send(&app, req(&url)).await;
    for name in [
        "cache-status",
        "x-cache",
        "x-cache-hits",
        "x-cache-misses",
        "x-airtable-calls",
    ] {
        assert!(hit.headers.get(name).is_none(), "{name} was set");
    }
    assert_eq!(state.runs(), 1, "the response was still cached");
}

#[tokio::test]
async fn the_cache_status_name_is_configurable() {
    let h = harness(StoreKind::Memory).await;
    let state = AppState::new(&h.cache);
    let app = events_app(
        &state,
        CacheLayer::builder(&h.cache).cache_name("edge").build(),
    );
    let reply = send(&app, req(&format!("/events/{}", h.ids[0]))).await;
    assert_eq!(reply.cache_status(), "edge; fwd=miss; stored");
}
