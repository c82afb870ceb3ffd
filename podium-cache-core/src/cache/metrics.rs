//! Counters of the engine, for `/metrics` and tests.
//!
//! With the feature `metrics`, every increment is also sent to the [`metrics`] facade as the
//! counter `podium_cache_{name}` (`podium_cache_hits`, `podium_cache_misses`, ...), so any
//! `metrics` exporter (Prometheus, StatsD, ...) the application installs sees them.
//! [`MetricsSnapshot`] works either way.

use std::sync::atomic::{AtomicU64, Ordering};

/// One engine counter and the name it is exported under.
#[derive(Debug)]
pub(crate) struct Counter {
    value: AtomicU64,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    name: &'static str,
}

impl Counter {
    const fn new(name: &'static str) -> Self {
        Self {
            value: AtomicU64::new(0),
            name,
        }
    }

    fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

macro_rules! counters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        #[derive(Debug)]
        pub(crate) struct Metrics {
            $(pub(crate) $name: Counter,)*
        }

        impl Default for Metrics {
            fn default() -> Self {
                Self { $($name: Counter::new(concat!("podium_cache_", stringify!($name))),)* }
            }
        }

        /// A copy of the engine's counters at one moment (more counters may come: read the
        /// fields, or [`pairs`](Self::pairs) for all of them).
        ///
        /// ```
        /// use podium_cache_core::cache::MetricsSnapshot;
        /// let snapshot = MetricsSnapshot::default();
        /// assert_eq!(snapshot.hits, 0);
        /// assert!(snapshot.pairs().iter().any(|(name, _)| *name == "misses"));
        /// ```
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct MetricsSnapshot {
            $(#[doc = $doc] pub $name: u64,)*
        }

        impl Metrics {
            pub(crate) fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $($name: self.$name.get(),)* }
            }
        }

        impl MetricsSnapshot {
            /// `(name, value)` of every counter, for exporters.
            pub fn pairs(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
        }
    };
}

counters! {
    hits: "Reads answered with a record from the store.",
    tombstone_hits: "Reads answered \"not found\" from a tombstone.",
    misses: "Reads that had to ask the source.",
    coalesced: "Misses that joined a fill already in flight.",
    source_calls: "Source calls made by fills (batched: one per batch).",
    source_errors: "Fills whose source call failed.",
    store_errors: "Store calls that failed; reads fell through to the source.",
    decode_errors: "Stored entries that no longer decoded (refetched).",
    fills_stored: "Fills written to the store.",
    fills_discarded: "Fills not written because a newer change won the race.",
    upserts_applied: "Upserts stored (strictly newer than what was stored).",
    upserts_stale: "Upserts refused as not newer than what was stored.",
    invalidations: "Explicit invalidations.",
    deletes: "Records deleted through the cache or removed as gone.",
    negative_hits: "Reads answered \"not found\" from the in-process negative cache (ids never seen).",
    negative_stored: "Ids the source does not have and the cache never saw, kept in the negative cache.",
    misses_refused: "Misses refused because their client had too many outstanding (HTTP 429).",
    early_refreshes: "Hot records refreshed in the background before they expired (XFetch).",
    stale_served: "Expired records served because the source failed (stale-if-error).",
    misses_queued: "Fills queued in the batcher for a source call (coalesced misses join one).",
}

impl Metrics {
    /// Adds one to `counter` (and to its `metrics` facade counter with the feature `metrics`).
    pub(crate) fn inc(counter: &Counter) {
        counter.value.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!(counter.name).increment(1);
    }
}
