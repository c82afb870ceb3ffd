//! Stale entries refreshed in the background (stale-while-revalidate).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self};
use http::request::Parts;
use podium_cache_core::store::Locks;
use tracing::Instrument;

use crate::bounds::{SendBody, SendService};
use crate::entry::StoredResponse;
use crate::fill::Fill;
use crate::state::LayerState;
use crate::status::Forward;

impl LayerState {
    /// Refreshes a stale entry in the background, once: one task per entry in this process,
    /// and one process at a time through a store lock.
    pub(crate) fn refresh_in_background<S, ReqBody, ResBody>(
        self: &Arc<Self>,
        inner: S,
        parts: Parts,
        body: ReqBody,
        key: String,
        (entry_key, stale): (String, Arc<StoredResponse>),
    ) where
        S: SendService<ReqBody, ResBody>,
        ReqBody: Send + 'static,
        ResBody: SendBody,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!("no tokio runtime; stale entry served without a refresh");
            return;
        };
        if !self.refreshing.lock().insert(entry_key.clone()) {
            return;
        }
        let state = Arc::clone(self);
        let authorized =
            parts.headers.contains_key(header::AUTHORIZATION) && self.policy.principal.is_none();
        let span = tracing::debug_span!("http_cache.refresh", key = %entry_key);
        runtime.spawn(
            async move {
                let _refreshing = Refreshing {
                    state: Arc::clone(&state),
                    entry_key: entry_key.clone(),
                };
                let lock = state.keys.refresh_lock(&entry_key);
                let locked = state
                    .store
                    .set_if_absent(
                        &lock,
                        Bytes::from_static(b"1"),
                        state.policy.coalesce_timeout,
                    )
                    .await;
                if !matches!(locked, Ok(true)) {
                    return;
                }
                let sequence = match state.dependents.sequence().await {
                    Ok(sequence) => sequence,
                    Err(err) => {
                        tracing::debug!(error = %err, "no purge sequence; stale entry not refreshed");
                        return;
                    }
                };
                let fill = Fill {
                    state: &state,
                    key: &key,
                    sequence,
                    reason: Forward::Stale,
                    authorized,
                    stale: Some(stale),
                    request_sie: None,
                };
                if fill.run(inner, parts, body).await.is_err() {
                    tracing::debug!("the service failed to refresh a stale entry");
                }
                if let Err(err) = state.store.delete(&[lock]).await {
                    tracing::debug!(error = %err, "refresh lock not released; it expires");
                }
            }
            .instrument(span),
        );
    }
}

/// Removes an entry key from the refreshing set when its refresh ends (or is dropped).
pub(crate) struct Refreshing {
    state: Arc<LayerState>,
    entry_key: String,
}

impl Drop for Refreshing {
    fn drop(&mut self) {
        self.state.refreshing.lock().remove(&self.entry_key);
    }
}
