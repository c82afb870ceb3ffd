//! [`SweepError`]: why a sweep could not run or had to stop.

use std::time::Duration;

use crate::cache::CacheError;
use crate::store::StoreError;

/// Why a sweep could not run or had to stop. A source failure for one entity is not an
/// error of the run: it is reported in [`EntityReport::error`] and the sweep goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    /// Another sweep holds the lock.
    #[error(
        "another sweep is running: the lock {key} is held (a crashed sweep's lock expires \
         by itself within {ttl:?})"
    )]
    LockHeld {
        /// The lock's key.
        key: String,
        /// The lock TTL this sweep would have used.
        ttl: Duration,
    },
    /// The lock expired or was taken over while this sweep ran; it stopped.
    #[error("the sweep lost its lock {key} (it expired or was taken over); stopped")]
    LockLost {
        /// The lock's key.
        key: String,
    },
    /// [`Sweep::only`] named an entity the sweep was not given.
    #[error("unknown entity `{name}` (known: {known})")]
    UnknownEntity {
        /// The name asked for.
        name: String,
        /// The entity names the sweep knows.
        known: String,
    },
    /// A strategy name that is neither `full` nor `references`.
    #[error("unknown sweep strategy `{0}` (known: full, references)")]
    UnknownStrategy(String),
    /// The store failed (scanning, reading records or holding the lock).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Removing a gone record failed.
    #[error("removing a gone record: {0}")]
    Remove(#[from] CacheError),
}
