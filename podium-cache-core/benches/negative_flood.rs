//! A flood of 1,000,000 random well-formed ids, measured (issue #9, part 3): the store's size
//! before and after (MemoryStore entry count; Redis `DBSIZE` and `INFO memory` `used_memory`),
//! the bounded in-process negative cache, the process's resident memory, and, for scale, what
//! the old behaviour (a 9-hour "missing" tombstone per id) costs Redis per 100,000 ids.
//!
//! `cargo bench -p podium-cache-core --bench negative_flood [-- --ids N]`. The source is an
//! in-process stand-in that has no records and answers at once, so a million misses take
//! seconds; the Airtable client's own rate limit is not what is measured here (see
//! `tests/fair_share.rs` and the example app's `tests/flood.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use podium_cache_core::cache::Cache;
use podium_cache_core::key::Keys;
use podium_cache_core::source::{ListQuery, Source, SourceError, SourceRecord, SourceStats};
use podium_cache_core::store::{MemoryStore, RedisStore, Store};
use podium_cache_core::Cacheable;
use podium_local::redis::RedisServer;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Readers running at once, each asking for 100 ids per `get_many`.
const READERS: usize = 32;
const PER_READ: usize = 100;

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema, Cacheable)]
#[cacheable(table = "Events")]
struct Event {
    id: String,
    #[serde(default)]
    name: String,
}

/// A source with no records that answers at once; counts its calls.
#[derive(Default)]
struct Empty {
    calls: AtomicU64,
}

#[async_trait]
impl Source for Empty {
    async fn get(&self, _: &str, _: &str) -> Result<Option<SourceRecord>, SourceError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(None)
    }
    async fn get_many(&self, _: &str, _: &[String]) -> Result<Vec<SourceRecord>, SourceError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(Vec::new())
    }
    async fn list(&self, _: &str, _: &ListQuery) -> Result<Vec<SourceRecord>, SourceError> {
        Ok(Vec::new())
    }
    async fn delete(&self, _: &str, _: &[String]) -> Result<Vec<String>, SourceError> {
        Ok(Vec::new())
    }
    fn stats(&self) -> SourceStats {
        SourceStats {
            requests: self.calls.load(Ordering::Relaxed),
            ..SourceStats::default()
        }
    }
    fn is_valid_id(&self, id: &str) -> bool {
        podium_cache_core::source::airtable::is_record_id(id)
    }
}

fn random_id() -> String {
    let tail: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(14)
        .map(char::from)
        .collect();
    format!("rec{tail}")
}

/// Resident memory of this process, in MiB (Linux; 0 elsewhere).
fn rss_mib() -> f64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

async fn redis_info(conn: &mut redis::aio::MultiplexedConnection) -> (u64, u64) {
    let keys: u64 = redis::cmd("DBSIZE").query_async(conn).await.unwrap_or(0);
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap_or_default();
    let used = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (keys, used)
}

/// `ids` random ids through `cache` from `READERS` concurrent readers; (elapsed, misses/s).
async fn flood(cache: &Cache, ids: usize) -> (Duration, f64) {
    let started = Instant::now();
    let per_reader = ids / READERS / PER_READ;
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for _ in 0..per_reader {
                    let batch: Vec<String> = (0..PER_READ).map(|_| random_id()).collect();
                    let found = cache.get_many::<Event>(&batch).await.expect("read");
                    assert!(found.iter().all(Option::is_none));
                }
            })
        })
        .collect();
    for reader in readers {
        reader.await.expect("reader");
    }
    let elapsed = started.elapsed();
    let done = (per_reader * READERS * PER_READ) as f64;
    (elapsed, done / elapsed.as_secs_f64())
}

async fn memory_store(ids: usize) {
    let store = MemoryStore::new(1_000_000);
    let source = Arc::new(Empty::default());
    let cache = Cache::builder(Arc::new(store.clone()), source.clone()).build();
    let (entries_before, rss_before) = (store.entry_count(), rss_mib());
    let (elapsed, rate) = flood(&cache, ids).await;
    println!(
        "memory store: {ids} random ids in {:.1} s ({rate:.0}/s), {} source calls; store entries {entries_before} -> {}; negative cache {} ids (capacity {}); process RSS {rss_before:.0} -> {:.0} MiB",
        elapsed.as_secs_f64(),
        source.calls.load(Ordering::Relaxed),
        store.entry_count(),
        cache.negative_entries(),
        cache.config().negative_capacity,
        rss_mib(),
    );
}

async fn redis_store(ids: usize) {
    let server = match RedisServer::start() {
        Ok(server) => server,
        Err(err) => {
            println!("redis store: skipped ({err})");
            return;
        }
    };
    let store = RedisStore::builder(server.url())
        .call_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("redis store");
    let mut conn = redis::Client::open(server.url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let source = Arc::new(Empty::default());
    let cache = Cache::builder(Arc::new(store.clone()), source.clone()).build();
    let (keys_before, used_before) = redis_info(&mut conn).await;
    let (elapsed, rate) = flood(&cache, ids).await;
    let (keys_after, used_after) = redis_info(&mut conn).await;
    println!(
        "redis store: {ids} random ids in {:.1} s ({rate:.0}/s), {} source calls; DBSIZE {keys_before} -> {keys_after}; used_memory {used_before} -> {used_after} bytes ({:+} bytes); negative cache {} ids",
        elapsed.as_secs_f64(),
        source.calls.load(Ordering::Relaxed),
        used_after as i64 - used_before as i64,
        cache.negative_entries(),
    );

    // For scale: the old behaviour, one 9-hour "missing" tombstone per never-seen id.
    let sample = 100_000;
    let keys = Keys::default();
    let (_, before) = redis_info(&mut conn).await;
    let tombstones: Vec<String> = (0..sample)
        .map(|_| keys.tombstone("events", &random_id()))
        .collect();
    for chunk in tombstones.chunks(1_000) {
        let entries: Vec<(String, Bytes, Duration)> = chunk
            .iter()
            .map(|k| {
                (
                    k.clone(),
                    Bytes::from_static(b"missing"),
                    Duration::from_secs(9 * 3600),
                )
            })
            .collect();
        store.set_many(&entries).await.expect("set_many");
    }
    let (after_keys, after) = redis_info(&mut conn).await;
    let per_id = (after.saturating_sub(before)) as f64 / sample as f64;
    println!(
        "redis, old behaviour for scale: {sample} tombstones of 9 h = {after_keys} keys, +{} bytes ({per_id:.0} bytes per id; {:.0} MiB per million random ids, held 9 h)",
        after.saturating_sub(before),
        per_id * 1_000_000.0 / (1024.0 * 1024.0),
    );
}

fn main() {
    let mut ids = 1_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--ids" {
            ids = args.next().and_then(|n| n.parse().ok()).unwrap_or(ids);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        memory_store(ids).await;
        redis_store(ids).await;
    });
}
