//! Airtable's native Webhooks API: the script-free way to hear about changes, and the only one
//! that reports deletions. One concern a file:
//!
//! - [`mac`]: the `X-Airtable-Content-MAC` of a ping and the ping's body;
//! - [`receiver`]: [`NativeWebhooks::notify`] verifies a ping, records it in the store and
//!   answers at once;
//! - [`pager`]: pages `GET …/payloads?cursor=` in the background from the cursor kept in the
//!   store and applies every payload (created and changed records invalidated, destroyed
//!   records removed with a tombstone), one instance at a time; detects gaps;
//! - [`error`]: [`NativeError`] and its [`NativeErrorKind`] (the HTTP statuses are the tower
//!   crate's);
//! - the API client is [`crate::source::webhooks_api`], beside the REST client (re-exported
//!   here).
//!
//! Guarantees:
//! - **Acknowledged means recorded.** A ping is answered as soon as its MAC is verified and it
//!   is recorded in the store (the webhook's pending counter), without waiting for any Airtable
//!   call: Airtable asks the recipient to "respond with an HTTP 200 or 204 status code and an
//!   empty response body" (<https://airtable.com/developers/web/api/webhooks-overview>,
//!   "Notification delivery"), and pyairtable's guide answers `("", 204)` and leaves the
//!   payloads to "probably enqueue a background job" (`docs/source/webhooks.rst`). The payloads
//!   are applied afterwards; work recorded by one instance is finished by any instance, or after
//!   a restart by [`NativeWebhooks::resume`]. A ping the store could not record is refused
//!   (`StoreUnavailable`), so Airtable sends it again.
//! - **Nothing is skipped silently**: the cursor is saved after each applied page, so a crash
//!   re-applies at most the page it was applying (applying is idempotent); payloads Airtable
//!   deleted unseen, a lost cursor and a re-created webhook are detected as gaps, and every
//!   modelled table is then invalidated (see [`pager`]).
//! - **One pager per webhook** across processes (a store lock with a heartbeat, released when
//!   the round is dropped or cancelled), bounded pages per round.
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
//! // In the HTTP handler: native.notify(header_lookup, &body).await, then answer 200 at once.
//! # let _ = native; Ok(()) }
//! ```

pub mod error;
pub mod mac;
pub mod pager;
pub mod receiver;
mod stats;

pub use self::error::{NativeError, NativeErrorKind};
pub use self::mac::{IdRef, MacSecret, MacSecretError, Notification, MAC_HEADER, MAC_PREFIX};
pub use self::pager::{invalidate_entity_wide, NativeStats, SyncOutcome};
pub use self::receiver::{
    Accepted, NativeWebhooks, NativeWebhooksBuilder, DEFAULT_CURSOR_TTL, DEFAULT_LOCK_TTL,
    DEFAULT_LOCK_WAIT, DEFAULT_MAX_BODY, DEFAULT_MAX_PAGES_PER_ROUND,
};
pub use crate::source::webhooks_api::{
    table_data_specification, CreatedWebhook, FieldSchema, Payload, PayloadPage, TableChanges,
    TableSchema, WebhookDescription, WebhooksApi, MAX_PAYLOAD_PAGE,
};
