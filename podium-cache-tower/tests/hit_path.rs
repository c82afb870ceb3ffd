//! A fresh hit on a store that keeps its entries in this process (the in-memory store, or the
//! in-process tier in front of Redis) is answered by `Service::call` itself: the returned
//! future is ready on its first poll, and the wrapped service is neither cloned nor called.
//! Everything else (a miss, a stale entry, a store across the network) still goes through the
//! wrapped service.

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use bytes::Bytes;
use common::{body_of, cache_over, harness, tiered, StoreKind};
use futures::FutureExt;
use http_body_util::Full;
use podium_cache_core::store::Store;
use podium_cache_tower::CacheLayer;
use tower::{Layer, Service, ServiceExt};

/// A service answering `hello` that counts its clones and its calls.
#[derive(Default)]
struct Counted {
    clones: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Self {
            clones: Arc::clone(&self.clones),
            calls: Arc::clone(&self.calls),
        }
    }
}

impl Service<Request<Body>> for Counted {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Body>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut response = Response::new(Full::new(Bytes::from_static(b"hello")));
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("max-age=60"),
        );
        std::future::ready(Ok(response))
    }
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("host", "example.test")
        .body(Body::empty())
        .expect("request")
}

/// Fills `/a` through `service` and reads it once, then checks a hit on it is ready at once with no clone or call
/// of the wrapped service, and a miss (`/b`) is not.
async fn hit_is_answered_by_call(layer: CacheLayer, what: &str) {
    let inner = Counted::default();
    let (clones, calls) = (Arc::clone(&inner.clones), Arc::clone(&inner.calls));
    let mut service = layer.layer(inner);

    let filled = service.ready().await.expect("ready").call(get("/a")).await;
    assert_eq!(filled.expect("fill").status(), StatusCode::OK);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "{what}: the miss called the service"
    );
    // The tier takes a response when it is first read back from Redis.
    let warmed = service.ready().await.expect("ready").call(get("/a")).await;
    assert_eq!(warmed.expect("hit").headers()["x-cache"], "HIT", "{what}");
    let clones_after_fill = clones.load(Ordering::SeqCst);

    let future = service.ready().await.expect("ready").call(get("/a"));
    assert_eq!(
        clones.load(Ordering::SeqCst),
        clones_after_fill,
        "{what}: a hit cloned the wrapped service"
    );
    let response = future
        .now_or_never()
        .expect("a hit's future is ready on its first poll")
        .expect("infallible");
    assert_eq!(response.headers()["x-cache"], "HIT", "{what}");
    assert_eq!(&body_of(response).await[..], b"hello", "{what}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "{what}: a hit called the service"
    );

    // A miss goes the usual way: the service is cloned for the request and called.
    let missed = service.ready().await.expect("ready").call(get("/b")).await;
    assert_eq!(missed.expect("miss").headers()["x-cache"], "MISS", "{what}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "{what}: the miss called the service"
    );
    assert!(clones.load(Ordering::SeqCst) > clones_after_fill, "{what}");
}

#[tokio::test]
async fn a_fresh_hit_on_the_memory_store_is_answered_by_call_without_the_wrapped_service() {
    let h = harness(StoreKind::Memory).await;
    hit_is_answered_by_call(CacheLayer::new(&h.cache), "memory").await;
}

#[tokio::test]
async fn a_fresh_hit_in_the_in_process_tier_is_answered_by_call_without_the_wrapped_service() {
    let h = harness(StoreKind::Redis).await;
    let cache = cache_over(&h.airtable, tiered(&h).await as Arc<dyn Store>);
    hit_is_answered_by_call(CacheLayer::new(&cache), "tier").await;
}

#[tokio::test]
async fn a_hit_on_redis_without_a_tier_is_awaited_and_still_skips_the_wrapped_service() {
    let h = harness(StoreKind::Redis).await;
    let inner = Counted::default();
    let calls = Arc::clone(&inner.calls);
    let mut service = CacheLayer::new(&h.cache).layer(inner);
    for _ in 0..2 {
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(get("/a"))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the second GET was a hit");
    // Over the network, the lookup is awaited: the first poll of a hit's future is pending.
    let future = service.ready().await.expect("ready").call(get("/a"));
    let mut future = Box::pin(future);
    let first = futures::poll!(future.as_mut());
    assert!(first.is_pending(), "a Redis read answered without awaiting");
    let response = future.await.expect("response");
    assert_eq!(response.headers()["x-cache"], "HIT");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
