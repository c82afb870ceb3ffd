//! The shared server state, the request gate (auth, rate limit, latency, faults) and the routes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use serde_json::{json, Map, Value};

use super::api_error::ApiError;
use super::list::{list_records, project, Iterators, ListParams};
use super::ratelimit::{CallKind, CallStats, RateLimiter, Stats};
use super::store::{Store, WriteOp};
use super::tokens::{Token, RECORDS_READ, RECORDS_WRITE};

/// Most records one create, update or delete request may carry.
const MAX_BATCH: usize = 10;
/// How many list formulas are remembered.
const FORMULA_LOG_CAPACITY: usize = 256;
/// Airtable's URL length limit (see [`list_get`]).
const MAX_URL_LEN: usize = 16_000;
/// The origin Airtable's API is served from, counted into a request's URL length.
const API_ORIGIN: &str = "https://api.airtable.com";

/// Runtime knobs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The tokens accepted; the first is the default one ([`RunningAirtable::api_key`]).
    ///
    /// [`RunningAirtable::api_key`]: super::RunningAirtable::api_key
    pub(crate) tokens: Vec<Token>,
    pub(crate) latency: (Duration, Duration),
    pub(crate) rate_limit: Option<u32>,
    pub(crate) fail_next: usize,
    pub(crate) fail_next_status: u16,
    pub(crate) fail_ratio: f64,
    pub(crate) fail_ratio_status: u16,
}

impl Settings {
    pub(crate) fn new(
        tokens: Vec<Token>,
        latency: (Duration, Duration),
        rate_limit: Option<u32>,
    ) -> Self {
        Settings {
            tokens,
            latency,
            rate_limit,
            fail_next: 0,
            fail_next_status: 503,
            fail_ratio: 0.0,
            fail_ratio_status: 503,
        }
    }

    fn sample_latency(&self) -> Duration {
        let (min, max) = self.latency;
        if max <= min {
            min
        } else {
            rand::thread_rng().gen_range(min..=max)
        }
    }

    /// Decides whether this request gets an injected fault.
    fn take_fault(&mut self) -> Option<u16> {
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Some(self.fail_next_status);
        }
        if self.fail_ratio > 0.0 && rand::thread_rng().gen_bool(self.fail_ratio.min(1.0)) {
            return Some(self.fail_ratio_status);
        }
        None
    }
}

/// Everything the handlers and the [`RunningAirtable`](super::RunningAirtable) handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: RwLock<Store>,
    pub(crate) settings: Mutex<Settings>,
    pub(crate) limiter: Mutex<RateLimiter>,
    pub(crate) stats: Mutex<Stats>,
    pub(crate) formulas: Mutex<VecDeque<String>>,
    pub(crate) iterators: Mutex<Iterators>,
}

impl Shared {
    pub(crate) fn new(settings: Settings, store: Store) -> Shared {
        Shared {
            store: RwLock::new(store),
            settings: Mutex::new(settings),
            limiter: Mutex::new(RateLimiter::default()),
            stats: Mutex::new(Stats::default()),
            formulas: Mutex::new(VecDeque::new()),
            iterators: Mutex::new(Iterators::default()),
        }
    }

    /// What every records API request passes first: counting, authentication, the scope its
    /// kind needs, the rate limit (checked on arrival), the latency sleep and fault injection.
    async fn gate(&self, base: &str, kind: CallKind, headers: &HeaderMap) -> Result<(), ApiError> {
        // "List records" and "Get record" need data.records:read; create, update and delete
        // need data.records:write (the "Scope" line of each endpoint's "Requirements", e.g.
        // https://airtable.com/developers/web/api/get-record and
        // https://airtable.com/developers/web/api/delete-multiple-records).
        let scope = match kind {
            CallKind::Get | CallKind::List | CallKind::ListPost => RECORDS_READ,
            CallKind::Create | CallKind::Update | CallKind::Delete => RECORDS_WRITE,
        };
        self.gate_with(base, |s| s.count_kind(kind), &[scope], headers)
            .await
            .map(drop)
    }

    /// The token a request authenticates with (not counted).
    fn token(&self, headers: &HeaderMap) -> Option<Token> {
        let key = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))?
            .trim();
        let settings = self.settings.lock();
        settings.tokens.iter().find(|t| t.key() == key).cloned()
    }

    /// Authenticates a request addressed to no base (counted in the overall `total` and
    /// `unauthorized` only): 401 without a known token.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<Token, ApiError> {
        self.stats.lock().all.total += 1;
        self.token(headers).ok_or_else(|| {
            self.stats.lock().all.unauthorized += 1;
            ApiError::Unauthorized
        })
    }

    /// [`Shared::gate`] with the per-kind count given as `count_kind` (applied once the request
    /// is authenticated; a no-op for calls outside the records API's kinds) and the scopes the
    /// call needs (missing one: 403, counted in `forbidden`). Answers the token, for scopes
    /// that depend on the request's content.
    pub(crate) async fn gate_with(
        &self,
        base: &str,
        count_kind: impl Fn(&mut CallStats),
        scopes: &[&str],
        headers: &HeaderMap,
    ) -> Result<Token, ApiError> {
        self.stats.lock().count(base, |s| s.total += 1);
        let Some(token) = self.token(headers) else {
            self.stats.lock().count(base, |s| s.unauthorized += 1);
            return Err(ApiError::Unauthorized);
        };
        self.stats.lock().count(base, &count_kind);
        self.require(base, &token, scopes)?;
        let rate_limit = self.settings.lock().rate_limit;
        if let Some(limit) = rate_limit {
            if !self.limiter.lock().try_acquire(base, limit, Instant::now()) {
                self.stats.lock().count(base, |s| s.rate_limited += 1);
                return Err(ApiError::RateLimited);
            }
        }
        let (latency, fault) = {
            let mut settings = self.settings.lock();
            (settings.sample_latency(), settings.take_fault())
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Some(status) = fault {
            self.stats.lock().count(base, |s| s.errors_injected += 1);
            return Err(ApiError::Injected(status));
        }
        Ok(token)
    }

    /// 403 (counted in `forbidden`) unless `token` holds every one of `scopes`: Airtable's
    /// tokens "can only access API endpoints covered by the scopes granted to them"
    /// (<https://airtable.com/developers/web/api/scopes>).
    pub(crate) fn require(
        &self,
        base: &str,
        token: &Token,
        scopes: &[&str],
    ) -> Result<(), ApiError> {
        if scopes.iter().all(|s| token.has_scope(s)) {
            return Ok(());
        }
        self.stats.lock().count(base, |s| s.forbidden += 1);
        Err(ApiError::Forbidden)
    }

    fn log_formula(&self, params: &ListParams) {
        let mut log = self.formulas.lock();
        if log.len() >= FORMULA_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(params.filter_by_formula.clone().unwrap_or_default());
    }
}

type AppState = State<Arc<Shared>>;

/// The REST routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/v0/{base}/{table}",
            get(list_get)
                .post(create)
                .patch(update_many_merge)
                .put(update_many_replace)
                .delete(delete_many),
        )
        .route(
            "/v0/{base}/{table}/listRecords",
            post(list_post).get(get_list_records_id),
        )
        .route(
            "/v0/{base}/{table}/{id}",
            get(get_record)
                .patch(update_one_merge)
                .put(update_one_replace)
                .delete(delete_one),
        )
        .merge(super::webhooks::routes())
        .merge(super::tokens::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(shared)
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "NOT_FOUND"}))).into_response()
}

fn respond(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn get_record(
    State(shared): AppState,
    Path((base, table, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = shared.gate(&base, CallKind::Get, &headers).await {
        return e.into_response();
    }
    let store = shared.store.read();
    let result = store
        .table(&base, &table)
        .map_err(ApiError::from)
        .and_then(|t| {
            t.get(&id)
                .map(|r| project(r, None))
                .ok_or(ApiError::NotFound)
        });
    respond(result)
}

/// `GET …/listRecords` asks for a record with that id, which cannot exist.
async fn get_list_records_id(
    state: AppState,
    Path((base, table)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    get_record(
        state,
        Path((base, table, "listRecords".to_owned())),
        headers,
    )
    .await
}

async fn list_get(
    State(shared): AppState,
    Path((base, table)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(e) = shared.gate(&base, CallKind::List, &headers).await {
        return e.into_response();
    }
    // "Requests to Airtable's Web API are limited to a 16,000-character URL length" and a
    // longer list request must use `POST …/listRecords` instead
    // (https://support.airtable.com/docs/enforcement-of-url-length-limit-for-web-api-requests;
    // airtable.js 0.11.5 switches to POST above 15,000 characters for the same reason). The
    // origin is not part of what reaches us, so the path and query are measured, plus the
    // shortest origin Airtable has (`https://api.airtable.com`).
    if API_ORIGIN.len() + uri.to_string().len() > MAX_URL_LEN {
        return ApiError::UrlTooLong.into_response();
    }
    let result = ListParams::from_query(query.as_deref().unwrap_or(""))
        .and_then(|params| list(&shared, &base, &table, &params));
    respond(result)
}

async fn list_post(
    State(shared): AppState,
    Path((base, table)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = shared.gate(&base, CallKind::ListPost, &headers).await {
        return e.into_response();
    }
    let result =
        ListParams::from_body(&body).and_then(|params| list(&shared, &base, &table, &params));
    respond(result)
}

fn list(shared: &Shared, base: &str, table: &str, params: &ListParams) -> Result<Value, ApiError> {
    shared.log_formula(params);
    let store = shared.store.read();
    let t = store.table(base, table).map_err(ApiError::from)?;
    list_records(base, t, params, &shared.iterators)
}

async fn create(
    State(shared): AppState,
    Path((base, table)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = shared.gate(&base, CallKind::Create, &headers).await {
        return e.into_response();
    }
    respond(create_records(&shared, &base, &table, &body))
}

fn create_records(
    shared: &Shared,
    base: &str,
    table: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let body = parse_object(body)?;
    let (many, items) = match (body.get("records"), body.get("fields")) {
        (Some(Value::Array(records)), _) => {
            check_batch(records.len())?;
            let fields = records
                .iter()
                .map(|r| match r {
                    Value::Object(record) => fields_of(record),
                    _ => Err(ApiError::InvalidRequest),
                })
                .collect::<Result<Vec<_>, _>>()?;
            (true, fields)
        }
        (Some(_), _) => return Err(ApiError::InvalidRequest),
        (None, Some(_)) => (false, vec![fields_of(&body)?]),
        (None, None) => return Err(ApiError::InvalidRequest),
    };
    let mut store = shared.store.write();
    store.table(base, table).map_err(ApiError::from)?;
    let mut created = Vec::with_capacity(items.len());
    for fields in items {
        let op = WriteOp::Create {
            id: None,
            created_time: None,
            fields,
        };
        let record = store
            .write(base, table, op)
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        created.push(project(&record, None));
    }
    Ok(batch_answer(many, created))
}

async fn update_one_merge(
    state: AppState,
    path: Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    update_one(state, path, headers, body, false).await
}

async fn update_one_replace(
    state: AppState,
    path: Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    update_one(state, path, headers, body, true).await
}

async fn update_one(
    State(shared): AppState,
    Path((base, table, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
    replace: bool,
) -> Response {
    if let Err(e) = shared.gate(&base, CallKind::Update, &headers).await {
        return e.into_response();
    }
    let result = parse_object(&body)
        .and_then(|body| fields_of(&body))
        .and_then(|fields| {
            update_records(&shared, &base, &table, vec![(id, fields)], replace, false)
        });
    respond(result)
}

async fn update_many_merge(
    state: AppState,
    path: Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    update_many(state, path, headers, body, false).await
}

async fn update_many_replace(
    state: AppState,
    path: Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    update_many(state, path, headers, body, true).await
}

async fn update_many(
    State(shared): AppState,
    Path((base, table)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
    replace: bool,
) -> Response {
    if let Err(e) = shared.gate(&base, CallKind::Update, &headers).await {
        return e.into_response();
    }
    let result = parse_object(&body).and_then(|body| {
        let Some(Value::Array(records)) = body.get("records") else {
            return Err(ApiError::InvalidRequest);
        };
        check_batch(records.len())?;
        let updates = records
            .iter()
            .map(|r| {
                let Value::Object(record) = r else {
                    return Err(ApiError::InvalidRequest);
                };
                let id = record
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or(ApiError::InvalidRequest)?;
                Ok((id.to_owned(), fields_of(record)?))
            })
            .collect::<Result<Vec<_>, _>>()?;
        update_records(&shared, &base, &table, updates, replace, true)
    });
    respond(result)
}

/// Updates all the records or none: a missing id fails the request before anything changes.
fn update_records(
    shared: &Shared,
    base: &str,
    table: &str,
    updates: Vec<(String, Map<String, Value>)>,
    replace: bool,
    many: bool,
) -> Result<Value, ApiError> {
    let mut store = shared.store.write();
    let t = store.table(base, table).map_err(ApiError::from)?;
    if updates.iter().any(|(id, _)| !t.contains(id)) {
        return Err(ApiError::NotFound);
    }
    let mut updated = Vec::with_capacity(updates.len());
    for (id, fields) in updates {
        let op = WriteOp::Update {
            id,
            fields,
            replace,
        };
        let record = store
            .write(base, table, op)
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound)?;
        updated.push(project(&record, None));
    }
    Ok(batch_answer(many, updated))
}

async fn delete_one(
    State(shared): AppState,
    Path((base, table, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = shared.gate(&base, CallKind::Delete, &headers).await {
        return e.into_response();
    }
    respond(delete_records(&shared, &base, &table, vec![id], false))
}

async fn delete_many(
    State(shared): AppState,
    Path((base, table)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(e) = shared.gate(&base, CallKind::Delete, &headers).await {
        return e.into_response();
    }
    let query = query.unwrap_or_default();
    let ids: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "records[]" || key == "records" || is_indexed_records(key))
        .map(|(_, value)| value.into_owned())
        .collect();
    let result =
        check_batch(ids.len()).and_then(|()| delete_records(&shared, &base, &table, ids, true));
    respond(result)
}

fn is_indexed_records(key: &str) -> bool {
    key.strip_prefix("records[")
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|inner| inner.chars().all(|c| c.is_ascii_digit()))
}

/// Deletes all the records or none.
fn delete_records(
    shared: &Shared,
    base: &str,
    table: &str,
    ids: Vec<String>,
    many: bool,
) -> Result<Value, ApiError> {
    let mut store = shared.store.write();
    let t = store.table(base, table).map_err(ApiError::from)?;
    if ids.iter().any(|id| !t.contains(id)) {
        return Err(ApiError::NotFound);
    }
    let mut deleted = Vec::with_capacity(ids.len());
    for id in ids {
        store
            .write(base, table, WriteOp::Delete { id: id.clone() })
            .map_err(ApiError::from)?;
        deleted.push(json!({"id": id, "deleted": true}));
    }
    Ok(batch_answer(many, deleted))
}

fn batch_answer(many: bool, mut records: Vec<Value>) -> Value {
    if many {
        json!({ "records": records })
    } else {
        records.pop().unwrap_or(Value::Null)
    }
}

fn check_batch(len: usize) -> Result<(), ApiError> {
    if len == 0 || len > MAX_BATCH {
        return Err(ApiError::InvalidRecords(format!(
            "Invalid records: a request may carry 1 to {MAX_BATCH} records, got {len}"
        )));
    }
    Ok(())
}

/// The body as a JSON object; anything else is Airtable's `INVALID_REQUEST_UNKNOWN`.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::InvalidRequest),
    }
}

/// The `fields` object of a record in a request body (missing = no fields).
fn fields_of(record: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    match record.get("fields") {
        None => Ok(Map::new()),
        Some(Value::Object(fields)) => Ok(fields.clone()),
        Some(_) => Err(ApiError::InvalidRequest),
    }
}
