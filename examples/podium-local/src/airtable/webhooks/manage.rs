//! Creating, listing, refreshing, deleting and muting webhooks.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;
use serde_json::{json, Value};

use super::api::{base_exists, gate, respond, AppState};
use super::hook::{expiry_from, timestamp, PingState, Webhook};
use super::notifier::Notifier;
use crate::airtable::api_error::ApiError;
use crate::airtable::shared::Shared;
use crate::airtable::store::{random_id, Store};
use crate::airtable::tokens::{Token, WEBHOOK_MANAGE};

/// How many webhooks a base may have (see the module docs).
pub const MAX_WEBHOOKS_PER_BASE: usize = 10;
/// The data types a specification may name.
const DATA_TYPES: [&str; 3] = ["tableData", "tableFields", "tableMetadata"];

/// A webhook specification's options, checked.
pub(super) struct Specification {
    /// `tableData` is among the data types.
    pub(super) table_data: bool,
    /// `tableFields` or `tableMetadata` is among them.
    pub(super) schema_types: bool,
    /// `recordChangeScope`, as a table id.
    pub(super) scope: Option<String>,
    /// `includePreviousCellValues`.
    pub(super) include_previous: bool,
}

/// The webhook's options, checked.
pub(super) fn parse_specification(
    store: &Store,
    base: &str,
    spec: &Value,
) -> Result<Specification, ApiError> {
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

pub(super) async fn create_hook(
    State(shared): AppState,
    Path(base): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // "The scope webhook:manage is always required for all webhooks API endpoints"
    // (https://airtable.com/developers/web/api/webhooks-overview).
    let token = match gate(&shared, &base, WEBHOOK_MANAGE, &headers).await {
        Ok(token) => token,
        Err(refused) => return refused,
    };
    respond(create(&shared, &base, &token, &body))
}

pub(super) fn create(
    shared: &Shared,
    base: &str,
    token: &Token,
    body: &[u8],
) -> Result<Value, ApiError> {
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

pub(super) async fn list_hooks(
    State(shared): AppState,
    Path(base): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = gate(&shared, &base, WEBHOOK_MANAGE, &headers).await {
        return refused;
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

pub(super) async fn refresh_hook(
    State(shared): AppState,
    Path((base, webhook)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = gate(&shared, &base, WEBHOOK_MANAGE, &headers).await {
        return refused;
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

pub(super) async fn delete_hook(
    State(shared): AppState,
    Path((base, webhook)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = gate(&shared, &base, WEBHOOK_MANAGE, &headers).await {
        return refused;
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

pub(super) async fn enable_notifications(
    State(shared): AppState,
    Path((base, webhook)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = gate(&shared, &base, WEBHOOK_MANAGE, &headers).await {
        return refused;
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
