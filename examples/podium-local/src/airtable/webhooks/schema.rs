//! The base schema endpoint (`GET /v0/meta/bases/{baseId}/tables`).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};

use super::api::{base_exists, gate, respond, AppState};
use super::hook::field_id;
use crate::airtable::store::Store;
use crate::airtable::tokens::SCHEMA_READ;

pub(super) async fn base_schema(
    State(shared): AppState,
    Path(base): Path<String>,
    headers: HeaderMap,
) -> Response {
    // "Get base schema" needs schema.bases:read
    // (https://airtable.com/developers/web/api/get-base-schema, "Requirements").
    if let Err(refused) = gate(&shared, &base, SCHEMA_READ, &headers).await {
        return refused;
    }
    let mut store = shared.store.write();
    store.webhooks.calls.schema += 1;
    respond(base_exists(&store, &base).map(|()| schema(&store, &base)))
}

pub(super) fn schema(store: &Store, base: &str) -> Value {
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
pub(super) fn field_type(sample: Option<&Value>) -> &'static str {
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
