//! The receiver: verifies a notification, records it in the store and answers at once; the
//! [pager](super::pager) applies the payloads in the background.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::error::NativeError;
use super::mac::{parse_mac_header, MacSecret, Notification, MAC_HEADER};
use super::stats::{NativeCounters, NativeStats, Slot};
use crate::cache::Cache;
use crate::source::webhooks_api::{WebhooksApi, MAX_PAYLOAD_PAGE};
use crate::store::{Counters, Store};
use crate::webhook::registry::Models;

/// Default largest notification body (a ping is about 150 bytes).
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// Default TTL of the store lock that keeps one pager per webhook (a heartbeat extends it
/// every third of it while a round runs; dropping or cancelling the round releases it).
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(60);
/// Default longest time a background pager waits for another process's round.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(120);
/// Default TTL of a saved cursor and of the pending counter (refreshed by every write;
/// Airtable keeps payloads 7 days).
pub const DEFAULT_CURSOR_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default number of payload pages one round reads before it lets the lock go (the next round
/// continues from the saved cursor at once).
pub const DEFAULT_MAX_PAGES_PER_ROUND: u32 = 20;

/// Configures [`NativeWebhooks`].
#[derive(Debug)]
pub struct NativeWebhooksBuilder {
    cache: Cache,
    models: Models,
    api: WebhooksApi,
    hooks: Vec<(String, MacSecret)>,
    tables: HashMap<String, String>,
    max_body: usize,
    page_size: usize,
    max_pages: u32,
    lock_ttl: Duration,
    lock_wait: Duration,
    cursor_ttl: Duration,
    retry_delay: Duration,
}

impl NativeWebhooksBuilder {
    /// Accepts notifications of webhook `id` signed with `secret` (call once per webhook).
    pub fn webhook(mut self, id: impl Into<String>, secret: MacSecret) -> Self {
        self.hooks.push((id.into(), secret));
        self
    }

    /// Maps a table id (`tbl…`) to its name without asking the schema endpoint.
    pub fn table(mut self, id: impl Into<String>, name: impl Into<String>) -> Self {
        self.tables.insert(id.into(), name.into());
        self
    }

    /// Largest notification body (default 64 KiB).
    pub fn max_body(mut self, limit: usize) -> Self {
        self.max_body = limit;
        self
    }

    /// Payloads per page (1 to 50, default 50).
    pub fn page_size(mut self, size: usize) -> Self {
        self.page_size = size.clamp(1, MAX_PAYLOAD_PAGE);
        self
    }

    /// Pages one round reads before it lets the lock go (default 20); the outcome then says
    /// `more`, and the background pager starts the next round from the saved cursor.
    pub fn max_pages_per_round(mut self, pages: u32) -> Self {
        self.max_pages = pages.max(1);
        self
    }

    /// TTL of the store lock (default 60 s; a heartbeat extends it while a round runs).
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl.max(Duration::from_millis(30));
        self
    }

    /// Longest wait for another process's round (default 120 s), then [`NativeError::Busy`];
    /// the pending work stays recorded in the store for the next ping or
    /// [`NativeWebhooks::resume`].
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// TTL of the saved cursor and the pending counter (default 30 days).
    pub fn cursor_ttl(mut self, ttl: Duration) -> Self {
        self.cursor_ttl = ttl;
        self
    }

    /// First delay before the background pager retries a failed round (default 1 s, doubled
    /// up to 30 s, five tries; then the work waits for the next ping or
    /// [`NativeWebhooks::resume`]).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Builds the receiver.
    pub fn build(self) -> NativeWebhooks {
        NativeWebhooks {
            inner: Arc::new(Inner {
                cache: self.cache,
                models: self.models,
                api: self.api,
                hooks: self.hooks,
                stored_hooks: parking_lot::RwLock::new(HashMap::new()),
                tables: parking_lot::RwLock::new(self.tables),
                slots: parking_lot::Mutex::new(HashMap::new()),
                counters: NativeCounters::default(),
                max_body: self.max_body,
                page_size: self.page_size,
                max_pages: self.max_pages,
                lock_ttl: self.lock_ttl,
                lock_wait: self.lock_wait,
                cursor_ttl: self.cursor_ttl,
                retry_delay: self.retry_delay,
            }),
        }
    }
}

/// Verifies Airtable's webhook notifications, records them and has their payloads applied in
/// the background. Cheap to clone.
#[derive(Clone)]
pub struct NativeWebhooks {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) cache: Cache,
    pub(super) models: Models,
    pub(super) api: WebhooksApi,
    pub(super) hooks: Vec<(String, MacSecret)>,
    /// Secrets of webhooks the maintenance re-created, read from the store on demand.
    pub(super) stored_hooks: parking_lot::RwLock<HashMap<String, MacSecret>>,
    pub(super) tables: parking_lot::RwLock<HashMap<String, String>>,
    pub(super) slots: parking_lot::Mutex<HashMap<String, Arc<Slot>>>,
    pub(super) counters: NativeCounters,
    pub(super) max_body: usize,
    pub(super) page_size: usize,
    pub(super) max_pages: u32,
    pub(super) lock_ttl: Duration,
    pub(super) lock_wait: Duration,
    pub(super) cursor_ttl: Duration,
    pub(super) retry_delay: Duration,
}

impl fmt::Debug for NativeWebhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.inner.hooks.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("NativeWebhooks")
            .field("base", &self.inner.api.base_id())
            .field("webhooks", &ids)
            .field("models", &self.inner.models)
            .finish_non_exhaustive()
    }
}

/// A notification accepted: verified and recorded in the store; its payloads are applied in
/// the background.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The webhook it announced.
    pub webhook_id: String,
    /// The webhook's pending counter after this notification (its ticket).
    pub pending: u64,
}

impl NativeWebhooks {
    /// A builder applying to `cache` the payloads of `models`' tables read through `api`.
    pub fn builder(cache: Cache, models: Models, api: WebhooksApi) -> NativeWebhooksBuilder {
        NativeWebhooksBuilder {
            cache,
            models,
            api,
            hooks: Vec::new(),
            tables: HashMap::new(),
            max_body: DEFAULT_MAX_BODY,
            page_size: MAX_PAYLOAD_PAGE,
            max_pages: DEFAULT_MAX_PAGES_PER_ROUND,
            lock_ttl: DEFAULT_LOCK_TTL,
            lock_wait: DEFAULT_LOCK_WAIT,
            cursor_ttl: DEFAULT_CURSOR_TTL,
            retry_delay: Duration::from_secs(1),
        }
    }

    /// The body limit.
    pub fn max_body(&self) -> usize {
        self.inner.max_body
    }

    /// The API client.
    pub fn api(&self) -> &WebhooksApi {
        &self.inner.api
    }

    /// The cache payloads are applied to.
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// The registered models.
    pub fn models(&self) -> &Models {
        &self.inner.models
    }

    /// The ids of the configured webhooks.
    pub fn webhook_ids(&self) -> Vec<&str> {
        self.inner.hooks.iter().map(|(id, _)| id.as_str()).collect()
    }

    /// This process's counters.
    pub fn stats(&self) -> NativeStats {
        self.inner.counters.snapshot()
    }

    pub(super) fn store(&self) -> &dyn Store {
        self.inner.cache.store().as_ref()
    }

    /// Handles one notification: size limit, MAC, body, then records it in the store (the
    /// webhook's pending counter) and wakes the background pager. Answers without any Airtable
    /// call, whatever the Airtable budget, a 429 pause or the pager lock are doing; when this
    /// returns `Ok`, the work is in the store, where this or another instance (or a restart,
    /// through [`NativeWebhooks::resume`]) will apply it. `header` looks a header up by its
    /// lower-case name.
    pub async fn notify(
        &self,
        header: impl Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<Accepted, NativeError> {
        let span = tracing::info_span!("webhook.native.notify", bytes = body.len());
        let result = self.accept(&header, body).instrument(span).await;
        match &result {
            Ok(accepted) => {
                self.inner.counters.accepted();
                tracing::debug!(
                    webhook = accepted.webhook_id,
                    pending = accepted.pending,
                    "native webhook notification recorded"
                );
                self.kick(&accepted.webhook_id);
            }
            Err(err) => {
                self.inner.counters.refused();
                tracing::warn!(code = err.code(), error = %err, "native webhook notification refused");
            }
        }
        result
    }

    async fn accept(
        &self,
        header: &impl Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<Accepted, NativeError> {
        let webhook_id = self.authenticate(header, body).await?;
        let notification: Notification =
            serde_json::from_slice(body).map_err(|e| NativeError::Malformed(e.to_string()))?;
        if notification.webhook.id != webhook_id {
            return Err(NativeError::Unauthorized(format!(
                "the notification names webhook {:?} but is signed with the secret of {webhook_id:?}",
                notification.webhook.id
            )));
        }
        if notification.base.id != self.inner.api.base_id() {
            return Err(NativeError::Malformed(format!(
                "the notification is for base {:?}; this receiver reads base {:?}",
                notification.base.id,
                self.inner.api.base_id()
            )));
        }
        let key = self
            .inner
            .cache
            .keys()
            .webhook_state("pending", &webhook_id);
        let pending = self.store().increment(&key, self.inner.cursor_ttl).await?;
        Ok(Accepted {
            webhook_id,
            pending,
        })
    }

    /// Size limit, then the MAC against every configured secret, then against the secret the
    /// maintenance kept in the store for the webhook the body names (a re-created webhook);
    /// the id of the webhook whose secret matches.
    async fn authenticate(
        &self,
        header: &impl Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<String, NativeError> {
        if body.len() > self.inner.max_body {
            return Err(NativeError::TooLarge {
                size: body.len(),
                limit: self.inner.max_body,
            });
        }
        let mac = header(MAC_HEADER).ok_or_else(|| {
            NativeError::Unauthorized("missing X-Airtable-Content-MAC header".into())
        })?;
        let given = parse_mac_header(&mac).map_err(NativeError::Unauthorized)?;
        if let Some((id, _)) = self
            .inner
            .hooks
            .iter()
            .find(|(_, secret)| secret.verifies_raw(&given, body))
        {
            return Ok(id.clone());
        }
        // Only a body that names a webhook can be signed by a stored secret.
        let named = serde_json::from_slice::<Notification>(body)
            .ok()
            .map(|n| n.webhook.id);
        if let Some(id) = named {
            if let Some(secret) = self.stored_secret(&id).await? {
                if secret.verifies_raw(&given, body) {
                    return Ok(id);
                }
            }
        }
        Err(NativeError::Unauthorized(
            "X-Airtable-Content-MAC does not match the body under any known webhook secret".into(),
        ))
    }

    /// The MAC secret kept in the store for `webhook_id` (see [`NativeWebhooks::keep_secret`]).
    async fn stored_secret(&self, webhook_id: &str) -> Result<Option<MacSecret>, NativeError> {
        if let Some(secret) = self.inner.stored_hooks.read().get(webhook_id) {
            return Ok(Some(secret.clone()));
        }
        let key = self.inner.cache.keys().webhook_state("mac", webhook_id);
        let Some(raw) = self.store().get(&key).await? else {
            return Ok(None);
        };
        let secret = std::str::from_utf8(&raw)
            .ok()
            .and_then(|text| MacSecret::from_base64(text).ok());
        if let Some(secret) = &secret {
            self.inner
                .stored_hooks
                .write()
                .insert(webhook_id.to_owned(), secret.clone());
        }
        Ok(secret)
    }

    /// Keeps a re-created webhook's MAC secret in `cache`'s store, so every instance's receiver
    /// accepts its notifications without a configuration change (the maintenance does this;
    /// see [`crate::maintenance`]). The secret lives as long as a cursor.
    pub async fn keep_secret(
        cache: &Cache,
        webhook_id: &str,
        secret: &MacSecret,
    ) -> Result<(), NativeError> {
        let key = cache.keys().webhook_state("mac", webhook_id);
        cache
            .store()
            .set(
                &key,
                Bytes::from(secret.expose_base64()),
                DEFAULT_CURSOR_TTL,
            )
            .await?;
        Ok(())
    }
}
