//! Hostile traffic over real sockets (issue #9): one address requests random well-formed ids as
//! fast as 16 connections allow while another reads real, uncached ids.
//!
//! - The other address's misses are not held back by the flood: while one waits, Airtable
//!   answers no more calls than are in flight plus one budget window's, because misses are
//!   queued per client, batches are filled round robin and the flooding address never takes
//!   the last call slot of Airtable's budget. (A count, not a time: the latencies with and
//!   without the flood are printed, with `--nocapture`, not asserted.)
//! - Airtable (the local server: 100 ms per call, 5 requests per second) never answers 429.
//! - The random ids leave the store's size as it was (they live in the bounded in-process
//!   negative cache; their 404s are not stored by the HTTP layer).
//! - A client over its outstanding-miss limit gets 429 with `Retry-After`; no other client does,
//!   whether clients are told apart by peer address or by a trusted `X-Forwarded-For`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use podium_cache_core::config::{Secret, Settings};
use podium_example::server::{self, RunOptions, RunningApp};
use podium_local::airtable::{AirtableServer, RunningAirtable};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Map, Value};

const BASE: &str = "appFLOODTESTBASE1";
const LEGIT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const FLOODER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

struct Setup {
    app: RunningApp,
    airtable: RunningAirtable,
    ids: Vec<String>,
    base: String,
}

/// The local Airtable server (`latency` per call, 5 requests/s) holding `events` events, and
/// the app in front of it.
async fn start(events: usize, latency: Duration, tune: impl FnOnce(&mut Settings)) -> Setup {
    let airtable = AirtableServer::builder()
        .latency(latency, latency)
        .rate_limit(Some(5))
        .start()
        .await
        .expect("local airtable");
    let ids = (0..events)
        .map(|i| airtable.insert(BASE, "Events", event_fields(i)))
        .collect();
    airtable.declare_fields(BASE, "Events", &["name", "slug", "description"]);
    let mut settings = Settings::default();
    settings.airtable_api_key = Some(Secret::new(airtable.api_key()));
    settings.airtable_base_id = Some(BASE.to_owned());
    settings.airtable_api_url = airtable.url();
    tune(&mut settings);
    let app = server::start(RunOptions {
        bind: SocketAddr::from((LEGIT, 0)),
        settings: Some(settings),
        ..RunOptions::default()
    })
    .await
    .expect("app starts");
    let base = format!("http://{}", app.addr);
    Setup {
        app,
        airtable,
        ids,
        base,
    }
}

fn event_fields(i: usize) -> Map<String, Value> {
    match json!({"name": format!("Event {i}"), "slug": format!("event-{i}"), "description": "x"}) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// An HTTP client whose connections come from `address`.
fn client_from(address: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(address))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

fn random_id() -> String {
    let tail: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(14)
        .map(char::from)
        .collect();
    format!("rec{tail}")
}

async fn store_keys(app: &RunningApp) -> usize {
    let store = app.cache.store();
    let (mut keys, mut cursor) = (0, 0);
    loop {
        let page = store.scan("*", cursor, 1_000).await.expect("scan");
        keys += page.keys.len();
        cursor = page.cursor;
        if cursor == 0 {
            return keys;
        }
    }
}

/// What the flooding connections got.
#[derive(Default)]
struct FloodStats {
    requests: AtomicU64,
    not_found: AtomicU64,
    too_many: AtomicU64,
    other: AtomicU64,
}

/// 16 connections from the flooding address asking for random ids until `stop`.
fn flood(
    base: &str,
    stop: &Arc<AtomicBool>,
    stats: &Arc<FloodStats>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let http = client_from(FLOODER);
    (0..16)
        .map(|_| {
            let (http, base) = (http.clone(), base.to_owned());
            let (stop, stats) = (Arc::clone(stop), Arc::clone(stats));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let url = format!("{base}/events/{}", random_id());
                    let status = http.get(url).send().await.map(|r| r.status().as_u16());
                    stats.requests.fetch_add(1, Ordering::Relaxed);
                    match status {
                        Ok(404) => stats.not_found.fetch_add(1, Ordering::Relaxed),
                        Ok(429) => stats.too_many.fetch_add(1, Ordering::Relaxed),
                        _ => stats.other.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect()
}

/// The legitimate address reads each of `ids` (uncached) once, ~600 ms apart: for each, its
/// latency and how many Airtable calls were answered while it waited.
async fn legit_misses(
    http: &reqwest::Client,
    base: &str,
    airtable: &RunningAirtable,
    ids: &[String],
) -> Vec<(Duration, u64)> {
    let mut latencies = Vec::with_capacity(ids.len());
    for id in ids {
        let started = Instant::now();
        let calls_before = airtable.calls().total;
        let response = http
            .get(format!("{base}/events/{id}"))
            .send()
            .await
            .expect("answer");
        let status = response.status().as_u16();
        let miss = response
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.expect("body");
        latencies.push((started.elapsed(), airtable.calls().total - calls_before));
        assert_eq!(status, 200, "{id}: {}", String::from_utf8_lossy(&body));
        assert_ne!(miss.as_deref(), Some("HIT"), "{id} was not cached yet");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    latencies
}

/// The nearest-rank percentile `p` (0..=1) of `samples`.
fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_id_flood_from_one_address_leaves_another_addresss_misses_as_fast() {
    // Kept short for the test command (about 45 s); the bench-grade figures come from more
    // rounds of the same code (`FLOOD_ROUNDS=5 cargo test … -- --nocapture`).
    let rounds: usize = std::env::var("FLOOD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    const PER_BLOCK: usize = 12;
    let setup = start(2 * rounds * PER_BLOCK, Duration::from_millis(100), |_| {}).await;
    let legit = client_from(LEGIT);
    // Warm the connection and the app (one real id, not measured).
    let warm = legit
        .get(format!("{}/healthz", setup.base))
        .send()
        .await
        .expect("healthz");
    assert_eq!(warm.status().as_u16(), 200);

    let stats = Arc::new(FloodStats::default());
    let mut baseline = Vec::new();
    let mut flooded = Vec::new();
    let mut flood_time = Duration::ZERO;
    let mut flood_calls = 0;
    let keys_before = store_keys(&setup.app).await;
    let mut blocks = setup.ids.chunks(PER_BLOCK);
    for _ in 0..rounds {
        let ids = blocks.next().expect("ids");
        baseline.extend(legit_misses(&legit, &setup.base, &setup.airtable, ids).await);

        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let calls_before = setup.airtable.calls().total;
        let flooders = flood(&setup.base, &stop, &stats);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let ids = blocks.next().expect("ids");
        flooded.extend(legit_misses(&legit, &setup.base, &setup.airtable, ids).await);
        stop.store(true, Ordering::Relaxed);
        for task in flooders {
            task.await.expect("flood task");
        }
        flood_time += started.elapsed();
        flood_calls += setup.airtable.calls().total - calls_before;
        // Let the flood's call slots pass before the next baseline block.
        tokio::time::sleep(Duration::from_millis(1_200)).await;
    }
    let keys_after = store_keys(&setup.app).await;

    let airtable = setup.airtable.calls();
    let flood_requests = stats.requests.load(Ordering::Relaxed);
    let waited_behind = flooded.iter().map(|(_, calls)| *calls).max().unwrap_or(0);
    let baseline: Vec<Duration> = baseline.into_iter().map(|(latency, _)| latency).collect();
    let flooded: Vec<Duration> = flooded.into_iter().map(|(latency, _)| latency).collect();
    let (p50_base, p99_base) = (percentile(&baseline, 0.5), percentile(&baseline, 0.99));
    let (p50_flood, p99_flood) = (percentile(&flooded, 0.5), percentile(&flooded, 0.99));
    println!(
        "legitimate misses ({} each): without flood p50 {:.1} ms p99 {:.1} ms; with flood p50 {:.1} ms p99 {:.1} ms; p99 ratio {:.2}",
        baseline.len(),
        ms(p50_base),
        ms(p99_base),
        ms(p50_flood),
        ms(p99_flood),
        ms(p99_flood) / ms(p99_base),
    );
    println!(
        "flood: {flood_requests} requests in {:.1} s ({:.0}/s): {} answered 404, {} answered 429, {} other",
        flood_time.as_secs_f64(),
        flood_requests as f64 / flood_time.as_secs_f64(),
        stats.not_found.load(Ordering::Relaxed),
        stats.too_many.load(Ordering::Relaxed),
        stats.other.load(Ordering::Relaxed),
    );
    println!(
        "airtable: {} calls in all, {:.2} calls/s during the flood, {} answered 429",
        airtable.total,
        flood_calls as f64 / flood_time.as_secs_f64(),
        airtable.rate_limited,
    );
    let legit_reads = baseline.len() + flooded.len();
    println!(
        "store: {keys_before} keys before, {keys_after} after = {:.2} keys per legitimate read ({legit_reads} reads), with {flood_requests} random ids asked; negative cache: {} ids",
        (keys_after - keys_before) as f64 / legit_reads as f64,
        setup.app.cache.negative_entries(),
    );

    // The latencies above are printed, not asserted (a loaded machine stretches them): what
    // the fair share promises is structural. A legitimate miss is sent in the next free call
    // slot, so while it waits Airtable answers at most the calls already in flight and those
    // of one budget window (5 each), plus its own.
    println!("Airtable calls answered while a legitimate miss waited during the flood: at most {waited_behind}");
    assert!(
        waited_behind <= 11,
        "a legitimate miss waited behind {waited_behind} Airtable calls of the flood"
    );
    assert_eq!(airtable.rate_limited, 0, "Airtable never answered 429");
    assert_eq!(
        stats.other.load(Ordering::Relaxed),
        0,
        "every flood request got 404 or 429"
    );
    assert!(
        flood_requests as usize > flooded.len(),
        "the flood ran: {flood_requests} requests"
    );
    // Each legitimate miss stores its record, index entry, response and tag (≤ 5 keys); the
    // thousands of random ids add nothing.
    assert!(
        keys_after <= keys_before + 5 * legit_reads,
        "store grew from {keys_before} to {keys_after} keys"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_miss_limit_gets_429_with_retry_after_and_no_other_client_does() {
    let setup = start(3, Duration::from_millis(300), |s| s.max_client_misses = 4).await;
    let flooder = client_from(FLOODER);
    let legit = client_from(LEGIT);
    let burst: Vec<_> = (0..32)
        .map(|_| {
            let request = flooder.get(format!("{}/events/{}", setup.base, random_id()));
            tokio::spawn(async move { request.send().await })
        })
        .collect();
    let reads: Vec<_> = setup
        .ids
        .iter()
        .map(|id| {
            let request = legit.get(format!("{}/events/{id}", setup.base));
            tokio::spawn(async move { request.send().await })
        })
        .collect();
    let mut refused = 0;
    for answer in burst {
        let answer = answer.await.expect("task").expect("answer");
        match answer.status().as_u16() {
            404 => {}
            429 => {
                refused += 1;
                let retry = answer.headers().get("retry-after").expect("Retry-After");
                let seconds: u64 = retry.to_str().unwrap_or("").parse().expect("seconds");
                assert!(seconds >= 1);
            }
            other => panic!("flood answered {other}"),
        }
    }
    for answer in reads {
        let answer = answer.await.expect("task").expect("answer");
        assert_eq!(answer.status().as_u16(), 200, "the other client is served");
    }
    assert!(
        refused >= 20,
        "at most 4 of 32 misses outstanding: {refused} refused"
    );
    assert_eq!(setup.app.cache.metrics().misses_refused, refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_client() {
    let setup = start(3, Duration::from_millis(300), |s| {
        s.max_client_misses = 4;
        s.trusted_client_header = Some("x-forwarded-for".to_owned());
    })
    .await;
    // Both come through the same proxy (one peer address).
    let proxy = client_from(LEGIT);
    let burst: Vec<_> = (0..32)
        .map(|_| {
            let request = proxy
                .get(format!("{}/events/{}", setup.base, random_id()))
                .header("x-forwarded-for", "198.51.100.7, 10.0.0.1");
            tokio::spawn(async move { request.send().await })
        })
        .collect();
    let reads: Vec<_> = setup
        .ids
        .iter()
        .map(|id| {
            let request = proxy
                .get(format!("{}/events/{id}", setup.base))
                .header("x-forwarded-for", "198.51.100.8, 10.0.0.1");
            tokio::spawn(async move { request.send().await })
        })
        .collect();
    let mut refused = 0;
    for answer in burst {
        let status = answer
            .await
            .expect("task")
            .expect("answer")
            .status()
            .as_u16();
        assert!(status == 404 || status == 429, "{status}");
        refused += u64::from(status == 429);
    }
    for answer in reads {
        let answer = answer.await.expect("task").expect("answer");
        assert_eq!(
            answer.status().as_u16(),
            200,
            "another forwarded client is served"
        );
    }
    assert!(refused >= 20, "{refused} refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_query_strings_are_answered_from_the_entry_of_their_path_and_store_nothing() {
    let setup = start(2, Duration::from_millis(100), |_| {}).await;
    let http = client_from(FLOODER);
    let hot = format!("{}/events/{}", setup.base, setup.ids[0]);
    let first = http.get(&hot).send().await.expect("answer");
    assert_eq!(first.headers()["x-cache"], "MISS");
    let keys_before = store_keys(&setup.app).await;
    let calls_before = setup.airtable.calls().total;
    for n in 0..300 {
        let junk: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        let answer = http
            .get(format!("{hot}?{junk}={n}&_={junk}"))
            .send()
            .await
            .expect("answer");
        assert_eq!(answer.status().as_u16(), 200);
        assert_eq!(answer.headers()["x-cache"], "HIT", "request {n}");
    }
    assert_eq!(
        store_keys(&setup.app).await,
        keys_before,
        "random query strings grew the store"
    );
    assert_eq!(
        setup.airtable.calls().total,
        calls_before,
        "no Airtable call"
    );
}
