//! The one wall clock of the cache's entries.

/// Milliseconds since the Unix epoch, now: the one wall clock of the cache's entries (records
/// and, in the tower crate, HTTP responses), shared by every instance that shares a store.
///
/// ```
/// let now = podium_cache_core::cache::now_ms();
/// assert!(now > 1_600_000_000_000);
/// ```
pub fn now_ms() -> i64 {
    // Read straight from the system clock: it runs on every hit, and a calendar date (what
    // `chrono::Utc::now` builds first) is not needed to count milliseconds. A clock set
    // before 1970 reads as a negative count, as chrono's does.
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}
