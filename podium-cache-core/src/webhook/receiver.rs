//! [`Receiver`]: a signed automation delivery from raw headers and body to the record stored,
//! with every refusal typed by its [`ReceiveErrorKind`]. HTTP frameworks map the kind to their
//! response; the axum router in `podium-cache-tower` does (core knows no HTTP).
//!
//! **A delivery is a signal, not content** (by default). Anyone who holds the webhook secret
//! can sign a delivery, and the seed kept it in a table every base reader can read; so the
//! receiver takes a delivery as "record R of table T changed", re-reads R from Airtable
//! ([`Cache::refresh`]: coalesced with reads of R and batched with misses and other
//! deliveries) and stores Airtable's answer before it acknowledges. A read right after costs
//! no Airtable call, and a forged delivery costs at most a share of one batched read: never a
//! forged value served. With [`Receiver::trust_delivery_fields`] (setting
//! `trust_delivery_fields = true`) the delivered fields are stored as they came, ordered by
//! the delivery's timestamp, as the seed did: only for bases whose secret is safe.
//!
//! The pipeline, in order, and nothing is applied unless every step passes:
//! 1. size limit ([`ReceiveErrorKind::TooLarge`]), 2. signature and timestamp
//!    (`Unauthorized`), 3. JSON, timestamp and record id (`Malformed`), 4. table
//!    (`UnknownTable`), 5. trusted mode only: the record fits the model (`Unprocessable`),
//! 6. replay guard in the store (a replayed delivery id is a [`ReceiptStatus::Duplicate`]
//!    no-op), 7. the change:
//!    - signal mode: Airtable's record is re-read and stored. [`ReceiptStatus::Applied`]: this
//!      delivery's re-read stored Airtable's record; [`ReceiptStatus::Gone`]: Airtable no
//!      longer has it, so it was removed with a tombstone; [`ReceiptStatus::Stale`]: a newer
//!      change of the record (another delivery's re-read, a write) superseded this re-read
//!      while it ran, and that change decides what is served. In each case no read after the
//!      answer returns a copy older than Airtable's record when the delivery arrived; the
//!      delivery's own timestamp orders nothing (a forged one could otherwise block real
//!      ones). Airtable failing or refusing (403) is `SourceFailed`, never a removal.
//!    - trusted mode: the delivered record is upserted, ordered by the delivery's timestamp
//!      (`applied`, or `stale` when the cache already had a change at least as new).
//!
//!    A store failure is `StoreFailed`; after a failure of step 7 the delivery id is released
//!    so the sender's retry applies it.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq;
use tracing::Instrument;

pub use super::receive_error::{ReceiveError, ReceiveErrorKind};
use super::registry::{ModelOps, Models, UpsertJsonError};
use super::signature::{verify, SignatureHeaders, VerifyError, WebhookSecret};
use crate::cache::{Cache, Refreshed, UpsertOutcome};
use crate::config::Secret;
use crate::store::Locks;

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
    /// The record: `id` plus fields by their Airtable names. Not trusted, and may be absent,
    /// unless the receiver trusts delivery fields.
    #[serde(default)]
    pub record: serde_json::Map<String, Value>,
    /// When the change was seen, ISO-8601 UTC with milliseconds.
    pub timestamp: String,
}

/// What an accepted delivery did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptStatus {
    /// Stored: Airtable's record, re-read for this delivery (signal mode), or the delivered
    /// record, newer than what the cache had (trusted mode).
    Applied,
    /// Not stored: a newer change superseded this one (signal mode: another re-read or write
    /// of the record ran meanwhile; trusted mode: the cache already had a change at least as
    /// new).
    Stale,
    /// Airtable no longer has the record: it was removed, with a tombstone (signal mode).
    Gone,
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
    trust_delivery_fields: bool,
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
            trust_delivery_fields: false,
        }
    }

    /// Store the fields a delivery carries as they came (`true`), instead of re-reading the
    /// record from Airtable (`false`, the default: see the [module documentation](self)).
    /// Only for a base whose webhook secret no untrusted reader can see.
    ///
    /// ```
    /// use podium_cache_core::webhook::{Models, Receiver, WebhookSecret};
    /// # fn demo(cache: podium_cache_core::Cache) {
    /// let receiver = Receiver::new(cache, Models::new(), vec![WebhookSecret::generate()]);
    /// assert!(!receiver.trusts_delivery_fields());
    /// assert!(receiver.trust_delivery_fields(true).trusts_delivery_fields());
    /// # }
    /// ```
    pub fn trust_delivery_fields(mut self, trust: bool) -> Self {
        self.trust_delivery_fields = trust;
        self
    }

    /// Whether delivered fields are stored as they came.
    pub fn trusts_delivery_fields(&self) -> bool {
        self.trust_delivery_fields
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
            tracing::warn!(kind = ?err.kind(), error = %err, "delivery refused");
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
        if self.trust_delivery_fields {
            model
                .check(&record)
                .map_err(|error| ReceiveError::DoesNotFit {
                    table: delivery.table.clone(),
                    error,
                })?;
        } else if !self.cache.source().is_valid_id(&delivery.record_id) {
            return Err(ReceiveError::Malformed(format!(
                "record_id {:?} is not a record id of the source",
                delivery.record_id
            )));
        }
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
        let applied = if self.trust_delivery_fields {
            self.store_delivered(model.as_ref(), &delivery.table, record, timestamp_ms)
                .await
        } else {
            self.reread(model.as_ref(), &delivery.table, &delivery.record_id)
                .await
        };
        let status = match applied {
            Ok(status) => status,
            Err(err) => {
                if let Some(key) = claim {
                    // Let the sender's retry apply it.
                    let _ = self.cache.store().delete(&[key]).await;
                }
                return Err(err);
            }
        };
        tracing::info!(
            table = delivery.table,
            record = delivery.record_id,
            ?status,
            trusted = self.trust_delivery_fields,
            "delivery received"
        );
        Ok(Receipt {
            status,
            table: delivery.table,
            record_id: delivery.record_id,
            duplicate: false,
        })
    }

    /// Signal mode: re-reads the record from Airtable and stores Airtable's answer.
    async fn reread(
        &self,
        model: &dyn ModelOps,
        table: &str,
        id: &str,
    ) -> Result<ReceiptStatus, ReceiveError> {
        match model.refresh(&self.cache, id).await {
            Ok(Refreshed::Stored) => Ok(ReceiptStatus::Applied),
            Ok(Refreshed::Gone) => Ok(ReceiptStatus::Gone),
            Ok(_) => Ok(ReceiptStatus::Stale),
            Err(err) => Err(ReceiveError::from_refresh(table, id, err)),
        }
    }

    /// Trusted mode: upserts the delivered record, ordered by the delivery's timestamp.
    async fn store_delivered(
        &self,
        model: &dyn ModelOps,
        table: &str,
        record: Value,
        timestamp_ms: i64,
    ) -> Result<ReceiptStatus, ReceiveError> {
        match model.upsert_json(&self.cache, record, timestamp_ms).await {
            Ok(UpsertOutcome::Applied) => Ok(ReceiptStatus::Applied),
            Ok(UpsertOutcome::Stale) => Ok(ReceiptStatus::Stale),
            Err(UpsertJsonError::Fit(error)) => Err(ReceiveError::DoesNotFit {
                table: table.to_owned(),
                error,
            }),
            Err(UpsertJsonError::Cache(err)) => Err(ReceiveError::from(err)),
        }
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
