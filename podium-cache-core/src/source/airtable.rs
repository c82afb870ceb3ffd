//! [`AirtableSource`]: the Airtable REST client (rate limit, retries, paging).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::Instrument;

use super::formula;
use super::limiter::{window_for_rate, Permit, RateLimiter};
use super::scopes::{
    ScopeNeeds, ScopeReport, TokenInfo, RECORDS_READ, RECORDS_WRITE, SCHEMA_READ, WEBHOOK_MANAGE,
};
use super::shared_limiter::{SharedLimiter, SharedLimiterStats, SharedPermit};
use super::wire::{DeleteManyWire, DeletedWire, ListWire, RecordWire};
use super::{ListQuery, Source, SourceError, SourceRecord, SourceStats};
use crate::config::Secret;
use crate::store::Store;

/// Airtable's page size limit, and the most ids one `OR(RECORD_ID()=…)` batch asks for.
pub const MAX_PAGE: usize = 100;
/// Airtable's request budget, `(max requests, window)`: "a rate limit of 5 requests per second
/// (per base)" (<https://support.airtable.com/docs/managing-api-call-limits-in-airtable>). The client's default
/// [`rate_limit`](AirtableSourceBuilder::rate_limit), and the engine's source budget when it is
/// built from settings.
pub const RATE_LIMIT: (usize, Duration) = (5, Duration::from_secs(1));
/// Airtable deletes at most 10 records per request.
pub const MAX_DELETE: usize = 10;
/// Above this URL length a list call is sent as `POST …/listRecords` (Airtable's limit is 16k).
const MAX_URL_LEN: usize = 15_000;

/// Configures an [`AirtableSource`].
///
/// ```
/// use podium_cache_core::source::AirtableSource;
/// use std::time::Duration;
/// let source = AirtableSource::builder("patXXXX", "appXXXXXXXXXXXXXX")
///     .api_url("http://127.0.0.1:8081")
///     .rate_limit(5, Duration::from_secs(1))
///     .build()?;
/// # Ok::<(), podium_cache_core::source::SourceError>(())
/// ```
#[derive(Clone, Debug)]
pub struct AirtableSourceBuilder {
    api_key: Secret,
    base_id: String,
    api_url: String,
    max_per_window: usize,
    window: Duration,
    rate_limit_pause: Duration,
    max_retries: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    request_timeout: Duration,
    limiter_scope: Option<String>,
    shared_limit: Option<SharedLimit>,
    local_rps: Option<f64>,
}

/// The store and key of a budget shared by every instance.
#[derive(Clone)]
struct SharedLimit {
    store: Arc<dyn Store>,
    key: String,
}

impl std::fmt::Debug for SharedLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimit")
            .field("store", &self.store.name())
            .field("key", &self.key)
            .finish()
    }
}

impl AirtableSourceBuilder {
    /// The API origin (default `https://api.airtable.com`); a URL ending in `/v0` works too.
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = url.into();
        self
    }

    /// At most `max` requests in any `window` per base, for every client in the process
    /// (default 5 per second, Airtable's limit; a slot's second starts when its answer
    /// arrived, so the limit holds as the server counts, whatever the network's jitter).
    pub fn rate_limit(mut self, max: usize, window: Duration) -> Self {
        self.max_per_window = max;
        self.window = window;
        self
    }

    /// Keeps the budget in `store` under `key` (build it with
    /// [`Keys::rate_limit`](crate::key::Keys::rate_limit)), shared by every instance that
    /// uses the same store and key: together they never exceed [`rate_limit`](Self::rate_limit)
    /// as the server counts (see [`shared_limiter`](super::shared_limiter)). While the store
    /// is unreachable this instance keeps to [`local_rps`](Self::local_rps). Without it (the
    /// default) the budget is the process's own.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use podium_cache_core::key::Keys;
    /// use podium_cache_core::source::AirtableSource;
    /// use podium_cache_core::store::MemoryStore; // a Redis or cluster store in production
    /// let source = AirtableSource::builder("patXXXX", "appXXXXXXXXXXXXXX")
    ///     .shared_limit(Arc::new(MemoryStore::new(10)), Keys::default().rate_limit("appXXXXXXXXXXXXXX"))
    ///     .local_rps(2.5)
    ///     .build()?;
    /// # Ok::<(), podium_cache_core::source::SourceError>(())
    /// ```
    pub fn shared_limit(mut self, store: Arc<dyn Store>, key: impl Into<String>) -> Self {
        self.shared_limit = Some(SharedLimit {
            store,
            key: key.into(),
        });
        self
    }

    /// Requests per second this instance allows itself while the shared budget's store is
    /// unreachable (setting `airtable_local_rps`; default: the full
    /// [`rate_limit`](Self::rate_limit)). Rounded down to whole requests per second, or one
    /// request per `1 / rps` seconds below 1 (see [`window_for_rate`]).
    pub fn local_rps(mut self, rps: f64) -> Self {
        self.local_rps = Some(rps);
        self
    }

    /// The name this client's in-process limiter is shared under (default: the API origin and
    /// base id, so every client of one base in the process shares one). Clients with different
    /// scopes have independent local limiters, e.g. to run several "instances" in one process.
    pub fn limiter_scope(mut self, scope: impl Into<String>) -> Self {
        self.limiter_scope = Some(scope.into());
        self
    }

    /// How long a 429 pauses the base (default 30 s, as Airtable asks).
    pub fn rate_limit_pause(mut self, pause: Duration) -> Self {
        self.rate_limit_pause = pause;
        self
    }

    /// Retries after 429, 5xx and timeouts (default 4), with exponential back-off from `base`
    /// (default 200 ms) up to `max` (default 5 s), each delay with a random jitter of up to
    /// itself (capped at `max`) so clients that failed together do not retry together (as
    /// airtable.js does, `src/exponential_backoff_with_jitter.ts`). A 429 waits out the base's
    /// pause instead.
    pub fn retries(mut self, max_retries: u32, base: Duration, max: Duration) -> Self {
        self.max_retries = max_retries;
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// Timeout of one HTTP request (default 15 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<AirtableSource, SourceError> {
        let trimmed = self.api_url.trim_end_matches('/');
        let origin = trimmed.strip_suffix("/v0").unwrap_or(trimmed);
        let base_url = Url::parse(&format!("{origin}/v0/"))
            .map_err(|e| SourceError::InvalidRequest(format!("airtable_api_url: {e}")))?;
        if self.base_id.is_empty() {
            return Err(SourceError::InvalidRequest(
                "airtable_base_id is empty".to_owned(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .pool_max_idle_per_host(16)
            .build()
            .map_err(|e| SourceError::InvalidRequest(format!("http client: {e}")))?;
        let scope = self
            .limiter_scope
            .clone()
            .unwrap_or_else(|| format!("{origin}|{}", self.base_id));
        let limiter = match &self.shared_limit {
            None => Limiter::Local(RateLimiter::shared(
                &scope,
                self.max_per_window,
                self.window,
            )),
            Some(shared) => {
                let whole_rate = self.max_per_window as f64 / self.window.as_secs_f64().max(1e-3);
                let (max, window) = window_for_rate(self.local_rps.unwrap_or(whole_rate));
                let fallback = RateLimiter::shared(&format!("{scope}|fallback"), max, window);
                let limiter = SharedLimiter::new(
                    Arc::clone(&shared.store),
                    shared.key.clone(),
                    self.max_per_window,
                    self.window,
                    fallback,
                )
                // A slot is in flight at most one request timeout (reqwest's covers the body).
                .with_lease(self.request_timeout + self.window);
                Limiter::Shared(Arc::new(limiter))
            }
        };
        Ok(AirtableSource {
            inner: Arc::new(Inner {
                http,
                base_url,
                limiter,
                config: self,
                requests: AtomicU64::new(0),
                rate_limited: AtomicU64::new(0),
                retries: AtomicU64::new(0),
            }),
        })
    }
}

/// The Airtable REST client: Bearer token, one base; get, list (with `filterByFormula`,
/// `fields[]`, paging, `POST listRecords` for long formulas), delete in batches of 10. Every
/// request passes the limiter of its base (process-wide, or shared by every instance through the
/// store with [`AirtableSourceBuilder::shared_limit`]); a 429 pauses the base and retries; 5xx
/// and timeouts retry with bounded exponential back-off. Decides by HTTP status only.
#[derive(Clone)]
pub struct AirtableSource {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Url,
    limiter: Limiter,
    config: AirtableSourceBuilder,
    requests: AtomicU64,
    rate_limited: AtomicU64,
    retries: AtomicU64,
}

impl std::fmt::Debug for AirtableSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AirtableSource")
            .field("base_url", &self.inner.base_url.as_str())
            .field("base_id", &self.inner.config.base_id)
            .finish_non_exhaustive()
    }
}

/// The budget every request passes: the process's own, or one shared through the store.
enum Limiter {
    Local(Arc<RateLimiter>),
    Shared(Arc<SharedLimiter>),
}

/// A request's slot, held until its answer arrived.
enum Held<'a> {
    Local(Permit<'a>),
    Shared(SharedPermit<'a>),
}

impl Held<'_> {
    /// The answer is in: the slot's window starts now (see `limiter`).
    fn release(self) {
        match self {
            Held::Local(permit) => drop(permit),
            Held::Shared(permit) => drop(permit),
        }
    }
}

impl Limiter {
    async fn acquire(&self) -> Held<'_> {
        match self {
            Limiter::Local(limiter) => Held::Local(limiter.acquire().await),
            Limiter::Shared(limiter) => Held::Shared(limiter.acquire().await),
        }
    }

    /// Resolves when no request of this process waits for the budget. Only a shared budget
    /// can make one wait unforeseen: the engine's batcher keeps its own account of the local
    /// one (the same counting), so it never sends into a local limiter that is full.
    async fn ready(&self) {
        if let Limiter::Shared(limiter) = self {
            limiter.ready().await;
        }
    }

    async fn pause(&self, duration: Duration) {
        match self {
            Limiter::Local(limiter) => limiter.pause(duration),
            Limiter::Shared(limiter) => limiter.pause(duration).await,
        }
    }
}

/// What one HTTP exchange produced, before retries are decided.
enum Attempt {
    Done(StatusCode, bytes::Bytes),
    Retry(SourceError),
}

impl AirtableSource {
    /// A builder with Airtable's defaults.
    pub fn builder(
        api_key: impl Into<String>,
        base_id: impl Into<String>,
    ) -> AirtableSourceBuilder {
        AirtableSourceBuilder {
            api_key: Secret::new(api_key),
            base_id: base_id.into(),
            api_url: "https://api.airtable.com".to_owned(),
            max_per_window: RATE_LIMIT.0,
            window: RATE_LIMIT.1,
            rate_limit_pause: Duration::from_secs(30),
            max_retries: 4,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            limiter_scope: None,
            shared_limit: None,
            local_rps: None,
        }
    }

    /// What the shared limiter did so far; `None` when the budget is the process's own (no
    /// [`shared_limit`](AirtableSourceBuilder::shared_limit)).
    pub fn shared_limiter_stats(&self) -> Option<SharedLimiterStats> {
        match &self.inner.limiter {
            Limiter::Shared(limiter) => Some(limiter.stats()),
            Limiter::Local(_) => None,
        }
    }

    /// The base id this client talks to.
    pub fn base_id(&self) -> &str {
        &self.inner.config.base_id
    }

    /// The API origin's `/v0/` root this client sends to.
    pub fn api_root(&self) -> &Url {
        &self.inner.base_url
    }

    /// One request to any endpoint under `/v0/` (e.g. `["bases", base_id, "webhooks"]` or
    /// `["meta", "bases", base_id, "tables"]`), with the same key, process-wide rate limiter,
    /// retries and counters as the records calls. A 2xx answers its body; any other status is
    /// the typed error the records calls give for it (404 → [`SourceError::NotFound`], 403 →
    /// [`SourceError::Forbidden`] naming the scope webhook and schema calls need, …).
    pub async fn api_call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<bytes::Bytes, SourceError> {
        let mut url = self.inner.base_url.clone();
        url.path_segments_mut()
            .map_err(|_| SourceError::InvalidRequest("airtable_api_url cannot be a base".into()))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in query {
                pairs.append_pair(key, value);
            }
        }
        let (status, bytes) = self.send(method, url, body).await?;
        if status.is_success() {
            return Ok(bytes);
        }
        match decode::<serde::de::IgnoredAny>(status, &bytes, scope_of(segments)) {
            Err(err) => Err(err),
            Ok(_) => Err(SourceError::InvalidRequest(format!(
                "unexpected status {status}"
            ))),
        }
    }

    /// `GET /v0/meta/whoami`: the token's user, and its scopes when Airtable reports them
    /// (OAuth tokens; "No scopes are required for this endpoint",
    /// <https://airtable.com/developers/web/api/get-user-id-scopes>).
    pub async fn whoami(&self) -> Result<TokenInfo, SourceError> {
        let span = tracing::debug_span!("airtable.whoami");
        async {
            let bytes = self
                .api_call(Method::GET, &["meta", "whoami"], &[], None)
                .await?;
            serde_json::from_slice(&bytes).map_err(|e| SourceError::Decode(e.to_string()))
        }
        .instrument(span)
        .await
    }

    /// [`whoami`](Self::whoami), compared with the scopes `needs` lists: the report names each
    /// missing scope with the feature that needs it (see [`ScopeReport::warn`]).
    pub async fn check_scopes(&self, needs: &ScopeNeeds) -> Result<ScopeReport, SourceError> {
        Ok(ScopeReport::new(self.whoami().await?, needs))
    }

    fn url(&self, segments: &[&str]) -> Result<Url, SourceError> {
        let mut url = self.inner.base_url.clone();
        url.path_segments_mut()
            .map_err(|_| SourceError::InvalidRequest("airtable_api_url cannot be a base".into()))?
            .pop_if_empty()
            .push(&self.inner.config.base_id)
            .extend(segments);
        Ok(url)
    }

    /// Sends one request with limiter, retries and back-off; returns the final status and body.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<(StatusCode, bytes::Bytes), SourceError> {
        let config = &self.inner.config;
        let mut attempt = 0u32;
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(config.backoff_base)
            .with_max_delay(config.backoff_max)
            .with_max_times(config.max_retries as usize)
            .with_jitter()
            .build();
        loop {
            let permit = self.inner.limiter.acquire().await;
            self.inner.requests.fetch_add(1, Ordering::Relaxed);
            let outcome = self.exchange(method.clone(), url.clone(), body).await;
            // The answer is in: the slot's window starts now (see `limiter`).
            permit.release();
            let err = match outcome {
                Attempt::Done(status, bytes) if status == StatusCode::TOO_MANY_REQUESTS => {
                    self.inner.rate_limited.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(pause = ?config.rate_limit_pause, "airtable answered 429; pausing the base");
                    self.inner.limiter.pause(config.rate_limit_pause).await;
                    SourceError::RateLimited(String::from_utf8_lossy(&bytes).into_owned())
                }
                Attempt::Done(status, bytes) if status.is_server_error() => {
                    SourceError::Transient(format!("{status}: {}", String::from_utf8_lossy(&bytes)))
                }
                Attempt::Done(status, bytes) => return Ok((status, bytes)),
                Attempt::Retry(err) => err,
            };
            if attempt >= config.max_retries {
                return Err(err);
            }
            attempt += 1;
            self.inner.retries.fetch_add(1, Ordering::Relaxed);
            if !matches!(err, SourceError::RateLimited(_)) {
                let delay = delays
                    .next()
                    .unwrap_or(config.backoff_max)
                    .min(config.backoff_max);
                tracing::debug!(attempt, ?delay, error = %err, "retrying airtable request");
                tokio::time::sleep(delay).await;
            }
        }
    }

    async fn exchange(&self, method: Method, url: Url, body: Option<&Value>) -> Attempt {
        let mut request = self
            .inner
            .http
            .request(method, url)
            .bearer_auth(self.inner.config.api_key.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Ok(bytes) => Attempt::Done(status, bytes),
                    Err(e) => Attempt::Retry(SourceError::Transient(format!("reading body: {e}"))),
                }
            }
            Err(e) => Attempt::Retry(SourceError::Transient(e.to_string())),
        }
    }

    async fn list_page(
        &self,
        table: &str,
        query: &ListQuery,
        offset: Option<&str>,
    ) -> Result<ListWire, SourceError> {
        let mut url = self.url(&[table])?;
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(filter) = &query.filter {
                pairs.append_pair("filterByFormula", filter);
            }
            for field in &query.fields {
                pairs.append_pair("fields[]", field);
            }
            pairs.append_pair("pageSize", &MAX_PAGE.to_string());
            if let Some(max) = query.max_records {
                pairs.append_pair("maxRecords", &max.to_string());
            }
            if let Some(offset) = offset {
                pairs.append_pair("offset", offset);
            }
        }
        let (status, bytes) = if url.as_str().len() > MAX_URL_LEN {
            let mut body = json!({ "pageSize": MAX_PAGE });
            if let Some(filter) = &query.filter {
                body["filterByFormula"] = json!(filter);
            }
            if !query.fields.is_empty() {
                body["fields"] = json!(query.fields);
            }
            if let Some(max) = query.max_records {
                body["maxRecords"] = json!(max);
            }
            if let Some(offset) = offset {
                body["offset"] = json!(offset);
            }
            let url = self.url(&[table, "listRecords"])?;
            self.send(Method::POST, url, Some(&body)).await?
        } else {
            self.send(Method::GET, url, None).await?
        };
        decode(status, &bytes, Some(RECORDS_READ))
    }
}

/// Whether `id` is an Airtable record id: `rec` followed by 14 ASCII letters or digits.
///
/// ```
/// use podium_cache_core::source::airtable::is_record_id;
/// assert!(is_record_id("recAbC123dEf456gH"));
/// assert!(!is_record_id("recAbC123"));
/// assert!(!is_record_id("rec{AbC123dEf456}"));
/// ```
pub fn is_record_id(id: &str) -> bool {
    id.len() == 17 && id.starts_with("rec") && id[3..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The scope an `api_call` needs, by its path: webhooks need `webhook:manage` ("always required
/// for all webhooks API endpoints", <https://airtable.com/developers/web/api/webhooks-overview>),
/// the base schema `schema.bases:read`
/// (<https://airtable.com/developers/web/api/get-base-schema>); `whoami` none.
fn scope_of(segments: &[&str]) -> Option<&'static str> {
    match segments {
        ["bases", _, "webhooks", ..] => Some(WEBHOOK_MANAGE),
        ["meta", "bases", _, "tables", ..] => Some(SCHEMA_READ),
        _ => None,
    }
}

/// Airtable's error body: `{"error": {"type", "message"}}` or `{"error": "NOT_FOUND"}`
/// (both shapes: <https://airtable.com/developers/web/api/errors>; airtable.js reads `type`
/// and `message` from the object form, `src/base.ts` `_checkStatusForError`).
#[derive(Deserialize)]
struct ErrorWire {
    error: ErrorDetail,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorDetail {
    Typed {
        #[serde(default, rename = "type")]
        kind: String,
        #[serde(default)]
        message: String,
    },
    Plain(String),
}

/// The 403 as a typed error; `scope` is what the refused call needs.
fn forbidden(bytes: &[u8], scope: Option<&'static str>) -> SourceError {
    let (kind, message) = match serde_json::from_slice::<ErrorWire>(bytes) {
        Ok(ErrorWire {
            error: ErrorDetail::Typed { kind, message },
        }) => (kind, message),
        Ok(ErrorWire {
            error: ErrorDetail::Plain(kind),
        }) => (kind, String::new()),
        Err(_) => (String::new(), String::from_utf8_lossy(bytes).into_owned()),
    };
    SourceError::Forbidden {
        kind,
        message,
        scope,
    }
}

/// Whether Airtable refused a request for what it asked (404, 403, 422 and other 4xx), rather
/// than for the credentials (401), the rate (429) or an outage (5xx).
fn is_refusal(error: &SourceError) -> bool {
    matches!(
        error,
        SourceError::NotFound(_) | SourceError::Forbidden { .. } | SourceError::InvalidRequest(_)
    )
}

/// Maps a final status and body to a value or a typed error, by status only (DESIGN: "404 is
/// not found, whatever the body"); `scope` is the scope the call needs, named in a 403.
fn decode<T: for<'de> Deserialize<'de>>(
    status: StatusCode,
    bytes: &[u8],
    scope: Option<&'static str>,
) -> Result<T, SourceError> {
    let text = || String::from_utf8_lossy(bytes).into_owned();
    match status.as_u16() {
        200..=299 => serde_json::from_slice(bytes).map_err(|e| SourceError::Decode(e.to_string())),
        401 => Err(SourceError::Unauthorized(text())),
        // 403 is never "not found": Airtable answers it for an unknown base or table as for a
        // missing scope (https://airtable.com/developers/web/api/errors, "403 Forbidden").
        403 => Err(forbidden(bytes, scope)),
        404 => Err(SourceError::NotFound(text())),
        429 => Err(SourceError::RateLimited(text())),
        500..=599 => Err(SourceError::Transient(text())),
        _ => Err(SourceError::InvalidRequest(format!("{status}: {}", text()))),
    }
}

#[async_trait]
impl Source for AirtableSource {
    async fn get(&self, table: &str, id: &str) -> Result<Option<SourceRecord>, SourceError> {
        let span = tracing::debug_span!("airtable.get", table, id);
        async {
            let url = self.url(&[table, id])?;
            let (status, bytes) = self.send(Method::GET, url, None).await?;
            match decode::<RecordWire>(status, &bytes, Some(RECORDS_READ)) {
                Ok(record) => Ok(Some(record.into())),
                Err(SourceError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            }
        }
        .instrument(span)
        .await
    }

    async fn get_many(
        &self,
        table: &str,
        ids: &[String],
    ) -> Result<Vec<SourceRecord>, SourceError> {
        let span = tracing::debug_span!("airtable.get_many", table, ids = ids.len());
        async {
            let mut out = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(MAX_PAGE) {
                let query = ListQuery {
                    filter: Some(formula::record_id_in(chunk)),
                    ..ListQuery::default()
                };
                out.extend(self.list(table, &query).await?);
            }
            Ok(out)
        }
        .instrument(span)
        .await
    }

    async fn list(&self, table: &str, query: &ListQuery) -> Result<Vec<SourceRecord>, SourceError> {
        let span = tracing::debug_span!("airtable.list", table, filter = query.filter.as_deref());
        async {
            let mut records = Vec::new();
            let mut offset: Option<String> = None;
            loop {
                let page = self.list_page(table, query, offset.as_deref()).await?;
                records.extend(page.records.into_iter().map(SourceRecord::from));
                match page.offset {
                    Some(next) if query.max_records.is_none_or(|m| records.len() < m) => {
                        offset = Some(next)
                    }
                    _ => return Ok(records),
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn delete(&self, table: &str, ids: &[String]) -> Result<Vec<String>, SourceError> {
        let span = tracing::debug_span!("airtable.delete", table, ids = ids.len());
        async {
            let mut deleted = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(MAX_DELETE) {
                let mut url = self.url(&[table])?;
                {
                    let mut pairs = url.query_pairs_mut();
                    for id in chunk {
                        pairs.append_pair("records[]", id);
                    }
                }
                let (status, bytes) = self.send(Method::DELETE, url, None).await?;
                match decode::<DeleteManyWire>(status, &bytes, Some(RECORDS_WRITE)) {
                    Ok(reply) => deleted.extend(
                        reply
                            .records
                            .into_iter()
                            .filter(|r| r.deleted)
                            .map(|r| r.id),
                    ),
                    // Airtable refuses the whole batch for one id it will not delete (missing:
                    // 404; not permitted: 403; invalid: 422, the "4xx mostly represent user
                    // error" of https://airtable.com/developers/web/api/errors): delete the
                    // batch one by one, so the other ids are not held back by it.
                    Err(e) if chunk.len() > 1 && is_refusal(&e) => {
                        for id in chunk {
                            let url = self.url(&[table, id])?;
                            let (status, bytes) = self.send(Method::DELETE, url, None).await?;
                            match decode::<DeletedWire>(status, &bytes, Some(RECORDS_WRITE)) {
                                Ok(reply) if reply.deleted => deleted.push(reply.id),
                                Ok(_) | Err(SourceError::NotFound(_)) => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    Err(SourceError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(deleted)
        }
        .instrument(span)
        .await
    }

    /// Airtable record ids are `rec` followed by 14 letters or digits.
    fn is_valid_id(&self, id: &str) -> bool {
        is_record_id(id)
    }

    fn stats(&self) -> SourceStats {
        SourceStats {
            requests: self.inner.requests.load(Ordering::Relaxed),
            rate_limited: self.inner.rate_limited.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
        }
    }

    fn call_budget(&self) -> Duration {
        let c = &self.inner.config;
        c.request_timeout
            .saturating_add(c.rate_limit_pause)
            .saturating_mul(c.max_retries + 1)
    }

    async fn ready(&self) {
        self.inner.limiter.ready().await;
    }
}
