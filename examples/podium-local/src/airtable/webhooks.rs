//! Airtable's native Webhooks API and the base schema endpoint, on top of the change log.
//!
//! Routes (same authentication, rate limit, latency and faults as the records API; counted in
//! `total` and, by kind, in [`WebhookCallStats`]):
//! - `POST /v0/bases/{baseId}/webhooks` `{"notificationUrl", "specification": {"options":
//!   {"filters": {"dataTypes": ["tableData"], "recordChangeScope"?}, "includes"?:
//!   {"includePreviousCellValues"?}}}}` → `{"id": "ach…", "macSecretBase64", "expirationTime"}`;
//! - `GET /v0/bases/{baseId}/webhooks` → `{"webhooks": [{"id", "notificationUrl",
//!   "cursorForNextPayload", "isHookEnabled", "areNotificationsEnabled", "expirationTime",
//!   "specification", "lastSuccessfulNotificationTime", "lastNotificationResult"}]}`;
//! - `POST …/webhooks/{id}/refresh` → `{"expirationTime"}` (7 days from now);
//! - `DELETE …/webhooks/{id}` → `{}`;
//! - `POST …/webhooks/{id}/enableNotifications` `{"enable": bool}` → `{}`;
//! - `GET …/webhooks/{id}/payloads?cursor=N&limit=L` → `{"payloads": [...], "cursor",
//!   "mightHaveMore"}` (cursor defaults to 1, limit to and at most 50; the call extends the
//!   webhook's life by 7 days, as Airtable's does);
//! - `GET /v0/meta/bases/{baseId}/tables` → `{"tables": [{"id", "name", "primaryFieldId",
//!   "fields": [{"id", "name", "type"}]}]}`.
//!
//! Every record change (REST, the direct data methods of
//! [`RunningAirtable`], seeding after a webhook exists) that
//! matches an enabled, unexpired webhook becomes one payload (one change = one transaction),
//! numbered per webhook from 1, and wakes the webhook's notifier: a task that POSTs
//! `{"base": {"id"}, "webhook": {"id"}, "timestamp"}` to the notification URL with
//! `X-Airtable-Content-MAC: hmac-sha256=<hex HMAC-SHA256(mac secret, body)>`. At most one ping
//! per webhook is in flight; changes made meanwhile are coalesced into one more ping. A failed
//! ping (no answer, or not 2xx) is retried with a doubling delay, as Airtable does: its
//! notification result carries "`retryNumber`: The number of times the notification was
//! retried (0 = first try)" and "`willBeRetried`: Whether or not Airtable will attempt to
//! deliver a notification again" (<https://airtable.com/developers/web/api/model/webhooks-notification>);
//! Airtable does not publish its schedule, so ours is [`PING_RETRIES`] tries from
//! [`PING_RETRY_DELAY`].
//!
//! Time (expiry, payload retention) runs on a clock tests can move
//! ([`RunningAirtable::advance_webhook_clock`]):
//! - "Each webhook created with OAuth or personal access token will expire and be disabled
//!   after 7 days. The webhook life can be extended while it is still active by calling
//!   refresh webhook or list webhook payloads" and "The number of webhooks per base is limited
//!   to 10" (<https://airtable.com/developers/web/api/create-a-webhook>); an 11th is refused
//!   with 422 `TOO_MANY_WEBHOOKS_IN_BASE` (the error type independent clients match on; Airtable
//!   does not document the body).
//! - "Payloads are deleted from Airtable's servers after 1 week whether or not the client has
//!   seen them. The cursor value for the next payload is never reset, even if payloads are
//!   deleted" (<https://airtable.com/developers/web/api/list-webhook-payloads>): a cursor before
//!   the oldest kept payload simply lists from the oldest kept one.
//!
//! Cells are keyed by field id: a field's id is derived from its table id and name (`fld…`,
//! stable for the life of the table), the same ids the schema endpoint reports.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Notify};

use super::api_error::ApiError;
use super::server::Shared;
use super::store::{random_id, Change, ChangeKind, Store};
use super::tokens::{Token, RECORDS_READ, SCHEMA_READ, WEBHOOK_MANAGE};
use super::RunningAirtable;

/// How long a webhook lives after its creation, refresh or last payload listing.
const LIFETIME_DAYS: i64 = 7;
/// Airtable's largest (and default) payload page.
const MAX_PAYLOAD_PAGE: usize = 50;
/// How many payloads a webhook keeps (the oldest are dropped; numbers are never reused).
const PAYLOAD_CAPACITY: usize = 10_000;
/// How long a payload is kept (see the module docs).
const PAYLOAD_RETENTION_DAYS: i64 = 7;
/// How many webhooks a base may have (see the module docs).
pub const MAX_WEBHOOKS_PER_BASE: usize = 10;
/// How many times a failed ping is retried.
pub const PING_RETRIES: u32 = 5;
/// The delay before the first retry of a failed ping (doubled for each next one).
pub const PING_RETRY_DELAY: Duration = Duration::from_millis(200);
/// How long one ping may take.
const PING_TIMEOUT: Duration = Duration::from_secs(60);
/// The header carrying the ping's MAC.
pub const CONTENT_MAC_HEADER: &str = "X-Airtable-Content-MAC";
/// The data types a specification may name.
const DATA_TYPES: [&str; 3] = ["tableData", "tableFields", "tableMetadata"];

type HmacSha256 = Hmac<Sha256>;

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
    fn to_json(&self) -> Value {
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
struct PingStatus {
    /// The newest payload number a ping was asked for.
    requested: u64,
    /// The newest payload number a finished ping was sent for.
    delivered: u64,
    /// Pings finished.
    pings: u64,
    /// When the latest successful ping finished.
    last_success: Option<String>,
    /// The latest ping's outcome.
    last: Option<NotificationResult>,
}

/// Shared by a webhook and its notifier task.
#[derive(Debug)]
struct PingState {
    wake: Notify,
    closed: AtomicBool,
    notifications_enabled: AtomicBool,
    status: watch::Sender<PingStatus>,
}

impl PingState {
    fn new() -> Arc<PingState> {
        let (status, _) = watch::channel(PingStatus::default());
        Arc::new(PingState {
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            notifications_enabled: AtomicBool::new(true),
            status,
        })
    }

    /// Asks for a ping covering payloads up to `number`.
    fn request(&self, number: u64) {
        self.status
            .send_modify(|s| s.requested = s.requested.max(number));
        self.wake.notify_one();
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

#[derive(Debug)]
struct Webhook {
    id: String,
    base: String,
    notification_url: Option<String>,
    mac_secret: Vec<u8>,
    specification: Value,
    /// `recordChangeScope`: a table id (or name) the webhook is limited to.
    scope: Option<String>,
    table_data: bool,
    /// The specification names `tableFields` or `tableMetadata`.
    schema_types: bool,
    include_previous: bool,
    enabled: bool,
    expiration: DateTime<Utc>,
    next_payload: u64,
    /// Payload number, when it was recorded (webhook clock), the change.
    payloads: VecDeque<(u64, DateTime<Utc>, Change)>,
    ping: Arc<PingState>,
    /// `payloads` requests in progress, and the most seen at once.
    readers: u64,
}

impl Webhook {
    /// The scopes creating this webhook or listing its payloads needs besides
    /// `webhook:manage`: "data.records:read is required for tableData, and schema.bases:read is
    /// required for tableFields and tableMetadata"
    /// (<https://airtable.com/developers/web/api/webhooks-overview>, "Authorization").
    fn data_scopes(table_data: bool, schema_types: bool) -> Vec<&'static str> {
        let mut scopes = Vec::new();
        if table_data {
            scopes.push(RECORDS_READ);
        }
        if schema_types {
            scopes.push(SCHEMA_READ);
        }
        scopes
    }

    fn active(&self, now: DateTime<Utc>) -> bool {
        self.enabled && self.expiration > now
    }

    fn watches(&self, change: &Change) -> bool {
        self.base == change.base
            && self.table_data
            && self
                .scope
                .as_deref()
                .is_none_or(|s| s == change.table_id || s == change.table)
    }

    fn info(&self, now: DateTime<Utc>) -> WebhookInfo {
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

    fn to_json(&self, now: DateTime<Utc>) -> Value {
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

    fn payload_json(&self, change: &Change) -> Value {
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

/// Every webhook of every base; lives in the record store so the change log feeds it.
#[derive(Debug, Default)]
pub(crate) struct Webhooks {
    hooks: Vec<Webhook>,
    http: Option<reqwest::Client>,
    calls: WebhookCallStats,
    /// How far the webhook clock is ahead of the wall clock.
    clock_offset: chrono::Duration,
}

impl Webhooks {
    /// Turns a record change into a payload of every webhook that watches it, and wakes their
    /// notifiers. Called by the store for every change.
    pub(crate) fn on_change(&mut self, change: &Change) {
        let now = self.now();
        for hook in &mut self.hooks {
            if !hook.active(now) || !hook.watches(change) {
                continue;
            }
            let number = hook.next_payload;
            hook.next_payload += 1;
            if hook.payloads.len() >= PAYLOAD_CAPACITY {
                hook.payloads.pop_front();
            }
            hook.payloads.push_back((number, now, change.clone()));
            if hook.notification_url.is_some()
                && hook.ping.notifications_enabled.load(Ordering::SeqCst)
            {
                hook.ping.request(number);
            }
        }
    }

    /// Stops every notifier (the server is going away).
    pub(crate) fn close_all(&mut self) {
        for hook in &self.hooks {
            hook.ping.close();
        }
    }

    /// The webhook clock: the wall clock moved by [`RunningAirtable::advance_webhook_clock`].
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.clock_offset
    }

    fn find(&self, base: &str, id: &str) -> Result<&Webhook, ApiError> {
        self.hooks
            .iter()
            .find(|h| h.id == id && h.base == base)
            .ok_or(ApiError::NotFound)
    }

    fn find_mut(&mut self, base: &str, id: &str) -> Result<&mut Webhook, ApiError> {
        self.hooks
            .iter_mut()
            .find(|h| h.id == id && h.base == base)
            .ok_or(ApiError::NotFound)
    }

    fn by_id(&self, id: &str) -> Option<&Webhook> {
        self.hooks.iter().find(|h| h.id == id)
    }

    fn http(&mut self) -> Option<reqwest::Client> {
        if self.http.is_none() {
            match reqwest::Client::builder().timeout(PING_TIMEOUT).build() {
                Ok(client) => self.http = Some(client),
                Err(error) => tracing::warn!(%error, "airtable-local: no HTTP client for pings"),
            }
        }
        self.http.clone()
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

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn expiry_from(now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::days(LIFETIME_DAYS)
}

/// The routes of this module, merged into the server's router.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/v0/bases/{base}/webhooks",
            get(list_hooks).post(create_hook),
        )
        .route("/v0/bases/{base}/webhooks/{webhook}", delete(delete_hook))
        .route(
            "/v0/bases/{base}/webhooks/{webhook}/refresh",
            post(refresh_hook),
        )
        .route(
            "/v0/bases/{base}/webhooks/{webhook}/payloads",
            get(list_payloads),
        )
        .route(
            "/v0/bases/{base}/webhooks/{webhook}/enableNotifications",
            post(enable_notifications),
        )
        .route("/v0/meta/bases/{base}/tables", get(base_schema))
}

type AppState = State<Arc<Shared>>;

fn respond(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(error) => error.into_response(),
    }
}

fn base_exists(store: &Store, base: &str) -> Result<(), ApiError> {
    if store.base_ids().iter().any(|b| b == base) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// A webhook specification's options, checked.
struct Specification {
    /// `tableData` is among the data types.
    table_data: bool,
    /// `tableFields` or `tableMetadata` is among them.
    schema_types: bool,
    /// `recordChangeScope`, as a table id.
    scope: Option<String>,
    /// `includePreviousCellValues`.
    include_previous: bool,
}

/// The webhook's options, checked.
fn parse_specification(store: &Store, base: &str, spec: &Value) -> Result<Specification, ApiError> {
    let options = spec.get("options").ok_or(ApiError::InvalidRequest)?;
    let filters = options.get("filters").ok_or(ApiError::InvalidRequest)?;
    let types = filters
        .get("dataTypes")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::InvalidRequest)?;
    let mut table_data = false;
    let mut schema_types = false;
    for t in types {
        let t = t.as_str().ok_or(ApiError::InvalidRequest)?;
        if !DATA_TYPES.contains(&t) {
            return Err(ApiError::InvalidRequest);
        }
        table_data |= t == "tableData";
        schema_types |= t != "tableData";
    }
    let scope = match filters.get("recordChangeScope") {
        None | Some(Value::Null) => None,
        Some(Value::String(scope)) => {
            let table = store.table(base, scope).map_err(ApiError::from)?;
            Some(table.id.clone())
        }
        Some(_) => return Err(ApiError::InvalidRequest),
    };
    let include_previous = match options
        .get("includes")
        .and_then(|i| i.get("includePreviousCellValues"))
    {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::InvalidRequest),
    };
    Ok(Specification {
        table_data,
        schema_types,
        scope,
        include_previous,
    })
}

async fn create_hook(
    State(shared): AppState,
    Path(base): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // "The scope webhook:manage is always required for all webhooks API endpoints"
    // (https://airtable.com/developers/web/api/webhooks-overview).
    let token = match shared
        .gate_with(&base, |_| {}, &[WEBHOOK_MANAGE], &headers)
        .await
    {
        Ok(token) => token,
        Err(e) => return e.into_response(),
    };
    respond(create(&shared, &base, &token, &body))
}

fn create(shared: &Shared, base: &str, token: &Token, body: &[u8]) -> Result<Value, ApiError> {
    let mut store = shared.store.write();
    store.webhooks.calls.create += 1;
    base_exists(&store, base)?;
    let body: Value = serde_json::from_slice(body).map_err(|_| ApiError::InvalidRequest)?;
    let notification_url = match body.get("notificationUrl") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) if url.starts_with("http://") || url.starts_with("https://") => {
            Some(url.clone())
        }
        Some(_) => return Err(ApiError::InvalidRequest),
    };
    let specification = body
        .get("specification")
        .cloned()
        .ok_or(ApiError::InvalidRequest)?;
    let spec = parse_specification(&store, base, &specification)?;
    shared.require(
        base,
        token,
        &Webhook::data_scopes(spec.table_data, spec.schema_types),
    )?;
    // "The number of webhooks per base is limited to 10" (create-a-webhook, see the module docs).
    if store
        .webhooks
        .hooks
        .iter()
        .filter(|h| h.base == base)
        .count()
        >= MAX_WEBHOOKS_PER_BASE
    {
        return Err(ApiError::TooManyWebhooks);
    }
    let mut mac_secret = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut mac_secret);
    let now = store.webhooks.now();
    let hook = Webhook {
        id: random_id("ach"),
        base: base.to_owned(),
        notification_url,
        mac_secret,
        specification,
        scope: spec.scope,
        table_data: spec.table_data,
        schema_types: spec.schema_types,
        include_previous: spec.include_previous,
        enabled: true,
        expiration: expiry_from(now),
        next_payload: 1,
        payloads: VecDeque::new(),
        ping: PingState::new(),
        readers: 0,
    };
    if let Some(url) = &hook.notification_url {
        match (store.webhooks.http(), tokio::runtime::Handle::try_current()) {
            (Some(http), Ok(runtime)) => {
                let notifier = Notifier {
                    state: Arc::clone(&hook.ping),
                    http,
                    url: url.clone(),
                    base: hook.base.clone(),
                    webhook: hook.id.clone(),
                    key: hook.mac_secret.clone(),
                };
                runtime.spawn(notifier.run());
            }
            _ => {
                tracing::warn!(webhook = %hook.id, "airtable-local: pings disabled (no runtime or client)")
            }
        }
    }
    let answer = json!({
        "id": hook.id,
        "macSecretBase64": STANDARD.encode(&hook.mac_secret),
        "expirationTime": timestamp(hook.expiration),
    });
    tracing::debug!(webhook = %hook.id, base, "airtable-local webhook created");
    store.webhooks.hooks.push(hook);
    Ok(answer)
}

async fn list_hooks(
    State(shared): AppState,
    Path(base): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = shared
        .gate_with(&base, |_| {}, &[WEBHOOK_MANAGE], &headers)
        .await
    {
        return e.into_response();
    }
    let mut store = shared.store.write();
    store.webhooks.calls.list += 1;
    let result = base_exists(&store, &base).map(|()| {
        let now = store.webhooks.now();
        let hooks: Vec<Value> = store
            .webhooks
            .hooks
            .iter()
            .filter(|h| h.base == base)
            .map(|h| h.to_json(now))
            .collect();
        json!({ "webhooks": hooks })
    });
    respond(result)
}

async fn refresh_hook(
    State(shared): AppState,
    Path((base, webhook)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = shared
        .gate_with(&base, |_| {}, &[WEBHOOK_MANAGE], &headers)
        .await
    {
        return e.into_response();
    }
    let mut store = shared.store.write();
    store.webhooks.calls.refresh += 1;
    let now = store.webhooks.now();
    let result = store.webhooks.find_mut(&base, &webhook).and_then(|hook| {
        // Airtable refreshes active webhooks only.
        if !hook.active(now) {
            return Err(ApiError::InvalidRequest);
        }
        hook.expiration = expiry_from(now);
        Ok(json!({ "expirationTime": timestamp(hook.expiration) }))
    });
    respond(result)
}

async fn delete_hook(
    State(shared): AppState,
    Path((base, webhook)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = shared
        .gate_with(&base, |_| {}, &[WEBHOOK_MANAGE], &headers)
        .await
    {
        return e.into_response();
    }
    let mut store = shared.store.write();
    store.webhooks.calls.delete += 1;
    let hooks = &mut store.webhooks.hooks;
    let result = match hooks.iter().position(|h| h.id == webhook && h.base == base) {
        Some(index) => {
            let hook = hooks.remove(index);
            hook.ping.close();
            Ok(json!({}))
        }
        None => Err(ApiError::NotFound),
    };
    respond(result)
}

async fn enable_notifications(
    State(shared): AppState,
    Path((base, webhook)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = shared
        .gate_with(&base, |_| {}, &[WEBHOOK_MANAGE], &headers)
        .await
    {
        return e.into_response();
    }
    let mut store = shared.store.write();
    store.webhooks.calls.enable_notifications += 1;
    let enable = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("enable").and_then(Value::as_bool));
    let result = match enable {
        Some(enable) => store.webhooks.find(&base, &webhook).map(|hook| {
            hook.ping
                .notifications_enabled
                .store(enable, Ordering::SeqCst);
            json!({})
        }),
        None => Err(ApiError::InvalidRequest),
    };
    respond(result)
}

/// The `cursor` and `limit` of a payloads request.
fn payload_params(query: &str) -> Result<(u64, usize), ApiError> {
    let mut cursor = 1u64;
    let mut limit = MAX_PAYLOAD_PAGE;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "cursor" => {
                cursor = value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| ApiError::InvalidRequest)?
                    .max(1);
            }
            "limit" => {
                limit = value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=MAX_PAYLOAD_PAGE).contains(l))
                    .ok_or(ApiError::InvalidRequest)?;
            }
            _ => {}
        }
    }
    Ok((cursor, limit))
}

/// Counts a `payloads` request of one webhook in progress while it lives.
struct Reader<'a> {
    shared: &'a Shared,
    base: String,
    webhook: String,
}

impl<'a> Reader<'a> {
    fn enter(shared: &'a Shared, base: &str, webhook: &str) -> Reader<'a> {
        let mut store = shared.store.write();
        let webhooks = &mut store.webhooks;
        let mut most = None;
        if let Ok(hook) = webhooks.find_mut(base, webhook) {
            hook.readers += 1;
            most = Some(hook.readers);
        }
        if let Some(most) = most {
            let calls = &mut webhooks.calls;
            calls.max_concurrent_payload_requests = calls.max_concurrent_payload_requests.max(most);
        }
        Reader {
            shared,
            base: base.to_owned(),
            webhook: webhook.to_owned(),
        }
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let mut store = self.shared.store.write();
        if let Ok(hook) = store.webhooks.find_mut(&self.base, &self.webhook) {
            hook.readers = hook.readers.saturating_sub(1);
        }
    }
}

async fn list_payloads(
    State(shared): AppState,
    Path((base, webhook)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let reader = Reader::enter(&shared, &base, &webhook);
    let token = match shared
        .gate_with(&base, |_| {}, &[WEBHOOK_MANAGE], &headers)
        .await
    {
        Ok(token) => token,
        Err(e) => return e.into_response(),
    };
    let result = payload_params(query.as_deref().unwrap_or(""))
        .and_then(|(cursor, limit)| payloads(&shared, &base, &webhook, &token, cursor, limit));
    drop(reader);
    respond(result)
}

fn payloads(
    shared: &Shared,
    base: &str,
    webhook: &str,
    token: &Token,
    cursor: u64,
    limit: usize,
) -> Result<Value, ApiError> {
    let mut store = shared.store.write();
    store.webhooks.calls.payloads += 1;
    let now = store.webhooks.now();
    let hook = store.webhooks.find_mut(base, webhook)?;
    // The same data-type scopes as creating it (webhooks overview, "Authorization").
    shared.require(
        base,
        token,
        &Webhook::data_scopes(hook.table_data, hook.schema_types),
    )?;
    if hook.active(now) {
        hook.expiration = expiry_from(now);
    }
    // Payloads older than a week are gone (see the module docs); numbers are never reused, so
    // a cursor before the oldest kept one lists from it.
    let oldest_kept = now - chrono::Duration::days(PAYLOAD_RETENTION_DAYS);
    while hook
        .payloads
        .front()
        .is_some_and(|(_, recorded, _)| *recorded < oldest_kept)
    {
        hook.payloads.pop_front();
    }
    let mut page: Vec<Value> = Vec::new();
    let mut next = cursor;
    let mut more = false;
    for (number, _, change) in hook.payloads.iter().filter(|(n, _, _)| *n >= cursor) {
        if page.len() == limit {
            more = true;
            break;
        }
        page.push(hook.payload_json(change));
        next = number + 1;
    }
    Ok(json!({ "payloads": page, "cursor": next, "mightHaveMore": more }))
}

async fn base_schema(
    State(shared): AppState,
    Path(base): Path<String>,
    headers: HeaderMap,
) -> Response {
    // "Get base schema" needs schema.bases:read
    // (https://airtable.com/developers/web/api/get-base-schema, "Requirements").
    if let Err(e) = shared
        .gate_with(&base, |_| {}, &[SCHEMA_READ], &headers)
        .await
    {
        return e.into_response();
    }
    let mut store = shared.store.write();
    store.webhooks.calls.schema += 1;
    respond(base_exists(&store, &base).map(|()| schema(&store, &base)))
}

fn schema(store: &Store, base: &str) -> Value {
    let mut tables = Vec::new();
    for name in store.table_names(base) {
        let Ok(table) = store.table(base, &name) else {
            continue;
        };
        let mut names: Vec<String> = table.field_names().to_vec();
        if names.is_empty() {
            // Airtable tables always have a primary field.
            names.push("Name".to_owned());
        }
        let fields: Vec<Value> = names
            .iter()
            .map(|field| {
                let sample = table
                    .records()
                    .find_map(|r| r.fields.get(field.as_str()).cloned());
                json!({
                    "id": field_id(&table.id, field),
                    "name": field,
                    "type": field_type(sample.as_ref()),
                })
            })
            .collect();
        tables.push(json!({
            "id": table.id,
            "name": table.name,
            "primaryFieldId": field_id(&table.id, &names[0]),
            "fields": fields,
            "views": [],
        }));
    }
    json!({ "tables": tables })
}

/// A plausible Airtable field type for a sample value.
fn field_type(sample: Option<&Value>) -> &'static str {
    match sample {
        Some(Value::Number(_)) => "number",
        Some(Value::Bool(_)) => "checkbox",
        Some(Value::String(s)) if s.contains('\n') => "multilineText",
        Some(Value::Array(items))
            if items
                .iter()
                .all(|i| i.as_str().is_some_and(|s| s.starts_with("rec"))) =>
        {
            "multipleRecordLinks"
        }
        Some(Value::Array(_)) => "multipleSelects",
        _ => "singleLineText",
    }
}

/// The task that pings one webhook's notification URL, one ping at a time.
struct Notifier {
    state: Arc<PingState>,
    http: reqwest::Client,
    url: String,
    base: String,
    webhook: String,
    key: Vec<u8>,
}

impl Notifier {
    async fn run(self) {
        loop {
            self.state.wake.notified().await;
            if self.state.closed.load(Ordering::SeqCst) {
                return;
            }
            let covered = self.state.status.borrow().requested;
            let mut delay = PING_RETRY_DELAY;
            for retry in 0..=PING_RETRIES {
                let mut result = self.ping().await;
                result.retry_number = retry;
                let closed = self.state.closed.load(Ordering::SeqCst);
                result.will_be_retried = !result.success && retry < PING_RETRIES && !closed;
                if !result.success {
                    tracing::warn!(
                        webhook = %self.webhook,
                        url = %self.url,
                        status = ?result.status,
                        error = ?result.error,
                        retry,
                        will_be_retried = result.will_be_retried,
                        "airtable-local webhook ping failed"
                    );
                }
                let last_attempt = !result.will_be_retried;
                self.state.status.send_modify(|s| {
                    if last_attempt {
                        s.delivered = s.delivered.max(covered);
                    }
                    s.pings += 1;
                    if result.success {
                        s.last_success = Some(result.completion_timestamp.clone());
                    }
                    s.last = Some(result);
                });
                if last_attempt {
                    break;
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }

    async fn ping(&self) -> NotificationResult {
        let body = json!({
            "base": { "id": self.base },
            "webhook": { "id": self.webhook },
            "timestamp": timestamp(Utc::now()),
        })
        .to_string();
        let started = Instant::now();
        let answer = match content_mac(&self.key, body.as_bytes()) {
            Some(mac) => self
                .http
                .post(&self.url)
                .header("content-type", "application/json; charset=utf-8")
                .header(CONTENT_MAC_HEADER, mac)
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string()),
            None => Err("the MAC key is unusable".to_owned()),
        };
        let (status, error) = match answer {
            Ok(response) if response.status().is_success() => (Some(response.status()), None),
            Ok(response) => (
                Some(response.status()),
                Some(format!("the receiver answered {}", response.status())),
            ),
            Err(error) => (None, Some(error)),
        };
        NotificationResult {
            success: error.is_none(),
            completion_timestamp: timestamp(Utc::now()),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            status: status.map(|s| s.as_u16()),
            error,
            retry_number: 0,
            will_be_retried: false,
        }
    }
}

/// `hmac-sha256=<hex of HMAC-SHA256(key, body)>`, the `X-Airtable-Content-MAC` value.
pub fn content_mac(key: &[u8], body: &[u8]) -> Option<String> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(body);
    Some(format!(
        "hmac-sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

// ----- test-side access ------------------------------------------------------------------------

impl RunningAirtable {
    /// The webhooks of a base, oldest first (not an API call).
    pub fn webhooks(&self, base: &str) -> Vec<WebhookInfo> {
        let store = self.shared().store.read();
        let now = store.webhooks.now();
        store
            .webhooks
            .hooks
            .iter()
            .filter(|h| h.base == base)
            .map(|h| h.info(now))
            .collect()
    }

    /// Moves the webhook clock (expiry, payload retention) forward by `by`, as if that much
    /// time had passed: e.g. 8 days expire an unrefreshed webhook and drop week-old payloads.
    pub fn advance_webhook_clock(&self, by: Duration) {
        let mut store = self.shared().store.write();
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        store.webhooks.clock_offset += by;
    }

    /// Webhook and schema API calls since start.
    pub fn webhook_calls(&self) -> WebhookCallStats {
        self.shared().store.read().webhooks.calls
    }

    /// Turns pings of a webhook on or off (payloads keep being recorded either way), like
    /// `POST …/enableNotifications`. `false` if there is no such webhook.
    pub fn set_webhook_notifications(&self, webhook_id: &str, enabled: bool) -> bool {
        let store = self.shared().store.read();
        match store.webhooks.by_id(webhook_id) {
            Some(hook) => {
                hook.ping
                    .notifications_enabled
                    .store(enabled, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Enables or disables a webhook: a disabled one records no payloads and sends no pings.
    /// `false` if there is no such webhook.
    pub fn set_webhook_enabled(&self, webhook_id: &str, enabled: bool) -> bool {
        let mut store = self.shared().store.write();
        match store.webhooks.hooks.iter_mut().find(|h| h.id == webhook_id) {
            Some(hook) => {
                hook.enabled = enabled;
                true
            }
            None => false,
        }
    }

    /// Sends a ping now (even with notifications off), as if a change had happened. `false` if
    /// there is no such webhook or it has no notification URL.
    pub fn ping_webhook(&self, webhook_id: &str) -> bool {
        let store = self.shared().store.read();
        match store.webhooks.by_id(webhook_id) {
            Some(hook) if hook.notification_url.is_some() => {
                hook.ping.request(hook.next_payload.saturating_sub(1));
                true
            }
            _ => false,
        }
    }

    /// Waits until a ping sent after the latest requested one has finished (at once if no ping
    /// is pending) and returns the latest ping's outcome. `None` for an unknown webhook or one
    /// that never pinged.
    pub async fn wait_for_webhook_ping(&self, webhook_id: &str) -> Option<NotificationResult> {
        let state = {
            let store = self.shared().store.read();
            Arc::clone(&store.webhooks.by_id(webhook_id)?.ping)
        };
        let target = state.status.borrow().requested;
        let mut status = state.status.subscribe();
        let done = status.wait_for(|s| s.delivered >= target).await.ok()?;
        done.last.clone()
    }
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

    #[test]
    fn content_mac_matches_a_known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = content_mac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            mac.as_deref(),
            Some("hmac-sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn payload_parameters_default_and_are_checked() {
        assert_eq!(payload_params(""), Ok((1, 50)));
        assert_eq!(payload_params("cursor=7&limit=3"), Ok((7, 3)));
        assert_eq!(payload_params("cursor=0"), Ok((1, 50)));
        assert_eq!(payload_params("limit=51"), Err(ApiError::InvalidRequest));
        assert_eq!(payload_params("cursor=x"), Err(ApiError::InvalidRequest));
    }
}
