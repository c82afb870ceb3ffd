//! RFC 9111 §4.3: validation. Stale entries with validators are validated conditionally, a
//! `304` refreshes the stored headers and serves the stored body, `must-revalidate` and
//! `no-cache` are honoured, and client conditionals are answered from fresh entries.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::origin::{origin, request, respond, slow_origin, Mode};
use common::{harness, send, StoreKind};

/// An origin that answers `200` (body `v1`, `ETag: "v1"`, `Last-Modified`, the first
/// response `cache-control`) or `304` to a matching `If-None-Match`, with `later` directives.
fn validating_origin(
    mode: Mode,
    cache: &podium_cache_core::Cache,
    first: &'static str,
    later: &'static str,
) -> (axum::Router, common::origin::Log) {
    origin(mode.builder(cache).build(), move |n, seen| {
        let cc = if n == 1 { first } else { later };
        if seen
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            respond(
                304,
                &[
                    ("cache-control", cc),
                    ("etag", "\"v1\""),
                    ("x-version", "2"),
                ],
                "",
            )
        } else {
            respond(
                200,
                &[
                    ("cache-control", cc),
                    ("etag", "\"v1\""),
                    ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
                    ("x-version", "1"),
                ],
                "v1",
            )
        }
    })
}

/// RFC 9111 §4.3.1: a stale entry is validated with `If-None-Match` and `If-Modified-Since`
/// built from its validators.
#[tokio::test]
async fn rfc9111_4_3_1_a_stale_entry_is_validated_with_its_validators() {
    for mode in Mode::BOTH {
        let h = harness(StoreKind::Memory).await;
        let (app, log) = validating_origin(mode, &h.cache, "max-age=0", "max-age=60");
        send(&app, request("GET", "/r", &[])).await;
        send(&app, request("GET", "/r", &[])).await;
        assert_eq!(log.count(), 2, "{mode:?}");
        assert_eq!(log.header(2, "if-none-match"), "\"v1\"", "{mode:?}");
        assert_eq!(
            log.header(2, "if-modified-since"),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }
}

/// RFC 9111 §4.3.4: a `304` updates the stored headers, makes the entry fresh again, and the
/// stored body is served.
#[tokio::test]
async fn rfc9111_4_3_4_a_304_updates_the_stored_headers_and_serves_the_stored_body() {
    for mode in Mode::BOTH {
        let h = harness(StoreKind::Memory).await;
        let (app, log) = validating_origin(mode, &h.cache, "max-age=0", "max-age=60");
        send(&app, request("GET", "/r", &[])).await;
        let validated = send(&app, request("GET", "/r", &[])).await;
        assert_eq!(validated.status, StatusCode::OK, "{mode:?}");
        assert_eq!(validated.text(), "v1");
        assert_eq!(
            validated.header("x-version"),
            "2",
            "{mode:?}: headers not updated"
        );
        let hit = send(&app, request("GET", "/r", &[])).await;
        assert!(hit.is_layer_hit(), "{mode:?}: {}", hit.cache_status());
        assert_eq!((hit.text(), hit.header("x-version")), ("v1".into(), "2"));
        assert_eq!(log.count(), 2);
    }
}

/// RFC 9111 §4.3.4 with §5.2.2.4 and §5.2.2.7: fields a `304`'s qualified `no-cache` or
/// `private` names are not stored with the refreshed entry, but reach the client whose request
/// the `304` answered, as after a full fetch.
#[tokio::test]
async fn rfc9111_4_3_4_fields_a_304_withholds_from_the_store_reach_the_validating_client() {
    for mode in Mode::BOTH {
        let h = harness(StoreKind::Memory).await;
        let later = "max-age=60, no-cache=\"x-version\"";
        let (app, log) = validating_origin(mode, &h.cache, "max-age=0", later);
        let first = send(&app, request("GET", "/r", &[])).await;
        assert_eq!(first.header("x-version"), "1", "{mode:?}");
        let validated = send(&app, request("GET", "/r", &[])).await;
        assert_eq!(log.count(), 2, "{mode:?}: not validated");
        assert_eq!(
            validated.header("x-version"),
            "2",
            "{mode:?}: the 304's field did not reach the client it answered"
        );
        let hit = send(&app, request("GET", "/r", &[])).await;
        assert!(hit.is_layer_hit(), "{mode:?}: {}", hit.cache_status());
        assert!(
            hit.headers.get("x-version").is_none(),
            "{mode:?}: a field the 304 withheld was stored and reused"
        );
        assert_eq!(log.count(), 2, "{mode:?}");
    }
}

/// RFC 9111 §5.2.2.2: a stale `must-revalidate` (or `proxy-revalidate`) entry is never served
/// without validation, whatever the request's `max-stale` says.
#[tokio::test]
async fn rfc9111_5_2_2_2_must_revalidate_entries_are_never_served_stale() {
    for directive in ["max-age=0, must-revalidate", "max-age=0, proxy-revalidate"] {
        let h = harness(StoreKind::Memory).await;
        let (app, log) = validating_origin(Mode::Standards, &h.cache, directive, directive);
        send(&app, request("GET", "/r", &[])).await;
        send(
            &app,
            request("GET", "/r", &[("cache-control", "max-stale=600")]),
        )
        .await;
        assert_eq!(log.count(), 2, "{directive}: served stale");
    }
}

/// RFC 9111 §5.2.2.4: a `no-cache` response is stored but validated before every use.
#[tokio::test]
async fn rfc9111_5_2_2_4_no_cache_responses_are_validated_on_every_use() {
    for mode in Mode::BOTH {
        let h = harness(StoreKind::Memory).await;
        let (app, log) = validating_origin(mode, &h.cache, "no-cache", "no-cache");
        send(&app, request("GET", "/r", &[])).await;
        for _ in 0..2 {
            let reply = send(&app, request("GET", "/r", &[])).await;
            assert_eq!(reply.text(), "v1");
        }
        assert_eq!(
            log.count(),
            3,
            "{mode:?}: a no-cache entry was used without validation"
        );
        assert_eq!(log.header(3, "if-none-match"), "\"v1\"", "{mode:?}");
    }
}

/// RFC 9111 §4.3.2: a conditional request is answered `304` from a fresh entry, by
/// `If-None-Match` or else `If-Modified-Since`.
#[tokio::test]
async fn rfc9111_4_3_2_conditional_requests_are_answered_from_a_fresh_entry() {
    for mode in Mode::BOTH {
        let h = harness(StoreKind::Memory).await;
        let (app, log) = validating_origin(mode, &h.cache, "max-age=60", "max-age=60");
        send(&app, request("GET", "/r", &[])).await;
        let by_tag = send(&app, request("GET", "/r", &[("if-none-match", "\"v1\"")])).await;
        assert_eq!(by_tag.status, StatusCode::NOT_MODIFIED, "{mode:?}");
        let since = [("if-modified-since", "Mon, 07 Nov 1994 08:49:37 GMT")];
        let by_date = send(&app, request("GET", "/r", &since)).await;
        assert_eq!(by_date.status, StatusCode::NOT_MODIFIED, "{mode:?}");
        let before = [("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT")];
        let changed = send(&app, request("GET", "/r", &before)).await;
        assert_eq!(changed.status, StatusCode::OK, "{mode:?}");
        assert_eq!(log.count(), 1);
    }
}

/// RFC 9111 §4.3 with §4 (collapsed requests): concurrent requests for one stale entry make
/// one validation.
#[tokio::test]
async fn rfc9111_4_3_concurrent_validations_coalesce() {
    let h = harness(StoreKind::Memory).await;
    let layer = Mode::Standards.builder(&h.cache).build();
    let (app, log) = slow_origin(layer, Duration::from_millis(200), |_, seen| {
        if seen.headers.contains_key("if-none-match") {
            respond(304, &[("cache-control", "max-age=60")], "")
        } else {
            respond(
                200,
                &[("cache-control", "max-age=0"), ("etag", "\"v1\"")],
                "v1",
            )
        }
    });
    send(&app, request("GET", "/r", &[])).await;
    let replies =
        futures::future::join_all((0..8).map(|_| send(&app, request("GET", "/r", &[])))).await;
    assert!(replies.iter().all(|r| r.text() == "v1"));
    assert_eq!(log.count(), 2, "validations were not coalesced");
}

/// RFC 9110 §13.2.1: preconditions the cache does not evaluate (`If-Match`,
/// `If-Unmodified-Since`) go to the origin, and its answer (a `412` with freshness) is never
/// stored for other clients.
#[tokio::test]
async fn rfc9110_13_2_1_unevaluated_preconditions_go_to_the_origin_and_are_not_stored() {
    for mode in Mode::BOTH {
        let h = harness(StoreKind::Memory).await;
        let (app, log) = origin(mode.builder(&h.cache).build(), |_, seen| {
            if seen.headers.contains_key("if-match") {
                respond(412, &[("cache-control", "max-age=60")], "")
            } else {
                respond(200, &[("cache-control", "max-age=60")], "ok")
            }
        });
        let failed = send(&app, request("GET", "/r", &[("if-match", "\"nope\"")])).await;
        assert_eq!(failed.status, StatusCode::PRECONDITION_FAILED, "{mode:?}");
        let plain = send(&app, request("GET", "/r", &[])).await;
        assert_eq!(
            (plain.status, plain.text()),
            (StatusCode::OK, "ok".into()),
            "{mode:?}"
        );
        assert_eq!(log.count(), 2);
    }
}

/// An origin whose GET answers `v1` (stale on arrival, `ETag: "v1"`, `Template-A: 1`) and
/// whose HEAD answers `200` with `head` headers.
fn head_origin(
    cache: &podium_cache_core::Cache,
    head: &'static [(&'static str, &'static str)],
) -> (axum::Router, common::origin::Log) {
    origin(Mode::Standards.builder(cache).build(), move |_, seen| {
        if seen.method == axum::http::Method::HEAD {
            respond(200, head, "")
        } else {
            let headers = [
                ("cache-control", "max-age=0"),
                ("etag", "\"v1\""),
                ("template-a", "1"),
            ];
            respond(200, &headers, "v1")
        }
    })
}

/// RFC 9111 §4.3.5: a `200` to a `HEAD` forwarded for a stale stored `GET` response updates
/// it like a `304` would: new freshness and fields, stored fields it does not send kept, and
/// the stored body serves the next `GET`.
#[tokio::test]
async fn rfc9111_4_3_5_a_head_response_freshens_the_stored_get_response() {
    let h = harness(StoreKind::Memory).await;
    let (app, log) = head_origin(
        &h.cache,
        &[
            ("cache-control", "max-age=3600"),
            ("etag", "\"v1\""),
            ("template-b", "2"),
        ],
    );
    send(&app, request("GET", "/r", &[])).await;
    let head = send(&app, request("HEAD", "/r", &[])).await;
    assert_eq!(
        log.last().map(|s| s.method.to_string()),
        Some("HEAD".into())
    );
    assert_eq!(head.header("template-a"), "1", "a stored field was dropped");
    assert!(head.body.is_empty());
    let get = send(&app, request("GET", "/r", &[])).await;
    assert!(get.is_layer_hit(), "not freshened: {}", get.cache_status());
    assert_eq!((get.text(), get.header("template-b")), ("v1".into(), "2"));
    assert_eq!(log.count(), 2);
}

/// RFC 9111 §4.3.5: a `200` to a `HEAD` with another `ETag` says the stored response is no
/// longer current: it is invalidated, and the next `GET` goes to the origin.
#[tokio::test]
async fn rfc9111_4_3_5_a_head_response_with_another_etag_invalidates_the_stored_response() {
    let h = harness(StoreKind::Memory).await;
    let (app, log) = head_origin(
        &h.cache,
        &[("cache-control", "max-age=3600"), ("etag", "\"v2\"")],
    );
    send(&app, request("GET", "/r", &[])).await;
    send(&app, request("HEAD", "/r", &[])).await;
    // The stale entry would be validated (`If-None-Match`) if it were still stored.
    send(&app, request("GET", "/r", &[])).await;
    assert_eq!(log.count(), 3);
    assert_eq!(
        log.header(3, "if-none-match"),
        "",
        "the replaced entry was still used"
    );
}
