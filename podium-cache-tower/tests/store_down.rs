//! The store failing never fails a request: it passes through and says BYPASS.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{events_app, harness, req, send, AppState, StoreKind};
use podium_cache_tower::CacheLayer;

#[tokio::test]
async fn store_down_passes_requests_through_with_bypass_and_recovers() {
    let mut h = harness(StoreKind::Redis).await;
    let state = AppState::new(&h.cache);
    let app = events_app(&state, CacheLayer::new(&h.cache));
    let url = format!("/events/{}", h.ids[0]);
    send(&app, req(&url)).await;
    assert!(send(&app, req(&url)).await.is_layer_hit());

    h.redis.as_mut().expect("redis").stop();

    for _ in 0..3 {
        let reply = send(&app, req(&url)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.json()["name"],
            "Event 0",
            "the record still comes from Airtable"
        );
        assert_eq!(reply.x_cache(), "BYPASS");
        assert_eq!(
            reply.cache_status(),
            "podium; fwd=bypass; detail=store-unavailable"
        );
    }
    let list = send(&app, req("/events")).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.x_cache(), "BYPASS");

    h.redis.as_mut().expect("redis").restart().expect("restart");
    let mut recovered = false;
    for _ in 0..100 {
        let reply = send(&app, req(&url)).await;
        assert_eq!(reply.status, StatusCode::OK);
        if reply.cache_status() == "podium; fwd=miss; stored" {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the layer did not store again once Redis was back"
    );
    assert!(send(&app, req(&url)).await.is_layer_hit());
}
