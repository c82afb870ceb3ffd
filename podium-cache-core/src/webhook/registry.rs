//! [`Models`]: which model a table's records deserialise into, for callers that only know the
//! table name (webhook deliveries, native-webhook payloads, the sweep).
//!
//! ```
//! use podium_cache_core::webhook::Models;
//! # use podium_cache_core::entity::*;
//! # #[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
//! # struct Event { id: String }
//! # static META: EntityMeta = EntityMeta { table: "Events", entity: "events", id_key: "id", fields: &[] };
//! # impl Cacheable for Event {
//! #     fn meta() -> &'static EntityMeta { &META }
//! #     fn schema_hash() -> &'static str { "000000000000" }
//! #     fn id(&self) -> &str { &self.id }
//! #     fn index_values(&self) -> Vec<(&'static str, String)> { vec![] }
//! #     fn references(&self) -> Vec<Reference<'_>> { vec![] }
//! # }
//! let models = Models::new().register::<Event>();
//! assert!(models.by_table("Events").is_some());
//! assert_eq!(models.tables(), vec!["Events"]);
//! ```

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::cache::{Cache, CacheError, Refreshed, UpsertOutcome};
use crate::entity::{Cacheable, EntityMeta};

/// A record that does not fit its model: serde's message and the path of the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field `{path}`: {message}")]
pub struct FitError {
    /// Path of the offending field (`.` when the whole record is wrong).
    pub path: String,
    /// What serde said.
    pub message: String,
}

/// The operations on one model that need no static type at the call site.
#[async_trait]
pub trait ModelOps: Send + Sync + 'static {
    /// Table, entity and fields.
    fn meta(&self) -> &'static EntityMeta;
    /// The model's schema hash.
    fn schema_hash(&self) -> &'static str;
    /// Checks that a flat record (`{"id", …fields}`) fits the model.
    fn check(&self, record: &Value) -> Result<(), FitError>;
    /// Deserialises a flat record and upserts it as changed at `timestamp_ms`.
    async fn upsert_json(
        &self,
        cache: &Cache,
        record: Value,
        timestamp_ms: i64,
    ) -> Result<UpsertOutcome, UpsertJsonError>;
    /// Re-reads `id` from the source and stores the answer (see [`Cache::refresh`]).
    async fn refresh(&self, cache: &Cache, id: &str) -> Result<Refreshed, CacheError>;
    /// Drops the cached copy of `id`.
    async fn invalidate(&self, cache: &Cache, id: &str) -> Result<(), CacheError>;
    /// Removes `id` as gone from the source (tombstone).
    async fn remove_gone(&self, cache: &Cache, id: &str) -> Result<(), CacheError>;
}

/// Why [`ModelOps::upsert_json`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpsertJsonError {
    /// The record does not fit the model.
    #[error(transparent)]
    Fit(#[from] FitError),
    /// The cache (store) failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

struct Ops<T>(PhantomData<fn() -> T>);

fn fit<T: Cacheable>(record: Value) -> Result<T, FitError> {
    serde_path_to_error::deserialize(record).map_err(|err| FitError {
        path: err.path().to_string(),
        message: err.inner().to_string(),
    })
}

#[async_trait]
impl<T: Cacheable> ModelOps for Ops<T> {
    fn meta(&self) -> &'static EntityMeta {
        T::meta()
    }

    fn schema_hash(&self) -> &'static str {
        T::schema_hash()
    }

    fn check(&self, record: &Value) -> Result<(), FitError> {
        fit::<T>(record.clone()).map(|_| ())
    }

    async fn upsert_json(
        &self,
        cache: &Cache,
        record: Value,
        timestamp_ms: i64,
    ) -> Result<UpsertOutcome, UpsertJsonError> {
        let value = fit::<T>(record)?;
        Ok(cache.upsert(&value, timestamp_ms).await?)
    }

    async fn refresh(&self, cache: &Cache, id: &str) -> Result<Refreshed, CacheError> {
        cache.refresh::<T>(id).await
    }

    async fn invalidate(&self, cache: &Cache, id: &str) -> Result<(), CacheError> {
        cache.invalidate::<T>(id).await
    }

    async fn remove_gone(&self, cache: &Cache, id: &str) -> Result<(), CacheError> {
        cache.remove_gone(T::meta(), T::schema_hash(), id).await
    }
}

/// The registered models, by Airtable table name (and by entity name).
#[derive(Clone, Default)]
pub struct Models {
    by_table: BTreeMap<&'static str, Arc<dyn ModelOps>>,
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_table.keys()).finish()
    }
}

impl Models {
    /// No models.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `T` under its table name.
    pub fn register<T: Cacheable>(mut self) -> Self {
        self.by_table
            .insert(T::meta().table, Arc::new(Ops::<T>(PhantomData)));
        self
    }

    /// The model of `table` (exact Airtable name).
    pub fn by_table(&self, table: &str) -> Option<&Arc<dyn ModelOps>> {
        self.by_table.get(table)
    }

    /// The model whose entity name is `entity`.
    pub fn by_entity(&self, entity: &str) -> Option<&Arc<dyn ModelOps>> {
        self.by_table.values().find(|m| m.meta().entity == entity)
    }

    /// Every registered table name, sorted.
    pub fn tables(&self) -> Vec<&'static str> {
        self.by_table.keys().copied().collect()
    }

    /// Every registered model.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn ModelOps>> {
        self.by_table.values()
    }
}
