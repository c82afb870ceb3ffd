use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use podium_cache_core::store::{
    Condition, RecordWrite, ScanPage, Store, StoreError, Version, WriteOutcome,
};

/// A whole store: a map behind a mutex, every value with the instant it expires. Only the
/// seven required methods; locks, counters and claims come from the per-process fallback.
#[derive(Default)]
pub struct ToyStore {
    map: Mutex<HashMap<String, (Bytes, Instant)>>,
}

impl ToyStore {
    fn live(map: &HashMap<String, (Bytes, Instant)>, key: &str) -> Option<Bytes> {
        let (value, until) = map.get(key)?;
        (*until > Instant::now()).then(|| value.clone())
    }
}

#[async_trait]
impl Store for ToyStore {
    fn name(&self) -> &'static str {
        "toy"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        Ok(Self::live(&self.map.lock(), key))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, StoreError> {
        let map = self.map.lock();
        Ok(keys.iter().map(|key| Self::live(&map, key)).collect())
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        let until = Instant::now() + ttl;
        self.map.lock().insert(key.to_owned(), (value, until));
        Ok(())
    }

    async fn delete(&self, keys: &[String]) -> Result<u64, StoreError> {
        let mut map = self.map.lock();
        let now = Instant::now();
        let existed = keys
            .iter()
            .filter(|key| map.remove(key.as_str()).is_some_and(|(_, until)| until > now))
            .count();
        Ok(existed as u64)
    }

    /// Atomic because the whole write holds the one lock.
    async fn write_record(&self, write: &RecordWrite) -> Result<WriteOutcome, StoreError> {
        let mut map = self.map.lock();
        let now = Instant::now();
        let current = Version::parse(Self::live(&map, &write.version_key).as_deref())?;
        let allowed = match write.condition {
            Condition::Always => true,
            Condition::GenerationIs(generation) => current.generation == generation,
            Condition::NewerThan(timestamp) => timestamp > current.timestamp_ms,
        };
        if !allowed {
            return Ok(WriteOutcome::Rejected(current));
        }
        let mut next = current;
        next.generation += u64::from(write.bump_generation);
        next.timestamp_ms = next.timestamp_ms.max(write.timestamp_ms.unwrap_or(0));
        if next != current {
            let version = (Bytes::from(next.encode()), now + write.version_ttl);
            map.insert(write.version_key.clone(), version);
        }
        for key in &write.delete {
            map.remove(key);
        }
        for (key, value, ttl) in &write.set {
            map.insert(key.clone(), (value.clone(), now + *ttl));
        }
        Ok(WriteOutcome::Applied(next))
    }

    /// The cursor is a position in the sorted list of matching keys.
    async fn scan(&self, pattern: &str, cursor: u64, count: usize) -> Result<ScanPage, StoreError> {
        let map = self.map.lock();
        let now = Instant::now();
        let mut keys: Vec<String> = map
            .iter()
            .filter(|(key, (_, until))| *until > now && glob(pattern.as_bytes(), key.as_bytes()))
            .map(|(key, _)| key.clone())
            .collect();
        keys.sort_unstable();
        let start = usize::try_from(cursor).unwrap_or(usize::MAX).min(keys.len());
        let end = start.saturating_add(count.max(1)).min(keys.len());
        let next = if end == keys.len() { 0 } else { end as u64 };
        Ok(ScanPage {
            cursor: next,
            keys: keys[start..end].to_vec(),
        })
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}
