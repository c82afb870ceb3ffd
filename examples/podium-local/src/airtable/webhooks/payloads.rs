//! Listing a webhook's payloads (`GET …/webhooks/{id}/payloads`).

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};

use super::api::{gate, respond, AppState};
use super::hook::{expiry_from, Webhook};
use crate::airtable::api_error::ApiError;
use crate::airtable::shared::Shared;
use crate::airtable::tokens::{Token, WEBHOOK_MANAGE};

/// Airtable's largest (and default) payload page.
const MAX_PAYLOAD_PAGE: usize = 50;
/// How long a payload is kept (see the module docs).
const PAYLOAD_RETENTION_DAYS: i64 = 7;

/// The `cursor` and `limit` of a payloads request.
pub(super) fn payload_params(query: &str) -> Result<(u64, usize), ApiError> {
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
pub(super) struct Reader<'a> {
    pub(super) shared: &'a Shared,
    pub(super) base: String,
    pub(super) webhook: String,
}

impl<'a> Reader<'a> {
    pub(super) fn enter(shared: &'a Shared, base: &str, webhook: &str) -> Reader<'a> {
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

pub(super) async fn list_payloads(
    State(shared): AppState,
    Path((base, webhook)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let reader = Reader::enter(&shared, &base, &webhook);
    let token = match gate(&shared, &base, WEBHOOK_MANAGE, &headers).await {
        Ok(token) => token,
        Err(refused) => return refused,
    };
    let result = payload_params(query.as_deref().unwrap_or(""))
        .and_then(|(cursor, limit)| payloads(&shared, &base, &webhook, &token, cursor, limit));
    drop(reader);
    respond(result)
}

pub(super) fn payloads(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_parameters_default_and_are_checked() {
        assert_eq!(payload_params(""), Ok((1, 50)));
        assert_eq!(payload_params("cursor=7&limit=3"), Ok((7, 3)));
        assert_eq!(payload_params("cursor=0"), Ok((1, 50)));
        assert_eq!(payload_params("limit=51"), Err(ApiError::InvalidRequest));
        assert_eq!(payload_params("cursor=x"), Err(ApiError::InvalidRequest));
    }
}
