//! A scripted origin for the conformance tests: one handler for every method and path that
//! records each request it gets and answers what the test's function says, under the layer
//! in the standards mode or the app mode.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use axum::Router;
use parking_lot::Mutex;
use podium_cache_core::cache::Cache;
use podium_cache_tower::{CacheLayer, CacheLayerBuilder};

/// Which of the layer's modes a test runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `freshness_from_headers()`: RFC 9111 freshness only.
    Standards,
    /// The default: a TTL for responses without freshness.
    App,
}

impl Mode {
    pub const BOTH: [Mode; 2] = [Mode::Standards, Mode::App];

    /// A builder over `cache` in this mode.
    pub fn builder(self, cache: &Cache) -> CacheLayerBuilder {
        match self {
            Mode::Standards => CacheLayer::builder(cache).freshness_from_headers(),
            Mode::App => CacheLayer::builder(cache),
        }
    }
}

/// One request the origin got.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
}

/// What the origin got so far.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    pub fn count(&self) -> usize {
        self.0.lock().len()
    }
    pub fn last(&self) -> Option<Seen> {
        self.0.lock().last().cloned()
    }
    /// The value of `name` in the `n`th request (from 1), or "".
    pub fn header(&self, n: usize, name: &str) -> String {
        self.0
            .lock()
            .get(n.saturating_sub(1))
            .and_then(|seen| seen.headers.get(name))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
}

/// A response with `status`, `headers` and `body`.
pub fn respond<K: AsRef<str>, V: AsRef<str>>(
    status: u16,
    headers: &[(K, V)],
    body: &str,
) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_owned()));
    *response.status_mut() = StatusCode::from_u16(status).expect("status");
    for (name, value) in headers {
        response.headers_mut().append(
            axum::http::HeaderName::from_bytes(name.as_ref().as_bytes()).expect("header name"),
            value.as_ref().parse().expect("header value"),
        );
    }
    response
}

/// A router under `layer` whose every route calls `answer(n, request)` (`n`: this request's
/// number, from 1) after logging the request.
pub fn origin<F>(layer: CacheLayer, answer: F) -> (Router, Log)
where
    F: Fn(usize, &Seen) -> Response<Body> + Clone + Send + Sync + 'static,
{
    slow_origin(layer, std::time::Duration::ZERO, answer)
}

/// [`origin`] whose every request after the first takes `delay` to answer.
pub fn slow_origin<F>(layer: CacheLayer, delay: std::time::Duration, answer: F) -> (Router, Log)
where
    F: Fn(usize, &Seen) -> Response<Body> + Clone + Send + Sync + 'static,
{
    let log = Log::default();
    let seen = log.clone();
    let handler = move |request: Request<Body>| {
        let seen = seen.clone();
        let answer = answer.clone();
        async move {
            let entry = Seen {
                method: request.method().clone(),
                uri: request.uri().to_string(),
                headers: request.headers().clone(),
            };
            let n = {
                let mut log = seen.0.lock();
                log.push(entry.clone());
                log.len()
            };
            if n > 1 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            answer(n, &entry)
        }
    };
    let router = Router::new().fallback(handler).layer(layer);
    (router, log)
}

/// How many of two identical GETs of `/r` (with `request_headers`) reached an origin under
/// `layer` that answers `status` with `headers` (1: the second was served from the cache).
pub async fn origin_calls(
    layer: CacheLayer,
    status: u16,
    headers: &[(&str, &str)],
    request_headers: &[(&str, &str)],
) -> usize {
    let headers = pairs(headers);
    let (app, log) = origin(layer, move |n, _| {
        respond(status, &headers, &format!("run {n}"))
    });
    for _ in 0..2 {
        let response =
            tower::ServiceExt::oneshot(app.clone(), request("GET", "/r", request_headers))
                .await
                .expect("infallible");
        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
    }
    log.count()
}

/// An HTTP-date `offset_secs` from now (negative: in the past).
pub fn http_date(offset_secs: i64) -> String {
    let now = std::time::SystemTime::now();
    let at = if offset_secs >= 0 {
        now + std::time::Duration::from_secs(offset_secs.unsigned_abs())
    } else {
        now - std::time::Duration::from_secs(offset_secs.unsigned_abs())
    };
    httpdate::fmt_http_date(at)
}

/// Owned header pairs, for an origin's closure.
pub fn pairs(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// A request with `method`, `uri` and headers.
pub fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).expect("request")
}
