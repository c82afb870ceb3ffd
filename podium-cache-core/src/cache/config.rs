//! TTLs, batching and budgets of a [`Cache`](super::Cache): [`CacheConfig`].

use std::time::Duration;

/// TTLs and batching of a [`Cache`](super::Cache). Set through
/// [`CacheBuilder`](super::CacheBuilder)'s setters, or start from
/// [`CacheConfig::default`] and change fields (the struct may grow: it cannot be built from a
/// literal outside this crate).
///
/// ```
/// use std::time::Duration;
/// use podium_cache_core::cache::CacheConfig;
/// let mut config = CacheConfig::default();
/// config.data_ttl = Duration::from_secs(3600);
/// assert_eq!(config.max_batch, 100);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Data TTL (default 8 h).
    pub data_ttl: Duration,
    /// Tombstone TTL for deleted records (default 9 h, longer than the data TTL).
    pub tombstone_ttl: Duration,
    /// TTL of the "not found" tombstone for an id the source does not have but the cache knew
    /// (it has a version: it was written, changed or deleted through the cache); default: the
    /// tombstone TTL. Ids the cache never saw go to the negative cache instead
    /// ([`negative_ttl`](Self::negative_ttl)), never into the store.
    pub missing_ttl: Duration,
    /// TTL jitter as a fraction (default 0.05 = ±5%).
    pub jitter: f64,
    /// How long misses gather before a batch is sent (default 2 ms).
    pub batch_window: Duration,
    /// The most ids in one batch (default and maximum 100).
    pub max_batch: usize,
    /// Batches of one table in flight at once (default 4); more misses gather meanwhile.
    pub max_in_flight_batches: usize,
    /// TTL of cached query results (default: the data TTL).
    pub query_ttl: Duration,
    /// How long past its expiry a record may still be served while the source fails (5xx,
    /// timeouts, rate limit exhausted); default 0: never. The store keeps data this much longer
    /// than the data TTL. A record with a tombstone is never served stale.
    pub stale_if_error: Duration,
    /// XFetch β of the probabilistic early refresh of hot keys (default 1.0; 0 turns it off):
    /// a read shortly before a record's expiry refreshes it in the background, with a
    /// probability that grows towards the expiry and with the record's fetch time.
    pub xfetch_beta: f64,
    /// How long "the source does not have it" is believed for an id the cache never saw
    /// (default 5 minutes). Kept in process only, never in the store.
    pub negative_ttl: Duration,
    /// The most never-seen ids the in-process negative cache holds (default 100,000); a flood
    /// of random ids evicts its own entries and leaves the store as it was.
    pub negative_capacity: u64,
    /// The source's call budget, `(max calls, window)` (default none; [`Cache::from_settings`](super::Cache::from_settings)
    /// sets Airtable's 5 per second). With it the batcher counts each call from its sending to
    /// one window after its answer, as the Airtable client's limiter does, and shares the
    /// budget between clients; without it only `max_in_flight_batches` are shared.
    pub source_budget: Option<(usize, Duration)>,
    /// Call slots only a client under its fair share may take (default 1): a client keeping
    /// the source busy on its own never takes the last one, so another client's miss is sent
    /// as soon as it arrives. 0 turns the reserve off.
    pub reserved_calls: usize,
    /// The most misses one client may have queued or in flight (default 128; 0: no limit);
    /// beyond it [`CacheError::TooManyMisses`](super::CacheError::TooManyMisses). Misses outside any client are not limited.
    pub max_client_misses: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            data_ttl: Duration::from_secs(8 * 3600),
            tombstone_ttl: Duration::from_secs(9 * 3600),
            missing_ttl: Duration::from_secs(9 * 3600),
            jitter: 0.05,
            batch_window: Duration::from_millis(2),
            max_batch: 100,
            max_in_flight_batches: 4,
            query_ttl: Duration::from_secs(8 * 3600),
            stale_if_error: Duration::ZERO,
            xfetch_beta: 1.0,
            negative_ttl: Duration::from_secs(300),
            negative_capacity: 100_000,
            source_budget: None,
            reserved_calls: 1,
            max_client_misses: 128,
        }
    }
}

impl CacheConfig {
    /// The configuration with every value brought into range as [`CacheBuilder`]'s setters
    /// bring it (see each setter): what [`CacheBuilder::config`] keeps, so public fields
    /// set directly cannot skip the builder's checks.
    ///
    /// [`CacheBuilder`]: super::CacheBuilder
    /// [`CacheBuilder::config`]: super::CacheBuilder::config
    pub(crate) fn checked(mut self) -> Self {
        self.jitter = Self::jitter_in_range(self.jitter);
        self.xfetch_beta = Self::beta_in_range(self.xfetch_beta);
        self.max_batch = Self::max_batch_in_range(self.max_batch);
        self.max_in_flight_batches = self.max_in_flight_batches.max(1);
        self
    }

    /// A TTL jitter fraction in `0..=0.5` (not a number: 0).
    pub(crate) fn jitter_in_range(jitter: f64) -> f64 {
        if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 0.5)
        }
    }

    /// An XFetch β of at least 0 (negative or not finite: 0, off).
    pub(crate) fn beta_in_range(beta: f64) -> f64 {
        if beta.is_finite() {
            beta.max(0.0)
        } else {
            0.0
        }
    }

    /// A batch size in `1..=100` (Airtable's most records a call filters by id).
    pub(crate) fn max_batch_in_range(max: usize) -> usize {
        max.clamp(1, 100)
    }
}
