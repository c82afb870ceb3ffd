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

mod access;
mod api;
mod hook;
mod manage;
mod notifier;
mod payloads;
mod registry;
mod schema;

use std::sync::Arc;

use axum::routing::{delete, get, post};
use axum::Router;

use super::shared::Shared;

pub use hook::{NotificationResult, WebhookCallStats, WebhookInfo};
pub use manage::MAX_WEBHOOKS_PER_BASE;
pub use notifier::{content_mac, CONTENT_MAC_HEADER, PING_RETRIES, PING_RETRY_DELAY};
pub(crate) use registry::Webhooks;

/// The routes of this module, merged into the server's router.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/v0/bases/{base}/webhooks",
            get(manage::list_hooks).post(manage::create_hook),
        )
        .route(
            "/v0/bases/{base}/webhooks/{webhook}",
            delete(manage::delete_hook),
        )
        .route(
            "/v0/bases/{base}/webhooks/{webhook}/refresh",
            post(manage::refresh_hook),
        )
        .route(
            "/v0/bases/{base}/webhooks/{webhook}/payloads",
            get(payloads::list_payloads),
        )
        .route(
            "/v0/bases/{base}/webhooks/{webhook}/enableNotifications",
            post(manage::enable_notifications),
        )
        .route("/v0/meta/bases/{base}/tables", get(schema::base_schema))
}
