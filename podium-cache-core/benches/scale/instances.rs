//! Scale-out figures with several engine instances (issue 10), part of `scale_l1`:
//! - read throughput of two `Cache` instances on a 3-master Redis Cluster beside the same two
//!   on one standalone redis-server (every read a store hit, no in-process tier);
//! - four instances with cold caches, one redis-server and the store-backed shared Airtable
//!   limiter (built by `Cache::from_settings`, as an app builds them), reading the same 2,000
//!   records through one base of the local Airtable server (100-500 ms, 5 requests/s): the
//!   server's 429s, the calls they made together per second, and the seconds until every
//!   instance has read every record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use podium_cache_core::cache::Cache;
use podium_cache_core::config::{Secret, Settings};
use podium_cache_core::key::Keys;
use podium_cache_core::store::{RedisClusterStore, RedisStore, Store};
use podium_local::redis_cluster::RedisCluster;
use serde_json::{json, Value};

use crate::common::{harness, Event, Harness, StoreKind, BASE};
use crate::{summarize, Latency};

/// Records cached for the throughput runs.
const HOT_RECORDS: usize = 1_000;
/// Concurrent readers per instance.
const READERS: usize = 16;
/// Timed reads per run (both instances together), unless `RUN_TIME` ends it first.
const MAX_READS: usize = 400_000;
/// The longest a timed throughput run lasts.
const RUN_TIME: Duration = Duration::from_secs(3);
/// Cold instances sharing one Redis and one Airtable base.
const COLD_INSTANCES: usize = 4;
/// Records the cold instances read.
const COLD_RECORDS: usize = 2_000;
/// Reads each cold instance keeps in flight.
const COLD_CONCURRENCY: usize = 100;
/// Bound on the cold warm-up (it takes seconds; this only detects a hang).
const COLD_LIMIT: Duration = Duration::from_secs(120);

/// Reads/s and latency of two instances reading together.
pub struct Throughput {
    pub reads: usize,
    pub seconds: f64,
    pub latency: Latency,
    /// Reads that were not store hits (must be 0: every record is cached first).
    pub misses: u64,
}

impl Throughput {
    fn per_second(&self) -> f64 {
        self.reads as f64 / self.seconds
    }
}

/// What the cold instances did.
pub struct Cold {
    pub reads: usize,
    pub failed: usize,
    pub calls: u64,
    pub rate_limited: u64,
    pub seconds: f64,
    /// Polls (every 250 ms) that found the shared budget's key in Redis.
    pub budget_key_seen: u64,
}

/// `Event` number `i` of the harness's seeded records, as the local server holds it.
fn event(h: &Harness, i: usize) -> Event {
    Event {
        id: h.ids[i].clone(),
        name: format!("Event {i}"),
        slug: format!("event-{i}"),
        version: 1,
        owner: vec!["recUSER0000000001".to_owned()],
    }
}

/// Two instances over `stores` (one each) read the harness's records with `READERS` tasks
/// each, after every record was cached through the first.
async fn two_instances(h: &Harness, stores: [Arc<dyn Store>; 2]) -> Throughput {
    let caches: Vec<Cache> = stores
        .into_iter()
        .map(|store| Cache::builder(store, Arc::clone(&h.source)).build())
        .collect();
    let timestamp = chrono::Utc::now().timestamp_millis();
    let filled: Vec<_> = stream::iter(0..h.ids.len())
        .map(|i| {
            let record = event(h, i);
            let cache = caches[0].clone();
            async move { cache.upsert(&record, timestamp).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(filled.iter().all(Result::is_ok), "filling the cache failed");
    let misses_before: u64 = caches.iter().map(|c| c.metrics().misses).sum();
    let ids = Arc::new(h.ids.clone());
    let per_task = MAX_READS / (2 * READERS);
    let run = |warm_up: bool| {
        let ids = Arc::clone(&ids);
        let caches = caches.clone();
        async move {
            let deadline = Instant::now() + if warm_up { RUN_TIME / 3 } else { RUN_TIME };
            let started = Instant::now();
            let mut tasks = Vec::new();
            for (c, cache) in caches.into_iter().enumerate() {
                for t in 0..READERS {
                    let (cache, ids) = (cache.clone(), Arc::clone(&ids));
                    tasks.push(tokio::spawn(async move {
                        let mut samples = Vec::with_capacity(per_task);
                        // A different stride per task spreads the reads over every record.
                        let mut at = (c * READERS + t) * 7_919;
                        while samples.len() < per_task && Instant::now() < deadline {
                            at = (at + 104_729) % ids.len();
                            let start = Instant::now();
                            let found = cache.get::<Event>(&ids[at]).await;
                            samples.push(start.elapsed());
                            assert!(matches!(found, Ok(Some(_))), "read {}", ids[at]);
                        }
                        samples
                    }));
                }
            }
            let mut samples = Vec::new();
            for task in tasks {
                samples.extend(task.await.expect("reader"));
            }
            (samples, started.elapsed())
        }
    };
    let _ = run(true).await;
    let (samples, elapsed) = run(false).await;
    let misses_after: u64 = caches.iter().map(|c| c.metrics().misses).sum();
    Throughput {
        reads: samples.len(),
        seconds: elapsed.as_secs_f64(),
        latency: summarize(samples),
        misses: misses_after - misses_before,
    }
}

/// Two instances on one standalone redis-server.
async fn standalone(h: &Harness) -> Throughput {
    let url = h.redis.as_ref().expect("redis").url();
    let connect = || async { Arc::new(RedisStore::connect(&url).await.expect("redis store")) };
    let stores: [Arc<dyn Store>; 2] = [connect().await, connect().await];
    two_instances(h, stores).await
}

/// Two instances on a 3-master cluster started for this run (and stopped after it).
async fn cluster(h: &Harness) -> (Throughput, f64) {
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .expect("cluster start")
        .expect("redis cluster");
    let start_seconds = started.elapsed().as_secs_f64();
    let connect = || async {
        Arc::new(
            RedisClusterStore::connect(cluster.nodes())
                .await
                .expect("cluster store"),
        )
    };
    let stores: [Arc<dyn Store>; 2] = [connect().await, connect().await];
    let throughput = two_instances(h, stores).await;
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .expect("cluster stop");
    (throughput, start_seconds)
}

/// Four instances built as an app builds them, cold, reading every record of the base.
async fn cold_instances() -> Cold {
    let h = harness(StoreKind::Redis)
        .records(COLD_RECORDS)
        .rate_limit(Some(5))
        .start()
        .await;
    h.airtable
        .set_latency(Duration::from_millis(100), Duration::from_millis(500));
    let mut settings = Settings::default();
    settings.redis_url = Some(Secret::new(h.redis.as_ref().expect("redis").url()));
    settings.airtable_api_key = Some(Secret::new(h.airtable.api_key()));
    settings.airtable_base_id = Some(BASE.to_owned());
    settings.airtable_api_url = h.airtable.url();
    settings.expected_instances = COLD_INSTANCES as u32;
    let mut instances = Vec::new();
    for _ in 0..COLD_INSTANCES {
        instances.push(Cache::from_settings(&settings).await.expect("instance"));
    }
    h.airtable.reset_calls();
    // Watches the budget key the instances share (proof that the store-backed limiter, not
    // each instance's local fallback, kept them under the limit).
    let budget_key = Keys::new(settings.prefix.as_str()).rate_limit(BASE);
    let client = redis::Client::open(h.redis.as_ref().expect("redis").url()).expect("client");
    let mut watcher = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let seen = Arc::new(AtomicU64::new(0));
    let watching = {
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let exists: bool = redis::cmd("EXISTS")
                    .arg(&budget_key)
                    .query_async(&mut watcher)
                    .await
                    .unwrap_or(false);
                seen.fetch_add(u64::from(exists), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let started = Instant::now();
    let ids = Arc::new(h.ids.clone());
    let readers: Vec<_> = instances
        .into_iter()
        .enumerate()
        .map(|(n, cache)| {
            let ids = Arc::clone(&ids);
            tokio::spawn(async move {
                // Each instance starts at its own quarter, so they compete for the budget.
                let offset = n * ids.len() / COLD_INSTANCES;
                let results: Vec<bool> = stream::iter(0..ids.len())
                    .map(|i| {
                        let id = &ids[(offset + i) % ids.len()];
                        let cache = &cache;
                        async move { matches!(cache.get::<Event>(id).await, Ok(Some(_))) }
                    })
                    .buffer_unordered(COLD_CONCURRENCY)
                    .collect()
                    .await;
                results
            })
        })
        .collect();
    let all = tokio::time::timeout(COLD_LIMIT, futures::future::join_all(readers))
        .await
        .expect("the cold instances warmed within the limit");
    let seconds = started.elapsed().as_secs_f64();
    watching.abort();
    let results: Vec<bool> = all.into_iter().flat_map(|r| r.expect("reader")).collect();
    let calls = h.airtable.calls();
    Cold {
        reads: results.len(),
        failed: results.iter().filter(|ok| !**ok).count(),
        calls: calls.total,
        rate_limited: calls.rate_limited,
        seconds,
        budget_key_seen: seen.load(Ordering::Relaxed),
    }
}

/// Runs both measurements, prints their table and returns their JSON.
pub async fn measure() -> Value {
    let hot = harness(StoreKind::Redis)
        .records(HOT_RECORDS)
        .rate_limit(None)
        .start()
        .await;
    let single = standalone(&hot).await;
    let (clustered, cluster_start) = cluster(&hot).await;
    drop(hot);
    let cold = cold_instances().await;

    let us = |ns: f64| ns / 1e3;
    println!(
        "## Scale out (two instances, {READERS} readers each, {HOT_RECORDS} cached records; \
         {COLD_INSTANCES} cold instances, {COLD_RECORDS} records, one base at 5 req/s, 100-500 ms)\n"
    );
    println!("| measurement | reads/s | p50 | p99 | ratio to standalone | other |");
    println!("|---|---|---|---|---|---|");
    for (name, t) in [
        ("two instances, one standalone Redis", &single),
        ("two instances, 3-master Redis Cluster", &clustered),
    ] {
        println!(
            "| {name} | {:.0} | {:.1} µs | {:.1} µs | {:.2} | {} reads, {} misses |",
            t.per_second(),
            us(t.latency.p50_ns),
            us(t.latency.p99_ns),
            t.per_second() / single.per_second(),
            t.reads,
            t.misses,
        );
    }
    println!(
        "| {COLD_INSTANCES} cold instances, shared Airtable budget | {:.0} | | | | \
         {} Airtable calls (one instance alone: {} at least, 100 ids a call), {:.2} calls/s \
         together, {} 429s, warm in {:.1} s, {} failed reads, shared budget key in Redis in {} \
         polls |",
        cold.reads as f64 / cold.seconds,
        cold.calls,
        COLD_RECORDS.div_ceil(100),
        cold.calls as f64 / cold.seconds,
        cold.rate_limited,
        cold.seconds,
        cold.failed,
        cold.budget_key_seen,
    );
    println!("\n(cluster start: {cluster_start:.1} s, not timed in the figures)\n");
    let throughput = |t: &Throughput| {
        json!({
            "reads": t.reads,
            "seconds": t.seconds,
            "reads_per_second": t.per_second(),
            "p50_us": us(t.latency.p50_ns),
            "p99_us": us(t.latency.p99_ns),
            "misses": t.misses,
        })
    };
    json!({
        "two_instances": {
            "readers_per_instance": READERS,
            "records": HOT_RECORDS,
            "standalone": throughput(&single),
            "cluster_3_masters": throughput(&clustered),
            "cluster_to_standalone_ratio": clustered.per_second() / single.per_second(),
            "cluster_start_seconds": cluster_start,
        },
        "cold_instances": {
            "instances": COLD_INSTANCES,
            "records": COLD_RECORDS,
            "reads": cold.reads,
            "failed_reads": cold.failed,
            "airtable_calls": cold.calls,
            "airtable_429": cold.rate_limited,
            "calls_per_second": cold.calls as f64 / cold.seconds,
            "seconds_to_warm": cold.seconds,
            "shared_budget_key_seen_in_polls": cold.budget_key_seen,
            "goal": {"airtable_429": 0, "max_calls_per_second": 5},
        },
    })
}
