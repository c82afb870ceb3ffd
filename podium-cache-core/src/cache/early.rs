//! The probabilistic early refresh (XFetch) of hot records: a read shortly before a record's
//! expiry may refresh it in the background, so a hot key rarely expires under load.

use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use tracing::Instrument;

use super::clock::now_ms;
use super::entry::EntryHeader;
use super::metrics::Metrics;
use super::Cache;
use crate::entity::Cacheable;
use crate::store::{Locks, Version};

/// `-ln` of the smallest draw `Cache::draws_early_refresh` makes (2^-53): beyond this many
/// fetch deltas (times β) before its expiry, no read refreshes a record early.
const XFETCH_HORIZON: f64 = 36.8;
/// An early refresh's claim outlives the entry it refreshes by this much.
const REFRESH_CLAIM_GRACE: Duration = Duration::from_secs(5);

/// Takes a data key out of this process's early refreshes when the refresh ends.
struct RefreshingGuard {
    cache: Cache,
    data_key: String,
}

impl Drop for RefreshingGuard {
    fn drop(&mut self) {
        self.cache.inner.refreshing.lock().remove(&self.data_key);
    }
}

impl Cache {
    /// Whether this read of a fresh record refreshes it early (XFetch, see
    /// [`EntryHeader::refresh_early`]). Far from the expiry it costs a comparison, no draw.
    pub(super) fn draws_early_refresh(&self, header: &EntryHeader, now: i64) -> bool {
        let beta = self.inner.config.xfetch_beta;
        if beta <= 0.0 || header.fetch_ms == 0 {
            return false;
        }
        let horizon = f64::from(header.fetch_ms) * beta * XFETCH_HORIZON;
        if (header.expires_at_ms.saturating_sub(now)) as f64 > horizon {
            return false;
        }
        // In (0, 1]: never ln(0).
        let draw = 1.0 - rand::thread_rng().gen::<f64>();
        header.refresh_early(now, beta, draw)
    }

    /// Starts refreshing the fresh record `id` in the background, unless a refresh or a fill
    /// of it already runs in this process. The reader does not wait: it has its answer.
    pub(super) fn refresh_early<T: Cacheable>(
        &self,
        id: &str,
        version: Option<&[u8]>,
        epoch: u64,
        header: &EntryHeader,
    ) {
        let meta = T::meta();
        // The generation read with the record: the refresh is a fill guarded by it.
        let Ok(version) = Version::parse(version) else {
            return;
        };
        let data_key = self.keys().data(meta.entity, T::schema_hash(), id);
        if self
            .inner
            .in_flight
            .contains(&(data_key.clone(), Some(version.generation)))
        {
            return;
        }
        if !self.inner.refreshing.lock().insert(data_key.clone()) {
            return;
        }
        let guard = RefreshingGuard {
            cache: self.clone(),
            data_key,
        };
        let id = id.to_owned();
        let header = *header;
        let span = tracing::debug_span!("cache.refresh_early", entity = meta.entity, id = %id);
        tokio::spawn(
            async move {
                guard
                    .cache
                    .run_early_refresh::<T>(&id, (version.generation, epoch), &header)
                    .await;
                drop(guard);
            }
            .instrument(span),
        );
    }

    /// Claims the refresh of the entry described by `header` in the store (one refresh per
    /// stored entry, across instances, and none for readers that still saw it after it was
    /// refreshed), then fills `id` guarded by `generation`. A failed refresh keeps its claim:
    /// the record is then refetched when it expires (and may be served stale from there).
    async fn run_early_refresh<T: Cacheable>(
        &self,
        id: &str,
        (generation, epoch): (u64, u64),
        header: &EntryHeader,
    ) {
        let meta = T::meta();
        let claim = self.keys().lock(&format!(
            "refresh:{}:{}:{id}:{}",
            meta.entity,
            T::schema_hash(),
            header.stored_at_ms
        ));
        let remaining = u64::try_from(header.expires_at_ms.saturating_sub(now_ms())).unwrap_or(0);
        let claim_ttl = Duration::from_millis(remaining).saturating_add(REFRESH_CLAIM_GRACE);
        match self
            .inner
            .store
            .set_if_absent(&claim, Bytes::from_static(b"1"), claim_ttl)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => return self.store_failed(&err, "claiming an early refresh"),
        }
        Metrics::inc(&self.inner.metrics.early_refreshes);
        tracing::debug!(
            remaining_ms = remaining,
            fetch_ms = header.fetch_ms,
            "refreshing a hot record before it expires"
        );
        if let Err(err) = self.fill::<T>(id, Some(generation), epoch).await {
            tracing::warn!(error = %err, "early refresh failed; the record is refetched when it expires");
        }
    }
}
