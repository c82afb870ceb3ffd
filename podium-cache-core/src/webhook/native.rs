//! Airtable's native Webhooks API: the script-free way to hear about changes, and the only one
//! that reports deletions.
//!
//! - [`WebhooksApi`]: create, list, refresh and delete a base's webhooks, page their payloads
//!   and read the base schema, through the same key, base, process-wide rate limiter and
//!   retries as [`AirtableSource`].
//! - [`NativeWebhooks`]: receives a notification (`{"base": {"id"}, "webhook": {"id"},
//!   "timestamp"}`, signed `X-Airtable-Content-MAC: hmac-sha256=<hex>`), then pages
//!   `GET …/payloads?cursor=` from the cursor kept in the store and applies every payload:
//!   created and changed records are invalidated (the next read refetches them), destroyed
//!   records are removed with a tombstone.
//!
//! Guarantees:
//! - **Nothing is skipped**: the cursor is saved after each applied page, so a crash re-applies
//!   at most the page it was applying (applying is idempotent).
//! - **One pager per webhook**: rounds of one webhook never run in parallel, in the process
//!   (a per-webhook async mutex) or across processes (a store lock with expiry,
//!   `keys.lock("webhook:{id}")`).
//! - **Nothing lost, acknowledged means applied**: a notification is answered only after a
//!   round that *started after it arrived* has drained the payloads; notifications arriving
//!   while a round runs share one more round.
//! - Payload tables (`tbl…`) are mapped to model tables by name through the base schema
//!   (`GET /v0/meta/bases/{baseId}/tables`, read once and again when an unknown id shows up)
//!   or a configured map; a table without a model is counted and skipped with a log line.
//!
//! ```no_run
//! # async fn demo(cache: podium_cache_core::Cache, source: podium_cache_core::source::AirtableSource)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use podium_cache_core::webhook::native::{MacSecret, NativeWebhooks, WebhooksApi};
//! use podium_cache_core::webhook::Models;
//!
//! let api = WebhooksApi::new(source);
//! let created = api.create_table_data("https://example.com/api/webhooks/airtable/notify").await?;
//! let secret: MacSecret = created.mac_secret_base64.expose().parse()?;
//! let native = NativeWebhooks::builder(cache, Models::new(), api)
//!     .webhook(created.id, secret)
//!     .build();
//! // In the HTTP handler: native.notify(header_lookup, &body).await
//! # let _ = native; Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use tracing::Instrument;

use super::registry::{ModelOps, Models};
use crate::cache::{Cache, CacheError};
use crate::config::Secret;
use crate::source::{AirtableSource, SourceError};
use crate::store::{Store, StoreError, StoreLock};

/// The notification's MAC header (lower case, as header lookups take it).
pub const MAC_HEADER: &str = "x-airtable-content-mac";
/// The scheme prefix of the MAC header's value.
pub const MAC_PREFIX: &str = "hmac-sha256=";
/// Default largest notification body (a ping is about 150 bytes).
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// Airtable's largest (and the default) payload page.
pub const MAX_PAYLOAD_PAGE: usize = 50;
/// Default TTL of the store lock that keeps one pager per webhook (extended before each page).
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(60);
/// Default longest wait for another process's pager to release the lock.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(120);
/// Default TTL of a saved cursor (refreshed by every save; Airtable keeps payloads 7 days).
pub const DEFAULT_CURSOR_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often a waiter polls a lock held by another process.
const LOCK_POLL: Duration = Duration::from_millis(50);

type HmacSha256 = Hmac<Sha256>;

// ----- MAC secret --------------------------------------------------------------------------------

/// A webhook's MAC key, given by Airtable as `macSecretBase64` when the webhook is created.
/// `Debug` and `Display` print `[redacted]`.
///
/// ```
/// use podium_cache_core::webhook::native::MacSecret;
/// let secret: MacSecret = "c2VjcmV0".parse()?;
/// let mac = secret.sign(b"{}");
/// assert!(mac.starts_with("hmac-sha256="));
/// assert!(secret.verifies(&mac, b"{}"));
/// assert!(!secret.verifies(&mac, b"{ }"));
/// assert_eq!(format!("{secret:?}"), "MacSecret([redacted])");
/// # Ok::<(), podium_cache_core::webhook::native::MacSecretError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct MacSecret {
    key: Vec<u8>,
}

/// Why a text is not a [`MacSecret`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacSecretError {
    /// Not base64.
    #[error("macSecretBase64 is not base64: {0}")]
    NotBase64(String),
    /// Decodes to nothing.
    #[error("macSecretBase64 is empty")]
    Empty,
}

impl MacSecret {
    /// The key from Airtable's `macSecretBase64`.
    pub fn from_base64(text: &str) -> Result<Self, MacSecretError> {
        let key = STANDARD
            .decode(text.trim())
            .map_err(|e| MacSecretError::NotBase64(e.to_string()))?;
        if key.is_empty() {
            return Err(MacSecretError::Empty);
        }
        Ok(Self { key })
    }

    /// The `macSecretBase64` text, to write into a configuration.
    pub fn expose_base64(&self) -> String {
        STANDARD.encode(&self.key)
    }

    fn mac(&self) -> Option<HmacSha256> {
        HmacSha256::new_from_slice(&self.key).ok()
    }

    /// The header value Airtable sends for `body`: `hmac-sha256=<hex>`.
    pub fn sign(&self, body: &[u8]) -> String {
        match self.mac() {
            Some(mut mac) => {
                mac.update(body);
                format!("{MAC_PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
            }
            None => String::new(),
        }
    }

    /// Whether `header` (`hmac-sha256=<hex>`) is the MAC of `body` (constant-time compare).
    pub fn verifies(&self, header: &str, body: &[u8]) -> bool {
        match parse_mac_header(header) {
            Ok(given) => self.verifies_raw(&given, body),
            Err(_) => false,
        }
    }

    fn verifies_raw(&self, given: &[u8], body: &[u8]) -> bool {
        match self.mac() {
            Some(mut mac) => {
                mac.update(body);
                mac.verify_slice(given).is_ok()
            }
            None => false,
        }
    }
}

impl FromStr for MacSecret {
    type Err = MacSecretError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_base64(text)
    }
}

impl fmt::Debug for MacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacSecret([redacted])")
    }
}

impl fmt::Display for MacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The raw MAC bytes of a `hmac-sha256=<hex>` header value.
fn parse_mac_header(header: &str) -> Result<Vec<u8>, String> {
    let header = header.trim();
    let prefix = header.get(..MAC_PREFIX.len()).unwrap_or_default();
    if !prefix.eq_ignore_ascii_case(MAC_PREFIX) {
        return Err(format!(
            "X-Airtable-Content-MAC must be `{MAC_PREFIX}<hex>`, got another scheme"
        ));
    }
    hex::decode(&header[MAC_PREFIX.len()..])
        .map_err(|e| format!("X-Airtable-Content-MAC is not hex: {e}"))
}

// ----- wire types --------------------------------------------------------------------------------

/// The specification of a webhook that reports record changes of every table:
/// `{"options": {"filters": {"dataTypes": ["tableData"]}}}`.
pub fn table_data_specification() -> Value {
    json!({ "options": { "filters": { "dataTypes": ["tableData"] } } })
}

/// The answer to creating a webhook.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhook {
    /// `ach…`.
    pub id: String,
    /// The MAC key, base64 (parse it with [`MacSecret::from_base64`]).
    pub mac_secret_base64: Secret,
    /// When the webhook expires unless refreshed (7 days).
    #[serde(default)]
    pub expiration_time: Option<String>,
}

/// One webhook as `GET …/webhooks` lists it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDescription {
    /// `ach…`.
    pub id: String,
    /// Where pings go.
    #[serde(default)]
    pub notification_url: Option<String>,
    /// The number the next payload will get.
    #[serde(default)]
    pub cursor_for_next_payload: u64,
    /// Enabled (not expired or turned off).
    #[serde(default)]
    pub is_hook_enabled: bool,
    /// Whether pings are sent.
    #[serde(default)]
    pub are_notifications_enabled: bool,
    /// When it expires unless refreshed.
    #[serde(default)]
    pub expiration_time: Option<String>,
    /// What it watches.
    #[serde(default)]
    pub specification: Value,
    /// When the last ping succeeded.
    #[serde(default)]
    pub last_successful_notification_time: Option<String>,
    /// The last ping's outcome, as Airtable reports it.
    #[serde(default)]
    pub last_notification_result: Option<Value>,
}

#[derive(Deserialize)]
struct WebhookList {
    webhooks: Vec<WebhookDescription>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Refreshed {
    #[serde(default)]
    expiration_time: Option<String>,
}

/// One page of `GET …/payloads`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadPage {
    /// The payloads, in transaction order.
    pub payloads: Vec<Payload>,
    /// The cursor to read the next page from (the request's when there were none).
    pub cursor: u64,
    /// Whether more payloads may follow.
    #[serde(default)]
    pub might_have_more: bool,
}

/// One payload: the changes of one base transaction.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// When the transaction happened.
    #[serde(default)]
    pub timestamp: String,
    /// The base's transaction number.
    #[serde(default)]
    pub base_transaction_number: u64,
    /// `v0`.
    #[serde(default)]
    pub payload_format: String,
    /// Who or what made the change.
    #[serde(default)]
    pub action_metadata: Value,
    /// Record changes by table id (`tbl…`).
    #[serde(default)]
    pub changed_tables_by_id: BTreeMap<String, TableChanges>,
    /// An error payload (the webhook's specification became invalid, …).
    #[serde(default)]
    pub error: bool,
    /// The error payload's code (`INVALID_FILTERS`, `INVALID_HOOK`, …).
    #[serde(default)]
    pub code: Option<String>,
}

/// The record changes of one table in one payload.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableChanges {
    /// Created records: `{"createdTime", "cellValuesByFieldId"}` by record id.
    #[serde(default)]
    pub created_records_by_id: BTreeMap<String, Value>,
    /// Changed records: `{"current": {"cellValuesByFieldId"}, "previous"?}` by record id.
    #[serde(default)]
    pub changed_records_by_id: BTreeMap<String, Value>,
    /// Deleted record ids.
    #[serde(default)]
    pub destroyed_record_ids: Vec<String>,
}

/// A table of the base schema.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableSchema {
    /// `tbl…`.
    pub id: String,
    /// The table's name (what models are registered under).
    pub name: String,
    /// The primary field's id.
    #[serde(default)]
    pub primary_field_id: Option<String>,
    /// The fields.
    #[serde(default)]
    pub fields: Vec<FieldSchema>,
}

/// A field of the base schema.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct FieldSchema {
    /// `fld…`.
    pub id: String,
    /// The field's name.
    pub name: String,
    /// Airtable's field type (`singleLineText`, `multipleRecordLinks`, …).
    #[serde(rename = "type", default)]
    pub kind: String,
}

#[derive(Deserialize)]
struct SchemaWire {
    tables: Vec<TableSchema>,
}

/// The notification body Airtable POSTs.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Notification {
    /// `{"id": "app…"}`.
    pub base: IdRef,
    /// `{"id": "ach…"}`.
    pub webhook: IdRef,
    /// When it was sent.
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// `{"id": "…"}`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct IdRef {
    /// The id.
    pub id: String,
}

fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, SourceError> {
    serde_json::from_slice(bytes).map_err(|e| SourceError::Decode(e.to_string()))
}

// ----- API client --------------------------------------------------------------------------------

/// The Webhooks API of one base (and its schema endpoint), on an [`AirtableSource`]'s
/// connection, key, rate limiter and retries.
///
/// ```
/// use podium_cache_core::source::AirtableSource;
/// use podium_cache_core::webhook::native::WebhooksApi;
/// let source = AirtableSource::builder("patXXXX", "appXXXXXXXXXXXXXX").build()?;
/// let api = WebhooksApi::new(source);
/// assert_eq!(api.base_id(), "appXXXXXXXXXXXXXX");
/// # Ok::<(), podium_cache_core::source::SourceError>(())
/// ```
#[derive(Clone, Debug)]
pub struct WebhooksApi {
    source: AirtableSource,
}

impl WebhooksApi {
    /// The Webhooks API of `source`'s base.
    pub fn new(source: AirtableSource) -> Self {
        Self { source }
    }

    /// The base id.
    pub fn base_id(&self) -> &str {
        self.source.base_id()
    }

    /// The client underneath.
    pub fn source(&self) -> &AirtableSource {
        &self.source
    }

    async fn call(
        &self,
        method: Method,
        tail: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Bytes, SourceError> {
        let mut segments = vec!["bases", self.source.base_id(), "webhooks"];
        segments.extend_from_slice(tail);
        self.source.api_call(method, &segments, query, body).await
    }

    /// `POST /v0/bases/{base}/webhooks`: a webhook pinging `notification_url` for changes that
    /// match `specification` (see [`table_data_specification`]).
    pub async fn create(
        &self,
        notification_url: &str,
        specification: Value,
    ) -> Result<CreatedWebhook, SourceError> {
        let body = json!({ "notificationUrl": notification_url, "specification": specification });
        let span = tracing::info_span!("airtable.webhooks.create", base = self.base_id());
        async {
            let bytes = self.call(Method::POST, &[], &[], Some(&body)).await?;
            parse(&bytes)
        }
        .instrument(span)
        .await
    }

    /// [`WebhooksApi::create`] with [`table_data_specification`]: every record change.
    pub async fn create_table_data(
        &self,
        notification_url: &str,
    ) -> Result<CreatedWebhook, SourceError> {
        self.create(notification_url, table_data_specification())
            .await
    }

    /// `GET /v0/bases/{base}/webhooks`.
    pub async fn list(&self) -> Result<Vec<WebhookDescription>, SourceError> {
        let span = tracing::debug_span!("airtable.webhooks.list", base = self.base_id());
        async {
            let bytes = self.call(Method::GET, &[], &[], None).await?;
            Ok(parse::<WebhookList>(&bytes)?.webhooks)
        }
        .instrument(span)
        .await
    }

    /// `POST …/webhooks/{id}/refresh`: 7 more days; the new expiration time.
    pub async fn refresh(&self, webhook_id: &str) -> Result<Option<String>, SourceError> {
        let span = tracing::info_span!("airtable.webhooks.refresh", webhook = webhook_id);
        async {
            let bytes = self
                .call(Method::POST, &[webhook_id, "refresh"], &[], None)
                .await?;
            Ok(parse::<Refreshed>(&bytes)?.expiration_time)
        }
        .instrument(span)
        .await
    }

    /// `DELETE …/webhooks/{id}`.
    pub async fn delete(&self, webhook_id: &str) -> Result<(), SourceError> {
        let span = tracing::info_span!("airtable.webhooks.delete", webhook = webhook_id);
        self.call(Method::DELETE, &[webhook_id], &[], None)
            .instrument(span)
            .await
            .map(|_| ())
    }

    /// `POST …/webhooks/{id}/enableNotifications`: turns pings on or off.
    pub async fn enable_notifications(
        &self,
        webhook_id: &str,
        enable: bool,
    ) -> Result<(), SourceError> {
        let body = json!({ "enable": enable });
        self.call(
            Method::POST,
            &[webhook_id, "enableNotifications"],
            &[],
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// `GET …/webhooks/{id}/payloads?cursor=&limit=` (limit at most 50).
    pub async fn payloads(
        &self,
        webhook_id: &str,
        cursor: u64,
        limit: usize,
    ) -> Result<PayloadPage, SourceError> {
        let span = tracing::debug_span!("airtable.webhooks.payloads", webhook = webhook_id, cursor);
        async {
            let query = [
                ("cursor", cursor.max(1).to_string()),
                ("limit", limit.clamp(1, MAX_PAYLOAD_PAGE).to_string()),
            ];
            let bytes = self
                .call(Method::GET, &[webhook_id, "payloads"], &query, None)
                .await?;
            parse(&bytes)
        }
        .instrument(span)
        .await
    }

    /// `GET /v0/meta/bases/{base}/tables`: the tables with their ids and fields.
    pub async fn tables(&self) -> Result<Vec<TableSchema>, SourceError> {
        let span = tracing::debug_span!("airtable.meta.tables", base = self.base_id());
        async {
            let segments = ["meta", "bases", self.source.base_id(), "tables"];
            let bytes = self
                .source
                .api_call(Method::GET, &segments, &[], None)
                .await?;
            Ok(parse::<SchemaWire>(&bytes)?.tables)
        }
        .instrument(span)
        .await
    }
}

// ----- errors and outcome ------------------------------------------------------------------------

/// Why a notification or a round failed. Refusals (413, 401, 400) applied nothing; failures
/// after paging started (502, 503) keep every page applied so far and its saved cursor.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The body is over the limit.
    #[error("body of {size} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// Bytes received (at least).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No MAC header, or it does not verify with any configured webhook's secret.
    #[error("{0}")]
    Unauthorized(String),
    /// The body is not the notification JSON, or names another base.
    #[error("malformed notification: {0}")]
    Malformed(String),
    /// Airtable failed (after the client's retries).
    #[error("airtable: {0}")]
    Airtable(#[from] SourceError),
    /// The store failed; the round stopped after the last saved page.
    #[error("store unavailable, retry later: {0}")]
    Store(String),
    /// Another process held the webhook's lock for longer than the wait, or took it over.
    #[error("webhook {webhook} is being paged by another process; retry later")]
    Busy {
        /// The webhook id.
        webhook: String,
    },
}

impl NativeError {
    /// The HTTP status this answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge { .. } => 413,
            Self::Unauthorized(_) => 401,
            Self::Malformed(_) => 400,
            Self::Airtable(_) => 502,
            Self::Store(_) | Self::Busy { .. } => 503,
        }
    }

    /// A short machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "body_too_large",
            Self::Unauthorized(_) => "unauthorized",
            Self::Malformed(_) => "malformed_notification",
            // A 403 (a missing scope such as webhook:manage or schema.bases:read, or a base the
            // token cannot reach) will not pass by itself, unlike an outage.
            Self::Airtable(SourceError::Forbidden { .. }) => "airtable_forbidden",
            Self::Airtable(_) => "airtable_unavailable",
            Self::Store(_) => "store_unavailable",
            Self::Busy { .. } => "busy",
        }
    }

    /// Structured detail for the error body.
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

/// What one round (or one notification) did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOutcome {
    /// The webhook.
    pub webhook_id: String,
    /// Payload pages read.
    pub pages: u32,
    /// Payloads applied.
    pub payloads: u64,
    /// Created or changed records invalidated.
    pub invalidated: u64,
    /// Destroyed records removed (tombstoned).
    pub removed: u64,
    /// Table entries skipped because no model is registered for the table.
    pub unknown_tables: u64,
    /// Error payloads (Airtable's `"error": true`) skipped.
    pub error_payloads: u64,
    /// The saved cursor after the round.
    pub cursor: u64,
    /// The round stopped at the page limit with more payloads waiting.
    pub more: bool,
    /// No round was needed: one that started after this notification arrived had already
    /// drained the payloads.
    pub coalesced: bool,
}

// ----- the receiver ------------------------------------------------------------------------------

/// Configures [`NativeWebhooks`].
#[derive(Debug)]
pub struct NativeWebhooksBuilder {
    cache: Cache,
    models: Models,
    api: WebhooksApi,
    hooks: Vec<(String, MacSecret)>,
    tables: HashMap<String, String>,
    max_body: usize,
    page_size: usize,
    max_pages: Option<u32>,
    lock_ttl: Duration,
    lock_wait: Duration,
    cursor_ttl: Duration,
}

impl NativeWebhooksBuilder {
    /// Accepts notifications of webhook `id` signed with `secret` (call once per webhook).
    pub fn webhook(mut self, id: impl Into<String>, secret: MacSecret) -> Self {
        self.hooks.push((id.into(), secret));
        self
    }

    /// Maps a table id (`tbl…`) to its name without asking the schema endpoint.
    pub fn table(mut self, id: impl Into<String>, name: impl Into<String>) -> Self {
        self.tables.insert(id.into(), name.into());
        self
    }

    /// Largest notification body (default 64 KiB).
    pub fn max_body(mut self, limit: usize) -> Self {
        self.max_body = limit;
        self
    }

    /// Payloads per page (1 to 50, default 50).
    pub fn page_size(mut self, size: usize) -> Self {
        self.page_size = size.clamp(1, MAX_PAYLOAD_PAGE);
        self
    }

    /// Stops a round after this many pages (default: none); the outcome then says `more`, and
    /// the next notification or [`NativeWebhooks::sync`] continues from the saved cursor.
    pub fn max_pages_per_round(mut self, pages: u32) -> Self {
        self.max_pages = Some(pages.max(1));
        self
    }

    /// TTL of the store lock (default 60 s; extended before each page).
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// Longest wait for another process's round (default 120 s), then 503 `busy`.
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// TTL of the saved cursor (default 30 days).
    pub fn cursor_ttl(mut self, ttl: Duration) -> Self {
        self.cursor_ttl = ttl;
        self
    }

    /// Builds the receiver.
    pub fn build(self) -> NativeWebhooks {
        NativeWebhooks {
            inner: Arc::new(Inner {
                cache: self.cache,
                models: self.models,
                api: self.api,
                hooks: self.hooks,
                tables: parking_lot::RwLock::new(self.tables),
                slots: parking_lot::Mutex::new(HashMap::new()),
                max_body: self.max_body,
                page_size: self.page_size,
                max_pages: self.max_pages,
                lock_ttl: self.lock_ttl,
                lock_wait: self.lock_wait,
                cursor_ttl: self.cursor_ttl,
            }),
        }
    }
}

/// Verifies Airtable's webhook notifications and applies the payloads they announce.
/// Cheap to clone.
#[derive(Clone)]
pub struct NativeWebhooks {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Cache,
    models: Models,
    api: WebhooksApi,
    hooks: Vec<(String, MacSecret)>,
    tables: parking_lot::RwLock<HashMap<String, String>>,
    slots: parking_lot::Mutex<HashMap<String, Arc<Slot>>>,
    max_body: usize,
    page_size: usize,
    max_pages: Option<u32>,
    lock_ttl: Duration,
    lock_wait: Duration,
    cursor_ttl: Duration,
}

/// One webhook's in-process pager state.
#[derive(Default)]
struct Slot {
    /// Held by the one round in progress.
    gate: tokio::sync::Mutex<()>,
    /// Requests (notifications, syncs) that arrived, ever.
    arrivals: AtomicU64,
    /// Every request up to this number is covered by a finished, drained round.
    completed: AtomicU64,
    /// The cursor after the latest round.
    cursor: AtomicU64,
}

impl fmt::Debug for NativeWebhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.inner.hooks.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("NativeWebhooks")
            .field("base", &self.inner.api.base_id())
            .field("webhooks", &ids)
            .field("models", &self.inner.models)
            .finish_non_exhaustive()
    }
}

impl NativeWebhooks {
    /// A builder applying to `cache` the payloads of `models`' tables read through `api`.
    pub fn builder(cache: Cache, models: Models, api: WebhooksApi) -> NativeWebhooksBuilder {
        NativeWebhooksBuilder {
            cache,
            models,
            api,
            hooks: Vec::new(),
            tables: HashMap::new(),
            max_body: DEFAULT_MAX_BODY,
            page_size: MAX_PAYLOAD_PAGE,
            max_pages: None,
            lock_ttl: DEFAULT_LOCK_TTL,
            lock_wait: DEFAULT_LOCK_WAIT,
            cursor_ttl: DEFAULT_CURSOR_TTL,
        }
    }

    /// The body limit.
    pub fn max_body(&self) -> usize {
        self.inner.max_body
    }

    /// The API client.
    pub fn api(&self) -> &WebhooksApi {
        &self.inner.api
    }

    /// The cache payloads are applied to.
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// The registered models.
    pub fn models(&self) -> &Models {
        &self.inner.models
    }

    /// The ids of the webhooks whose notifications are accepted.
    pub fn webhook_ids(&self) -> Vec<&str> {
        self.inner.hooks.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// The saved cursor of a webhook (1 when none is saved).
    pub async fn cursor(&self, webhook_id: &str) -> Result<u64, NativeError> {
        let key = self.inner.cache.keys().webhook_cursor(webhook_id);
        Ok(read_cursor(self.store(), &key, webhook_id).await?)
    }

    fn store(&self) -> &dyn Store {
        self.inner.cache.store().as_ref()
    }

    /// Handles one notification: size limit (413), MAC (401), body (400), then a round for the
    /// webhook (see [`NativeWebhooks::sync`]). `header` looks a header up by its lower-case
    /// name.
    pub async fn notify(
        &self,
        header: impl Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<SyncOutcome, NativeError> {
        let span = tracing::info_span!("webhook.native.notify", bytes = body.len());
        let result = async {
            let webhook_id = self.authenticate(&header, body)?.to_owned();
            let notification: Notification = serde_json::from_slice(body)
                .map_err(|e| NativeError::Malformed(e.to_string()))?;
            if notification.webhook.id != webhook_id {
                return Err(NativeError::Unauthorized(format!(
                    "the notification names webhook {:?} but is signed with the secret of {webhook_id:?}",
                    notification.webhook.id
                )));
            }
            if notification.base.id != self.inner.api.base_id() {
                return Err(NativeError::Malformed(format!(
                    "the notification is for base {:?}; this receiver reads base {:?}",
                    notification.base.id,
                    self.inner.api.base_id()
                )));
            }
            self.sync(&webhook_id).await
        }
        .instrument(span)
        .await;
        match &result {
            Ok(outcome) => tracing::info!(
                webhook = outcome.webhook_id,
                pages = outcome.pages,
                invalidated = outcome.invalidated,
                removed = outcome.removed,
                cursor = outcome.cursor,
                coalesced = outcome.coalesced,
                "native webhook notification applied"
            ),
            Err(err) => {
                tracing::warn!(status = err.status(), error = %err, "native webhook notification refused or failed")
            }
        }
        result
    }

    /// Size limit, then the MAC against every configured secret; the id of the one it matches.
    fn authenticate(
        &self,
        header: &impl Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<&str, NativeError> {
        if body.len() > self.inner.max_body {
            return Err(NativeError::TooLarge {
                size: body.len(),
                limit: self.inner.max_body,
            });
        }
        let mac = header(MAC_HEADER).ok_or_else(|| {
            NativeError::Unauthorized("missing X-Airtable-Content-MAC header".into())
        })?;
        let given = parse_mac_header(&mac).map_err(NativeError::Unauthorized)?;
        if self.inner.hooks.is_empty() {
            return Err(NativeError::Unauthorized(
                "no native webhook is configured on this receiver".into(),
            ));
        }
        self.inner
            .hooks
            .iter()
            .find(|(_, secret)| secret.verifies_raw(&given, body))
            .map(|(id, _)| id.as_str())
            .ok_or_else(|| {
                NativeError::Unauthorized(
                    "X-Airtable-Content-MAC does not match the body under any configured webhook secret"
                        .into(),
                )
            })
    }

    /// Pages and applies every payload of `webhook_id` from its saved cursor. Rounds of one
    /// webhook never overlap; a call that arrives while a round runs waits, and is answered by
    /// the next round (shared with every other call that arrived meanwhile) — so when this
    /// returns `Ok`, every payload that existed when it was called is applied.
    pub async fn sync(&self, webhook_id: &str) -> Result<SyncOutcome, NativeError> {
        let slot = {
            let mut slots = self.inner.slots.lock();
            Arc::clone(slots.entry(webhook_id.to_owned()).or_default())
        };
        let ticket = slot.arrivals.fetch_add(1, Ordering::SeqCst) + 1;
        let _turn = slot.gate.lock().await;
        if slot.completed.load(Ordering::SeqCst) >= ticket {
            return Ok(SyncOutcome {
                webhook_id: webhook_id.to_owned(),
                cursor: slot.cursor.load(Ordering::SeqCst),
                coalesced: true,
                ..SyncOutcome::default()
            });
        }
        let through = slot.arrivals.load(Ordering::SeqCst);
        let span = tracing::info_span!("webhook.native.round", webhook = webhook_id);
        let outcome = self.round(webhook_id).instrument(span).await?;
        slot.cursor.store(outcome.cursor, Ordering::SeqCst);
        if !outcome.more {
            slot.completed.fetch_max(through, Ordering::SeqCst);
        }
        Ok(outcome)
    }

    /// One round under the store lock.
    async fn round(&self, webhook_id: &str) -> Result<SyncOutcome, NativeError> {
        let lock_key = self
            .inner
            .cache
            .keys()
            .lock(&format!("webhook:{webhook_id}"));
        let Some(lock) = StoreLock::acquire_within(
            self.inner.cache.store(),
            &lock_key,
            self.inner.lock_ttl,
            self.inner.lock_wait,
            LOCK_POLL,
        )
        .await?
        else {
            return Err(NativeError::Busy {
                webhook: webhook_id.to_owned(),
            });
        };
        let result = self.page(webhook_id, &lock).await;
        match lock.release().await {
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, webhook = webhook_id, "could not release the webhook pager lock; it will expire")
            }
        }
        result
    }

    async fn page(&self, webhook_id: &str, lock: &StoreLock) -> Result<SyncOutcome, NativeError> {
        let store = self.store();
        let cursor_key = self.inner.cache.keys().webhook_cursor(webhook_id);
        let mut cursor = read_cursor(store, &cursor_key, webhook_id).await?;
        let mut outcome = SyncOutcome {
            webhook_id: webhook_id.to_owned(),
            cursor,
            ..SyncOutcome::default()
        };
        let mut schema_read = false;
        loop {
            if !lock.hold(self.inner.lock_ttl).await? {
                tracing::warn!(
                    webhook = webhook_id,
                    "webhook pager lock expired and was taken over"
                );
                return Err(NativeError::Busy {
                    webhook: webhook_id.to_owned(),
                });
            }
            let page = self
                .inner
                .api
                .payloads(webhook_id, cursor, self.inner.page_size)
                .await?;
            outcome.pages += 1;
            for payload in &page.payloads {
                self.apply(payload, &mut outcome, &mut schema_read).await?;
            }
            if page.cursor != cursor {
                let value = Bytes::from(page.cursor.to_string());
                store.set(&cursor_key, value, self.inner.cursor_ttl).await?;
                cursor = page.cursor;
                outcome.cursor = cursor;
            }
            tracing::debug!(
                payloads = page.payloads.len(),
                cursor,
                more = page.might_have_more,
                "native webhook page applied"
            );
            if !page.might_have_more || page.payloads.is_empty() {
                return Ok(outcome);
            }
            if self.inner.max_pages.is_some_and(|max| outcome.pages >= max) {
                outcome.more = true;
                return Ok(outcome);
            }
        }
    }

    /// Applies one payload: created and changed records invalidated, destroyed ones removed.
    async fn apply(
        &self,
        payload: &Payload,
        outcome: &mut SyncOutcome,
        schema_read: &mut bool,
    ) -> Result<(), NativeError> {
        if payload.error {
            outcome.error_payloads += 1;
            tracing::warn!(
                code = payload.code.as_deref().unwrap_or("unknown"),
                transaction = payload.base_transaction_number,
                "airtable sent an error payload; the webhook may need to be recreated"
            );
            return Ok(());
        }
        let cache = &self.inner.cache;
        for (table_id, changes) in &payload.changed_tables_by_id {
            let Some(model) = self.model_for(table_id, schema_read).await? else {
                outcome.unknown_tables += 1;
                tracing::warn!(
                    table = table_id.as_str(),
                    created = changes.created_records_by_id.len(),
                    changed = changes.changed_records_by_id.len(),
                    destroyed = changes.destroyed_record_ids.len(),
                    known = ?self.inner.models.tables(),
                    "native webhook payload for a table without a model skipped"
                );
                continue;
            };
            for id in changes
                .created_records_by_id
                .keys()
                .chain(changes.changed_records_by_id.keys())
            {
                model.invalidate(cache, id).await?;
                outcome.invalidated += 1;
            }
            for id in &changes.destroyed_record_ids {
                model.remove_gone(cache, id).await?;
                outcome.removed += 1;
            }
        }
        outcome.payloads += 1;
        Ok(())
    }

    /// The model of a payload's table: by id through the schema (read once per round when an
    /// id is not known yet), or by name when the payload keys tables by name.
    async fn model_for(
        &self,
        table_id: &str,
        schema_read: &mut bool,
    ) -> Result<Option<&Arc<dyn ModelOps>>, NativeError> {
        let known = self.inner.tables.read().get(table_id).cloned();
        let name = match known {
            Some(name) => Some(name),
            None if !*schema_read => {
                *schema_read = true;
                let tables = self.inner.api.tables().await?;
                let mut map = self.inner.tables.write();
                for table in tables {
                    map.insert(table.id, table.name);
                }
                map.get(table_id).cloned()
            }
            None => None,
        };
        let name = name.as_deref().unwrap_or(table_id);
        Ok(self.inner.models.by_table(name))
    }
}

/// The saved cursor, 1 when none (or an unreadable one, said in the log).
async fn read_cursor(store: &dyn Store, key: &str, webhook_id: &str) -> Result<u64, StoreError> {
    let Some(raw) = store.get(key).await? else {
        return Ok(1);
    };
    match std::str::from_utf8(&raw)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
    {
        Some(cursor) => Ok(cursor.max(1)),
        None => {
            tracing::warn!(
                webhook = webhook_id,
                "unreadable saved cursor; starting at 1"
            );
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_header_parsing_accepts_only_hex_hmac_sha256() {
        assert_eq!(parse_mac_header("hmac-sha256=00ff"), Ok(vec![0, 255]));
        assert_eq!(parse_mac_header(" HMAC-SHA256=00ff "), Ok(vec![0, 255]));
        assert!(parse_mac_header("sha1=00ff").is_err());
        assert!(parse_mac_header("hmac-sha256=zz").is_err());
        assert!(parse_mac_header("").is_err());
    }

    #[test]
    fn secret_signs_what_airtable_signs() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let secret = MacSecret::from_base64(&STANDARD.encode(b"Jefe"));
        let secret = match secret {
            Ok(secret) => secret,
            Err(err) => panic!("valid base64 refused: {err}"),
        };
        let mac = secret.sign(b"what do ya want for nothing?");
        assert_eq!(
            mac,
            "hmac-sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(secret.verifies(&mac, b"what do ya want for nothing?"));
        assert!(!secret.verifies(&mac, b"what do ya want for nothing!"));
        assert!(MacSecret::from_base64("not base64!").is_err());
        assert_eq!(MacSecret::from_base64(""), Err(MacSecretError::Empty));
    }

    #[test]
    fn payload_pages_parse_airtable_shape() {
        let page: PayloadPage = match serde_json::from_value(json!({
            "payloads": [{
                "timestamp": "2026-11-25T19:04:05.123Z",
                "baseTransactionNumber": 4,
                "payloadFormat": "v0",
                "actionMetadata": {"source": "client", "sourceMetadata": {}},
                "changedTablesById": {"tblA": {
                    "createdRecordsById": {"recA": {"createdTime": "x", "cellValuesByFieldId": {}}},
                    "changedRecordsById": {"recB": {"current": {"cellValuesByFieldId": {"fld1": 1}}}},
                    "destroyedRecordIds": ["recC"]
                }}
            }, {"timestamp": "t", "baseTransactionNumber": 5, "error": true, "code": "INVALID_FILTERS"}],
            "cursor": 6,
            "mightHaveMore": false
        })) {
            Ok(page) => page,
            Err(err) => panic!("airtable's shape refused: {err}"),
        };
        assert_eq!(page.cursor, 6);
        let table = &page.payloads[0].changed_tables_by_id["tblA"];
        assert!(table.created_records_by_id.contains_key("recA"));
        assert!(table.changed_records_by_id.contains_key("recB"));
        assert_eq!(table.destroyed_record_ids, vec!["recC".to_owned()]);
        assert!(page.payloads[1].error);
    }

    #[test]
    fn error_statuses_follow_the_kind() {
        let unauthorized = NativeError::Unauthorized("x".into());
        assert_eq!(
            (unauthorized.status(), unauthorized.code()),
            (401, "unauthorized")
        );
        let large = NativeError::TooLarge { size: 2, limit: 1 };
        assert_eq!(large.status(), 413);
        assert_eq!(NativeError::Malformed("x".into()).status(), 400);
        assert_eq!(
            NativeError::from(SourceError::Transient("x".into())).status(),
            502
        );
        let forbidden = NativeError::from(SourceError::Forbidden {
            kind: "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND".into(),
            message: "x".into(),
            scope: Some("webhook:manage"),
        });
        assert_eq!(
            (forbidden.status(), forbidden.code()),
            (502, "airtable_forbidden")
        );
        assert!(forbidden.to_string().contains("webhook:manage"));
        assert_eq!(
            NativeError::from(StoreError::Unavailable("x".into())).status(),
            503
        );
    }
}
