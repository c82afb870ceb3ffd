//! A response the service built from an expired record that the core cache served because
//! Airtable failed (stale-if-error) says so: `Cache-Status: podium; hit; detail=stale`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{events_app, harness, req, req_with, send, AppState, StoreKind, BASE};
use podium_cache_core::cache::Cache;
use podium_cache_core::source::AirtableSource;
use podium_cache_tower::policy::Audience;
use podium_cache_tower::CacheLayer;

/// A core cache over the harness's store whose records expire after a second and may be
/// served stale for an hour while Airtable fails.
fn stale_if_error_cache(h: &common::Harness) -> Cache {
    let source = AirtableSource::builder(h.airtable.api_key(), BASE)
        .api_url(h.airtable.url())
        .rate_limit(1_000, Duration::from_secs(1))
        .retries(1, Duration::from_millis(10), Duration::from_millis(20))
        .build()
        .expect("airtable source");
    Cache::builder(Arc::clone(&h.store), Arc::new(source))
        .data_ttl(Duration::from_secs(1))
        .tombstone_ttl(Duration::from_secs(2))
        .jitter(0.0)
        .stale_if_error(Duration::from_secs(3600))
        .xfetch_beta(0.0)
        .build()
}

#[tokio::test]
async fn a_response_built_from_a_stale_record_is_marked_stale_in_cache_status() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let cache = stale_if_error_cache(&h);
        let state = AppState::new(&cache);
        let layer = CacheLayer::builder(&cache)
            .request_cache_control(Audience::Everyone)
            .detailed_status(Audience::Everyone)
            .build();
        let app = events_app(&state, layer);
        let uri = format!("/events/{}", h.ids[0]);
        // `no-cache`: the layer always asks the handler, which reads through the core cache.
        let revalidate = || req_with(&uri, &[("cache-control", "no-cache")]);

        let fresh = send(&app, revalidate()).await;
        assert_eq!(fresh.status, 200, "{kind:?}");
        assert!(
            !fresh.cache_status().contains("stale"),
            "{kind:?}: {}",
            fresh.cache_status()
        );

        tokio::time::sleep(Duration::from_millis(1_300)).await;
        h.airtable.fail_ratio(1.0, 503);
        let stale = send(&app, revalidate()).await;
        assert_eq!(stale.status, 200, "{kind:?}: {}", stale.text());
        assert_eq!(stale.json(), fresh.json(), "{kind:?}");
        assert_eq!(
            stale.cache_status(),
            "podium; hit; detail=stale",
            "{kind:?}"
        );
        assert_eq!(stale.x_cache(), "HIT", "{kind:?}");
        assert_eq!(stale.header("x-cache-hits"), "1", "{kind:?}");

        // A response built from a stale record is served but not stored: asked twice during
        // the outage (a URL the layer has not cached yet), the handler answers both times.
        let variant = format!("{uri}?during=outage");
        for _ in 0..2 {
            let again = send(&app, req(&variant)).await;
            assert_eq!(again.status, 200, "{kind:?}");
            assert_eq!(
                again.cache_status(),
                "podium; hit; detail=stale",
                "{kind:?}: a stored stale answer would come from the layer"
            );
        }

        // Airtable is back: the record is refetched and the response is not stale.
        h.airtable.clear_faults();
        let refreshed = send(&app, revalidate()).await;
        assert_eq!(refreshed.status, 200, "{kind:?}");
        assert!(
            !refreshed.cache_status().contains("stale"),
            "{kind:?}: {}",
            refreshed.cache_status()
        );
        assert_eq!(refreshed.x_cache(), "MISS", "{kind:?}");
    }
}
