//! Shared helpers of the core integration tests: a hand-written test model, the local
//! Airtable server seeded with it, a real redis-server, and a source gate that makes races
//! deterministic.
#![allow(dead_code)]

pub mod watched_source;
pub mod workshops;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use podium_cache_core::cache::{Cache, SetupError};
use podium_cache_core::config::ConfigError;
use podium_cache_core::entity::{
    schema_hash_of, Cacheable, EntityMeta, FieldKind, FieldMeta, Reference,
};
use podium_cache_core::source::{
    AirtableSource, ListQuery, Source, SourceError, SourceRecord, SourceStats,
};
use podium_cache_core::store::{
    MemoryStore, RecordWrite, RedisStore, ScanPage, Store, StoreError, StoreExtensions,
    TieredStore, WriteOutcome,
};
use podium_local::airtable::{AirtableServer, RunningAirtable};
use podium_local::redis::RedisServer;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;

pub const BASE: &str = "appTESTTESTTEST01";
pub const TABLE: &str = "Events";

/// The test model, with `Cacheable` written by hand (as a user without the derive would).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Event {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub version: i64,
    #[serde(default)]
    pub owner: Vec<String>,
}

static EVENT_META: EntityMeta = EntityMeta {
    table: TABLE,
    entity: "events",
    id_key: "id",
    fields: &[
        FieldMeta {
            name: "name",
            kind: FieldKind::Scalar,
            index: false,
        },
        FieldMeta {
            name: "slug",
            kind: FieldKind::Scalar,
            index: true,
        },
        FieldMeta {
            name: "version",
            kind: FieldKind::Scalar,
            index: false,
        },
        FieldMeta {
            name: "owner",
            kind: FieldKind::Link {
                entity: "users",
                many: true,
            },
            index: false,
        },
    ],
};

impl Cacheable for Event {
    fn meta() -> &'static EntityMeta {
        &EVENT_META
    }
    fn schema_hash() -> &'static str {
        static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        HASH.get_or_init(schema_hash_of::<Self>)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn index_values(&self) -> Vec<(&'static str, String)> {
        vec![("slug", self.slug.clone())]
    }
    fn references(&self) -> Vec<Reference<'_>> {
        vec![Reference {
            field: "owner",
            entity: "users",
            ids: self.owner.iter().map(String::as_str).collect(),
        }]
    }
}

pub fn fields(name: &str, slug: &str, version: i64) -> Map<String, Value> {
    match json!({"name": name, "slug": slug, "version": version, "owner": ["recUSER0000000001"]}) {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// Which store a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum StoreKind {
    Memory,
    Redis,
}

/// A running local Airtable server, optionally a redis-server, and a cache over them.
pub struct Harness {
    pub airtable: RunningAirtable,
    pub redis: Option<RedisServer>,
    pub store: Arc<dyn Store>,
    pub source: Arc<dyn Source>,
    pub cache: Cache,
    pub ids: Vec<String>,
}

pub struct HarnessBuilder {
    kind: StoreKind,
    records: usize,
    latency: Duration,
    rate_limit: Option<u32>,
    source_limit: Option<(usize, Duration)>,
    gate: Option<Arc<Gate>>,
}

pub fn harness(kind: StoreKind) -> HarnessBuilder {
    HarnessBuilder {
        kind,
        records: 10,
        latency: Duration::ZERO,
        rate_limit: Some(5),
        source_limit: None,
        gate: None,
    }
}

impl HarnessBuilder {
    pub fn records(mut self, n: usize) -> Self {
        self.records = n;
        self
    }
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }
    pub fn rate_limit(mut self, limit: Option<u32>) -> Self {
        self.rate_limit = limit;
        self
    }
    /// The source's own limit, `max` requests per `window` (default Airtable's 5 per second).
    pub fn source_limit(mut self, max: usize, window: Duration) -> Self {
        self.source_limit = Some((max, window));
        self
    }
    pub fn gate(mut self, gate: Arc<Gate>) -> Self {
        self.gate = Some(gate);
        self
    }

    pub async fn start(self) -> Harness {
        let airtable = AirtableServer::builder()
            .latency(self.latency, self.latency)
            .rate_limit(self.rate_limit)
            .start()
            .await
            .expect("local airtable");
        let ids: Vec<String> = (0..self.records)
            .map(|i| {
                airtable.insert(
                    BASE,
                    TABLE,
                    fields(&format!("Event {i}"), &format!("event-{i}"), 1),
                )
            })
            .collect();
        airtable.declare_fields(BASE, TABLE, &["name", "slug", "version", "owner"]);
        let mut airtable_source = AirtableSource::builder(airtable.api_key(), BASE)
            .api_url(airtable.url())
            .rate_limit_pause(Duration::from_millis(1_100))
            .retries(4, Duration::from_millis(20), Duration::from_millis(200));
        if let Some((max, window)) = self.source_limit {
            airtable_source = airtable_source.rate_limit(max, window);
        }
        let airtable_source = airtable_source.build().expect("source");
        let source: Arc<dyn Source> = match self.gate {
            Some(gate) => Arc::new(GatedSource {
                inner: airtable_source,
                gate,
            }),
            None => Arc::new(airtable_source),
        };
        let (redis, store): (Option<RedisServer>, Arc<dyn Store>) = match self.kind {
            StoreKind::Memory => (None, Arc::new(MemoryStore::new(100_000))),
            StoreKind::Redis => {
                let server = RedisServer::start().expect("redis-server");
                // Generous for debug builds on a loaded 2-core CI machine; production keeps 250 ms.
                let store = RedisStore::builder(server.url())
                    .call_timeout(Duration::from_secs(2))
                    .connect()
                    .await
                    .expect("redis store");
                (Some(server), Arc::new(store))
            }
        };
        let cache = Cache::builder(Arc::clone(&store), Arc::clone(&source)).build();
        Harness {
            airtable,
            redis,
            store,
            source,
            cache,
            ids,
        }
    }
}

impl Harness {
    /// API calls the local Airtable server answered.
    pub fn calls(&self) -> u64 {
        self.airtable.calls().total
    }
}

/// Holds source answers until released, after the real call has returned: makes "a fill that
/// fetched an old version arrives after a newer write" happen exactly.
pub struct Gate {
    permits: Semaphore,
    waiting: AtomicUsize,
    closed: std::sync::atomic::AtomicBool,
    /// When open: the share of answers delayed, and the longest delay (uniform up to it).
    delays: Option<(f64, Duration)>,
}

impl Gate {
    pub fn closed() -> Arc<Self> {
        Arc::new(Gate {
            permits: Semaphore::new(0),
            waiting: AtomicUsize::new(0),
            closed: std::sync::atomic::AtomicBool::new(true),
            delays: None,
        })
    }
    /// Holds nothing, but delays a random `chance` of answers by up to `max`, widening the
    /// windows in which reads race writes.
    pub fn delaying(chance: f64, max: Duration) -> Arc<Self> {
        Arc::new(Gate {
            permits: Semaphore::new(0),
            waiting: AtomicUsize::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
            delays: Some((chance.clamp(0.0, 1.0), max)),
        })
    }
    /// Waits until `n` answers are held.
    pub async fn wait_for_held(&self, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.waiting.load(Ordering::SeqCst) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "{} source answers reached the gate within 30 s, not {n}",
                self.waiting.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    /// How many answers are held (or were, before the gate opened).
    pub fn held(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
    /// Releases every held answer and lets later ones through.
    pub fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        self.permits.add_permits(10_000);
    }
    /// Where an answer waits: held while the gate is closed, else maybe delayed.
    pub async fn pass(&self) {
        if self.closed.load(Ordering::SeqCst) {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let _ = self.permits.acquire().await.map(|p| p.forget());
        } else if let Some((chance, max)) = self.delays {
            let pause = {
                let mut rng = rand::thread_rng();
                rng.gen_bool(chance).then(|| max.mul_f64(rng.gen::<f64>()))
            };
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Starts `cache.get::<Event>(id)` in a task and returns once its fetch from the source is
/// held at `gate` (the harness must have been built with it): the read that misses before a
/// racing write, in the correctness and fault tests.
pub async fn held_read(
    cache: &Cache,
    gate: &Gate,
    id: &str,
) -> tokio::task::JoinHandle<Result<Option<Event>, podium_cache_core::CacheError>> {
    let reader = {
        let cache = cache.clone();
        let id = id.to_owned();
        tokio::spawn(async move { cache.get::<Event>(&id).await })
    };
    gate.wait_for_held(1).await;
    reader
}

/// The real Airtable client with a [`Gate`] between its answers and the engine.
pub struct GatedSource {
    inner: AirtableSource,
    gate: Arc<Gate>,
}

#[async_trait]
impl Source for GatedSource {
    async fn get(&self, table: &str, id: &str) -> Result<Option<SourceRecord>, SourceError> {
        let answer = self.inner.get(table, id).await;
        self.gate.pass().await;
        answer
    }
    async fn get_many(
        &self,
        table: &str,
        ids: &[String],
    ) -> Result<Vec<SourceRecord>, SourceError> {
        let answer = self.inner.get_many(table, ids).await;
        self.gate.pass().await;
        answer
    }
    async fn list(&self, table: &str, query: &ListQuery) -> Result<Vec<SourceRecord>, SourceError> {
        let answer = self.inner.list(table, query).await;
        self.gate.pass().await;
        answer
    }
    async fn delete(&self, table: &str, ids: &[String]) -> Result<Vec<String>, SourceError> {
        self.inner.delete(table, ids).await
    }
    fn stats(&self) -> SourceStats {
        self.inner.stats()
    }
    async fn ready(&self) {
        self.inner.ready().await;
    }
}

/// Milliseconds since the epoch.
/// Asserts that setting up the cache failed on the setting named `setting`.
pub fn assert_setup_error_names(err: &SetupError, setting: &str) {
    assert!(
        matches!(err, SetupError::Config(ConfigError::Invalid { setting: named, .. }) if *named == setting),
        "expected an error naming `{setting}`: {err:?}"
    );
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Harness {
    /// The same Airtable server and source with the cache on `store` instead (e.g. a cluster
    /// store, or a store behind a proxy).
    pub fn on_store(mut self, store: Arc<dyn Store>) -> Harness {
        self.cache = Cache::builder(Arc::clone(&store), Arc::clone(&self.source)).build();
        self.store = store;
        self
    }
}

/// The in-process tier in front of `shared`, its invalidation link on `bus_url`, subscribed
/// (within `link_wait`) before it is returned; settings for a loaded test machine.
pub async fn tiered(shared: Arc<dyn Store>, bus_url: &str, link_wait: Duration) -> TieredStore {
    let store = TieredStore::builder(shared)
        .capacity(1_000)
        .bus_url(bus_url)
        .call_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_millis(200))
        .link_wait(link_wait)
        .connect()
        .await
        .expect("tiered store");
    assert!(store.tier().is_serving(), "subscribed before serving");
    store
}

/// Watches an [`ObservedStore`]'s reads: `before_read` sees every `get` (1 key) and
/// `get_many` (its keys) as it starts; `after_get_many` runs after the wrapped store answered a
/// `get_many`, before the answer is handed back, so a test can hold a read that raced a write
/// exactly where it wants it.
#[async_trait]
pub trait ReadHook: Send + Sync + 'static {
    fn before_read(&self, _keys: usize) {}
    async fn after_get_many(&self);
}

/// A store that forwards every call to the store it wraps, counts the calls in flight (and
/// the most at once: a test can show that calls end, time out, instead of piling up), and
/// runs an optional [`ReadHook`] on reads.
pub struct ObservedStore {
    inner: Arc<dyn Store>,
    read_hook: Option<Arc<dyn ReadHook>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Ends one counted call when dropped (also when the call's future is dropped).
struct CallGuard<'a>(&'a ObservedStore);

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ObservedStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Self::build(inner, None)
    }
    /// The store with `hook` run after every `get_many`.
    pub fn with_read_hook(inner: Arc<dyn Store>, hook: Arc<dyn ReadHook>) -> Arc<Self> {
        Self::build(inner, Some(hook))
    }
    fn build(inner: Arc<dyn Store>, read_hook: Option<Arc<dyn ReadHook>>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            read_hook,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        })
    }
    /// Calls started and not finished now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
    /// The most calls in flight at once since the last [`reset_max`](Self::reset_max).
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
    pub fn reset_max(&self) {
        self.max_in_flight.store(self.in_flight(), Ordering::SeqCst);
    }
    fn call(&self) -> CallGuard<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        CallGuard(self)
    }
}

#[async_trait]
impl Store for ObservedStore {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    /// Locks, counters and the rate limiter go straight to the wrapped store's (uncounted).
    fn extensions(&self) -> Option<&dyn StoreExtensions> {
        self.inner.extensions()
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let _call = self.call();
        if let Some(hook) = &self.read_hook {
            hook.before_read(1);
        }
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, StoreError> {
        let _call = self.call();
        if let Some(hook) = &self.read_hook {
            hook.before_read(keys.len());
        }
        let answer = self.inner.get_many(keys).await;
        if let Some(hook) = &self.read_hook {
            hook.after_get_many().await;
        }
        answer
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        let _call = self.call();
        self.inner.set(key, value, ttl).await
    }
    async fn set_many(&self, entries: &[(String, Bytes, Duration)]) -> Result<(), StoreError> {
        let _call = self.call();
        self.inner.set_many(entries).await
    }
    async fn delete(&self, keys: &[String]) -> Result<u64, StoreError> {
        let _call = self.call();
        self.inner.delete(keys).await
    }
    async fn write_record(&self, write: &RecordWrite) -> Result<WriteOutcome, StoreError> {
        let _call = self.call();
        self.inner.write_record(write).await
    }
    async fn scan(&self, pattern: &str, cursor: u64, count: usize) -> Result<ScanPage, StoreError> {
        let _call = self.call();
        self.inner.scan(pattern, cursor, count).await
    }
}
