//! Why a notification was refused or a round failed, as kinds: what a kind means over HTTP is
//! the tower crate's business (`podium_cache_tower::webhook`), not core's.

use serde_json::{json, Value};

use crate::cache::CacheError;
use crate::source::SourceError;
use crate::store::StoreError;

/// Why a notification was refused or a round failed. Refusals (too large, unauthorized,
/// malformed) recorded nothing; failures after paging started keep every page applied so far
/// and its saved cursor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NativeError {
    /// The body is over the limit.
    #[error("body of {size} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// Bytes received (at least).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No MAC header, or it does not verify with any known webhook's secret.
    #[error("{0}")]
    Unauthorized(String),
    /// The body is not the notification JSON, or names another base.
    #[error("malformed notification: {0}")]
    Malformed(String),
    /// Airtable failed (after the client's retries).
    #[error("airtable: {0}")]
    Airtable(#[from] SourceError),
    /// The store failed; nothing was recorded, or the round stopped after the last saved page.
    #[error("store unavailable, retry later: {0}")]
    Store(String),
    /// Another process held the webhook's lock for longer than the wait, or took it over.
    #[error("webhook {webhook} is being paged by another process; retry later")]
    Busy {
        /// The webhook id.
        webhook: String,
    },
}

/// What kind of failure a [`NativeError`] is; the HTTP layer maps kinds to statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NativeErrorKind {
    /// The body is over the limit (nothing read past it).
    TooLarge,
    /// The MAC is missing or wrong.
    Unauthorized,
    /// The body is not a notification for this base.
    Malformed,
    /// Airtable refused the call (403): a missing scope or base access, which will not pass by
    /// itself.
    AirtableForbidden,
    /// Airtable failed or was unreachable; retrying later may succeed.
    AirtableUnavailable,
    /// The store failed; retrying later may succeed.
    StoreUnavailable,
    /// Another process is paging this webhook.
    Busy,
}

impl NativeErrorKind {
    /// A short machine-readable code (`unauthorized`, `store_unavailable`, …).
    pub fn code(self) -> &'static str {
        match self {
            Self::TooLarge => "body_too_large",
            Self::Unauthorized => "unauthorized",
            Self::Malformed => "malformed_notification",
            Self::AirtableForbidden => "airtable_forbidden",
            Self::AirtableUnavailable => "airtable_unavailable",
            Self::StoreUnavailable => "store_unavailable",
            Self::Busy => "busy",
        }
    }

    /// Whether the sender may succeed by sending the same notification again later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::AirtableUnavailable | Self::StoreUnavailable | Self::Busy
        )
    }
}

impl NativeError {
    /// The kind of failure.
    ///
    /// ```
    /// use podium_cache_core::webhook::native::{NativeError, NativeErrorKind};
    /// let err = NativeError::Unauthorized("bad MAC".into());
    /// assert_eq!(err.kind(), NativeErrorKind::Unauthorized);
    /// assert_eq!(err.code(), "unauthorized");
    /// ```
    pub fn kind(&self) -> NativeErrorKind {
        match self {
            Self::TooLarge { .. } => NativeErrorKind::TooLarge,
            Self::Unauthorized(_) => NativeErrorKind::Unauthorized,
            Self::Malformed(_) => NativeErrorKind::Malformed,
            // A 403 (a missing scope such as webhook:manage or schema.bases:read, or a base the
            // token cannot reach) will not pass by itself, unlike an outage.
            Self::Airtable(SourceError::Forbidden { .. }) => NativeErrorKind::AirtableForbidden,
            Self::Airtable(_) => NativeErrorKind::AirtableUnavailable,
            Self::Store(_) => NativeErrorKind::StoreUnavailable,
            Self::Busy { .. } => NativeErrorKind::Busy,
        }
    }

    /// The kind's machine-readable code.
    pub fn code(&self) -> &'static str {
        self.kind().code()
    }

    /// Structured detail for an error body.
    pub fn detail(&self) -> Value {
        match self {
            Self::TooLarge { size, limit } => json!({ "size": size, "limit": limit }),
            Self::Busy { webhook } => json!({ "webhook": webhook }),
            other => Value::String(other.to_string()),
        }
    }
}

impl From<StoreError> for NativeError {
    fn from(err: StoreError) -> Self {
        Self::Store(err.to_string())
    }
}

impl From<CacheError> for NativeError {
    fn from(err: CacheError) -> Self {
        match err {
            CacheError::Source(source) => Self::Store(format!("source: {source}")),
            other => Self::Store(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_the_kind_of_their_cause() {
        let large = NativeError::TooLarge { size: 2, limit: 1 };
        assert_eq!(large.kind(), NativeErrorKind::TooLarge);
        assert_eq!(
            NativeError::Malformed("x".into()).kind(),
            NativeErrorKind::Malformed
        );
        let outage = NativeError::from(SourceError::Transient("x".into()));
        assert_eq!(outage.kind(), NativeErrorKind::AirtableUnavailable);
        assert!(outage.kind().is_retryable());
        let forbidden = NativeError::from(SourceError::Forbidden {
            kind: "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND".into(),
            message: "x".into(),
            scope: Some("webhook:manage"),
        });
        assert_eq!(
            (forbidden.kind(), forbidden.code()),
            (NativeErrorKind::AirtableForbidden, "airtable_forbidden")
        );
        assert!(!forbidden.kind().is_retryable());
        assert!(forbidden.to_string().contains("webhook:manage"));
        assert_eq!(
            NativeError::from(StoreError::Unavailable("x".into())).kind(),
            NativeErrorKind::StoreUnavailable
        );
    }
}
