//! The shared server state, the request gate (auth, rate limit, latency, faults) and the routes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::api_error::ApiError;
use super::list::{list_records, project, ListParams};
use super::ratelimit::CallKind;
use super::shared::Shared;
use super::store::WriteOp;

/// Most records one create, update or delete request may carry.
const MAX_BATCH: usize = 10;
/// Airtable's URL length limit (see [`list_get`]).
const MAX_URL_LEN: usize = 16_000;
/// The origin Airtable's API is served from, counted into a request's URL length.
const API_ORIGIN: &str = "https://api.airtable.com";

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
        .merge(super::whoami::routes())
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
