//! One Airtable budget for every instance: a sliding-window limiter held in the store.
//!
//! Airtable allows 5 requests per second per base, however many app instances call it. The
//! process-local [`RateLimiter`] keeps one instance under that; N instances sharing a base need
//! the budget kept where they all see it, so [`SharedLimiter`] keeps it in the store (Redis or a
//! Redis Cluster), as one Lua script per call ([`RateLimits::rate_limit`]).
//!
//! # Why a sliding-window log, not GCRA
//! The local limiter's guarantee is that the limit holds *as the server counts arrivals*: a
//! request holds its slot from before it is sent until its answer has arrived, and the slot is
//! free again only one window after that. The server sees the request arrive somewhere in
//! between, so two requests that used the same slot arrive at least one window apart, whatever
//! the network and the schedulers did. The shared limiter keeps exactly that property:
//!
//! - the store holds a sorted set per base; each member is one request's slot, its score the
//!   time at which the slot is free again;
//! - acquiring adds a slot that stays busy for a *lease* (the longest a request can take), so
//!   a request in flight is never counted as done;
//! - the answer arriving releases the slot *to one window after the release*, measured on
//!   the store's clock at release time (always after the answer, so only ever later, never
//!   earlier, than the local limiter would free it).
//!
//! GCRA (or a token bucket) would need one number per base and be cheaper, but it spaces the
//! *send* times: a request delayed by the network arrives late and bunches up with the next
//! one, and the server, counting arrivals, can see more than 5 in a second. Keeping the
//! answer time in the window costs one more store call per request (the release, sent in the
//! background), which is small next to a 100–500 ms Airtable call.
//!
//! All times are the store server's clock (`TIME` inside the script), so instances whose clocks
//! disagree still agree on every window; a slot whose holder died is free when its lease ends.
//!
//! # Fairness
//! Within one process, callers queue in arrival order (a fair mutex), and only the head of the
//! queue asks the store, so the store sees one waiter per instance. An instance that is
//! refused is recorded as waiting (for two windows after its last try); while others wait, an
//! instance gets a slot only if it holds fewer than its fair share of the budget (5 divided
//! among the waiting instances, rounded up). So an instance with a flood of misses cannot
//! starve one with a few: each gets at least its share of every window. A small random delay
//! on each retry keeps one instance from always winning the race for a freed slot.
//!
//! # When the store is unreachable
//! The instance falls back to its local limiter (configured at `airtable_local_rps`, by
//! default 5 divided by `expected_instances`), says so once in the log, asks the store again at
//! most once a second, and says so again when the store is back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;
use tokio::time::Instant;

use super::limiter::{Permit, RateLimiter};
use crate::store::{RateLimitCall, RateLimitReply, RateLimits, Store, StoreError};

/// After a failed store call, the next one is tried this much later (until then: local).
const STORE_RETRY: Duration = Duration::from_secs(1);
/// The most random delay added to a retry after the store said "wait".
const MAX_RETRY_JITTER_MS: u64 = 3;
/// Default lease of a slot that is never released (see [`SharedLimiter::with_lease`]).
const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// A rate limiter held in a [`Store`] under one key and shared by every process that uses the
/// store: never more than `max` requests in any `window` as the server counts them, across all
/// of them. Falls back to a local [`RateLimiter`] while the store is unreachable.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), podium_cache_core::store::StoreError> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use podium_cache_core::source::limiter::RateLimiter;
/// use podium_cache_core::source::shared_limiter::SharedLimiter;
/// use podium_cache_core::store::RedisStore;
///
/// let store = Arc::new(RedisStore::connect("redis://127.0.0.1:6379/").await?);
/// // While Redis is down: 2 requests a second from this instance.
/// let fallback = Arc::new(RateLimiter::new(2, Duration::from_secs(1)));
/// let limiter = SharedLimiter::new(store, "podium:rl:appXXXX", 5, Duration::from_secs(1), fallback);
/// let permit = limiter.acquire().await;
/// // … send the request, read the answer …
/// drop(permit); // the slot is free again one window from now, for every instance
/// # Ok(()) }
/// ```
pub struct SharedLimiter {
    store: Arc<dyn Store>,
    key: String,
    max: u32,
    window: Duration,
    lease: Duration,
    fallback: Arc<RateLimiter>,
    /// This process's callers, in arrival order; the holder asks the store.
    turn: tokio::sync::Mutex<()>,
    /// This process's name in the store (slot names start with it).
    holder: String,
    next_slot: AtomicU64,
    health: Mutex<Health>,
    store_grants: AtomicU64,
    local_grants: AtomicU64,
    fallbacks: AtomicU64,
}

#[derive(Debug, Default)]
struct Health {
    /// The last store call failed and the fallback was announced.
    degraded: bool,
    /// Until then, the store is not asked again.
    retry_at: Option<Instant>,
}

/// What a [`SharedLimiter`] did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SharedLimiterStats {
    /// Slots granted by the store.
    pub store_grants: u64,
    /// Slots granted by the local fallback limiter (the store was unreachable).
    pub local_grants: u64,
    /// Times the limiter fell back to the local limiter (each announced once in the log).
    pub fallbacks: u64,
}

impl std::fmt::Debug for SharedLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimiter")
            .field("store", &self.store.name())
            .field("key", &self.key)
            .field("max", &self.max)
            .field("window", &self.window)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// One request's slot; dropping it (after the answer arrived) starts the slot's window.
#[derive(Debug)]
pub struct SharedPermit<'a> {
    kind: PermitKind<'a>,
}

#[derive(Debug)]
enum PermitKind<'a> {
    Store {
        limiter: &'a SharedLimiter,
        slot: Option<String>,
    },
    Local {
        _permit: Permit<'a>,
    },
}

impl SharedPermit<'_> {
    /// Whether the slot came from the store (else from the local fallback limiter).
    pub fn is_shared(&self) -> bool {
        matches!(self.kind, PermitKind::Store { .. })
    }
}

impl Drop for SharedPermit<'_> {
    fn drop(&mut self) {
        if let PermitKind::Store { limiter, slot } = &mut self.kind {
            if let Some(slot) = slot.take() {
                limiter.release(slot);
            }
        }
    }
}

impl SharedLimiter {
    /// At most `max` requests in any `window`, counted in `store` under `key`; `fallback`
    /// limits this process while the store is unreachable.
    pub fn new(
        store: Arc<dyn Store>,
        key: impl Into<String>,
        max: usize,
        window: Duration,
        fallback: Arc<RateLimiter>,
    ) -> Self {
        Self {
            store,
            key: key.into(),
            max: u32::try_from(max.max(1)).unwrap_or(u32::MAX),
            window,
            lease: DEFAULT_LEASE.max(window),
            fallback,
            turn: tokio::sync::Mutex::new(()),
            holder: format!("{:016x}", rand::thread_rng().gen::<u64>()),
            next_slot: AtomicU64::new(0),
            health: Mutex::new(Health::default()),
            store_grants: AtomicU64::new(0),
            local_grants: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// How long a slot stays busy at most when its holder never releases it (it died, or the
    /// release failed); default 30 s. Must exceed the longest request: the Airtable client sets
    /// its request timeout plus one window.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(self.window);
        self
    }

    /// The store key the budget is kept under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the store is unreachable and the local limiter is in use.
    pub fn is_degraded(&self) -> bool {
        self.health.lock().degraded
    }

    /// What the limiter did so far.
    pub fn stats(&self) -> SharedLimiterStats {
        SharedLimiterStats {
            store_grants: self.store_grants.load(Ordering::Relaxed),
            local_grants: self.local_grants.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
        }
    }

    /// Resolves when every request of this process that was waiting for a slot has one: the
    /// turn is taken in order (a fair mutex), so this waits behind exactly those, and a request
    /// made next is the first in line.
    ///
    /// ```
    /// # async fn demo(limiter: &podium_cache_core::source::shared_limiter::SharedLimiter) {
    /// limiter.ready().await;
    /// let _permit = limiter.acquire().await; // first in this process's line
    /// # }
    /// ```
    pub async fn ready(&self) {
        drop(self.turn.lock().await);
    }

    /// Waits until one more request may be sent; hold the permit until its answer arrived.
    pub async fn acquire(&self) -> SharedPermit<'_> {
        let turn = self.turn.lock().await;
        while self.store_usable() {
            let slot = self.slot_name();
            let call = RateLimitCall::Acquire {
                slot: slot.clone(),
                max: self.max,
                window: self.window,
                lease: self.lease,
                holder: self.holder.clone(),
            };
            match self.store.rate_limit(&self.key, &call).await {
                Ok(RateLimitReply::Granted) => {
                    self.store_answered();
                    self.store_grants.fetch_add(1, Ordering::Relaxed);
                    return SharedPermit {
                        kind: PermitKind::Store {
                            limiter: self,
                            slot: Some(slot),
                        },
                    };
                }
                Ok(RateLimitReply::Wait(wait)) => {
                    self.store_answered();
                    let jitter = rand::thread_rng().gen_range(0..=MAX_RETRY_JITTER_MS);
                    tracing::trace!(limiter = %self.key, ?wait, "shared budget spent; waiting");
                    tokio::time::sleep(wait + Duration::from_millis(jitter)).await;
                }
                Err(err) => self.store_failed(&err),
            }
        }
        drop(turn);
        let permit = self.fallback.acquire().await;
        self.local_grants.fetch_add(1, Ordering::Relaxed);
        SharedPermit {
            kind: PermitKind::Local { _permit: permit },
        }
    }

    /// Holds every caller of every instance for `duration` (the source answered 429).
    pub async fn pause(&self, duration: Duration) {
        self.fallback.pause(duration);
        if self.store_usable() {
            match self
                .store
                .rate_limit(&self.key, &RateLimitCall::Pause { duration })
                .await
            {
                Ok(_) => self.store_answered(),
                Err(err) => self.store_failed(&err),
            }
        }
    }

    fn slot_name(&self) -> String {
        let n = self.next_slot.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.holder)
    }

    fn store_usable(&self) -> bool {
        self.health
            .lock()
            .retry_at
            .is_none_or(|at| Instant::now() >= at)
    }

    fn store_answered(&self) {
        let mut health = self.health.lock();
        health.retry_at = None;
        if health.degraded {
            health.degraded = false;
            tracing::info!(
                limiter = %self.key,
                "shared Airtable rate limiter reachable again; using it"
            );
        }
    }

    fn store_failed(&self, err: &StoreError) {
        let mut health = self.health.lock();
        health.retry_at = Some(Instant::now() + STORE_RETRY);
        if !health.degraded {
            health.degraded = true;
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                limiter = %self.key,
                error = %err,
                local_max = self.fallback.max(),
                local_window = ?self.fallback.window(),
                "shared Airtable rate limiter unreachable; falling back to this instance's local limiter"
            );
        }
    }

    /// Frees `slot` one window from now, in the background (the caller's answer is in; the
    /// release only ever frees the slot later than that, never earlier). A release that fails
    /// leaves the slot to its lease.
    fn release(&self, slot: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(limiter = %self.key, "no runtime to release a slot; it frees when its lease ends");
            return;
        };
        let store = Arc::clone(&self.store);
        let key = self.key.clone();
        let window = self.window;
        runtime.spawn(async move {
            let call = RateLimitCall::Release { slot, window };
            if let Err(err) = store.rate_limit(&key, &call).await {
                tracing::debug!(
                    limiter = %key,
                    error = %err,
                    "releasing a shared rate-limit slot failed; it frees when its lease ends"
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test(start_paused = true)]
    async fn a_store_without_a_shared_limiter_falls_back_once_and_keeps_the_local_limit() {
        let fallback = Arc::new(RateLimiter::new(2, Duration::from_secs(1)));
        let limiter = SharedLimiter::new(
            Arc::new(MemoryStore::new(10)),
            "t:rl:app",
            5,
            Duration::from_secs(1),
            fallback,
        );
        let start = Instant::now();
        for _ in 0..5 {
            let permit = limiter.acquire().await;
            assert!(!permit.is_shared());
        }
        assert!(limiter.is_degraded());
        // 5 requests at 2 per second (windows from each answer): the third pair waits twice.
        assert!(start.elapsed() >= Duration::from_secs(2));
        assert_eq!(
            limiter.stats(),
            SharedLimiterStats {
                store_grants: 0,
                local_grants: 5,
                fallbacks: 1,
            }
        );
    }
}
