//! The one wall clock of the cache's entries.

/// Milliseconds since the Unix epoch, now: the one wall clock of the cache's entries (records
/// and, in the tower crate, HTTP responses), shared by every instance that shares a store.
///
/// ```
/// let now = podium_cache_core::cache::now_ms();
/// assert!(now > 1_600_000_000_000);
/// ```
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
