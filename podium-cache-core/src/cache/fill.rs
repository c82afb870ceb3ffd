//! Fills: fetching missed records from the source, coalesced, and storing them only when no
//! newer change won the race (the stale-set guard).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

use super::error::CacheError;
use super::flight::{Fetched, FillError, FillOutput};
use super::metrics::Metrics;
use super::{entry, Cache};
use crate::entity::{normalize_index_value, Cacheable};
use crate::scope::{self, Event};
use crate::source::{SourceError, SourceRecord};
use crate::store::{Condition, RecordWrite, Version};

/// A record as the source returned it, converted to the model and its stored bytes.
pub(crate) fn convert<T: Cacheable>(record: SourceRecord) -> Result<(T, Bytes), FillError> {
    let id = record.id.clone();
    let flat = record.into_flat(T::meta().id_key);
    let value: T = serde_json::from_value(flat).map_err(|e| FillError::Decode {
        id: id.clone(),
        message: e.to_string(),
    })?;
    let bytes = serde_json::to_vec(&value).map_err(|e| FillError::Decode {
        id,
        message: e.to_string(),
    })?;
    Ok((value, Bytes::from(bytes)))
}

impl Cache {
    /// Runs `make()` once for all concurrent callers with the same `(key, generation)`; the
    /// work runs in its own task, so a caller that gives up does not cancel it for the others.
    /// Returns the output and whether this caller started the work.
    pub(crate) async fn coalesce<F, Fut>(
        &self,
        key: String,
        generation: Option<u64>,
        make: F,
    ) -> (FillOutput, bool)
    where
        F: FnOnce(Cache) -> Fut,
        Fut: Future<Output = FillOutput> + Send + 'static,
    {
        let this = self.clone();
        let ran = self
            .inner
            .in_flight
            .run((key, generation), || make(this))
            .await;
        let (output, leader) = ran.unwrap_or_else(|| {
            let failed = SourceError::Transient("fill task failed".to_owned());
            (Err(FillError::Source(Arc::new(failed))), true)
        });
        if !leader {
            Metrics::inc(&self.inner.metrics.coalesced);
        }
        (output, leader)
    }

    /// Fetches `id` through the batcher; when `generation` is known, stores the record (or a
    /// "missing" tombstone) only if the generation is still that one and the store's
    /// [`epoch`](crate::store::Store::epoch), read before the generation was, has not moved.
    ///
    /// The miss is queued under the current scope's client; a client that already has
    /// `max_client_misses` outstanding is refused with [`CacheError::TooManyMisses`] before
    /// anything is queued (see [`super::batch`]).
    pub(crate) async fn fill<T: Cacheable>(
        &self,
        id: &str,
        generation: Option<u64>,
        epoch: u64,
    ) -> Result<Option<Bytes>, CacheError> {
        let meta = T::meta();
        let (client, admission) = self.admit_miss(meta.entity)?;
        let key = self.keys().data(meta.entity, T::schema_hash(), id);
        let owned_id = id.to_owned();
        let (output, leader) = self
            .coalesce(key, generation, move |cache| async move {
                // Counts against the client's outstanding misses until the fill is done; a
                // caller that joins a fill in flight drops it at once.
                let _admission = admission;
                cache
                    .fetch_and_store::<T>(owned_id, generation, epoch, client)
                    .await
            })
            .await;
        let fetched = output.map_err(|e| e.into_cache_error(meta.entity))?;
        if leader && fetched.charged {
            scope::note(Event::SourceCall, meta.entity, None);
        }
        if fetched.bytes.is_none()
            && generation == Some(0)
            && self.inner.negative.contains(meta.entity, id)
        {
            scope::note_never_seen();
        }
        Ok(fetched.bytes)
    }

    /// Admits one more miss (a fill or a list call) of the current scope's client, or refuses it
    /// with [`CacheError::TooManyMisses`] when the client already has `max_client_misses`
    /// outstanding (see [`super::batch`]). The admission counts until it is dropped.
    pub(crate) fn admit_miss(
        &self,
        entity: &'static str,
    ) -> Result<(super::batch::ClientKey, Option<super::batch::Admission>), CacheError> {
        let client = scope::Scope::current_client();
        match self.inner.batcher.admit(&client) {
            Ok(admission) => Ok((client, admission)),
            Err(retry_after) => {
                Metrics::inc(&self.inner.metrics.misses_refused);
                tracing::debug!(
                    entity,
                    client = client.as_deref().unwrap_or("-"),
                    ?retry_after,
                    "miss refused: the client has too many outstanding"
                );
                Err(CacheError::TooManyMisses { retry_after })
            }
        }
    }

    async fn fetch_and_store<T: Cacheable>(
        self,
        id: String,
        generation: Option<u64>,
        epoch: u64,
        client: super::batch::ClientKey,
    ) -> FillOutput {
        let meta = T::meta();
        let started = std::time::Instant::now();
        // Counted in the same poll that queues the id (a test can wait for every miss queued).
        Metrics::inc(&self.inner.metrics.misses_queued);
        let (record, charged) = match self.inner.batcher.load(meta.table, &id, client).await {
            Ok(loaded) => loaded,
            Err(err) => {
                Metrics::inc(&self.inner.metrics.source_errors);
                tracing::warn!(entity = meta.entity, id, error = %err, "source call failed");
                return Err(FillError::Source(err));
            }
        };
        if charged {
            Metrics::inc(&self.inner.metrics.source_calls);
        }
        let Some(generation) = generation else {
            // The store is failing: answer from the source, write nothing.
            let bytes = record.map(convert::<T>).transpose()?.map(|(_, b)| b);
            return Ok(Fetched { bytes, charged });
        };
        match record {
            Some(record) => {
                let (value, bytes) = convert::<T>(record)?;
                let fetch_ms = entry::fetch_millis(started.elapsed());
                self.store_fetched(&value, bytes.clone(), (generation, epoch), fetch_ms)
                    .await;
                Ok(Fetched {
                    bytes: Some(bytes),
                    charged,
                })
            }
            None => {
                self.store_missing::<T>(&id, generation, epoch).await;
                Ok(Fetched {
                    bytes: None,
                    charged,
                })
            }
        }
    }

    /// Stores a fetched record (`json`, fetched in `fetch_ms`) as a data entry (see
    /// [`entry`]) if its generation is still `generation` and the store's epoch still
    /// `epoch` (both read before the fetch), then its index entries.
    pub(crate) async fn store_fetched<T: Cacheable>(
        &self,
        value: &T,
        json: Bytes,
        (generation, epoch): (u64, u64),
        fetch_ms: u32,
    ) {
        let meta = T::meta();
        if self.disrupted_since(epoch, meta.entity, value.id()) {
            return;
        }
        let hash = T::schema_hash();
        let keys = self.keys();
        let id = value.id();
        let (stored, store_ttl) = self.data_entry(&json, fetch_ms);
        let write = RecordWrite {
            version_key: keys.generation(meta.entity, id),
            condition: Condition::GenerationIs(generation),
            bump_generation: false,
            timestamp_ms: None,
            version_ttl: self.version_ttl(),
            set: vec![(keys.data(meta.entity, hash, id), stored, store_ttl)],
            delete: vec![keys.tombstone(meta.entity, id)],
        };
        match self.inner.store.write_record(&write).await {
            Ok(outcome) if outcome.applied() => {
                Metrics::inc(&self.inner.metrics.fills_stored);
                self.write_index_entries(value).await;
            }
            Ok(_) => {
                Metrics::inc(&self.inner.metrics.fills_discarded);
                tracing::debug!(
                    entity = meta.entity,
                    id,
                    "fill discarded: a newer change won"
                );
            }
            Err(err) => self.store_failed(&err, "storing a fill"),
        }
    }

    /// Remembers that the source does not have `id` (see [`super::negative`]): an id the cache
    /// has never seen (generation 0: nothing was ever written, changed or deleted for it) goes
    /// into the bounded in-process negative cache and never into the store, so random ids
    /// cannot grow the store; a known id gets a "missing" tombstone in the store
    /// (`missing_ttl`), if nothing changed since the miss.
    async fn store_missing<T: Cacheable>(&self, id: &str, generation: u64, epoch: u64) {
        let meta = T::meta();
        if self.disrupted_since(epoch, meta.entity, id) {
            return;
        }
        if generation == 0 {
            self.inner.negative.insert(meta.entity, id);
            Metrics::inc(&self.inner.metrics.negative_stored);
            tracing::debug!(
                entity = meta.entity,
                id,
                "never-seen id the source does not have: negative cache only"
            );
            return;
        }
        let keys = self.keys();
        let write = RecordWrite {
            version_key: keys.generation(meta.entity, id),
            condition: Condition::GenerationIs(generation),
            bump_generation: false,
            timestamp_ms: None,
            version_ttl: self.version_ttl(),
            set: vec![(
                keys.tombstone(meta.entity, id),
                Bytes::from_static(b"missing"),
                self.inner.config.missing_ttl,
            )],
            delete: Vec::new(),
        };
        if let Err(err) = self.inner.store.write_record(&write).await {
            self.store_failed(&err, "storing a missing-record tombstone");
        }
    }

    /// Writes `value`'s secondary index entries (normalised value → id).
    pub(crate) async fn write_index_entries<T: Cacheable>(&self, value: &T) {
        let meta = T::meta();
        let entries: Vec<(String, Bytes, std::time::Duration)> = value
            .index_values()
            .into_iter()
            .map(|(field, raw)| {
                (
                    self.keys().index(
                        meta.entity,
                        T::schema_hash(),
                        field,
                        &normalize_index_value(&raw),
                    ),
                    Bytes::from(value.id().to_owned()),
                    // As long as the data entry: a stale record stays findable by index.
                    self.jittered(self.inner.config.data_ttl)
                        .saturating_add(self.inner.config.stale_if_error),
                )
            })
            .collect();
        if let Err(err) = self.inner.store.set_many(&entries).await {
            self.store_failed(&err, "writing index entries");
        }
    }

    /// Stores records a list call returned (index lookups, queries; the call took `fetch_ms`),
    /// each only if nothing changed in its entity since `entity_generation` was read before the
    /// call, and only if its own generation did not move meanwhile.
    pub(crate) async fn store_listed<T: Cacheable>(
        &self,
        records: &[(T, Bytes)],
        entity_generation: Option<u64>,
        epoch: u64,
        fetch_ms: u32,
    ) {
        let Some(before) = entity_generation else {
            return;
        };
        let meta = T::meta();
        let keys = self.keys();
        let mut wanted = vec![keys.query_generation(meta.entity)];
        for (value, _) in records {
            wanted.push(keys.generation(meta.entity, value.id()));
        }
        let values = match self.inner.store.get_many(&wanted).await {
            Ok(values) => values,
            Err(err) => return self.store_failed(&err, "reading versions after a list"),
        };
        if parse_counter(values.first().cloned().flatten()) != before {
            tracing::debug!(
                entity = meta.entity,
                "list result not stored: the entity changed meanwhile"
            );
            return;
        }
        for ((value, bytes), version) in records.iter().zip(values.iter().skip(1)) {
            let Ok(version) = Version::parse(version.as_deref()) else {
                continue;
            };
            self.store_fetched(value, bytes.clone(), (version.generation, epoch), fetch_ms)
                .await;
        }
    }

    /// Whether the store may have lost entries since `epoch` was read (see
    /// [`Store::epoch`](crate::store::Store::epoch)): a redis-server that restarted empty
    /// forgot the generations a newer change moved, so a fill guarded by one it read before
    /// could pass its check and store an older record. Such a fill is discarded.
    fn disrupted_since(&self, epoch: u64, entity: &'static str, id: &str) -> bool {
        if self.inner.store.epoch() == epoch {
            return false;
        }
        Metrics::inc(&self.inner.metrics.fills_discarded);
        tracing::debug!(
            entity,
            id,
            "fill discarded: the store was disrupted since its generation was read"
        );
        true
    }

    /// How long a version key lives: longer than any data or tombstone it guards.
    pub(crate) fn version_ttl(&self) -> std::time::Duration {
        let c = &self.inner.config;
        c.tombstone_ttl.max(c.data_ttl).max(c.missing_ttl) * 2
    }

    /// Logs and counts a failed store call (the caller carries on without the store).
    pub(crate) fn store_failed(&self, err: &crate::store::StoreError, doing: &str) {
        Metrics::inc(&self.inner.metrics.store_errors);
        tracing::warn!(store = self.inner.store.name(), error = %err, "store call failed while {doing}");
    }
}

/// A counter value as stored (`None` or garbage reads as 0).
pub(crate) fn parse_counter(raw: Option<Bytes>) -> u64 {
    raw.and_then(|b| std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}
