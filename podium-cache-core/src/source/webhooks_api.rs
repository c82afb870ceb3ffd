//! Airtable's Webhooks API client: create, list, refresh and delete a base's webhooks, page
//! their payloads and read the base schema, on an [`AirtableSource`]'s connection, key,
//! process-wide rate limiter and retries (the webhook API "is subject to the same 5 requests
//! per second per base as the REST API",
//! <https://airtable.com/developers/web/api/webhooks-overview>, "Rate limits").
//!
//! The wire types follow Airtable's reference pages, cited beside each; pyairtable's
//! `pyairtable/models/webhook.py` reads the same shapes.

use std::collections::BTreeMap;

use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::Instrument;

use crate::config::Secret;
use crate::source::{AirtableSource, SourceError};

/// Airtable's largest (and the default) payload page: "A maximum of 50 payloads can be
/// returned in a single request" (<https://airtable.com/developers/web/api/list-webhook-payloads>).
pub const MAX_PAYLOAD_PAGE: usize = 50;
/// "The number of webhooks per base is limited to 10"
/// (<https://airtable.com/developers/web/api/create-a-webhook>).
pub const MAX_WEBHOOKS_PER_BASE: usize = 10;

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
    /// The MAC key, base64 (parse it with `podium_cache_core::webhook::MacSecret::from_base64`).
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

impl PayloadPage {
    /// The number (cursor) of the page's first payload: "the last payload's transaction
    /// number is (cursor-1), the second-to-last payload's transaction number is (cursor-2), and
    /// so on" (<https://airtable.com/developers/web/api/list-webhook-payloads>). `None` for an
    /// empty page.
    pub fn first_number(&self) -> Option<u64> {
        let count = u64::try_from(self.payloads.len()).ok()?;
        (count > 0).then(|| self.cursor.saturating_sub(count))
    }

    /// How many payloads before this page's first were deleted unseen, when the page was read
    /// from `requested`: "Payloads are deleted from Airtable's servers after 1 week whether or
    /// not the client has seen them. The cursor value for the next payload is never reset, even
    /// if payloads are deleted" (same page). So a page that starts after the requested cursor
    /// has skipped the payloads in between. 0 when nothing was skipped (or the page is empty).
    pub fn skipped_since(&self, requested: u64) -> u64 {
        self.first_number()
            .map_or(0, |first| first.saturating_sub(requested.max(1)))
    }
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
/// use podium_cache_core::source::WebhooksApi;
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_page_starting_after_the_requested_cursor_skipped_deleted_payloads() {
        let page = |cursor: u64, count: usize| PayloadPage {
            payloads: vec![Payload::default(); count],
            cursor,
            might_have_more: false,
        };
        // Payloads 3 and 4 returned: the response cursor is 5.
        assert_eq!(page(5, 2).first_number(), Some(3));
        assert_eq!(page(5, 2).skipped_since(3), 0, "nothing skipped");
        assert_eq!(page(5, 2).skipped_since(1), 2, "1 and 2 were deleted");
        assert_eq!(page(5, 0).first_number(), None);
        assert_eq!(
            page(5, 0).skipped_since(1),
            0,
            "an empty page proves nothing"
        );
    }
}
