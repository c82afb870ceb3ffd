//! Reads by id: `get`, `get_many`, `get_arc`. The path goes down and returns once: the
//! in-process tier (`tier.rs`), the store, then on a miss a coalesced, batched fill
//! (`fill.rs` → `batch.rs` → the source). Lists and index lookups are in `query.rs`; the
//! early refresh of hot records in `early.rs`.
//!
//! A record read from the store is one of: fresh (a hit; shortly before its expiry, one reader
//! may refresh it in the background: XFetch), expired but within the stale-if-error window (a
//! miss that answers the expired record if the source fails), gone (a tombstone: never served
//! stale), or absent (a miss).

use std::sync::Arc;

use bytes::Bytes;
use tracing::Instrument;

use super::clock::now_ms;
use super::entry;
use super::error::CacheError;
use super::metrics::Metrics;
use super::tier::TierRead;
use super::Cache;
use crate::entity::Cacheable;
use crate::scope::{self, Event};
use crate::store::Version;

/// Decodes stored bytes into the model.
fn decode<T: Cacheable>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// What the store said about one record.
enum Lookup<T> {
    /// Fresh.
    Hit(T),
    /// A tombstone: not found.
    Gone,
    /// Ask the source. `generation`: the record's generation when the store could tell (the
    /// fill is stored only if it is unchanged); `stale`: the expired record, if it may be
    /// answered should the source fail (stale-if-error); `epoch`: the store's epoch read before
    /// the generation was (see [`Store::epoch`](crate::store::Store::epoch)).
    Miss {
        generation: Option<u64>,
        epoch: u64,
        stale: Option<T>,
    },
}

impl<T> Lookup<T> {
    /// A miss with nothing known (the store failed).
    fn blind_miss() -> Self {
        Lookup::Miss {
            generation: None,
            epoch: 0,
            stale: None,
        }
    }
}

/// A resolved read: the record (or `None`: not found) and whether it is an expired record
/// answered because the source failed.
struct Answer<T> {
    value: Option<T>,
    stale: bool,
}

/// One id of a [`Cache::get_many`]: answered before any store call (not an id of the source's
/// shape, or held by the in-process tier), or to be read from the store, with the tier's ticket
/// for offering back what is read.
enum Slot<T> {
    Answered(Option<T>),
    Read(Option<crate::store::Ticket>),
}

impl<T> Slot<T> {
    /// The answer of a slot that needed no read (`None` for one that did and was not read).
    fn into_answer(self) -> Option<T> {
        match self {
            Slot::Answered(value) => value,
            Slot::Read(_) => None,
        }
    }
}

impl Cache {
    /// The record `id` as a shared, decoded value: from the in-process tier without decoding
    /// anything when the store has one ([`Store::typed_tier`](crate::store::Store::typed_tier)) and holds the record, else as
    /// [`Cache::get`] reads it.
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
    /// // Not an Airtable record id: "not found" without asking anyone.
    /// let event: Option<Arc<Event>> = cache.get_arc::<Event>("nope").await?;
    /// assert!(event.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn get_arc<T: Cacheable>(&self, id: &str) -> Result<Option<Arc<T>>, CacheError> {
        if let Some(tier) = self.inner.store.typed_tier() {
            if let Some(value) = self.tier_hit_by_id::<T>(tier, id) {
                return Ok(Some(value));
            }
        }
        Ok(self.get::<T>(id).await?.map(Arc::new))
    }

    /// The record `id`, from the store or (on a miss) from the source. `Ok(None)`: the record
    /// does not exist (a tombstone says so, or the source did).
    pub async fn get<T: Cacheable>(&self, id: &str) -> Result<Option<T>, CacheError> {
        let meta = T::meta();
        // In-process tier (`store::TieredStore`): a hit decodes nothing; a miss carries the
        // ticket under which the record read below is offered back to it.
        let ticket = match self.tier_read::<T>(id) {
            TierRead::Hit(value) => return Ok(Some(T::clone(&value))),
            TierRead::Miss(ticket) => ticket,
        };
        let span = tracing::debug_span!("cache.get", entity = meta.entity, id);
        async {
            if !self.inner.source.is_valid_id(id) {
                tracing::debug!(
                    entity = meta.entity,
                    "not a record id: not found, nothing asked"
                );
                // No record can ever have this id: an answer built from it is not worth keeping.
                scope::note_never_seen();
                return Ok(None);
            }
            let keys = self.record_keys::<T>(id);
            let epoch = self.inner.store.epoch();
            let lookup = match self.inner.store.get_many(&keys).await {
                Ok(values) => self.classify::<T>(id, values, epoch),
                Err(err) => {
                    self.store_failed(&err, "reading a record");
                    scope::note(Event::StoreError, meta.entity, None);
                    Lookup::blind_miss()
                }
            };
            let found = self.resolve(id, lookup).await?;
            // An expired record answered because the source failed is not offered to the tier.
            if !found.stale {
                self.tier_offer(ticket, &found.value);
            }
            Ok(found.value)
        }
        .instrument(span)
        .await
    }

    /// Several records, in the order of `ids`: the ones the in-process tier holds (see
    /// [`Store::typed_tier`](crate::store::Store::typed_tier)) without any store call, the
    /// rest in one store round trip, and the misses fetched from the source in batches. What
    /// was read from the store or the source is offered back to the tier under the same rules
    /// as [`Cache::get`] (kept only if no invalidation of the record raced the read).
    pub async fn get_many<T: Cacheable>(
        &self,
        ids: &[String],
    ) -> Result<Vec<Option<T>>, CacheError> {
        let meta = T::meta();
        let span = tracing::debug_span!("cache.get_many", entity = meta.entity, ids = ids.len());
        async {
            // Ids that are not the source's shape are "not found" with no I/O at all; the
            // tier answers what it holds; only the others are read from the store.
            let slots: Vec<Slot<T>> = ids
                .iter()
                .map(|id| {
                    if !self.inner.source.is_valid_id(id) {
                        scope::note_never_seen();
                        return Slot::Answered(None);
                    }
                    match self.tier_read::<T>(id) {
                        TierRead::Hit(value) => Slot::Answered(Some(T::clone(&value))),
                        TierRead::Miss(ticket) => Slot::Read(ticket),
                    }
                })
                .collect();
            let reads = slots.iter().filter(|s| matches!(s, Slot::Read(_))).count();
            if reads == 0 {
                return Ok(slots.into_iter().map(Slot::into_answer).collect());
            }
            let keys: Vec<String> = ids
                .iter()
                .zip(&slots)
                .filter(|(_, slot)| matches!(slot, Slot::Read(_)))
                .flat_map(|(id, _)| self.record_keys::<T>(id))
                .collect();
            // `None`: the store failed, every read is a blind miss.
            let epoch = self.inner.store.epoch();
            let mut values = match self.inner.store.get_many(&keys).await {
                Ok(values) => Some(values.into_iter()),
                Err(err) => {
                    self.store_failed(&err, "reading records");
                    scope::note(Event::StoreError, meta.entity, None);
                    None
                }
            };
            let resolved = futures::future::join_all(ids.iter().zip(slots).map(|(id, slot)| {
                // The values come in `ids` order, three per id read.
                let lookup = matches!(slot, Slot::Read(_)).then(|| match values.as_mut() {
                    Some(values) => {
                        self.classify::<T>(id, values.by_ref().take(3).collect(), epoch)
                    }
                    None => Lookup::blind_miss(),
                });
                async move {
                    match (slot, lookup) {
                        (Slot::Read(ticket), Some(lookup)) => {
                            let found = self.resolve(id, lookup).await?;
                            // An expired record answered because the source failed is not
                            // offered to the tier.
                            if !found.stale {
                                self.tier_offer(ticket, &found.value);
                            }
                            Ok(found.value)
                        }
                        (slot, _) => Ok(slot.into_answer()),
                    }
                }
            }))
            .await;
            resolved.into_iter().collect()
        }
        .instrument(span)
        .await
    }

    /// `[data, tombstone, version]` keys of a record.
    fn record_keys<T: Cacheable>(&self, id: &str) -> [String; 3] {
        let meta = T::meta();
        let keys = self.keys();
        [
            keys.data(meta.entity, T::schema_hash(), id),
            keys.tombstone(meta.entity, id),
            keys.generation(meta.entity, id),
        ]
    }

    /// Interprets `[data, tombstone, version]` as read from the store: a fresh record is a
    /// hit (and, shortly before its expiry, may start an early refresh); then a tombstone is
    /// "gone" (whatever data is left, so a tombstoned record is never served stale); anything
    /// else is a miss, carrying the expired record while it may still be served on error.
    fn classify<T: Cacheable>(
        &self,
        id: &str,
        values: Vec<Option<Bytes>>,
        epoch: u64,
    ) -> Lookup<T> {
        let entity = T::meta().entity;
        let mut values = values.into_iter();
        let (data, tomb, version) = (
            values.next().flatten(),
            values.next().flatten(),
            values.next().flatten(),
        );
        let now = now_ms();
        let mut stale = None;
        if let Some(raw) = data {
            match entry::decode(&raw) {
                Ok(stored) => match decode::<T>(&stored.json) {
                    Ok(value) if stored.header.is_fresh(now) => {
                        if self.draws_early_refresh(&stored.header, now) {
                            let version = version.as_deref();
                            self.refresh_early::<T>(id, version, epoch, &stored.header);
                        }
                        return Lookup::Hit(value);
                    }
                    Ok(value) => {
                        let window = self.inner.config.stale_if_error;
                        if stored.header.is_stale_servable(now, window) {
                            stale = Some(value);
                        }
                    }
                    Err(err) => {
                        Metrics::inc(&self.inner.metrics.decode_errors);
                        tracing::warn!(entity, id, error = %err, "stored entry no longer decodes; refetching");
                    }
                },
                Err(err) => {
                    Metrics::inc(&self.inner.metrics.decode_errors);
                    tracing::debug!(entity, id, error = %err, "stored entry of another format; refetching");
                }
            }
        }
        if tomb.is_some() {
            return Lookup::Gone;
        }
        let generation = match Version::parse(version.as_deref()) {
            Ok(v) => Some(v.generation),
            Err(err) => {
                tracing::warn!(entity, id, error = %err, "unreadable version; not storing the fill");
                None
            }
        };
        Lookup::Miss {
            generation,
            epoch,
            stale,
        }
    }

    /// Answers a classified lookup, filling a miss; a miss whose fill fails at the source
    /// (5xx, timeouts, rate limit exhausted) answers the expired record it carries, if any.
    async fn resolve<T: Cacheable>(
        &self,
        id: &str,
        lookup: Lookup<T>,
    ) -> Result<Answer<T>, CacheError> {
        let entity = T::meta().entity;
        let fresh = |value| Answer {
            value,
            stale: false,
        };
        match lookup {
            Lookup::Hit(value) => {
                Metrics::inc(&self.inner.metrics.hits);
                scope::note(Event::Hit, entity, Some(id));
                Ok(fresh(Some(value)))
            }
            Lookup::Gone => {
                Metrics::inc(&self.inner.metrics.tombstone_hits);
                scope::note(Event::Hit, entity, Some(id));
                Ok(fresh(None))
            }
            Lookup::Miss {
                generation,
                epoch,
                stale,
            } => {
                // A never-seen id the source said it does not have (bounded, in process).
                if self.negative_answer(entity, id, generation) {
                    return Ok(fresh(None));
                }
                Metrics::inc(&self.inner.metrics.misses);
                let bytes = match self.fill::<T>(id, generation, epoch).await {
                    Ok(bytes) => bytes,
                    Err(CacheError::Source(err)) if err.is_unconfirmed() && stale.is_some() => {
                        Metrics::inc(&self.inner.metrics.stale_served);
                        scope::note(Event::StaleHit, entity, Some(id));
                        tracing::debug!(
                            entity,
                            id,
                            error = %err,
                            "source failing: answering the expired record (stale-if-error)"
                        );
                        return Ok(Answer {
                            value: stale,
                            stale: true,
                        });
                    }
                    Err(err) => {
                        scope::note(Event::Miss, entity, Some(id));
                        return Err(err);
                    }
                };
                scope::note(Event::Miss, entity, Some(id));
                bytes
                    .map(|b| {
                        decode::<T>(&b).map_err(|e| CacheError::Decode {
                            entity,
                            id: id.to_owned(),
                            message: e.to_string(),
                        })
                    })
                    .transpose()
                    .map(fresh)
            }
        }
    }

    /// Answers a miss of a never-seen id (generation still 0) from the negative cache, if the
    /// source said it does not have it; counts it as a "not found" hit.
    pub(crate) fn negative_answer(
        &self,
        entity: &'static str,
        id: &str,
        generation: Option<u64>,
    ) -> bool {
        if generation != Some(0) || !self.inner.negative.contains(entity, id) {
            return false;
        }
        Metrics::inc(&self.inner.metrics.tombstone_hits);
        Metrics::inc(&self.inner.metrics.negative_hits);
        scope::note(Event::Hit, entity, Some(id));
        scope::note_never_seen();
        true
    }
}
