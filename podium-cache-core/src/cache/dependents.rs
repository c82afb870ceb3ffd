//! [`Dependents`]: entries derived from records (cached HTTP responses, or anything an app
//! derives from what it read), removed by every change the cache applies, in every process that
//! shares the store.
//!
//! A dependent is registered in the store sets `keys.tag(entity, id)` of the records it read
//! and `keys.entity_tag(entity)` of the entities it listed or looked up without finding (a
//! created or renamed record can change those answers). Every change a [`Cache`] applies
//! (`upsert`, `invalidate`, `delete`, a sweep's removal, a webhook) purges them as part of the
//! change itself, before the change is acknowledged, so no listener has to be registered and a
//! separate process (a sweep from cron, a webhook worker) purges the responses of the instances
//! that serve them.
//!
//! A dependent being produced while its record changes must not be kept: the producer reads
//! the purge sequence before it starts ([`Dependents::sequence`]), registers its tags, stores
//! its entry, then asks [`Dependents::changed_since`]: a purge that announced itself after that
//! check finds the tag and deletes the entry; one announced before it is seen by the check.
//! Announcements are kept as version keys (the same atomic "newest wins" write as a record's
//! version), which no store evicts for capacity, so a flood of other entries cannot make a
//! check miss a change; the tag sets are never evicted for capacity either (see
//! [`MemoryStore`](crate::store::MemoryStore)).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use podium_cache_core::{source::AirtableSource, store::{MemoryStore, Store}, Cache};
//!
//! let source = AirtableSource::builder("key", "appAAAAAAAAAAAAAA").api_url("http://127.0.0.1:9").build()?;
//! let cache = Cache::builder(Arc::new(MemoryStore::new(1_000)), Arc::new(source)).build();
//! let dependents = cache.dependents();
//! let records = vec![("events".to_owned(), "recAAAAAAAAAAAAAA".to_owned())];
//!
//! let before = dependents.sequence().await?;
//! dependents.register("derived:1", &records, &[], Duration::from_secs(60)).await?;
//! cache.store().set("derived:1", Bytes::from_static(b"page"), Duration::from_secs(60)).await?;
//! assert!(!dependents.changed_since(before, &records, &[]).await?);
//!
//! dependents.purge("events", "recAAAAAAAAAAAAAA").await?;
//! assert!(cache.store().get("derived:1").await?.is_none());
//! assert!(dependents.changed_since(before, &records, &[]).await?);
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::key::Keys;
use crate::store::{Condition, Counters, RecordWrite, Store, StoreError, Version};

/// How long a "changed at sequence N" announcement lives: longer than any dependent takes to
/// be produced.
const ANNOUNCEMENT_TTL: Duration = Duration::from_secs(3600);
/// How long the purge sequence lives without a change.
const SEQUENCE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The most keys deleted in one store call.
const DELETE_CHUNK: usize = 500;

/// The entries derived from records, and their purge. One per [`Cache`](super::Cache)
/// ([`Cache::dependents`](super::Cache::dependents)); cheap to clone.
#[derive(Clone)]
pub struct Dependents {
    store: Arc<dyn Store>,
    keys: Keys,
    sequence: String,
}

impl std::fmt::Debug for Dependents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dependents")
            .field("store", &self.store.name())
            .field("prefix", &self.keys.prefix())
            .finish()
    }
}

impl Dependents {
    /// The dependents kept in `store` under the keys of `keys` (its prefix). A [`Cache`]
    /// builds its own ([`Cache::dependents`](super::Cache::dependents)); build one directly
    /// to derive entries from records without a cache and source, e.g. the HTTP layer over a
    /// store alone. Every `Dependents` over the same store and prefix sees the same tags and
    /// purges, in any process.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), podium_cache_core::store::StoreError> {
    /// use std::sync::Arc;
    /// use podium_cache_core::{cache::Dependents, key::Keys, store::MemoryStore};
    /// let dependents = Dependents::new(Arc::new(MemoryStore::new(1_000)), Keys::new("shop"));
    /// assert_eq!(dependents.sequence().await?, 0, "nothing purged yet");
    /// # Ok(()) }
    /// ```
    pub fn new(store: Arc<dyn Store>, keys: Keys) -> Self {
        let sequence = keys.dependents_sequence();
        Self {
            store,
            keys,
            sequence,
        }
    }

    /// The store key of the purge sequence, for a caller that reads it in the same round trip
    /// as something else (parse it with [`Dependents::parse_sequence`]).
    pub fn sequence_key(&self) -> &str {
        &self.sequence
    }

    /// A stored purge sequence (absent or unreadable: 0).
    ///
    /// ```
    /// use podium_cache_core::cache::Dependents;
    /// assert_eq!(Dependents::parse_sequence(Some(b"42")), 42);
    /// assert_eq!(Dependents::parse_sequence(None), 0);
    /// ```
    pub fn parse_sequence(raw: Option<&[u8]>) -> u64 {
        raw.and_then(|r| std::str::from_utf8(r).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The purge sequence now: read it before producing a dependent, and pass it to
    /// [`Dependents::changed_since`] once the dependent is stored.
    pub async fn sequence(&self) -> Result<u64, StoreError> {
        Ok(Self::parse_sequence(
            self.store.get(&self.sequence).await?.as_deref(),
        ))
    }

    /// Registers `key` as depending on `records` (`(entity, id)`) and on the lists of
    /// `entities`, for at least `ttl`. Register before storing the entry itself.
    pub async fn register(
        &self,
        key: &str,
        records: &[(String, String)],
        entities: &[String],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let members = [key.to_owned()];
        let tags = records
            .iter()
            .map(|(entity, id)| self.keys.tag(entity, id))
            .chain(entities.iter().map(|entity| self.keys.entity_tag(entity)));
        futures::future::try_join_all(tags.map(|tag| {
            let members = &members;
            async move { self.store.add_to_set(&tag, members, ttl).await }
        }))
        .await?;
        Ok(())
    }

    /// Whether any of `records` or `entities` changed after the purge sequence was `sequence`
    /// (or the sequence went back: the store lost it, so nothing can be assumed).
    pub async fn changed_since(
        &self,
        sequence: u64,
        records: &[(String, String)],
        entities: &[String],
    ) -> Result<bool, StoreError> {
        let mut check = Vec::with_capacity(1 + records.len() + entities.len());
        check.push(self.sequence.clone());
        check.extend(
            records
                .iter()
                .map(|(entity, id)| self.keys.changed(entity, id)),
        );
        check.extend(
            entities
                .iter()
                .map(|entity| self.keys.entity_changed(entity)),
        );
        let values = self.store.get_many(&check).await?;
        let now = Self::parse_sequence(values.first().and_then(|v| v.as_deref()));
        if now == sequence {
            return Ok(false);
        }
        if now < sequence {
            return Ok(true);
        }
        for value in values.iter().skip(1) {
            let announced = Version::parse(value.as_deref())?;
            if u64::try_from(announced.timestamp_ms).unwrap_or(0) > sequence {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Removes every dependent of record `(entity, id)` and of `entity`'s lists, after
    /// announcing the change to dependents being produced now. Returns how many dependent keys
    /// were deleted (whether or not they still existed). [`Cache`](super::Cache) calls it for
    /// every change it applies; call it yourself for a change the cache did not see.
    pub async fn purge(&self, entity: &str, id: &str) -> Result<usize, StoreError> {
        let span = tracing::debug_span!("cache.dependents.purge", entity, id);
        self.purge_inner(entity, id).instrument(span).await
    }

    async fn purge_inner(&self, entity: &str, id: &str) -> Result<usize, StoreError> {
        // 1. Announce: "changed at sequence N", newest wins, on keys no store evicts.
        let sequence = self.store.increment(&self.sequence, SEQUENCE_TTL).await?;
        let stamp = i64::try_from(sequence).unwrap_or(i64::MAX);
        for version_key in [
            self.keys.changed(entity, id),
            self.keys.entity_changed(entity),
        ] {
            self.store
                .write_record(&RecordWrite {
                    version_key,
                    condition: Condition::Always,
                    bump_generation: false,
                    timestamp_ms: Some(stamp),
                    version_ttl: ANNOUNCEMENT_TTL,
                    set: Vec::new(),
                    delete: Vec::new(),
                })
                .await?;
        }
        // 2. Delete the tagged dependents and the tag sets.
        let record_tag = self.keys.tag(entity, id);
        let entity_tag = self.keys.entity_tag(entity);
        let (record_members, entity_members) = futures::future::join(
            self.store.set_members(&record_tag),
            self.store.set_members(&entity_tag),
        )
        .await;
        let mut doomed = record_members?;
        doomed.extend(entity_members?);
        doomed.sort_unstable();
        doomed.dedup();
        let purged = doomed.len();
        doomed.push(record_tag);
        doomed.push(entity_tag);
        for chunk in doomed.chunks(DELETE_CHUNK) {
            self.store.delete(chunk).await?;
        }
        // Other instances' in-process tiers may hold the purged responses (not the tag sets,
        // which no tier holds): one announcement per chunk, none when nothing depended on it.
        for chunk in doomed[..purged].chunks(DELETE_CHUNK) {
            self.store.announce(chunk).await?;
        }
        tracing::debug!(entity, id, purged, "dependents purged");
        Ok(purged)
    }
}
