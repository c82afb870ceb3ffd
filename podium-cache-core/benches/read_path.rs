//! The read path, measured in one run: `Cache::get` hit latency on MemoryStore and RedisStore
//! beside a raw redis `GET` of the same bytes on the same server (the floor); Airtable calls for
//! 1,000 concurrent misses on one id and on 1,000 ids; the requests/s the limiter lets through.
//!
//! `cargo bench -p podium-cache-core --bench read_path [-- --json PATH]` (what `cargo xtask
//! bench read` runs). Percentiles come from one timed call each, single task, after warm-up.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{harness, Event, StoreKind, BASE, TABLE};
use podium_cache_core::source::{AirtableSource, Source};
use serde_json::json;

struct Latency {
    p50_ns: f64,
    p99_ns: f64,
    ops_per_sec: f64,
}

fn summarize(mut samples: Vec<Duration>) -> Latency {
    samples.sort_unstable();
    let pick =
        |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_nanos() as f64;
    let total: Duration = samples.iter().sum();
    Latency {
        p50_ns: pick(0.50),
        p99_ns: pick(0.99),
        ops_per_sec: samples.len() as f64 / total.as_secs_f64(),
    }
}

async fn cache_hits(kind: StoreKind, n: usize) -> (Latency, Option<Latency>) {
    let h = harness(kind).records(1).rate_limit(None).start().await;
    let id = h.ids[0].clone();
    let _ = h.cache.get::<Event>(&id).await.expect("fill");
    for _ in 0..1_000 {
        let _ = h.cache.get::<Event>(&id).await.expect("warm-up");
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let hit = h.cache.get::<Event>(&id).await.expect("hit");
        samples.push(start.elapsed());
        std::hint::black_box(hit);
    }
    assert_eq!(h.calls(), 1, "every measured read was a hit");
    let data_key = h.cache.keys().data(
        "events",
        <Event as podium_cache_core::Cacheable>::schema_hash(),
        &id,
    );
    // The floor is measured on the same server, against the same stored bytes.
    let floor = match &h.redis {
        Some(redis) => Some(raw_get(&redis.url(), &data_key, n).await),
        None => None,
    };
    (summarize(samples), floor)
}

/// A raw `GET` of the data key with the redis crate, on the same server: the floor.
async fn raw_get(url: &str, key: &str, n: usize) -> Latency {
    let client = redis::Client::open(url).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    for _ in 0..1_000 {
        let _: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("get");
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("get");
        samples.push(start.elapsed());
        assert!(value.is_some());
    }
    summarize(samples)
}

async fn concurrent_misses(distinct: bool) -> (u64, Duration) {
    let h = harness(StoreKind::Redis)
        .records(if distinct { 1_000 } else { 1 })
        .latency(Duration::from_millis(100))
        .start()
        .await;
    h.airtable
        .set_latency(Duration::from_millis(100), Duration::from_millis(500));
    let start = Instant::now();
    let readers: Vec<_> = (0..1_000)
        .map(|i| {
            let cache = h.cache.clone();
            let id = if distinct {
                h.ids[i].clone()
            } else {
                h.ids[0].clone()
            };
            tokio::spawn(async move { cache.get::<Event>(&id).await })
        })
        .collect();
    for reader in readers {
        assert!(reader.await.expect("join").expect("read").is_some());
    }
    assert_eq!(h.airtable.calls().rate_limited, 0);
    (h.calls(), start.elapsed())
}

async fn limiter_rate() -> (f64, u64) {
    let h = harness(StoreKind::Memory).records(1).start().await;
    let source = AirtableSource::builder(h.airtable.api_key(), BASE)
        .api_url(h.airtable.url())
        .build()
        .expect("source");
    let n = 26;
    let start = Instant::now();
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let source = source.clone();
            let id = h.ids[0].clone();
            tokio::spawn(async move { source.get(TABLE, &id).await })
        })
        .collect();
    for call in calls {
        assert!(call.await.expect("join").expect("get").is_some());
    }
    // The first 5 go at once; the rate is measured over the windows that follow.
    let rate = (n - 5) as f64 / start.elapsed().as_secs_f64();
    (rate, h.airtable.calls().rate_limited)
}

fn main() {
    let json_path = std::env::args().skip_while(|a| a != "--json").nth(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (memory, _) = cache_hits(StoreKind::Memory, 200_000).await;
        let (redis, floor) = cache_hits(StoreKind::Redis, 20_000).await;
        let floor = floor.expect("raw GET measured");
        let (floor_p50, floor_p99) = (floor.p50_ns, floor.p99_ns);
        let (one_id_calls, one_id_time) = concurrent_misses(false).await;
        let (many_calls, many_time) = concurrent_misses(true).await;
        let (rate, limited) = limiter_rate().await;

        println!("## Read path (one task, after warm-up)\n");
        println!("| measurement | p50 | p99 | ratio to raw redis GET (p50) |");
        println!("|---|---|---|---|");
        println!("| raw redis `GET` of the same bytes (floor) | {:.1} µs | {:.1} µs | 1.00 |", floor_p50 / 1e3, floor_p99 / 1e3);
        println!("| `Cache::get` hit, RedisStore | {:.1} µs | {:.1} µs | {:.2} |", redis.p50_ns / 1e3, redis.p99_ns / 1e3, redis.p50_ns / floor_p50);
        println!("| `Cache::get` hit, MemoryStore | {:.2} µs | {:.2} µs | {:.3} |", memory.p50_ns / 1e3, memory.p99_ns / 1e3, memory.p50_ns / floor_p50);
        println!();
        println!("| misses (Airtable latency 100-500 ms, 5 req/s) | Airtable calls | time |");
        println!("|---|---|---|");
        println!("| 1,000 concurrent misses on one id | {one_id_calls} | {one_id_time:.2?} |");
        println!("| 1,000 concurrent misses on 1,000 ids | {many_calls} | {many_time:.2?} |");
        println!("| limiter, 26 requests at once | {rate:.2} requests/s let through | 429s: {limited} |");

        let results = json!({
            "read_path": {
                "raw_redis_get_ns": {"p50": floor_p50, "p99": floor_p99},
                "cache_get_redis_ns": {"p50": redis.p50_ns, "p99": redis.p99_ns, "ops_per_sec": redis.ops_per_sec},
                "cache_get_memory_ns": {"p50": memory.p50_ns, "p99": memory.p99_ns, "ops_per_sec": memory.ops_per_sec},
                "redis_over_raw_p50": redis.p50_ns / floor_p50,
            },
            "misses": {
                "one_id_1000_concurrent_calls": one_id_calls,
                "distinct_1000_calls": many_calls,
                "distinct_1000_seconds": many_time.as_secs_f64(),
            },
            "limiter": {"requests_per_sec": rate, "rate_limited": limited},
        });
        if let Some(path) = json_path {
            if let Some(parent) = std::path::Path::new(&path).parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            if let Err(err) = std::fs::write(&path, serde_json::to_vec_pretty(&results).unwrap_or_default()) {
                eprintln!("could not write {path}: {err}");
            }
        }
    });
}
