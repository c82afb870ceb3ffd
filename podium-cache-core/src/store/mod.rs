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
//! The engine never needs more than these operations, so any key/value store that can do an
//! atomic "check a version, then write several keys" can be plugged in. Every shipped store runs
//! the same behaviour suite (`tests/store_behaviour.rs`).
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

#[cfg(feature = "cluster")]
mod cluster;
#[cfg(feature = "redis")]
mod commands;
mod lock;
mod memory;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod script;
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
pub use self::cluster::{RedisClusterStore, RedisClusterStoreBuilder};
pub use self::lock::StoreLock;
pub use self::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use self::redis::{RedisStore, RedisStoreBuilder};
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

/// One call of the rate limiter a store can hold for every process that uses it
/// ([`Store::rate_limit`]; the Airtable client's
/// [`SharedLimiter`](crate::source::shared_limiter::SharedLimiter) drives it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateLimitCall {
    /// Takes a slot named `slot` for `holder` if fewer than `max` slots are busy and, while
    /// other holders wait, `holder` has less than its fair share of them. The slot stays busy
    /// until it is released (at most `lease`, so a process that died frees its slots).
    Acquire {
        /// A name unique to this request: `{holder}-{anything}`.
        slot: String,
        /// Who asks (one name per process): slots are shared fairly between holders.
        holder: String,
        /// Slots busy at once at most.
        max: u32,
        /// How long a slot stays busy after its request was answered.
        window: Duration,
        /// How long a slot stays busy at most if it is never released.
        lease: Duration,
    },
    /// The request holding `slot` was answered: the slot is free again one `window` from now.
    Release {
        /// The slot taken by [`RateLimitCall::Acquire`].
        slot: String,
        /// As in the acquire.
        window: Duration,
    },
    /// Every acquire waits `duration` (the source answered 429).
    Pause {
        /// How long.
        duration: Duration,
    },
}

/// What a [`RateLimitCall`] answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimitReply {
    /// The slot was taken (for a release or a pause: done).
    Granted,
    /// Every slot is busy: ask again after this long.
    Wait(Duration),
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
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short name for logs and metrics (`"memory"`, `"redis"`).
    fn name(&self) -> &'static str;

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

    /// One value.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError>;

    /// Several values in one round trip, in the order of `keys`.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, StoreError>;

    /// Sets a value with a TTL.
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StoreError>;

    /// Sets several values, each with its TTL, in one round trip (not atomic as a whole).
    async fn set_many(&self, entries: &[(String, Bytes, Duration)]) -> Result<(), StoreError>;

    /// Sets a value only when the key does not exist; true when it was set.
    async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Deletes `key` only if its value is `expected` (atomic); true when it was deleted.
    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError>;

    /// Sets `key`'s TTL only if its value is `expected` (atomic); true when it was extended.
    async fn expire_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Deletes keys; how many existed.
    async fn delete(&self, keys: &[String]) -> Result<u64, StoreError>;

    /// Increments an integer counter (created at 0) and refreshes its TTL; the new value.
    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, StoreError>;

    /// Adds members to a set and refreshes its TTL.
    async fn add_to_set(
        &self,
        key: &str,
        members: &[String],
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// The members of a set (empty when absent).
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError>;

    /// The atomic record write: see [`RecordWrite`].
    async fn write_record(&self, write: &RecordWrite) -> Result<WriteOutcome, StoreError>;

    /// One page of keys matching a glob `pattern` (`*` only), like Redis `SCAN`.
    async fn scan(&self, pattern: &str, cursor: u64, count: usize) -> Result<ScanPage, StoreError>;

    /// One step of a sliding-window rate limiter held in the store under `key`, shared by every
    /// process that uses this store (atomic on the server; see [`RateLimitCall`]). The Redis
    /// stores run it as one Lua script. The default answers [`StoreError::Protocol`]: a store
    /// that is not shared between processes has nothing to share, and the caller keeps to its
    /// local limiter.
    async fn rate_limit(
        &self,
        key: &str,
        call: &RateLimitCall,
    ) -> Result<RateLimitReply, StoreError> {
        let _ = (key, call);
        Err(StoreError::Protocol(format!(
            "the {} store holds no shared rate limiter",
            self.name()
        )))
    }

    /// Claims a place for `member` in the bounded set held under `key`, atomically: a member
    /// already in the set keeps its place, a new one joins only while the set holds fewer than
    /// `max` live members. Every member leaves the set `ttl` after its last claim. True when
    /// `member` is in the set afterwards.
    ///
    /// The HTTP layer uses it to cap how many query variants of one path it stores, so random
    /// query strings cannot crowd out the entries already there. Every shipped store implements
    /// it (one Lua script on Redis and on a cluster); the default answers
    /// [`StoreError::Protocol`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), podium_cache_core::store::StoreError> {
    /// use std::time::Duration;
    /// use podium_cache_core::store::{MemoryStore, Store};
    ///
    /// let store = MemoryStore::new(100);
    /// let ttl = Duration::from_secs(60);
    /// assert!(store.claim_bounded("variants", "?page=1", 2, ttl).await?);
    /// assert!(store.claim_bounded("variants", "?page=2", 2, ttl).await?);
    /// assert!(!store.claim_bounded("variants", "?page=3", 2, ttl).await?, "full");
    /// assert!(store.claim_bounded("variants", "?page=1", 2, ttl).await?, "already in");
    /// # Ok(())
    /// # }
    /// ```
    async fn claim_bounded(
        &self,
        key: &str,
        member: &str,
        max: usize,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let _ = (key, member, max, ttl);
        Err(StoreError::Protocol(format!(
            "the {} store holds no bounded sets",
            self.name()
        )))
    }
}
