//! In-app maintenance, no cron needed: the daily [sweep](crate::sweep) and the refresh of the
//! native Airtable webhooks (they expire 7 days after they are created or refreshed) run
//! inside the app, in background tasks, from one call.
//!
//! - **Once per interval across every instance.** Each round first claims the interval in the
//!   store (`{prefix}:lock:maintenance-sweep`, `SET NX` with the interval as TTL): the instance
//!   that claims it runs the round, the others skip it. A sweep also takes the sweep's own
//!   lock ([`crate::sweep::LOCK_NAME`]), so two sweeps never overlap, whether from two
//!   instances or from an instance and a `podium-tasks sweep` from cron. A round that fails
//!   gives its claim back, so another instance tries at its next tick.
//! - **Inside the Airtable budget.** The sweep calls Airtable through the cache's own source
//!   (its rate limiter, shared by every instance through Redis when configured); the webhook
//!   client of [`Maintenance::webhooks_from_settings`] shares the same store-held budget.
//! - **Expired webhooks.** A refresh Airtable refuses because the webhook expired or is gone
//!   ("this endpoint only applies to active webhooks",
//!   <https://airtable.com/developers/web/api/refresh-a-webhook>) cannot be undone by
//!   refreshing. With [`Maintenance::recreate_expired_webhooks`] the webhook is re-created
//!   pinging the same URL: its new MAC secret is kept in the store, where every instance's
//!   receiver finds it ([`NativeWebhooks::keep_secret`]), the changes missed meanwhile are
//!   handled as a gap (every modelled table invalidated now, and the new webhook flagged for
//!   the receiver's models), and later rounds refresh the new id. Without it, an expired webhook
//!   is a loud alarm: an `error` log naming the fix and the `webhooks_expired` counter.
//! - **Observable.** A `tracing` span per round (`maintenance.sweep`,
//!   `maintenance.webhook_refresh`) and counters ([`MaintenanceHandle::stats`]).
//! - **Stops with its handle.** [`MaintenanceHandle::shutdown`] (or dropping the handle) stops
//!   the tasks; a sweep in progress stops after its current batch and releases its lock.
//!
//! ```no_run
//! # async fn demo(cache: podium_cache_core::Cache, settings: podium_cache_core::config::Settings) -> Result<(), podium_cache_core::source::SourceError> {
//! # #[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema, podium_cache_core::Cacheable)]
//! # #[cacheable(table = "Members")]
//! # struct Member { id: String, name: String }
//! use std::time::Duration;
//! use podium_cache_core::maintenance::Maintenance;
//!
//! let maintenance = Maintenance::new(&cache)
//!     .model::<Member>()
//!     .sweep_every(Duration::from_secs(24 * 3600))
//!     .webhooks_from_settings(&settings)? // refreshes airtable_webhook_id every 24 h, if set
//!     .spawn();
//! // … serve …
//! maintenance.shutdown().await;
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::cache::Cache;
use crate::config::Settings;
use crate::entity::Cacheable;
use crate::source::WebhooksApi;
use crate::source::{AirtableSource, SourceError};
use crate::store::StoreLock;
use crate::sweep::{Strategy, Sweep, SweepEntity, SweepError, SweepReport, DEFAULT_MAX_GONE_SHARE};
use crate::webhook::native::{invalidate_entity_wide, MacSecret, NativeWebhooks};
use crate::webhook::Models;

/// Time between two sweeps by default: a day.
pub const DEFAULT_SWEEP_EVERY: Duration = Duration::from_secs(24 * 3600);
/// Time between two webhook refreshes by default: a day (a webhook lives 7 days).
pub const DEFAULT_REFRESH_EVERY: Duration = Duration::from_secs(24 * 3600);
/// Time from [`Maintenance::spawn`] to the first round by default.
pub const DEFAULT_FIRST_ROUND_AFTER: Duration = Duration::from_secs(60);

/// Name of the store claim of a sweep interval (`{prefix}:lock:maintenance-sweep`).
const SWEEP_CLAIM: &str = "maintenance-sweep";
/// Name of the store claim of a webhook-refresh interval.
const REFRESH_CLAIM: &str = "maintenance-webhook-refresh";

/// Builds the background maintenance of an app; [`Maintenance::spawn`] starts it.
#[derive(Clone, Debug)]
pub struct Maintenance {
    cache: Cache,
    models: Vec<SweepEntity>,
    sweep_every: Duration,
    first_round_after: Duration,
    strategy: Strategy,
    max_gone_share: f64,
    webhooks: Option<(WebhooksApi, Vec<String>)>,
    refresh_every: Duration,
    recreate_url: Option<String>,
}

impl Maintenance {
    /// Maintenance of `cache`: no model yet, a sweep a day, no webhook to refresh.
    pub fn new(cache: &Cache) -> Self {
        Self {
            cache: cache.clone(),
            models: Vec::new(),
            sweep_every: DEFAULT_SWEEP_EVERY,
            first_round_after: DEFAULT_FIRST_ROUND_AFTER,
            strategy: Strategy::Full,
            max_gone_share: DEFAULT_MAX_GONE_SHARE,
            webhooks: None,
            refresh_every: DEFAULT_REFRESH_EVERY,
            recreate_url: None,
        }
    }

    /// Sweeps the model `T` too.
    pub fn model<T: Cacheable>(mut self) -> Self {
        SweepEntity::of::<T>().add_to(&mut self.models);
        self
    }

    /// Maintenance of `cache` for `models`, with the native webhook's refresh when `settings`
    /// configure one: [`Maintenance::new`], [`Maintenance::models`] and
    /// [`Maintenance::webhooks_from_settings`] in one call.
    pub fn from_settings(
        cache: &Cache,
        models: &Models,
        settings: &Settings,
    ) -> Result<Self, SourceError> {
        Self::new(cache)
            .models(models)
            .webhooks_from_settings(settings)
    }

    /// Sweeps every model of `models` too (the registry the webhook routes take), so an app
    /// lists its models once.
    ///
    /// ```
    /// # fn demo(cache: &podium_cache_core::Cache) {
    /// # #[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema, podium_cache_core::Cacheable)]
    /// # #[cacheable(table = "Members")]
    /// # struct Member { id: String }
    /// use podium_cache_core::{Maintenance, Models};
    /// let models = Models::new().register::<Member>();
    /// let maintenance = Maintenance::new(cache).models(&models);
    /// # }
    /// ```
    pub fn models(mut self, models: &Models) -> Self {
        for entity in SweepEntity::all_of(models) {
            entity.add_to(&mut self.models);
        }
        self
    }

    /// Time between two sweeps (default a day; at least a second). It is also how long an
    /// instance's claim on a round lasts: one sweep per interval over every instance.
    pub fn sweep_every(mut self, every: Duration) -> Self {
        self.sweep_every = every.max(Duration::from_secs(1));
        self
    }

    /// Time from [`Maintenance::spawn`] to the first sweep and refresh (default a minute).
    pub fn first_round_after(mut self, delay: Duration) -> Self {
        self.first_round_after = delay;
        self
    }

    /// The sweep's strategy (default [`Strategy::Full`]).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The sweep's guard: the largest share of an entity's cached records one round may
    /// remove (default 0.5; see [`Sweep::max_gone_share`]).
    pub fn max_gone_share(mut self, share: f64) -> Self {
        self.max_gone_share = share;
        self
    }

    /// Refreshes these native webhooks (`ach…`) through `api` every
    /// [`Maintenance::refresh_every`].
    pub fn refresh_webhooks(mut self, api: WebhooksApi, ids: Vec<String>) -> Self {
        self.webhooks = (!ids.is_empty()).then_some((api, ids));
        self
    }

    /// Refreshes `airtable_webhook_id` when the settings name one (nothing otherwise), with a
    /// client of the configured base whose budget is the cache's: kept in the store when the
    /// settings name Redis, as [`Cache::from_settings`] does.
    pub fn webhooks_from_settings(self, settings: &Settings) -> Result<Self, SourceError> {
        let (Some(id), Some(key), Some(base)) = (
            &settings.airtable_webhook_id,
            &settings.airtable_api_key,
            &settings.airtable_base_id,
        ) else {
            return Ok(self);
        };
        let mut source = AirtableSource::builder(key.expose(), base.as_str())
            .api_url(settings.airtable_api_url.as_str())
            .local_rps(settings.local_airtable_rps());
        if settings.redis_url.is_some() || !settings.redis_cluster_nodes.is_empty() {
            let budget_key = self.cache.keys().rate_limit(base);
            source = source.shared_limit(Arc::clone(self.cache.store()), budget_key);
        }
        let api = WebhooksApi::new(source.build()?);
        Ok(self.refresh_webhooks(api, vec![id.clone()]))
    }

    /// Re-creates a webhook that expired (or was deleted) pinging `notification_url` (the app's
    /// `…/api/webhooks/airtable/notify`), instead of only raising the alarm.
    pub fn recreate_expired_webhooks(mut self, notification_url: impl Into<String>) -> Self {
        self.recreate_url = Some(notification_url.into());
        self
    }

    /// Time between two webhook refreshes (default a day; at least a second).
    pub fn refresh_every(mut self, every: Duration) -> Self {
        self.refresh_every = every.max(Duration::from_secs(1));
        self
    }

    /// Starts the background tasks on the current Tokio runtime. A maintenance without models
    /// sweeps nothing (said once in the log) but still refreshes webhooks.
    pub fn spawn(self) -> MaintenanceHandle {
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared::default());
        let mut tasks = Vec::new();
        if self.models.is_empty() {
            tracing::warn!("maintenance has no model: no sweep will run");
        } else {
            tasks.push(tokio::spawn(sweep_loop(
                self.clone(),
                Arc::clone(&shared),
                stopped.clone(),
            )));
        }
        if let Some((api, ids)) = self.webhooks.clone() {
            tasks.push(tokio::spawn(refresh_loop(
                self,
                api,
                ids,
                Arc::clone(&shared),
                stopped,
            )));
        }
        MaintenanceHandle {
            stop,
            tasks,
            shared,
        }
    }
}

/// Counters of an instance's maintenance (see [`MaintenanceHandle::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceStats {
    /// Sweeps this instance ran to the end (whatever their outcome).
    pub sweeps_run: u64,
    /// Sweeps that could not run or stopped with an error (store down, lock lost, …).
    pub sweeps_failed: u64,
    /// Rounds left to another instance (the interval was claimed, or its sweep held the lock).
    pub sweeps_skipped: u64,
    /// Records the sweeps found gone in Airtable and removed.
    pub records_removed: u64,
    /// Ids the sweeps could not confirm (rate limit, outage) and left alone.
    pub ids_unconfirmed: u64,
    /// Webhooks refreshed.
    pub webhook_refreshes: u64,
    /// Webhook refreshes that failed.
    pub webhook_refresh_failures: u64,
    /// Webhooks found expired or gone (each an alarm unless re-created).
    pub webhooks_expired: u64,
    /// Webhooks re-created after they expired.
    pub webhooks_recreated: u64,
}

impl MaintenanceStats {
    /// `(name, value)` of every counter, for exporters (e.g. `podium_maintenance_sweeps_run`).
    pub fn pairs(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("sweeps_run", self.sweeps_run),
            ("sweeps_failed", self.sweeps_failed),
            ("sweeps_skipped", self.sweeps_skipped),
            ("records_removed", self.records_removed),
            ("ids_unconfirmed", self.ids_unconfirmed),
            ("webhook_refreshes", self.webhook_refreshes),
            ("webhook_refresh_failures", self.webhook_refresh_failures),
            ("webhooks_expired", self.webhooks_expired),
            ("webhooks_recreated", self.webhooks_recreated),
        ]
    }
}

#[derive(Default)]
struct Shared {
    sweeps_run: AtomicU64,
    sweeps_failed: AtomicU64,
    sweeps_skipped: AtomicU64,
    records_removed: AtomicU64,
    ids_unconfirmed: AtomicU64,
    webhook_refreshes: AtomicU64,
    webhook_refresh_failures: AtomicU64,
    webhooks_expired: AtomicU64,
    webhooks_recreated: AtomicU64,
    last_sweep: Mutex<Option<SweepReport>>,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// The running maintenance: stops on [`MaintenanceHandle::shutdown`] or when dropped.
pub struct MaintenanceHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MaintenanceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaintenanceHandle")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl MaintenanceHandle {
    /// The counters so far.
    pub fn stats(&self) -> MaintenanceStats {
        let s = &self.shared;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MaintenanceStats {
            sweeps_run: get(&s.sweeps_run),
            sweeps_failed: get(&s.sweeps_failed),
            sweeps_skipped: get(&s.sweeps_skipped),
            records_removed: get(&s.records_removed),
            ids_unconfirmed: get(&s.ids_unconfirmed),
            webhook_refreshes: get(&s.webhook_refreshes),
            webhook_refresh_failures: get(&s.webhook_refresh_failures),
            webhooks_expired: get(&s.webhooks_expired),
            webhooks_recreated: get(&s.webhooks_recreated),
        }
    }

    /// The report of the last sweep this instance ran.
    pub fn last_sweep(&self) -> Option<SweepReport> {
        self.shared.last_sweep.lock().clone()
    }

    /// Stops the tasks and waits for them: a sweep in progress stops after its current batch
    /// and releases its lock.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for MaintenanceHandle {
    fn drop(&mut self) {
        // The tasks see it at their next wait or batch and end by themselves.
        self.stop.send_replace(true);
    }
}

/// Sleeps `delay`; false when stopped first.
async fn wait(delay: Duration, stopped: &mut watch::Receiver<bool>) -> bool {
    if *stopped.borrow() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        // A dropped sender stops too.
        _ = stopped.wait_for(|stop| *stop) => false,
    }
}

/// A claim on one interval: a [`StoreLock`] held for `ttl`; `None` when another instance holds
/// it.
struct Claim(StoreLock);

impl Claim {
    async fn take(cache: &Cache, name: &str, ttl: Duration) -> Result<Option<Self>, String> {
        StoreLock::try_acquire(cache.store(), &cache.keys().lock(name), ttl)
            .await
            .map(|lock| lock.map(Self))
            .map_err(|err| err.to_string())
    }

    /// Gives the interval back (another instance may run it at its next tick).
    async fn give_back(self, _cache: &Cache) {
        if let Err(err) = self.0.release().await {
            tracing::warn!(error = %err, key = self.0.key(), "could not give the claim back; it expires by itself");
        }
    }
}

async fn sweep_loop(
    maintenance: Maintenance,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut delay = maintenance.first_round_after;
    while wait(delay, &mut stopped).await {
        delay = maintenance.sweep_every;
        let span = tracing::info_span!("maintenance.sweep", entities = maintenance.models.len());
        sweep_round(&maintenance, &shared, stopped.clone())
            .instrument(span)
            .await;
    }
}

async fn sweep_round(maintenance: &Maintenance, shared: &Shared, stopped: watch::Receiver<bool>) {
    let cache = &maintenance.cache;
    let claim = match Claim::take(cache, SWEEP_CLAIM, maintenance.sweep_every).await {
        Ok(Some(claim)) => claim,
        Ok(None) => {
            tracing::debug!("another instance has this interval's sweep");
            add(&shared.sweeps_skipped, 1);
            return;
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not claim the sweep; trying next interval");
            add(&shared.sweeps_failed, 1);
            return;
        }
    };
    let sweep = Sweep::new(cache)
        .entities(maintenance.models.iter().map(|m| (m.meta, m.schema_hash)))
        .strategy(maintenance.strategy)
        .max_gone_share(maintenance.max_gone_share)
        .cancel_on(stopped);
    match sweep.run().await {
        Ok(report) => {
            add(&shared.sweeps_run, 1);
            add(&shared.records_removed, report.totals.removed);
            add(&shared.ids_unconfirmed, report.totals.unconfirmed);
            tracing::info!(
                outcome = ?report.outcome(),
                removed = report.totals.removed,
                unconfirmed = report.totals.unconfirmed,
                calls = report.totals.calls,
                "maintenance sweep done"
            );
            *shared.last_sweep.lock() = Some(report);
        }
        Err(SweepError::LockHeld { .. }) => {
            tracing::info!("another sweep holds the lock; this interval is left to it");
            add(&shared.sweeps_skipped, 1);
        }
        Err(err) => {
            tracing::error!(error = %err, "maintenance sweep failed");
            add(&shared.sweeps_failed, 1);
            claim.give_back(cache).await;
        }
    }
}

async fn refresh_loop(
    maintenance: Maintenance,
    api: WebhooksApi,
    mut ids: Vec<String>,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut delay = maintenance.first_round_after;
    while wait(delay, &mut stopped).await {
        delay = maintenance.refresh_every;
        let span = tracing::info_span!("maintenance.webhook_refresh", webhooks = ids.len());
        refresh_round(&maintenance, &api, &mut ids, &shared)
            .instrument(span)
            .await;
    }
}

async fn refresh_round(
    maintenance: &Maintenance,
    api: &WebhooksApi,
    ids: &mut [String],
    shared: &Shared,
) {
    let cache = &maintenance.cache;
    let claim = match Claim::take(cache, REFRESH_CLAIM, maintenance.refresh_every).await {
        Ok(Some(claim)) => claim,
        Ok(None) => {
            tracing::debug!("another instance has this interval's webhook refresh");
            return;
        }
        // The store is down: refreshing twice is harmless, never refreshing is not.
        Err(err) => {
            tracing::warn!(error = %err, "could not claim the webhook refresh; refreshing anyway");
            refresh_all(maintenance, api, ids, shared).await;
            return;
        }
    };
    if !refresh_all(maintenance, api, ids, shared).await {
        claim.give_back(cache).await;
    }
}

/// The id that replaced `id` (a re-created webhook), as the store says; `id` when none.
async fn current_id(cache: &Cache, id: &str) -> String {
    let key = cache.keys().webhook_state("replaced-by", id);
    match cache.store().get(&key).await {
        Ok(Some(raw)) => String::from_utf8(raw.to_vec()).unwrap_or_else(|_| id.to_owned()),
        _ => id.to_owned(),
    }
}

/// Refreshes every id (following re-creations); whether all succeeded.
async fn refresh_all(
    maintenance: &Maintenance,
    api: &WebhooksApi,
    ids: &mut [String],
    shared: &Shared,
) -> bool {
    let mut all = true;
    for id in ids.iter_mut() {
        *id = current_id(&maintenance.cache, id).await;
        match api.refresh(id).await {
            Ok(expires) => {
                add(&shared.webhook_refreshes, 1);
                tracing::info!(
                    webhook = id,
                    expires = expires.as_deref().unwrap_or("never"),
                    "webhook refreshed"
                );
            }
            // Refused as inactive (expired, or turned off) or gone: refreshing cannot help.
            Err(err @ (SourceError::InvalidRequest(_) | SourceError::NotFound(_))) => {
                add(&shared.webhooks_expired, 1);
                match recreate(maintenance, api, id).await {
                    Ok(Some(new_id)) => {
                        add(&shared.webhooks_recreated, 1);
                        *id = new_id;
                    }
                    Ok(None) => {
                        all = false;
                        tracing::error!(webhook = id.as_str(), error = %err, "ALARM: the native webhook expired or is gone and nothing re-creates it; changes are no longer heard. Create a new one (`webhooks create --url ...`) and configure its id and MAC secret, or enable Maintenance::recreate_expired_webhooks");
                    }
                    Err(recreate_err) => {
                        all = false;
                        add(&shared.webhook_refresh_failures, 1);
                        tracing::error!(webhook = id.as_str(), error = %recreate_err, "ALARM: the native webhook expired and could not be re-created");
                    }
                }
            }
            Err(err) => {
                all = false;
                add(&shared.webhook_refresh_failures, 1);
                tracing::error!(webhook = id.as_str(), error = %err, "webhook refresh failed");
            }
        }
    }
    all
}

/// Re-creates an expired webhook when configured to: the new webhook's secret kept in the
/// store, the old id pointing to the new one, the missed changes handled as a gap. The new id,
/// or `None` when re-creating is not configured.
async fn recreate(
    maintenance: &Maintenance,
    api: &WebhooksApi,
    old_id: &str,
) -> Result<Option<String>, String> {
    let Some(url) = &maintenance.recreate_url else {
        return Ok(None);
    };
    let cache = &maintenance.cache;
    // Best effort: an expired webhook still counts against the base's 10 until deleted.
    if let Err(err) = api.delete(old_id).await {
        tracing::warn!(webhook = old_id, error = %err, "could not delete the expired webhook");
    }
    let created = api
        .create_table_data(url)
        .await
        .map_err(|e| e.to_string())?;
    let secret =
        MacSecret::from_base64(created.mac_secret_base64.expose()).map_err(|e| e.to_string())?;
    NativeWebhooks::keep_secret(cache, &created.id, &secret)
        .await
        .map_err(|e| e.to_string())?;
    NativeWebhooks::flag_gap(cache, &created.id)
        .await
        .map_err(|e| e.to_string())?;
    let replaced = cache.keys().webhook_state("replaced-by", old_id);
    let ttl = crate::webhook::native::DEFAULT_CURSOR_TTL;
    cache
        .store()
        .set(&replaced, Bytes::from(created.id.clone()), ttl)
        .await
        .map_err(|e| e.to_string())?;
    let mut invalidated = 0;
    for model in &maintenance.models {
        invalidated += invalidate_entity_wide(cache, model.meta, model.schema_hash)
            .await
            .map_err(|e| e.to_string())?;
    }
    tracing::warn!(
        old = old_id,
        new = created.id,
        invalidated,
        "expired native webhook re-created; its new MAC secret is kept in the store, and the changes missed meanwhile were invalidated"
    );
    Ok(Some(created.id))
}
