//! Over real sockets: a default response tells a client nothing about other clients' reads
//! (the details are for the clients they are given to), and a client's own `Cache-Control`
//! neither skips the layer's entries by default nor, where honoured, escapes coalescing or
//! its client's scope.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::{harness, serve, Counter, Event, StoreKind};
use parking_lot::Mutex;
use podium_cache_core::scope::Scope;
use podium_cache_core::Cache;
use podium_cache_tower::policy::Audience;
use podium_cache_tower::CacheLayer;

/// The headers that could tell a client about other clients' reads.
const STATUS_HEADERS: [&str; 6] = [
    "cache-status",
    "x-cache",
    "x-cache-hits",
    "x-cache-misses",
    "x-airtable-calls",
    "age",
];

/// The detail headers a default response never carries.
const DETAIL_HEADERS: [&str; 3] = ["x-cache-hits", "x-cache-misses", "x-airtable-calls"];

async fn event(State(cache): State<Cache>, Path(id): Path<String>) -> Response {
    match cache.get::<Event>(&id).await {
        Ok(event) => Json(event).into_response(),
        Err(err) => (axum::http::StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

/// One record under two routes: `/events/{id}` and `/alias/{id}` (as an app reads a user by
/// id and by e-mail), under `layer`.
fn two_routes(cache: &Cache, layer: CacheLayer) -> Router {
    Router::new()
        .route("/events/{id}", get(event))
        .route("/alias/{id}", get(event))
        .layer(layer)
        .with_state(cache.clone())
}

/// The status headers of a GET of `url` (`None`: absent).
async fn status_of(http: &reqwest::Client, url: &str) -> Vec<(&'static str, Option<String>)> {
    status_with(http.get(url)).await
}

async fn status_with(request: reqwest::RequestBuilder) -> Vec<(&'static str, Option<String>)> {
    let response = request.send().await.expect("the app answers");
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let _ = response.bytes().await;
    STATUS_HEADERS
        .iter()
        .map(|name| {
            let value = headers
                .get(*name)
                .map(|v| v.to_str().unwrap_or("<binary>").to_owned());
            (*name, value)
        })
        .collect()
}

fn value<'a>(headers: &'a [(&'static str, Option<String>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.as_deref())
}

#[tokio::test]
async fn a_default_response_says_nothing_about_other_clients_reads() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let base = serve(two_routes(&h.cache, CacheLayer::new(&h.cache))).await;
        let http = reqwest::Client::new();
        let (read, unread) = (&h.ids[0], &h.ids[1]);

        // Someone reads record 0 (the layer and the core cache now hold it).
        let first = status_of(&http, &format!("{base}/events/{read}")).await;
        assert_eq!(value(&first, "x-cache"), Some("MISS"), "{kind:?}");

        // Another client asks for it under another route, and for an unread record: the two
        // answers' status headers are the same, so neither tells whether anyone read it.
        let read_alias = status_of(&http, &format!("{base}/alias/{read}")).await;
        let unread_alias = status_of(&http, &format!("{base}/alias/{unread}")).await;
        assert_eq!(read_alias, unread_alias, "{kind:?}");
        assert_eq!(
            value(&read_alias, "cache-status"),
            Some("podium; fwd=miss; stored")
        );
        assert_eq!(value(&read_alias, "x-cache"), Some("MISS"), "{kind:?}");

        // The same URL again is a hit, as a CDN says, without the entry's remaining lifetime
        // or counts; `Age` stays (RFC 9111 §5.1 requires it on a response from a cache).
        let hit = status_of(&http, &format!("{base}/events/{read}")).await;
        assert_eq!(value(&hit, "cache-status"), Some("podium; hit"), "{kind:?}");
        assert_eq!(value(&hit, "x-cache"), Some("HIT"));
        assert!(value(&hit, "age").is_some(), "{kind:?}: Age is required");
        for response in [&first, &read_alias, &unread_alias, &hit] {
            for name in DETAIL_HEADERS {
                assert_eq!(value(response, name), None, "{kind:?}: {name} was sent");
            }
            let status = value(response, "cache-status").unwrap_or("");
            assert!(!status.contains("ttl="), "{kind:?}: {status}");
        }
    }
}

#[tokio::test]
async fn the_details_go_to_the_trusted_clients_only() {
    let h = harness(StoreKind::Memory).await;
    // A verified credential, not a header anyone could make up.
    let layer = CacheLayer::builder(&h.cache)
        .detailed_status(Audience::trusted(|parts| {
            parts
                .headers
                .get("x-operator-token")
                .is_some_and(|v| v == "op-7f3c9d2b")
        }))
        .build();
    let base = serve(two_routes(&h.cache, layer)).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/events/{}", h.ids[0]);
    let trusted =
        |request: reqwest::RequestBuilder| request.header("x-operator-token", "op-7f3c9d2b");

    let miss = status_with(trusted(http.get(&url))).await;
    assert_eq!(value(&miss, "x-cache-misses"), Some("1"));
    assert_eq!(value(&miss, "x-airtable-calls"), Some("1"));
    let hit = status_with(trusted(http.get(&url))).await;
    let status = value(&hit, "cache-status").unwrap_or("");
    assert!(status.starts_with("podium; hit; ttl="), "{status}");
    assert_eq!(value(&hit, "x-cache-hits"), Some("1"));

    let guessed = status_with(http.get(&url).header("x-operator-token", "op-guess")).await;
    assert_eq!(value(&guessed, "cache-status"), Some("podium; hit"));
    for name in DETAIL_HEADERS {
        assert_eq!(value(&guessed, name), None, "{name} was sent");
    }
}

/// `/r` counting its runs (and recording the scope's client), under `layer`; with a `gate`,
/// every run after the first waits until `arrivals` requests have reached the layer.
fn counting(
    layer: CacheLayer,
    runs: &Counter,
    clients: &Arc<Mutex<Vec<Option<String>>>>,
    gate: Option<(Arc<AtomicUsize>, usize)>,
) -> Router {
    let (runs, clients) = (runs.clone(), Arc::clone(clients));
    let arrivals = gate.as_ref().map(|(a, _)| Arc::clone(a));
    let handler = get(move || {
        let (runs, clients, gate) = (runs.clone(), Arc::clone(&clients), gate.clone());
        async move {
            let run = runs.bump();
            clients
                .lock()
                .push(Scope::current_client().map(|c| c.to_string()));
            if let (Some((arrived, expected)), true) = (gate, run > 1) {
                let deadline = Instant::now() + Duration::from_secs(20);
                while arrived.load(Ordering::SeqCst) < expected {
                    assert!(Instant::now() < deadline, "the requests never all arrived");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                // Long enough for the last arrival to join the running fetch.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            format!("run {run}")
        }
    });
    let router = Router::new().route("/r", handler).layer(layer);
    match arrivals {
        Some(arrived) => router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                arrived.fetch_add(1, Ordering::SeqCst);
                next.run(request)
            },
        )),
        None => router,
    }
}

#[tokio::test]
async fn a_clients_cache_control_does_not_skip_the_entry_by_default() {
    let h = harness(StoreKind::Memory).await;
    let runs = Counter::default();
    let clients = Arc::default();
    let base = serve(counting(CacheLayer::new(&h.cache), &runs, &clients, None)).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/r");
    assert_eq!(http.get(&url).send().await.expect("answer").status(), 200);
    for (name, directive) in [
        ("cache-control", "no-cache"),
        ("cache-control", "max-age=0"),
        ("cache-control", "no-store"),
        ("cache-control", "max-age=0, no-cache, no-store"),
        ("pragma", "no-cache"),
    ] {
        let response = http
            .get(&url)
            .header(name, directive)
            .send()
            .await
            .expect("answer");
        assert_eq!(
            response.headers()["cache-status"],
            "podium; hit",
            "{name}: {directive}"
        );
        assert_eq!(response.text().await.expect("body"), "run 1");
    }
    assert_eq!(runs.get(), 1, "a client's directive made the handler run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honoured_forced_refetch_is_coalesced_and_runs_in_the_clients_scope() {
    const FORCED: usize = 20;
    let h = harness(StoreKind::Memory).await;
    let runs = Counter::default();
    let clients = Arc::default();
    let arrived = Arc::new(AtomicUsize::new(0));
    let layer = CacheLayer::builder(&h.cache)
        .request_cache_control(Audience::Everyone)
        .coalesce_timeout(Duration::from_secs(60))
        .build();
    // The first request fills the entry; then `FORCED` clients force a refetch at once.
    let gate = Some((Arc::clone(&arrived), 1 + FORCED));
    let base = serve(counting(layer, &runs, &clients, gate)).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/r");
    let first = http.get(&url).send().await.expect("answer");
    assert_eq!(first.text().await.expect("body"), "run 1");

    let forced = futures::future::join_all((0..FORCED).map(|i| {
        let directive = if i % 2 == 0 { "no-cache" } else { "max-age=0" };
        http.get(&url).header("cache-control", directive).send()
    }))
    .await;
    for response in forced {
        let response = response.expect("answer");
        assert_eq!(response.text().await.expect("body"), "run 2");
    }
    assert_eq!(
        runs.get(),
        2,
        "every forced refetch ran the handler instead of joining the one running"
    );
    let clients = clients.lock().clone();
    assert_eq!(
        clients,
        vec![Some("127.0.0.1".to_owned()); 2],
        "the refetch counts against its client's share"
    );
}
