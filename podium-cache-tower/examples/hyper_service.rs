//! The cache layer around a plain hyper service (no axum), stacked with `tower::ServiceBuilder`,
//! over a store alone: no `Cache`, no Airtable source. Runs without the `axum` feature too.
//!
//! ```text
//! cargo run -p podium-cache-tower --example hyper_service
//! ```

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use podium_cache_core::store::MemoryStore;
use podium_cache_tower::CacheLayer;
use tower::{service_fn, ServiceBuilder};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let service = ServiceBuilder::new()
        .layer(
            CacheLayer::with_store(Arc::new(MemoryStore::new(10_000)))
                .ttl(Duration::from_secs(60))
                .build(),
        )
        .service(service_fn(move |request: Request<Incoming>| {
            let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let text = format!("{} rendered by run {run}\n", request.uri().path());
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "text/plain")
                        .header("cache-control", "public, max-age=30")
                        .body(Full::new(Bytes::from(text)))
                        .unwrap_or_default(),
                )
            }
        }));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                if let Err(err) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    eprintln!("connection error: {err}");
                }
            });
        }
    });
    println!("serving on http://{addr}");

    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    for (path, conditional) in [("/report", false), ("/report", false), ("/report", true)] {
        let mut request = Request::get(format!("http://{addr}{path}"));
        if conditional {
            request = request.header("if-none-match", "*");
        }
        let response = sender
            .send_request(request.body(Empty::<Bytes>::new())?)
            .await?;
        let status = response.status();
        let cache_status = response
            .headers()
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        let age = response
            .headers()
            .get("age")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        let body = response.into_body().collect().await?.to_bytes();
        println!(
            "GET {path} → {status} | Cache-Status: {cache_status} | Age: {age} | {}",
            String::from_utf8_lossy(&body).trim()
        );
    }
    println!("the service ran {} time(s)", runs.load(Ordering::SeqCst));
    Ok(())
}
