//! [`MemoryStore`]: the embedded default store, a bounded moka cache with per-entry TTL.
//!
//! Two kinds of entry live apart. **Data** (what [`Store::set`] / [`Store::set_many`] and a
//! record write's `set` store: records, tombstones, responses) is bounded by entry count and
//! evicted least recently / least frequently used first. **State** (versions and generations,
//! counters, sets, bounded claims, `set_if_absent` locks and replay guards) only expires: an
//! eviction of state would break a guarantee rather than cost a miss (a generation evicted
//! back to 0 lets an older fill pass its check; an evicted purge tag set leaves its response
//! served after the change; an evicted replay guard lets a delivery apply twice). State is
//! small and its growth is bounded by the rate of writes times its TTL, never by reads.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use moka::sync::Cache;
use moka::Expiry;
use parking_lot::Mutex;

use super::ext::{
    incremented, BoundedSets, Counters, Locks, RateLimitCall, RateLimitReply, RateLimits,
};
use super::{
    Condition, Decoded, Decoder, RecordWrite, ScanPage, Store, StoreError, StoreExtensions,
    Version, WriteOutcome,
};

/// How many lock stripes serialise writers; readers never lock.
const STRIPES: usize = 64;

#[derive(Clone, Debug)]
enum Value {
    Bytes(Bytes),
    Set(Arc<BTreeSet<String>>),
    /// A bounded set ([`BoundedSets::claim_bounded`]): each member with the instant it leaves.
    Bounded(Arc<BTreeMap<String, Instant>>),
}

#[derive(Clone, Debug)]
struct Entry {
    value: Value,
    ttl: Duration,
    /// Data entries only: what [`Store::get_decoded`] decoded of the bytes, kept until the
    /// entry is written again (a write puts a new entry, with an empty cell).
    decoded: Option<Arc<OnceLock<Decoded>>>,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Entry, _now: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// The embedded, in-process store: bounded by entry count (least recently and least frequently
/// used entries go first), every entry with its own TTL. Writers of one record are serialised by
/// a lock stripe, so [`Store::write_record`] is atomic; reads take no lock.
///
/// ```
/// use podium_cache_core::store::{MemoryStore, Store};
/// let store = MemoryStore::new(100_000);
/// assert_eq!(store.name(), "memory");
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Data: bounded by count.
    cache: Cache<String, Entry>,
    /// State: never evicted for capacity, only expired.
    pinned: Cache<String, Entry>,
    stripes: Vec<Mutex<()>>,
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.inner.cache.entry_count())
            .field("state_entries", &self.inner.pinned.entry_count())
            .finish()
    }
}

impl MemoryStore {
    /// A store holding at most `max_entries` entries.
    pub fn new(max_entries: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_entries)
            .expire_after(PerEntryTtl)
            .build();
        let pinned = Cache::builder().expire_after(PerEntryTtl).build();
        Self {
            inner: Arc::new(Inner {
                cache,
                pinned,
                stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
                hasher: Default::default(),
            }),
        }
    }

    /// How many entries are held, data and state (approximate until pending maintenance has
    /// run).
    pub fn entry_count(&self) -> u64 {
        self.inner.cache.run_pending_tasks();
        self.inner.pinned.run_pending_tasks();
        self.inner.cache.entry_count() + self.inner.pinned.entry_count()
    }

    /// The entry under `key`, data or state.
    fn entry(&self, key: &str) -> Option<Entry> {
        self.inner
            .cache
            .get(key)
            .or_else(|| self.inner.pinned.get(key))
    }

    /// The data entry under `key` as `decode` makes it, decoded once per write.
    fn decoded(&self, key: &str, decode: &Decoder<'_>) -> Option<Decoded> {
        let Entry { value, decoded, .. } = self.entry(key)?;
        let Value::Bytes(bytes) = value else {
            return None;
        };
        Some(match decoded {
            Some(cell) => Arc::clone(cell.get_or_init(|| decode(bytes))),
            None => decode(bytes),
        })
    }

    /// The state entry under `key`.
    fn state(&self, key: &str) -> Option<Value> {
        self.inner.pinned.get(key).map(|e| e.value)
    }

    fn put_state(&self, key: &str, value: Value, ttl: Duration) {
        self.inner.pinned.insert(
            key.to_owned(),
            Entry {
                value,
                ttl,
                decoded: None,
            },
        );
    }

    fn remove(&self, key: &str) -> bool {
        let data = self.inner.cache.remove(key).is_some();
        let state = self.inner.pinned.remove(key).is_some();
        data || state
    }

    fn stripe(&self, key: &str) -> &Mutex<()> {
        let index = (self.inner.hasher.hash_one(key) as usize) % STRIPES;
        &self.inner.stripes[index]
    }

    fn bytes(&self, key: &str) -> Option<Bytes> {
        match self.entry(key)?.value {
            Value::Bytes(bytes) => Some(bytes),
            Value::Set(_) | Value::Bounded(_) => None,
        }
    }

    fn put(&self, key: &str, value: Value, ttl: Duration) {
        if self.inner.pinned.contains_key(key) {
            // Data written over state: the state must not resurface when the data is evicted.
            self.inner.pinned.remove(key);
        }
        let decoded = Some(Arc::new(OnceLock::new()));
        self.inner.cache.insert(
            key.to_owned(),
            Entry {
                value,
                ttl,
                decoded,
            },
        );
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn extensions(&self) -> Option<&dyn StoreExtensions> {
        Some(self)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(self.bytes(key))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, StoreError> {
        Ok(keys.iter().map(|k| self.bytes(k)).collect())
    }

    /// Decodes a data entry once: its decoded value stays with it until it is written again.
    async fn get_decoded(
        &self,
        key: &str,
        decode: &Decoder<'_>,
    ) -> Result<Option<Decoded>, StoreError> {
        Ok(self.decoded(key, decode))
    }

    /// Always answers at once: the entries are in this process.
    fn get_decoded_now(
        &self,
        key: &str,
        decode: &Decoder<'_>,
    ) -> Option<Result<Option<Decoded>, StoreError>> {
        Some(Ok(self.decoded(key, decode)))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        self.put(key, Value::Bytes(value), ttl);
        Ok(())
    }

    async fn set_many(&self, entries: &[(String, Bytes, Duration)]) -> Result<(), StoreError> {
        for (key, value, ttl) in entries {
            self.put(key, Value::Bytes(value.clone()), *ttl);
        }
        Ok(())
    }

    async fn delete(&self, keys: &[String]) -> Result<u64, StoreError> {
        Ok(keys.iter().filter(|k| self.remove(k)).count() as u64)
    }

    async fn write_record(&self, write: &RecordWrite) -> Result<WriteOutcome, StoreError> {
        let _guard = self.stripe(&write.version_key).lock();
        let current = Version::parse(self.bytes(&write.version_key).as_deref())?;
        let allowed = match write.condition {
            Condition::Always => true,
            Condition::GenerationIs(generation) => current.generation == generation,
            Condition::NewerThan(ts) => ts > current.timestamp_ms,
        };
        if !allowed {
            return Ok(WriteOutcome::Rejected(current));
        }
        let mut next = current;
        if write.bump_generation {
            next.generation += 1;
        }
        if let Some(ts) = write.timestamp_ms {
            next.timestamp_ms = next.timestamp_ms.max(ts);
        }
        if next != current {
            self.put_state(
                &write.version_key,
                Value::Bytes(Bytes::from(next.encode())),
                write.version_ttl,
            );
        }
        for key in &write.delete {
            self.remove(key);
        }
        for (key, value, ttl) in &write.set {
            self.put(key, Value::Bytes(value.clone()), *ttl);
        }
        Ok(WriteOutcome::Applied(next))
    }

    async fn scan(&self, pattern: &str, cursor: u64, count: usize) -> Result<ScanPage, StoreError> {
        // A consistent order over a snapshot: the cursor is the position in the sorted key list.
        let mut keys: Vec<String> = self
            .inner
            .cache
            .iter()
            .chain(self.inner.pinned.iter())
            .map(|(k, _)| (*k).clone())
            .filter(|k| glob_match(pattern, k))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let start = usize::try_from(cursor)
            .unwrap_or(usize::MAX)
            .min(keys.len());
        let end = start.saturating_add(count.max(1)).min(keys.len());
        let page = keys[start..end].to_vec();
        let next = if end >= keys.len() { 0 } else { end as u64 };
        Ok(ScanPage {
            cursor: next,
            keys: page,
        })
    }
}

#[async_trait]
impl Locks for MemoryStore {
    async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let _guard = self.stripe(key).lock();
        if self.inner.cache.contains_key(key) || self.inner.pinned.contains_key(key) {
            return Ok(false);
        }
        self.put_state(key, Value::Bytes(value), ttl);
        Ok(true)
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let _guard = self.stripe(key).lock();
        if self.bytes(key).as_deref() == Some(expected) {
            self.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn expire_if_equals(
        &self,
        key: &str,
        expected: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let _guard = self.stripe(key).lock();
        match self.bytes(key) {
            Some(value) if value.as_ref() == expected => {
                if self.inner.pinned.contains_key(key) {
                    self.put_state(key, Value::Bytes(value), ttl);
                } else {
                    self.put(key, Value::Bytes(value), ttl);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl Counters for MemoryStore {
    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let _guard = self.stripe(key).lock();
        let next = incremented(key, self.bytes(key).as_deref())?;
        self.put_state(key, Value::Bytes(Bytes::from(next.to_string())), ttl);
        Ok(next)
    }

    async fn add_to_set(
        &self,
        key: &str,
        members: &[String],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let _guard = self.stripe(key).lock();
        let mut set = match self.state(key) {
            Some(Value::Set(set)) => (*set).clone(),
            _ => BTreeSet::new(),
        };
        set.extend(members.iter().cloned());
        self.put_state(key, Value::Set(Arc::new(set)), ttl);
        Ok(())
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        Ok(match self.state(key) {
            Some(Value::Set(set)) => set.iter().cloned().collect(),
            _ => Vec::new(),
        })
    }
}

#[async_trait]
impl BoundedSets for MemoryStore {
    async fn claim_bounded(
        &self,
        key: &str,
        member: &str,
        max: usize,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let _guard = self.stripe(key).lock();
        let now = Instant::now();
        let mut members = match self.state(key) {
            Some(Value::Bounded(members)) => (*members).clone(),
            _ => BTreeMap::new(),
        };
        members.retain(|_, until| *until > now);
        if !members.contains_key(member) && members.len() >= max {
            return Ok(false);
        }
        members.insert(member.to_owned(), now + ttl);
        // The set lives as long as its longest-lived member.
        let live = members
            .values()
            .max()
            .map_or(ttl, |until| until.saturating_duration_since(now));
        self.put_state(key, Value::Bounded(Arc::new(members)), live);
        Ok(true)
    }
}

#[async_trait]
impl RateLimits for MemoryStore {
    /// A store of one process has no budget to share: answers [`StoreError::Protocol`], and the
    /// Airtable client keeps to its local limiter.
    async fn rate_limit(
        &self,
        _key: &str,
        _call: &RateLimitCall,
    ) -> Result<RateLimitReply, StoreError> {
        Err(StoreError::Protocol(
            "the memory store holds no shared rate limiter".into(),
        ))
    }
}

/// Glob match with `*` as the only wildcard (what the engine's scan patterns use).
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::glob_match;
    use crate::store::{get_decoded, Counters, Decoded, MemoryStore, Store};

    const TTL: Duration = Duration::from_secs(60);

    /// Parses the entry as a number, counting how often it ran.
    fn counting(runs: &AtomicUsize) -> impl Fn(bytes::Bytes) -> String + Send + Sync + '_ {
        move |bytes| {
            runs.fetch_add(1, Ordering::SeqCst);
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }

    #[tokio::test]
    async fn an_unchanged_entry_is_decoded_once_and_a_write_is_decoded_anew() {
        let store = MemoryStore::new(100);
        let runs = AtomicUsize::new(0);
        store.set("k", "v1".into(), TTL).await.unwrap();
        let first = get_decoded(&store, "k", counting(&runs))
            .await
            .unwrap()
            .unwrap();
        let again = get_decoded(&store, "k", counting(&runs))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*first, "v1");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        store.set("k", "v2".into(), TTL).await.unwrap();
        let after = get_decoded(&store, "k", counting(&runs))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            *after, "v2",
            "a write's new bytes are decoded, not the old value kept"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);

        store.delete(&["k".to_owned()]).await.unwrap();
        assert!(get_decoded(&store, "k", counting(&runs))
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn a_read_is_answered_at_once_and_shares_the_decoded_value() {
        let store = MemoryStore::new(100);
        let runs = AtomicUsize::new(0);
        let decode = |bytes: bytes::Bytes| -> Decoded { Arc::new(counting(&runs)(bytes)) };
        assert!(matches!(
            store.get_decoded_now("k", &decode),
            Some(Ok(None))
        ));
        store.set("k", "v".into(), TTL).await.unwrap();
        let now = store
            .get_decoded_now("k", &decode)
            .unwrap()
            .unwrap()
            .unwrap();
        let later = store.get_decoded("k", &decode).await.unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&now, &later),
            "one decoded value for both reads"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_decoded_entry_expires_with_its_entry() {
        let store = MemoryStore::new(100);
        let runs = AtomicUsize::new(0);
        store
            .set("k", "v".into(), Duration::from_millis(100))
            .await
            .unwrap();
        assert!(get_decoded(&store, "k", counting(&runs))
            .await
            .unwrap()
            .is_some());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(get_decoded(&store, "k", counting(&runs))
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn another_type_under_the_key_is_decoded_for_this_read_alone() {
        let store = MemoryStore::new(100);
        store.set("k", "7".into(), TTL).await.unwrap();
        let text = get_decoded(&store, "k", |b| String::from_utf8_lossy(&b).into_owned());
        assert_eq!(*text.await.unwrap().unwrap(), "7");
        let len = get_decoded(&store, "k", |b| b.len())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*len, 1);
    }

    #[tokio::test]
    async fn state_entries_are_decoded_every_read_and_change_with_their_writes() {
        let store = MemoryStore::new(100);
        let runs = AtomicUsize::new(0);
        store.increment("n", TTL).await.unwrap();
        let one = get_decoded(&store, "n", counting(&runs))
            .await
            .unwrap()
            .unwrap();
        store.increment("n", TTL).await.unwrap();
        let two = get_decoded(&store, "n", counting(&runs))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((one.as_str(), two.as_str()), ("1", "2"));
    }

    #[test]
    fn glob_matches_like_redis_for_star_patterns() {
        assert!(glob_match("p:events:abc:{*}", "p:events:abc:{rec1}"));
        assert!(!glob_match("p:events:abc:{*}", "p:users:abc:{rec1}"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("exact", "exact"));
    }
}
