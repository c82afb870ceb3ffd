//! Request coalescing: concurrent misses for one key run the service once.
//!
//! The first miss for a key becomes its leader; later misses follow it and wait (bounded by
//! the coalescing timeout) for what it publishes. A leader that goes away without publishing
//! (its request was dropped, its service failed) releases the followers at once; they then
//! run the service themselves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::entry::StoredResponse;

/// What a leader hands its followers: the stored response, or nothing when its answer cannot
/// be shared (not storable, not stored).
#[derive(Clone, Debug)]
pub(crate) enum Published {
    Pending,
    Done(Option<Arc<Shared>>),
}

/// A response a leader stored, with the request headers its variant was selected by.
#[derive(Debug)]
pub(crate) struct Shared {
    pub entry: StoredResponse,
    /// `(name, values)` of the varied request headers of the leader's request.
    pub vary_values: Vec<String>,
}

impl Shared {
    /// Wraps `entry`, noting the leader's values of the headers it varies on.
    pub fn new(entry: StoredResponse, request: &HeaderMap) -> Self {
        let vary_values = vary_values(&entry.vary, request);
        Self { entry, vary_values }
    }

    /// Whether a follower with these request headers may use the leader's response.
    pub fn fits(&self, request: &HeaderMap) -> bool {
        self.vary_values == vary_values(&self.entry.vary, request)
    }
}

/// The normalised values (RFC 9111 §4.1) of the varied request headers.
fn vary_values(names: &[String], request: &HeaderMap) -> Vec<String> {
    names
        .iter()
        .map(|name| crate::policy::vary_value(request, name))
        .collect()
}

/// The keys being fetched right now in this process.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    map: Mutex<HashMap<String, (u64, watch::Receiver<Published>)>>,
    next_id: AtomicU64,
}

/// The outcome of [`InFlight::join`].
pub(crate) enum Join {
    /// Run the service and publish.
    Leader(Leader),
    /// Wait for the leader.
    Follower(watch::Receiver<Published>),
}

/// The leader's handle; dropping it unpublished releases the followers.
pub(crate) struct Leader {
    in_flight: Arc<InFlight>,
    key: String,
    id: u64,
    sender: watch::Sender<Published>,
}

impl InFlight {
    /// Leads `key`, or follows its current leader.
    pub fn join(self: &Arc<Self>, key: &str) -> Join {
        let mut map = self.map.lock();
        if let Some((_, receiver)) = map.get(key) {
            return Join::Follower(receiver.clone());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = watch::channel(Published::Pending);
        map.insert(key.to_owned(), (id, receiver));
        Join::Leader(Leader {
            in_flight: Arc::clone(self),
            key: key.to_owned(),
            id,
            sender,
        })
    }

    /// How many keys are being fetched (for tests and metrics).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }
}

impl Leader {
    /// Hands the result to every follower and retires.
    pub fn publish(self, shared: Option<Arc<Shared>>) {
        // Followers that already gave up are fine: nobody may be listening.
        let _ = self.sender.send(Published::Done(shared));
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        let mut map = self.in_flight.map.lock();
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
    }
}

/// Waits up to `timeout` for the leader; `None` when it timed out, went away or had nothing
/// to share.
pub(crate) async fn follow(
    mut receiver: watch::Receiver<Published>,
    timeout: Duration,
) -> Option<Arc<Shared>> {
    let waited = tokio::time::timeout(
        timeout,
        receiver.wait_for(|p| matches!(p, Published::Done(_))),
    )
    .await;
    match waited {
        Ok(Ok(published)) => match &*published {
            Published::Done(shared) => shared.clone(),
            Published::Pending => None,
        },
        // Timed out, or the leader was dropped without publishing.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::StatusCode;

    fn entry() -> StoredResponse {
        StoredResponse::new(
            StatusCode::OK,
            HeaderMap::new(),
            Bytes::from_static(b"x"),
            &crate::policy::Freshness {
                ttl: Duration::from_secs(1),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                keep: Duration::ZERO,
                must_revalidate: false,
                no_cache: false,
            },
            (crate::entry::now_ms(), 0),
            Vec::new(),
        )
    }

    #[tokio::test]
    async fn followers_receive_what_the_leader_publishes() {
        let in_flight = Arc::new(InFlight::default());
        let Join::Leader(leader) = in_flight.join("k") else {
            panic!("first join must lead");
        };
        let Join::Follower(rx) = in_flight.join("k") else {
            panic!("second join must follow");
        };
        let waiter = tokio::spawn(follow(rx, Duration::from_secs(30)));
        leader.publish(Some(Arc::new(Shared::new(entry(), &HeaderMap::new()))));
        let got = waiter.await.ok().flatten();
        assert!(got.is_some_and(|s| s.entry.body == "x"));
        assert_eq!(in_flight.len(), 0, "a retired leader leaves the map");
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_followers_and_the_key() {
        let in_flight = Arc::new(InFlight::default());
        let Join::Leader(leader) = in_flight.join("k") else {
            panic!("first join must lead");
        };
        let Join::Follower(rx) = in_flight.join("k") else {
            panic!("second join must follow");
        };
        drop(leader);
        assert!(follow(rx, Duration::from_secs(30)).await.is_none());
        assert!(matches!(in_flight.join("k"), Join::Leader(_)));
    }

    #[test]
    fn a_variant_is_shared_only_with_matching_request_headers() {
        let mut e = entry();
        e.vary = vec!["accept-language".into()];
        let mut en = HeaderMap::new();
        en.insert("accept-language", http::HeaderValue::from_static("en"));
        let mut fr = HeaderMap::new();
        fr.insert("accept-language", http::HeaderValue::from_static("fr"));
        let shared = Shared::new(e, &en);
        assert!(shared.fits(&en));
        assert!(!shared.fits(&fr));
    }
}
