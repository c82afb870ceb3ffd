//! RFC 9110 §14: range requests are answered from a stored full response.

mod common;

use axum::http::StatusCode;
use common::origin::{origin, request, respond, Log, Mode};
use common::{harness, send, Harness, StoreKind};

async fn ranged_app(mode: Mode) -> (Harness, axum::Router, Log) {
    let h = harness(StoreKind::Memory).await;
    let (app, log) = origin(mode.builder(&h.cache).build(), |_, _| {
        respond(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"abc\""),
                ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ],
            "0123456789",
        )
    });
    (h, app, log)
}

/// RFC 9110 §14.2: a single byte range (first-last, open, suffix) gets `206` with
/// `Content-Range`, from the stored response, also on the miss that stores it.
#[tokio::test]
async fn rfc9110_14_2_a_byte_range_is_answered_206_from_the_stored_response() {
    for mode in Mode::BOTH {
        let (_h, app, log) = ranged_app(mode).await;
        for (range, body, content_range) in [
            ("bytes=2-4", "234", "bytes 2-4/10"),
            ("bytes=7-", "789", "bytes 7-9/10"),
            ("bytes=-2", "89", "bytes 8-9/10"),
            ("bytes=8-100", "89", "bytes 8-9/10"),
        ] {
            let reply = send(&app, request("GET", "/r", &[("range", range)])).await;
            assert_eq!(
                reply.status,
                StatusCode::PARTIAL_CONTENT,
                "{mode:?} {range}"
            );
            assert_eq!(reply.text(), body, "{mode:?} {range}");
            assert_eq!(reply.header("content-range"), content_range);
        }
        assert_eq!(log.count(), 1, "{mode:?}: the origin was asked for ranges");
        assert!(log.last().is_some_and(|s| !s.headers.contains_key("range")));
    }
}

/// RFC 9110 §15.5.17: a range past the end is `416` with `Content-Range: bytes */len`.
#[tokio::test]
async fn rfc9110_15_5_17_an_unsatisfiable_range_is_416() {
    let (_h, app, _log) = ranged_app(Mode::Standards).await;
    send(&app, request("GET", "/r", &[])).await;
    let reply = send(&app, request("GET", "/r", &[("range", "bytes=20-30")])).await;
    assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(reply.header("content-range"), "bytes */10");
}

/// RFC 9110 §13.1.5: `If-Range` that does not match (or a weak tag) gets the full response.
#[tokio::test]
async fn rfc9110_13_1_5_if_range_mismatch_gets_the_full_response() {
    let (_h, app, _log) = ranged_app(Mode::Standards).await;
    send(&app, request("GET", "/r", &[])).await;
    for (if_range, status) in [
        ("\"abc\"", StatusCode::PARTIAL_CONTENT),
        ("\"other\"", StatusCode::OK),
        ("W/\"abc\"", StatusCode::OK),
        ("Sun, 06 Nov 1994 08:49:37 GMT", StatusCode::PARTIAL_CONTENT),
        ("Mon, 07 Nov 1994 08:49:37 GMT", StatusCode::OK),
    ] {
        let headers = [("range", "bytes=0-1"), ("if-range", if_range)];
        let reply = send(&app, request("GET", "/r", &headers)).await;
        assert_eq!(reply.status, status, "If-Range: {if_range}");
    }
}
