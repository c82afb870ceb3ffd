//! The cache layer as a shared HTTP cache in front of another server: a forwarding (reverse)
//! proxy in the standards mode (`freshness_from_headers()`), over the in-memory store. Every
//! request goes to the origin unless the layer can answer it from what RFC 9111 lets it keep;
//! an origin that cannot be reached is a connection error the layer may answer with a stale
//! response (`stale-if-error`, RFC 5861), and otherwise a `502 Bad Gateway`.
//!
//! ```text
//! cargo run -p podium-cache-tower --example forward_proxy -- 127.0.0.1:8080 127.0.0.1:8000
//! ```
//!
//! The first address is where the proxy listens (default `127.0.0.1:8080`), the second the
//! origin it forwards to (default `127.0.0.1:8000`). A third argument, a `redis://` URL, keeps
//! the responses in that Redis (or Valkey) behind the coherent in-process tier, shared by
//! every proxy started on it, instead of in this process's memory.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::HOST;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use podium_cache_core::store::{MemoryStore, RedisStore, Store, TieredStore};
use podium_cache_tower::CacheLayer;
use tower::{service_fn, ServiceBuilder, ServiceExt};

type ProxyBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Sends `request` to `origin` on a connection of its own, as HTTP/1.1.
async fn forward(
    origin: SocketAddr,
    mut request: Request<Incoming>,
) -> Result<Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    *request.uri_mut() = path.parse::<Uri>()?;
    if !request.headers().contains_key(HOST) {
        request
            .headers_mut()
            .insert(HOST, origin.to_string().parse()?);
    }
    let stream = tokio::net::TcpStream::connect(origin).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            eprintln!("origin connection: {err}");
        }
    });
    Ok(sender.send_request(request).await?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()?;
    let origin: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8000".into())
        .parse()?;

    let store: Arc<dyn Store> = match args.next() {
        None => Arc::new(MemoryStore::new(100_000)),
        Some(url) => {
            let shared: Arc<dyn Store> = Arc::new(RedisStore::connect(&url).await?);
            Arc::new(TieredStore::builder(shared).bus_url(url).connect().await?)
        }
    };
    let cache = ServiceBuilder::new()
        .layer(
            CacheLayer::with_store(store)
                .freshness_from_headers()
                .build(),
        )
        .service(service_fn(move |request| forward(origin, request)));

    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!(
        "caching proxy on http://{} for http://{origin}",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let cache = cache.clone();
        // A connection error the layer could not answer from its store becomes a 502.
        let service = service_fn(move |request: Request<Incoming>| {
            let cache = cache.clone();
            async move {
                let response: Response<ProxyBody> = match cache.oneshot(request).await {
                    Ok(response) => response.map(|body| body.map_err(Into::into).boxed()),
                    Err(err) => {
                        let mut response = Response::new(
                            Full::new(Bytes::from(format!("origin unreachable: {err}\n")))
                                .map_err(Into::into)
                                .boxed(),
                        );
                        *response.status_mut() = StatusCode::BAD_GATEWAY;
                        response
                    }
                };
                Ok::<_, Infallible>(response)
            }
        });
        tokio::spawn(async move {
            let service = TowerToHyperService::new(service);
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("client connection: {err}");
            }
        });
    }
}
