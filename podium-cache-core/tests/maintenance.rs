//! In-app maintenance: two app instances over one real redis-server and the local Airtable
//! server sweep on a short interval; a record deleted in Airtable leaves the cache within a
//! round, and the two instances never sweep at the same time. The native webhook is refreshed
//! without cron.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use podium_cache_core::cache::Cache;
use podium_cache_core::entity::Cacheable;
use podium_cache_core::maintenance::{Maintenance, MaintenanceHandle, MaintenanceStats};
use podium_cache_core::source::{
    AirtableSource, ListQuery, Source, SourceError, SourceRecord, SourceStats,
};
use podium_cache_core::store::{MemoryStore, RedisStore};
use podium_cache_core::webhook::native::WebhooksApi;
use podium_local::airtable::{AirtableServer, RunningAirtable};
use podium_local::redis::RedisServer;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

const BASE: &str = "appMAINTENANCE001";

#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable,
)]
#[cacheable(table = "Members")]
struct Member {
    id: String,
    name: String,
}

#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable,
)]
#[cacheable(table = "Workshops")]
struct Workshop {
    id: String,
    title: String,
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Listings in progress over every instance, and the most at once. A sweep lists one batch
/// at a time, so more than one at once means two sweeps overlapped.
#[derive(Default)]
struct Overlap {
    now: AtomicUsize,
    most: AtomicUsize,
}

/// The real Airtable client, with its listings counted in [`Overlap`].
struct CountedSource {
    inner: AirtableSource,
    overlap: Arc<Overlap>,
}

#[async_trait]
impl Source for CountedSource {
    async fn get(&self, table: &str, id: &str) -> Result<Option<SourceRecord>, SourceError> {
        self.inner.get(table, id).await
    }
    async fn get_many(
        &self,
        table: &str,
        ids: &[String],
    ) -> Result<Vec<SourceRecord>, SourceError> {
        self.inner.get_many(table, ids).await
    }
    async fn list(&self, table: &str, query: &ListQuery) -> Result<Vec<SourceRecord>, SourceError> {
        let now = self.overlap.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.overlap.most.fetch_max(now, Ordering::SeqCst);
        let answer = self.inner.list(table, query).await;
        self.overlap.now.fetch_sub(1, Ordering::SeqCst);
        answer
    }
    async fn delete(&self, table: &str, ids: &[String]) -> Result<Vec<String>, SourceError> {
        self.inner.delete(table, ids).await
    }
    fn stats(&self) -> SourceStats {
        self.inner.stats()
    }
}

/// One app instance: its own connection to the shared redis and its own Airtable client.
async fn instance(
    redis: &RedisServer,
    airtable: &RunningAirtable,
    overlap: &Arc<Overlap>,
) -> Cache {
    let store = RedisStore::builder(redis.url())
        .call_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("redis store");
    let source = AirtableSource::builder(airtable.api_key(), BASE)
        .api_url(airtable.url())
        .build()
        .expect("source");
    let source = CountedSource {
        inner: source,
        overlap: Arc::clone(overlap),
    };
    Cache::builder(Arc::new(store), Arc::new(source)).build()
}

fn maintenance(cache: &Cache) -> MaintenanceHandle {
    Maintenance::new(cache)
        .model::<Member>()
        .model::<Workshop>()
        .first_round_after(Duration::from_millis(20))
        .sweep_every(Duration::from_secs(1))
        .spawn()
}

fn total(a: &MaintenanceHandle, b: &MaintenanceHandle) -> MaintenanceStats {
    let (a, b) = (a.stats(), b.stats());
    MaintenanceStats {
        sweeps_run: a.sweeps_run + b.sweeps_run,
        sweeps_failed: a.sweeps_failed + b.sweeps_failed,
        sweeps_skipped: a.sweeps_skipped + b.sweeps_skipped,
        records_removed: a.records_removed + b.records_removed,
        ..MaintenanceStats::default()
    }
}

/// Waits (at most `limit`) until `done` holds.
async fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sweep_in_turn_and_a_record_deleted_in_airtable_leaves_the_cache() {
    // Every call takes 40-80 ms: a sweep lasts long enough for the other instance to try.
    let airtable = AirtableServer::builder()
        .rate_limit(None)
        .latency(Duration::from_millis(40), Duration::from_millis(80))
        .start()
        .await
        .expect("local airtable");
    let redis = RedisServer::start().expect("redis-server");
    let members: Vec<String> = (0..4)
        .map(|i| airtable.insert(BASE, "Members", fields(json!({"name": format!("M{i}")}))))
        .collect();
    let workshop = airtable.insert(BASE, "Workshops", fields(json!({"title": "Rust"})));
    let overlap = Arc::new(Overlap::default());
    let cache_a = instance(&redis, &airtable, &overlap).await;
    let cache_b = instance(&redis, &airtable, &overlap).await;
    for id in &members {
        assert!(cache_a.get::<Member>(id).await.expect("read").is_some());
    }
    assert!(cache_b
        .get::<Workshop>(&workshop)
        .await
        .expect("read")
        .is_some());
    assert!(airtable.remove(BASE, "Members", &members[2]));

    let a = maintenance(&cache_a);
    let b = maintenance(&cache_b);
    eventually(
        Duration::from_secs(30),
        "a sweep removed the record",
        || total(&a, &b).records_removed == 1,
    )
    .await;
    // Gone from the shared store; the live records stay cached.
    let data_key = |id: &str| cache_a.keys().data("members", Member::schema_hash(), id);
    let store = cache_b.store();
    assert_eq!(
        store.get(&data_key(&members[2])).await.expect("store"),
        None
    );
    assert!(store
        .get(&data_key(&members[0]))
        .await
        .expect("store")
        .is_some());
    assert_eq!(
        cache_b.get::<Member>(&members[2]).await.expect("read"),
        None
    );

    // More rounds: each interval is swept by one instance, never by both at once.
    eventually(
        Duration::from_secs(30),
        "four rounds over both instances",
        || {
            let t = total(&a, &b);
            t.sweeps_run + t.sweeps_skipped >= 4 && t.sweeps_run >= 2
        },
    )
    .await;
    let (stats_a, stats_b) = (a.stats(), b.stats());
    println!("a: {stats_a:?}\nb: {stats_b:?}");
    a.shutdown().await;
    b.shutdown().await;
    assert_eq!(
        overlap.most.load(Ordering::SeqCst),
        1,
        "two sweeps listed Airtable at the same time"
    );
    assert_eq!(stats_a.sweeps_failed + stats_b.sweeps_failed, 0);
    assert!(
        stats_a.sweeps_skipped + stats_b.sweeps_skipped >= 1,
        "an interval claimed by one instance is skipped by the other"
    );
    assert_eq!(stats_a.records_removed + stats_b.records_removed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_webhook_is_refreshed_by_the_app_and_shutdown_stops_it() {
    let airtable = AirtableServer::builder()
        .rate_limit(None)
        .start()
        .await
        .expect("local airtable");
    airtable.insert(BASE, "Members", fields(json!({"name": "M"})));
    let source = AirtableSource::builder(airtable.api_key(), BASE)
        .api_url(airtable.url())
        .build()
        .expect("source");
    let api = WebhooksApi::new(source.clone());
    let created = api
        .create_table_data("http://127.0.0.1:9/notify")
        .await
        .expect("create webhook");
    let cache = Cache::builder(Arc::new(MemoryStore::new(1_000)), Arc::new(source)).build();
    let handle = Maintenance::new(&cache)
        .refresh_webhooks(api, vec![created.id.clone()])
        .first_round_after(Duration::from_millis(10))
        .refresh_every(Duration::from_secs(1))
        .spawn();
    eventually(Duration::from_secs(20), "two refreshes", || {
        handle.stats().webhook_refreshes >= 2
    })
    .await;
    assert_eq!(handle.stats().webhook_refresh_failures, 0);
    handle.shutdown().await;
    let refreshed = airtable.webhook_calls().refresh;
    assert!(refreshed >= 2, "{refreshed} refresh calls");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        airtable.webhook_calls().refresh,
        refreshed,
        "no refresh after shutdown"
    );
}
