//! RFC 5861 §4 `stale-if-error`: a stale entry that allows it answers when the origin fails
//! with a `5xx` or cannot be reached (the layer in front of a forwarding proxy, over real
//! sockets); never past its window, never for `must-revalidate` (RFC 9111 §5.2.2.2).

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use common::origin::{origin, request, respond, Mode};
use common::{harness, send, serve, StoreKind};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use podium_cache_tower::CacheLayer;
use tower::{Layer, ServiceExt};

/// RFC 5861 §4: a `5xx` from the origin is answered with the stale entry within the window.
#[tokio::test]
async fn rfc5861_4_stale_if_error_answers_a_5xx_with_the_stale_entry() {
    for mode in Mode::BOTH {
        for (directive, served_stale) in [
            ("max-age=0, stale-if-error=600", true),
            ("max-age=0, stale-if-error=600, must-revalidate", false),
            ("max-age=0", false),
        ] {
            let h = harness(StoreKind::Memory).await;
            let (app, _log) = origin(mode.builder(&h.cache).build(), move |n, _| {
                if n == 1 {
                    respond(
                        200,
                        &[("cache-control", directive), ("etag", "\"v1\"")],
                        "good",
                    )
                } else {
                    respond(503, &[("x", "y")], "down")
                }
            });
            send(&app, request("GET", "/r", &[])).await;
            let reply = send(&app, request("GET", "/r", &[])).await;
            if served_stale {
                assert_eq!(
                    (reply.status, reply.text()),
                    (StatusCode::OK, "good".into()),
                    "{mode:?}"
                );
            } else {
                assert_eq!(
                    reply.status,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "{mode:?} {directive}"
                );
            }
        }
    }
}

/// A forwarding proxy service: sends each request to the origin `target` names now.
fn proxy(
    target: Arc<Mutex<String>>,
) -> impl tower::Service<
    Request<Body>,
    Response = Response<Body>,
    Error = reqwest::Error,
    Future = impl Send + 'static,
> + Clone
       + Send
       + 'static {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    tower::service_fn(move |request: Request<Body>| {
        let client = client.clone();
        let url = format!("{}{}", target.lock(), request.uri());
        async move {
            let reply = client
                .request(request.method().clone(), url)
                .headers(request.headers().clone())
                .send()
                .await?;
            let mut response = Response::builder().status(reply.status());
            for (name, value) in reply.headers() {
                response = response.header(name, value);
            }
            let body = reply.bytes().await?;
            Ok(response.body(Body::from(body)).expect("response"))
        }
    })
}

/// RFC 5861 §4: when the origin cannot be reached at all, the stale entry answers.
#[tokio::test]
async fn rfc5861_4_stale_if_error_answers_a_connection_error_with_the_stale_entry() {
    for mode in Mode::BOTH {
        let h = harness(StoreKind::Memory).await;
        let live = axum::Router::new().fallback(|| async {
            (
                [
                    ("cache-control", "max-age=0, stale-if-error=600"),
                    ("etag", "\"v1\""),
                ],
                "good",
            )
        });
        let target = Arc::new(Mutex::new(serve(live).await));
        let layer: CacheLayer = mode.builder(&h.cache).build();
        let service = layer.layer(proxy(Arc::clone(&target)));
        let first = service
            .clone()
            .oneshot(request("GET", "/r", &[]))
            .await
            .expect("first");
        assert_eq!(first.status(), StatusCode::OK);
        // A port nothing listens on any more.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        *target.lock() = format!("http://{}", dead.local_addr().expect("addr"));
        drop(dead);
        let reply = service
            .clone()
            .oneshot(request("GET", "/r", &[]))
            .await
            .unwrap_or_else(|err| {
                panic!("{mode:?}: the connection error reached the client: {err}")
            });
        assert_eq!(reply.status(), StatusCode::OK);
        let body = reply.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"good");
    }
}

/// RFC 5861 §4: a request's own `stale-if-error=N` accepts the stale entry when the origin
/// fails, when the entry is at most N seconds stale; the app mode ignores request directives
/// by default.
#[tokio::test]
async fn rfc5861_4_request_stale_if_error_accepts_the_stale_entry_on_a_5xx() {
    for (mode, request_cc, served_stale) in [
        (Mode::Standards, "stale-if-error=600", true),
        (Mode::Standards, "stale-if-error=10", false),
        (Mode::App, "stale-if-error=600", false),
    ] {
        let h = harness(StoreKind::Memory).await;
        let (app, _log) = origin(mode.builder(&h.cache).build(), move |n, _| {
            if n == 1 {
                // Stale by 99 s on arrival, kept to be validated (it has an `ETag`).
                let headers = [
                    ("cache-control", "max-age=1"),
                    ("age", "100"),
                    ("etag", "\"v1\""),
                ];
                respond(200, &headers, "good")
            } else {
                respond(503, &[("x", "y")], "down")
            }
        });
        send(&app, request("GET", "/r", &[])).await;
        let reply = send(&app, request("GET", "/r", &[("cache-control", request_cc)])).await;
        let expected = if served_stale {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        assert_eq!(reply.status, expected, "{mode:?} {request_cc}");
    }
}

/// RFC 5861 §4: a request's `stale-if-error` takes a stale response without validators too
/// (kept for a while once stale in the standards mode).
#[tokio::test]
async fn rfc5861_4_request_stale_if_error_accepts_a_stale_response_without_validators() {
    let h = harness(StoreKind::Memory).await;
    let (app, log) = origin(Mode::Standards.builder(&h.cache).build(), move |n, _| {
        if n == 1 {
            respond(
                200,
                &[("cache-control", "max-age=1"), ("age", "10")],
                "good",
            )
        } else {
            respond(503, &[("x", "y")], "down")
        }
    });
    send(&app, request("GET", "/r", &[])).await;
    let reply = send(
        &app,
        request("GET", "/r", &[("cache-control", "stale-if-error=600")]),
    )
    .await;
    assert_eq!(log.count(), 2, "the origin was asked first");
    assert_eq!(
        (reply.status, reply.text()),
        (StatusCode::OK, "good".into())
    );
    let plain = send(&app, request("GET", "/r", &[])).await;
    assert_eq!(plain.status, StatusCode::SERVICE_UNAVAILABLE);
}

/// RFC 9111 §5.2.2.2 (and §5.2.2.8 `proxy-revalidate`, §5.2.2.10 `s-maxage` for a shared
/// cache): when the origin cannot be reached, a stale entry that must be revalidated is never
/// served; the cache generates a `504`.
#[tokio::test]
async fn rfc9111_5_2_2_2_must_revalidate_answers_504_when_the_origin_is_unreachable() {
    for directive in [
        "max-age=0, must-revalidate, stale-if-error=600",
        "max-age=0, proxy-revalidate",
        "s-maxage=0",
    ] {
        for mode in Mode::BOTH {
            let h = harness(StoreKind::Memory).await;
            let live = axum::Router::new().fallback(move || async move {
                ([("cache-control", directive), ("etag", "\"v1\"")], "good")
            });
            let target = Arc::new(Mutex::new(serve(live).await));
            let service = mode
                .builder(&h.cache)
                .build()
                .layer(proxy(Arc::clone(&target)));
            let first = service.clone().oneshot(request("GET", "/r", &[])).await;
            assert_eq!(first.expect("first").status(), StatusCode::OK);
            let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            *target.lock() = format!("http://{}", dead.local_addr().expect("addr"));
            drop(dead);
            let reply = service
                .clone()
                .oneshot(request("GET", "/r", &[("cache-control", "max-stale=600")]))
                .await
                .unwrap_or_else(|err| {
                    panic!("{mode:?} {directive}: error reached the client: {err}")
                });
            assert_eq!(
                reply.status(),
                StatusCode::GATEWAY_TIMEOUT,
                "{mode:?} {directive}"
            );
        }
    }
}
