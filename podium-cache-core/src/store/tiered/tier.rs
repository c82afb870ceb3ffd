//! [`TypedTier`]: the bounded in-process map of decoded values, with the placeholder logic that
//! keeps a fill which raced an invalidation out of it, and the switch that bypasses it while
//! invalidations may be missed.

use std::any::Any;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

/// How many lock stripes carry the per-key generations. Hits take no lock; fills and
/// invalidations lock one stripe, a flush locks them all.
const STRIPES: usize = 256;

/// A decoded value as the tier holds it.
type Shared = Arc<dyn Any + Send + Sync>;

/// The in-process tier of a [`TieredStore`](super::TieredStore): decoded, typed values
/// (`Arc<T>`) keyed by the store key they were read from (a record's data key; an index entry;
/// a query's id list), bounded by entry count (moka), each living at most the tier's TTL.
///
/// Coherence follows Redis's client-side caching guide:
/// - **Placeholders.** A reader takes a [`Ticket`] *before* it reads the shared store; the ticket
///   records the key's stripe generation and the tier's epoch. Every invalidation of the key (a
///   local write or a broadcast from another instance) bumps the generation, every flush bumps
///   the epoch, so [`TypedTier::insert`] refuses a value read before an invalidation that
///   arrived since.
/// - **Link loss.** While the invalidation link is down the tier is flushed and bypassed:
///   [`TypedTier::lookup`] answers no hit and hands out no ticket, so nothing read meanwhile
///   is kept once the link is back.
///
/// The engine reaches it through [`Store::typed_tier`](super::Store::typed_tier).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use podium_cache_core::store::{TierLookup, TypedTier};
///
/// let tier = TypedTier::new(1_000, Duration::from_secs(60));
/// tier.set_serving(true);
/// let TierLookup::Miss(Some(ticket)) = tier.lookup::<String>("k".to_owned()) else { panic!() };
/// tier.invalidate("k"); // a write raced the read: the value read before it is not kept
/// assert!(!tier.insert(ticket, Arc::new("old".to_owned())));
/// let TierLookup::Miss(Some(ticket)) = tier.lookup::<String>("k".to_owned()) else { panic!() };
/// assert!(tier.insert(ticket, Arc::new("new".to_owned())));
/// assert!(matches!(tier.lookup::<String>("k".to_owned()), TierLookup::Hit(v) if *v == "new"));
/// ```
pub struct TypedTier {
    entries: moka::sync::Cache<String, Shared>,
    stripes: Box<[Mutex<u64>]>,
    hasher: RandomState,
    epoch: AtomicU64,
    serving: AtomicBool,
    link: watch::Sender<bool>,
    counters: Counters,
}

impl std::fmt::Debug for TypedTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedTier")
            .field("entries", &self.entries.entry_count())
            .field("serving", &self.is_serving())
            .finish_non_exhaustive()
    }
}

/// Permission to put the value of one key into the tier, taken before the shared store is read;
/// honoured only if no invalidation of the key and no flush happened since.
#[derive(Debug)]
pub struct Ticket {
    key: String,
    stripe: usize,
    generation: u64,
    epoch: u64,
}

impl Ticket {
    /// The key this ticket is for.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// What [`TypedTier::lookup`] found.
#[derive(Debug)]
pub enum TierLookup<T> {
    /// The decoded value: nothing to read, nothing to decode.
    Hit(Arc<T>),
    /// Not in the tier. The ticket lets the value read next be offered back; `None` while the
    /// tier is bypassed (its invalidation link is down).
    Miss(Option<Ticket>),
}

/// The tier's counters and state at one moment (see [`TypedTier::metrics`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TierMetrics {
    /// Reads answered from the tier.
    pub hits: u64,
    /// Reads the tier could not answer while serving.
    pub misses: u64,
    /// Reads that skipped the tier because its invalidation link was down.
    pub bypassed: u64,
    /// Values put into the tier.
    pub inserts: u64,
    /// Values refused because an invalidation or a flush raced their read.
    pub inserts_refused: u64,
    /// Keys invalidated, by local writes and by broadcasts.
    pub invalidations: u64,
    /// Invalidation messages published to other instances.
    pub broadcasts_sent: u64,
    /// Invalidation messages whose publishing began (counted before the message is sent, so
    /// after a write returns it is at least that write's message's place in this instance's
    /// publishing order: what another instance must have received to have heard it).
    pub broadcasts_started: u64,
    /// Invalidation messages received from other instances.
    pub broadcasts_received: u64,
    /// Invalidation messages that could not be published (the write was reported failed).
    pub broadcast_failures: u64,
    /// Times the invalidation link was lost.
    pub link_drops: u64,
    /// Times the whole tier was flushed.
    pub flushes: u64,
    /// Whether the tier serves now (its invalidation link is up).
    pub serving: bool,
    /// Entries held (approximate).
    pub entries: u64,
}

impl TierMetrics {
    /// `(name, value)` of every counter (monotonic), for exporters.
    ///
    /// ```
    /// let m = podium_cache_core::store::TierMetrics::default();
    /// assert!(m.counters().iter().any(|(name, _)| *name == "link_drops"));
    /// ```
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("hits", self.hits),
            ("misses", self.misses),
            ("bypassed", self.bypassed),
            ("inserts", self.inserts),
            ("inserts_refused", self.inserts_refused),
            ("invalidations", self.invalidations),
            ("broadcasts_sent", self.broadcasts_sent),
            ("broadcasts_started", self.broadcasts_started),
            ("broadcasts_received", self.broadcasts_received),
            ("broadcast_failures", self.broadcast_failures),
            ("link_drops", self.link_drops),
            ("flushes", self.flushes),
        ]
    }
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    bypassed: AtomicU64,
    inserts: AtomicU64,
    inserts_refused: AtomicU64,
    invalidations: AtomicU64,
    pub(super) broadcasts_sent: AtomicU64,
    pub(super) broadcasts_started: AtomicU64,
    pub(super) broadcasts_received: AtomicU64,
    pub(super) broadcast_failures: AtomicU64,
    link_drops: AtomicU64,
    flushes: AtomicU64,
}

pub(super) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl TypedTier {
    /// A tier of at most `capacity` entries, each kept at most `ttl`. It starts bypassed: call
    /// [`TypedTier::set_serving`] once invalidations are being received (a
    /// [`TieredStore`](super::TieredStore) does that when its subscription is confirmed).
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        let (link, _) = watch::channel(false);
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl.max(Duration::from_millis(1)))
                .build(),
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
            hasher: RandomState::new(),
            epoch: AtomicU64::new(0),
            serving: AtomicBool::new(false),
            link,
            counters: Counters::default(),
        }
    }

    /// Looks `key` up. A hit is the value as it was inserted, downcast to `T` (a value of
    /// another type under the key reads as a miss). A miss carries the [`Ticket`] for offering
    /// back the value the caller is about to read from the shared store.
    pub fn lookup<T: Any + Send + Sync>(&self, key: String) -> TierLookup<T> {
        if !self.serving.load(Ordering::Acquire) {
            inc(&self.counters.bypassed);
            return TierLookup::Miss(None);
        }
        if let Some(value) = self.get::<T>(&key) {
            return TierLookup::Hit(value);
        }
        inc(&self.counters.misses);
        TierLookup::Miss(self.ticket(key))
    }

    /// The value under `key` if the tier serves and holds one of type `T` (counted as a hit);
    /// takes no ticket and counts no miss.
    pub fn get<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        if !self.serving.load(Ordering::Acquire) {
            return None;
        }
        let value = self.entries.get(key)?.downcast::<T>().ok()?;
        inc(&self.counters.hits);
        Some(value)
    }

    /// A ticket for `key`, or `None` while the tier is bypassed.
    fn ticket(&self, key: String) -> Option<Ticket> {
        let stripe = self.stripe_of(&key);
        let generation = self.stripes[stripe].lock();
        // Checked under the stripe lock: a flush holds every stripe while it switches the tier
        // off, so a ticket is either taken before the flush (and dies with its epoch) or not at
        // all until the tier serves again.
        if !self.serving.load(Ordering::Acquire) {
            return None;
        }
        Some(Ticket {
            key,
            stripe,
            generation: *generation,
            epoch: self.epoch.load(Ordering::Acquire),
        })
    }

    /// Puts `value` under the ticket's key if nothing invalidated the key or flushed the tier
    /// since the ticket was taken; true when it was kept.
    pub fn insert<T: Any + Send + Sync>(&self, ticket: Ticket, value: Arc<T>) -> bool {
        let Some(stripe) = self.stripes.get(ticket.stripe) else {
            return false;
        };
        let generation = stripe.lock();
        let current = self.serving.load(Ordering::Acquire)
            && *generation == ticket.generation
            && self.epoch.load(Ordering::Acquire) == ticket.epoch;
        if !current {
            inc(&self.counters.inserts_refused);
            tracing::debug!(
                key = ticket.key,
                "tier insert refused: an invalidation raced the read"
            );
            return false;
        }
        // Inserted under the stripe lock, so an invalidation of the key is either before the
        // check above (refused) or after this insert (which it removes).
        self.entries.insert(ticket.key, value);
        inc(&self.counters.inserts);
        true
    }

    /// Drops `key` and voids every ticket taken for it so far.
    pub fn invalidate(&self, key: &str) {
        let stripe = self.stripe_of(key);
        let mut generation = self.stripes[stripe].lock();
        *generation = generation.wrapping_add(1);
        self.entries.invalidate(key);
        inc(&self.counters.invalidations);
    }

    /// Switches the tier on (the invalidation link is up) or off (it is down: the tier is
    /// flushed and bypassed until switched on again). Either way every ticket taken before is
    /// voided.
    pub fn set_serving(&self, serving: bool) {
        self.reset(Some(serving));
        if !serving {
            inc(&self.counters.flushes);
        }
        self.link.send_replace(serving);
    }

    /// Drops every entry and voids every ticket taken so far; the tier keeps serving (or not).
    pub fn flush(&self) {
        self.reset(None);
        inc(&self.counters.flushes);
    }

    fn reset(&self, serving: Option<bool>) {
        // Every stripe is held, so no ticket is taken and no insert happens meanwhile.
        let _all: Vec<_> = self.stripes.iter().map(|s| s.lock()).collect();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(serving) = serving {
            self.serving.store(serving, Ordering::Release);
        }
        self.entries.invalidate_all();
    }

    /// Flushes the tier and switches it off after a lost invalidation link (counted as a drop).
    pub(super) fn link_lost(&self) {
        inc(&self.counters.link_drops);
        self.set_serving(false);
    }

    /// Whether the tier serves now.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// Waits until the tier serves (its invalidation link is up), at most `timeout`; true when
    /// it does.
    pub async fn wait_serving(&self, timeout: Duration) -> bool {
        let mut link = self.link.subscribe();
        tokio::time::timeout(timeout, link.wait_for(|serving| *serving))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until the tier is bypassed (its invalidation link is down), at most `timeout`;
    /// true when it is.
    pub async fn wait_bypassed(&self, timeout: Duration) -> bool {
        let mut link = self.link.subscribe();
        tokio::time::timeout(timeout, link.wait_for(|serving| !*serving))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The tier's counters and state.
    pub fn metrics(&self) -> TierMetrics {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TierMetrics {
            hits: load(&c.hits),
            misses: load(&c.misses),
            bypassed: load(&c.bypassed),
            inserts: load(&c.inserts),
            inserts_refused: load(&c.inserts_refused),
            invalidations: load(&c.invalidations),
            broadcasts_sent: load(&c.broadcasts_sent),
            broadcasts_started: load(&c.broadcasts_started),
            broadcasts_received: load(&c.broadcasts_received),
            broadcast_failures: load(&c.broadcast_failures),
            link_drops: load(&c.link_drops),
            flushes: load(&c.flushes),
            serving: self.is_serving(),
            entries: self.entries.entry_count(),
        }
    }

    pub(super) fn counters(&self) -> &Counters {
        &self.counters
    }

    fn stripe_of(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % STRIPES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(tier: &TypedTier, key: &str) -> Ticket {
        match tier.lookup::<u32>(key.to_owned()) {
            TierLookup::Miss(Some(ticket)) => ticket,
            other => panic!("expected a miss with a ticket, got {other:?}"),
        }
    }

    #[test]
    fn a_bypassed_tier_hands_out_no_ticket_and_no_hit() {
        let tier = TypedTier::new(10, Duration::from_secs(60));
        assert!(matches!(
            tier.lookup::<u32>("k".into()),
            TierLookup::Miss(None)
        ));
        tier.set_serving(true);
        let t = ticket(&tier, "k");
        assert!(tier.insert(t, Arc::new(7u32)));
        tier.set_serving(false);
        assert!(matches!(
            tier.lookup::<u32>("k".into()),
            TierLookup::Miss(None)
        ));
        tier.set_serving(true);
        // The flush on the way down removed it.
        assert!(matches!(
            tier.lookup::<u32>("k".into()),
            TierLookup::Miss(Some(_))
        ));
    }

    #[test]
    fn a_ticket_taken_before_a_link_loss_is_refused_after_it_comes_back() {
        let tier = TypedTier::new(10, Duration::from_secs(60));
        tier.set_serving(true);
        let t = ticket(&tier, "k");
        tier.link_lost();
        tier.set_serving(true);
        assert!(!tier.insert(t, Arc::new(1u32)));
        assert_eq!(tier.metrics().link_drops, 1);
        assert_eq!(tier.metrics().flushes, 1);
    }

    #[test]
    fn an_invalidation_voids_only_tickets_taken_before_it() {
        let tier = TypedTier::new(10, Duration::from_secs(60));
        tier.set_serving(true);
        let before = ticket(&tier, "k");
        tier.invalidate("k");
        let after = ticket(&tier, "k");
        assert!(!tier.insert(before, Arc::new(1u32)));
        assert!(tier.insert(after, Arc::new(2u32)));
        assert!(matches!(tier.lookup::<u32>("k".into()), TierLookup::Hit(v) if *v == 2));
        // Another type under the same key is a miss, not a panic.
        assert!(matches!(
            tier.lookup::<String>("k".into()),
            TierLookup::Miss(_)
        ));
    }
}
