//! The read-through engine: [`Cache`].
//!
//! - **Reads** ([`Cache::get`], [`Cache::get_many`], [`Cache::get_by_index`], [`Cache::query`])
//!   answer from the store; a miss is one coalesced, batched source call, stored with the data
//!   TTL (±jitter); a record known to be gone answers `None` from its tombstone. With an
//!   in-process tier ([`TieredStore`](crate::store::TieredStore)) every read asks it first
//!   and keeps what it read (see [`Store::typed_tier`]).
//! - **Writes** ([`Cache::upsert`], [`Cache::invalidate`], [`Cache::delete`]) bump the record's
//!   generation, so a fill that started before them can never overwrite them (the stale-set
//!   guard), and are ordered by the change's timestamp.
//! - **Faults**: a store that fails never fails a read; the read falls through to the source.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use podium_cache_core::cache::Cache;
//! use podium_cache_core::source::AirtableSource;
//! use podium_cache_core::store::MemoryStore;
//!
//! let source = AirtableSource::builder("patXXXX", "appXXXXXXXXXXXXXX")
//!     .api_url("http://127.0.0.1:9") // the local Airtable server in tests and the demo
//!     .build()?;
//! let cache = Cache::builder(Arc::new(MemoryStore::new(100_000)), Arc::new(source))
//!     .prefix("demo")
//!     .build();
//! assert_eq!(cache.keys().prefix(), "demo");
//! # Ok(()) }
//! ```

mod batch;
mod clock;
mod config;
mod dependents;
mod early;
pub(crate) mod entry;
mod error;
mod fill;
mod flight;
mod listener;
mod metrics;
mod negative;
mod query;
mod read;
mod refresh;
mod tier;
mod write;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rand::Rng;

pub use self::clock::now_ms;
pub use self::config::CacheConfig;
pub use self::dependents::Dependents;
pub use self::error::CacheError;
pub use self::listener::{Change, ChangeKind, InvalidationListener};
pub use self::metrics::MetricsSnapshot;
pub use self::query::Query;
pub use self::refresh::Refreshed;
pub use self::write::UpsertOutcome;

use self::batch::{BatchConfig, Batcher};
use self::flight::InFlight;
use self::metrics::Metrics;
use self::negative::NegativeCache;
pub use crate::config::SetupError;
use crate::config::{setup, Settings};
use crate::key::Keys;
use crate::source::Source;
use crate::store::Store;

/// Builds a [`Cache`].
pub struct CacheBuilder {
    store: Arc<dyn Store>,
    source: Arc<dyn Source>,
    keys: Keys,
    config: CacheConfig,
    listeners: Vec<Arc<dyn InvalidationListener>>,
}

impl CacheBuilder {
    /// Key prefix (default `podium`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.keys = Keys::new(prefix);
        self
    }

    /// Data TTL (default 8 h).
    pub fn data_ttl(mut self, ttl: Duration) -> Self {
        self.config.data_ttl = ttl;
        self.config.query_ttl = ttl;
        self
    }

    /// Tombstone TTL (default 9 h); also the TTL of the tombstone for a known id the source
    /// no longer has (ids the cache never saw go to the negative cache, see
    /// [`negative_cache`](Self::negative_cache)).
    pub fn tombstone_ttl(mut self, ttl: Duration) -> Self {
        self.config.tombstone_ttl = ttl;
        self.config.missing_ttl = ttl;
        self
    }

    /// TTL jitter fraction (default 0.05).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.config.jitter = CacheConfig::jitter_in_range(jitter);
        self
    }

    /// How long past expiry a record may be served while the source fails (default 0: never).
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.config.stale_if_error = window;
        self
    }

    /// XFetch β of the early refresh (default 1.0; 0 turns it off; negative is taken as 0).
    pub fn xfetch_beta(mut self, beta: f64) -> Self {
        self.config.xfetch_beta = CacheConfig::beta_in_range(beta);
        self
    }

    /// The miss-batching window (default 2 ms).
    pub fn batch_window(mut self, window: Duration) -> Self {
        self.config.batch_window = window;
        self
    }

    /// The most ids in one batch (default and maximum 100; 0 is taken as 1).
    pub fn max_batch(mut self, max: usize) -> Self {
        self.config.max_batch = CacheConfig::max_batch_in_range(max);
        self
    }

    /// Batches of one table in flight at once (default 4; 0 is taken as 1).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use podium_cache_core::{cache::Cache, source::AirtableSource, store::MemoryStore};
    /// # let source = AirtableSource::builder("k", "appAAAAAAAAAAAAAA").api_url("http://127.0.0.1:9").build()?;
    /// let cache = Cache::builder(Arc::new(MemoryStore::new(100)), Arc::new(source))
    ///     .max_batch(10)
    ///     .max_in_flight_batches(1)
    ///     .build();
    /// assert_eq!((cache.config().max_batch, cache.config().max_in_flight_batches), (10, 1));
    /// # Ok::<(), podium_cache_core::source::SourceError>(())
    /// ```
    pub fn max_in_flight_batches(mut self, max: usize) -> Self {
        self.config.max_in_flight_batches = max.max(1);
        self
    }

    /// The negative cache of never-seen ids: how long an answer is believed (default 5
    /// minutes) and how many ids it holds at most (default 100,000).
    ///
    /// ```
    /// # use std::{sync::Arc, time::Duration};
    /// # use podium_cache_core::{cache::Cache, source::AirtableSource, store::MemoryStore};
    /// # let source = AirtableSource::builder("k", "appAAAAAAAAAAAAAA").api_url("http://127.0.0.1:9").build()?;
    /// let cache = Cache::builder(Arc::new(MemoryStore::new(100)), Arc::new(source))
    ///     .negative_cache(Duration::from_secs(60), 10_000)
    ///     .build();
    /// assert_eq!(cache.config().negative_capacity, 10_000);
    /// # Ok::<(), podium_cache_core::source::SourceError>(())
    /// ```
    pub fn negative_cache(mut self, ttl: Duration, capacity: u64) -> Self {
        self.config.negative_ttl = ttl;
        self.config.negative_capacity = capacity;
        self
    }

    /// The source's call budget: at most `max` calls in any `window` (the Airtable client's
    /// [`rate_limit`](crate::source::AirtableSourceBuilder::rate_limit)). Set it to share the
    /// budget fairly between clients (see [`CacheConfig::source_budget`]).
    ///
    /// ```
    /// # use std::{sync::Arc, time::Duration};
    /// # use podium_cache_core::{cache::Cache, source::AirtableSource, store::MemoryStore};
    /// # let source = AirtableSource::builder("k", "appAAAAAAAAAAAAAA").api_url("http://127.0.0.1:9").build()?;
    /// let cache = Cache::builder(Arc::new(MemoryStore::new(100)), Arc::new(source))
    ///     .source_budget(5, Duration::from_secs(1))
    ///     .max_client_misses(64)
    ///     .build();
    /// assert_eq!(cache.config().source_budget, Some((5, Duration::from_secs(1))));
    /// # Ok::<(), podium_cache_core::source::SourceError>(())
    /// ```
    pub fn source_budget(mut self, max: usize, window: Duration) -> Self {
        self.config.source_budget = Some((max, window));
        self
    }

    /// Call slots kept for clients under their fair share (default 1; 0 turns it off).
    pub fn reserved_calls(mut self, slots: usize) -> Self {
        self.config.reserved_calls = slots;
        self
    }

    /// The most misses one client may have outstanding (default 128; 0: no limit).
    pub fn max_client_misses(mut self, max: usize) -> Self {
        self.config.max_client_misses = max;
        self
    }

    /// Every setting at once, brought into range as the setters bring each (jitter in
    /// `0..=0.5`, β at least 0, `max_batch` in `1..=100`, `max_in_flight_batches` at least 1).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use podium_cache_core::{cache::{Cache, CacheConfig}, source::AirtableSource, store::MemoryStore};
    /// # let source = AirtableSource::builder("k", "appAAAAAAAAAAAAAA").api_url("http://127.0.0.1:9").build()?;
    /// let mut config = CacheConfig::default();
    /// config.max_batch = 1_000;
    /// let cache = Cache::builder(Arc::new(MemoryStore::new(100)), Arc::new(source))
    ///     .config(config)
    ///     .build();
    /// assert_eq!(cache.config().max_batch, 100);
    /// # Ok::<(), podium_cache_core::source::SourceError>(())
    /// ```
    pub fn config(mut self, config: CacheConfig) -> Self {
        self.config = config.checked();
        self
    }

    /// Registers a listener for every change.
    pub fn listener(mut self, listener: Arc<dyn InvalidationListener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Cache {
        let batcher = Batcher::new(
            Arc::clone(&self.source),
            BatchConfig {
                window: self.config.batch_window,
                max_batch: self.config.max_batch,
                max_in_flight: self.config.max_in_flight_batches,
                budget: self.config.source_budget,
                reserved: self.config.reserved_calls,
                max_client_misses: self.config.max_client_misses,
            },
        );
        let negative = NegativeCache::new(self.config.negative_capacity, self.config.negative_ttl);
        let dependents = Dependents::new(Arc::clone(&self.store), self.keys.clone());
        Cache {
            inner: Arc::new(Inner {
                dependents,
                store: self.store,
                source: self.source,
                keys: self.keys,
                config: self.config,
                batcher,
                negative,
                in_flight: Arc::new(InFlight::new()),
                refreshing: Mutex::new(HashSet::new()),
                listeners: RwLock::new(self.listeners),
                metrics: Metrics::default(),
            }),
        }
    }
}

/// The read-through cache engine. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    /// Entries derived from records (HTTP responses), purged by every change.
    dependents: Dependents,
    source: Arc<dyn Source>,
    keys: Keys,
    config: CacheConfig,
    batcher: Arc<Batcher>,
    /// Never-seen ids the source does not have (bounded, in process).
    negative: NegativeCache,
    in_flight: Arc<InFlight>,
    /// Data keys with an early (XFetch) refresh running in this process.
    refreshing: Mutex<HashSet<String>>,
    listeners: RwLock<Vec<Arc<dyn InvalidationListener>>>,
    metrics: Metrics,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("store", &self.inner.store.name())
            .field("prefix", &self.inner.keys.prefix())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A builder over `store` and `source` with the defaults of [`CacheConfig`].
    pub fn builder(store: Arc<dyn Store>, source: Arc<dyn Source>) -> CacheBuilder {
        CacheBuilder {
            store,
            source,
            keys: Keys::default(),
            config: CacheConfig::default(),
            listeners: Vec::new(),
        }
    }

    /// The store and source that `settings` describe: Redis when `redis_url` is set, a Redis
    /// Cluster when `redis_cluster_nodes` is (the two together are refused by [`Settings`]), else
    /// the in-memory store (with one info line); Airtable with the configured key, base and URL.
    /// `rediss://` connects over TLS, trusting `redis_ca_file` when it is set.
    /// With Redis or a cluster, the Airtable budget (5 requests a second per base) is kept in
    /// that store and shared by every instance (key [`Keys::rate_limit`] of the base); while
    /// the store is unreachable each instance keeps to `airtable_local_rps` (see
    /// [`crate::source::shared_limiter`]).
    pub async fn stores_from_settings(
        settings: &Settings,
    ) -> Result<(Arc<dyn Store>, Arc<dyn Source>), SetupError> {
        setup::stores(settings).await
    }

    /// A cache configured entirely from `settings` (see [`Cache::stores_from_settings`]).
    pub async fn from_settings(settings: &Settings) -> Result<Cache, SetupError> {
        let (store, source) = Self::stores_from_settings(settings).await?;
        Ok(Self::builder(store, source)
            .prefix(&settings.prefix)
            .config(setup::cache_config(settings))
            .build())
    }

    /// The entries derived from records (the HTTP layer's responses), purged by every change
    /// this cache applies.
    pub fn dependents(&self) -> &Dependents {
        &self.inner.dependents
    }

    /// Registers a listener after construction (e.g. the HTTP layer's purge).
    pub fn add_listener(&self, listener: Arc<dyn InvalidationListener>) {
        self.inner.listeners.write().push(listener);
    }

    /// The key builder (prefix included).
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// The store this cache uses.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The source this cache reads through to.
    pub fn source(&self) -> &Arc<dyn Source> {
        &self.inner.source
    }

    /// TTLs and batching in force.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// The engine's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// How many never-seen ids the in-process negative cache holds (bounded by
    /// [`CacheConfig::negative_capacity`](CacheConfig::negative_capacity)).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use podium_cache_core::{cache::Cache, source::AirtableSource, store::MemoryStore};
    /// # let source = AirtableSource::builder("k", "appAAAAAAAAAAAAAA").api_url("http://127.0.0.1:9").build()?;
    /// let cache = Cache::builder(Arc::new(MemoryStore::new(100)), Arc::new(source)).build();
    /// assert_eq!(cache.negative_entries(), 0);
    /// # Ok::<(), podium_cache_core::source::SourceError>(())
    /// ```
    pub fn negative_entries(&self) -> u64 {
        self.inner.negative.len()
    }

    /// `ttl` with the configured jitter applied (uniform in ±jitter).
    fn jittered(&self, ttl: Duration) -> Duration {
        let jitter = self.inner.config.jitter;
        if jitter <= 0.0 {
            return ttl;
        }
        let factor = 1.0 + rand::thread_rng().gen_range(-jitter..=jitter);
        ttl.mul_f64(factor)
    }

    /// Tells every listener about `change`.
    async fn notify(&self, change: Change) {
        let listeners: Vec<_> = self.inner.listeners.read().clone();
        for listener in listeners {
            listener.on_change(&change).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::AirtableSource;
    use crate::store::MemoryStore;

    #[test]
    fn jitter_stays_within_five_percent() {
        let source = AirtableSource::builder("k", "appAAAAAAAAAAAAAA")
            .api_url("http://127.0.0.1:9")
            .build()
            .unwrap();
        let cache = Cache::builder(Arc::new(MemoryStore::new(10)), Arc::new(source)).build();
        let base = Duration::from_secs(8 * 3600);
        let samples: Vec<Duration> = (0..2_000).map(|_| cache.jittered(base)).collect();
        assert!(samples
            .iter()
            .all(|d| *d >= base.mul_f64(0.95) && *d <= base.mul_f64(1.05)));
        let spread =
            samples.iter().max().unwrap().as_secs() - samples.iter().min().unwrap().as_secs();
        assert!(
            spread > 1_000,
            "jitter must actually spread expiries ({spread}s)"
        );
    }

    #[test]
    fn config_brings_every_value_into_range_as_the_setters_do() {
        let source: Arc<dyn Source> = Arc::new(
            AirtableSource::builder("k", "appAAAAAAAAAAAAAA")
                .api_url("http://127.0.0.1:9")
                .build()
                .unwrap(),
        );
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(10));
        let cases = [
            (3.0, -1.0, 0, 0),
            (f64::NAN, f64::NAN, 1_000, 0),
            (-0.2, f64::INFINITY, 7, 3),
        ];
        for (jitter, beta, max_batch, in_flight) in cases {
            let by_setters = Cache::builder(Arc::clone(&store), Arc::clone(&source))
                .jitter(jitter)
                .xfetch_beta(beta)
                .max_batch(max_batch)
                .max_in_flight_batches(in_flight)
                .build();
            let config = CacheConfig {
                jitter,
                xfetch_beta: beta,
                max_batch,
                max_in_flight_batches: in_flight,
                ..CacheConfig::default()
            };
            let by_config = Cache::builder(Arc::clone(&store), Arc::clone(&source))
                .config(config)
                .build();
            let (a, b) = (by_setters.config(), by_config.config());
            let case = format!("{jitter} {beta} {max_batch} {in_flight}");
            assert_eq!(a.jitter.to_bits(), b.jitter.to_bits(), "{case}");
            assert_eq!(a.xfetch_beta.to_bits(), b.xfetch_beta.to_bits(), "{case}");
            assert_eq!(
                (a.max_batch, a.max_in_flight_batches),
                (b.max_batch, b.max_in_flight_batches),
                "{case}"
            );
            assert!(
                (0.0..=0.5).contains(&b.jitter) && b.xfetch_beta >= 0.0,
                "{case}"
            );
            assert!(
                (1..=100).contains(&b.max_batch) && b.max_in_flight_batches >= 1,
                "{case}"
            );
            // A jitter out of range never panics the TTL draw.
            let _ = by_config.jittered(Duration::from_secs(60));
        }
    }
}
