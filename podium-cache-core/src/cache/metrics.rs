//! Counters of the engine, for `/metrics` and tests.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        #[derive(Debug, Default)]
        pub(crate) struct Metrics {
            $(pub(crate) $name: AtomicU64,)*
        }

        /// A copy of the engine's counters at one moment.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct MetricsSnapshot {
            $(#[doc = $doc] pub $name: u64,)*
        }

        impl Metrics {
            pub(crate) fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
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
}

impl Metrics {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
