//! The sweep: finds cached records that were deleted in the source behind the cache's back
//! (Airtable automations do not fire on delete) and removes them, with about 1% of the calls a
//! per-record check would make.
//!
//! # What a run does
//! 1. **Lock.** Takes the store-held lock `{prefix}:lock:sweep` (`SET NX` with a TTL and a
//!    random token), refreshes it in the background while it runs and releases it at the end
//!    only if it still holds the token: two sweeps never overlap, and a crashed one frees the
//!    lock when its TTL runs out. A second sweep fails with [`SweepError::LockHeld`].
//! 2. **Scan.** Walks each entity's data keys with the store's `SCAN` (never `KEYS`), a page
//!    at a time, and reads the cached records' JSON to collect which ids other cached records
//!    reference through their linked-record fields ([`FieldKind::Link`]).
//! 3. **Verify** each entity's cached ids against the source, asking for one field only:
//!    - *Id checks*: `OR(RECORD_ID()='…',…)` with up to 100 ids a call; an id the answer
//!      lacks is gone. Cost: `⌈cached/100⌉` calls, whatever the table's size.
//!    - *Listing the table*: every id of the table, 100 a page. Cost: `⌈table/100⌉` calls,
//!      cheaper when the cache holds most of the table (the usual case for hot tables).
//!
//!    The table's size is not known up front, so the sweep lists the table with a budget of
//!    exactly what the id checks would cost (`maxRecords = 100 × ⌈cached/100⌉`). If the
//!    listing ends within the budget it is complete: every cached id it lacks is gone, at no
//!    more calls than the checks. If it hits the budget, the ids it saw are confirmed alive and
//!    only the cached ids it did not see are checked by id. This is the classic rent-or-buy
//!    rule: never worse than twice the cheaper choice, equal to it when the cache holds most of
//!    the table, and the listing's calls are never wasted (every id it sees needs no check).
//!    An entity with at most 100 cached ids is checked by id directly (one call either way).
//!    Listing is sound because the source pages from a snapshot (Airtable's offsets are
//!    cursors) and the ids were scanned before the listing started.
//! 4. **Remove.** Every id found gone is removed with its index entries and tagged responses
//!    and tombstoned ([`Cache::remove_gone`], which tells the listeners, e.g. the HTTP layer's
//!    purge), unless the run is a dry run. Ids the source could not confirm either way (429s
//!    or 5xx that outlasted the client's retries: [`SourceError::is_unconfirmed`]) are left
//!    alone and counted. As a guard against a misconfigured base, an entity where more than
//!    [`Sweep::max_gone_share`] of the cached records look gone is reported and not touched.
//!
//! [`Strategy::References`] is the seed project's strategy: it checks only the cached ids no
//! other cached record references, so a deleted record that is still linked from a cached
//! record is missed until its TTL. The default [`Strategy::Full`] reports how many of the
//! records it found gone were such referenced ones ([`Counts::gone_referenced`]).
//!
//! Every source call passes the process-wide rate limiter of the Airtable base, so a sweep
//! running inside the app shares the 5 requests a second fairly with the app's reads. A
//! cancellation ([`Sweep::cancel_on`]) stops between batches: removals already made are
//! complete, nothing is half-removed, and the lock is released.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use podium_cache_core::cache::Cache;
//! use podium_cache_core::source::AirtableSource;
//! use podium_cache_core::store::MemoryStore;
//! use podium_cache_core::sweep::{Outcome, Strategy, Sweep};
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema, podium_cache_core::Cacheable)]
//! #[cacheable(table = "Events")]
//! struct Event {
//!     id: String,
//!     name: String,
//!     #[serde(default)]
//!     #[cacheable(references = "users")]
//!     owner: Vec<String>,
//! }
//!
//! let source = AirtableSource::builder("patXXXX", "appXXXXXXXXXXXXXX")
//!     .api_url("http://127.0.0.1:9")
//!     .build()?;
//! let cache = Cache::builder(Arc::new(MemoryStore::new(1_000)), Arc::new(source)).build();
//! let report = Sweep::new(&cache)
//!     .entity::<Event>()
//!     .strategy(Strategy::Full)
//!     .run()
//!     .await?;
//! assert_eq!(report.totals.cached, 0); // nothing cached: no Airtable call at all
//! assert_eq!(report.outcome(), Outcome::Clean);
//! println!("{report}");
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde::{Serialize, Serializer};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::cache::{entry, Cache, CacheError};
use crate::entity::{Cacheable, EntityMeta, FieldKind};
use crate::source::airtable::MAX_PAGE;
use crate::source::{formula, ListQuery, SourceError};
use crate::store::{Store, StoreError, StoreLock};

/// The name of the store-held lock (`{prefix}:lock:sweep`).
pub const LOCK_NAME: &str = "sweep";
/// Keys asked for per `SCAN` call by default.
pub const DEFAULT_SCAN_COUNT: usize = 500;
/// Lock TTL by default; the lock is refreshed every third of it while the sweep runs.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(300);
/// Share of an entity's cached records that may be found gone in one run by default.
pub const DEFAULT_MAX_GONE_SHARE: f64 = 0.5;
/// Below this many cached records the gone-share guard does not apply.
const GUARD_MIN_CACHED: u64 = 20;
/// Id-check batches in flight at once. One: with Airtable's 100-500 ms answers that is about
/// the 5 requests a second anyway, and it never bunches requests into a 429 (a 30 s pause for
/// every client of the base, the app included).
const CHECK_CONCURRENCY: usize = 1;
/// Removals in flight at once (store round trips only).
const REMOVE_CONCURRENCY: usize = 8;
/// Gone ids removed between two cancellation checks.
const REMOVE_CHUNK: usize = 100;

/// Which cached ids a sweep verifies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Every cached id, by listing the table or checking ids, whichever is cheaper (default).
    #[default]
    Full,
    /// Only the cached ids that no other cached record references (the seed's strategy): a
    /// deleted record that is still referenced is missed.
    References,
}

impl Strategy {
    /// The name used on the command line and in reports (`"full"`, `"references"`).
    ///
    /// ```
    /// use podium_cache_core::sweep::Strategy;
    /// assert_eq!(Strategy::References.as_str(), "references");
    /// assert_eq!("full".parse::<Strategy>()?, Strategy::Full);
    /// # Ok::<(), podium_cache_core::sweep::SweepError>(())
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::References => "references",
        }
    }
}

impl FromStr for Strategy {
    type Err = SweepError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "references" => Ok(Self::References),
            _ => Err(SweepError::UnknownStrategy(s.to_owned())),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an entity's ids were verified.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Nothing needed verifying (or the run stopped first).
    #[default]
    None,
    /// `OR(RECORD_ID()=…)` checks, 100 ids a call.
    Checks,
    /// The table was listed completely within the checks' budget.
    Listing,
    /// The listing hit its budget (or failed); the ids it did not see were checked by id.
    ListingThenChecks,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "-",
            Self::Checks => "checks",
            Self::Listing => "listing",
            Self::ListingThenChecks => "listing+checks",
        }
    }
}

/// Why a sweep could not run or had to stop. A source failure for one entity is not an
/// error of the run: it is reported in [`EntityReport::error`] and the sweep goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    /// Another sweep holds the lock.
    #[error(
        "another sweep is running: the lock {key} is held (a crashed sweep's lock expires \
         by itself within {ttl:?})"
    )]
    LockHeld {
        /// The lock's key.
        key: String,
        /// The lock TTL this sweep would have used.
        ttl: Duration,
    },
    /// The lock expired or was taken over while this sweep ran; it stopped.
    #[error("the sweep lost its lock {key} (it expired or was taken over); stopped")]
    LockLost {
        /// The lock's key.
        key: String,
    },
    /// [`Sweep::only`] named an entity the sweep was not given.
    #[error("unknown entity `{name}` (known: {known})")]
    UnknownEntity {
        /// The name asked for.
        name: String,
        /// The entity names the sweep knows.
        known: String,
    },
    /// A strategy name that is neither `full` nor `references`.
    #[error("unknown sweep strategy `{0}` (known: full, references)")]
    UnknownStrategy(String),
    /// The store failed (scanning, reading records or holding the lock).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Removing a gone record failed.
    #[error("removing a gone record: {0}")]
    Remove(#[from] CacheError),
}

/// What happened during a run, sent to [`Sweep::progress`] as it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The lock is taken; scanning starts.
    Locked,
    /// An entity's cached ids are scanned.
    Scanned {
        /// Entity name.
        entity: &'static str,
        /// Distinct cached ids.
        cached: u64,
    },
    /// Every entity is scanned: this many ids will be verified in total.
    Planned {
        /// Ids to verify over all entities.
        ids: u64,
    },
    /// More ids of an entity were verified (confirmed either way, or left unconfirmed).
    Advanced {
        /// Entity name.
        entity: &'static str,
        /// Ids verified since the previous event.
        ids: u64,
    },
    /// An entity is done.
    Finished {
        /// Entity name.
        entity: &'static str,
        /// Ids found gone.
        gone: u64,
        /// Source calls made for it.
        calls: u64,
    },
}

/// The counters of one entity, or of a whole run ([`SweepReport::totals`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Distinct ids cached (data keys of the current schema).
    pub cached: u64,
    /// Cached ids that another cached record references through a linked-record field.
    pub referenced: u64,
    /// Referenced ids not verified because the strategy is [`Strategy::References`].
    pub skipped_referenced: u64,
    /// Ids whose existence the source confirmed either way.
    pub checked: u64,
    /// Ids the source no longer has.
    pub gone: u64,
    /// Gone ids that other cached records still referenced: what [`Strategy::References`]
    /// would have missed.
    pub gone_referenced: u64,
    /// Gone ids removed and tombstoned (0 in a dry run).
    pub removed: u64,
    /// Ids the source could not confirm (429/5xx past the retries): left alone.
    pub unconfirmed: u64,
    /// HTTP requests sent to the source (retries included), read from the source's counters
    /// ([`crate::source::Source::stats`]): requests other users of the same source object make
    /// while an entity is swept are counted too (none in `cargo xtask sweep`).
    pub calls: u64,
    /// Calls the plain batched check would have made: every cached id asked of the source by
    /// id, 100 a call (`OR(RECORD_ID()=…)`, Airtable's page size), whatever the table holds.
    pub baseline_calls: u64,
    /// `100 × (1 − calls / baseline_calls)`; 0 when nothing is cached (negative when the sweep
    /// made more calls than the batched check would have).
    pub savings_percent: f64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.cached += other.cached;
        self.referenced += other.referenced;
        self.skipped_referenced += other.skipped_referenced;
        self.checked += other.checked;
        self.gone += other.gone;
        self.gone_referenced += other.gone_referenced;
        self.removed += other.removed;
        self.unconfirmed += other.unconfirmed;
        self.calls += other.calls;
        self.baseline_calls += other.baseline_calls;
        self.update_savings();
    }

    fn update_savings(&mut self) {
        self.savings_percent = if self.baseline_calls == 0 {
            0.0
        } else {
            100.0 * (1.0 - self.calls as f64 / self.baseline_calls as f64)
        };
    }
}

/// What a sweep did for one entity.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EntityReport {
    /// Entity name (`"events"`).
    pub entity: &'static str,
    /// Source table (`"Events"`).
    pub table: &'static str,
    /// How its ids were verified.
    pub method: Method,
    /// The counters.
    #[serde(flatten)]
    pub counts: Counts,
    /// The ids found gone (removed unless the run was a dry run or the guard held).
    pub gone_ids: Vec<String>,
    /// Why the entity could not be swept completely (a source error other than a rate limit or
    /// an outage, or the gone-share guard).
    pub error: Option<String>,
}

/// What a sweep did. `Display` prints a table for people; `Serialize` gives the JSON for
/// schedulers.
#[derive(Clone, Debug, Serialize)]
pub struct SweepReport {
    /// The strategy used.
    pub strategy: Strategy,
    /// Whether removals were skipped.
    pub dry_run: bool,
    /// Whether the run was cancelled before it finished.
    pub cancelled: bool,
    /// When the run started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// How long it took.
    #[serde(rename = "duration_ms", serialize_with = "as_millis")]
    pub duration: Duration,
    /// Per entity, in the order they were given.
    pub entities: Vec<EntityReport>,
    /// Sums over the entities.
    pub totals: Counts,
}

fn as_millis<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// How a run ended, for exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything cached was verified (and what was gone removed).
    Clean,
    /// An entity failed, the guard held, or the run was cancelled.
    Failed,
    /// Finished, but some ids could not be confirmed either way.
    Unconfirmed,
}

impl Outcome {
    /// 0 clean, 1 failed, 2 finished with unconfirmed ids.
    ///
    /// ```
    /// use podium_cache_core::sweep::Outcome;
    /// assert_eq!(Outcome::Unconfirmed.exit_code(), 2);
    /// ```
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Clean => 0,
            Self::Failed => 1,
            Self::Unconfirmed => 2,
        }
    }
}

impl SweepReport {
    /// Clean, failed or unconfirmed (see [`Outcome`]).
    pub fn outcome(&self) -> Outcome {
        if self.cancelled || self.entities.iter().any(|e| e.error.is_some()) {
            Outcome::Failed
        } else if self.totals.unconfirmed > 0 {
            Outcome::Unconfirmed
        } else {
            Outcome::Clean
        }
    }

    /// The report of one entity, by entity name.
    pub fn entity(&self, name: &str) -> Option<&EntityReport> {
        self.entities.iter().find(|e| e.entity == name)
    }
}

impl fmt::Display for SweepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sweep: strategy {}{}{}, {:.1} s",
            self.strategy,
            if self.dry_run { ", dry run" } else { "" },
            if self.cancelled { ", CANCELLED" } else { "" },
            self.duration.as_secs_f64()
        )?;
        writeln!(
            f,
            "{:<12} {:<15} {:>8} {:>8} {:>6} {:>8} {:>11} {:>6} {:>6} {:>8}",
            "entity",
            "method",
            "cached",
            "checked",
            "gone",
            "removed",
            "unconfirmed",
            "calls",
            "batched",
            "savings"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, method: &str, c: &Counts| {
            writeln!(
                f,
                "{:<12} {:<15} {:>8} {:>8} {:>6} {:>8} {:>11} {:>6} {:>6} {:>7.1}%",
                name,
                method,
                c.cached,
                c.checked,
                c.gone,
                c.removed,
                c.unconfirmed,
                c.calls,
                c.baseline_calls,
                c.savings_percent
            )
        };
        for e in &self.entities {
            row(f, e.entity, e.method.as_str(), &e.counts)?;
        }
        row(f, "total", "", &self.totals)?;
        for e in &self.entities {
            if let Some(error) = &e.error {
                writeln!(f, "{}: {error}", e.entity)?;
            }
        }
        match self.strategy {
            Strategy::Full => writeln!(
                f,
                "{} of the gone records were still referenced by other cached records \
                 (the references strategy would have missed them)",
                self.totals.gone_referenced
            )?,
            Strategy::References => writeln!(
                f,
                "{} referenced ids were not checked (a deleted one among them stays cached \
                 until its TTL; the full strategy checks them)",
                self.totals.skipped_referenced
            )?,
        }
        if self.totals.unconfirmed > 0 {
            writeln!(
                f,
                "{} ids could not be confirmed (rate limit or outage) and were left alone",
                self.totals.unconfirmed
            )?;
        }
        Ok(())
    }
}

/// One entity a sweep covers: its metadata and schema hash (`T::meta()`, `T::schema_hash()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepEntity {
    /// Table, entity name and fields.
    pub meta: &'static EntityMeta,
    /// The schema hash whose data keys are swept.
    pub schema_hash: &'static str,
}

impl SweepEntity {
    /// The entity of the model `T`.
    pub fn of<T: Cacheable>() -> Self {
        Self {
            meta: T::meta(),
            schema_hash: T::schema_hash(),
        }
    }

    /// Appends this entity to `entities` unless one of the same entity name is there already.
    pub fn add_to(self, entities: &mut Vec<SweepEntity>) {
        if !entities.iter().any(|e| e.meta.entity == self.meta.entity) {
            entities.push(self);
        }
    }
}

/// Builds and runs a sweep over a [`Cache`].
///
/// ```no_run
/// # async fn demo(cache: podium_cache_core::Cache) -> Result<(), podium_cache_core::sweep::SweepError> {
/// # #[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema, podium_cache_core::Cacheable)]
/// # #[cacheable(table = "Events")]
/// # struct Event { id: String, name: String }
/// use podium_cache_core::sweep::{Strategy, Sweep};
/// let (cancel, cancelled) = tokio::sync::watch::channel(false);
/// let report = Sweep::new(&cache)
///     .entity::<Event>()
///     .strategy(Strategy::Full)
///     .dry_run(true)
///     .cancel_on(cancelled)
///     .run()
///     .await?;
/// std::process::exit(report.outcome().exit_code().into());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Sweep {
    cache: Cache,
    entities: Vec<SweepEntity>,
    only: Vec<String>,
    strategy: Strategy,
    dry_run: bool,
    scan_count: usize,
    batch_size: usize,
    lock_ttl: Duration,
    max_gone_share: f64,
    progress: Option<mpsc::Sender<Progress>>,
    cancel: Option<watch::Receiver<bool>>,
}

impl Sweep {
    /// A sweep over `cache` with no entities yet, [`Strategy::Full`], removing what is gone.
    pub fn new(cache: &Cache) -> Self {
        Self {
            cache: cache.clone(),
            entities: Vec::new(),
            only: Vec::new(),
            strategy: Strategy::Full,
            dry_run: false,
            scan_count: DEFAULT_SCAN_COUNT,
            batch_size: MAX_PAGE,
            lock_ttl: DEFAULT_LOCK_TTL,
            max_gone_share: DEFAULT_MAX_GONE_SHARE,
            progress: None,
            cancel: None,
        }
    }

    /// Adds the model `T`.
    pub fn entity<T: Cacheable>(self) -> Self {
        self.entity_meta(T::meta(), T::schema_hash())
    }

    /// Adds an entity by its metadata and schema hash (for callers without the model type).
    pub fn entity_meta(mut self, meta: &'static EntityMeta, schema_hash: &'static str) -> Self {
        SweepEntity { meta, schema_hash }.add_to(&mut self.entities);
        self
    }

    /// Adds several `(meta, schema_hash)` pairs.
    pub fn entities(
        mut self,
        entities: impl IntoIterator<Item = (&'static EntityMeta, &'static str)>,
    ) -> Self {
        for (meta, hash) in entities {
            self = self.entity_meta(meta, hash);
        }
        self
    }

    /// Verifies only these entities (entity or table names, any case); every entity still
    /// counts for references. Empty (the default) means all.
    pub fn only<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.only = names.into_iter().map(Into::into).collect();
        self
    }

    /// Which ids to verify (default [`Strategy::Full`]).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Verify and report, but remove nothing.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Keys asked for per `SCAN` call (default 500).
    pub fn scan_count(mut self, count: usize) -> Self {
        self.scan_count = count.max(1);
        self
    }

    /// Ids per check call (default and maximum 100).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size.clamp(1, MAX_PAGE);
        self
    }

    /// TTL of the lock (default 5 min; refreshed every third of it while the sweep runs).
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// The largest share of an entity's cached records (with at least 20 cached) that one run
    /// may find gone and remove (default 0.5); above it the entity is reported and nothing of
    /// it is removed: a wrong base id or table must not empty the cache. 1.0 turns it off.
    pub fn max_gone_share(mut self, share: f64) -> Self {
        self.max_gone_share = if share.is_nan() {
            DEFAULT_MAX_GONE_SHARE
        } else {
            share.clamp(0.0, 1.0)
        };
        self
    }

    /// Sends [`Progress`] events here. The sender waits when the channel is full, so the
    /// receiver must be drained; a dropped receiver is ignored.
    pub fn progress(mut self, sender: mpsc::Sender<Progress>) -> Self {
        self.progress = Some(sender);
        self
    }

    /// Stops between batches once `cancelled` turns true (source calls in flight are
    /// dropped, removals are completed), then releases the lock; the report says
    /// `cancelled`.
    pub fn cancel_on(mut self, cancelled: watch::Receiver<bool>) -> Self {
        self.cancel = Some(cancelled);
        self
    }

    /// The entities this sweep covers.
    pub fn covered(&self) -> &[SweepEntity] {
        &self.entities
    }

    /// Runs the sweep: lock, scan, verify, remove, release. See the module documentation.
    pub async fn run(&self) -> Result<SweepReport, SweepError> {
        let span = tracing::info_span!(
            "sweep",
            strategy = self.strategy.as_str(),
            dry_run = self.dry_run,
            entities = self.entities.len()
        );
        async {
            let selected = self.selected()?;
            let lock = Lock::acquire(
                self.cache.store(),
                self.cache.keys().lock(LOCK_NAME),
                self.lock_ttl,
            )
            .await?;
            let result = self.run_locked(&selected, &lock).await;
            lock.release().await;
            match &result {
                Ok(report) => tracing::info!(
                    outcome = ?report.outcome(),
                    cached = report.totals.cached,
                    gone = report.totals.gone,
                    removed = report.totals.removed,
                    unconfirmed = report.totals.unconfirmed,
                    calls = report.totals.calls,
                    duration_ms = report.duration.as_millis() as u64,
                    "sweep finished"
                ),
                Err(err) => tracing::error!(error = %err, "sweep failed"),
            }
            result
        }
        .instrument(span)
        .await
    }

    /// Whether entity `i` is verified in this run.
    fn selected(&self) -> Result<Vec<bool>, SweepError> {
        select(&self.entities, &self.only)
    }

    async fn run_locked(&self, selected: &[bool], lock: &Lock) -> Result<SweepReport, SweepError> {
        let started = Instant::now();
        let mut report = SweepReport {
            strategy: self.strategy,
            dry_run: self.dry_run,
            cancelled: false,
            started_at: chrono::Utc::now(),
            duration: Duration::ZERO,
            entities: Vec::new(),
            totals: Counts::default(),
        };
        self.emit(Progress::Locked).await;

        // Scan every entity (even unselected ones count for references).
        let needs_json = self.entities.iter().any(|e| {
            e.meta
                .fields
                .iter()
                .any(|f| matches!(f.kind, FieldKind::Link { .. }))
        });
        let mut references: HashMap<&'static str, HashSet<String>> = HashMap::new();
        let mut cached: Vec<Vec<String>> = Vec::with_capacity(self.entities.len());
        for (entity, &is_selected) in self.entities.iter().zip(selected) {
            if self.is_cancelled() {
                report.cancelled = true;
                return Ok(self.finish(report, started));
            }
            lock.ensure_held()?;
            let ids = self.scan(entity, needs_json, &mut references).await?;
            if is_selected {
                self.emit(Progress::Scanned {
                    entity: entity.meta.entity,
                    cached: ids.len() as u64,
                })
                .await;
            }
            cached.push(ids);
        }

        let empty = HashSet::new();
        let planned: u64 = self
            .entities
            .iter()
            .zip(&cached)
            .zip(selected)
            .filter(|(_, &is_selected)| is_selected)
            .map(|((entity, ids), _)| {
                let referenced = references.get(entity.meta.entity).unwrap_or(&empty);
                match self.strategy {
                    Strategy::Full => ids.len() as u64,
                    Strategy::References => {
                        ids.iter().filter(|id| !referenced.contains(*id)).count() as u64
                    }
                }
            })
            .sum();
        self.emit(Progress::Planned { ids: planned }).await;

        for ((entity, ids), &is_selected) in self.entities.iter().zip(cached).zip(selected) {
            if !is_selected {
                continue;
            }
            if self.is_cancelled() {
                report.cancelled = true;
                break;
            }
            let referenced = references.get(entity.meta.entity).unwrap_or(&empty);
            let run = EntityRun {
                sweep: self,
                entity: *entity,
                referenced,
                lock,
                report: EntityReport {
                    entity: entity.meta.entity,
                    table: entity.meta.table,
                    ..EntityReport::default()
                },
            };
            let (entity_report, flow) = run
                .run(ids)
                .instrument(tracing::info_span!(
                    "sweep.entity",
                    entity = entity.meta.entity
                ))
                .await?;
            self.emit(Progress::Finished {
                entity: entity_report.entity,
                gone: entity_report.counts.gone,
                calls: entity_report.counts.calls,
            })
            .await;
            report.totals.add(&entity_report.counts);
            report.entities.push(entity_report);
            if flow == Flow::Cancelled {
                report.cancelled = true;
                break;
            }
        }
        Ok(self.finish(report, started))
    }

    fn finish(&self, mut report: SweepReport, started: Instant) -> SweepReport {
        report.duration = started.elapsed();
        report.totals.update_savings();
        report
    }

    /// The distinct cached ids of `entity`; collects the ids its records reference.
    async fn scan(
        &self,
        entity: &SweepEntity,
        read_json: bool,
        references: &mut HashMap<&'static str, HashSet<String>>,
    ) -> Result<Vec<String>, SweepError> {
        let keys = self.cache.keys();
        let store = self.cache.store();
        let pattern = keys.data_pattern(entity.meta.entity, entity.schema_hash);
        let mut seen: HashSet<String> = HashSet::new();
        let mut ids = Vec::new();
        let mut cursor = 0u64;
        let span = tracing::debug_span!("sweep.scan", entity = entity.meta.entity);
        async {
            loop {
                let page = store.scan(&pattern, cursor, self.scan_count).await?;
                let mut fresh: Vec<(String, String)> = Vec::new();
                for key in page.keys {
                    let Some(id) = keys.id_from_data_key(&key) else {
                        continue;
                    };
                    // A hashed key component (`h.…`) is not a source id; it cannot be checked.
                    if id.starts_with("h.") || id.is_empty() {
                        tracing::debug!(key, "skipping a data key whose id was hashed");
                        continue;
                    }
                    if seen.insert(id.to_owned()) {
                        let id = id.to_owned();
                        fresh.push((key, id));
                    }
                }
                if read_json && !fresh.is_empty() {
                    let data_keys: Vec<String> = fresh.iter().map(|(k, _)| k.clone()).collect();
                    let values = store.get_many(&data_keys).await?;
                    for ((_, id), value) in fresh.into_iter().zip(values) {
                        // Expired between SCAN and GET: no longer cached.
                        if let Some(raw) = value {
                            // A data entry of another format has no references to offer.
                            if let Ok(stored) = entry::decode(&raw) {
                                collect_references(entity.meta, &id, &stored.json, references);
                            }
                            ids.push(id);
                        }
                    }
                } else {
                    ids.extend(fresh.into_iter().map(|(_, id)| id));
                }
                cursor = page.cursor;
                if cursor == 0 {
                    break;
                }
            }
            tracing::debug!(cached = ids.len(), "scanned");
            Ok(ids)
        }
        .instrument(span)
        .await
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// `future`'s output, or `None` when the sweep is cancelled first (the future is dropped:
    /// use only for reads).
    async fn unless_cancelled<F: Future>(&self, future: F) -> Option<F::Output> {
        let Some(cancel) = &self.cancel else {
            return Some(future.await);
        };
        let mut cancel = cancel.clone();
        let cancelled = async move {
            if cancel.wait_for(|c| *c).await.is_err() {
                // The sender is gone: no cancellation can come any more.
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            biased;
            () = cancelled => None,
            out = future => Some(out),
        }
    }

    async fn emit(&self, progress: Progress) {
        if let Some(sender) = &self.progress {
            // A dropped receiver only means nobody watches.
            let _ = sender.send(progress).await;
        }
    }
}

/// Whether an entity's run went to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Done,
    Cancelled,
}

/// One entity's verification and removals.
struct EntityRun<'a> {
    sweep: &'a Sweep,
    entity: SweepEntity,
    referenced: &'a HashSet<String>,
    lock: &'a Lock,
    report: EntityReport,
}

impl EntityRun<'_> {
    async fn run(mut self, ids: Vec<String>) -> Result<(EntityReport, Flow), SweepError> {
        let source = Arc::clone(self.sweep.cache.source());
        let calls_before = source.stats().requests;
        let counts = &mut self.report.counts;
        counts.cached = ids.len() as u64;
        counts.baseline_calls = ids.len().div_ceil(crate::source::airtable::MAX_PAGE) as u64;
        counts.referenced = ids
            .iter()
            .filter(|id| self.referenced.contains(*id))
            .count() as u64;
        let candidates: Vec<String> = match self.sweep.strategy {
            Strategy::Full => ids,
            Strategy::References => {
                counts.skipped_referenced = counts.referenced;
                ids.into_iter()
                    .filter(|id| !self.referenced.contains(id))
                    .collect()
            }
        };
        let result = self.verify_and_remove(candidates).await;
        let counts = &mut self.report.counts;
        counts.calls = source.stats().requests.saturating_sub(calls_before);
        counts.update_savings();
        let flow = result?;
        tracing::info!(
            method = ?self.report.method,
            cached = counts.cached,
            gone = counts.gone,
            removed = counts.removed,
            unconfirmed = counts.unconfirmed,
            calls = counts.calls,
            "entity swept"
        );
        Ok((self.report, flow))
    }

    async fn verify_and_remove(&mut self, candidates: Vec<String>) -> Result<Flow, SweepError> {
        let mut gone: Vec<String> = Vec::new();
        let mut remaining = candidates;
        let batch = self.sweep.batch_size;
        let check_calls = remaining.len().div_ceil(batch);

        // Listing can only be cheaper than the checks when they take more than one call.
        if self.sweep.strategy == Strategy::Full && check_calls > 1 {
            self.report.method = Method::ListingThenChecks;
            let budget = check_calls * MAX_PAGE;
            let query = ListQuery {
                filter: None,
                fields: probe_fields(self.entity.meta),
                max_records: Some(budget),
            };
            let source = self.sweep.cache.source();
            let listed = self
                .sweep
                .unless_cancelled(source.list(self.entity.meta.table, &query))
                .instrument(tracing::debug_span!("sweep.list", budget))
                .await;
            match listed {
                None => return Ok(Flow::Cancelled),
                Some(Ok(records)) => {
                    let complete = records.len() < budget;
                    let present: HashSet<String> = records.into_iter().map(|r| r.id).collect();
                    let (alive, unseen): (Vec<String>, Vec<String>) =
                        remaining.into_iter().partition(|id| present.contains(id));
                    let mut decided = alive.len() as u64;
                    if complete {
                        self.report.method = Method::Listing;
                        decided += unseen.len() as u64;
                        gone = unseen;
                        remaining = Vec::new();
                    } else {
                        remaining = unseen;
                    }
                    self.report.counts.checked += decided;
                    tracing::debug!(listed = present.len(), complete, "listed the table");
                    self.sweep
                        .emit(Progress::Advanced {
                            entity: self.entity.meta.entity,
                            ids: decided,
                        })
                        .await;
                }
                Some(Err(err)) if err.is_unconfirmed() => {
                    tracing::warn!(error = %err, "listing failed; checking ids instead");
                }
                Some(Err(err)) => return Ok(self.fail(&err, remaining.len())),
            }
        } else if !remaining.is_empty() {
            self.report.method = Method::Checks;
        }

        if !remaining.is_empty() {
            match self.check(&remaining, &mut gone).await? {
                Flow::Done => {}
                Flow::Cancelled => {
                    self.record_gone(&gone);
                    return Ok(Flow::Cancelled);
                }
            }
        }
        self.record_gone(&gone);
        if self.report.error.is_some() {
            // A failed entity removes nothing: its picture is incomplete.
            return Ok(Flow::Done);
        }
        let counts = &self.report.counts;
        if counts.cached >= GUARD_MIN_CACHED
            && counts.gone as f64 > self.sweep.max_gone_share * counts.cached as f64
        {
            let message = format!(
                "{} of {} cached records look gone, more than the allowed share {:.0}%: nothing \
                 removed (is the base id right? raise max_gone_share if this is real)",
                counts.gone,
                counts.cached,
                self.sweep.max_gone_share * 100.0
            );
            tracing::error!("{message}");
            self.report.error = Some(message);
            return Ok(Flow::Done);
        }
        if self.sweep.dry_run {
            return Ok(Flow::Done);
        }
        self.remove(gone).await
    }

    /// Checks `ids` by id, 100 a call; appends the gone ones to `gone`.
    async fn check(&mut self, ids: &[String], gone: &mut Vec<String>) -> Result<Flow, SweepError> {
        let source = Arc::clone(self.sweep.cache.source());
        let table = self.entity.meta.table;
        let fields = probe_fields(self.entity.meta);
        // Owned batches: the run's future stays `Send` for any caller (e.g. `tokio::spawn`).
        let batches: Vec<Vec<String>> = ids
            .chunks(self.sweep.batch_size)
            .map(<[String]>::to_vec)
            .collect();
        let mut answers = stream::iter(batches)
            .map(move |chunk| {
                let source = Arc::clone(&source);
                let query = ListQuery {
                    filter: Some(formula::record_id_in(&chunk)),
                    fields: fields.clone(),
                    max_records: None,
                };
                async move {
                    let answer = source
                        .list(table, &query)
                        .instrument(tracing::debug_span!("sweep.check", ids = chunk.len()))
                        .await;
                    (chunk, answer)
                }
            })
            .buffered(CHECK_CONCURRENCY);
        let mut processed = 0usize;
        loop {
            let Some(next) = self.sweep.unless_cancelled(answers.next()).await else {
                return Ok(Flow::Cancelled);
            };
            let Some((chunk, answer)) = next else {
                return Ok(Flow::Done);
            };
            match answer {
                Ok(records) => {
                    let present: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
                    gone.extend(
                        chunk
                            .iter()
                            .filter(|id| !present.contains(id.as_str()))
                            .cloned(),
                    );
                    self.report.counts.checked += chunk.len() as u64;
                }
                Err(err) if err.is_unconfirmed() => {
                    tracing::warn!(error = %err, ids = chunk.len(), "ids left unconfirmed");
                    self.report.counts.unconfirmed += chunk.len() as u64;
                }
                Err(err) => {
                    self.fail(&err, ids.len() - processed);
                    return Ok(Flow::Done);
                }
            }
            processed += chunk.len();
            self.sweep
                .emit(Progress::Advanced {
                    entity: self.entity.meta.entity,
                    ids: chunk.len() as u64,
                })
                .await;
            if self.sweep.is_cancelled() {
                return Ok(Flow::Cancelled);
            }
            self.lock.ensure_held()?;
        }
    }

    fn fail(&mut self, err: &SourceError, unverified: usize) -> Flow {
        tracing::error!(error = %err, unverified, "entity could not be swept");
        self.report.error = Some(format!(
            "{} ({unverified} ids not verified): {err}",
            self.entity.meta.table
        ));
        Flow::Done
    }

    fn record_gone(&mut self, gone: &[String]) {
        let counts = &mut self.report.counts;
        counts.gone = gone.len() as u64;
        counts.gone_referenced = gone
            .iter()
            .filter(|id| self.referenced.contains(*id))
            .count() as u64;
        self.report.gone_ids = gone.to_vec();
    }

    /// Removes and tombstones `gone`, checking for cancellation between chunks.
    async fn remove(&mut self, gone: Vec<String>) -> Result<Flow, SweepError> {
        let cache = &self.sweep.cache;
        let SweepEntity { meta, schema_hash } = self.entity;
        for chunk in gone.chunks(REMOVE_CHUNK) {
            if self.sweep.is_cancelled() {
                return Ok(Flow::Cancelled);
            }
            self.lock.ensure_held()?;
            let mut removals = stream::iter(chunk.to_vec())
                .map(|id| {
                    let cache = cache.clone();
                    async move {
                        tracing::info!(id, "removing a record deleted in the source");
                        cache.remove_gone(meta, schema_hash, &id).await
                    }
                })
                .buffer_unordered(REMOVE_CONCURRENCY);
            while let Some(done) = removals.next().await {
                done?;
                self.report.counts.removed += 1;
            }
        }
        Ok(Flow::Done)
    }
}

/// Which of `entities` the names `only` pick (entity or table names, any case; empty picks
/// all): what [`Sweep::only`] does, for callers that check names before they have a cache.
///
/// ```
/// use podium_cache_core::entity::EntityMeta;
/// use podium_cache_core::sweep::{select, SweepEntity, SweepError};
/// static EVENTS: EntityMeta = EntityMeta { table: "Events", entity: "events", id_key: "id", fields: &[] };
/// let entities = [SweepEntity { meta: &EVENTS, schema_hash: "000000000000" }];
/// assert_eq!(select(&entities, &["Events".to_string()])?, vec![true]);
/// let err = select(&entities, &["nope".to_string()]).unwrap_err();
/// assert_eq!(err.to_string(), "unknown entity `nope` (known: events)");
/// # Ok::<(), SweepError>(())
/// ```
pub fn select(entities: &[SweepEntity], only: &[String]) -> Result<Vec<bool>, SweepError> {
    if only.is_empty() {
        return Ok(vec![true; entities.len()]);
    }
    let mut selected = vec![false; entities.len()];
    for name in only {
        let position = entities.iter().position(|e| {
            e.meta.entity.eq_ignore_ascii_case(name) || e.meta.table.eq_ignore_ascii_case(name)
        });
        match position {
            Some(i) => selected[i] = true,
            None => {
                return Err(SweepError::UnknownEntity {
                    name: name.clone(),
                    known: entities
                        .iter()
                        .map(|e| e.meta.entity)
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        }
    }
    Ok(selected)
}

/// The one field a verification asks for: the first scalar field (smallest answer), else the
/// first field, else none (all fields).
fn probe_fields(meta: &EntityMeta) -> Vec<String> {
    meta.fields
        .iter()
        .find(|f| f.kind == FieldKind::Scalar)
        .or_else(|| meta.fields.first())
        .map(|f| vec![f.name.to_owned()])
        .unwrap_or_default()
}

/// Adds the ids `raw` (the JSON of a cached record of `meta`) links to, except itself.
fn collect_references(
    meta: &EntityMeta,
    own_id: &str,
    raw: &[u8],
    references: &mut HashMap<&'static str, HashSet<String>>,
) {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(raw) else {
        return;
    };
    for field in meta.fields {
        let FieldKind::Link { entity, .. } = field.kind else {
            continue;
        };
        let mut add = |id: &str| {
            let is_self = entity == meta.entity && id == own_id;
            if !is_self && !id.is_empty() {
                references.entry(entity).or_default().insert(id.to_owned());
            }
        };
        match object.get(field.name) {
            Some(Value::String(id)) => add(id),
            Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_str).for_each(add),
            _ => {}
        }
    }
}

/// The sweep's store lock ([`StoreLock`]), extended every third of its TTL in the background;
/// a sweep whose lock was lost stops before its next batch.
struct Lock {
    lock: Arc<StoreLock>,
    lost: Arc<AtomicBool>,
    heartbeat: JoinHandle<()>,
}

impl Lock {
    async fn acquire(
        store: &Arc<dyn Store>,
        key: String,
        ttl: Duration,
    ) -> Result<Self, SweepError> {
        let Some(lock) = StoreLock::try_acquire(store, &key, ttl).await? else {
            return Err(SweepError::LockHeld { key, ttl });
        };
        let lock = Arc::new(lock);
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeat(Arc::clone(&lock), ttl, Arc::clone(&lost)));
        Ok(Self {
            lock,
            lost,
            heartbeat,
        })
    }

    fn ensure_held(&self) -> Result<(), SweepError> {
        if self.lost.load(Ordering::SeqCst) {
            Err(SweepError::LockLost {
                key: self.lock.key().to_owned(),
            })
        } else {
            Ok(())
        }
    }

    /// Deletes the lock if this sweep still holds it; a failure only leaves it to expire.
    async fn release(self) {
        self.heartbeat.abort();
        match self.lock.release().await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(key = self.lock.key(), "the sweep lock was no longer ours"),
            Err(err) => {
                tracing::warn!(error = %err, "could not release the sweep lock; it will expire")
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // A run dropped midway stops refreshing; the lock then expires by itself.
        self.heartbeat.abort();
    }
}

/// Extends the lock every third of its TTL while it is still ours; flags it lost otherwise.
async fn heartbeat(lock: Arc<StoreLock>, ttl: Duration, lost: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        match lock.extend(ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(key = lock.key(), "the sweep lock expired or was taken over");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(err) => tracing::warn!(error = %err, "could not refresh the sweep lock"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::FieldMeta;

    static META: EntityMeta = EntityMeta {
        table: "Users",
        entity: "users",
        id_key: "id",
        fields: &[
            FieldMeta {
                name: "manager",
                kind: FieldKind::Link {
                    entity: "users",
                    many: false,
                },
                index: false,
            },
            FieldMeta {
                name: "email",
                kind: FieldKind::Scalar,
                index: true,
            },
            FieldMeta {
                name: "events",
                kind: FieldKind::Link {
                    entity: "events",
                    many: true,
                },
                index: false,
            },
        ],
    };

    #[test]
    fn references_are_read_from_link_fields_but_not_from_the_record_itself() {
        let mut refs = HashMap::new();
        let raw = br#"{"id":"recA","manager":"recA","email":"recX","events":["recE1","recE2"]}"#;
        collect_references(&META, "recA", raw, &mut refs);
        let raw = br#"{"id":"recB","manager":"recA","events":[]}"#;
        collect_references(&META, "recB", raw, &mut refs);
        assert_eq!(refs["users"], HashSet::from(["recA".to_string()]));
        assert_eq!(
            refs["events"],
            HashSet::from(["recE1".to_string(), "recE2".to_string()])
        );
        collect_references(&META, "recC", b"not json", &mut refs);
        assert_eq!(refs.values().map(HashSet::len).sum::<usize>(), 3);
    }

    /// Compiles only if a run can be spawned on a multi-threaded runtime.
    #[allow(dead_code)]
    fn a_run_can_be_spawned(sweep: Sweep) {
        fn is_send<T: Send + 'static>(_: T) {}
        is_send(async move { sweep.run().await });
    }

    #[test]
    fn the_probe_asks_for_one_scalar_field() {
        assert_eq!(probe_fields(&META), vec!["email".to_string()]);
    }

    #[test]
    fn outcome_is_failed_when_cancelled_or_an_entity_failed_and_unconfirmed_otherwise() {
        let mut report = SweepReport {
            strategy: Strategy::Full,
            dry_run: false,
            cancelled: false,
            started_at: chrono::Utc::now(),
            duration: Duration::ZERO,
            entities: vec![EntityReport::default()],
            totals: Counts::default(),
        };
        assert_eq!(report.outcome(), Outcome::Clean);
        report.totals.unconfirmed = 3;
        assert_eq!(report.outcome().exit_code(), 2);
        report.entities[0].error = Some("boom".into());
        assert_eq!(report.outcome().exit_code(), 1);
        report.entities[0].error = None;
        report.cancelled = true;
        assert_eq!(report.outcome(), Outcome::Failed);
    }

    #[test]
    fn savings_compare_calls_with_the_batched_by_id_check() {
        let mut counts = Counts {
            calls: 80,
            baseline_calls: 100,
            ..Counts::default()
        };
        counts.update_savings();
        assert!((counts.savings_percent - 20.0).abs() < 1e-9);
        let mut empty = Counts::default();
        empty.update_savings();
        assert_eq!(empty.savings_percent, 0.0);
    }
}
