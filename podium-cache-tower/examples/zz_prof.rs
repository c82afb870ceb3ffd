use std::sync::Arc;
use std::time::Instant;
use axum::{body::Body, routing::get, Router};
use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use podium_cache_core::{source::AirtableSource, store::{MemoryStore, Store}, Cache};
use podium_cache_tower::CacheLayer;
use tower::{Service, ServiceExt};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let payload = Bytes::from(vec![b'x'; 841]);
    let source = AirtableSource::builder("k", "appAAAAAAAAAAAAAA").api_url("http://127.0.0.1:9").build().unwrap();
    let cache = Cache::builder(Arc::new(MemoryStore::new(100_000)), Arc::new(source)).build();
    let p = payload.clone();
    let plain = Router::new().route("/events", get(move || { let p = p.clone(); async move { p } }));
    let layered = plain.clone().layer(CacheLayer::new(&cache));
    for (name, app) in [("plain", plain), ("layered", layered)] {
        let mut svc = app.into_service::<Body>();
        let n = 200_000;
        for round in 0..2 {
            let t = Instant::now();
            for _ in 0..n {
                let r = svc.ready().await.unwrap().call(Request::get("/events").body(Body::empty()).unwrap()).await.unwrap();
                let _ = r.into_body().collect().await.unwrap();
            }
            if round == 1 { println!("{name}: {:.2} µs/req", t.elapsed().as_secs_f64() * 1e6 / n as f64); }
        }
    }
    let store = cache.store().clone();
    let keys = vec!["podium:http:abc".to_string(), "podium:http:def".to_string()];
    let t = Instant::now();
    for _ in 0..200_000 { let _ = store.get_many(&keys).await; }
    println!("get_many: {:.2} µs", t.elapsed().as_secs_f64() * 1e6 / 200_000.0);
    let t = Instant::now();
    for _ in 0..200_000 { let _ = cache.keys().http("GET /events"); }
    println!("keys.http: {:.2} µs", t.elapsed().as_secs_f64() * 1e6 / 200_000.0);
}
