//! The read-through engine: [`Cache`].
//!
//! - **Reads** ([`Cache::get`], [`Cache::get_many`], [`Cache::get_by_index`], [`Cache::query`])
//!   answer from the store; a miss is one coalesced, batched source call, stored with the data
//!   TTL (±jitter); a record known to be gone answers `None` from its tombstone. With an
//!   in-process tier ([`TieredStore`]) every read asks it first and keeps what it read (see
//!   [`Store::typed_tier`]).
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
mod dependents;
mod early;
pub mod entry;
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
use crate::config::{ConfigError, Settings};
use crate::key::Keys;
use crate::source::{AirtableSource, Source, SourceError};
#[cfg(feature = "cluster")]
use crate::store::RedisClusterStore;
use crate::store::{MemoryStore, Store, StoreError};
#[cfg(feature = "redis")]
use crate::store::{RedisCa, RedisStore, TieredStore};

/// TTLs and batching of a [`Cache`]. Set through [`CacheBuilder`]'s setters, or start from
/// [`CacheConfig::default`] and change fields (the struct may grow: it cannot be built from a
/// literal outside this crate).
///
/// ```
/// use std::time::Duration;
/// use podium_cache_core::cache::CacheConfig;
/// let mut config = CacheConfig::default();
/// config.data_ttl = Duration::from_secs(3600);
/// assert_eq!(config.max_batch, 100);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Data TTL (default 8 h).
    pub data_ttl: Duration,
    /// Tombstone TTL for deleted records (default 9 h, longer than the data TTL).
    pub tombstone_ttl: Duration,
    /// TTL of the "not found" tombstone for an id the source does not have but the cache knew
    /// (it has a version: it was written, changed or deleted through the cache); default: the
    /// tombstone TTL. Ids the cache never saw go to the negative cache instead
    /// ([`negative_ttl`](Self::negative_ttl)), never into the store.
    pub missing_ttl: Duration,
    /// TTL jitter as a fraction (default 0.05 = ±5%).
    pub jitter: f64,
    /// How long misses gather before a batch is sent (default 2 ms).
    pub batch_window: Duration,
    /// The most ids in one batch (default and maximum 100).
    pub max_batch: usize,
    /// Batches of one table in flight at once (default 4); more misses gather meanwhile.
    pub max_in_flight_batches: usize,
    /// TTL of cached query results (default: the data TTL).
    pub query_ttl: Duration,
    /// How long past its expiry a record may still be served while the source fails (5xx,
    /// timeouts, rate limit exhausted); default 0: never. The store keeps data this much longer
    /// than the data TTL. A record with a tombstone is never served stale.
    pub stale_if_error: Duration,
    /// XFetch β of the probabilistic early refresh of hot keys (default 1.0; 0 turns it off):
    /// a read shortly before a record's expiry refreshes it in the background, with a
    /// probability that grows towards the expiry and with the record's fetch time.
    pub xfetch_beta: f64,
    /// How long "the source does not have it" is believed for an id the cache never saw
    /// (default 5 minutes). Kept in process only, never in the store.
    pub negative_ttl: Duration,
    /// The most never-seen ids the in-process negative cache holds (default 100,000); a flood
    /// of random ids evicts its own entries and leaves the store as it was.
    pub negative_capacity: u64,
    /// The source's call budget, `(max calls, window)` (default none; [`Cache::from_settings`]
    /// sets Airtable's 5 per second). With it the batcher counts each call from its sending to
    /// one window after its answer, as the Airtable client's limiter does, and shares the
    /// budget between clients; without it only `max_in_flight_batches` are shared.
    pub source_budget: Option<(usize, Duration)>,
    /// Call slots only a client under its fair share may take (default 1): a client keeping
    /// the source busy on its own never takes the last one, so another client's miss is sent
    /// as soon as it arrives. 0 turns the reserve off.
    pub reserved_calls: usize,
    /// The most misses one client may have queued or in flight (default 128; 0: no limit);
    /// beyond it [`CacheError::TooManyMisses`]. Misses outside any client are not limited.
    pub max_client_misses: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            data_ttl: Duration::from_secs(8 * 3600),
            tombstone_ttl: Duration::from_secs(9 * 3600),
            missing_ttl: Duration::from_secs(9 * 3600),
            jitter: 0.05,
            batch_window: Duration::from_millis(2),
            max_batch: 100,
            max_in_flight_batches: 4,
            query_ttl: Duration::from_secs(8 * 3600),
            stale_if_error: Duration::ZERO,
            xfetch_beta: 1.0,
            negative_ttl: Duration::from_secs(300),
            negative_capacity: 100_000,
            source_budget: None,
            reserved_calls: 1,
            max_client_misses: 128,
        }
    }
}

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
        self.config.jitter = jitter.clamp(0.0, 0.5);
        self
    }

    /// How long past expiry a record may be served while the source fails (default 0: never).
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.config.stale_if_error = window;
        self
    }

    /// XFetch β of the early refresh (default 1.0; 0 turns it off; negative is taken as 0).
    pub fn xfetch_beta(mut self, beta: f64) -> Self {
        self.config.xfetch_beta = if beta.is_finite() { beta.max(0.0) } else { 0.0 };
        self
    }

    /// The miss-batching window (default 2 ms).
    pub fn batch_window(mut self, window: Duration) -> Self {
        self.config.batch_window = window;
        self
    }

    /// The most ids in one batch (default and maximum 100; 0 is taken as 1).
    pub fn max_batch(mut self, max: usize) -> Self {
        self.config.max_batch = max.clamp(1, 100);
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

    /// Every setting at once.
    pub fn config(mut self, config: CacheConfig) -> Self {
        self.config = config;
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

/// The CA of `redis_ca_file`, read and checked, when it is set.
#[cfg(feature = "redis")]
fn redis_ca(settings: &Settings) -> Result<Option<RedisCa>, ConfigError> {
    let Some(pem) = settings.redis_ca_pem()? else {
        return Ok(None);
    };
    let path = settings
        .redis_ca_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    RedisCa::from_pem(pem)
        .map(Some)
        .map_err(|e| ConfigError::Invalid {
            setting: "redis_ca_file",
            env: "PODIUM_REDIS_CA_FILE",
            message: format!("{path}: {e}"),
        })
}

/// The error for a setting that needs a feature this build left out (`redis`, `cluster`: the
/// ones enabled are passed in), if `settings` has one.
fn missing_feature(settings: &Settings, redis: bool, cluster: bool) -> Option<SetupError> {
    let disabled = |setting, feature| Some(SetupError::FeatureDisabled { setting, feature });
    if settings.redis_url.is_some() && !redis {
        return disabled("redis_url", "redis");
    }
    if !settings.redis_cluster_nodes.is_empty() && !cluster {
        return disabled("redis_cluster_nodes", "cluster");
    }
    None
}

/// Why [`Cache::from_settings`] could not build a cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A setting is missing or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be set up.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The source could not be set up.
    #[error("airtable: {0}")]
    Source(#[from] SourceError),
    /// A setting asks for a part this build of podium-cache-core left out.
    #[error(
        "{setting} is set, but podium-cache-core was built without its `{feature}` feature: \
         enable it (podium-cache-core = {{ version = \"0.1\", features = [\"{feature}\"] }}) \
         or unset {setting}"
    )]
    FeatureDisabled {
        /// The setting that needs the feature.
        setting: &'static str,
        /// The cargo feature of podium-cache-core to enable.
        feature: &'static str,
    },
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
        if let Some(err) =
            missing_feature(settings, cfg!(feature = "redis"), cfg!(feature = "cluster"))
        {
            return Err(err);
        }
        #[cfg(feature = "redis")]
        let ca = redis_ca(settings)?;
        #[cfg(feature = "redis")]
        let store = Self::store_from_settings(settings, &ca).await?;
        #[cfg(not(feature = "redis"))]
        let store = Self::store_from_settings(settings)?;
        // The Airtable budget is shared through Redis itself (not the in-process tier).
        let shared = settings.redis_url.is_some() || !settings.redis_cluster_nodes.is_empty();
        let budget_store = shared.then(|| Arc::clone(&store));
        #[cfg(feature = "redis")]
        let store = Self::with_tier(settings, store, ca).await?;
        let (key, base) = settings.airtable_key_and_base()?;
        let mut source = AirtableSource::builder(key.expose(), base)
            .api_url(settings.airtable_api_url.as_str())
            .local_rps(settings.local_airtable_rps());
        if let Some(budget_store) = budget_store {
            let budget_key = Keys::new(settings.prefix.as_str()).rate_limit(base);
            tracing::info!(
                key = budget_key,
                local_rps = settings.local_airtable_rps(),
                "airtable budget shared by every instance through the store"
            );
            source = source.shared_limit(budget_store, budget_key);
        }
        let source = source.build()?;
        Ok((store, Arc::new(source)))
    }

    /// The store `settings` describe (see [`Cache::stores_from_settings`]).
    #[cfg(feature = "redis")]
    async fn store_from_settings(
        settings: &Settings,
        ca: &Option<RedisCa>,
    ) -> Result<Arc<dyn Store>, SetupError> {
        Ok(match &settings.redis_url {
            Some(url) => {
                let mut builder = RedisStore::builder(url.expose());
                if let Some(ca) = ca {
                    builder = builder.ca(ca.clone());
                }
                Arc::new(builder.connect().await.map_err(|e| ConfigError::Invalid {
                    setting: "redis_url",
                    env: "PODIUM_REDIS_URL",
                    message: e.to_string(),
                })?)
            }
            #[cfg(feature = "cluster")]
            None if !settings.redis_cluster_nodes.is_empty() => {
                let mut builder = RedisClusterStore::builder(
                    settings
                        .redis_cluster_nodes
                        .iter()
                        .map(|n| n.expose().to_owned()),
                );
                if let Some(ca) = ca {
                    builder = builder.ca(ca.clone());
                }
                Arc::new(builder.connect().await.map_err(|e| ConfigError::Invalid {
                    setting: "redis_cluster_nodes",
                    env: "PODIUM_REDIS_CLUSTER_NODES",
                    message: e.to_string(),
                })?)
            }
            // Without `cluster`, cluster nodes were refused by `missing_feature`.
            _ => Self::memory_store(settings),
        })
    }

    /// The store `settings` describe in a build without Redis: the in-memory store (Redis
    /// settings were refused by [`missing_feature`]).
    #[cfg(not(feature = "redis"))]
    fn store_from_settings(settings: &Settings) -> Result<Arc<dyn Store>, SetupError> {
        if settings.l1_capacity > 0 {
            tracing::info!(
                "l1_capacity has no effect without redis: the in-memory store is in process already"
            );
        }
        Ok(Self::memory_store(settings))
    }

    /// The in-memory store of `memory_capacity` entries (the embedded default), said in one
    /// info line.
    fn memory_store(settings: &Settings) -> Arc<dyn Store> {
        tracing::info!(
            capacity = settings.memory_capacity,
            "no redis_url configured: using the in-memory store"
        );
        Arc::new(MemoryStore::new(settings.memory_capacity))
    }

    /// `store` behind an in-process tier when `l1_capacity > 0` and the store is shared (Redis
    /// or a cluster): a [`TieredStore`] whose invalidation link uses the same server(s) and
    /// the channel `{prefix}:inval`.
    #[cfg(feature = "redis")]
    async fn with_tier(
        settings: &Settings,
        store: Arc<dyn Store>,
        ca: Option<RedisCa>,
    ) -> Result<Arc<dyn Store>, SetupError> {
        if settings.l1_capacity == 0 {
            return Ok(store);
        }
        let (urls, setting, env): (Vec<String>, _, _) = match &settings.redis_url {
            Some(url) => (
                vec![url.expose().to_owned()],
                "redis_url",
                "PODIUM_REDIS_URL",
            ),
            None if !settings.redis_cluster_nodes.is_empty() => (
                settings
                    .redis_cluster_nodes
                    .iter()
                    .map(|node| node.expose().to_owned())
                    .collect(),
                "redis_cluster_nodes",
                "PODIUM_REDIS_CLUSTER_NODES",
            ),
            None => {
                tracing::info!(
                    "l1_capacity has no effect without redis: the in-memory store is in process already"
                );
                return Ok(store);
            }
        };
        let mut tiered = TieredStore::builder(store)
            .capacity(settings.l1_capacity)
            .prefix(&settings.prefix)
            .bus_urls(urls);
        if let Some(ca) = ca {
            tiered = tiered.ca(ca);
        }
        let tiered = tiered.connect().await.map_err(|e| ConfigError::Invalid {
            setting,
            env,
            message: e.to_string(),
        })?;
        tracing::info!(
            capacity = settings.l1_capacity,
            "in-process tier on, kept coherent over redis pub/sub"
        );
        Ok(Arc::new(tiered))
    }

    /// A cache configured entirely from `settings` (see [`Cache::stores_from_settings`]).
    pub async fn from_settings(settings: &Settings) -> Result<Cache, SetupError> {
        let (store, source) = Self::stores_from_settings(settings).await?;
        let config = CacheConfig {
            data_ttl: settings.data_ttl(),
            tombstone_ttl: settings.tombstone_ttl(),
            missing_ttl: settings.tombstone_ttl(),
            jitter: settings.ttl_jitter,
            query_ttl: settings.data_ttl(),
            stale_if_error: settings.stale_if_error(),
            xfetch_beta: settings.xfetch_beta,
            negative_ttl: Duration::from_secs(settings.negative_ttl_secs),
            negative_capacity: settings.negative_capacity,
            // The budget the Airtable client is built with.
            source_budget: Some(crate::source::airtable::RATE_LIMIT),
            max_client_misses: settings.max_client_misses,
            ..CacheConfig::default()
        };
        Ok(Self::builder(store, source)
            .prefix(&settings.prefix)
            .config(config)
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

    #[test]
    fn a_redis_setting_without_its_feature_names_the_feature() {
        use crate::config::Secret;
        let redis = "redis://127.0.0.1:1";
        let url = Settings {
            redis_url: Some(Secret::new(redis)),
            ..Settings::default()
        };
        let nodes = Settings {
            redis_cluster_nodes: vec![Secret::new(redis)],
            ..Settings::default()
        };
        let refused = [
            (&url, false, false, "redis_url", "redis"),
            (&nodes, false, false, "redis_cluster_nodes", "cluster"),
            (&nodes, true, false, "redis_cluster_nodes", "cluster"),
        ];
        for (settings, redis, cluster, named, needed) in refused {
            let err = missing_feature(settings, redis, cluster).expect("refused");
            assert!(
                matches!(err, SetupError::FeatureDisabled { setting, feature } if setting == named && feature == needed),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains(&format!("`{needed}` feature")) && text.contains(named),
                "{text}"
            );
        }
        assert!(missing_feature(&url, true, false).is_none());
        assert!(missing_feature(&nodes, true, true).is_none());
        assert!(missing_feature(&Settings::default(), false, false).is_none());
    }

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
}
