//! What a cache operation can fail with: [`CacheError`].

use std::sync::Arc;
use std::time::Duration;

use crate::source::SourceError;
use crate::store::StoreError;

/// What a cache operation can fail with. Reads fail only when the source fails (a store that
/// fails is fallen through); writes fail when the store or the source does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The source failed (after its retries).
    #[error("source: {0}")]
    Source(#[from] Arc<SourceError>),
    /// The store failed during a write.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A record did not fit its model.
    #[error("record {id} of {entity} does not fit the model: {message}")]
    Decode {
        /// Entity name.
        entity: &'static str,
        /// Record id.
        id: String,
        /// serde's message, with the field path.
        message: String,
    },
    /// `get_by_index` named a field that has no index.
    #[error("{entity} has no index on `{field}` (indexed: {known})")]
    UnknownIndex {
        /// Entity name.
        entity: &'static str,
        /// The field asked for.
        field: String,
        /// The indexed fields.
        known: String,
    },
    /// The current client (see [`Scope::with_client`](crate::scope::Scope::with_client))
    /// already has `max_client_misses` misses outstanding; nothing was queued. Answer HTTP 429
    /// with `Retry-After`; other clients are not affected.
    #[error("too many outstanding misses for this client; retry after {retry_after:?}")]
    TooManyMisses {
        /// How long the client should wait before asking again.
        retry_after: Duration,
    },
}

impl From<SourceError> for CacheError {
    fn from(err: SourceError) -> Self {
        Self::Source(Arc::new(err))
    }
}
