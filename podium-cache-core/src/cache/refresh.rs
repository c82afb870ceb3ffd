//! Refreshes: re-reading one record from the source because something said it changed (a
//! webhook delivery taken as a signal, not as content), and storing the source's answer.
//!
//! A refresh is a write followed by a fill, both through the engine's generation-checked path:
//!
//! 1. the record's generation is bumped and its data entry dropped (its tombstone, if any, is
//!    kept until the source says otherwise), so no fill that started earlier can store an older
//!    copy, and no read serves the old copy once the refresh has begun;
//! 2. a fill under the new generation asks the source: it is queued in the batcher like any
//!    miss (batched with misses and other refreshes of the table, one list call for up to 100
//!    ids) and coalesced with reads of the record that miss meanwhile (they see the same
//!    generation, so they join it rather than ask again); the batch is composed when it is
//!    sent, so the answer is never older than the refresh;
//! 3. the answer is stored if the generation is still the one of step 1; a record the source
//!    says is gone is removed with a tombstone, as [`Cache::remove_gone`] does.

use tracing::Instrument;

use super::{now_ms, Cache, CacheError, ChangeKind};
use crate::entity::Cacheable;
use crate::store::{Condition, RecordWrite, Version, WriteOutcome};

/// What [`Cache::refresh`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refreshed {
    /// The source's current record was read and stored.
    Stored,
    /// The source says the record does not exist: it was removed, with a tombstone.
    Gone,
    /// A newer change of the record (another refresh, an upsert, a delete) moved its
    /// generation while this one was reading, so this answer was not stored: the newer change
    /// decides what is served, and nothing older than this refresh's start ever is.
    Superseded,
}

impl Cache {
    /// Re-reads the record `id` of `T` from the source and stores the source's answer (see the
    /// [module documentation](self)). Returns after the answer is stored, so a reply sent
    /// after it is honest: no read returns a copy older than the source's record at the time
    /// this was called. Fails when the source or the store does; the record's old copy is then
    /// already dropped, so the next read asks the source.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use std::sync::Arc;
    /// # use podium_cache_core::{cache::Cache, source::AirtableSource, store::MemoryStore};
    /// # #[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema, podium_cache_core::Cacheable)]
    /// # #[cacheable(table = "Events")]
    /// # struct Event { id: String }
    /// # let source = AirtableSource::builder("k", "appAAAAAAAAAAAAAA").api_url("http://127.0.0.1:9").build()?;
    /// let cache = Cache::builder(Arc::new(MemoryStore::new(100)), Arc::new(source)).build();
    /// // Nothing listens on port 9: the source cannot be asked, so the refresh fails.
    /// assert!(cache.refresh::<Event>("recAAAAAAAAAAAAAA").await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn refresh<T: Cacheable>(&self, id: &str) -> Result<Refreshed, CacheError> {
        let meta = T::meta();
        let span = tracing::debug_span!("cache.refresh", entity = meta.entity, id);
        async {
            let keys = self.keys();
            let version_key = keys.generation(meta.entity, id);
            let epoch = self.inner.store.epoch();
            let bump = RecordWrite {
                version_key: version_key.clone(),
                condition: Condition::Always,
                bump_generation: true,
                // The source's record as of now is what will be stored: a change older than
                // this (e.g. a trusted delivery arriving late) is not newer than it.
                timestamp_ms: Some(now_ms()),
                version_ttl: self.version_ttl(),
                set: Vec::new(),
                delete: vec![keys.data(meta.entity, T::schema_hash(), id)],
            };
            let generation = match self.inner.store.write_record(&bump).await? {
                WriteOutcome::Applied(version) | WriteOutcome::Rejected(version) => {
                    version.generation
                }
            };
            let found = self.fill::<T>(id, Some(generation), epoch).await?;
            let current = Version::parse(self.inner.store.get(&version_key).await?.as_deref())?;
            if current.generation != generation {
                tracing::debug!(
                    entity = meta.entity,
                    id,
                    "refresh superseded by a newer change"
                );
                return Ok(Refreshed::Superseded);
            }
            if found.is_none() {
                self.remove_gone(meta, T::schema_hash(), id).await?;
                return Ok(Refreshed::Gone);
            }
            self.changed(meta, id, ChangeKind::Upserted).await?;
            Ok(Refreshed::Stored)
        }
        .instrument(span)
        .await
    }
}
