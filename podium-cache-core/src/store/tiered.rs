//! [`TieredStore`]: an in-process tier of decoded values in front of a shared store, kept
//! coherent across instances by Redis pub/sub.

mod bus;
mod tier;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rand::Rng;
use tracing::Instrument;

use self::bus::{Bus, BusConfig};
use self::tier::inc;
pub use self::tier::{Ticket, TierLookup, TierMetrics, TypedTier};
use super::tls::RedisCa;
use super::{RecordWrite, ScanPage, Store, StoreError, StoreExtensions, WriteOutcome};

/// How long a value stays in the in-process tier at most (10 minutes), unless configured.
/// Changes announced by a broadcast evict earlier; the TTL bounds what nothing announces
/// (a shared entry that expired and was refilled with a different value).
pub const DEFAULT_TIER_TTL: Duration = Duration::from_secs(600);

/// Configures a [`TieredStore`].
///
/// ```no_run
/// # async fn demo(shared: std::sync::Arc<dyn podium_cache_core::store::Store>)
/// #     -> Result<(), podium_cache_core::store::StoreError> {
/// use std::time::Duration;
/// use podium_cache_core::store::TieredStore;
/// let store = TieredStore::builder(shared)
///     .capacity(10_000)
///     .ttl(Duration::from_secs(300))
///     .bus_urls(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]) // cluster seeds
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
pub struct TieredStoreBuilder {
    shared: Arc<dyn Store>,
    capacity: u64,
    ttl: Duration,
    prefix: String,
    urls: Vec<String>,
    ca: Option<RedisCa>,
    call_timeout: Duration,
    ping_interval: Duration,
    link_wait: Option<Duration>,
}

impl std::fmt::Debug for TieredStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs may carry a password: only their number is shown.
        f.debug_struct("TieredStoreBuilder")
            .field("shared", &self.shared.name())
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .field("prefix", &self.prefix)
            .field("bus_urls", &self.urls.len())
            .finish_non_exhaustive()
    }
}

impl TieredStoreBuilder {
    /// Entries the in-process tier holds at most (default 10,000).
    pub fn capacity(mut self, entries: u64) -> Self {
        self.capacity = entries;
        self
    }

    /// How long one value stays in the tier at most (default [`DEFAULT_TIER_TTL`]).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The key prefix; invalidations travel on `{prefix}:inval` (default `podium`). Every
    /// instance sharing the store must use the same.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// The Redis server the invalidation link uses (normally the shared store's own URL).
    pub fn bus_url(mut self, url: impl Into<String>) -> Self {
        self.urls = vec![url.into()];
        self
    }

    /// Several nodes for the invalidation link, tried in turn (the seed nodes of a cluster,
    /// where a message published on any node reaches subscribers on every node).
    pub fn bus_urls(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// Trusts `ca` instead of the public roots for `rediss://` link URLs (the shared store's
    /// own CA, setting `redis_ca_file`).
    pub fn ca(mut self, ca: RedisCa) -> Self {
        self.ca = Some(ca);
        self
    }

    /// How long publishing one invalidation may take before the write is reported failed
    /// (default 250 ms); subscribing may take four times that.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// How often the subscription is pinged, so a link that died silently is noticed
    /// (default 1 s).
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How long [`connect`](Self::connect) waits for the first subscription before returning
    /// with the tier bypassed (default: four call timeouts). Reads work either way.
    pub fn link_wait(mut self, wait: Duration) -> Self {
        self.link_wait = Some(wait);
        self
    }

    /// Validates the link's URLs, starts the subscriber and waits (see
    /// [`link_wait`](Self::link_wait)) for the first subscription. Must run within a Tokio
    /// runtime. A Redis that is down now is not an error: the tier stays bypassed until the
    /// link is up.
    pub async fn connect(self) -> Result<TieredStore, StoreError> {
        let tier = Arc::new(TypedTier::new(self.capacity, self.ttl));
        let origin = format!("{:016x}", rand::thread_rng().gen::<u64>());
        let config = BusConfig {
            channel: format!("{}:inval", self.prefix),
            origin,
            call_timeout: self.call_timeout,
            ping_interval: self.ping_interval,
        };
        let bus = Bus::start(&self.urls, self.ca.as_ref(), config, Arc::clone(&tier))?;
        let wait = self.link_wait.unwrap_or(self.call_timeout * 4);
        if !tier.wait_serving(wait).await {
            tracing::warn!(
                waited = ?wait,
                "invalidation link not up yet: the in-process tier is bypassed until it is"
            );
        }
        Ok(TieredStore {
            inner: Arc::new(Inner {
                shared: self.shared,
                tier,
                bus,
            }),
        })
    }
}

/// A [`Store`] that puts an in-process [`TypedTier`] of decoded values (`Arc<T>`) in front of a
/// shared store (Redis, a cluster), coherent across instances through Redis pub/sub.
///
/// - **Bytes** pass through to the shared store unchanged; every write this store sees evicts
///   the keys it wrote from the tier (after the shared write, so a read that raced it is not
///   kept).
/// - **Broadcast**: a record write that bumps the record's generation (every upsert,
///   invalidation, delete and sweep removal the engine makes, see [`RecordWrite`]) is
///   published on `{prefix}:inval` before the write returns, also when the write was refused
///   as not newer (so a retried delivery is announced even if its first attempt was stored but
///   not announced). If it cannot be published the write is reported failed, so a webhook is
///   never acknowledged while other instances may still serve the old record. Every other
///   instance evicts the keys.
/// - **Typed values**: the engine asks the tier first through [`Store::typed_tier`] and offers
///   back what it decoded from the shared store; see [`TypedTier`] for the placeholder rule (a
///   read that raced an invalidation is not kept) and the link rule (while the subscription is
///   down the tier is flushed and bypassed, because invalidations may have been missed). Every
///   read path uses it: `get` and `get_many` (records, under their data keys), `get_by_index`
///   (the id an index value led to, a hint that is checked against the record, so index writes
///   need no announcement) and `query` (the id list, under the query key, which names the
///   entity's generation: a change makes it unreachable rather than stale).
///
/// Why pub/sub and not RESP3 client tracking: the link's health is then something this store
/// sees itself (its own subscriber connection, pinged), whereas tracking state lives on the data
/// connections, which reconnect silently and would lose it without a trace; one channel works
/// the same on a standalone server and on a cluster (where `PUBLISH` reaches every node, and
/// tracking would need a redirect connection per master); and only record changes are announced,
/// not every write of every key under the prefix (indexes, counters, locks, HTTP responses).
///
/// ```no_run
/// # async fn demo() -> Result<(), podium_cache_core::store::StoreError> {
/// use std::sync::Arc;
/// use podium_cache_core::store::{RedisStore, Store, TieredStore};
///
/// let url = "redis://127.0.0.1:6390/";
/// let shared = Arc::new(RedisStore::connect(url).await?);
/// let store = TieredStore::builder(shared)
///     .capacity(50_000)
///     .prefix("podium")
///     .bus_url(url)
///     .connect()
///     .await?;
/// let tier = store.typed_tier().expect("a tiered store has a tier");
/// println!("l1 hits so far: {}", tier.metrics().hits);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TieredStore {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<dyn Store>,
    tier: Arc<TypedTier>,
    bus: Bus,
}

impl std::fmt::Debug for TieredStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredStore")
            .field("shared", &self.inner.shared.name())
            .field("tier", &self.inner.tier)
            .finish_non_exhaustive()
    }
}

impl TieredStore {
    /// A builder putting a tier in front of `shared`.
    pub fn builder(shared: Arc<dyn Store>) -> TieredStoreBuilder {
        TieredStoreBuilder {
            shared,
            capacity: 10_000,
            ttl: DEFAULT_TIER_TTL,
            prefix: "podium".to_owned(),
            urls: Vec::new(),
            ca: None,
            call_timeout: Duration::from_millis(250),
            ping_interval: Duration::from_secs(1),
            link_wait: None,
        }
    }

    /// The in-process tier.
    pub fn tier(&self) -> &TypedTier {
        &self.inner.tier
    }

    /// The store behind the tier.
    pub fn shared(&self) -> &Arc<dyn Store> {
        &self.inner.shared
    }

    /// Evicts keys this instance wrote (after the shared write).
    fn evict<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        for key in keys {
            self.inner.tier.invalidate(key);
        }
    }

    /// Tells every other instance to evict `keys`; fails when the message was not published.
    async fn broadcast(&self, keys: &[&str]) -> Result<(), StoreError> {
        let span = tracing::debug_span!("l1.broadcast", keys = keys.len());
        let counters = self.inner.tier.counters();
        inc(&counters.broadcasts_started);
        match self.inner.bus.publish(keys).instrument(span).await {
            Ok(()) => {
                inc(&counters.broadcasts_sent);
                Ok(())
            }
            Err(err) => {
                inc(&counters.broadcast_failures);
                tracing::warn!(error = %err, "invalidation not broadcast; the write is reported failed");
                Err(err)
            }
        }
    }
}

#[async_trait]
impl Store for TieredStore {
    fn name(&self) -> &'static str {
        "tiered"
    }

    fn epoch(&self) -> u64 {
        self.inner.shared.epoch()
    }

    fn typed_tier(&self) -> Option<&TypedTier> {
        Some(&self.inner.tier)
    }

    /// The shared store's: locks, counters, sets and claims never touch the keys the tier
    /// holds (records, query lists, HTTP responses), so they pass by it.
    fn extensions(&self) -> Option<&dyn StoreExtensions> {
        self.inner.shared.extensions()
    }

    async fn announce(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.evict(keys.iter().map(String::as_str));
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.broadcast(&keys).await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.inner.shared.get(key).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, StoreError> {
        self.inner.shared.get_many(keys).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        let result = self.inner.shared.set(key, value, ttl).await;
        self.evict([key]);
        result
    }

    async fn set_many(&self, entries: &[(String, Bytes, Duration)]) -> Result<(), StoreError> {
        let result = self.inner.shared.set_many(entries).await;
        self.evict(entries.iter().map(|(key, _, _)| key.as_str()));
        result
    }

    async fn delete(&self, keys: &[String]) -> Result<u64, StoreError> {
        let result = self.inner.shared.delete(keys).await;
        self.evict(keys.iter().map(String::as_str));
        result
    }

    async fn write_record(&self, write: &RecordWrite) -> Result<WriteOutcome, StoreError> {
        let result = self.inner.shared.write_record(write).await;
        let keys: Vec<&str> = write
            .set
            .iter()
            .map(|(key, _, _)| key.as_str())
            .chain(write.delete.iter().map(String::as_str))
            .collect();
        // Evicted whatever the outcome: a write that timed out may still have been applied.
        self.evict(keys.iter().copied());
        let outcome = result?;
        if write.bump_generation {
            // Also when the write was refused as not newer: a retried delivery whose first
            // attempt was stored but not announced must still be announced.
            self.broadcast(&keys).await?;
        }
        Ok(outcome)
    }

    async fn scan(&self, pattern: &str, cursor: u64, count: usize) -> Result<ScanPage, StoreError> {
        self.inner.shared.scan(pattern, cursor, count).await
    }
}
