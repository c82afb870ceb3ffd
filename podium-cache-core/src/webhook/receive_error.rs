//! [`ReceiveError`]: why a delivery was refused, as a [`ReceiveErrorKind`] that an HTTP
//! framework maps to its status (the axum router in `podium-cache-tower` does; core knows no
//! HTTP), plus the machine-readable `code` and structured `detail` of the error body.

use std::sync::Arc;

use serde_json::Value;

use super::registry::FitError;
use crate::cache::CacheError;
use crate::source::SourceError;
use crate::store::StoreError;

/// What kind of refusal a [`ReceiveError`] is: what the sender should do about it.
///
/// ```
/// use podium_cache_core::webhook::{ReceiveError, ReceiveErrorKind};
/// let err = ReceiveError::Malformed("not JSON".into());
/// assert_eq!(err.kind(), ReceiveErrorKind::Malformed);
/// assert!(!err.kind().is_retryable());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReceiveErrorKind {
    /// No credentials, or the signature or timestamp did not verify.
    Unauthorized,
    /// The body is over the size limit.
    TooLarge,
    /// The body is not a delivery (JSON, fields, timestamp, record id).
    Malformed,
    /// The table has no registered model.
    UnknownTable,
    /// The record (delivered, or read from Airtable) does not fit the model.
    Unprocessable,
    /// Airtable failed or refused (403) the re-read of the record; nothing was stored.
    SourceFailed,
    /// The store failed; nothing was acknowledged.
    StoreFailed,
}

impl ReceiveErrorKind {
    /// Whether the sender should retry the same delivery later (the source or the store
    /// failed); every other kind is final for that delivery.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::SourceFailed | Self::StoreFailed)
    }
}

/// Why a delivery was refused; nothing was applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The body is over the limit.
    #[error("body of {size} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// Bytes received (at least).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No credentials, or the signature or timestamp did not verify.
    #[error("{0}")]
    Unauthorized(String),
    /// The body is not the expected JSON.
    #[error("malformed delivery: {0}")]
    Malformed(String),
    /// The table has no registered model.
    #[error("unknown table {table:?}; known tables: {}", known.join(", "))]
    UnknownTable {
        /// The table named.
        table: String,
        /// The registered tables.
        known: Vec<&'static str>,
    },
    /// The delivered record does not fit the model (trusted mode).
    #[error("record does not fit the {table} model: {error}")]
    DoesNotFit {
        /// The table.
        table: String,
        /// Field path and message.
        error: FitError,
    },
    /// The record Airtable has does not fit the model (signal mode): the model and the table
    /// disagree.
    #[error("Airtable's record {id} of {table} does not fit the model: {message}")]
    SourceRecordDoesNotFit {
        /// The table.
        table: String,
        /// The record id.
        id: String,
        /// serde's message.
        message: String,
    },
    /// Airtable failed or refused the re-read (signal mode): the sender should retry.
    #[error("re-reading the record from Airtable failed, retry later: {0}")]
    SourceFailed(Arc<SourceError>),
    /// The store is unavailable: the sender should retry.
    #[error("store unavailable, retry later: {0}")]
    Unavailable(String),
}

impl ReceiveError {
    /// What kind of refusal this is (an HTTP layer maps it to a status).
    pub fn kind(&self) -> ReceiveErrorKind {
        match self {
            Self::TooLarge { .. } => ReceiveErrorKind::TooLarge,
            Self::Unauthorized(_) => ReceiveErrorKind::Unauthorized,
            Self::Malformed(_) => ReceiveErrorKind::Malformed,
            Self::UnknownTable { .. } => ReceiveErrorKind::UnknownTable,
            Self::DoesNotFit { .. } | Self::SourceRecordDoesNotFit { .. } => {
                ReceiveErrorKind::Unprocessable
            }
            Self::SourceFailed(_) => ReceiveErrorKind::SourceFailed,
            Self::Unavailable(_) => ReceiveErrorKind::StoreFailed,
        }
    }

    /// A short machine-readable code (`"unauthorized"`, `"unknown_table"`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "body_too_large",
            Self::Unauthorized(_) => "unauthorized",
            Self::Malformed(_) => "malformed_json",
            Self::UnknownTable { .. } => "unknown_table",
            Self::DoesNotFit { .. } => "record_does_not_fit_model",
            Self::SourceRecordDoesNotFit { .. } => "airtable_record_does_not_fit_model",
            Self::SourceFailed(err) if matches!(**err, SourceError::Forbidden { .. }) => {
                "airtable_forbidden"
            }
            Self::SourceFailed(_) => "airtable_unavailable",
            Self::Unavailable(_) => "store_unavailable",
        }
    }

    /// Structured detail for the error body.
    pub fn detail(&self) -> Value {
        match self {
            Self::UnknownTable { table, known } => {
                serde_json::json!({ "table": table, "known_tables": known })
            }
            Self::DoesNotFit { table, error } => {
                serde_json::json!({ "table": table, "path": error.path, "message": error.message })
            }
            Self::SourceRecordDoesNotFit { table, id, message } => {
                serde_json::json!({ "table": table, "record_id": id, "message": message })
            }
            Self::TooLarge { size, limit } => serde_json::json!({ "size": size, "limit": limit }),
            other => Value::String(other.to_string()),
        }
    }

    /// The refusal of a refresh (signal mode) that failed in the cache.
    pub(crate) fn from_refresh(table: &str, id: &str, err: CacheError) -> Self {
        match err {
            CacheError::Source(err) => Self::SourceFailed(err),
            CacheError::Decode { message, .. } => Self::SourceRecordDoesNotFit {
                table: table.to_owned(),
                id: id.to_owned(),
                message,
            },
            other => Self::from(other),
        }
    }
}

impl From<StoreError> for ReceiveError {
    fn from(err: StoreError) -> Self {
        Self::Unavailable(err.to_string())
    }
}

impl From<CacheError> for ReceiveError {
    fn from(err: CacheError) -> Self {
        Self::Unavailable(err.to_string())
    }
}
