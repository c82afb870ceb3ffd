//! The pager: applies a webhook's payloads in the background, one instance at a time, from the
//! cursor kept in the store.
//!
//! - **Work is in the store.** Each accepted ping increments `{prefix}:wh:pending:{id}`; a round
//!   that drained the payloads writes the pending value it started from to
//!   `{prefix}:wh:drained:{id}`. Work is left while the two differ, whichever instance recorded
//!   it, so another instance or a restart ([`NativeWebhooks::resume`]) finishes it.
//! - **One pager per webhook.** A round holds `{prefix}:lock:webhook:{id}`; a heartbeat extends
//!   it every third of its TTL, and dropping the round (cancelled, panicked, finished) releases
//!   it at once. A pager that finds the lock held polls for it in the background; the holder
//!   re-reads the pending counter after each round, so no ping is left behind.
//! - **Bounded rounds.** A round reads at most `max_pages_per_round` pages, then lets the lock
//!   go; the background pager starts the next one from the saved cursor.
//! - **Gaps are detected.** "Payloads are deleted from Airtable's servers after 1 week whether
//!   or not the client has seen them. The cursor value for the next payload is never reset"
//!   (<https://airtable.com/developers/web/api/list-webhook-payloads>): a page whose first
//!   payload (its `cursor` less its length) comes after the cursor it was asked from has lost
//!   payloads. A lost saved cursor (store flushed or expired) reads from 1 again, which is a
//!   gap exactly when Airtable no longer has payload 1; a re-created webhook is flagged as a
//!   gap by the maintenance. On a gap every registered model's cached records are invalidated
//!   (the webhooks this crate creates cover every table), before the cursor moves past it; it
//!   is logged and counted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracing::Instrument;

use super::error::NativeError;
use super::receiver::NativeWebhooks;
use crate::cache::{Cache, CacheError};
use crate::entity::EntityMeta;
use crate::source::webhooks_api::Payload;
use crate::store::{Store, StoreError, StoreLock};
use crate::webhook::registry::ModelOps;

/// How often a pager polls a lock held by another process.
const LOCK_POLL: Duration = Duration::from_millis(50);
/// How many times the background pager retries a failed round.
const RETRIES: u32 = 5;
/// The longest delay between two retries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

pub use super::stats::{NativeStats, SyncOutcome};

/// A store lock held by a round: extended by a heartbeat, released when dropped (a cancelled
/// or panicking round included), not only when the round ends normally.
struct HeldLock {
    lock: Option<Arc<StoreLock>>,
    lost: Arc<AtomicBool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl HeldLock {
    async fn try_acquire(
        store: &Arc<dyn Store>,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Self>, StoreError> {
        let Some(lock) = StoreLock::try_acquire(store, key, ttl).await? else {
            return Ok(None);
        };
        let lock = Arc::new(lock);
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn({
            let (lock, lost) = (Arc::clone(&lock), Arc::clone(&lost));
            async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    if !matches!(lock.hold(ttl).await, Ok(true)) {
                        tracing::warn!(key = lock.key(), "webhook pager lock lost");
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            }
        });
        Ok(Some(Self {
            lock: Some(lock),
            lost,
            heartbeat,
        }))
    }

    fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    async fn release(mut self) {
        self.heartbeat.abort();
        if let Some(lock) = self.lock.take() {
            if let Err(error) = lock.release().await {
                tracing::warn!(%error, key = lock.key(), "could not release the webhook pager lock; it will expire");
            }
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        self.heartbeat.abort();
        let Some(lock) = self.lock.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let _ = lock.release().await;
                });
            }
            Err(_) => {
                tracing::warn!(
                    key = lock.key(),
                    "webhook pager lock dropped outside a runtime; it will expire"
                );
            }
        }
    }
}

impl NativeWebhooks {
    /// Wakes this process's background pager of `webhook_id` (one per webhook; a wake while it
    /// runs makes it look again before it stops).
    pub(super) fn kick(&self, webhook_id: &str) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                webhook = webhook_id,
                "no Tokio runtime: the payloads wait for resume()"
            );
            return;
        };
        let slot = {
            let mut slots = self.inner.slots.lock();
            Arc::clone(slots.entry(webhook_id.to_owned()).or_default())
        };
        if slot.running.swap(true, Ordering::SeqCst) {
            slot.again.store(true, Ordering::SeqCst);
            return;
        }
        let this = self.clone();
        let id = webhook_id.to_owned();
        runtime.spawn(async move {
            loop {
                slot.again.store(false, Ordering::SeqCst);
                let span = tracing::info_span!("webhook.native.pager", webhook = id.as_str());
                this.catch_up_with_retries(&id).instrument(span).await;
                slot.running.store(false, Ordering::SeqCst);
                if !slot.again.load(Ordering::SeqCst) || slot.running.swap(true, Ordering::SeqCst) {
                    return;
                }
            }
        });
    }

    /// Starts the background pager of every configured webhook, to finish work a previous
    /// process (or another instance that stopped) left recorded in the store. The router does
    /// this when it is built; a pager with nothing pending stops after two store reads.
    pub fn resume(&self) {
        for (id, _) in &self.inner.hooks {
            self.kick(id);
        }
    }

    async fn catch_up_with_retries(&self, webhook_id: &str) {
        let mut delay = self.inner.retry_delay;
        for attempt in 0..=RETRIES {
            match self.catch_up(webhook_id).await {
                Ok(()) => return,
                Err(err) => {
                    self.inner.counters.failed.fetch_add(1, Ordering::Relaxed);
                    if attempt == RETRIES || !err.kind().is_retryable() {
                        tracing::error!(error = %err, code = err.code(), "native webhook payloads not applied; they stay pending in the store for the next ping or resume()");
                        return;
                    }
                    tracing::warn!(error = %err, retry_in = ?delay, "native webhook round failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }

    /// Rounds until the recorded pings are drained: each waits for the lock (polling, at most
    /// the lock wait), reads at most `max_pages_per_round` pages, then lets the lock go.
    async fn catch_up(&self, webhook_id: &str) -> Result<(), NativeError> {
        let keys = self.inner.cache.keys();
        let (pending_key, drained_key) = (
            keys.webhook_state("pending", webhook_id),
            keys.webhook_state("drained", webhook_id),
        );
        loop {
            let pending = read_number(self.store(), &pending_key).await?;
            let drained = read_number(self.store(), &drained_key).await?;
            // Different, not greater: a pending counter that expired restarts below the mark.
            if pending == drained {
                return Ok(());
            }
            let lock = self.lock_within(webhook_id).await?;
            // Read again under the lock: the previous holder may have drained it.
            let pending = read_number(self.store(), &pending_key).await?;
            if pending == read_number(self.store(), &drained_key).await? {
                lock.release().await;
                return Ok(());
            }
            let outcome = self.round(webhook_id, &lock).await;
            if let Ok(outcome) = &outcome {
                if !outcome.more && !lock.is_lost() {
                    let mark = Bytes::from(pending.to_string());
                    self.store()
                        .set(&drained_key, mark, self.inner.cursor_ttl)
                        .await?;
                }
            }
            lock.release().await;
            outcome?;
        }
    }

    async fn lock_within(&self, webhook_id: &str) -> Result<HeldLock, NativeError> {
        let key = self
            .inner
            .cache
            .keys()
            .lock(&format!("webhook:{webhook_id}"));
        let deadline = tokio::time::Instant::now() + self.inner.lock_wait;
        loop {
            let store = self.inner.cache.store();
            if let Some(lock) = HeldLock::try_acquire(store, &key, self.inner.lock_ttl).await? {
                return Ok(lock);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(NativeError::Busy {
                    webhook: webhook_id.to_owned(),
                });
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
    }

    /// Runs one round of `webhook_id` now, in the caller's task: waits for the lock (at most
    /// the lock wait), reads at most `max_pages_per_round` pages from the saved cursor and
    /// applies them. The background pager does this by itself after every ping; call it to
    /// drain a webhook by hand (a test, a task).
    pub async fn sync(&self, webhook_id: &str) -> Result<SyncOutcome, NativeError> {
        let lock = self.lock_within(webhook_id).await?;
        let result = self.round(webhook_id, &lock).await;
        lock.release().await;
        result
    }

    /// The saved cursor of a webhook (1 when none is saved).
    pub async fn cursor(&self, webhook_id: &str) -> Result<u64, NativeError> {
        let key = self.inner.cache.keys().webhook_cursor(webhook_id);
        Ok(read_number(self.store(), &key).await?.max(1))
    }

    /// Flags `webhook_id` so its next round treats its history as lost (the maintenance does
    /// this for a webhook it re-created: changes between the old one's end and the new one's
    /// start were never recorded).
    pub async fn flag_gap(cache: &Cache, webhook_id: &str) -> Result<(), NativeError> {
        let key = cache.keys().webhook_state("gap", webhook_id);
        let ttl = super::receiver::DEFAULT_CURSOR_TTL;
        cache
            .store()
            .set(&key, Bytes::from_static(b"1"), ttl)
            .await?;
        Ok(())
    }

    async fn round(&self, webhook_id: &str, lock: &HeldLock) -> Result<SyncOutcome, NativeError> {
        let span = tracing::info_span!("webhook.native.round", webhook = webhook_id);
        let result = self.page(webhook_id, lock).instrument(span).await;
        if let Ok(outcome) = &result {
            self.inner.counters.round(outcome);
            tracing::info!(
                webhook = webhook_id,
                pages = outcome.pages,
                payloads = outcome.payloads,
                invalidated = outcome.invalidated,
                removed = outcome.removed,
                gaps = outcome.gaps,
                cursor = outcome.cursor,
                more = outcome.more,
                "native webhook round applied"
            );
        }
        result
    }

    async fn page(&self, webhook_id: &str, lock: &HeldLock) -> Result<SyncOutcome, NativeError> {
        let store = self.store();
        let keys = self.inner.cache.keys();
        let cursor_key = keys.webhook_cursor(webhook_id);
        let gap_key = keys.webhook_state("gap", webhook_id);
        let saved = store.get(&cursor_key).await?;
        let mut cursor = parse_number(saved.as_deref()).unwrap_or(1).max(1);
        let mut outcome = SyncOutcome {
            webhook_id: webhook_id.to_owned(),
            cursor,
            ..SyncOutcome::default()
        };
        if store.get(&gap_key).await?.is_some() {
            self.gap(&mut outcome, 0, "the webhook was re-created")
                .await?;
            store.delete(&[gap_key]).await?;
        }
        let mut schema_read = false;
        loop {
            if lock.is_lost() {
                return Err(NativeError::Busy {
                    webhook: webhook_id.to_owned(),
                });
            }
            let page = self
                .inner
                .api
                .payloads(webhook_id, cursor, self.inner.page_size)
                .await?;
            outcome.pages += 1;
            let skipped = page.skipped_since(cursor);
            if skipped > 0 {
                let why = if saved.is_none() {
                    "no saved cursor and Airtable no longer has the first payloads"
                } else {
                    "payloads were deleted by Airtable before they were read"
                };
                self.gap(&mut outcome, skipped, why).await?;
            }
            for payload in &page.payloads {
                self.apply(payload, &mut outcome, &mut schema_read).await?;
            }
            if page.cursor != cursor {
                let value = Bytes::from(page.cursor.to_string());
                store.set(&cursor_key, value, self.inner.cursor_ttl).await?;
                cursor = page.cursor;
                outcome.cursor = cursor;
            }
            if !page.might_have_more || page.payloads.is_empty() {
                return Ok(outcome);
            }
            if outcome.pages >= self.inner.max_pages {
                outcome.more = true;
                return Ok(outcome);
            }
        }
    }

    /// A gap: every registered model's cached records are invalidated.
    async fn gap(
        &self,
        outcome: &mut SyncOutcome,
        skipped: u64,
        why: &str,
    ) -> Result<(), NativeError> {
        let mut invalidated = 0;
        for model in self.inner.models.iter() {
            invalidated +=
                invalidate_entity_wide(&self.inner.cache, model.meta(), model.schema_hash())
                    .await?;
        }
        tracing::error!(
            webhook = outcome.webhook_id,
            cursor = outcome.cursor,
            skipped,
            invalidated,
            tables = ?self.inner.models.tables(),
            "native webhook gap: {why}; every modelled table was invalidated"
        );
        outcome.gaps += 1;
        outcome.skipped_payloads += skipped;
        outcome.gap_invalidations += invalidated;
        Ok(())
    }

    /// Applies one payload: created and changed records invalidated, destroyed ones removed.
    async fn apply(
        &self,
        payload: &Payload,
        outcome: &mut SyncOutcome,
        schema_read: &mut bool,
    ) -> Result<(), NativeError> {
        if payload.error {
            outcome.error_payloads += 1;
            tracing::warn!(
                code = payload.code.as_deref().unwrap_or("unknown"),
                transaction = payload.base_transaction_number,
                "airtable sent an error payload; the webhook may need to be recreated"
            );
            return Ok(());
        }
        let cache = &self.inner.cache;
        for (table_id, changes) in &payload.changed_tables_by_id {
            let Some(model) = self.model_for(table_id, schema_read).await? else {
                outcome.unknown_tables += 1;
                tracing::warn!(
                    table = table_id.as_str(),
                    created = changes.created_records_by_id.len(),
                    changed = changes.changed_records_by_id.len(),
                    destroyed = changes.destroyed_record_ids.len(),
                    known = ?self.inner.models.tables(),
                    "native webhook payload for a table without a model skipped"
                );
                continue;
            };
            for id in changes
                .created_records_by_id
                .keys()
                .chain(changes.changed_records_by_id.keys())
            {
                model.invalidate(cache, id).await?;
                outcome.invalidated += 1;
            }
            for id in &changes.destroyed_record_ids {
                model.remove_gone(cache, id).await?;
                outcome.removed += 1;
            }
        }
        outcome.payloads += 1;
        Ok(())
    }

    /// The model of a payload's table: by id through the schema (read once per round when an
    /// id is not known yet), or by name when the payload keys tables by name.
    async fn model_for(
        &self,
        table_id: &str,
        schema_read: &mut bool,
    ) -> Result<Option<&Arc<dyn ModelOps>>, NativeError> {
        let known = self.inner.tables.read().get(table_id).cloned();
        let name = match known {
            Some(name) => Some(name),
            None if !*schema_read => {
                *schema_read = true;
                let tables = self.inner.api.tables().await?;
                let mut map = self.inner.tables.write();
                for table in tables {
                    map.insert(table.id, table.name);
                }
                map.get(table_id).cloned()
            }
            None => None,
        };
        let name = name.as_deref().unwrap_or(table_id);
        Ok(self.inner.models.by_table(name))
    }
}

/// Invalidates every cached record of one entity (its data keys, found with `SCAN`): what a
/// webhook gap calls for, since the lost payloads could have named any of them. How many.
pub async fn invalidate_entity_wide(
    cache: &Cache,
    meta: &'static EntityMeta,
    schema_hash: &str,
) -> Result<u64, CacheError> {
    let keys = cache.keys();
    let pattern = keys.data_pattern(meta.entity, schema_hash);
    let mut cursor = 0u64;
    let mut invalidated = 0u64;
    loop {
        let page = cache.store().scan(&pattern, cursor, 500).await?;
        for key in &page.keys {
            match keys.id_from_data_key(key) {
                // A hashed key component (`h.…`) is not the record id: drop the entry itself.
                Some(id) if !id.starts_with("h.") && !id.is_empty() => {
                    cache.invalidate_entity(meta, schema_hash, id).await?;
                }
                _ => {
                    cache.store().delete(std::slice::from_ref(key)).await?;
                }
            }
            invalidated += 1;
        }
        cursor = page.cursor;
        if cursor == 0 {
            return Ok(invalidated);
        }
    }
}

fn parse_number(raw: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(raw?).ok()?.trim().parse::<u64>().ok()
}

/// A counter or mark in the store; 0 when absent or unreadable.
async fn read_number(store: &dyn Store, key: &str) -> Result<u64, StoreError> {
    Ok(parse_number(store.get(key).await?.as_deref()).unwrap_or(0))
}
