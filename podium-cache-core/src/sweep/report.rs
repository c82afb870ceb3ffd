//! What a sweep reports: its strategy and method, the progress it sends, the counts per entity
//! and in total, the outcome, and the report's text form.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::error::SweepError;

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
    pub(super) fn add(&mut self, other: &Counts) {
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

    pub(super) fn update_savings(&mut self) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
