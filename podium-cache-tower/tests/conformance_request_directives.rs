//! RFC 9111 §5.2.1: request directives (honoured for everyone in the standards mode, for
//! nobody by default in the app mode), and `HEAD` (RFC 9110 §9.3.2).

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::origin::{origin, request, respond, Log, Mode};
use common::{harness, send, Harness, StoreKind};

/// A standards-mode origin whose responses are `Age: 30`, fresh for 60 s, with an `ETag`.
async fn standards_app(mode: Mode) -> (Harness, axum::Router, Log) {
    let h = harness(StoreKind::Memory).await;
    let (app, log) = origin(mode.builder(&h.cache).build(), |n, _| {
        respond(
            200,
            &[("cache-control", "max-age=60"), ("age", "30")],
            &format!("run {n}"),
        )
    });
    (h, app, log)
}

async fn calls_after(mode: Mode, headers: &[(&str, &str)]) -> usize {
    let (_h, app, log) = standards_app(mode).await;
    send(&app, request("GET", "/r", &[])).await;
    send(&app, request("GET", "/r", headers)).await;
    log.count()
}

/// RFC 9111 §5.2.1.1: `max-age` refuses an entry older than it.
#[tokio::test]
async fn rfc9111_5_2_1_1_request_max_age_refuses_older_entries() {
    assert_eq!(
        calls_after(Mode::Standards, &[("cache-control", "max-age=10")]).await,
        2
    );
    assert_eq!(
        calls_after(Mode::Standards, &[("cache-control", "max-age=100")]).await,
        1
    );
    // The app mode ignores request directives unless configured to honour them.
    assert_eq!(
        calls_after(Mode::App, &[("cache-control", "max-age=10")]).await,
        1
    );
}

/// RFC 9111 §5.2.1.3: `min-fresh` wants an entry fresh for at least that much longer.
#[tokio::test]
async fn rfc9111_5_2_1_3_min_fresh_refuses_entries_about_to_go_stale() {
    assert_eq!(
        calls_after(Mode::Standards, &[("cache-control", "min-fresh=40")]).await,
        2
    );
    assert_eq!(
        calls_after(Mode::Standards, &[("cache-control", "min-fresh=10")]).await,
        1
    );
    assert_eq!(
        calls_after(Mode::App, &[("cache-control", "min-fresh=40")]).await,
        1
    );
}

/// How many times the origin is asked for two GETs of `/r`, the second with `cache-control:
/// directive`, when it answers a response 30 s stale on arrival (with `validator`, if any), under
/// a standards-mode layer with `keep_stale` (the default when `None`).
async fn calls_for_stale(
    validator: Option<(&'static str, &'static str)>,
    keep: Option<Duration>,
    directive: &str,
) -> usize {
    let h = harness(StoreKind::Memory).await;
    let mut builder = Mode::Standards.builder(&h.cache);
    if let Some(keep) = keep {
        builder = builder.keep_stale(keep);
    }
    let (app, log) = origin(builder.build(), move |n, _| {
        let mut headers = vec![("cache-control", "max-age=60"), ("age", "90")];
        headers.extend(validator);
        respond(200, &headers, &format!("run {n}"))
    });
    send(&app, request("GET", "/r", &[])).await;
    send(&app, request("GET", "/r", &[("cache-control", directive)])).await;
    log.count()
}

/// RFC 9111 §5.2.1.2: `max-stale` accepts a stale entry (up to its value, or any); one with a
/// validator is kept for validation.
#[tokio::test]
async fn rfc9111_5_2_1_2_max_stale_accepts_stale_entries() {
    for (directive, expected) in [("max-stale=100", 1), ("max-stale", 1), ("max-stale=5", 2)] {
        let calls = calls_for_stale(Some(("etag", "\"e\"")), None, directive).await;
        assert_eq!(calls, expected, "{directive}");
    }
}

/// RFC 9111 §5.2.1.2: `max-stale` accepts a stale response the origin gave no validator too:
/// the standards mode keeps one for a while once stale (`keep_stale`, 60 s by default), and
/// a request without `max-stale` still refetches it.
#[tokio::test]
async fn rfc9111_5_2_1_2_max_stale_accepts_a_stale_response_without_validators() {
    for (keep, directive, expected) in [
        (None, "max-stale=100", 1),
        (None, "max-stale", 1),
        (None, "max-stale=5", 2),
        (None, "max-age=1000", 2),
        (Some(Duration::ZERO), "max-stale=100", 2),
    ] {
        let calls = calls_for_stale(None, keep, directive).await;
        assert_eq!(calls, expected, "keep_stale {keep:?}, {directive}");
    }
}

/// RFC 9111 §5.2.1.7: `only-if-cached` is answered from the store or with `504`.
#[tokio::test]
async fn rfc9111_5_2_1_7_only_if_cached_answers_504_without_an_entry() {
    let (_h, app, log) = standards_app(Mode::Standards).await;
    let only = [("cache-control", "only-if-cached")];
    let miss = send(&app, request("GET", "/r", &only)).await;
    assert_eq!(miss.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(log.count(), 0, "only-if-cached reached the origin");
    send(&app, request("GET", "/r", &[])).await;
    let hit = send(&app, request("GET", "/r", &only)).await;
    assert_eq!(
        (hit.status, hit.text()),
        (StatusCode::OK, "run 1".to_owned())
    );
}

/// RFC 9111 §5.2.1.4: `no-cache` (and `Pragma: no-cache`, §5.4) makes the cache validate.
#[tokio::test]
async fn rfc9111_5_2_1_4_request_no_cache_goes_to_the_origin() {
    assert_eq!(
        calls_after(Mode::Standards, &[("cache-control", "no-cache")]).await,
        2
    );
    assert_eq!(
        calls_after(Mode::Standards, &[("pragma", "no-cache")]).await,
        2
    );
    assert_eq!(
        calls_after(Mode::App, &[("cache-control", "no-cache")]).await,
        1
    );
}

/// RFC 9110 §9.3.2: a HEAD is answered from a stored GET without a body; in the standards
/// mode a HEAD miss is forwarded as a HEAD (the app mode fetches the GET to fill the entry).
#[tokio::test]
async fn rfc9110_9_3_2_head_is_served_from_the_get_and_forwarded_as_head() {
    let (_h, app, log) = standards_app(Mode::Standards).await;
    let head = send(&app, request("HEAD", "/r", &[])).await;
    assert!(head.body.is_empty());
    assert_eq!(
        log.last().map(|s| s.method.to_string()),
        Some("HEAD".into())
    );
    send(&app, request("GET", "/r", &[])).await;
    let from_get = send(&app, request("HEAD", "/r", &[])).await;
    assert!(from_get.is_layer_hit(), "{}", from_get.cache_status());
    assert!(from_get.body.is_empty());
    assert_eq!(from_get.header("content-length"), "5");
    assert_eq!(log.count(), 2);

    let (_h, app, log) = standards_app(Mode::App).await;
    send(&app, request("HEAD", "/r", &[])).await;
    assert_eq!(log.last().map(|s| s.method.to_string()), Some("GET".into()));
}

/// RFC 9111 §5.2.1.5: a request's `no-store` keeps the cache from storing its response (the
/// stored one may still answer others); the app mode ignores request directives by default.
#[tokio::test]
async fn rfc9111_5_2_1_5_request_no_store_stores_nothing() {
    let (_h, app, log) = standards_app(Mode::Standards).await;
    send(&app, request("GET", "/r", &[("cache-control", "no-store")])).await;
    send(&app, request("GET", "/r", &[])).await;
    assert_eq!(log.count(), 2, "the no-store request's answer was stored");
    assert_eq!(
        calls_after(Mode::App, &[("cache-control", "no-store")]).await,
        1
    );
}
