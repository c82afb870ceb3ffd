//! Writes: `upsert`, `invalidate`, `delete`, and removal of records found gone.

use bytes::Bytes;
use tracing::Instrument;

use super::metrics::Metrics;
use super::{entry, now_ms, Cache, CacheError, Change, ChangeKind};
use crate::entity::{normalize_index_value, Cacheable, EntityMeta};
use crate::store::{Condition, Counters, RecordWrite, WriteOutcome};

/// What [`Cache::upsert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// Stored: it was strictly newer than what the cache had.
    Applied,
    /// Not stored: the cache already had a change at least as new.
    Stale,
}

impl Cache {
    /// Stores `record` as changed at `timestamp_ms` (ms since the epoch; a webhook delivery's
    /// timestamp) if that is strictly newer than the newest change already applied to it.
    /// Bumps the record's generation (so no fill that started earlier can overwrite it), removes
    /// a tombstone, moves its index entries, invalidates the entity's cached queries and tells
    /// every listener. Returns only after all of that, so a 2xx sent after it is honest. A change
    /// that is not newer ([`UpsertOutcome::Stale`]) still invalidates the entity's queries and
    /// tells the listeners, so a retried delivery finishes what a failed attempt began.
    pub async fn upsert<T: Cacheable>(
        &self,
        record: &T,
        timestamp_ms: i64,
    ) -> Result<UpsertOutcome, CacheError> {
        let meta = T::meta();
        let id = record.id();
        let span = tracing::debug_span!("cache.upsert", entity = meta.entity, id, timestamp_ms);
        async {
            let keys = self.keys();
            let data_key = keys.data(meta.entity, T::schema_hash(), id);
            // Best effort: the old index values, to drop entries that no longer apply, and how
            // long the record took to fetch (the new entry's XFetch delta).
            let previous = match self.inner.store.get(&data_key).await {
                Ok(Some(raw)) => entry::decode(&raw).ok(),
                Ok(None) => None,
                Err(err) => return Err(CacheError::Store(err)),
            };
            let fetch_ms = previous
                .as_ref()
                .map_or(entry::ASSUMED_FETCH_MS, |p| p.header.fetch_ms);
            let previous: Option<T> = previous.and_then(|p| serde_json::from_slice(&p.json).ok());
            let json = serde_json::to_vec(record).map_err(|e| CacheError::Decode {
                entity: meta.entity,
                id: id.to_owned(),
                message: e.to_string(),
            })?;
            let (stored, store_ttl) = self.data_entry(&json, fetch_ms);
            let write = RecordWrite {
                version_key: keys.generation(meta.entity, id),
                condition: Condition::NewerThan(timestamp_ms),
                bump_generation: true,
                timestamp_ms: Some(timestamp_ms),
                version_ttl: self.version_ttl(),
                set: vec![(data_key, stored, store_ttl)],
                delete: vec![keys.tombstone(meta.entity, id)],
            };
            if let WriteOutcome::Rejected(stored) = self.inner.store.write_record(&write).await? {
                Metrics::inc(&self.inner.metrics.upserts_stale);
                tracing::debug!(
                    entity = meta.entity,
                    id,
                    stored = stored.timestamp_ms,
                    "upsert is not newer; ignored"
                );
                // It may be the retry of a delivery whose first attempt was stored and then
                // failed (so it was not acknowledged) before the entity's generation moved or
                // the listeners heard of it: both are done again, as the record's broadcast is,
                // so no cached query or response outlives the change. For a delivery that is
                // merely out of order they cost one counter bump and one purge.
                self.changed(meta, id, ChangeKind::Upserted).await?;
                return Ok(UpsertOutcome::Stale);
            }
            Metrics::inc(&self.inner.metrics.upserts_applied);
            let new_values = record.index_values();
            if let Some(previous) = previous {
                let stale: Vec<String> = previous
                    .index_values()
                    .into_iter()
                    .filter(|old| {
                        !new_values.iter().any(|new| {
                            new.0 == old.0
                                && normalize_index_value(&new.1) == normalize_index_value(&old.1)
                        })
                    })
                    .map(|(field, value)| {
                        keys.index(
                            meta.entity,
                            T::schema_hash(),
                            field,
                            &normalize_index_value(&value),
                        )
                    })
                    .collect();
                self.inner.store.delete(&stale).await?;
            }
            self.write_index_entries(record).await;
            self.changed(meta, id, ChangeKind::Upserted).await?;
            Ok(UpsertOutcome::Applied)
        }
        .instrument(span)
        .await
    }

    /// Drops the cached copy of `id`; the next read fetches it again. Any fill already in
    /// flight for it will not be stored.
    pub async fn invalidate<T: Cacheable>(&self, id: &str) -> Result<(), CacheError> {
        self.invalidate_entity(T::meta(), T::schema_hash(), id)
            .await
    }

    /// [`Cache::invalidate`] by entity description, for callers without the model type.
    pub async fn invalidate_entity(
        &self,
        meta: &'static EntityMeta,
        schema_hash: &str,
        id: &str,
    ) -> Result<(), CacheError> {
        let span = tracing::debug_span!("cache.invalidate", entity = meta.entity, id);
        async {
            let keys = self.keys();
            let write = RecordWrite {
                version_key: keys.generation(meta.entity, id),
                condition: Condition::Always,
                bump_generation: true,
                timestamp_ms: None,
                version_ttl: self.version_ttl(),
                set: Vec::new(),
                delete: vec![
                    keys.data(meta.entity, schema_hash, id),
                    keys.tombstone(meta.entity, id),
                ],
            };
            self.inner.store.write_record(&write).await?;
            Metrics::inc(&self.inner.metrics.invalidations);
            self.changed(meta, id, ChangeKind::Invalidated).await?;
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Deletes `id` in the source, then removes it from the cache and leaves a tombstone, so no
    /// read returns it until it exists in the source again. A record the source no longer has
    /// is removed all the same.
    pub async fn delete<T: Cacheable>(&self, id: &str) -> Result<(), CacheError> {
        let meta = T::meta();
        let span = tracing::debug_span!("cache.delete", entity = meta.entity, id);
        async {
            self.inner
                .source
                .delete(meta.table, &[id.to_owned()])
                .await?;
            Metrics::inc(&self.inner.metrics.source_calls);
            self.remove_gone(meta, T::schema_hash(), id).await
        }
        .instrument(span)
        .await
    }

    /// Removes a record known to be gone from the source (deleted through the cache, found
    /// missing by a sweep, reported destroyed by a native webhook): data and index entries
    /// removed, tombstone written, generation bumped, queries and listeners told.
    pub async fn remove_gone(
        &self,
        meta: &'static EntityMeta,
        schema_hash: &str,
        id: &str,
    ) -> Result<(), CacheError> {
        let keys = self.keys();
        let data_key = keys.data(meta.entity, schema_hash, id);
        let index_keys = match self.inner.store.get(&data_key).await? {
            Some(raw) => stored_index_keys(self, meta, schema_hash, &raw),
            None => Vec::new(),
        };
        let write = RecordWrite {
            version_key: keys.generation(meta.entity, id),
            condition: Condition::Always,
            bump_generation: true,
            timestamp_ms: Some(now_ms()),
            version_ttl: self.version_ttl(),
            set: vec![(
                keys.tombstone(meta.entity, id),
                Bytes::from_static(b"deleted"),
                self.inner.config.tombstone_ttl,
            )],
            delete: vec![data_key],
        };
        self.inner.store.write_record(&write).await?;
        self.inner.store.delete(&index_keys).await?;
        Metrics::inc(&self.inner.metrics.deletes);
        self.changed(meta, id, ChangeKind::Deleted).await?;
        Ok(())
    }

    /// After a change of record `id`: moves the entity's generation, so every cached query of
    /// it is asked again, purges the entries derived from the record or the entity's lists
    /// (HTTP responses, in every instance sharing the store), then tells every listener.
    pub(super) async fn changed(
        &self,
        meta: &EntityMeta,
        id: &str,
        kind: ChangeKind,
    ) -> Result<(), CacheError> {
        let key = self.keys().query_generation(meta.entity);
        self.inner.store.increment(&key, self.version_ttl()).await?;
        self.inner.dependents.purge(meta.entity, id).await?;
        self.notify(Change {
            entity: meta.entity.to_owned(),
            id: id.to_owned(),
            kind,
        })
        .await;
        Ok(())
    }
}

/// The index keys of a stored record (a data entry, see [`entry`]), read from its JSON by the
/// entity's indexed fields.
fn stored_index_keys(
    cache: &Cache,
    meta: &EntityMeta,
    schema_hash: &str,
    raw: &Bytes,
) -> Vec<String> {
    let Ok(stored) = entry::decode(raw) else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(&stored.json) else {
        return Vec::new();
    };
    meta.indexed_fields()
        .filter_map(|field| {
            let value = match object.get(field)? {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => return None,
                other => other.to_string(),
            };
            Some(cache.keys().index(
                meta.entity,
                schema_hash,
                field,
                &normalize_index_value(&value),
            ))
        })
        .collect()
}
