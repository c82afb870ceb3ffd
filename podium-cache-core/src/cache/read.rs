//! Reads: `get`, `get_many`, `get_by_index`, `query`.
//!
//! A record read from the store is one of: fresh (a hit; shortly before its expiry, one reader
//! may refresh it in the background: XFetch), expired but within the stale-if-error window (a
//! miss that answers the expired record if the source fails), gone (a tombstone: never served
//! stale), or absent (a miss).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use tracing::Instrument;

use super::entry::{self, EntryHeader};
use super::fill::{convert, parse_counter, FillError};
use super::metrics::Metrics;
use super::{now_ms, Cache, CacheError};
use crate::entity::{normalize_index_value, Cacheable};
use crate::scope::{self, Event, Scope};
use crate::source::{formula, ListQuery};
use crate::store::{Locks, TierLookup, Version};

/// A cached list query: the records of one entity matching an Airtable formula.
///
/// ```
/// use podium_cache_core::cache::Query;
/// let q = Query::field_equals("event", "recAAAAAAAAAAAAAA");
/// assert_eq!(q.formula(), "{event}='recAAAAAAAAAAAAAA'");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Query {
    formula: String,
}

impl Query {
    /// Records whose `field` equals `value` exactly (for a linked-record field: whose linked
    /// ids, comma-joined, equal it, which for a single link is the id).
    pub fn field_equals(field: &str, value: &str) -> Self {
        Self {
            formula: formula::field_equals(field, value),
        }
    }

    /// Records whose linked-record `field` contains the id `id`.
    pub fn links_to(field: &str, id: &str) -> Self {
        Self {
            formula: format!(
                "FIND({},ARRAYJOIN({},','))",
                formula::string_literal(id),
                formula::field_ref(field)
            ),
        }
    }

    /// A raw Airtable formula: build it with [`crate::source::formula`] so values are escaped.
    pub fn formula_text(formula: impl Into<String>) -> Self {
        Self {
            formula: formula.into(),
        }
    }

    /// The formula sent to the source.
    pub fn formula(&self) -> &str {
        &self.formula
    }
}

/// Decodes stored bytes into the model.
fn decode<T: Cacheable>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}

fn decode_list<T: Cacheable>(bytes: &[u8]) -> Result<Vec<T>, serde_json::Error> {
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

/// `-ln` of the smallest draw [`Cache::draws_early_refresh`] makes (2^-53): beyond this many
/// fetch deltas (times β) before its expiry, no read refreshes a record early.
const XFETCH_HORIZON: f64 = 36.8;
/// An early refresh's claim outlives the entry it refreshes by this much.
const REFRESH_CLAIM_GRACE: Duration = Duration::from_secs(5);

/// Takes a data key out of this process's early refreshes when the refresh ends.
struct RefreshingGuard {
    cache: Cache,
    data_key: String,
}

impl Drop for RefreshingGuard {
    fn drop(&mut self) {
        self.cache.inner.refreshing.lock().remove(&self.data_key);
    }
}

impl Cache {
    /// The record `id`, from the store or (on a miss) from the source. `Ok(None)`: the record
    /// does not exist (a tombstone says so, or the source did).
    pub async fn get<T: Cacheable>(&self, id: &str) -> Result<Option<T>, CacheError> {
        let meta = T::meta();
        // In-process tier (`store::TieredStore`): a hit decodes nothing; a miss carries the
        // ticket under which the record read below is offered back to it.
        let ticket = match self.tier_read::<T>(id) {
            super::TierRead::Hit(value) => return Ok(Some(T::clone(&value))),
            super::TierRead::Miss(ticket) => ticket,
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
                        super::TierRead::Hit(value) => Slot::Answered(Some(T::clone(&value))),
                        super::TierRead::Miss(ticket) => Slot::Read(ticket),
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

    /// The record whose indexed `field` has `value` (normalised: trimmed, lower-cased).
    /// The index entry is checked against the record it points to, so a changed value never
    /// finds the record under its old value.
    pub async fn get_by_index<T: Cacheable>(
        &self,
        field: &str,
        value: &str,
    ) -> Result<Option<T>, CacheError> {
        let meta = T::meta();
        if !meta.has_index(field) {
            return Err(CacheError::UnknownIndex {
                entity: meta.entity,
                field: field.to_owned(),
                known: meta.indexed_fields().collect::<Vec<_>>().join(", "),
            });
        }
        let span = tracing::debug_span!("cache.get_by_index", entity = meta.entity, field);
        async {
            let normalized = normalize_index_value(value);
            let index_key = self
                .keys()
                .index(meta.entity, T::schema_hash(), field, &normalized);
            // The in-process tier may hold the id this value led to when it was last read
            // here: a hint, checked against the record (itself coherent across instances)
            // exactly as the store's entry is. Index entries are not announced to other
            // instances; a hint whose record moved away from the value, or is gone, is dropped
            // here and the store asked.
            let tier = self.inner.store.typed_tier();
            let mut ticket = None;
            if let Some(tier) = tier {
                ticket = match tier.lookup::<String>(index_key.clone()) {
                    TierLookup::Miss(taken) => taken,
                    TierLookup::Hit(id) => {
                        if let Some(record) =
                            self.indexed_record::<T>(&id, field, &normalized).await?
                        {
                            return Ok(Some(record));
                        }
                        // A stale hint: dropped, and a ticket taken for the id read next.
                        tier.invalidate(&index_key);
                        match tier.lookup::<String>(index_key.clone()) {
                            TierLookup::Miss(taken) => taken,
                            TierLookup::Hit(_) => None,
                        }
                    }
                };
            }
            let store_ok = match self.inner.store.get(&index_key).await {
                Ok(Some(raw)) => {
                    if let Ok(id) = std::str::from_utf8(&raw) {
                        if let Some(record) =
                            self.indexed_record::<T>(id, field, &normalized).await?
                        {
                            if let (Some(tier), Some(ticket)) = (tier, ticket) {
                                tier.insert(ticket, Arc::new(id.to_owned()));
                            }
                            return Ok(Some(record));
                        }
                    }
                    true
                }
                Ok(None) => true,
                Err(err) => {
                    self.store_failed(&err, "reading an index entry");
                    false
                }
            };
            Metrics::inc(&self.inner.metrics.misses);
            scope::note(Event::Miss, meta.entity, None);
            let query = ListQuery {
                filter: Some(formula::normalized_field_equals(field, value)),
                fields: Vec::new(),
                max_records: Some(1),
            };
            let found = self.list_and_store::<T>(index_key, query, store_ok).await?;
            let found = found.into_iter().next();
            if found.is_none() {
                // "No record has this value" changes when one is created or renamed to it: an
                // answer built from it depends on the entity, as a list does.
                Scope::with_current(|s| s.add_entity(meta.entity));
            }
            Ok(found)
        }
        .instrument(span)
        .await
    }

    /// The records of `T` matching `query`. The id list is cached under the entity's current
    /// generation, so any change in the entity makes the next query ask the source again.
    pub async fn query<T: Cacheable>(&self, query: &Query) -> Result<Vec<T>, CacheError> {
        let meta = T::meta();
        let span = tracing::debug_span!(
            "cache.query",
            entity = meta.entity,
            formula = query.formula()
        );
        async {
            Scope::with_current(|s| s.add_entity(meta.entity));
            let keys = self.keys();
            let generation = match self
                .inner
                .store
                .get(&keys.query_generation(meta.entity))
                .await
            {
                Ok(raw) => Some(parse_counter(raw)),
                Err(err) => {
                    self.store_failed(&err, "reading an entity generation");
                    None
                }
            };
            let list_key =
                generation.map(|g| keys.query(meta.entity, T::schema_hash(), g, query.formula()));
            if let Some(list_key) = &list_key {
                // The in-process tier holds the id list under the same key, which names the
                // entity's generation: any change in the entity moves it, so a list kept here is
                // never reached again once it is out of date, and needs no announcement. The
                // records come through `get_many` (the tier again, each record coherent).
                let tier = self.inner.store.typed_tier();
                let ticket = match tier.map(|t| t.lookup::<Vec<String>>(list_key.clone())) {
                    Some(TierLookup::Hit(ids)) => {
                        scope::note(Event::Hit, meta.entity, None);
                        let records = self.get_many::<T>(&ids).await?;
                        return Ok(records.into_iter().flatten().collect());
                    }
                    Some(TierLookup::Miss(ticket)) => ticket,
                    None => None,
                };
                match self.inner.store.get(list_key).await {
                    Ok(Some(raw)) => {
                        if let Ok(ids) = serde_json::from_slice::<Vec<String>>(&raw) {
                            scope::note(Event::Hit, meta.entity, None);
                            let records = self.get_many::<T>(&ids).await?;
                            if let (Some(tier), Some(ticket)) = (tier, ticket) {
                                tier.insert(ticket, Arc::new(ids));
                            }
                            return Ok(records.into_iter().flatten().collect());
                        }
                    }
                    Ok(None) => {}
                    Err(err) => self.store_failed(&err, "reading a query result"),
                }
            }
            Metrics::inc(&self.inner.metrics.misses);
            scope::note(Event::Miss, meta.entity, None);
            let list_query = ListQuery {
                filter: Some(query.formula().to_owned()),
                ..ListQuery::default()
            };
            let coalesce_key = list_key
                .clone()
                .unwrap_or_else(|| format!("nostore:{}", query.formula()));
            let records = self
                .list_and_store::<T>(coalesce_key, list_query, generation.is_some())
                .await?;
            if let (Some(list_key), Some(g)) = (list_key, generation) {
                let ids: Vec<&str> = records.iter().map(|r| r.id()).collect();
                let current = self
                    .inner
                    .store
                    .get(&keys.query_generation(meta.entity))
                    .await;
                if matches!(&current, Ok(raw) if parse_counter(raw.clone()) == g) {
                    let body = serde_json::to_vec(&ids).unwrap_or_default();
                    let ttl = self.jittered(self.inner.config.query_ttl);
                    if let Err(err) = self
                        .inner
                        .store
                        .set(&list_key, Bytes::from(body), ttl)
                        .await
                    {
                        self.store_failed(&err, "storing a query result");
                    }
                }
            }
            Ok(records)
        }
        .instrument(span)
        .await
    }

    /// One coalesced list call; the records are stored when nothing changed meanwhile.
    async fn list_and_store<T: Cacheable>(
        &self,
        coalesce_key: String,
        query: ListQuery,
        use_store: bool,
    ) -> Result<Vec<T>, CacheError> {
        let meta = T::meta();
        // A list call counts against the client's outstanding misses and is queued in its
        // fair share like a miss (see `batch`); identical ones in flight are joined.
        let (client, admission) = self.admit_miss(meta.entity)?;
        let (output, leader) = self
            .coalesce(coalesce_key, None, move |cache| async move {
                let _admission = admission;
                let epoch = cache.inner.store.epoch();
                let before = if use_store {
                    match cache
                        .inner
                        .store
                        .get(&cache.keys().query_generation(meta.entity))
                        .await
                    {
                        Ok(raw) => Some(parse_counter(raw)),
                        Err(_) => None,
                    }
                } else {
                    None
                };
                let started = std::time::Instant::now();
                let records = cache
                    .inner
                    .batcher
                    .list(meta.table, query, client)
                    .await
                    .map_err(FillError::Source)?;
                let fetch_ms = entry::fetch_millis(started.elapsed());
                Metrics::inc(&cache.inner.metrics.source_calls);
                let converted = records
                    .into_iter()
                    .map(convert::<T>)
                    .collect::<Result<Vec<_>, _>>()?;
                cache
                    .store_listed(&converted, before, epoch, fetch_ms)
                    .await;
                // Each element is already a model's JSON: the list is their JSON array.
                let mut body = Vec::with_capacity(
                    2 + converted.iter().map(|(_, b)| b.len() + 1).sum::<usize>(),
                );
                body.push(b'[');
                for (i, (_, bytes)) in converted.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(bytes);
                }
                body.push(b']');
                Ok(super::fill::Fetched {
                    bytes: Some(Bytes::from(body)),
                    charged: true,
                })
            })
            .await;
        let fetched = output.map_err(|e| e.into_cache_error(meta.entity))?;
        if leader {
            scope::note(Event::SourceCall, meta.entity, None);
        }
        let Some(body) = fetched.bytes else {
            return Ok(Vec::new());
        };
        let out: Vec<T> = decode_list(&body).map_err(|e| CacheError::Decode {
            entity: meta.entity,
            id: String::new(),
            message: e.to_string(),
        })?;
        for value in &out {
            Scope::with_current(|s| s.add_tag(meta.entity, value.id()));
        }
        Ok(out)
    }

    /// The record `id` (read as [`Cache::get`] reads it) if its indexed `field` still has
    /// the `normalized` value an index entry led to it by.
    async fn indexed_record<T: Cacheable>(
        &self,
        id: &str,
        field: &str,
        normalized: &str,
    ) -> Result<Option<T>, CacheError> {
        let Some(record) = self.get::<T>(id).await? else {
            return Ok(None);
        };
        let matches = record
            .index_values()
            .iter()
            .any(|(f, v)| *f == field && normalize_index_value(v) == normalized);
        Ok(matches.then_some(record))
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

    /// Whether this read of a fresh record refreshes it early (XFetch, see
    /// [`EntryHeader::refresh_early`]). Far from the expiry it costs a comparison, no draw.
    fn draws_early_refresh(&self, header: &EntryHeader, now: i64) -> bool {
        let beta = self.inner.config.xfetch_beta;
        if beta <= 0.0 || header.fetch_ms == 0 {
            return false;
        }
        let horizon = f64::from(header.fetch_ms) * beta * XFETCH_HORIZON;
        if (header.expires_at_ms.saturating_sub(now)) as f64 > horizon {
            return false;
        }
        // In (0, 1]: never ln(0).
        let draw = 1.0 - rand::thread_rng().gen::<f64>();
        header.refresh_early(now, beta, draw)
    }

    /// Starts refreshing the fresh record `id` in the background, unless a refresh or a fill
    /// of it already runs in this process. The reader does not wait: it has its answer.
    fn refresh_early<T: Cacheable>(
        &self,
        id: &str,
        version: Option<&[u8]>,
        epoch: u64,
        header: &EntryHeader,
    ) {
        let meta = T::meta();
        // The generation read with the record: the refresh is a fill guarded by it.
        let Ok(version) = Version::parse(version) else {
            return;
        };
        let data_key = self.keys().data(meta.entity, T::schema_hash(), id);
        if self
            .inner
            .in_flight
            .contains(&(data_key.clone(), Some(version.generation)))
        {
            return;
        }
        if !self.inner.refreshing.lock().insert(data_key.clone()) {
            return;
        }
        let guard = RefreshingGuard {
            cache: self.clone(),
            data_key,
        };
        let id = id.to_owned();
        let header = *header;
        let span = tracing::debug_span!("cache.refresh_early", entity = meta.entity, id = %id);
        tokio::spawn(
            async move {
                guard
                    .cache
                    .run_early_refresh::<T>(&id, (version.generation, epoch), &header)
                    .await;
                drop(guard);
            }
            .instrument(span),
        );
    }

    /// Claims the refresh of the entry described by `header` in the store (one refresh per
    /// stored entry, across instances, and none for readers that still saw it after it was
    /// refreshed), then fills `id` guarded by `generation`. A failed refresh keeps its claim:
    /// the record is then refetched when it expires (and may be served stale from there).
    async fn run_early_refresh<T: Cacheable>(
        &self,
        id: &str,
        (generation, epoch): (u64, u64),
        header: &EntryHeader,
    ) {
        let meta = T::meta();
        let claim = self.keys().lock(&format!(
            "refresh:{}:{}:{id}:{}",
            meta.entity,
            T::schema_hash(),
            header.stored_at_ms
        ));
        let remaining = u64::try_from(header.expires_at_ms.saturating_sub(now_ms())).unwrap_or(0);
        let claim_ttl = Duration::from_millis(remaining).saturating_add(REFRESH_CLAIM_GRACE);
        match self
            .inner
            .store
            .set_if_absent(&claim, Bytes::from_static(b"1"), claim_ttl)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => return self.store_failed(&err, "claiming an early refresh"),
        }
        Metrics::inc(&self.inner.metrics.early_refreshes);
        tracing::debug!(
            remaining_ms = remaining,
            fetch_ms = header.fetch_ms,
            "refreshing a hot record before it expires"
        );
        if let Err(err) = self.fill::<T>(id, Some(generation), epoch).await {
            tracing::warn!(error = %err, "early refresh failed; the record is refetched when it expires");
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
}
