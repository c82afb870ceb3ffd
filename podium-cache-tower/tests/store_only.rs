//! A layer over a store alone (`CacheLayer::with_store`): no `Cache`, no record source, no
//! axum. Responses are cached, tagged by the service's `Cache-Tag` header, and purged through
//! `Dependents` — the layer's own or one built over the same store and prefix elsewhere.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use podium_cache_core::cache::Dependents;
use podium_cache_core::key::Keys;
use podium_cache_core::store::{MemoryStore, RedisStore, Store};
use podium_cache_tower::CacheLayer;
use podium_local::redis::RedisServer;
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// Every store the layer runs on (the redis-server is kept alive with the store).
async fn stores() -> Vec<(Arc<dyn Store>, Option<RedisServer>)> {
    let server = RedisServer::start().expect("redis-server");
    let redis = RedisStore::builder(server.url())
        .call_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("redis store");
    vec![
        (Arc::new(MemoryStore::new(10_000)), None),
        (Arc::new(redis), Some(server)),
    ]
}

/// `GET path` through `service`: the `X-Cache` header and the body.
async fn get<S>(service: &mut S, path: &str) -> (String, String)
where
    S: Service<
        Request<Empty<Bytes>>,
        Response = Response<podium_cache_tower::CacheBody<Full<Bytes>>>,
    >,
    S::Error: std::fmt::Debug,
{
    let request = Request::get(path).body(Empty::new()).expect("request");
    let response = service
        .ready()
        .await
        .expect("ready")
        .call(request)
        .await
        .expect("response");
    let x_cache = response.headers()["x-cache"]
        .to_str()
        .expect("x-cache")
        .to_owned();
    assert!(
        response.headers().get("cache-tag").is_none(),
        "the layer keeps the tags to itself"
    );
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (x_cache, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_store_only_layer_caches_responses_and_purges_them_by_tag() {
    for (store, _server) in stores().await {
        let name = store.name();
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        let layer = CacheLayer::with_store(Arc::clone(&store))
            .prefix("web")
            .build();
        let mut service = ServiceBuilder::new()
            .layer(layer.clone())
            .service(service_fn(move |_: Request<Empty<Bytes>>| {
                let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("cache-control", "public, max-age=60")
                            .header("cache-tag", "pages:home")
                            .body(Full::new(Bytes::from(format!("run {run}"))))
                            .expect("response"),
                    )
                }
            }));

        assert_eq!(
            get(&mut service, "/home").await,
            ("MISS".into(), "run 1".into()),
            "{name}"
        );
        assert_eq!(
            get(&mut service, "/home").await,
            ("HIT".into(), "run 1".into()),
            "{name}"
        );
        let stored = store.scan("web:http:*", 0, 1_000).await.expect("scan");
        assert!(!stored.keys.is_empty(), "{name}: stored under the prefix");

        layer
            .dependents()
            .purge("pages", "home")
            .await
            .expect("purge");
        assert_eq!(
            get(&mut service, "/home").await,
            ("MISS".into(), "run 2".into()),
            "{name}"
        );
        assert_eq!(
            get(&mut service, "/home").await,
            ("HIT".into(), "run 2".into()),
            "{name}"
        );

        // Another process purges through its own `Dependents` over the same store and prefix.
        let elsewhere = Dependents::new(Arc::clone(&store), Keys::new("web"));
        assert!(
            elsewhere.purge("pages", "home").await.expect("purge") > 0,
            "{name}"
        );
        assert_eq!(
            get(&mut service, "/home").await,
            ("MISS".into(), "run 3".into()),
            "{name}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 3, "{name}");
    }
}
