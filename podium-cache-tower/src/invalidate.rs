//! Invalidation by unsafe methods (RFC 9111 §4.4).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self};
use http::request::Parts;
use http::{Method, Request, Response};
use podium_cache_core::store::StoreError;
use tower::Service;

use crate::body::CacheBody;
use crate::entry::{self};
use crate::policy;
use crate::respond::pass_through;
use crate::state::LayerState;
use crate::status::Forward;

/// A request with an unsafe method: forwarded, and when the service answers it without an
/// error, the stored responses of its target URI and of the same-origin URIs its `Location`
/// and `Content-Location` name are invalidated (RFC 9111 §4.4) for every instance sharing the
/// store.
pub(crate) async fn unsafe_method<S, ReqBody, ResBody>(
    state: &Arc<LayerState>,
    inner: S,
    parts: Parts,
    body: ReqBody,
) -> Result<Response<CacheBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    let target = parts.uri.clone();
    let authority = policy::request_authority(&parts).map(str::to_owned);
    // The target's key as a GET of it would have (with the route the router matched).
    let mut parts = parts;
    let method = std::mem::replace(&mut parts.method, Method::GET);
    let target_key = state.policy.key_of(&parts);
    parts.method = method;
    let request_headers = parts.headers.clone();
    let response = pass_through(state, inner, parts, body, Forward::Method, None, false).await?;
    let status = response.status();
    if !(status.is_success() || status.is_redirection()) {
        return Ok(response);
    }
    let mut uris = Vec::new();
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let named = response
            .headers()
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| same_origin_uri(&target, authority.as_deref(), v));
        uris.extend(named);
    }
    let keys: Vec<String> = target_key
        .into_iter()
        .chain(uris.into_iter().filter_map(|uri| {
            let mut get = Request::get(uri).body(()).ok()?.into_parts().0;
            get.headers = request_headers.clone();
            state.policy.key_of(&get)
        }))
        .collect();
    if let Err(err) = state.invalidate(&keys).await {
        tracing::warn!(error = %err, "invalidating after an unsafe method failed");
    }
    Ok(response)
}

/// The URI a `Location` or `Content-Location` value names, when it is on the target's origin
/// (RFC 9111 §4.4 invalidates only those): a path, a relative reference, or an absolute URI
/// with the request's authority.
pub(crate) fn same_origin_uri(
    target: &http::Uri,
    authority: Option<&str>,
    value: &str,
) -> Option<http::Uri> {
    let value = value.trim();
    if value.contains("://") || value.starts_with("//") {
        let uri: http::Uri = value.parse().ok()?;
        let theirs = uri.authority()?;
        if !theirs.as_str().eq_ignore_ascii_case(authority?) {
            return None;
        }
        return uri.path_and_query()?.as_str().parse().ok();
    }
    if value.starts_with('/') {
        return value.parse().ok();
    }
    // A relative reference: resolved against the target's directory (RFC 3986 §5.2).
    let base = target.path();
    let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
    format!("{dir}{value}").parse().ok()
}

impl LayerState {
    /// Invalidates the stored responses of `keys` (and all their variants) for every instance
    /// sharing the store: the plain entries (or vary markers) are deleted, and the time is
    /// noted so that no variant stored before it is used again.
    pub(crate) async fn invalidate(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let now = entry::now_ms();
        let stamp = Bytes::from(now.to_string());
        let ttl = self.policy.max_store_ttl();
        let stamps: Vec<(String, Bytes, std::time::Duration)> = keys
            .iter()
            .map(|key| (self.invalidated_key(key), stamp.clone(), ttl))
            .collect();
        self.store.set_many(&stamps).await?;
        let entries: Vec<String> = keys.iter().map(|key| self.keys.keys.http(key)).collect();
        self.store.delete(&entries).await?;
        // Every instance's in-process tier drops them too (the vary markers among them, so
        // their variants are looked up again against the new stamp), and the stamps, which
        // principals' entries are checked against.
        let mut announced = entries;
        announced.extend(stamps.into_iter().map(|(key, _, _)| key));
        self.store.announce(&announced).await?;
        tracing::debug!(
            keys = keys.len(),
            "stored responses invalidated by an unsafe request"
        );
        Ok(())
    }
}
