//! Looking a request key up: the in-process tier, the store, vary markers and variants,
//! and the invalidation stamps entries are checked against.

use std::sync::Arc;

use http::HeaderMap;
use podium_cache_core::cache::Dependents;
use podium_cache_core::store::{get_decoded, get_decoded_now, StoreError, TierLookup};

use crate::entry::{self, Stored, StoredResponse};
use crate::policy::{self};
use crate::state::LayerState;

/// What a lookup found.
pub(crate) struct Lookup {
    /// The entry's store key and the entry.
    pub found: Option<(String, Arc<StoredResponse>)>,
}

/// What the in-process tier holds for one key of the layer: a decoded response, or a vary
/// marker with the time its URI was last invalidated (read with it).
pub(crate) enum TierEntry {
    Response(Arc<StoredResponse>),
    Vary {
        names: Vec<String>,
        invalidated: u64,
    },
    /// When an unsafe request last invalidated a URI (ms), for its principals' entries.
    Stamp(u64),
}

impl LayerState {
    /// Looks `key` up (following a vary marker to the request's variant): in the in-process
    /// tier when the store has one, else in the store. A principal's entry stored before an
    /// unsafe request to its URI invalidated the URI is not used (RFC 9111 §4.4). Times are
    /// milliseconds: an entry stored in the invalidation's own millisecond cannot be ordered
    /// after it and is not used either (a miss, never a stale hit).
    ///
    /// The steps only some lookups take (a variant, a principal's stamp) are boxed, so the
    /// future every request carries holds only the plain lookup.
    pub(crate) async fn lookup(
        &self,
        key: &str,
        request: &HeaderMap,
    ) -> Result<Lookup, StoreError> {
        let mut lookup = self.lookup_entry(key, request).await?;
        if let (Some(shared), Some((_, entry))) = (policy::shared_key_of(key), &lookup.found) {
            if entry.stored_at_ms <= Box::pin(self.invalidated_at(shared)).await? {
                lookup.found = None;
            }
        }
        Ok(lookup)
    }

    /// [`lookup`](Self::lookup) answered without awaiting, when it can be: a response stored
    /// under a shared key (no principal stamp to check) that the in-process tier holds, or that
    /// a store keeping its entries in this process ([`get_decoded_now`]) holds. `None`: the
    /// lookup must be awaited (a miss, a vary marker, a principal's key, a store across a
    /// network), and [`lookup`](Self::lookup) does it from the start.
    pub(crate) fn lookup_now(&self, key: &str) -> Option<Arc<StoredResponse>> {
        if policy::shared_key_of(key).is_some() {
            return None;
        }
        // The store key is needed only for the read: built in a reused buffer.
        self.keys.keys.with_http(key, |entry_key| {
            if let Some(tier) = self.store.typed_tier() {
                // No ticket and no miss counted: the awaited lookup takes its own.
                return match &*tier.get::<TierEntry>(entry_key)? {
                    TierEntry::Response(entry) => Some(Arc::clone(entry)),
                    TierEntry::Vary { .. } | TierEntry::Stamp(_) => None,
                };
            }
            match get_decoded_now(&*self.store, entry_key, entry::decode)?
                .ok()?
                .as_deref()
            {
                Some(Ok(Stored::Response(entry))) => Some(Arc::clone(entry)),
                _ => None,
            }
        })
    }

    /// When an unsafe request last invalidated `key` (ms; 0: never), from the in-process tier
    /// when the store has one (every invalidation announces the stamp's key, so no instance
    /// keeps an old one).
    pub(crate) async fn invalidated_at(&self, key: &str) -> Result<u64, StoreError> {
        let stamp_key = self.invalidated_key(key);
        let tier = self.store.typed_tier();
        let mut ticket = None;
        if let Some(tier) = tier {
            match tier.lookup::<TierEntry>(stamp_key.clone()) {
                TierLookup::Hit(hit) => {
                    if let TierEntry::Stamp(at) = &*hit {
                        return Ok(*at);
                    }
                }
                TierLookup::Miss(miss) => ticket = miss,
            }
        }
        let stamp = self.store.get(&stamp_key).await?;
        let at = Dependents::parse_sequence(stamp.as_deref());
        if let (Some(tier), Some(ticket)) = (tier, ticket) {
            tier.insert(ticket, Arc::new(TierEntry::Stamp(at)));
        }
        Ok(at)
    }

    /// [`lookup`](Self::lookup) without the principal check.
    pub(crate) async fn lookup_entry(
        &self,
        key: &str,
        request: &HeaderMap,
    ) -> Result<Lookup, StoreError> {
        let entry_key = self.keys.keys.http(key);
        let tier = self.store.typed_tier();
        // The in-process tier (a `TieredStore`): a hot response costs no round trip. Its
        // entries are evicted by the same broadcast as records (every write and delete of the
        // shared store, so every purge and invalidation, is announced to every instance).
        let mut ticket = None;
        if let Some(tier) = tier {
            match tier.lookup::<TierEntry>(entry_key.clone()) {
                TierLookup::Hit(hit) => match &*hit {
                    TierEntry::Response(entry) => {
                        return Ok(Lookup {
                            found: Some((entry_key, Arc::clone(entry))),
                        });
                    }
                    TierEntry::Vary { names, invalidated } => {
                        let variant =
                            Box::pin(self.variant(key, names, request, *invalidated)).await?;
                        return Ok(Lookup { found: variant });
                    }
                    TierEntry::Stamp(_) => return Ok(Lookup { found: None }),
                },
                TierLookup::Miss(miss) => ticket = miss,
            }
        }
        // A hit reads one key: the purge sequence is read when a fill needs it, the
        // invalidation stamp only with a variant (a plain entry is deleted when invalidated).
        // The memory store keeps what was decoded with the entry: a hot response is decoded
        // once per write, not once per hit.
        let read = get_decoded(&*self.store, &entry_key, entry::decode).await?;
        let found = match read.as_deref() {
            None => None,
            Some(Ok(Stored::Response(entry))) => {
                let entry = Arc::clone(entry);
                if let (Some(tier), Some(ticket)) = (tier, ticket) {
                    tier.insert(ticket, Arc::new(TierEntry::Response(Arc::clone(&entry))));
                }
                Some((entry_key, entry))
            }
            Some(Ok(Stored::Vary(names))) => {
                let stamp = self.store.get(&self.invalidated_key(key)).await?;
                let invalidated = Dependents::parse_sequence(stamp.as_deref());
                let found = Box::pin(self.variant(key, names, request, invalidated)).await?;
                if let (Some(tier), Some(ticket)) = (tier, ticket) {
                    let names = names.clone();
                    tier.insert(ticket, Arc::new(TierEntry::Vary { names, invalidated }));
                }
                found
            }
            Some(Err(err)) => {
                tracing::warn!(error = %err, "ignoring an unreadable cached response");
                None
            }
        };
        Ok(Lookup { found })
    }

    /// The variant of `key` that `request` selects among responses varying on `names`, unless
    /// it was stored before the URI was `invalidated` (RFC 9111 §4.4).
    pub(crate) async fn variant(
        &self,
        key: &str,
        names: &[String],
        request: &HeaderMap,
        invalidated: u64,
    ) -> Result<Option<(String, Arc<StoredResponse>)>, StoreError> {
        let variant_key = self
            .keys
            .keys
            .http(&policy::variant_key(key, names, request));
        let tier = self.store.typed_tier();
        let mut ticket = None;
        if let Some(tier) = tier {
            match tier.lookup::<TierEntry>(variant_key.clone()) {
                TierLookup::Hit(hit) => {
                    return Ok(match &*hit {
                        TierEntry::Response(entry) if entry.stored_at_ms > invalidated => {
                            Some((variant_key, Arc::clone(entry)))
                        }
                        _ => None,
                    });
                }
                TierLookup::Miss(miss) => ticket = miss,
            }
        }
        Ok(
            match get_decoded(&*self.store, &variant_key, entry::decode)
                .await?
                .as_deref()
            {
                Some(Ok(Stored::Response(entry))) => {
                    let entry = Arc::clone(entry);
                    if let (Some(tier), Some(ticket)) = (tier, ticket) {
                        tier.insert(ticket, Arc::new(TierEntry::Response(Arc::clone(&entry))));
                    }
                    (entry.stored_at_ms > invalidated).then_some((variant_key, entry))
                }
                Some(Ok(Stored::Vary(_))) | None => None,
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "ignoring an unreadable cached response");
                    None
                }
            },
        )
    }

    /// Where the time (ms) an unsafe request last invalidated `key` is kept.
    pub(crate) fn invalidated_key(&self, key: &str) -> String {
        self.keys.keys.http(&format!("{key}\ninvalidated"))
    }
}
