//! Record-level invalidation of cached responses.
//!
//! Every stored response is added to the store set `keys.tag(entity, id)` of each record it
//! read (and to `keys.entity_tag(entity)` of each entity whose list it read). When the core
//! [`Cache`] changes a record it calls its listeners; [`ResponsePurger`] is the layer's: it
//! deletes exactly the responses in the record's tag set, and those in the entity's list set
//! (a created, changed or removed record can change any list of its entity). The sets live in
//! the shared store, so a purge made by any instance holds for all of them.
//!
//! Handlers can tag a response with records the engine did not see, with a [`CacheTags`]
//! response extension or with a `Cache-Tag` header of `entity:id` tokens (`entity` or
//! `entity:*` for a whole entity's lists), which the layer strips before the client sees it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use podium_cache_core::cache::{Cache, Change, ChangeKind};
//! use podium_cache_core::source::AirtableSource;
//! use podium_cache_core::store::MemoryStore;
//! use podium_cache_tower::purge::ResponsePurger;
//!
//! let source = AirtableSource::builder("key", "appAAAAAAAAAAAAAA").api_url("http://127.0.0.1:9").build()?;
//! let cache = Cache::builder(Arc::new(MemoryStore::new(1_000)), Arc::new(source)).build();
//! let purger = ResponsePurger::new(&cache);
//! let change = Change { entity: "events".into(), id: "rec1".into(), kind: ChangeKind::Upserted };
//! let report = purger.purge(&change).await?;
//! assert_eq!(report.responses, 0); // nothing was cached yet
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::response::{IntoResponseParts, ResponseParts};
use http::header::HeaderName;
use http::HeaderMap;
use podium_cache_core::cache::{Cache, Change, InvalidationListener};
use podium_cache_core::key::Keys;
use podium_cache_core::store::{Store, StoreError};
use tracing::Instrument;

/// How long the "record changed at sequence N" markers live: longer than any request takes.
pub(crate) const MARKER_TTL: Duration = Duration::from_secs(3600);
/// How long the purge sequence counter lives without a change.
const SEQUENCE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The most keys deleted in one store call.
const DELETE_CHUNK: usize = 500;

/// Records and entities a response depends on, set by a handler as a response extension (in
/// addition to what the engine saw it read).
///
/// ```
/// use axum::{routing::get, Router};
/// use podium_cache_tower::CacheTags;
///
/// async fn banner() -> (CacheTags, &'static str) {
///     (CacheTags::new().record("settings", "recBANNER").entity("events"), "hello")
/// }
/// let app: Router = Router::new().route("/banner", get(banner));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheTags {
    /// `(entity, id)` of records the response depends on.
    pub records: Vec<(String, String)>,
    /// Entities whose lists the response depends on.
    pub entities: Vec<String>,
}

impl CacheTags {
    /// No tags.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a record.
    pub fn record(mut self, entity: impl Into<String>, id: impl Into<String>) -> Self {
        self.records.push((entity.into(), id.into()));
        self
    }

    /// Adds an entity's lists.
    pub fn entity(mut self, entity: impl Into<String>) -> Self {
        self.entities.push(entity.into());
        self
    }

    /// Adds the tokens of a `Cache-Tag` / `Surrogate-Key` style header: `entity:id` is a
    /// record, `entity` or `entity:*` an entity's lists; tokens are separated by commas or
    /// spaces.
    ///
    /// ```
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("cache-tag", "events:rec1, users:*".parse().unwrap());
    /// let tags = podium_cache_tower::CacheTags::new().with_header(&headers, &"cache-tag".parse().unwrap());
    /// assert_eq!(tags.records, vec![("events".to_string(), "rec1".to_string())]);
    /// assert_eq!(tags.entities, vec!["users".to_string()]);
    /// ```
    pub fn with_header(mut self, headers: &HeaderMap, name: &HeaderName) -> Self {
        for value in headers.get_all(name) {
            let Ok(text) = value.to_str() else {
                tracing::debug!(header = %name, "ignoring a tag header that is not text");
                continue;
            };
            for token in text
                .split(|c: char| c == ',' || c.is_ascii_whitespace())
                .filter(|t| !t.is_empty())
            {
                match token.split_once(':') {
                    Some((entity, "*")) | Some((entity, "")) => {
                        self.entities.push(entity.to_owned());
                    }
                    Some((entity, id)) => self.records.push((entity.to_owned(), id.to_owned())),
                    None => self.entities.push(token.to_owned()),
                }
            }
        }
        self
    }

    /// Merges `other` into these tags, dropping duplicates.
    pub fn merge(&mut self, other: CacheTags) {
        self.records.extend(other.records);
        self.entities.extend(other.entities);
        self.records.sort_unstable();
        self.records.dedup();
        self.entities.sort_unstable();
        self.entities.dedup();
    }

    /// Whether there are no tags.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.entities.is_empty()
    }
}

impl IntoResponseParts for CacheTags {
    type Error = Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        match res.extensions_mut().get_mut::<CacheTags>() {
            Some(existing) => existing.merge(self),
            None => {
                res.extensions_mut().insert(self);
            }
        }
        Ok(res)
    }
}

/// What one purge did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Response keys deleted (whether or not they still existed).
    pub responses: usize,
}

/// A purge could not be completed (the store failed); cached responses may outlive the change
/// until their TTL.
#[derive(Debug, thiserror::Error)]
#[error("purging cached responses failed: {0}")]
pub struct PurgeError(#[from] pub StoreError);

/// The keys the layer writes besides responses, all under the `{prefix}:http:` namespace.
#[derive(Clone, Debug)]
pub(crate) struct LayerKeys {
    pub keys: Keys,
    pub sequence: String,
}

impl LayerKeys {
    pub fn new(keys: Keys) -> Self {
        let sequence = keys.http("\0podium-tower\0purge-sequence");
        Self { keys, sequence }
    }

    /// "Record changed at purge sequence N".
    pub fn record_marker(&self, entity: &str, id: &str) -> String {
        self.keys
            .http(&format!("\0podium-tower\0changed\0{entity}\0{id}"))
    }

    /// "An entity's lists changed at purge sequence N".
    pub fn entity_marker(&self, entity: &str) -> String {
        self.keys
            .http(&format!("\0podium-tower\0changed-entity\0{entity}"))
    }

    /// The bounded set of the variants one path stores (see
    /// [`Policy::max_variants`](crate::policy::Policy)).
    pub fn variants(&self, group: &str) -> String {
        self.keys
            .http(&format!("\0podium-tower\0variants\0{group}"))
    }

    /// The lock one background refresh of `entry_key` holds.
    pub fn refresh_lock(&self, entry_key: &str) -> String {
        let hash = entry_key.rsplit(':').next().unwrap_or(entry_key);
        self.keys.lock(&format!("http-refresh.{hash}"))
    }
}

/// Parses a stored counter (absent or unreadable: 0).
pub(crate) fn counter(raw: Option<&[u8]>) -> u64 {
    raw.and_then(|r| std::str::from_utf8(r).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The layer's [`InvalidationListener`]: deletes the responses that depended on a changed
/// record. [`CacheLayerBuilder::build`](crate::CacheLayerBuilder::build) registers one with
/// the core cache; build one yourself for a process that changes records but serves no
/// cached routes (a webhook worker), or to purge by hand.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use std::sync::Arc;
/// # use podium_cache_core::{source::AirtableSource, store::MemoryStore, Cache};
/// # let source = AirtableSource::builder("key", "appAAAAAAAAAAAAAA").api_url("http://127.0.0.1:9").build()?;
/// # let cache = Cache::builder(Arc::new(MemoryStore::new(1_000)), Arc::new(source)).build();
/// use podium_cache_tower::ResponsePurger;
/// // A worker that applies webhook deliveries but serves no cached routes:
/// cache.add_listener(Arc::new(ResponsePurger::new(&cache)));
/// // A manual purge (e.g. from an admin endpoint):
/// ResponsePurger::new(&cache).purge_record("events", "recAAAAAAAAAAAAAA").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ResponsePurger {
    store: Arc<dyn Store>,
    keys: LayerKeys,
}

impl std::fmt::Debug for ResponsePurger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponsePurger")
            .field("store", &self.store.name())
            .field("prefix", &self.keys.keys.prefix())
            .finish()
    }
}

impl ResponsePurger {
    /// A purger over the store and key prefix of `cache`. It is not registered: pass it to
    /// `cache.add_listener(Arc::new(purger))` to hear the cache's changes.
    pub fn new(cache: &Cache) -> Self {
        Self {
            store: Arc::clone(cache.store()),
            keys: LayerKeys::new(cache.keys().clone()),
        }
    }

    pub(crate) fn layer_keys(&self) -> &LayerKeys {
        &self.keys
    }

    /// Purges the responses `change` affects: those tagged with the record, and every list
    /// response of its entity.
    pub async fn purge(&self, change: &Change) -> Result<PurgeReport, PurgeError> {
        let span = tracing::debug_span!(
            "http_cache.purge",
            entity = %change.entity,
            id = %change.id,
            kind = ?change.kind,
            responses = tracing::field::Empty,
        );
        let result = self.purge_inner(change).instrument(span.clone()).await;
        if let Ok(report) = &result {
            span.record("responses", report.responses);
        }
        result
    }

    async fn purge_inner(&self, change: &Change) -> Result<PurgeReport, PurgeError> {
        let keys = &self.keys.keys;
        // 1. Announce the change, so a response being produced right now that read the record
        //    is not kept (see `CacheService`'s store step).
        let sequence = self
            .store
            .increment(&self.keys.sequence, SEQUENCE_TTL)
            .await?;
        let mark = bytes::Bytes::from(sequence.to_string());
        self.store
            .set_many(&[
                (
                    self.keys.record_marker(&change.entity, &change.id),
                    mark.clone(),
                    MARKER_TTL,
                ),
                (self.keys.entity_marker(&change.entity), mark, MARKER_TTL),
            ])
            .await?;
        // 2. Delete the tagged responses and the tag sets.
        let record_tag = keys.tag(&change.entity, &change.id);
        let entity_tag = keys.entity_tag(&change.entity);
        let (record_members, entity_members) = futures::future::join(
            self.store.set_members(&record_tag),
            self.store.set_members(&entity_tag),
        )
        .await;
        let mut doomed = record_members?;
        doomed.extend(entity_members?);
        doomed.sort_unstable();
        doomed.dedup();
        let responses = doomed.len();
        doomed.push(record_tag);
        doomed.push(entity_tag);
        for chunk in doomed.chunks(DELETE_CHUNK) {
            self.store.delete(chunk).await?;
        }
        Ok(PurgeReport { responses })
    }

    /// Purges every response tagged with one record (and its entity's lists), as an upsert of
    /// it would.
    pub async fn purge_record(&self, entity: &str, id: &str) -> Result<PurgeReport, PurgeError> {
        self.purge(&Change {
            entity: entity.to_owned(),
            id: id.to_owned(),
            kind: podium_cache_core::cache::ChangeKind::Invalidated,
        })
        .await
    }
}

#[async_trait]
impl InvalidationListener for ResponsePurger {
    async fn on_change(&self, change: &Change) {
        if let Err(err) = self.purge(change).await {
            tracing::warn!(
                entity = %change.entity,
                id = %change.id,
                error = %err,
                "cached responses of a changed record could not be purged; they live until their TTL"
            );
        }
    }
}
