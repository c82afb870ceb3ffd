//! Fair share of the source budget (issue #9, part 2): misses are queued per client, batches
//! are filled round robin across clients, a client that keeps the source busy never takes the
//! last call slot, and a client with too many misses outstanding is refused (429) while no other
//! client is.
//!
//! These run on a stand-in source and tokio's paused clock, so batch composition and waits are
//! exact; the same behaviour over real sockets is `examples/podium-example/tests/flood.rs`.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::Event;
use parking_lot::Mutex;
use podium_cache_core::cache::{Cache, CacheError};
use podium_cache_core::scope::Scope;
use podium_cache_core::source::{ListQuery, Source, SourceError, SourceRecord, SourceStats};
use podium_cache_core::store::MemoryStore;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// A source holding the records `existing`, answering after `latency`, each call held until
/// the gate lets it through (when there is a gate); it records every call.
struct StandIn {
    existing: HashSet<String>,
    latency: Duration,
    gate: Option<Semaphore>,
    calls: Mutex<Vec<(Instant, Vec<String>)>>,
}

impl StandIn {
    fn new(existing: &[String], latency: Duration, gated: bool) -> Arc<Self> {
        Arc::new(Self {
            existing: existing.iter().cloned().collect(),
            latency,
            gate: gated.then(|| Semaphore::new(0)),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn open(&self) {
        if let Some(gate) = &self.gate {
            gate.add_permits(1_000_000);
        }
    }

    fn calls(&self) -> Vec<Vec<String>> {
        self.calls
            .lock()
            .iter()
            .map(|(_, ids)| ids.clone())
            .collect()
    }

    async fn answer(&self, ids: &[String]) -> Vec<SourceRecord> {
        self.calls.lock().push((Instant::now(), ids.to_vec()));
        if let Some(gate) = &self.gate {
            if let Ok(permit) = gate.acquire().await {
                permit.forget();
            }
        }
        tokio::time::sleep(self.latency).await;
        ids.iter()
            .filter(|id| self.existing.contains(*id))
            .map(|id| SourceRecord {
                id: id.clone(),
                fields: fields(id),
            })
            .collect()
    }
}

fn fields(id: &str) -> Map<String, Value> {
    match json!({"name": format!("Event {id}"), "slug": id.to_lowercase(), "version": 1}) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[async_trait]
impl Source for StandIn {
    async fn get(&self, _: &str, id: &str) -> Result<Option<SourceRecord>, SourceError> {
        Ok(self.answer(&[id.to_owned()]).await.into_iter().next())
    }
    async fn get_many(&self, _: &str, ids: &[String]) -> Result<Vec<SourceRecord>, SourceError> {
        Ok(self.answer(ids).await)
    }
    async fn list(&self, _: &str, _: &ListQuery) -> Result<Vec<SourceRecord>, SourceError> {
        Ok(Vec::new())
    }
    async fn delete(&self, _: &str, _: &[String]) -> Result<Vec<String>, SourceError> {
        Ok(Vec::new())
    }
    fn stats(&self) -> SourceStats {
        SourceStats::default()
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

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("rec{prefix}{i:010}")).collect()
}

/// Reads `id` as `client` (or as no client).
async fn read(cache: &Cache, client: Option<&str>, id: &str) -> Result<Option<Event>, CacheError> {
    let scope = match client {
        Some(client) => Scope::new().with_client(client),
        None => Scope::new(),
    };
    scope.run(cache.get::<Event>(id)).await
}

fn spawn_read(
    cache: &Cache,
    client: Option<&'static str>,
    id: &str,
) -> tokio::task::JoinHandle<Result<Option<Event>, CacheError>> {
    let cache = cache.clone();
    let id = id.to_owned();
    tokio::spawn(async move { read(&cache, client, &id).await })
}

/// Waits (on the paused clock) until the source has been called `n` times; fails past a
/// deadline in real time (the paused clock would advance without end).
async fn until_calls(source: &StandIn, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while source.calls.lock().len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "the source was called {} times, never {n}",
            source.calls.lock().len()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_late_client_rides_in_the_next_batch_whatever_another_has_queued() {
    let flood_ids = ids("FLOOD", 31);
    let legit_ids = ids("LEGIT", 3);
    let source = StandIn::new(&legit_ids, Duration::from_millis(100), true);
    let cache = Cache::builder(Arc::new(MemoryStore::new(10_000)), source.clone())
        .max_batch(10)
        .max_in_flight_batches(1)
        .build();
    // The flooder's first miss is in flight (held at the gate); it queues 30 more, then the
    // other client queues 3.
    let first = spawn_read(&cache, Some("flood"), &flood_ids[0]);
    until_calls(&source, 1).await;
    let mut flood: Vec<_> = flood_ids[1..]
        .iter()
        .map(|id| spawn_read(&cache, Some("flood"), id))
        .collect();
    flood.push(first);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let legit: Vec<_> = legit_ids
        .iter()
        .map(|id| spawn_read(&cache, Some("legit"), id))
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    source.open();
    for read in legit {
        assert!(read.await.unwrap().unwrap().is_some());
    }
    for read in flood {
        assert_eq!(read.await.unwrap().unwrap(), None);
    }

    let calls = source.calls();
    let second: HashSet<&String> = calls[1].iter().collect();
    assert!(
        legit_ids.iter().all(|id| second.contains(id)),
        "the other client's 3 misses are all in the very next batch: {calls:?}"
    );
    assert_eq!(second.len(), 10, "the flooder fills the rest of it");
    assert_eq!(
        calls.iter().map(Vec::len).collect::<Vec<_>>(),
        [1, 10, 10, 10, 3],
        "34 ids in 5 calls: batching is not given up for fairness"
    );
}

#[tokio::test(start_paused = true)]
async fn a_flooding_client_never_delays_another_clients_miss_past_one_call() {
    let legit_ids = ids("LEGIT", 15);
    let source = StandIn::new(&legit_ids, Duration::from_millis(100), false);
    let cache = Cache::builder(Arc::new(MemoryStore::new(100_000)), source.clone())
        .source_budget(5, Duration::from_secs(1))
        .build();
    // 16 connections' worth of random ids, as fast as the answers come.
    let refused = Arc::new(Mutex::new(0u64));
    let flood: Vec<_> = (0..16)
        .map(|_| {
            let cache = cache.clone();
            let refused = Arc::clone(&refused);
            tokio::spawn(async move {
                loop {
                    match read(&cache, Some("127.0.0.2"), &random_id()).await {
                        Err(CacheError::TooManyMisses { .. }) => *refused.lock() += 1,
                        Err(err) => panic!("{err}"),
                        Ok(found) => assert!(found.is_none()),
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut waits = Vec::new();
    for id in &legit_ids {
        let started = Instant::now();
        let found = read(&cache, Some("127.0.0.1"), id).await.unwrap();
        waits.push(started.elapsed());
        assert_eq!(found.map(|e| e.id).as_deref(), Some(id.as_str()));
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    for task in flood {
        task.abort();
    }
    // One call's latency (100 ms) and the 2 ms batching window: not a slot's wait.
    assert!(
        waits.iter().all(|w| *w <= Duration::from_millis(105)),
        "{waits:?}"
    );
    assert_eq!(
        *refused.lock(),
        0,
        "16 outstanding misses are within the limit"
    );
    let sent: Vec<Instant> = source.calls.lock().iter().map(|(at, _)| *at).collect();
    assert!(
        sent.len() >= 40,
        "the flood used the budget: {} calls",
        sent.len()
    );
    for six in sent.windows(6) {
        let apart = six[5].duration_since(six[0]);
        assert!(
            apart >= Duration::from_millis(1_100),
            "never 6 calls within one window of the previous answers: {apart:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_over_its_outstanding_limit_gets_too_many_misses_and_no_other_does() {
    let legit_ids = ids("LEGIT", 1);
    let source = StandIn::new(&legit_ids, Duration::from_millis(100), true);
    let cache = Cache::builder(Arc::new(MemoryStore::new(10_000)), source.clone())
        .source_budget(5, Duration::from_secs(1))
        .max_client_misses(4)
        .build();
    let flood: Vec<_> = ids("FLOOD", 10)
        .iter()
        .map(|id| spawn_read(&cache, Some("flood"), id))
        .collect();
    let anonymous: Vec<_> = ids("ANON", 10)
        .iter()
        .map(|id| spawn_read(&cache, None, id))
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let legit = spawn_read(&cache, Some("legit"), &legit_ids[0]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    source.open();

    let mut admitted = 0;
    let mut refused = Vec::new();
    for read in flood {
        match read.await.unwrap() {
            Ok(found) => {
                assert!(found.is_none());
                admitted += 1;
            }
            Err(CacheError::TooManyMisses { retry_after }) => refused.push(retry_after),
            Err(err) => panic!("{err}"),
        }
    }
    assert_eq!((admitted, refused.len()), (4, 6));
    assert!(refused.iter().all(|r| *r >= Duration::from_secs(1)));
    assert!(
        legit.await.unwrap().unwrap().is_some(),
        "the other client is served"
    );
    for read in anonymous {
        assert!(
            read.await.unwrap().is_ok(),
            "misses outside any client are not limited"
        );
    }
    assert_eq!(cache.metrics().misses_refused, 6);
    // Its misses answered, the flooder is admitted again.
    assert!(read(&cache, Some("flood"), &random_id()).await.is_ok());
}
