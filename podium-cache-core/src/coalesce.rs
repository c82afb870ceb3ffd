//! Single-flight: concurrent work for one key runs once, and its result goes to everyone
//! who asked while it ran.
//!
//! The first caller of [`SingleFlight::join`] for a key leads it; later callers follow and
//! wait for what the leader [publishes](Leader::publish). A leader that goes away without
//! publishing (its caller was dropped, its work failed) releases the followers at once, with
//! nothing: they then do the work themselves, or report the failure. The key leaves the map
//! when its leader publishes or goes away, so the next caller leads again.
//!
//! Two ways to use it:
//!
//! - [`SingleFlight::run`]: the work runs in its own task, so a caller that gives up does not
//!   cancel it for the others; every caller (the leader too) gets the published value. The
//!   core engine's record fills go this way.
//! - [`SingleFlight::join`]: the leader does the work inline (its result need not be
//!   shareable: the tower crate's leader streams the service's response to its own client)
//!   and publishes what followers may use; followers wait with a deadline of their own.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::sync::Arc;
//! use podium_cache_core::coalesce::{Join, SingleFlight};
//!
//! let flights: Arc<SingleFlight<String, u32>> = Arc::new(SingleFlight::new());
//! let Join::Leader(leader) = flights.join("a".to_owned()) else { unreachable!() };
//! let Join::Follower(waiter) = flights.join("a".to_owned()) else { unreachable!() };
//! leader.publish(7);
//! assert_eq!(waiter.wait(None).await, Some(7));
//!
//! // `run`: the work runs once, in its own task; both callers get its value.
//! let (a, b) = tokio::join!(
//!     flights.run("b".to_owned(), || async { 1 }),
//!     flights.run("b".to_owned(), || async { 2 }),
//! );
//! assert_eq!((a.map(|(v, _)| v), b.map(|(v, _)| v)), (Some(1), Some(1)));
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

/// One key's flight: its leader's id and the channel its result is published on.
type Flight<V> = (u64, watch::Receiver<Option<V>>);

/// The keys whose work is running now, each with the channel its result is published on.
pub struct SingleFlight<K, V> {
    map: Mutex<HashMap<K, Flight<V>>>,
    next_id: AtomicU64,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }
}

impl<K, V> fmt::Debug for SingleFlight<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleFlight")
            .field("in_flight", &self.map.lock().len())
            .finish()
    }
}

/// What [`SingleFlight::join`] made the caller.
#[derive(Debug)]
pub enum Join<K: Eq + Hash + Clone, V> {
    /// Do the work and [publish](Leader::publish) it.
    Leader(Leader<K, V>),
    /// Wait for the leader.
    Follower(Waiter<V>),
}

/// The leader's handle: publish once; dropping it unpublished releases the followers with
/// nothing.
pub struct Leader<K: Eq + Hash + Clone, V> {
    flights: Arc<SingleFlight<K, V>>,
    key: K,
    id: u64,
    sender: watch::Sender<Option<V>>,
}

impl<K: Eq + Hash + Clone, V> fmt::Debug for Leader<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leader").field("id", &self.id).finish()
    }
}

/// A follower's handle on the leader's result.
pub struct Waiter<V> {
    receiver: watch::Receiver<Option<V>>,
}

impl<V> fmt::Debug for Waiter<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter").finish_non_exhaustive()
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leads `key`, or follows its current leader.
    pub fn join(self: &Arc<Self>, key: K) -> Join<K, V> {
        let mut map = self.map.lock();
        if let Some((_, receiver)) = map.get(&key) {
            return Join::Follower(Waiter {
                receiver: receiver.clone(),
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = watch::channel(None);
        map.insert(key.clone(), (id, receiver));
        Join::Leader(Leader {
            flights: Arc::clone(self),
            key,
            id,
            sender,
        })
    }

    /// Runs `make()` once for every concurrent caller of `key`, in its own task (a caller
    /// that gives up does not cancel it for the others). Returns its value and whether this
    /// caller started it; `None` when the task failed (panicked, or the runtime is shutting
    /// down) before publishing.
    pub async fn run<F, Fut>(self: &Arc<Self>, key: K, make: F) -> Option<(V, bool)>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
        K: Send + 'static,
        V: Send + Sync + 'static,
    {
        match self.join(key) {
            Join::Follower(waiter) => waiter.wait(None).await.map(|v| (v, false)),
            Join::Leader(leader) => {
                let waiter = leader.waiter();
                let work = make();
                tokio::spawn(async move {
                    leader.publish(work.await);
                });
                waiter.wait(None).await.map(|v| (v, true))
            }
        }
    }

    /// Whether `key` is in flight.
    pub fn contains(&self, key: &K) -> bool {
        self.map.lock().contains_key(key)
    }

    /// How many keys are in flight.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether no key is in flight.
    pub fn is_empty(&self) -> bool {
        self.map.lock().is_empty()
    }
}

impl<K: Eq + Hash + Clone, V> Leader<K, V> {
    /// A handle on this leader's own result (for a leader that hands its work to a task).
    pub fn waiter(&self) -> Waiter<V> {
        Waiter {
            receiver: self.sender.subscribe(),
        }
    }

    /// Hands `value` to every follower and retires (the next caller of the key leads).
    pub fn publish(self, value: V) {
        // Followers that already gave up are fine: nobody may be listening.
        let _ = self.sender.send(Some(value));
    }
}

impl<K: Eq + Hash + Clone, V> Drop for Leader<K, V> {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock();
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
    }
}

impl<V: Clone> Waiter<V> {
    /// Waits for the leader's value, at most `timeout` (`None`: as long as it takes);
    /// `None` when it timed out or the leader went away without publishing.
    pub async fn wait(mut self, timeout: Option<Duration>) -> Option<V> {
        let published = self.receiver.wait_for(Option::is_some);
        let waited = match timeout {
            Some(timeout) => tokio::time::timeout(timeout, published).await.ok()?,
            None => published.await,
        };
        // An error: the leader was dropped without publishing.
        waited.ok().and_then(|value| value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_what_the_leader_publishes_and_the_key_is_freed() {
        let flights: Arc<SingleFlight<&str, u32>> = Arc::new(SingleFlight::new());
        let Join::Leader(leader) = flights.join("k") else {
            panic!("the first caller must lead");
        };
        let Join::Follower(first) = flights.join("k") else {
            panic!("the second caller must follow");
        };
        let Join::Follower(second) = flights.join("k") else {
            panic!("the third caller must follow");
        };
        assert_eq!(flights.len(), 1);
        leader.publish(42);
        assert_eq!(first.wait(None).await, Some(42));
        assert_eq!(second.wait(Some(Duration::from_secs(5))).await, Some(42));
        assert!(
            flights.is_empty(),
            "the key stays in flight after publishing"
        );
        assert!(matches!(flights.join("k"), Join::Leader(_)));
    }

    #[tokio::test]
    async fn a_leader_dropped_unpublished_releases_its_followers_with_nothing() {
        let flights: Arc<SingleFlight<&str, u32>> = Arc::new(SingleFlight::new());
        let Join::Leader(leader) = flights.join("k") else {
            panic!("the first caller must lead");
        };
        let Join::Follower(waiter) = flights.join("k") else {
            panic!("the second caller must follow");
        };
        drop(leader);
        assert_eq!(waiter.wait(None).await, None);
        assert!(flights.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_stops_waiting_at_its_deadline() {
        let flights: Arc<SingleFlight<&str, u32>> = Arc::new(SingleFlight::new());
        let Join::Leader(_leader) = flights.join("k") else {
            panic!("the first caller must lead");
        };
        let Join::Follower(waiter) = flights.join("k") else {
            panic!("the second caller must follow");
        };
        assert_eq!(waiter.wait(Some(Duration::from_millis(50))).await, None);
    }

    #[tokio::test]
    async fn run_does_the_work_once_and_survives_a_caller_giving_up() {
        let flights: Arc<SingleFlight<&str, u32>> = Arc::new(SingleFlight::new());
        let runs = Arc::new(AtomicU64::new(0));
        let (gate, opened) = tokio::sync::oneshot::channel::<()>();
        let counted = Arc::clone(&runs);
        let leader = {
            let flights = Arc::clone(&flights);
            tokio::spawn(async move {
                flights
                    .run("k", move || async move {
                        counted.fetch_add(1, Ordering::SeqCst);
                        let _ = opened.await;
                        7
                    })
                    .await
            })
        };
        // The leader's work is in flight once the key is.
        while flights.is_empty() {
            tokio::task::yield_now().await;
        }
        let Join::Follower(waiter) = flights.join("k") else {
            panic!("a caller during the work must follow");
        };
        leader.abort();
        let _ = gate.send(());
        assert_eq!(
            waiter.wait(None).await,
            Some(7),
            "the work was cancelled with its caller"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let again = flights.run("k", || async { 8 }).await;
        assert_eq!(again, Some((8, true)), "a later caller leads again");
    }
}
