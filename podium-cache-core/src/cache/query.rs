//! Lists: [`Cache::query`] (a cached formula query) and [`Cache::get_by_index`] (a record
//! found by an indexed field's value); both read the records through [`Cache::get_many`] /
//! [`Cache::get`] and fetch a miss with one coalesced list call.

use std::sync::Arc;

use bytes::Bytes;
use tracing::Instrument;

use super::entry;
use super::error::CacheError;
use super::fill::{convert, parse_counter};
use super::flight::{Fetched, FillError};
use super::metrics::Metrics;
use super::Cache;
use crate::entity::{normalize_index_value, Cacheable};
use crate::scope::{self, Event, Scope};
use crate::source::{formula, ListQuery};
use crate::store::TierLookup;

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

fn decode_list<T: Cacheable>(bytes: &[u8]) -> Result<Vec<T>, serde_json::Error> {
    serde_json::from_slice(bytes)
}

impl Cache {
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
                Ok(Fetched {
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
}
