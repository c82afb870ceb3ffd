//! [`Sweep`]'s builder: the entities it covers and how it runs, and [`select`] (which entities a
//! list of names picks).

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::error::SweepError;
use super::report::{Progress, Strategy};
use crate::cache::Cache;
use crate::entity::{Cacheable, EntityMeta};
use crate::source::airtable::MAX_PAGE;
use crate::webhook::Models;

/// Keys asked for per `SCAN` call by default.
pub const DEFAULT_SCAN_COUNT: usize = 500;
/// Lock TTL by default; the lock is refreshed every third of it while the sweep runs.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(300);
/// Share of an entity's cached records that may be found gone in one run by default.
pub const DEFAULT_MAX_GONE_SHARE: f64 = 0.5;

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

    /// The entity of every model of `models` (the registry an app lists its models in once),
    /// in table order.
    ///
    /// ```
    /// # #[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema, podium_cache_core::Cacheable)]
    /// # #[cacheable(table = "Members")]
    /// # struct Member { id: String }
    /// use podium_cache_core::{sweep::SweepEntity, Models};
    /// let models = Models::new().register::<Member>();
    /// let entities: Vec<&str> = SweepEntity::all_of(&models).map(|e| e.meta.entity).collect();
    /// assert_eq!(entities, ["members"]);
    /// ```
    pub fn all_of(models: &Models) -> impl Iterator<Item = SweepEntity> + '_ {
        models.iter().map(|model| SweepEntity {
            meta: model.meta(),
            schema_hash: model.schema_hash(),
        })
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
    pub(super) cache: Cache,
    pub(super) entities: Vec<SweepEntity>,
    pub(super) only: Vec<String>,
    pub(super) strategy: Strategy,
    pub(super) dry_run: bool,
    pub(super) scan_count: usize,
    pub(super) batch_size: usize,
    pub(super) lock_ttl: Duration,
    pub(super) max_gone_share: f64,
    pub(super) progress: Option<mpsc::Sender<Progress>>,
    pub(super) cancel: Option<watch::Receiver<bool>>,
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
}

/// What the run asks of its settings while it runs: whether it is cancelled, and where its
/// progress goes.
impl Sweep {
    pub(super) fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// `future`'s output, or `None` when the sweep is cancelled first (the future is dropped:
    /// use only for reads).
    pub(super) async fn unless_cancelled<F: Future>(&self, future: F) -> Option<F::Output> {
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

    pub(super) async fn emit(&self, progress: Progress) {
        if let Some(sender) = &self.progress {
            // A dropped receiver only means nobody watches.
            let _ = sender.send(progress).await;
        }
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
