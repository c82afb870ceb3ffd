//! What the native-webhook receiver counts and holds per process: what one round did, the
//! counters and their snapshot, and the slot of each webhook's background pager.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOutcome {
    /// The webhook.
    pub webhook_id: String,
    /// Payload pages read.
    pub pages: u32,
    /// Payloads applied.
    pub payloads: u64,
    /// Created or changed records invalidated.
    pub invalidated: u64,
    /// Destroyed records removed (tombstoned).
    pub removed: u64,
    /// Table entries skipped because no model is registered for the table.
    pub unknown_tables: u64,
    /// Error payloads (Airtable's `"error": true`) skipped.
    pub error_payloads: u64,
    /// Gaps found (payloads deleted unseen, a lost cursor, a re-created webhook).
    pub gaps: u64,
    /// Payloads known lost in those gaps.
    pub skipped_payloads: u64,
    /// Cached records invalidated entity-wide because of a gap.
    pub gap_invalidations: u64,
    /// The saved cursor after the round.
    pub cursor: u64,
    /// The round stopped at the page limit with more payloads waiting.
    pub more: bool,
}

/// Counters of one process's native-webhook receiver (see [`NativeWebhooks::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NativeStats {
    /// Notifications verified and recorded.
    pub notifications_accepted: u64,
    /// Notifications refused (size, MAC, body, store).
    pub notifications_refused: u64,
    /// Rounds run.
    pub rounds: u64,
    /// Rounds that failed (they are retried, then left in the store).
    pub rounds_failed: u64,
    /// Payloads applied.
    pub payloads: u64,
    /// Gaps found.
    pub gaps: u64,
    /// Cached records invalidated entity-wide because of gaps.
    pub gap_invalidations: u64,
}

impl NativeStats {
    /// `(name, value)` of every counter, for exporters.
    pub fn pairs(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("notifications_accepted", self.notifications_accepted),
            ("notifications_refused", self.notifications_refused),
            ("rounds", self.rounds),
            ("rounds_failed", self.rounds_failed),
            ("payloads", self.payloads),
            ("gaps", self.gaps),
            ("gap_invalidations", self.gap_invalidations),
        ]
    }
}

#[derive(Default)]
pub(super) struct NativeCounters {
    pub(super) accepted: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) rounds: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) payloads: AtomicU64,
    pub(super) gaps: AtomicU64,
    pub(super) gap_invalidations: AtomicU64,
}

impl NativeCounters {
    pub(super) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn round(&self, outcome: &SyncOutcome) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        self.payloads.fetch_add(outcome.payloads, Ordering::Relaxed);
        self.gaps.fetch_add(outcome.gaps, Ordering::Relaxed);
        self.gap_invalidations
            .fetch_add(outcome.gap_invalidations, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> NativeStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NativeStats {
            notifications_accepted: get(&self.accepted),
            notifications_refused: get(&self.refused),
            rounds: get(&self.rounds),
            rounds_failed: get(&self.failed),
            payloads: get(&self.payloads),
            gaps: get(&self.gaps),
            gap_invalidations: get(&self.gap_invalidations),
        }
    }
}

/// One webhook's background pager in this process.
#[derive(Default)]
pub(super) struct Slot {
    pub(super) running: AtomicBool,
    pub(super) again: AtomicBool,
}
