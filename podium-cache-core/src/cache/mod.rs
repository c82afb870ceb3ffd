//! The read-through engine: [`Cache`].
//!
//! - **Reads** ([`Cache::get`], [`Cache::get_many`], [`Cache::get_by_index`], [`Cache::query`])
//!   answer from the store; a miss is one coalesced, batched source call, stored with the data
//!   TTL (±jitter); a record known to be gone answers `None` from its tombstone.
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
mod fill;
mod listener;
mod metrics;
mod read;
mod write;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rand::Rng;

pub use self::listener::{Change, ChangeKind, InvalidationListener};
pub use self::metrics::MetricsSnapshot;
pub use self::read::Query;
pub use self::write::UpsertOutcome;

use self::batch::Batcher;
use self::fill::InFlight;
use self::metrics::Metrics;
use crate::config::{ConfigError, Settings};
use crate::key::Keys;
use crate::source::{AirtableSource, Source, SourceError};
use crate::store::{MemoryStore, RedisClusterStore, RedisStore, Store, StoreError};

/// What a cache operation can fail with. Reads fail only when the source fails (a store that
/// fails is fallen through); writes fail when the store or the source does.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The source failed (after its retries).
    #[error("source: {0}")]
    Source(#[from] Arc<SourceError>),
    /// The store failed during a write.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A record did not fit its model.
    #[error("record {id} of {entity} does not fit the model: {message}")]
    Decode {
        /// Entity name.
        entity: &'static str,
        /// Record id.
        id: String,
        /// serde's message, with the field path.
        message: String,
    },
    /// `get_by_index` named a field that has no index.
    #[error("{entity} has no index on `{field}` (indexed: {known})")]
    UnknownIndex {
        /// Entity name.
        entity: &'static str,
        /// The field asked for.
        field: String,
        /// The indexed fields.
        known: String,
    },
}

impl From<SourceError> for CacheError {
    fn from(err: SourceError) -> Self {
        Self::Source(Arc::new(err))
    }
}

/// TTLs and batching of a [`Cache`].
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Data TTL (default 8 h).
    pub data_ttl: Duration,
    /// Tombstone TTL for deleted records (default 9 h, longer than the data TTL).
    pub tombstone_ttl: Duration,
    /// TTL of the "not found" entry for an id the source does not have (default: the tombstone TTL).
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

    /// Tombstone TTL (default 9 h); also the TTL for ids the source does not have.
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

    /// The miss-batching window (default 2 ms).
    pub fn batch_window(mut self, window: Duration) -> Self {
        self.config.batch_window = window;
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
            self.config.batch_window,
            self.config.max_batch,
            self.config.max_in_flight_batches,
        );
        Cache {
            inner: Arc::new(Inner {
                store: self.store,
                source: self.source,
                keys: self.keys,
                config: self.config,
                batcher,
                in_flight: Mutex::new(HashMap::new()),
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
    source: Arc<dyn Source>,
    keys: Keys,
    config: CacheConfig,
    batcher: Arc<Batcher>,
    in_flight: Mutex<HashMap<(String, Option<u64>), InFlight>>,
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

/// Why [`Cache::from_settings`] could not build a cache.
#[derive(Debug, thiserror::Error)]
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
    pub async fn stores_from_settings(
        settings: &Settings,
    ) -> Result<(Arc<dyn Store>, Arc<dyn Source>), SetupError> {
        let store: Arc<dyn Store> = match &settings.redis_url {
            Some(url) => Arc::new(RedisStore::connect(url.expose()).await.map_err(|e| {
                ConfigError::Invalid {
                    setting: "redis_url",
                    env: "PODIUM_REDIS_URL",
                    message: e.to_string(),
                }
            })?),
            None if !settings.redis_cluster_nodes.is_empty() => Arc::new(
                RedisClusterStore::connect(settings.redis_cluster_nodes.iter().cloned())
                    .await
                    .map_err(|e| ConfigError::Invalid {
                        setting: "redis_cluster_nodes",
                        env: "PODIUM_REDIS_CLUSTER_NODES",
                        message: e.to_string(),
                    })?,
            ),
            None => {
                tracing::info!(
                    capacity = settings.memory_capacity,
                    "no redis_url configured: using the in-memory store"
                );
                Arc::new(MemoryStore::new(settings.memory_capacity))
            }
        };
        let key = settings
            .airtable_api_key
            .as_ref()
            .ok_or(ConfigError::Invalid {
                setting: "airtable_api_key",
                env: "PODIUM_AIRTABLE_API_KEY",
                message: "is not set".into(),
            })?;
        let base = settings
            .airtable_base_id
            .as_ref()
            .ok_or(ConfigError::Invalid {
                setting: "airtable_base_id",
                env: "PODIUM_AIRTABLE_BASE_ID",
                message: "is not set".into(),
            })?;
        let source = AirtableSource::builder(key.expose(), base.as_str())
            .api_url(settings.airtable_api_url.as_str())
            .build()?;
        Ok((store, Arc::new(source)))
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
            ..CacheConfig::default()
        };
        Ok(Self::builder(store, source)
            .prefix(&settings.prefix)
            .config(config)
            .build())
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

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

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
