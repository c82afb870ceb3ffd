//! The HTTP caching rules (RFC 9111 where it applies to a shared cache), each against the
//! in-memory store and a real redis-server, through real axum routers.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::{harness, req, req_with, send, Counter, StoreKind};
use futures::stream;
use podium_cache_tower::policy::Audience;
use podium_cache_tower::CacheLayer;

/// A router whose `/r` answers `headers` and a body numbering the handler's runs.
fn counting_app(
    layer: CacheLayer,
    counter: &Counter,
    headers: &'static [(&'static str, &'static str)],
) -> Router {
    let counter = counter.clone();
    Router::new()
        .route(
            "/r",
            get(move || {
                let counter = counter.clone();
                async move {
                    let run = counter.bump();
                    let mut map = HeaderMap::new();
                    for (name, value) in headers {
                        map.append(*name, value.parse().expect("header value"));
                    }
                    (map, format!("run {run}"))
                }
            }),
        )
        .layer(layer)
}

#[tokio::test]
async fn set_cookie_responses_are_never_stored() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let runs = Counter::default();
        let app = counting_app(
            CacheLayer::new(&h.cache),
            &runs,
            &[("set-cookie", "session=abc")],
        );
        let first = send(&app, req("/r")).await;
        let second = send(&app, req("/r")).await;
        assert_eq!(
            runs.get(),
            2,
            "{kind:?}: a Set-Cookie response was served from cache"
        );
        assert_eq!(second.text(), "run 2");
        assert_eq!(first.header("set-cookie"), "session=abc");
        assert_eq!(second.cache_status(), "podium; fwd=miss; detail=set-cookie");
    }
}

#[tokio::test]
async fn private_and_no_store_responses_are_never_stored() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        for directive in ["private, max-age=60", "no-store"] {
            let runs = Counter::default();
            let headers: &'static [(&'static str, &'static str)] = match directive {
                "no-store" => &[("cache-control", "no-store")],
                _ => &[("cache-control", "private, max-age=60")],
            };
            let app = counting_app(CacheLayer::new(&h.cache), &runs, headers);
            send(&app, req("/r")).await;
            let second = send(&app, req("/r")).await;
            assert_eq!(
                runs.get(),
                2,
                "{kind:?}: a `{directive}` response was stored"
            );
            assert_eq!(second.text(), "run 2");
            assert!(!second.cache_status().contains("stored"));
        }
    }
}

#[tokio::test]
async fn vary_keys_each_variant_by_the_named_request_header() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let runs = Counter::default();
        let counter = runs.clone();
        let app = Router::new()
            .route(
                "/greeting",
                get(move |headers: HeaderMap| {
                    let counter = counter.clone();
                    async move {
                        counter.bump();
                        let lang = headers
                            .get("accept-language")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("en")
                            .to_owned();
                        let text = if lang.starts_with("fr") {
                            "bonjour"
                        } else {
                            "hello"
                        };
                        ([(header::VARY, "Accept-Language")], text)
                    }
                }),
            )
            .layer(CacheLayer::new(&h.cache));
        let en = || req_with("/greeting", &[("accept-language", "en")]);
        let fr = || req_with("/greeting", &[("accept-language", "fr")]);

        assert_eq!(send(&app, en()).await.text(), "hello");
        let french = send(&app, fr()).await;
        assert_eq!(
            french.text(),
            "bonjour",
            "{kind:?}: the English variant was served to French"
        );
        let english_again = send(&app, en()).await;
        let french_again = send(&app, fr()).await;
        assert_eq!(english_again.text(), "hello");
        assert_eq!(french_again.text(), "bonjour");
        assert!(english_again.is_layer_hit() && french_again.is_layer_hit());
        assert_eq!(
            runs.get(),
            2,
            "{kind:?}: each variant runs the handler once"
        );
    }
}

#[tokio::test]
async fn vary_star_is_never_stored() {
    let h = harness(StoreKind::Memory).await;
    let runs = Counter::default();
    let app = counting_app(CacheLayer::new(&h.cache), &runs, &[("vary", "*")]);
    send(&app, req("/r")).await;
    send(&app, req("/r")).await;
    assert_eq!(runs.get(), 2);
}

#[tokio::test]
async fn a_stored_response_gets_a_strong_etag_and_answers_if_none_match_with_304() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let runs = Counter::default();
        let app = counting_app(CacheLayer::new(&h.cache), &runs, &[]);
        let first = send(&app, req("/r")).await;
        let etag = first.header("etag").to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
            "{etag:?}"
        );

        let revalidated = send(&app, req_with("/r", &[("if-none-match", &etag)])).await;
        assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED, "{kind:?}");
        assert!(revalidated.body.is_empty());
        assert_eq!(revalidated.header("etag"), etag);

        let other = send(&app, req_with("/r", &[("if-none-match", "\"nope\"")])).await;
        assert_eq!(other.status, StatusCode::OK);
        assert_eq!(other.text(), "run 1");
        assert_eq!(runs.get(), 1);
    }
}

#[tokio::test]
async fn the_services_own_etag_is_kept() {
    let h = harness(StoreKind::Memory).await;
    let runs = Counter::default();
    let app = counting_app(CacheLayer::new(&h.cache), &runs, &[("etag", "\"v7\"")]);
    assert_eq!(send(&app, req("/r")).await.header("etag"), "\"v7\"");
    let hit = send(&app, req_with("/r", &[("if-none-match", "W/\"v7\"")])).await;
    assert_eq!(hit.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn head_is_answered_from_the_get_entry_and_a_head_miss_fills_it() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let runs = Counter::default();
        let app = counting_app(CacheLayer::new(&h.cache), &runs, &[]);
        let head = |uri: &str| {
            Request::builder()
                .method(Method::HEAD)
                .uri(uri)
                .body(Body::empty())
                .expect("request")
        };

        send(&app, req("/r")).await;
        let from_get = send(&app, head("/r")).await;
        assert!(
            from_get.is_layer_hit(),
            "{kind:?}: {}",
            from_get.cache_status()
        );
        assert!(from_get.body.is_empty());
        assert_eq!(from_get.header("content-length"), "5");
        assert_eq!(runs.get(), 1);

        let h2 = harness(kind).await;
        let runs2 = Counter::default();
        let app2 = counting_app(CacheLayer::new(&h2.cache), &runs2, &[]);
        let head_miss = send(&app2, head("/r")).await;
        assert!(head_miss.body.is_empty(), "a HEAD never gets a body");
        let get_after = send(&app2, req("/r")).await;
        assert!(
            get_after.is_layer_hit(),
            "{kind:?}: the HEAD miss did not store the GET"
        );
        assert_eq!(get_after.text(), "run 1");
        assert_eq!(runs2.get(), 1);
    }
}

#[tokio::test]
async fn bodies_over_the_limit_stream_through_uncached() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let runs = Counter::default();
        let counter = runs.clone();
        let app = Router::new()
            .route(
                "/big",
                get(move || {
                    let counter = counter.clone();
                    async move {
                        counter.bump();
                        let chunks =
                            (0..8).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 512])));
                        Body::from_stream(stream::iter(chunks)).into_response()
                    }
                }),
            )
            .route("/small", get(|| async { "small" }))
            .layer(CacheLayer::builder(&h.cache).max_body_size(1024).build());

        let first = send(&app, req("/big")).await;
        let second = send(&app, req("/big")).await;
        assert_eq!(first.body.len(), 4096, "the whole body streams through");
        assert_eq!(second.body.len(), 4096);
        assert_eq!(runs.get(), 2, "{kind:?}: an oversized body was stored");
        assert_eq!(second.cache_status(), "podium; fwd=miss; detail=too-large");

        send(&app, req("/small")).await;
        assert!(send(&app, req("/small")).await.is_layer_hit());
    }
}

/// A layer that honours every client's request `Cache-Control`, as RFC 9111 describes.
fn honouring_requests(cache: &podium_cache_core::Cache) -> CacheLayer {
    CacheLayer::builder(cache)
        .request_cache_control(Audience::Everyone)
        .build()
}

#[tokio::test]
async fn request_no_store_bypasses_and_no_cache_revalidates() {
    let h = harness(StoreKind::Memory).await;
    let runs = Counter::default();
    let app = counting_app(honouring_requests(&h.cache), &runs, &[]);

    let bypassed = send(&app, req_with("/r", &[("cache-control", "no-store")])).await;
    assert_eq!(bypassed.cache_status(), "podium; fwd=request");
    assert!(
        !send(&app, req("/r")).await.is_layer_hit(),
        "no-store must not store"
    );
    assert_eq!(runs.get(), 2);

    let revalidated = send(&app, req_with("/r", &[("cache-control", "no-cache")])).await;
    assert_eq!(
        revalidated.text(),
        "run 3",
        "no-cache must reach the handler"
    );
    assert_eq!(revalidated.cache_status(), "podium; fwd=request; stored");
    let after = send(&app, req("/r")).await;
    assert!(after.is_layer_hit());
    assert_eq!(
        after.text(),
        "run 3",
        "the revalidated answer replaced the entry"
    );
}

#[tokio::test]
async fn a_request_max_age_older_than_the_entry_refetches() {
    let h = harness(StoreKind::Memory).await;
    let runs = Counter::default();
    let app = counting_app(honouring_requests(&h.cache), &runs, &[]);
    send(&app, req("/r")).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let fresh_enough = send(&app, req_with("/r", &[("cache-control", "max-age=60")])).await;
    assert!(fresh_enough.is_layer_hit());
    let too_old = send(&app, req_with("/r", &[("cache-control", "max-age=1")])).await;
    assert_eq!(too_old.cache_status(), "podium; fwd=stale; stored");
    assert_eq!(too_old.text(), "run 2");
}

#[tokio::test]
async fn max_age_and_s_maxage_cap_the_ttl() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        for (value, cap) in [("max-age=7", 7), ("max-age=500, s-maxage=9", 9)] {
            let runs = Counter::default();
            let counter = runs.clone();
            let app = Router::new()
                .route(
                    "/r",
                    get(move || {
                        let counter = counter.clone();
                        async move {
                            counter.bump();
                            ([(header::CACHE_CONTROL, value)], "capped")
                        }
                    }),
                )
                .layer(
                    CacheLayer::builder(&h.cache)
                        .ttl(Duration::from_secs(3600))
                        .detailed_status(Audience::Everyone)
                        .build(),
                );
            send(&app, req("/r")).await;
            let hit = send(&app, req("/r")).await;
            let ttl: i64 = hit
                .cache_status()
                .rsplit("ttl=")
                .next()
                .and_then(|t| t.parse().ok())
                .unwrap_or(i64::MAX);
            assert!(
                ttl <= cap && ttl >= 0,
                "{kind:?} {value}: ttl {ttl} not capped to {cap}"
            );
        }
    }
}

#[tokio::test]
async fn age_is_set_on_hits() {
    let h = harness(StoreKind::Memory).await;
    let runs = Counter::default();
    let app = counting_app(CacheLayer::new(&h.cache), &runs, &[]);
    send(&app, req("/r")).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let hit = send(&app, req("/r")).await;
    let age: u64 = hit.header("age").parse().unwrap_or(0);
    assert!(age >= 1, "age {age}");
}

#[tokio::test]
async fn only_cacheable_statuses_and_methods_are_stored() {
    let h = harness(StoreKind::Memory).await;
    let runs = Counter::default();
    let counter = runs.clone();
    let app = Router::new()
        .route(
            "/fail",
            get({
                let counter = counter.clone();
                move || async move {
                    counter.bump();
                    (StatusCode::INTERNAL_SERVER_ERROR, "boom")
                }
            })
            .post(move || async move {
                counter.bump();
                "posted"
            }),
        )
        .layer(CacheLayer::new(&h.cache));
    send(&app, req("/fail")).await;
    let again = send(&app, req("/fail")).await;
    assert_eq!(again.cache_status(), "podium; fwd=miss; detail=status");
    let post = || Request::post("/fail").body(Body::empty()).expect("request");
    send(&app, post()).await;
    let posted = send(&app, post()).await;
    assert_eq!(posted.cache_status(), "podium; fwd=method");
    assert_eq!(runs.get(), 4);
}

#[tokio::test]
async fn authorization_bypasses_unless_keys_are_per_principal() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let alice = || req_with("/r", &[("authorization", "Bearer alice")]);
        let bob = || req_with("/r", &[("authorization", "Bearer bob")]);

        let runs = Counter::default();
        let shared = counting_app(CacheLayer::new(&h.cache), &runs, &[]);
        send(&shared, alice()).await;
        let second = send(&shared, alice()).await;
        assert_eq!(second.cache_status(), "podium; fwd=bypass; detail=private");
        assert_eq!(
            runs.get(),
            2,
            "{kind:?}: a request with credentials was shared"
        );

        let runs = Counter::default();
        let keyed = counting_app(
            CacheLayer::builder(&h.cache).per_principal().build(),
            &runs,
            &[],
        );
        send(&keyed, req("/r")).await; // the anonymous entry: run 1
        assert_eq!(send(&keyed, alice()).await.text(), "run 2");
        assert_eq!(send(&keyed, bob()).await.text(), "run 3");
        let alice_again = send(&keyed, alice()).await;
        assert!(alice_again.is_layer_hit());
        assert_eq!(
            alice_again.text(),
            "run 2",
            "{kind:?}: principals shared an entry"
        );
        assert_eq!(send(&keyed, req("/r")).await.text(), "run 1");
    }
}

#[tokio::test]
async fn a_configured_session_cookie_makes_a_request_private() {
    let h = harness(StoreKind::Memory).await;
    let runs = Counter::default();
    let app = counting_app(
        CacheLayer::builder(&h.cache)
            .private_cookies(["sid"])
            .build(),
        &runs,
        &[],
    );
    send(&app, req_with("/r", &[("cookie", "theme=dark")])).await;
    let harmless = send(&app, req_with("/r", &[("cookie", "theme=light")])).await;
    assert!(
        harmless.is_layer_hit(),
        "an unrelated cookie must not prevent sharing"
    );
    let session = send(&app, req_with("/r", &[("cookie", "theme=dark; sid=42")])).await;
    assert_eq!(session.cache_status(), "podium; fwd=bypass; detail=private");
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let runs = Counter::default();
        let counter = runs.clone();
        let app = Router::new()
            .route(
                "/r",
                get(move || {
                    let counter = counter.clone();
                    async move {
                        let run = counter.bump();
                        // Slow enough that every stale request below arrives during it.
                        if run > 1 {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                        (
                            [(
                                header::CACHE_CONTROL,
                                "max-age=1, stale-while-revalidate=60",
                            )],
                            format!("run {run}"),
                        )
                    }
                }),
            )
            .layer(
                CacheLayer::builder(&h.cache)
                    .detailed_status(Audience::Everyone)
                    .build(),
            );
        send(&app, req("/r")).await;
        tokio::time::sleep(Duration::from_millis(1_200)).await;

        let stale = futures::future::join_all((0..5).map(|_| send(&app, req("/r")))).await;
        for reply in &stale {
            assert_eq!(reply.text(), "run 1", "{kind:?}: the stale entry is served");
            assert!(
                reply.cache_status().starts_with("podium; hit; ttl=-"),
                "{}",
                reply.cache_status()
            );
        }
        let mut refreshed = None;
        for _ in 0..100 {
            let reply = send(&app, req("/r")).await;
            if reply.text() != "run 1" {
                refreshed = Some(reply);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let refreshed = refreshed.expect("the background refresh stored a new entry");
        assert_eq!(refreshed.text(), "run 2");
        assert_eq!(
            runs.get(),
            2,
            "{kind:?}: the stale entry was refreshed more than once"
        );
    }
}
