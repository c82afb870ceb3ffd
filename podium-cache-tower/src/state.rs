//! [`LayerState`]: what every service of one layer shares.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;
use podium_cache_core::cache::Dependents;
use podium_cache_core::store::Store;

use http::HeaderValue;

use crate::client::ClientIdentity;
use crate::coalesce::InFlight;
use crate::policy::Policy;
use crate::purge::LayerKeys;
use crate::status::CacheStatus;

/// What every [`CacheService`] made by one layer shares: the service's state (the layer
/// only holds it).
pub(crate) struct LayerState {
    pub store: Arc<dyn Store>,
    /// Where responses are registered against the records they read, and purged.
    pub dependents: Dependents,
    pub keys: LayerKeys,
    pub policy: Policy,
    pub in_flight: Arc<InFlight>,
    /// Entry keys being refreshed in the background by this process.
    pub refreshing: Mutex<HashSet<String>>,
    /// How a request's client is named (its misses are queued and limited per client).
    pub client: ClientIdentity,
    /// The `Cache-Status` value of a plain hit (`{cache_name}; hit`), made once (none when the
    /// cache name is not a valid header value).
    pub hit_status: Option<HeaderValue>,
}

impl LayerState {
    /// The state of a layer over `store`, its keys and dependents.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        keys: LayerKeys,
        dependents: Dependents,
        policy: Policy,
        client: ClientIdentity,
    ) -> Self {
        let hit_status = CacheStatus::Hit { ttl: 0 }.to_header_value(&policy.cache_name);
        let hit_status = HeaderValue::from_str(&hit_status).ok();
        Self {
            hit_status,
            store,
            dependents,
            keys,
            policy,
            in_flight: Arc::new(InFlight::default()),
            refreshing: Mutex::new(HashSet::new()),
            client,
        }
    }
}
