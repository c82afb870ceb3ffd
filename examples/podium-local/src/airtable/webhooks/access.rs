//! Test-side access to the webhooks of a running server (not API calls).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::hook::{NotificationResult, WebhookCallStats, WebhookInfo};
use crate::airtable::RunningAirtable;

impl RunningAirtable {
    /// The webhooks of a base, oldest first (not an API call).
    pub fn webhooks(&self, base: &str) -> Vec<WebhookInfo> {
        let store = self.shared().store.read();
        let now = store.webhooks.now();
        store
            .webhooks
            .hooks
            .iter()
            .filter(|h| h.base == base)
            .map(|h| h.info(now))
            .collect()
    }

    /// Moves the webhook clock (expiry, payload retention) forward by `by`, as if that much
    /// time had passed: e.g. 8 days expire an unrefreshed webhook and drop week-old payloads.
    pub fn advance_webhook_clock(&self, by: Duration) {
        let mut store = self.shared().store.write();
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        store.webhooks.clock_offset += by;
    }

    /// Webhook and schema API calls since start.
    pub fn webhook_calls(&self) -> WebhookCallStats {
        self.shared().store.read().webhooks.calls
    }

    /// Turns pings of a webhook on or off (payloads keep being recorded either way), like
    /// `POST …/enableNotifications`. `false` if there is no such webhook.
    pub fn set_webhook_notifications(&self, webhook_id: &str, enabled: bool) -> bool {
        let store = self.shared().store.read();
        match store.webhooks.by_id(webhook_id) {
            Some(hook) => {
                hook.ping
                    .notifications_enabled
                    .store(enabled, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Enables or disables a webhook: a disabled one records no payloads and sends no pings.
    /// `false` if there is no such webhook.
    pub fn set_webhook_enabled(&self, webhook_id: &str, enabled: bool) -> bool {
        let mut store = self.shared().store.write();
        match store.webhooks.hooks.iter_mut().find(|h| h.id == webhook_id) {
            Some(hook) => {
                hook.enabled = enabled;
                true
            }
            None => false,
        }
    }

    /// Sends a ping now (even with notifications off), as if a change had happened. `false` if
    /// there is no such webhook or it has no notification URL.
    pub fn ping_webhook(&self, webhook_id: &str) -> bool {
        let store = self.shared().store.read();
        match store.webhooks.by_id(webhook_id) {
            Some(hook) if hook.notification_url.is_some() => {
                hook.ping.request(hook.next_payload.saturating_sub(1));
                true
            }
            _ => false,
        }
    }

    /// Waits until a ping sent after the latest requested one has finished (at once if no ping
    /// is pending) and returns the latest ping's outcome. `None` for an unknown webhook or one
    /// that never pinged.
    pub async fn wait_for_webhook_ping(&self, webhook_id: &str) -> Option<NotificationResult> {
        let state = {
            let store = self.shared().store.read();
            Arc::clone(&store.webhooks.by_id(webhook_id)?.ping)
        };
        let target = state.status.borrow().requested;
        let mut status = state.status.subscribe();
        let done = status.wait_for(|s| s.delivered >= target).await.ok()?;
        done.last.clone()
    }
}
