//! The tags that tie a cached response to the records it read.
//!
//! Every stored response is registered with the core cache's
//! [`Dependents`](podium_cache_core::cache::Dependents) under each record it read (and each
//! entity whose list it read, or in which an index lookup found nothing). Every change any
//! [`Cache`](podium_cache_core::Cache) applies to a record (a webhook in this instance or
//! another, a sweep in a separate process, a delete from another service) purges those
//! responses as part of the change, in every instance that shares the store: nothing has to be
//! registered by hand. To purge by hand, call `cache.dependents().purge(entity, id)`.
//!
//! Handlers can tag a response with records the engine did not see, with a [`CacheTags`]
//! response extension or with a `Cache-Tag` header of `entity:id` tokens (`entity` or
//! `entity:*` for a whole entity's lists), which the layer strips before the client sees it.

#[cfg(feature = "axum")]
use std::convert::Infallible;

#[cfg(feature = "axum")]
use axum::response::{IntoResponseParts, ResponseParts};
use http::header::HeaderName;
use http::HeaderMap;
use podium_cache_core::key::Keys;

/// Records and entities a response depends on, set by a handler as a response extension (in
/// addition to what the engine saw it read).
///
/// With the feature `axum`, a handler returns them as a response part:
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{routing::get, Router};
/// use podium_cache_tower::CacheTags;
///
/// async fn banner() -> (CacheTags, &'static str) {
///     (CacheTags::new().record("settings", "recBANNER").entity("events"), "hello")
/// }
/// let app: Router = Router::new().route("/banner", get(banner));
/// # }
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

/// With the feature `axum`, a handler returns the tags as part of its answer.
#[cfg(feature = "axum")]
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

/// The keys the layer writes besides responses, all under the `{prefix}:http:` namespace.
#[derive(Clone, Debug)]
pub(crate) struct LayerKeys {
    pub keys: Keys,
}

impl LayerKeys {
    pub fn new(keys: Keys) -> Self {
        Self { keys }
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
