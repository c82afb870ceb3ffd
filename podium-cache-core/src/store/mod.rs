//! Where cache entries live: the [`Store`] trait and its implementations.
//!
//! - [`MemoryStore`]: the embedded default, a bounded in-process map with per-entry TTL (moka).
//! - [`RedisStore`] (feature `redis`, on by default): Redis or Valkey through one multiplexed, self-reconnecting connection;
//!   multi-key reads are one `MGET`, the record write is one Lua script.
//! - [`RedisClusterStore`] (feature `cluster`): a Redis (or Valkey) Cluster through the redis crate's async cluster
//!   client; multi-key reads and deletes are split by hash slot, `scan` walks every master.
//!
//! Both Redis stores connect over TLS for `rediss://` URLs, trusting the public roots or the
//! private CA given as a [`RedisCa`].
//!
//! Every shipped store runs the same behaviour suite (`tests/store_behaviour.rs`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), podium_cache_core::store::StoreError> {
//! use podium_cache_core::store::{MemoryStore, Store};
//! use std::time::Duration;
//! let store = MemoryStore::new(10_000);
//! store.set("k", "v".into(), Duration::from_secs(60)).await?;
//! assert_eq!(store.get("k").await?.as_deref(), Some(&b"v"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! # Writing a store
//! Any key/value store that can do an atomic "check a version, then write several keys" can
//! hold the cache. [`Store`] asks seven methods of it: `name`, `get`, `get_many`, `set`,
//! `delete`, `write_record` (that atomic write: see [`RecordWrite`]) and `scan`. Everything else
//! has a default: locks, counters, sets and bounded claims ([`ext`]) are then built from those
//! methods and are atomic within one process only, and there is no shared rate limiter; a store
//! shared by several processes implements the [`ext`] traits and answers them from
//! [`Store::extensions`].
//!
//! A whole store, a map behind a mutex (`tests/toy_store.rs` runs the behaviour suite and the
//! read-through cache on this very code):
//!
#![doc = concat!(
    "```\n",
    include_str!("../../tests/toy_store/toy.rs"),
    r#"
# #[tokio::main(flavor = "current_thread")]
# async fn main() -> Result<(), StoreError> {
use std::sync::Arc;
use podium_cache_core::store::Locks;

let store: Arc<dyn Store> = Arc::new(ToyStore::default());
let minute = Duration::from_secs(60);
store.set("k", Bytes::from_static(b"v"), minute).await?;
assert_eq!(store.get("k").await?.as_deref(), Some(&b"v"[..]));
// A lock, from the fallback: atomic within this process.
assert!(store.set_if_absent("lock", Bytes::from_static(b"me"), minute).await?);
assert!(!store.set_if_absent("lock", Bytes::from_static(b"you"), minute).await?);
# Ok(()) }
```"#
)]

#[cfg(feature = "cluster")]
mod cluster;
#[cfg(feature = "redis")]
mod commands;
mod decoded;
pub mod ext;
mod fallback;
mod lock;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_ext;
#[cfg(feature = "redis")]
mod script;
#[cfg(feature = "redis")]
mod standalone;
#[cfg(feature = "redis")]
mod tiered;
// Without Redis there is no TieredStore (its coherence is Redis pub/sub), but the engine still
// asks every store for its in-process tier ([`Store::typed_tier`]).
// Its hooks for the pub/sub link (`link_lost`, `counters`) have no caller then.
#[cfg(not(feature = "redis"))]
#[path = "tiered/tier.rs"]
#[allow(dead_code)]
mod tier;
#[cfg(feature = "redis")]
mod tls;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

#[cfg(feature = "cluster")]
pub use self::cluster::{Cluster, RedisClusterStore, RedisClusterStoreBuilder};
pub use self::decoded::{get_decoded, get_decoded_now, Decoded, Decoder};
pub use self::ext::{
    BoundedSets, Counters, Locks, RateLimitCall, RateLimitReply, RateLimits, StoreExtensions,
};
pub use self::lock::StoreLock;
pub use self::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use self::redis::Redis;
#[cfg(feature = "redis")]
pub use self::standalone::{RedisStore, RedisStoreBuilder, Standalone};
#[cfg(not(feature = "redis"))]
pub use self::tier::{Ticket, TierLookup, TierMetrics, TypedTier};
#[cfg(feature = "redis")]
pub use self::tiered::{
    Ticket, TierLookup, TierMetrics, TieredStore, TieredStoreBuilder, TypedTier, DEFAULT_TIER_TTL,
};
#[cfg(feature = "redis")]
pub use self::tls::{RedisCa, RedisCaError};

/// A store operation failed; the engine falls through to the source when it sees one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached or the connection broke.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store did not answer within the configured timeout.
    #[error("store call timed out after {0:?}")]
    Timeout(Duration),
    /// The store answered something this client did not expect.
    #[error("unexpected store reply: {0}")]
    Protocol(String),
}

impl StoreError {
    /// Whether the error may hide a lost connection or a restarted server (it was unreachable
    /// or did not answer in time), after which the store may no longer hold what it held.
    ///
    /// ```
    /// use podium_cache_core::store::StoreError;
    /// assert!(StoreError::Unavailable("refused".into()).is_disruption());
    /// assert!(!StoreError::Protocol("WRONGTYPE".into()).is_disruption());
    /// ```
    pub fn is_disruption(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout(_))
    }
}

/// The counter behind [`Store::epoch`]: moved by every disruption a store sees.
#[cfg(feature = "redis")]
#[derive(Debug, Default)]
pub(crate) struct Epoch(std::sync::atomic::AtomicU64);

#[cfg(feature = "redis")]
impl Epoch {
    pub(crate) fn current(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn advance(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Advances on a disrupting error, and hands the result back.
    pub(crate) fn watch<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(err) = &result {
            if err.is_disruption() {
                self.advance();
            }
        }
        result
    }
}

/// A record's generation (bumped by every upsert, invalidation and delete) and the timestamp of
/// the newest change applied to it (milliseconds since the Unix epoch; 0 when none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Version {
    /// Incremented by every write that must beat concurrent fills.
    pub generation: u64,
    /// The newest applied change, in ms since the epoch.
    pub timestamp_ms: i64,
}

impl Version {
    /// Parses the stored form `"{generation}:{timestamp_ms}"`; a missing value is the default.
    pub fn parse(raw: Option<&[u8]>) -> Result<Self, StoreError> {
        let Some(raw) = raw else {
            return Ok(Self::default());
        };
        let text = std::str::from_utf8(raw).map_err(|e| StoreError::Protocol(e.to_string()))?;
        let (g, t) = text
            .split_once(':')
            .ok_or_else(|| StoreError::Protocol(format!("bad version value {text:?}")))?;
        Ok(Self {
            generation: g
                .parse()
                .map_err(|_| StoreError::Protocol(format!("bad generation {g:?}")))?,
            timestamp_ms: t
                .parse()
                .map_err(|_| StoreError::Protocol(format!("bad timestamp {t:?}")))?,
        })
    }

    /// The stored form, `"{generation}:{timestamp_ms}"`.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.generation, self.timestamp_ms)
    }
}

/// When a [`RecordWrite`] may happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Unconditionally (invalidate, delete).
    Always,
    /// Only if the generation is still this one (a fill: the stale-set guard).
    GenerationIs(u64),
    /// Only if the stored timestamp is strictly older than this one (a webhook delivery).
    NewerThan(i64),
}

/// One atomic change to a record: check its version, then set and delete keys of that record.
/// All keys must share the record's hash slot (see [`crate::key`]).
#[derive(Clone, Debug)]
pub struct RecordWrite {
    /// The record's version key.
    pub version_key: String,
    /// What must hold for the write to happen.
    pub condition: Condition,
    /// Increment the generation.
    pub bump_generation: bool,
    /// Record this as the newest applied change (kept if older than the stored one).
    pub timestamp_ms: Option<i64>,
    /// How long the version key lives.
    pub version_ttl: Duration,
    /// Keys to set, with their TTL.
    pub set: Vec<(String, Bytes, Duration)>,
    /// Keys to delete.
    pub delete: Vec<String>,
}

/// What a [`RecordWrite`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The condition held and the keys were written; the version after the write.
    Applied(Version),
    /// The condition failed and nothing was written; the version that made it fail.
    Rejected(Version),
}

impl WriteOutcome {
    /// Whether the write happened.
    pub fn applied(&self) -> bool {
        matches!(self, Self::Applied(_))
    }
}

/// A page of a key scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Pass back to continue; 0 when the scan is complete.
    pub cursor: u64,
    /// Keys of this page (a key may appear in more than one page, as with Redis `SCAN`).
    pub keys: Vec<String>,
}

/// Where cache entries live. Implementations must be cheap to share (`Arc<dyn Store>`).
///
/// Seven methods are required: [`name`](Self::name), [`get`](Self::get),
/// [`get_many`](Self::get_many), [`set`](Self::set), [`delete`](Self::delete),
/// [`write_record`](Self::write_record) and [`scan`](Self::scan). The provided ones have
/// defaults a simple store keeps: [`epoch`](Self::epoch) (0: never loses entries),
/// [`set_many`](Self::set_many) (one `set` after another), [`extensions`](Self::extensions)
/// (none: see [`ext`] for what that costs), [`get_decoded`](Self::get_decoded) (decodes
/// every read), and the two hooks of an in-process tier,
/// [`typed_tier`](Self::typed_tier) and [`announce`](Self::announce) (none, nothing to announce).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short name for logs and metrics (`"memory"`, `"redis"`).
    fn name(&self) -> &'static str;

    /// One value.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError>;

    /// Several values in one round trip, in the order of `keys`.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, StoreError>;

    /// Sets a value with a TTL.
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StoreError>;

    /// Deletes keys; how many existed.
    async fn delete(&self, keys: &[String]) -> Result<u64, StoreError>;

    /// The atomic record write: see [`RecordWrite`].
    async fn write_record(&self, write: &RecordWrite) -> Result<WriteOutcome, StoreError>;

    /// One page of keys matching a glob `pattern` (`*` only), like Redis `SCAN`.
    async fn scan(&self, pattern: &str, cursor: u64, count: usize) -> Result<ScanPage, StoreError>;

    /// Sets several values, each with its TTL, in one round trip (not atomic as a whole). The
    /// default sets them one after the other.
    async fn set_many(&self, entries: &[(String, Bytes, Duration)]) -> Result<(), StoreError> {
        for (key, value, ttl) in entries {
            self.set(key, value.clone(), *ttl).await?;
        }
        Ok(())
    }

    /// A number that moves whenever this store may have lost entries behind the client's back:
    /// a call failed to reach it or timed out, or its connection was made again (a restarted
    /// Redis comes back empty). The engine reads it before a miss reads a record's generation
    /// and stores the fill only if it has not moved, because after a restart the generation it
    /// saw may be back at its first value while a newer change was acknowledged in between.
    /// A store that cannot lose entries (the default) answers 0 forever.
    ///
    /// ```
    /// use podium_cache_core::store::{MemoryStore, Store};
    /// assert_eq!(MemoryStore::new(10).epoch(), 0);
    /// ```
    fn epoch(&self) -> u64 {
        0
    }

    /// The store's own locks, counters, sets, bounded claims and shared rate limiter (see
    /// [`ext`]), if it has them. Callers never ask: they call the extension traits on
    /// `dyn Store`, which run these, or, when there are none (the default), a fallback built
    /// from the required methods that is atomic within this process only.
    ///
    /// ```
    /// use podium_cache_core::store::{MemoryStore, Store};
    /// assert!(MemoryStore::new(10).extensions().is_some());
    /// ```
    fn extensions(&self) -> Option<&dyn StoreExtensions> {
        None
    }

    /// The value under `key` as `decode` makes it of the entry's bytes. The default reads
    /// with [`get`](Self::get) and decodes every read; a store holding its entries in this
    /// process may keep the decoded value with the entry, so later reads of the unchanged entry
    /// decode nothing (the [`MemoryStore`] does). Callers use the typed [`get_decoded`].
    ///
    /// ```
    /// # async fn demo() -> Result<(), podium_cache_core::store::StoreError> {
    /// use podium_cache_core::store::{Decoded, MemoryStore, Store};
    /// let store = MemoryStore::new(10);
    /// let decode = |bytes: bytes::Bytes| -> Decoded { std::sync::Arc::new(bytes.len()) };
    /// assert!(store.get_decoded("absent", &decode).await?.is_none());
    /// # Ok(()) }
    /// ```
    async fn get_decoded(
        &self,
        key: &str,
        decode: &Decoder<'_>,
    ) -> Result<Option<Decoded>, StoreError> {
        Ok(self.get(key).await?.map(decode))
    }

    /// [`get_decoded`](Self::get_decoded) answered at once, when the store can answer without
    /// waiting (its entries live in this process); `None` when it cannot (the default), and
    /// the caller awaits `get_decoded`. A hot read then costs no future: the typed
    /// [`get_decoded`] tries this first.
    ///
    /// ```
    /// use podium_cache_core::store::{Decoded, MemoryStore, Store};
    /// let store = MemoryStore::new(10);
    /// let decode = |bytes: bytes::Bytes| -> Decoded { std::sync::Arc::new(bytes.len()) };
    /// assert!(matches!(store.get_decoded_now("absent", &decode), Some(Ok(None))));
    /// ```
    fn get_decoded_now(
        &self,
        key: &str,
        decode: &Decoder<'_>,
    ) -> Option<Result<Option<Decoded>, StoreError>> {
        let _ = (key, decode);
        None
    }

    /// The in-process tier of decoded values in front of this store, if it has one (a
    /// [`TieredStore`] does; other stores answer `None`). The engine asks it before reading
    /// and offers back what it decoded.
    ///
    /// ```
    /// use podium_cache_core::store::{MemoryStore, Store};
    /// assert!(MemoryStore::new(10).typed_tier().is_none());
    /// ```
    fn typed_tier(&self) -> Option<&TypedTier> {
        None
    }

    /// Tells every instance's in-process tier that `keys` were deleted or changed in the
    /// shared store behind it, so none answers them from memory any more: the HTTP layer's
    /// purges and invalidations use it for responses, which are not records and so are not
    /// announced by [`write_record`](Self::write_record). A store without a tier (the default)
    /// has nothing to announce; a [`TieredStore`] evicts them here and broadcasts them on its
    /// invalidation link, and fails when the message was not published.
    ///
    /// ```
    /// # async fn demo() -> Result<(), podium_cache_core::store::StoreError> {
    /// use podium_cache_core::store::{MemoryStore, Store};
    /// MemoryStore::new(10).announce(&["podium:http:abc".to_owned()]).await?;
    /// # Ok(()) }
    /// ```
    async fn announce(&self, keys: &[String]) -> Result<(), StoreError> {
        let _ = keys;
        Ok(())
    }
}
