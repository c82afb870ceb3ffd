//! The layer in the places it is used: an axum `route_layer`, and a plain hyper service
//! answering real HTTP over loopback.

mod common;

use std::convert::Infallible;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::{body_of, harness, req, send, Counter, StoreKind};
use http::{Request, Response};
use http_body_util::{Empty, Full};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use podium_cache_tower::CacheLayer;
use tower::{service_fn, Layer};

#[tokio::test]
async fn route_layer_caches_only_the_routes_it_wraps() {
    let h = harness(StoreKind::Memory).await;
    let (cached_runs, plain_runs) = (Counter::default(), Counter::default());
    let (c, p) = (cached_runs.clone(), plain_runs.clone());
    let app = Router::new()
        .route(
            "/cached",
            get(move || {
                let c = c.clone();
                async move { format!("cached {}", c.bump()) }
            }),
        )
        .route_layer(CacheLayer::new(&h.cache))
        .route(
            "/plain",
            get(move || {
                let p = p.clone();
                async move { format!("plain {}", p.bump()) }
            }),
        );
    for _ in 0..3 {
        send(&app, req("/cached")).await;
        let plain = send(&app, req("/plain")).await;
        assert_eq!(
            plain.cache_status(),
            "",
            "a route outside the layer got its headers"
        );
    }
    assert_eq!(cached_runs.get(), 1);
    assert_eq!(plain_runs.get(), 3);
    let missing = send(&app, req("/nowhere")).await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn a_plain_hyper_service_is_cached_over_real_http() {
    let h = harness(StoreKind::Redis).await;
    let runs = Counter::default();
    let counter = runs.clone();
    let inner = service_fn(move |_request: Request<hyper::body::Incoming>| {
        let run = counter.bump();
        async move {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                "hyper {run}"
            )))))
        }
    });
    let service = CacheLayer::new(&h.cache).layer(inner);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut replies = Vec::new();
    for _ in 0..3 {
        let request = Request::get(format!("http://{addr}/anything?b=1&a=2"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        let status = response
            .headers()
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        replies.push((status, body_of(response).await));
    }
    server.abort();

    assert_eq!(runs.get(), 1, "the hyper service ran more than once");
    assert_eq!(replies[0].0, "podium; fwd=miss; stored");
    assert!(replies[1].0.starts_with("podium; hit"), "{}", replies[1].0);
    assert!(replies.iter().all(|(_, body)| body == "hyper 1"));
}
