//! Reads: `get`, `get_many`, `get_by_index`, `query`.

use bytes::Bytes;
use tracing::Instrument;

use super::fill::{convert, parse_counter, FillError};
use super::metrics::Metrics;
use super::{Cache, CacheError};
use crate::entity::{normalize_index_value, Cacheable};
use crate::scope::{self, Event, Scope};
use crate::source::{formula, ListQuery};
use crate::store::Version;

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
    /// Not an id of the source's shape: not found, nothing asked.
    Invalid,
    Hit(T),
    Gone,
    Miss(Option<u64>),
}

impl Cache {
    /// The record `id`, from the store or (on a miss) from the source. `Ok(None)`: the record
    /// does not exist (a tombstone says so, or the source did).
    pub async fn get<T: Cacheable>(&self, id: &str) -> Result<Option<T>, CacheError> {
        let meta = T::meta();
        let span = tracing::debug_span!("cache.get", entity = meta.entity, id);
        async {
            if !self.inner.source.is_valid_id(id) {
                tracing::debug!(
                    entity = meta.entity,
                    "not a record id: not found, nothing asked"
                );
                return Ok(None);
            }
            let keys = self.record_keys::<T>(id);
            let lookup = match self.inner.store.get_many(&keys).await {
                Ok(values) => self.classify::<T>(id, values),
                Err(err) => {
                    self.store_failed(&err, "reading a record");
                    scope::note(Event::StoreError, meta.entity, None);
                    Lookup::Miss(None)
                }
            };
            self.resolve(id, lookup).await
        }
        .instrument(span)
        .await
    }

    /// Several records, in the order of `ids`: one store round trip for all of them, and the
    /// misses fetched from the source in batches.
    pub async fn get_many<T: Cacheable>(
        &self,
        ids: &[String],
    ) -> Result<Vec<Option<T>>, CacheError> {
        let meta = T::meta();
        let span = tracing::debug_span!("cache.get_many", entity = meta.entity, ids = ids.len());
        async {
            // Ids that are not the source's shape are "not found" with no I/O at all.
            let valid = |id: &String| self.inner.source.is_valid_id(id);
            let keys: Vec<String> = ids
                .iter()
                .filter(|id| valid(id))
                .flat_map(|id| self.record_keys::<T>(id))
                .collect();
            let lookups: Vec<Lookup<T>> = match self.inner.store.get_many(&keys).await {
                Ok(values) => {
                    let mut values = values.into_iter();
                    ids.iter()
                        .map(|id| match valid(id) {
                            true => self.classify::<T>(id, values.by_ref().take(3).collect()),
                            false => Lookup::Invalid,
                        })
                        .collect()
                }
                Err(err) => {
                    self.store_failed(&err, "reading records");
                    scope::note(Event::StoreError, meta.entity, None);
                    ids.iter()
                        .map(|id| match valid(id) {
                            true => Lookup::Miss(None),
                            false => Lookup::Invalid,
                        })
                        .collect()
                }
            };
            let resolved = futures::future::join_all(
                ids.iter()
                    .zip(lookups)
                    .map(|(id, lookup)| self.resolve(id, lookup)),
            )
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
            let store_ok = match self.inner.store.get(&index_key).await {
                Ok(Some(raw)) => {
                    if let Ok(id) = std::str::from_utf8(&raw) {
                        if let Some(record) = self.get::<T>(id).await? {
                            let matches = record.index_values().iter().any(|(f, v)| {
                                *f == field && normalize_index_value(v) == normalized
                            });
                            if matches {
                                return Ok(Some(record));
                            }
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
            Ok(found.into_iter().next())
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
                match self.inner.store.get(list_key).await {
                    Ok(Some(raw)) => {
                        if let Ok(ids) = serde_json::from_slice::<Vec<String>>(&raw) {
                            scope::note(Event::Hit, meta.entity, None);
                            let records = self.get_many::<T>(&ids).await?;
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
        let (output, leader) = self
            .coalesce(coalesce_key, None, move |cache| async move {
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
                let records = cache
                    .inner
                    .source
                    .list(meta.table, &query)
                    .await
                    .map_err(|e| FillError::Source(std::sync::Arc::new(e)))?;
                Metrics::inc(&cache.inner.metrics.source_calls);
                let converted = records
                    .into_iter()
                    .map(convert::<T>)
                    .collect::<Result<Vec<_>, _>>()?;
                cache.store_listed(&converted, before).await;
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

    /// Interprets `[data, tombstone, version]` as read from the store.
    fn classify<T: Cacheable>(&self, id: &str, values: Vec<Option<Bytes>>) -> Lookup<T> {
        let entity = T::meta().entity;
        let mut values = values.into_iter();
        let (data, tomb, version) = (
            values.next().flatten(),
            values.next().flatten(),
            values.next().flatten(),
        );
        if let Some(bytes) = data {
            match decode::<T>(&bytes) {
                Ok(value) => return Lookup::Hit(value),
                Err(err) => {
                    Metrics::inc(&self.inner.metrics.decode_errors);
                    tracing::warn!(entity, id, error = %err, "stored entry no longer decodes; refetching");
                }
            }
        } else if tomb.is_some() {
            return Lookup::Gone;
        }
        match Version::parse(version.as_deref()) {
            Ok(v) => Lookup::Miss(Some(v.generation)),
            Err(err) => {
                tracing::warn!(entity, id, error = %err, "unreadable version; not storing the fill");
                Lookup::Miss(None)
            }
        }
    }

    /// Answers a classified lookup, filling a miss.
    async fn resolve<T: Cacheable>(
        &self,
        id: &str,
        lookup: Lookup<T>,
    ) -> Result<Option<T>, CacheError> {
        let entity = T::meta().entity;
        match lookup {
            Lookup::Invalid => Ok(None),
            Lookup::Hit(value) => {
                Metrics::inc(&self.inner.metrics.hits);
                scope::note(Event::Hit, entity, Some(id));
                Ok(Some(value))
            }
            Lookup::Gone => {
                Metrics::inc(&self.inner.metrics.tombstone_hits);
                scope::note(Event::Hit, entity, Some(id));
                Ok(None)
            }
            Lookup::Miss(generation) => {
                Metrics::inc(&self.inner.metrics.misses);
                scope::note(Event::Miss, entity, Some(id));
                let bytes = self.fill::<T>(id, generation).await?;
                bytes
                    .map(|b| {
                        decode::<T>(&b).map_err(|e| CacheError::Decode {
                            entity,
                            id: id.to_owned(),
                            message: e.to_string(),
                        })
                    })
                    .transpose()
            }
        }
    }
}
