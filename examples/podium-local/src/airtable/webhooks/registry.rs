//! [`Webhooks`]: every webhook of every base, fed by the record store's change log.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::hook::{Webhook, WebhookCallStats};
use crate::airtable::api_error::ApiError;
use crate::airtable::record::Change;

/// How many payloads a webhook keeps (the oldest are dropped; numbers are never reused).
const PAYLOAD_CAPACITY: usize = 10_000;
/// How long one ping may take.
const PING_TIMEOUT: Duration = Duration::from_secs(60);

/// Every webhook of every base; lives in the record store so the change log feeds it.
#[derive(Debug, Default)]
pub(crate) struct Webhooks {
    pub(super) hooks: Vec<Webhook>,
    pub(super) http: Option<reqwest::Client>,
    pub(super) calls: WebhookCallStats,
    /// How far the webhook clock is ahead of the wall clock.
    pub(super) clock_offset: chrono::Duration,
}

impl Webhooks {
    /// Turns a record change into a payload of every webhook that watches it, and wakes their
    /// notifiers. Called by the store for every change.
    pub(crate) fn on_change(&mut self, change: &Change) {
        let now = self.now();
        for hook in &mut self.hooks {
            if !hook.active(now) || !hook.watches(change) {
                continue;
            }
            let number = hook.next_payload;
            hook.next_payload += 1;
            if hook.payloads.len() >= PAYLOAD_CAPACITY {
                hook.payloads.pop_front();
            }
            hook.payloads.push_back((number, now, change.clone()));
            if hook.notification_url.is_some()
                && hook.ping.notifications_enabled.load(Ordering::SeqCst)
            {
                hook.ping.request(number);
            }
        }
    }

    /// Stops every notifier (the server is going away).
    pub(crate) fn close_all(&mut self) {
        for hook in &self.hooks {
            hook.ping.close();
        }
    }

    /// The webhook clock: the wall clock moved by [`RunningAirtable::advance_webhook_clock`].
    pub(super) fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.clock_offset
    }

    pub(super) fn find(&self, base: &str, id: &str) -> Result<&Webhook, ApiError> {
        self.hooks
            .iter()
            .find(|h| h.id == id && h.base == base)
            .ok_or(ApiError::NotFound)
    }

    pub(super) fn find_mut(&mut self, base: &str, id: &str) -> Result<&mut Webhook, ApiError> {
        self.hooks
            .iter_mut()
            .find(|h| h.id == id && h.base == base)
            .ok_or(ApiError::NotFound)
    }

    pub(super) fn by_id(&self, id: &str) -> Option<&Webhook> {
        self.hooks.iter().find(|h| h.id == id)
    }

    pub(super) fn http(&mut self) -> Option<reqwest::Client> {
        if self.http.is_none() {
            match reqwest::Client::builder().timeout(PING_TIMEOUT).build() {
                Ok(client) => self.http = Some(client),
                Err(error) => tracing::warn!(%error, "airtable-local: no HTTP client for pings"),
            }
        }
        self.http.clone()
    }
}
