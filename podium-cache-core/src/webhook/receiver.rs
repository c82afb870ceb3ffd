//! [`Receiver`]: a signed automation delivery from raw headers and body to an applied upsert,
//! with every refusal typed. HTTP frameworks map [`ReceiveError::status`] to their response;
//! the axum router in `podium-cache-tower` does.
//!
//! The pipeline, in order, and nothing is applied unless every step passes:
//! 1. size limit (413), 2. signature and timestamp (401), 3. JSON (400), 4. table (400),
//! 5. record fits the model (422), 6. replay guard in the store (duplicate → 200 no-op),
//! 7. upsert ordered by the delivery's timestamp (`applied` or `stale`); a store failure → 503,
//!    and the delivery id is released so the sender's retry applies it.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq;
use tracing::Instrument;

use super::registry::{FitError, Models, UpsertJsonError};
use super::signature::{verify, SignatureHeaders, VerifyError, WebhookSecret};
use crate::cache::{Cache, CacheError, UpsertOutcome};
use crate::config::Secret;
use crate::store::StoreError;

/// Default largest body accepted (1 MiB).
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Default timestamp tolerance (±5 minutes).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// The legacy plain-secret header.
pub const LEGACY_SECRET_HEADER: &str = "x-airtable-secret";

/// The body an automation script sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Airtable table name.
    pub table: String,
    /// The record's id.
    pub record_id: String,
    /// The record: `id` plus fields by their Airtable names.
    pub record: serde_json::Map<String, Value>,
    /// When the change was seen, ISO-8601 UTC with milliseconds.
    pub timestamp: String,
}

/// What an accepted delivery did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptStatus {
    /// Stored: newer than what the cache had.
    Applied,
    /// Not stored: the cache already had a change at least as new.
    Stale,
    /// This delivery id was already received: nothing done again.
    Duplicate,
}

/// The answer to an accepted delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// What happened.
    pub status: ReceiptStatus,
    /// The delivery's table.
    pub table: String,
    /// The delivery's record id.
    pub record_id: String,
    /// True for a replayed delivery id.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// Why a delivery was refused; nothing was applied.
#[derive(Debug, thiserror::Error)]
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
    /// The record does not fit the model.
    #[error("record does not fit the {table} model: {error}")]
    DoesNotFit {
        /// The table.
        table: String,
        /// Field path and message.
        error: FitError,
    },
    /// The store is unavailable: the sender should retry.
    #[error("store unavailable, retry later: {0}")]
    Unavailable(String),
}

impl ReceiveError {
    /// The HTTP status this refusal answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge { .. } => 413,
            Self::Unauthorized(_) => 401,
            Self::Malformed(_) | Self::UnknownTable { .. } => 400,
            Self::DoesNotFit { .. } => 422,
            Self::Unavailable(_) => 503,
        }
    }

    /// A short machine-readable code (`"bad_signature"`, `"unknown_table"`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "body_too_large",
            Self::Unauthorized(_) => "unauthorized",
            Self::Malformed(_) => "malformed_json",
            Self::UnknownTable { .. } => "unknown_table",
            Self::DoesNotFit { .. } => "record_does_not_fit_model",
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
            Self::TooLarge { size, limit } => serde_json::json!({ "size": size, "limit": limit }),
            other => Value::String(other.to_string()),
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

/// Verifies, deduplicates and applies automation deliveries.
///
/// ```
/// use podium_cache_core::webhook::{Models, Receiver, WebhookSecret};
/// # fn demo(cache: podium_cache_core::Cache) {
/// let secret = WebhookSecret::generate();
/// let receiver = Receiver::new(cache, Models::new(), vec![secret]);
/// assert_eq!(receiver.max_body(), 1024 * 1024);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Receiver {
    cache: Cache,
    models: Models,
    secrets: Vec<WebhookSecret>,
    legacy_secret: Option<Secret>,
    tolerance: Duration,
    max_body: usize,
}

impl Receiver {
    /// A receiver verifying with `secrets` (several for rotation).
    pub fn new(cache: Cache, models: Models, secrets: Vec<WebhookSecret>) -> Self {
        Self {
            cache,
            models,
            secrets,
            legacy_secret: None,
            tolerance: DEFAULT_TOLERANCE,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// Also accept the legacy `X-Airtable-Secret: <secret>` header (only when configured:
    /// `allow_legacy_secret = true`). It carries no timestamp or id, so it has no replay guard.
    pub fn allow_legacy_secret(mut self, secret: Secret) -> Self {
        self.legacy_secret = Some(secret);
        self
    }

    /// Timestamp tolerance and replay window (default ±5 minutes).
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Largest body accepted (default 1 MiB).
    pub fn with_max_body(mut self, limit: usize) -> Self {
        self.max_body = limit;
        self
    }

    /// The body limit.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// The registered models.
    pub fn models(&self) -> &Models {
        &self.models
    }

    /// The cache deliveries are applied to.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Runs the whole pipeline on one delivery. `header` looks a header up by its lower-case
    /// name. `now_secs` is the verifier's clock (unix seconds).
    pub async fn receive(
        &self,
        header: impl Fn(&str) -> Option<String>,
        body: &Bytes,
        now_secs: i64,
    ) -> Result<Receipt, ReceiveError> {
        let span = tracing::info_span!("webhook.receive", bytes = body.len());
        let result = self.pipeline(header, body, now_secs).instrument(span).await;
        if let Err(err) = &result {
            tracing::warn!(status = err.status(), error = %err, "delivery refused");
        }
        result
    }

    async fn pipeline(
        &self,
        header: impl Fn(&str) -> Option<String>,
        body: &Bytes,
        now_secs: i64,
    ) -> Result<Receipt, ReceiveError> {
        if body.len() > self.max_body {
            return Err(ReceiveError::TooLarge {
                size: body.len(),
                limit: self.max_body,
            });
        }
        let delivery_id = self.authenticate(&header, body, now_secs)?;
        let delivery: Delivery =
            serde_json::from_slice(body).map_err(|e| ReceiveError::Malformed(e.to_string()))?;
        let timestamp_ms = chrono::DateTime::parse_from_rfc3339(&delivery.timestamp)
            .map_err(|e| {
                ReceiveError::Malformed(format!(
                    "timestamp {:?} is not ISO-8601 (e.g. 2026-11-25T19:04:05.123Z): {e}",
                    delivery.timestamp
                ))
            })?
            .timestamp_millis();
        let Some(model) = self.models.by_table(&delivery.table) else {
            return Err(ReceiveError::UnknownTable {
                table: delivery.table,
                known: self.models.tables(),
            });
        };
        let id_key = model.meta().id_key;
        let mut record = delivery.record;
        match record.get(id_key) {
            None => {
                record.insert(id_key.to_owned(), Value::String(delivery.record_id.clone()));
            }
            Some(Value::String(id)) if *id == delivery.record_id => {}
            Some(other) => {
                return Err(ReceiveError::Malformed(format!(
                    "record.{id_key} {other} differs from record_id {:?}",
                    delivery.record_id
                )))
            }
        }
        let record = Value::Object(record);
        model
            .check(&record)
            .map_err(|error| ReceiveError::DoesNotFit {
                table: delivery.table.clone(),
                error,
            })?;
        // Replay guard: claim the delivery id for the tolerance window, in the shared store.
        let claim = match &delivery_id {
            Some(id) => {
                let key = self.cache.keys().delivery_seen(id);
                let fresh = self
                    .cache
                    .store()
                    .set_if_absent(&key, Bytes::from_static(b"1"), self.tolerance * 2)
                    .await?;
                if !fresh {
                    tracing::info!(
                        delivery = id,
                        table = delivery.table,
                        record = delivery.record_id,
                        "replayed delivery ignored"
                    );
                    return Ok(Receipt {
                        status: ReceiptStatus::Duplicate,
                        table: delivery.table,
                        record_id: delivery.record_id,
                        duplicate: true,
                    });
                }
                Some(key)
            }
            None => None,
        };
        let outcome = match model.upsert_json(&self.cache, record, timestamp_ms).await {
            Ok(outcome) => outcome,
            Err(err) => {
                if let Some(key) = claim {
                    // Let the sender's retry apply it.
                    let _ = self.cache.store().delete(&[key]).await;
                }
                return Err(match err {
                    UpsertJsonError::Fit(error) => ReceiveError::DoesNotFit {
                        table: delivery.table,
                        error,
                    },
                    UpsertJsonError::Cache(err) => ReceiveError::from(err),
                });
            }
        };
        let status = match outcome {
            UpsertOutcome::Applied => ReceiptStatus::Applied,
            UpsertOutcome::Stale => ReceiptStatus::Stale,
        };
        tracing::info!(
            table = delivery.table,
            record = delivery.record_id,
            ?status,
            "delivery received"
        );
        Ok(Receipt {
            status,
            table: delivery.table,
            record_id: delivery.record_id,
            duplicate: false,
        })
    }

    /// Checks the credentials; returns the delivery id (for the replay guard) when signed.
    fn authenticate(
        &self,
        header: &impl Fn(&str) -> Option<String>,
        body: &[u8],
        now_secs: i64,
    ) -> Result<Option<String>, ReceiveError> {
        let headers = SignatureHeaders::from_lookup(header);
        let signed =
            headers.id.is_some() || headers.signature.is_some() || headers.timestamp.is_some();
        if !signed {
            if let (Some(expected), Some(given)) =
                (&self.legacy_secret, header(LEGACY_SECRET_HEADER))
            {
                let same: bool = expected
                    .expose()
                    .as_bytes()
                    .ct_eq(given.trim().as_bytes())
                    .into();
                return if same {
                    Ok(None)
                } else {
                    Err(ReceiveError::Unauthorized(
                        "the X-Airtable-Secret header does not match the configured secret".into(),
                    ))
                };
            }
            let hint = if self.legacy_secret.is_none() && header(LEGACY_SECRET_HEADER).is_some() {
                " (the legacy X-Airtable-Secret header is disabled: set allow_legacy_secret = true to accept it)"
            } else {
                ""
            };
            return Err(ReceiveError::Unauthorized(format!(
                "missing signature: a delivery must carry webhook-id, webhook-timestamp and webhook-signature{hint}"
            )));
        }
        verify(&self.secrets, &headers, body, now_secs, self.tolerance)
            .map_err(|e: VerifyError| ReceiveError::Unauthorized(e.to_string()))?;
        Ok(headers.id)
    }
}
