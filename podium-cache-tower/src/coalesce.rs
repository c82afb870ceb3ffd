//! Request coalescing: concurrent misses for one key run the service once.
//!
//! Core's single-flight ([`podium_cache_core::coalesce`]) does the bookkeeping: the first miss
//! for a key leads it and runs the service inline (its response streams to its own client);
//! later misses follow and wait (bounded by the coalescing timeout) for the stored response it
//! publishes. A leader that goes away without publishing (its request was dropped, its service
//! failed) releases the followers at once; they then run the service themselves. What is
//! HTTP's own here is what a leader shares: the stored response and the request header values
//! that selected its variant, so a follower uses it only when its own values match.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use podium_cache_core::coalesce::{SingleFlight, Waiter};

use crate::entry::StoredResponse;

/// What a leader hands its followers: the stored response, or nothing when its answer cannot
/// be shared (not storable, not stored).
pub(crate) type Published = Option<Arc<Shared>>;

/// The keys being fetched right now in this process.
pub(crate) type InFlight = SingleFlight<String, Published>;

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

/// Waits up to `timeout` for the leader; `None` when it timed out, went away or had nothing
/// to share.
pub(crate) async fn follow(waiter: Waiter<Published>, timeout: Duration) -> Published {
    waiter.wait(Some(timeout)).await.flatten()
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
