//! The sweep's store lock and its heartbeat: two sweeps never overlap, and a crashed one's
//! lock expires.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::error::SweepError;
use crate::store::{Store, StoreLock};

/// The name of the store-held lock (`{prefix}:lock:sweep`).
pub const LOCK_NAME: &str = "sweep";

/// The sweep's store lock ([`StoreLock`]), extended every third of its TTL in the background;
/// a sweep whose lock was lost stops before its next batch.
pub(super) struct Lock {
    lock: Arc<StoreLock>,
    lost: Arc<AtomicBool>,
    heartbeat: JoinHandle<()>,
}

impl Lock {
    pub(super) async fn acquire(
        store: &Arc<dyn Store>,
        key: String,
        ttl: Duration,
    ) -> Result<Self, SweepError> {
        let Some(lock) = StoreLock::try_acquire(store, &key, ttl).await? else {
            return Err(SweepError::LockHeld { key, ttl });
        };
        let lock = Arc::new(lock);
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeat(Arc::clone(&lock), ttl, Arc::clone(&lost)));
        Ok(Self {
            lock,
            lost,
            heartbeat,
        })
    }

    pub(super) fn ensure_held(&self) -> Result<(), SweepError> {
        if self.lost.load(Ordering::SeqCst) {
            Err(SweepError::LockLost {
                key: self.lock.key().to_owned(),
            })
        } else {
            Ok(())
        }
    }

    /// Deletes the lock if this sweep still holds it; a failure only leaves it to expire.
    pub(super) async fn release(self) {
        self.heartbeat.abort();
        match self.lock.release().await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(key = self.lock.key(), "the sweep lock was no longer ours"),
            Err(err) => {
                tracing::warn!(error = %err, "could not release the sweep lock; it will expire")
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // A run dropped midway stops refreshing; the lock then expires by itself.
        self.heartbeat.abort();
    }
}

/// Extends the lock every third of its TTL while it is still ours; flags it lost otherwise.
async fn heartbeat(lock: Arc<StoreLock>, ttl: Duration, lost: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        match lock.extend(ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(key = lock.key(), "the sweep lock expired or was taken over");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(err) => tracing::warn!(error = %err, "could not refresh the sweep lock"),
        }
    }
}
