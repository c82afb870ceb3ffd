//! The in-process tier in front of the store (see [`TieredStore`](crate::store::TieredStore)):
//! asked before every read by id, offered what the read returned.

use std::sync::Arc;

use super::metrics::Metrics;
use super::Cache;
use crate::entity::Cacheable;
use crate::scope::{self, Event};
use crate::store::{Ticket, TierLookup, TypedTier};

impl Cache {
    /// Asks the in-process tier (if the store has one) for `id` before the store is read: the
    /// decoded value, or the ticket for offering back what is read next.
    pub(crate) fn tier_read<T: Cacheable>(&self, id: &str) -> TierRead<T> {
        let Some(tier) = self.inner.store.typed_tier() else {
            return TierRead::Miss(None);
        };
        if let Some(value) = self.tier_hit_by_id::<T>(tier, id) {
            return TierRead::Hit(value);
        }
        let meta = T::meta();
        let key = self.keys().data(meta.entity, T::schema_hash(), id);
        match tier.lookup::<T>(key) {
            TierLookup::Hit(value) => {
                self.tier_hit(meta.entity, id);
                TierRead::Hit(value)
            }
            TierLookup::Miss(ticket) => TierRead::Miss(ticket),
        }
    }

    /// The tier's value for `id` through the allocation-free key (see
    /// [`Cache::with_tier_key`]), counted as a hit when found.
    pub(super) fn tier_hit_by_id<T: Cacheable>(
        &self,
        tier: &TypedTier,
        id: &str,
    ) -> Option<Arc<T>> {
        let value = self.with_tier_key::<T, _>(id, |key| tier.get::<T>(key))??;
        self.tier_hit(T::meta().entity, id);
        Some(value)
    }

    /// Calls `f` with the record's data key
    /// ([`Keys::write_data`](crate::key::Keys::write_data)) built in a reused per-thread
    /// buffer, so a tier hit allocates nothing; `None` only if the buffer is in use.
    fn with_tier_key<T: Cacheable, R>(&self, id: &str, f: impl FnOnce(&str) -> R) -> Option<R> {
        TIER_KEY.with(|buffer| {
            let mut key = buffer.try_borrow_mut().ok()?;
            self.keys()
                .write_data(&mut key, T::meta().entity, T::schema_hash(), id);
            Some(f(&key))
        })
    }

    /// Offers what a read returned to the in-process tier; kept only if no invalidation of the
    /// record raced the read (see [`crate::store::TypedTier`]).
    pub(crate) fn tier_offer<T: Cacheable>(&self, ticket: Option<Ticket>, found: &Option<T>) {
        if let (Some(ticket), Some(value), Some(tier)) =
            (ticket, found, self.inner.store.typed_tier())
        {
            tier.insert(ticket, Arc::new(value.clone()));
        }
    }

    /// Counts an answer from the in-process tier as a hit (and tags the request's scope).
    fn tier_hit(&self, entity: &'static str, id: &str) {
        Metrics::inc(&self.inner.metrics.hits);
        scope::note(Event::Hit, entity, Some(id));
    }
}

thread_local! {
    /// The data key of the record being looked up in the in-process tier (see
    /// [`Cache::with_tier_key`]).
    static TIER_KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// What the in-process tier answered before a read (see [`Cache::tier_read`]).
pub(crate) enum TierRead<T> {
    /// The decoded value.
    Hit(Arc<T>),
    /// Not there; the ticket (if the tier serves) lets the value read next be kept.
    Miss(Option<Ticket>),
}
