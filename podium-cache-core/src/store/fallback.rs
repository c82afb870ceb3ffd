//! The extension traits on `dyn Store`: the store's own ([`Store::extensions`]) when it has them,
//! else built from its required methods and made atomic by a lock held in this process (see
//! [`ext`](super::ext) for what that costs between processes).
//!
//! Values live under the caller's keys in the store itself: a counter is its decimal text, a
//! set a JSON array of its members, a bounded set a JSON object of each member and the time
//! (ms since the Unix epoch) at which it leaves.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, BuildHasherDefault};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{Mutex, MutexGuard};

use super::ext::{
    incremented, BoundedSets, Counters, Locks, RateLimitCall, RateLimitReply, RateLimits,
};
use super::{Store, StoreError};

/// Lock stripes shared by every store without extensions in this process.
const STRIPES: usize = 16;

static LOCKS: [Mutex<()>; STRIPES] = [const { Mutex::const_new(()) }; STRIPES];

/// A store's extensions built from its required methods.
struct Fallback<'a>(&'a dyn Store);

impl Fallback<'_> {
    /// Serialises this process's read-modify-writes of `key`.
    async fn lock(&self, key: &str) -> MutexGuard<'static, ()> {
        let hasher = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
        let stripe = usize::try_from(hasher.hash_one(key) % STRIPES as u64).unwrap_or(0);
        LOCKS[stripe].lock().await
    }

    /// The JSON value under `key`, or the default when absent.
    async fn json<T: serde::de::DeserializeOwned + Default>(
        &self,
        key: &str,
    ) -> Result<T, StoreError> {
        match self.0.get(key).await? {
            Some(raw) => serde_json::from_slice(&raw).map_err(|e| {
                StoreError::Protocol(format!(
                    "{key} does not hold what this operation keeps: {e}"
                ))
            }),
            None => Ok(T::default()),
        }
    }

    async fn put_json(
        &self,
        key: &str,
        value: &impl serde::Serialize,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let raw = serde_json::to_vec(value).map_err(|e| StoreError::Protocol(e.to_string()))?;
        self.0.set(key, Bytes::from(raw), ttl).await
    }
}

#[async_trait]
impl Locks for Fallback<'_> {
    async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let _guard = self.lock(key).await;
        if self.0.get(key).await?.is_some() {
            return Ok(false);
        }
        self.0.set(key, value, ttl).await?;
        Ok(true)
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let _guard = self.lock(key).await;
        if self.0.get(key).await?.as_deref() != Some(expected) {
            return Ok(false);
        }
        Ok(self.0.delete(&[key.to_owned()]).await? == 1)
    }

    async fn expire_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let _guard = self.lock(key).await;
        match self.0.get(key).await? {
            Some(value) if value.as_ref() == expected => {
                self.0.set(key, value, ttl).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl Counters for Fallback<'_> {
    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let _guard = self.lock(key).await;
        let next = incremented(key, self.0.get(key).await?.as_deref())?;
        self.0.set(key, Bytes::from(next.to_string()), ttl).await?;
        Ok(next)
    }

    async fn add_to_set(
        &self,
        key: &str,
        members: &[String],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        if members.is_empty() {
            return Ok(());
        }
        let _guard = self.lock(key).await;
        let mut set: BTreeSet<String> = self.json(key).await?;
        set.extend(members.iter().cloned());
        self.put_json(key, &set, ttl).await
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let set: BTreeSet<String> = self.json(key).await?;
        Ok(set.into_iter().collect())
    }
}

#[async_trait]
impl BoundedSets for Fallback<'_> {
    async fn claim_bounded(
        &self,
        key: &str,
        member: &str,
        max: usize,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let _guard = self.lock(key).await;
        let now = u64::try_from(crate::cache::now_ms()).unwrap_or(0);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut members: BTreeMap<String, u64> = self.json(key).await?;
        members.retain(|_, until| *until > now);
        if !members.contains_key(member) && members.len() >= max {
            return Ok(false);
        }
        members.insert(member.to_owned(), now.saturating_add(ttl_ms));
        // The set lives as long as its longest-lived member.
        let live = members.values().max().map_or(ttl_ms, |until| until - now);
        self.put_json(key, &members, Duration::from_millis(live))
            .await?;
        Ok(true)
    }
}

#[async_trait]
impl RateLimits for Fallback<'_> {
    async fn rate_limit(
        &self,
        _key: &str,
        _call: &RateLimitCall,
    ) -> Result<RateLimitReply, StoreError> {
        Err(StoreError::Protocol(format!(
            "the {} store holds no shared rate limiter",
            self.0.name()
        )))
    }
}

#[async_trait]
impl Locks for dyn Store {
    async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        match self.extensions() {
            Some(ext) => ext.set_if_absent(key, value, ttl).await,
            None => Fallback(self).set_if_absent(key, value, ttl).await,
        }
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        match self.extensions() {
            Some(ext) => ext.delete_if_equals(key, expected).await,
            None => Fallback(self).delete_if_equals(key, expected).await,
        }
    }

    async fn expire_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        match self.extensions() {
            Some(ext) => ext.expire_if_equals(key, expected, ttl).await,
            None => Fallback(self).expire_if_equals(key, expected, ttl).await,
        }
    }
}

#[async_trait]
impl Counters for dyn Store {
    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        match self.extensions() {
            Some(ext) => ext.increment(key, ttl).await,
            None => Fallback(self).increment(key, ttl).await,
        }
    }

    async fn add_to_set(
        &self,
        key: &str,
        members: &[String],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self.extensions() {
            Some(ext) => ext.add_to_set(key, members, ttl).await,
            None => Fallback(self).add_to_set(key, members, ttl).await,
        }
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        match self.extensions() {
            Some(ext) => ext.set_members(key).await,
            None => Fallback(self).set_members(key).await,
        }
    }
}

#[async_trait]
impl BoundedSets for dyn Store {
    async fn claim_bounded(
        &self,
        key: &str,
        member: &str,
        max: usize,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        match self.extensions() {
            Some(ext) => ext.claim_bounded(key, member, max, ttl).await,
            None => Fallback(self).claim_bounded(key, member, max, ttl).await,
        }
    }
}

#[async_trait]
impl RateLimits for dyn Store {
    async fn rate_limit(
        &self,
        key: &str,
        call: &RateLimitCall,
    ) -> Result<RateLimitReply, StoreError> {
        match self.extensions() {
            Some(ext) => ext.rate_limit(key, call).await,
            None => Fallback(self).rate_limit(key, call).await,
        }
    }
}
