//! One entity's part of a run: verify its cached ids against the source (listing the table
//! within the id checks' budget, then checking the rest by id) and remove what is gone.

use std::collections::HashSet;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use tracing::Instrument;

use super::builder::{Sweep, SweepEntity};
use super::error::SweepError;
use super::lock::Lock;
use super::report::{EntityReport, Method, Progress, Strategy};
use crate::entity::{EntityMeta, FieldKind};
use crate::source::airtable::MAX_PAGE;
use crate::source::{formula, ListQuery, SourceError};

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

/// Whether an entity's run went to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flow {
    Done,
    Cancelled,
}

/// One entity's verification and removals.
pub(super) struct EntityRun<'a> {
    pub(super) sweep: &'a Sweep,
    pub(super) entity: SweepEntity,
    pub(super) referenced: &'a HashSet<String>,
    pub(super) lock: &'a Lock,
    pub(super) report: EntityReport,
}

impl EntityRun<'_> {
    pub(super) async fn run(
        mut self,
        ids: Vec<String>,
    ) -> Result<(EntityReport, Flow), SweepError> {
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

/// The one field a verification asks for: the first scalar field (smallest answer), else the
/// first field, else none (all fields).
pub(super) fn probe_fields(meta: &EntityMeta) -> Vec<String> {
    meta.fields
        .iter()
        .find(|f| f.kind == FieldKind::Scalar)
        .or_else(|| meta.fields.first())
        .map(|f| vec![f.name.to_owned()])
        .unwrap_or_default()
}
