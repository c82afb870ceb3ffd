//! What some callers need beyond the [`Store`](super::Store) trait: compare-and-set locks, counters and sets,
//! bounded claims and a shared rate limiter, as four extension traits.
//!
//! | trait | methods | used by |
//! |---|---|---|
//! | [`Locks`] | `set_if_absent`, `delete_if_equals`, `expire_if_equals` | [`StoreLock`](super::StoreLock) (sweep, native pager), maintenance claims, the webhook replay guard, early-refresh claims, the HTTP layer's refresh guard |
//! | [`Counters`] | `increment`, `add_to_set`, `set_members` | entity query generations, [`Dependents`](crate::cache::Dependents) (purge tags and the change sequence), native webhook notifications |
//! | [`BoundedSets`] | `claim_bounded` | the HTTP layer's bound on query variants and 404s per route |
//! | [`RateLimits`] | `rate_limit` | [`SharedLimiter`](crate::source::shared_limiter::SharedLimiter) (one Airtable budget for every instance) |
//!
//! A store offers them through [`Store::extensions`](super::Store::extensions) (the shipped stores do:
//! [`MemoryStore`](super::MemoryStore) implements them in process, the Redis stores as commands
//! and Lua scripts over one command layer). Callers never ask: each trait is implemented for
//! `dyn Store` (`fallback.rs`), so with the trait in scope `store.set_if_absent(…)` works on any
//! `Arc<dyn Store>`, and runs the store's own operation when it has one.
//!
//! # What a store loses without them
//! A store whose `extensions()` answers `None` (the default, e.g. the toy store in the
//! [`store`](super) module docs) still gets locks, counters, sets and claims: they are built
//! from its required methods (`get`, `set`, `delete`), kept under the same keys (a counter is
//! readable with `get`, as the engine reads query generations), and made atomic by a lock held
//! **in this process**. So they are correct for one process and racy between processes sharing
//! the store: two instances may both take one lock, or both claim the last variant place.
//! There is no shared rate limiter: [`RateLimits::rate_limit`] answers
//! [`StoreError::Protocol`] and the Airtable client keeps to its process-local limiter.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), podium_cache_core::store::StoreError> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use podium_cache_core::store::{BoundedSets, Counters, Locks, MemoryStore, Store};
//!
//! let store: Arc<dyn Store> = Arc::new(MemoryStore::new(100));
//! let ttl = Duration::from_secs(60);
//! assert!(store.set_if_absent("lock", "me".into(), ttl).await?);
//! assert_eq!(store.increment("n", ttl).await?, 1);
//! assert!(store.claim_bounded("variants", "?page=1", 1, ttl).await?);
//! assert!(!store.claim_bounded("variants", "?page=2", 1, ttl).await?, "full");
//! # Ok(()) }
//! ```

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::StoreError;

/// Compare-and-set operations for locks and one-time claims, atomic in the store.
#[async_trait]
pub trait Locks: Send + Sync {
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
}

/// Counters and sets of strings.
#[async_trait]
pub trait Counters: Send + Sync {
    /// Increments an integer counter (created at 0) and refreshes its TTL; the new value. The
    /// counter is readable with [`Store::get`](super::Store::get) (its decimal text).
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
}

/// Sets that admit a bounded number of members.
#[async_trait]
pub trait BoundedSets: Send + Sync {
    /// Claims a place for `member` in the bounded set held under `key`, atomically: a member
    /// already in the set keeps its place, a new one joins only while the set holds fewer than
    /// `max` live members. Every member leaves the set `ttl` after its last claim. True when
    /// `member` is in the set afterwards.
    ///
    /// The HTTP layer uses it to cap how many query variants of one path it stores, so random
    /// query strings cannot crowd out the entries already there.
    async fn claim_bounded(
        &self,
        key: &str,
        member: &str,
        max: usize,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
}

/// A rate limiter held in the store, shared by every process that uses it.
#[async_trait]
pub trait RateLimits: Send + Sync {
    /// One step of a sliding-window rate limiter held under `key` (atomic on the server; see
    /// [`RateLimitCall`]). A store that is not shared between processes has nothing to share
    /// and answers [`StoreError::Protocol`]: the caller keeps to its local limiter.
    async fn rate_limit(
        &self,
        key: &str,
        call: &RateLimitCall,
    ) -> Result<RateLimitReply, StoreError>;
}

/// All four extensions, as [`Store::extensions`](super::Store::extensions) hands them out; implemented for every type that
/// implements the four.
pub trait StoreExtensions: Locks + Counters + BoundedSets + RateLimits {}

impl<T: Locks + Counters + BoundedSets + RateLimits> StoreExtensions for T {}

/// One call of the rate limiter a store can hold for every process that uses it
/// ([`RateLimits::rate_limit`]; the Airtable client's
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

/// The value of the counter stored as `raw` (its decimal text; absent: 0) plus one, for the
/// stores that keep counters as plain values.
pub(super) fn incremented(key: &str, raw: Option<&[u8]>) -> Result<u64, StoreError> {
    let current = match raw {
        Some(raw) => std::str::from_utf8(raw)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| StoreError::Protocol(format!("{key} is not an integer")))?,
        None => 0,
    };
    Ok(current.saturating_add(1))
}
