//! [`Sweep::run`]: lock, scan every entity (and the ids its cached records link to), verify and
//! remove each selected entity ([`super::entity`]), release.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::Instrument;

use super::builder::{select, Sweep, SweepEntity};
use super::entity::{EntityRun, Flow};
use super::error::SweepError;
use super::lock::{Lock, LOCK_NAME};
use super::report::{Counts, EntityReport, Progress, Strategy, SweepReport};
use crate::cache::entry;
use crate::entity::{EntityMeta, FieldKind};

impl Sweep {
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

    #[test]
    fn the_probe_asks_for_one_scalar_field() {
        assert_eq!(
            super::super::entity::probe_fields(&META),
            vec!["email".to_string()]
        );
    }

    /// Compiles only if a run can be spawned on a multi-threaded runtime.
    #[allow(dead_code)]
    fn a_run_can_be_spawned(sweep: Sweep) {
        fn is_send<T: Send + 'static>(_: T) {}
        is_send(async move { sweep.run().await });
    }
}
