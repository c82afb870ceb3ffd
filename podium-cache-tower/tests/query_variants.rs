//! Query strings cannot steer or flood the response cache: a route's allow-list keeps junk
//! parameters out of the key, and one path stores a bounded number of variants (shared by
//! every instance on the store), each rule against the in-memory store and a real redis-server.

mod common;

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use common::{harness, req, req_with, send, Counter, StoreKind};
use podium_cache_core::store::Store;
use podium_cache_tower::CacheLayer;

/// `/list` answers its `page` parameter; `/items/{id}` its id; `/lang` varies on
/// `Accept-Language`. Every handler run bumps `runs`.
fn app(layer: CacheLayer, runs: &Counter) -> Router {
    let (list, item, lang) = (runs.clone(), runs.clone(), runs.clone());
    Router::new()
        .route(
            "/list",
            get(move |Query(q): Query<HashMap<String, String>>| {
                let run = list.bump();
                let page = q.get("page").cloned().unwrap_or_default();
                async move { format!("page {page} (run {run})") }
            }),
        )
        .route(
            "/items/{id}",
            get(move |Path(id): Path<String>| {
                let run = item.bump();
                async move { format!("item {id} (run {run})") }
            }),
        )
        .route(
            "/lang",
            get(move |headers: HeaderMap| {
                let run = lang.bump();
                let language = headers
                    .get("accept-language")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                async move { ([("vary", "accept-language")], format!("{language} {run}")) }
            }),
        )
        .layer(layer)
}

/// How many response entries (and vary markers) the store holds.
async fn stored_responses(store: &dyn Store) -> usize {
    let mut cursor = 0;
    let mut keys = std::collections::HashSet::new();
    loop {
        let page = store
            .scan("*:http:*", cursor, 1000)
            .await
            .expect("scan the store");
        keys.extend(page.keys);
        if page.cursor == 0 {
            return keys.len();
        }
        cursor = page.cursor;
    }
}

#[tokio::test]
async fn unlisted_query_parameters_share_the_entry_of_the_request_without_them() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let runs = Counter::default();
        let layer = CacheLayer::builder(&h.cache)
            .query_params("/list", ["page"])
            .build();
        let app = app(layer, &runs);

        let first = send(&app, req("/list?page=1&utm_source=a")).await;
        assert_eq!(first.text(), "page 1 (run 1)");
        for uri in [
            "/list?utm_source=b&page=1",
            "/list?page=1",
            "/list?pa%67e=1&cachebuster=123",
        ] {
            let again = send(&app, req(uri)).await;
            assert!(
                again.is_layer_hit(),
                "{kind:?} {uri}: {}",
                again.cache_status()
            );
            assert_eq!(again.text(), "page 1 (run 1)", "{kind:?} {uri}");
        }
        // A listed parameter with another value is another entry, decoded as the handler
        // reads it: `pa%67e=2` is `page=2`.
        let two = send(&app, req("/list?pa%67e=2")).await;
        assert_eq!(two.text(), "page 2 (run 2)", "{kind:?}");
        let two_again = send(&app, req("/list?page=2&x=y")).await;
        assert!(two_again.is_layer_hit(), "{kind:?}");
        assert_eq!(runs.get(), 2, "{kind:?}");
    }
}

#[tokio::test]
async fn an_allow_list_names_the_route_as_axum_matched_it() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let runs = Counter::default();
        let layer = CacheLayer::builder(&h.cache)
            .query_params("/items/{id}", [] as [&str; 0])
            .build();
        let app = app(layer, &runs);
        send(&app, req("/items/a?x=1")).await;
        let junk = send(&app, req("/items/a?x=2&y=3")).await;
        assert!(junk.is_layer_hit(), "{kind:?}: {}", junk.cache_status());
        let other = send(&app, req("/items/b?x=1")).await;
        assert_eq!(other.text(), "item b (run 2)", "{kind:?}");
        // Without an allow-list every parameter is part of the key.
        let listless = send(&app, req("/list?page=1&x=1")).await;
        let listless_other = send(&app, req("/list?page=1&x=2")).await;
        assert!(!listless.is_layer_hit() && !listless_other.is_layer_hit());
        assert_eq!(runs.get(), 4, "{kind:?}");
    }
}

#[tokio::test]
async fn a_path_stores_at_most_max_variants_and_keeps_serving_them() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let runs = Counter::default();
        let app_a = app(CacheLayer::builder(&h.cache).max_variants(3).build(), &runs);

        for page in 1..=3 {
            send(&app_a, req(&format!("/list?page={page}"))).await;
        }
        let before_flood = stored_responses(h.store.as_ref()).await;
        // The count must see the three stored pages, or "the flood stored nothing" below would
        // hold for a count that sees nothing at all.
        assert!(
            before_flood >= 3,
            "{kind:?}: the three pages are counted as stored responses ({before_flood})"
        );
        // A flood of random query strings: answered, never stored.
        for n in 0..200 {
            let reply = send(&app_a, req(&format!("/list?page=1&junk={n}"))).await;
            assert!(
                reply.cache_status().contains("detail=variant-limit"),
                "{kind:?} #{n}: {}",
                reply.cache_status()
            );
        }
        assert_eq!(
            stored_responses(h.store.as_ref()).await,
            before_flood,
            "{kind:?}: the flood grew the store"
        );
        // The variants stored before it are still served.
        for page in 1..=3 {
            let hot = send(&app_a, req(&format!("/list?page={page}"))).await;
            assert!(hot.is_layer_hit(), "{kind:?} page {page}");
        }
        // The path without a query is not a variant; another path has its own bound.
        assert!(!send(&app_a, req("/list"))
            .await
            .cache_status()
            .contains("variant-limit"));
        assert!(send(&app_a, req("/list")).await.is_layer_hit());
        assert!(send(&app_a, req("/items/a?x=1"))
            .await
            .cache_status()
            .contains("stored"));

        // A second instance on the same store keeps to the same bound.
        if kind == StoreKind::Redis {
            let second = h.second_instance().await;
            let app_b = app(CacheLayer::builder(&second).max_variants(3).build(), &runs);
            let refused = send(&app_b, req("/list?page=99")).await;
            assert!(
                refused.cache_status().contains("detail=variant-limit"),
                "{}",
                refused.cache_status()
            );
            assert!(send(&app_b, req("/list?page=2")).await.is_layer_hit());
        }
    }
}

#[tokio::test]
async fn vary_values_count_as_variants_of_their_path() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let runs = Counter::default();
        let app = app(CacheLayer::builder(&h.cache).max_variants(2).build(), &runs);
        for language in ["en", "fr"] {
            send(&app, req_with("/lang", &[("accept-language", language)])).await;
            let hit = send(&app, req_with("/lang", &[("accept-language", language)])).await;
            assert!(
                hit.is_layer_hit(),
                "{kind:?} {language}: {}",
                hit.cache_status()
            );
        }
        let third = send(&app, req_with("/lang", &[("accept-language", "de")])).await;
        assert!(
            third.cache_status().contains("detail=variant-limit"),
            "{kind:?}: {}",
            third.cache_status()
        );
        assert_eq!(third.text(), "de 3", "{kind:?}: answered by the handler");
    }
}
