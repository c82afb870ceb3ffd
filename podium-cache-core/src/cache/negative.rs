//! Bounded negative caching: "the source does not have this id" for ids the cache has never
//! seen.
//!
//! A client asking for random well-formed ids must not grow the store: each answer would be a
//! tombstone, and a loop of random ids writes one per request. So the engine tells two kinds of
//! "not found" apart:
//!
//! - **Known ids** (the record has a version in the store: it was written, changed or deleted
//!   through the cache): a tombstone in the store, as before. A record deleted through the cache,
//!   by a sweep or a native webhook keeps the long tombstone TTL ([`Cache::remove_gone`](super::Cache::remove_gone)).
//! - **Never-seen ids** (no version): the answer goes only into this bounded in-process cache
//!   (`negative_capacity` entries, `negative_ttl`, default 5 minutes), never into the store. A
//!   flood of random ids evicts its own entries; the store does not change.
//!
//! An entry is only believed while the record's generation is still 0: any upsert, invalidation
//! or delete of the id (in any instance sharing the store) bumps the generation, and the next
//! read asks the source again. Instances do not share these entries: each one asks the source
//! at most once per id per `negative_ttl`, within the fair share of its budget.

use std::time::Duration;

use moka::sync::Cache as Moka;

/// The bounded set of never-seen ids the source said it does not have.
pub(crate) struct NegativeCache {
    entries: Moka<String, ()>,
}

impl NegativeCache {
    /// At most `capacity` ids, each for `ttl`.
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            entries: Moka::builder()
                .max_capacity(capacity)
                .time_to_live(ttl.max(Duration::from_millis(1)))
                .build(),
        }
    }

    fn key(entity: &str, id: &str) -> String {
        format!("{entity}:{id}")
    }

    /// Remembers that the source does not have `id` of `entity`.
    pub(crate) fn insert(&self, entity: &str, id: &str) {
        self.entries.insert(Self::key(entity, id), ());
    }

    /// Whether the source said it does not have `id` of `entity` (within the TTL).
    pub(crate) fn contains(&self, entity: &str, id: &str) -> bool {
        self.entries.contains_key(&Self::key(entity, id))
    }

    /// Entries held (after pending evictions).
    pub(crate) fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}
