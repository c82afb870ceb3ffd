//! One webhook: its specification, payloads and ping state, the JSON shapes Airtable answers
//! about it, and the field ids its payloads key cells by.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Notify};

use crate::airtable::record::{Change, ChangeKind};
use crate::airtable::tokens::{RECORDS_READ, SCHEMA_READ};

/// How long a webhook lives after its creation, refresh or last payload listing.
const LIFETIME_DAYS: i64 = 7;

/// Counters of webhook and schema API calls that passed authentication and the rate limit
/// gate (each is also counted in [`CallStats::total`](super::CallStats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WebhookCallStats {
    /// `POST …/webhooks`.
    pub create: u64,
    /// `GET …/webhooks`.
    pub list: u64,
    /// `POST …/webhooks/{id}/refresh`.
    pub refresh: u64,
    /// `DELETE …/webhooks/{id}`.
    pub delete: u64,
    /// `GET …/webhooks/{id}/payloads` (each page is one call).
    pub payloads: u64,
    /// `POST …/webhooks/{id}/enableNotifications`.
    pub enable_notifications: u64,
    /// `GET /v0/meta/bases/{baseId}/tables`.
    pub schema: u64,
    /// The most `payloads` requests of one webhook that were in progress at once (latency
    /// included): 1 when every reader pages one request after the other.
    pub max_concurrent_payload_requests: u64,
}

/// The outcome of one ping, as `lastNotificationResult` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotificationResult {
    /// The receiver answered 2xx.
    pub success: bool,
    /// When the ping finished (`2026-11-25T19:04:05.123Z`).
    pub completion_timestamp: String,
    /// How long it took.
    pub duration_ms: f64,
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// How many times this notification was retried before this attempt (0 = first try).
    pub retry_number: u32,
    /// Whether a failed attempt will be tried again.
    pub will_be_retried: bool,
}

impl NotificationResult {
    pub(super) fn to_json(&self) -> Value {
        let mut value = json!({
            "success": self.success,
            "completionTimestamp": self.completion_timestamp,
            "durationMs": self.duration_ms,
            "retryNumber": self.retry_number,
        });
        if let Some(error) = &self.error {
            value["error"] = json!({ "message": error });
            value["willBeRetried"] = json!(self.will_be_retried);
        }
        value
    }
}

/// A webhook as the local server holds it (the test-side view of `GET …/webhooks`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookInfo {
    /// `ach…`.
    pub id: String,
    /// The base it watches.
    pub base: String,
    /// Where pings go (none: payloads only).
    pub notification_url: Option<String>,
    /// The number the next payload will get.
    pub cursor_for_next_payload: u64,
    /// Enabled and not expired.
    pub is_hook_enabled: bool,
    /// Whether pings are sent.
    pub are_notifications_enabled: bool,
    /// When it expires unless refreshed.
    pub expiration_time: String,
    /// The `macSecretBase64` it signs pings with.
    pub mac_secret_base64: String,
    /// Payloads kept (not yet dropped by the capacity).
    pub payloads_kept: usize,
    /// Pings finished (successful or not).
    pub pings: u64,
    /// The latest ping's outcome.
    pub last_notification_result: Option<NotificationResult>,
}

/// What the notifier has done, watched by [`RunningAirtable::wait_for_webhook_ping`].
#[derive(Debug, Clone, Default)]
pub(super) struct PingStatus {
    /// The newest payload number a ping was asked for.
    pub(super) requested: u64,
    /// The newest payload number a finished ping was sent for.
    pub(super) delivered: u64,
    /// Pings finished.
    pub(super) pings: u64,
    /// When the latest successful ping finished.
    pub(super) last_success: Option<String>,
    /// The latest ping's outcome.
    pub(super) last: Option<NotificationResult>,
}

/// Shared by a webhook and its notifier task.
#[derive(Debug)]
pub(super) struct PingState {
    pub(super) wake: Notify,
    pub(super) closed: AtomicBool,
    pub(super) notifications_enabled: AtomicBool,
    pub(super) status: watch::Sender<PingStatus>,
}

impl PingState {
    pub(super) fn new() -> Arc<PingState> {
        let (status, _) = watch::channel(PingStatus::default());
        Arc::new(PingState {
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            notifications_enabled: AtomicBool::new(true),
            status,
        })
    }

    /// Asks for a ping covering payloads up to `number`.
    pub(super) fn request(&self, number: u64) {
        self.status
            .send_modify(|s| s.requested = s.requested.max(number));
        self.wake.notify_one();
    }

    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

#[derive(Debug)]
pub(super) struct Webhook {
    pub(super) id: String,
    pub(super) base: String,
    pub(super) notification_url: Option<String>,
    pub(super) mac_secret: Vec<u8>,
    pub(super) specification: Value,
    /// `recordChangeScope`: a table id (or name) the webhook is limited to.
    pub(super) scope: Option<String>,
    pub(super) table_data: bool,
    /// The specification names `tableFields` or `tableMetadata`.
    pub(super) schema_types: bool,
    pub(super) include_previous: bool,
    pub(super) enabled: bool,
    pub(super) expiration: DateTime<Utc>,
    pub(super) next_payload: u64,
    /// Payload number, when it was recorded (webhook clock), the change.
    pub(super) payloads: VecDeque<(u64, DateTime<Utc>, Change)>,
    pub(super) ping: Arc<PingState>,
    /// `payloads` requests in progress, and the most seen at once.
    pub(super) readers: u64,
}

impl Webhook {
    /// The scopes creating this webhook or listing its payloads needs besides
    /// `webhook:manage`: "data.records:read is required for tableData, and schema.bases:read is
    /// required for tableFields and tableMetadata"
    /// (<https://airtable.com/developers/web/api/webhooks-overview>, "Authorization").
    pub(super) fn data_scopes(table_data: bool, schema_types: bool) -> Vec<&'static str> {
        let mut scopes = Vec::new();
        if table_data {
            scopes.push(RECORDS_READ);
        }
        if schema_types {
            scopes.push(SCHEMA_READ);
        }
        scopes
    }

    pub(super) fn active(&self, now: DateTime<Utc>) -> bool {
        self.enabled && self.expiration > now
    }

    pub(super) fn watches(&self, change: &Change) -> bool {
        self.base == change.base
            && self.table_data
            && self
                .scope
                .as_deref()
                .is_none_or(|s| s == change.table_id || s == change.table)
    }

    pub(super) fn info(&self, now: DateTime<Utc>) -> WebhookInfo {
        let status = self.ping.status.borrow().clone();
        WebhookInfo {
            id: self.id.clone(),
            base: self.base.clone(),
            notification_url: self.notification_url.clone(),
            cursor_for_next_payload: self.next_payload,
            is_hook_enabled: self.active(now),
            are_notifications_enabled: self.ping.notifications_enabled.load(Ordering::SeqCst),
            expiration_time: timestamp(self.expiration),
            mac_secret_base64: STANDARD.encode(&self.mac_secret),
            payloads_kept: self.payloads.len(),
            pings: status.pings,
            last_notification_result: status.last,
        }
    }

    pub(super) fn to_json(&self, now: DateTime<Utc>) -> Value {
        let status = self.ping.status.borrow().clone();
        json!({
            "id": self.id,
            "type": "client",
            "notificationUrl": self.notification_url,
            "cursorForNextPayload": self.next_payload,
            "isHookEnabled": self.active(now),
            "areNotificationsEnabled": self.ping.notifications_enabled.load(Ordering::SeqCst),
            "expirationTime": timestamp(self.expiration),
            "specification": self.specification,
            "lastSuccessfulNotificationTime": status.last_success,
            "lastNotificationResult": status.last.as_ref().map(NotificationResult::to_json),
        })
    }

    pub(super) fn payload_json(&self, change: &Change) -> Value {
        let cells = |fields: &Map<String, Value>| -> Map<String, Value> {
            fields
                .iter()
                .map(|(name, value)| (field_id(&change.table_id, name), value.clone()))
                .collect()
        };
        let mut table = Map::new();
        match change.kind {
            ChangeKind::Created => {
                let (created_time, fields) = change
                    .current
                    .as_ref()
                    .map(|r| (r.created_time.clone(), cells(&r.fields)))
                    .unwrap_or_default();
                table.insert(
                    "createdRecordsById".into(),
                    json!({ change.id.clone(): {
                        "createdTime": created_time,
                        "cellValuesByFieldId": fields,
                    }}),
                );
            }
            ChangeKind::Changed => {
                let empty = Map::new();
                let before = change.previous.as_ref().map_or(&empty, |r| &r.fields);
                let after = change.current.as_ref().map_or(&empty, |r| &r.fields);
                let mut current = Map::new();
                let mut previous = Map::new();
                for name in before.keys().chain(after.keys()) {
                    let (old, new) = (before.get(name), after.get(name));
                    if old != new {
                        let id = field_id(&change.table_id, name);
                        current.insert(id.clone(), new.cloned().unwrap_or(Value::Null));
                        previous.insert(id, old.cloned().unwrap_or(Value::Null));
                    }
                }
                let mut record = json!({ "current": { "cellValuesByFieldId": current } });
                if self.include_previous {
                    record["previous"] = json!({ "cellValuesByFieldId": previous });
                }
                table.insert(
                    "changedRecordsById".into(),
                    json!({ change.id.clone(): record }),
                );
            }
            ChangeKind::Destroyed => {
                table.insert("destroyedRecordIds".into(), json!([change.id]));
            }
        }
        json!({
            "timestamp": timestamp(change.at),
            "baseTransactionNumber": change.seq,
            "actionMetadata": {
                "source": "client",
                "sourceMetadata": {"user": {
                    "id": "usrLOCALLOCAL0001",
                    "email": "local@example.com",
                    "permissionLevel": "create",
                }},
            },
            "payloadFormat": "v0",
            "changedTablesById": { change.table_id.clone(): table },
        })
    }
}

/// A field's id: `fld` and 14 letters and digits derived from the table id and field name.
pub(crate) fn field_id(table_id: &str, name: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let digest = Sha256::digest(format!("{table_id}\u{0}{name}").as_bytes());
    let suffix: String = digest
        .iter()
        .take(14)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    format!("fld{suffix}")
}

pub(super) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn expiry_from(now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::days(LIFETIME_DAYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_ids_are_stable_and_airtable_shaped() {
        let id = field_id("tblAAAAAAAAAAAAAA", "name");
        assert_eq!(id, field_id("tblAAAAAAAAAAAAAA", "name"));
        assert_ne!(id, field_id("tblAAAAAAAAAAAAAA", "slug"));
        assert_ne!(id, field_id("tblBBBBBBBBBBBBBB", "name"));
        assert_eq!(id.len(), 17);
        assert!(id.starts_with("fld") && id[3..].chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
