//! [`StoreLock`]: a lock held in the store with an expiry, so it holds across every process
//! that shares the store (one sweep at a time, one native-webhook pager per webhook).
//!
//! Taking it is `SET NX` with a random token; extending and releasing compare the token and act
//! in one atomic step ([`Locks::expire_if_equals`], [`Locks::delete_if_equals`]), so a holder
//! whose lock expired and was taken over can never extend or delete the new holder's lock.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), podium_cache_core::store::StoreError> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use podium_cache_core::store::{MemoryStore, Store, StoreLock};
//! let store: Arc<dyn Store> = Arc::new(MemoryStore::new(100));
//! let lock = StoreLock::try_acquire(&store, "p:lock:sweep", Duration::from_secs(60)).await?.unwrap();
//! assert!(StoreLock::try_acquire(&store, "p:lock:sweep", Duration::from_secs(60)).await?.is_none());
//! assert!(lock.release().await?);
//! assert!(StoreLock::try_acquire(&store, "p:lock:sweep", Duration::from_secs(60)).await?.is_some());
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::RngCore;

use super::{Locks, Store, StoreError};

/// A held store lock (share it with `Arc` for a heartbeat). Dropping it without
/// [`StoreLock::release`] leaves it to expire.
pub struct StoreLock {
    store: Arc<dyn Store>,
    key: String,
    token: Bytes,
}

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreLock")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl StoreLock {
    /// Takes the lock if nobody holds it; `None` when it is held.
    pub async fn try_acquire(
        store: &Arc<dyn Store>,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Self>, StoreError> {
        let mut raw = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut raw);
        let token = Bytes::from(hex::encode(raw));
        if store.set_if_absent(key, token.clone(), ttl).await? {
            tracing::debug!(key, "store lock taken");
            Ok(Some(Self {
                store: Arc::clone(store),
                key: key.to_owned(),
                token,
            }))
        } else {
            Ok(None)
        }
    }

    /// Takes the lock, polling every `poll` for at most `wait` while another holder has it.
    pub async fn acquire_within(
        store: &Arc<dyn Store>,
        key: &str,
        ttl: Duration,
        wait: Duration,
        poll: Duration,
    ) -> Result<Option<Self>, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(lock) = Self::try_acquire(store, key, ttl).await? {
                return Ok(Some(lock));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// The lock's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Extends the lock to `ttl` from now if it is still ours; false when it expired (and was
    /// perhaps taken over): the holder must stop.
    pub async fn extend(&self, ttl: Duration) -> Result<bool, StoreError> {
        self.store
            .expire_if_equals(&self.key, &self.token, ttl)
            .await
    }

    /// Keeps the lock for `ttl` from now: extends it if it is still ours, takes it again if
    /// it expired and nobody took it meanwhile; false when another holder has it.
    pub async fn hold(&self, ttl: Duration) -> Result<bool, StoreError> {
        if self.extend(ttl).await? {
            return Ok(true);
        }
        self.store
            .set_if_absent(&self.key, self.token.clone(), ttl)
            .await
    }

    /// Releases the lock if it is still ours; false when it was no longer ours.
    pub async fn release(&self) -> Result<bool, StoreError> {
        let released = self.store.delete_if_equals(&self.key, &self.token).await?;
        tracing::debug!(key = self.key, released, "store lock released");
        Ok(released)
    }
}
