//! HTTP entries on a Redis store behind the in-process tier (`TieredStore`): a hot response
//! is answered from the tier (no Redis round trip), and the tier stays coherent through the
//! same invalidation broadcast as records: an unsafe method (RFC 9111 §4.4) or a record change
//! in one instance evicts the response from every other instance's tier.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::origin::{origin, request, respond, Mode};
use common::{cache_over, events_app, fields, harness, send, tiered, AppState, StoreKind};
use podium_cache_core::store::{Store, TieredStore};
use podium_cache_tower::CacheLayer;

/// Two instances, each a layer (standards mode, per principal if asked) over its own tiered
/// store on the harness's Redis, in front of origins sharing one count, so every origin answer
/// differs.
async fn two_instances(h: &common::Harness, per_principal: bool) -> (axum::Router, axum::Router) {
    let (a, b) = (tiered(h).await, tiered(h).await);
    let layer = |store: &Arc<TieredStore>| -> CacheLayer {
        let cache = cache_over(&h.airtable, Arc::clone(store) as Arc<dyn Store>);
        let builder = Mode::Standards.builder(&cache);
        let builder = if per_principal {
            builder.per_principal()
        } else {
            builder
        };
        builder.build()
    };
    let runs = common::Counter::default();
    let answer = move |_: usize, _: &common::origin::Seen| {
        let run = runs.bump();
        respond(
            200,
            &[("cache-control", "max-age=60")],
            &format!("run {run}"),
        )
    };
    let (first, _) = origin(layer(&a), answer.clone());
    let (second, _) = origin(layer(&b), answer);
    (first, second)
}

/// Sends GETs to `app` until one answers other than `before`, for at most 5 s.
async fn changes(app: &axum::Router, uri: &str, before: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = send(app, request("GET", uri, &[])).await.text();
        if now != before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still served `{before}` after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_hot_response_on_redis_is_answered_from_the_in_process_tier() {
    let h = harness(StoreKind::Redis).await;
    let store = tiered(&h).await;
    let cache = cache_over(&h.airtable, Arc::clone(&store) as Arc<dyn Store>);
    let (app, log) = origin(Mode::Standards.builder(&cache).build(), |n, _| {
        respond(200, &[("cache-control", "max-age=60")], &format!("run {n}"))
    });
    send(&app, request("GET", "/r", &[])).await;
    send(&app, request("GET", "/r", &[])).await;
    let before = store.tier().metrics().hits;
    let hit = send(&app, request("GET", "/r", &[])).await;
    assert!(hit.is_layer_hit(), "{}", hit.cache_status());
    assert!(
        store.tier().metrics().hits > before,
        "the hit read Redis, not the tier"
    );
    assert_eq!(log.count(), 1);
}

#[tokio::test]
async fn an_unsafe_method_in_one_instance_evicts_the_response_from_every_tier() {
    let h = harness(StoreKind::Redis).await;
    let (first, second) = two_instances(&h, false).await;
    let stored = send(&first, request("GET", "/r", &[])).await.text();
    for _ in 0..3 {
        assert_eq!(
            send(&second, request("GET", "/r", &[])).await.text(),
            stored
        );
    }
    send(&first, request("POST", "/r", &[])).await;
    changes(
        &second,
        "/r",
        &stored,
        "another instance's tier after a POST",
    )
    .await;
}

#[tokio::test]
async fn a_record_change_in_one_instance_purges_the_response_from_every_tier() {
    let h = harness(StoreKind::Redis).await;
    let (a, b) = (tiered(&h).await, tiered(&h).await);
    let cache_a = cache_over(&h.airtable, Arc::clone(&a) as Arc<dyn Store>);
    let cache_b = cache_over(&h.airtable, Arc::clone(&b) as Arc<dyn Store>);
    let app_b = events_app(&AppState::new(&cache_b), CacheLayer::new(&cache_b));
    let uri = format!("/events/{}", h.ids[0]);
    let before = send(&app_b, request("GET", &uri, &[])).await.text();
    assert_eq!(send(&app_b, request("GET", &uri, &[])).await.text(), before);
    assert!(h
        .airtable
        .update(common::BASE, "Events", &h.ids[0], fields("Renamed")));
    cache_a
        .invalidate::<common::Event>(&h.ids[0])
        .await
        .expect("invalidate");
    changes(
        &app_b,
        &uri,
        &before,
        "a purged response in another instance's tier",
    )
    .await;
}

#[tokio::test]
async fn an_unsafe_method_evicts_every_principals_response_from_every_tier() {
    let h = harness(StoreKind::Redis).await;
    let (first, second) = two_instances(&h, true).await;
    let ada = [("authorization", "Bearer ada")];
    let stored = send(&second, request("GET", "/r", &ada)).await.text();
    for _ in 0..3 {
        assert_eq!(
            send(&second, request("GET", "/r", &ada)).await.text(),
            stored
        );
    }
    send(&first, request("DELETE", "/r", &[])).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while send(&second, request("GET", "/r", &ada)).await.text() == stored {
        assert!(
            Instant::now() < deadline,
            "ada's entry still served from a tier after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
