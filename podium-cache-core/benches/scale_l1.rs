//! The in-process tier, measured in one run against a real redis-server:
//! - an in-process hit: `Cache::get` and `Cache::get_arc` p50/p99 beside a bare moka `get` of
//!   the same `Arc` under the same key (goal ≤ 250 ns p50, ≤ 1 µs p99, within 2× of bare moka);
//! - invalidation spread: from a signed webhook delivery being accepted on instance A (the
//!   moment its 2xx would be sent) until instance B, which held the old version in its tier,
//!   returns the new one; 1,000 updates (goal p99 ≤ 50 ms on loopback, max ≤ 1 s).
//!
//! - scale out (`scale/instances.rs`): two instances on a 3-master Redis Cluster beside one
//!   standalone Redis, and four cold instances sharing one Airtable budget.
//!
//! `cargo bench -p podium-cache-core --bench scale_l1 [-- --json PATH]`. Hit percentiles come
//! from one timed call each (the clock read included, for all three alike), single task, after
//! warm-up.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "scale/instances.rs"]
mod instances;

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{harness, Event, Harness, StoreKind, BASE, TABLE};
use podium_cache_core::cache::Cache;
use podium_cache_core::store::{RedisStore, Store, TieredStore};
use podium_cache_core::webhook::{sign, Models, ReceiptStatus, Receiver, WebhookSecret};
use podium_cache_core::Cacheable;
use serde_json::json;

const HIT_SAMPLES: usize = 200_000;
const UPDATES: usize = 1_000;
/// How long B may take to return an update before the bench stops with an error instead of
/// polling forever (the goal is a maximum of 1 s).
const SPREAD_DEADLINE: Duration = Duration::from_secs(30);

struct Latency {
    p50_ns: f64,
    p99_ns: f64,
    max_ns: f64,
}

fn summarize(mut samples: Vec<Duration>) -> Latency {
    samples.sort_unstable();
    let pick =
        |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_nanos() as f64;
    Latency {
        p50_ns: pick(0.50),
        p99_ns: pick(0.99),
        max_ns: samples.last().map_or(0.0, |d| d.as_nanos() as f64),
    }
}

/// One app instance over the harness's redis: its own connections and its own tier.
async fn instance(h: &Harness) -> (Cache, TieredStore) {
    let url = h.redis.as_ref().expect("redis").url();
    let shared: Arc<dyn Store> = Arc::new(RedisStore::connect(&url).await.expect("redis store"));
    let store = TieredStore::builder(shared)
        .capacity(10_000)
        .bus_url(url)
        .link_wait(Duration::from_secs(10))
        .connect()
        .await
        .expect("tiered store");
    assert!(store.tier().is_serving(), "subscribed");
    let cache = Cache::builder(Arc::new(store.clone()), Arc::clone(&h.source)).build();
    (cache, store)
}

/// Reads until B's tier answers (a fill, then a redis hit that is kept, then a tier hit).
async fn warm(cache: &Cache, store: &TieredStore, id: &str) {
    let hits = store.tier().metrics().hits;
    for _ in 0..5 {
        let _ = cache.get::<Event>(id).await.expect("read");
        if store.tier().metrics().hits > hits {
            return;
        }
    }
    panic!("the tier never answered {id}");
}

struct Hits {
    get: Latency,
    get_arc: Latency,
    moka: Latency,
}

async fn hits(h: &Harness) -> Hits {
    let (cache, store) = instance(h).await;
    let id = h.ids[0].clone();
    warm(&cache, &store, &id).await;
    let hits_before = store.tier().metrics().hits;

    let mut get = Vec::with_capacity(HIT_SAMPLES);
    // Each loop runs twice: the first pass is the warm-up.
    for _ in 0..2 {
        get.clear();
        for _ in 0..HIT_SAMPLES {
            let start = Instant::now();
            let value = cache.get::<Event>(&id).await;
            get.push(start.elapsed());
            std::hint::black_box(value.ok());
        }
    }
    let mut get_arc = Vec::with_capacity(HIT_SAMPLES);
    for _ in 0..2 {
        get_arc.clear();
        for _ in 0..HIT_SAMPLES {
            let start = Instant::now();
            let value = cache.get_arc::<Event>(&id).await;
            get_arc.push(start.elapsed());
            std::hint::black_box(value.ok());
        }
    }
    assert_eq!(
        store.tier().metrics().hits - hits_before,
        4 * HIT_SAMPLES as u64,
        "every measured read was an in-process hit"
    );

    // Bare moka: the same key string, the same `Arc`, the value type the tier holds.
    let key = cache.keys().data("events", Event::schema_hash(), &id);
    let value: Arc<dyn Any + Send + Sync> = cache
        .get_arc::<Event>(&id)
        .await
        .expect("read")
        .expect("found");
    let moka: moka::sync::Cache<String, Arc<dyn Any + Send + Sync>> =
        moka::sync::Cache::builder().max_capacity(10_000).build();
    moka.insert(key.clone(), value);
    let mut bare = Vec::with_capacity(HIT_SAMPLES);
    for _ in 0..2 {
        bare.clear();
        for _ in 0..HIT_SAMPLES {
            let start = Instant::now();
            let value = moka.get(key.as_str());
            bare.push(start.elapsed());
            std::hint::black_box(value);
        }
    }
    Hits {
        get: summarize(get),
        get_arc: summarize(get_arc),
        moka: summarize(bare),
    }
}

/// A signed automation delivery of `version` of record `id`.
fn delivery(
    secret: &WebhookSecret,
    id: &str,
    version: i64,
    at_ms: i64,
) -> (Vec<(String, String)>, Bytes) {
    let timestamp = chrono::DateTime::from_timestamp_millis(at_ms)
        .expect("timestamp")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let body = json!({
        "table": TABLE,
        "record_id": id,
        "record": {"id": id, "name": format!("v{version}"), "slug": "bench", "version": version, "owner": []},
        "timestamp": timestamp,
    });
    let body = Bytes::from(serde_json::to_vec(&body).expect("body"));
    let msg_id = format!("msg_bench_{version}_{at_ms}");
    let now = chrono::Utc::now().timestamp();
    let headers = vec![
        ("webhook-id".to_owned(), msg_id.clone()),
        ("webhook-timestamp".to_owned(), now.to_string()),
        (
            "webhook-signature".to_owned(),
            sign(secret, &msg_id, now, &body),
        ),
    ];
    (headers, body)
}

/// Time from A accepting each delivery until B returns the new version, B holding the old one
/// in its tier every time.
async fn spread(h: &Harness) -> (Latency, u64) {
    let (a, _a_store) = instance(h).await;
    let (b, b_store) = instance(h).await;
    let id = h.ids[0].clone();
    let secret = WebhookSecret::generate();
    let receiver = Receiver::new(a, Models::new().register::<Event>(), vec![secret.clone()]);
    let start_ms = chrono::Utc::now().timestamp_millis();
    let mut samples = Vec::with_capacity(UPDATES);
    let mut polls = 0u64;
    for i in 1..=UPDATES {
        warm(&b, &b_store, &id).await;
        let version = 1 + i as i64;
        // The record changes in Airtable first; the delivery is the signal that it did (the
        // receiver re-reads the record before it acknowledges).
        let mut fields = serde_json::Map::new();
        fields.insert("version".into(), json!(version));
        assert!(
            h.airtable.update(BASE, TABLE, &id, fields),
            "the record is in Airtable"
        );
        let (headers, body) = delivery(&secret, &id, version, start_ms + i as i64);
        let receipt = receiver
            .receive(
                |name| {
                    headers
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                },
                &body,
                chrono::Utc::now().timestamp(),
            )
            .await
            .expect("delivery accepted");
        assert_eq!(receipt.status, ReceiptStatus::Applied);
        let acknowledged = Instant::now();
        loop {
            polls += 1;
            let seen = b.get::<Event>(&id).await.expect("read").map(|e| e.version);
            if seen == Some(version) {
                break;
            }
            assert!(
                acknowledged.elapsed() < SPREAD_DEADLINE,
                "update {i}: B still returns version {seen:?}, not {version}, {SPREAD_DEADLINE:?} after A acknowledged it"
            );
            tokio::task::yield_now().await;
        }
        samples.push(acknowledged.elapsed());
    }
    (summarize(samples), polls)
}

fn main() {
    let json_path = std::env::args().skip_while(|a| a != "--json").nth(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let h = harness(StoreKind::Redis).records(1).rate_limit(None).start().await;
        let hits = hits(&h).await;
        let (spread, polls) = spread(&h).await;
        drop(h);

        let ms = |ns: f64| ns / 1e6;
        println!("## In-process tier (one task, after warm-up, {HIT_SAMPLES} timed calls each)\n");
        println!("| measurement | p50 | p99 | p50 ratio to bare moka |");
        println!("|---|---|---|---|");
        println!("| bare moka `get` of the same `Arc` | {:.0} ns | {:.0} ns | 1.00 |", hits.moka.p50_ns, hits.moka.p99_ns);
        println!("| `Cache::get_arc` in-process hit | {:.0} ns | {:.0} ns | {:.2} |", hits.get_arc.p50_ns, hits.get_arc.p99_ns, hits.get_arc.p50_ns / hits.moka.p50_ns);
        println!("| `Cache::get` in-process hit (clones the model) | {:.0} ns | {:.0} ns | {:.2} |", hits.get.p50_ns, hits.get.p99_ns, hits.get.p50_ns / hits.moka.p50_ns);
        println!();
        println!("## Invalidation spread ({UPDATES} webhook updates, A accepts → B returns the new version)\n");
        println!("| p50 | p99 | max | reads of B until it saw the update (total) |");
        println!("|---|---|---|---|");
        println!("| {:.2} ms | {:.2} ms | {:.2} ms | {polls} |", ms(spread.p50_ns), ms(spread.p99_ns), ms(spread.max_ns));

        println!();
        let scale_out = instances::measure().await;

        let results = json!({
            "l1_hit": {
                "samples": HIT_SAMPLES,
                "bare_moka_get": {"p50_ns": hits.moka.p50_ns, "p99_ns": hits.moka.p99_ns},
                "cache_get_arc": {"p50_ns": hits.get_arc.p50_ns, "p99_ns": hits.get_arc.p99_ns},
                "cache_get": {"p50_ns": hits.get.p50_ns, "p99_ns": hits.get.p99_ns},
                "goal": {"p50_ns": 250, "p99_ns": 1000, "max_ratio_to_moka": 2.0},
            },
            "invalidation_spread": {
                "updates": UPDATES,
                "p50_ms": ms(spread.p50_ns),
                "p99_ms": ms(spread.p99_ns),
                "max_ms": ms(spread.max_ns),
                "reads_until_seen": polls,
                "goal": {"p99_ms": 50, "max_ms": 1000},
            },
            "scale_out": scale_out,
        });
        if let Some(path) = json_path {
            match serde_json::to_vec_pretty(&results) {
                Ok(bytes) => {
                    if let Err(err) = std::fs::write(&path, bytes) {
                        eprintln!("could not write {path}: {err}");
                    }
                }
                Err(err) => eprintln!("could not encode the results: {err}"),
            }
        }
    });
}
