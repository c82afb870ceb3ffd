//! [`CacheService`]: the middleware itself.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body;
use podium_cache_core::scope::ScopeReport;
use podium_cache_core::store::StoreError;
use tower::Service;
use tracing::Instrument;

use crate::body::{collect_limited, BodyError, CacheBody, Collected};
use crate::coalesce::{follow, Join, Shared};
use crate::entry::{self, Age, EntryError, Stored, StoredResponse};
use crate::future::ResponseFuture;
use crate::policy::{self, BypassReason, NotStored, Plan, Vary};
use crate::purge::CacheTags;
use crate::status::{CacheStatus, Forward, StatusHeaders};
use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

#[cfg(feature = "axum")]
use axum::extract::ConnectInfo;
use http::header::HeaderName;
use parking_lot::Mutex;
use podium_cache_core::cache::Dependents;
use podium_cache_core::scope::Scope;
use podium_cache_core::store::{BoundedSets, Locks, Store, TierLookup};

use crate::coalesce::InFlight;
use crate::policy::Policy;
use crate::purge::LayerKeys;

/// The middleware [`CacheLayer`](crate::CacheLayer) wraps a service in.
///
/// It serves `GET`/`HEAD` requests from the store when it can, runs the inner service (inside
/// a core [`Scope`](podium_cache_core::scope::Scope), attributed to the request's client) when
/// it cannot, stores what may be stored, tagged with the records the service read, and sets
/// the status headers on every response.
///
/// ```
/// # fn demo(cache: &podium_cache_core::Cache) {
/// use tower::{service_fn, Layer};
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use bytes::Bytes;
///
/// let inner = service_fn(|_req: Request<()>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"hi"))))
/// });
/// let service = podium_cache_tower::CacheLayer::new(cache).layer(inner);
/// # }
/// ```
#[derive(Clone)]
pub struct CacheService<S> {
    inner: S,
    state: Arc<LayerState>,
}

impl<S> std::fmt::Debug for CacheService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheService")
            .field("store", &self.state.store.name())
            .field("policy", &self.state.policy)
            .finish_non_exhaustive()
    }
}

impl<S> CacheService<S> {
    /// Wraps `inner` with the state a [`CacheLayer`](crate::CacheLayer) shares among its
    /// services (use [`Layer::layer`](tower::Layer::layer) on the layer).
    pub(crate) fn from_state(inner: S, state: Arc<LayerState>) -> Self {
        Self { inner, state }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CacheService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BodyError>,
{
    type Response = Response<CacheBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The ready service goes with this request; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let state = Arc::clone(&self.state);
        let span = tracing::debug_span!(
            "http_cache",
            method = %request.method(),
            path = %request.uri().path(),
            cache_status = tracing::field::Empty,
        );
        ResponseFuture::new(handle(state, inner, request).instrument(span))
    }
}

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
        Self {
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

/// The peer address of a request: axum's `ConnectInfo<SocketAddr>` (feature `axum`), else a
/// `SocketAddr` request extension (what a plain hyper server can insert).
fn peer_address(parts: &Parts) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        return Some(info.0);
    }
    parts.extensions.get::<SocketAddr>().copied()
}

/// A function naming the client of a request (e.g. an authenticated principal).
pub(crate) type ClientFn = Arc<dyn crate::policy::ClientName>;

/// The longest client name taken from a header as it is; longer ones are cut.
const MAX_CLIENT_LEN: usize = 64;

/// How the layer names the client of a request, for the core engine's per-client miss queues
/// and limits: the [`client_fn`](CacheLayerBuilder::client_fn) if it names one, else the
/// first hop of the [trusted header](CacheLayerBuilder::trusted_client_header), else the peer
/// address (axum's `ConnectInfo<SocketAddr>`, or a `SocketAddr` request extension). IPv6
/// addresses are grouped by /64, the block one host usually holds.
#[derive(Clone, Default)]
pub(crate) struct ClientIdentity {
    pub header: Option<HeaderName>,
    pub client_fn: Option<ClientFn>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("header", &self.header)
            .field("client_fn", &self.client_fn.is_some())
            .finish()
    }
}

impl ClientIdentity {
    /// The client of the request with `parts`, if it can be named.
    pub(crate) fn of(&self, parts: &Parts) -> Option<String> {
        if let Some(client) = self.client_fn.as_ref().and_then(|f| f.client(parts)) {
            return Some(client);
        }
        if let Some(name) = &self.header {
            let first_hop = parts
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(',').next())
                .map(str::trim)
                .filter(|hop| !hop.is_empty());
            if let Some(hop) = first_hop {
                return Some(match hop.parse::<IpAddr>() {
                    Ok(ip) => ip_client(ip),
                    Err(_) => hop.chars().take(MAX_CLIENT_LEN).collect(),
                });
            }
        }
        peer_address(parts).map(|addr| ip_client(addr.ip()))
    }

    /// A core scope for the request, attributed to its client when it has one.
    pub(crate) fn scope_for(&self, parts: &Parts) -> Scope {
        match self.of(parts) {
            Some(client) => Scope::new().with_client(client),
            None => Scope::new(),
        }
    }
}

/// An address as a client name: IPv4 as it is, IPv6 by its /64 (IPv4-mapped as IPv4).
fn ip_client(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Everything a request's fill needs besides the service and the request.
struct Fill<'a> {
    state: &'a Arc<LayerState>,
    /// The request key (before `Vary`).
    key: &'a str,
    /// The purge sequence read before the service ran.
    sequence: u64,
    /// Why the request was forwarded.
    reason: Forward,
    /// The request carries `Authorization` (RFC 9111 §3.5 decides what is stored).
    authorized: bool,
    /// The stored entry this fill validates (conditionally, when it has validators), and
    /// falls back on when the service fails and it allows stale-if-error.
    stale: Option<Arc<StoredResponse>>,
}

/// What the service's answer to a fill is.
enum Outcome<B> {
    /// `304` to the layer's own conditional request.
    NotModified,
    /// A `5xx` while a stale entry allows stale-if-error.
    Failed,
    /// Storable; its body as read.
    Collected(policy::Freshness, Collected<B>),
    /// Not storable, for this reason.
    Refused(NotStored, B),
}

/// How a found entry may answer a request (RFC 9111 §4.2, §5.2.1; RFC 5861).
enum Use {
    /// Fresh enough for the request.
    Fresh,
    /// Stale, and the request's `max-stale` accepts it.
    StaleAccepted,
    /// Stale within its stale-while-revalidate window: served, refreshed in the background.
    WhileRevalidate,
    /// Must be validated with the service first.
    Validate,
}

fn choose(entry: &StoredResponse, request: &policy::CacheControl, now: u64) -> Use {
    let age = entry.age_ms(now);
    if request.no_cache
        || request
            .max_age
            .is_some_and(|s| age > s.saturating_mul(1000))
    {
        return Use::Validate;
    }
    let state = entry.age(now);
    let min_fresh_ok = request
        .min_fresh
        .is_none_or(|s| entry.ttl_ms.saturating_sub(age) >= s.saturating_mul(1000));
    if state == Age::Fresh {
        return if min_fresh_ok {
            Use::Fresh
        } else {
            Use::Validate
        };
    }
    let accepted = request
        .max_stale
        .is_some_and(|s| entry.staleness_ms(now) <= s.saturating_mul(1000));
    if accepted && !entry.must_revalidate && !entry.no_cache {
        return Use::StaleAccepted;
    }
    if state == Age::Stale && request.min_fresh.is_none() {
        return Use::WhileRevalidate;
    }
    Use::Validate
}

/// Whether a method is safe (RFC 9110 §9.2.1): one that never invalidates stored responses.
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

async fn handle<S, ReqBody, ResBody>(
    state: Arc<LayerState>,
    inner: S,
    request: Request<ReqBody>,
) -> Result<Response<CacheBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
    ResBody::Error: Into<BodyError>,
{
    let (parts, body) = request.into_parts();
    if !is_safe(&parts.method) {
        return unsafe_method(&state, inner, parts, body).await;
    }
    let (key, directives, authorized) = match state.policy.plan(&parts) {
        Plan::Bypass(reason) => {
            let (forward, detail) = match reason {
                BypassReason::Method => (Forward::Method, None),
                BypassReason::RequestNoStore => (Forward::Request, None),
                BypassReason::Private => (Forward::Bypass, Some("private")),
                BypassReason::NoKey => (Forward::Bypass, Some("no-key")),
            };
            return pass_through(&state, inner, parts, body, forward, detail, false).await;
        }
        Plan::Lookup {
            key,
            request,
            authorized,
        } => (key, request, authorized),
    };

    if parts.headers.contains_key(header::IF_MATCH)
        || parts.headers.contains_key(header::IF_UNMODIFIED_SINCE)
    {
        // Preconditions the layer does not evaluate: the service answers (a `412` to one
        // client must never be stored for everyone).
        return pass_through(&state, inner, parts, body, Forward::Request, None, false).await;
    }
    let lookup = match state.lookup(&key, &parts.headers).await {
        Ok(lookup) => lookup,
        Err(err) => return store_down(&state, inner, parts, body, &err).await,
    };
    let mut reason = Forward::Miss;
    let mut stale = None;
    if let Some((entry_key, entry)) = lookup.found {
        let now = entry::now_ms();
        let status = CacheStatus::Hit {
            ttl: entry.remaining_secs(now),
        };
        match choose(&entry, &directives, now) {
            Use::Fresh | Use::StaleAccepted => return Ok(state.serve(&entry, &parts, status)),
            Use::WhileRevalidate => {
                let response = state.serve(&entry, &parts, status);
                state.refresh_in_background(inner, parts, body, key, (entry_key, entry));
                return Ok(response);
            }
            Use::Validate => {
                reason = if directives.no_cache {
                    Forward::Request
                } else {
                    Forward::Stale
                };
                stale = Some(entry);
            }
        }
    }
    if directives.only_if_cached {
        // RFC 9111 §5.2.1.7: nothing stored can answer; the layer does not ask the service.
        return Ok(state.gateway_timeout(&parts));
    }
    if state.policy.standards && parts.method == Method::HEAD {
        // The standards mode forwards a HEAD as a HEAD; its answer (no body) is not stored.
        return pass_through(&state, inner, parts, body, reason, None, false).await;
    }

    // Read before the service runs: a purge announced after it is seen when storing.
    let sequence = match state.dependents.sequence().await {
        Ok(sequence) => sequence,
        Err(err) => return store_down(&state, inner, parts, body, &err).await,
    };
    let fill = Fill {
        state: &state,
        key: &key,
        sequence,
        reason,
        authorized,
        stale,
    };
    // Also when the entry exists but this request may not use it (too old for its `max-age`).
    fill.coalesced(inner, parts, body).await
}

/// A request with an unsafe method: forwarded, and when the service answers it without an
/// error, the stored responses of its target URI and of the same-origin URIs its `Location`
/// and `Content-Location` name are invalidated (RFC 9111 §4.4) for every instance sharing the
/// store.
async fn unsafe_method<S, ReqBody, ResBody>(
    state: &Arc<LayerState>,
    inner: S,
    parts: Parts,
    body: ReqBody,
) -> Result<Response<CacheBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    let target = parts.uri.clone();
    let authority = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| target.authority().map(|a| a.as_str().to_owned()));
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
fn same_origin_uri(target: &http::Uri, authority: Option<&str>, value: &str) -> Option<http::Uri> {
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

impl Fill<'_> {
    /// Runs the service once for every concurrent request of the key: the first runs it, the
    /// others wait (up to the coalescing timeout) and are answered with its response.
    async fn coalesced<S, ReqBody, ResBody>(
        self,
        inner: S,
        parts: Parts,
        body: ReqBody,
    ) -> Result<Response<CacheBody<ResBody>>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ResBody: Body,
        ResBody::Error: Into<BodyError>,
    {
        let state = self.state;
        let key = self.key;
        match state.in_flight.join(key) {
            Join::Follower(receiver) => {
                if let Some(shared) = follow(receiver, state.policy.coalesce_timeout).await {
                    if shared.fits(&parts.headers) {
                        return Ok(state.serve(&shared.entry, &parts, CacheStatus::Collapsed));
                    }
                }
                self.run(inner, parts, body)
                    .await
                    .map(|(response, _)| response)
            }
            Join::Leader(leader) => {
                // Another leader may have stored the key between a miss's lookup and its join
                // (a forced refetch does not want the entry).
                if self.reason == Forward::Miss {
                    if let Ok(again) = state.lookup(key, &parts.headers).await {
                        if let Some((_, entry)) = again.found {
                            let now = entry::now_ms();
                            if entry.age(now) == Age::Fresh {
                                let status = CacheStatus::Hit {
                                    ttl: entry.remaining_secs(now),
                                };
                                let response = state.serve(&entry, &parts, status);
                                let entry = Arc::unwrap_or_clone(entry);
                                leader.publish(Some(Arc::new(Shared::new(entry, &parts.headers))));
                                return Ok(response);
                            }
                        }
                    }
                }
                // If the service fails, `leader` is dropped here and the followers run it
                // themselves.
                let (response, shared) = self.run(inner, parts, body).await?;
                leader.publish(shared);
                Ok(response)
            }
        }
    }
}

/// Calls the service for a request the layer does not cache; strips tags and sets headers.
async fn pass_through<S, ReqBody, ResBody>(
    state: &LayerState,
    mut inner: S,
    parts: Parts,
    body: ReqBody,
    forward: Forward,
    detail: Option<&'static str>,
    store_failed: bool,
) -> Result<Response<CacheBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    let scope = state.client.scope_for(&parts);
    let detailed = state.policy.detailed_status.includes(&parts);
    let request = Request::from_parts(parts, body);
    let response = scope.run(async move { inner.call(request).await }).await?;
    let (mut parts, body) = response.into_parts();
    let _ = state.take_tags(&mut parts);
    let status = CacheStatus::Forward {
        reason: forward,
        stored: false,
        detail,
    };
    record_status(&status);
    state.apply_status(
        &mut parts.headers,
        StatusHeaders::produced(status, &scope.report(), store_failed, false),
        detailed,
    );
    Ok(Response::from_parts(parts, CacheBody::inner(body)))
}

/// The store failed: answer from the service, say `BYPASS`, never fail the request.
async fn store_down<S, ReqBody, ResBody>(
    state: &LayerState,
    inner: S,
    parts: Parts,
    body: ReqBody,
    err: &StoreError,
) -> Result<Response<CacheBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    tracing::warn!(error = %err, "http cache store unavailable; passing the request through");
    pass_through(
        state,
        inner,
        parts,
        body,
        Forward::Bypass,
        Some("store-unavailable"),
        true,
    )
    .await
}

fn record_status(status: &CacheStatus) {
    let span = tracing::Span::current();
    if !span.is_disabled() {
        // The span shows what the layer did; the cache name is not needed there.
        span.record(
            "cache_status",
            tracing::field::display(status.to_detailed_header_value("cache")),
        );
    }
}

impl Fill<'_> {
    /// Runs the service inside a scope, stores its answer when allowed, and renders the
    /// response. Also returns what followers may share.
    ///
    /// The service is asked for the full response (the client's own conditionals and `Range`
    /// are answered from the stored entry, RFC 9111 §4.3.2); when a stale entry with validators
    /// is being validated, the request carries them (§4.3.1) and a `304` refreshes the entry
    /// (§4.3.4). A failure (`5xx`, or the service's error) is answered from a stale entry
    /// that allows it (RFC 5861 §4).
    async fn run<S, ReqBody, ResBody>(
        self,
        mut inner: S,
        mut parts: Parts,
        body: ReqBody,
    ) -> Result<(Response<CacheBody<ResBody>>, Option<Arc<Shared>>), S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ResBody: Body,
        ResBody::Error: Into<BodyError>,
    {
        let state = self.state;
        let head = parts.method == Method::HEAD;
        if head {
            // App mode: a HEAD miss fetches the GET, so the entry can serve both.
            parts.method = Method::GET;
        }
        let request_headers = parts.headers.clone();
        for name in [
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::RANGE,
            header::IF_RANGE,
        ] {
            parts.headers.remove(name);
        }
        if let Some(stale) = &self.stale {
            let (etag, modified) = stale.origin_validators();
            if let Some(etag) = etag {
                parts.headers.insert(header::IF_NONE_MATCH, etag.clone());
            }
            if let Some(modified) = modified {
                parts
                    .headers
                    .insert(header::IF_MODIFIED_SINCE, modified.clone());
            }
        }
        let validating = self.stale.is_some();
        let may_fail_over = self
            .stale
            .as_ref()
            .is_some_and(|e| e.sie_ms > 0 && !e.must_revalidate);
        let authorized = self.authorized;
        let detailed = state.policy.detailed_status.includes(&parts);
        let keys_on_query = state.policy.keys_on_query(&parts);
        let group = policy::variant_group(&parts);
        let not_found_group = policy::not_found_group(&parts);
        let scope = state.client.scope_for(&parts);
        let request = Request::from_parts(parts, body);
        let max_body = state.policy.max_body;
        let request_time = entry::now_ms();
        let produced = scope
            .run(async move {
                let response = inner.call(request).await?;
                let response_time = entry::now_ms();
                let (mut parts, body) = response.into_parts();
                let tags = state.take_tags(&mut parts);
                let outcome = if validating && parts.status == StatusCode::NOT_MODIFIED {
                    Outcome::NotModified
                } else if may_fail_over && parts.status.is_server_error() {
                    Outcome::Failed
                } else {
                    match state
                        .policy
                        .storability(parts.status, &parts.headers, authorized)
                    {
                        Ok(freshness) => {
                            Outcome::Collected(freshness, collect_limited(body, max_body).await)
                        }
                        Err(reason) => Outcome::Refused(reason, body),
                    }
                };
                Ok((parts, tags, outcome, response_time))
            })
            .await;
        let (mut parts, mut tags, outcome, response_time) = match produced {
            Ok(produced) => produced,
            Err(err) => {
                let now = entry::now_ms();
                if let Some(stale) = self.stale.as_ref().filter(|e| e.usable_on_error(now)) {
                    tracing::debug!("the service failed; answering from a stale entry");
                    return Ok((
                        self.stale_on_error(stale, head, &request_headers, detailed),
                        None,
                    ));
                }
                return Err(err);
            }
        };
        let report = scope.report();
        let initial_age = policy::initial_age_ms(&parts.headers, request_time, response_time);

        let (freshness, bytes) = match outcome {
            Outcome::Collected(freshness, Collected::Complete(bytes)) => (freshness, bytes),
            Outcome::Collected(_, Collected::Uncacheable { body, reason }) => {
                return Ok((
                    self.not_stored(parts, body, head, reason, &report, detailed),
                    None,
                ));
            }
            Outcome::Refused(reason, body) => {
                let body = CacheBody::inner(body);
                return Ok((
                    self.not_stored(parts, body, head, reason, &report, detailed),
                    None,
                ));
            }
            Outcome::Failed => {
                let now = entry::now_ms();
                if let Some(stale) = self.stale.as_ref().filter(|e| e.usable_on_error(now)) {
                    return Ok((
                        self.stale_on_error(stale, head, &request_headers, detailed),
                        None,
                    ));
                }
                let reason = NotStored::Status;
                return Ok((
                    self.not_stored(parts, CacheBody::empty(), head, reason, &report, detailed),
                    None,
                ));
            }
            Outcome::NotModified => {
                let Some(stale) = self.stale.as_ref() else {
                    let body = CacheBody::empty();
                    let reason = NotStored::Status;
                    return Ok((
                        self.not_stored(parts, body, head, reason, &report, detailed),
                        None,
                    ));
                };
                return Ok(self
                    .refreshed(
                        stale,
                        &parts,
                        tags,
                        (response_time, initial_age),
                        &request_headers,
                        head,
                        detailed,
                        &report,
                    )
                    .await);
            }
        };

        // An answer for an id the cache never saw is answered again from the engine's bounded
        // negative cache (storing it would let random ids grow the store without bound); one
        // built from stale records must not outlive the source's outage.
        let unstorable = if report.never_seen > 0 {
            Some(NotStored::NeverSeen)
        } else if report.stale > 0 {
            Some(NotStored::StaleRecords)
        } else {
            None
        };
        if let Some(reason) = unstorable {
            let body = CacheBody::full(bytes);
            return Ok((
                self.not_stored(parts, body, head, reason, &report, detailed),
                None,
            ));
        }
        tags.merge(CacheTags {
            records: report.records.clone(),
            entities: report.entities.clone(),
        });
        let vary = match policy::vary(&parts.headers) {
            Vary::Names(names) => names,
            Vary::None | Vary::All => Vec::new(),
        };
        let extensions = std::mem::take(&mut parts.extensions);
        let entry = StoredResponse::new(
            parts.status,
            parts.headers.clone(),
            bytes,
            &freshness,
            (response_time, initial_age),
            vary,
        );
        if entry.store_ttl(state.policy.max_store_ttl()).is_zero() {
            // Already stale on arrival, with nothing to validate it by.
            let body = CacheBody::full(entry.body.clone());
            return Ok((
                self.not_stored(parts, body, head, NotStored::Expired, &report, detailed),
                None,
            ));
        }
        let lifetime = entry.store_ttl(state.policy.max_store_ttl());
        let vary = entry.vary.clone();
        // One place among the path's variants (query strings, `Vary` values) and, for a "not
        // found", one among the route's stored 404s: each bound is counted in the store.
        let variant = policy::variant_key(self.key, &vary, &request_headers);
        let mut refused = None;
        if keys_on_query || !vary.is_empty() {
            let max = state.policy.max_variants;
            refused = state
                .place_for(&group, &variant, max, lifetime, NotStored::TooManyVariants)
                .await;
        }
        if refused.is_none() && matches!(parts.status, StatusCode::NOT_FOUND | StatusCode::GONE) {
            let max = state.policy.max_not_found;
            refused = state
                .place_for(
                    &not_found_group,
                    &variant,
                    max,
                    lifetime,
                    NotStored::TooManyNotFound,
                )
                .await;
        }
        if let Some(reason) = refused {
            let body = CacheBody::full(entry.body);
            return Ok((
                self.not_stored(parts, body, head, reason, &report, detailed),
                None,
            ));
        }
        let (mut response, shared) = self
            .keep_and_render(
                entry,
                &tags,
                &request_headers,
                head,
                detailed,
                &report,
                None,
            )
            .await;
        *response.extensions_mut() = extensions;
        Ok((response, shared))
    }

    /// Stores `entry` (tagged) and renders it for the request; `detail` names what happened
    /// when it was stored (e.g. `revalidated`).
    #[allow(clippy::too_many_arguments)]
    async fn keep_and_render<B>(
        &self,
        entry: StoredResponse,
        tags: &CacheTags,
        request_headers: &HeaderMap,
        head: bool,
        detailed: bool,
        report: &ScopeReport,
        detail: Option<&'static str>,
    ) -> (Response<CacheBody<B>>, Option<Arc<Shared>>) {
        let state = self.state;
        let request_key = if entry.vary.is_empty() {
            self.key.to_owned()
        } else {
            policy::variant_key(self.key, &entry.vary, request_headers)
        };
        let kept = state
            .keep(self.key, &request_key, &entry, tags, self.sequence)
            .await;
        let (stored, detail, store_failed) = match &kept {
            Ok(true) => (true, detail, false),
            Ok(false) => (false, Some(NotStored::Superseded.as_str()), false),
            Err(err) => {
                tracing::warn!(error = %err, "storing a response failed; served it uncached");
                (false, Some(NotStored::StoreFailed.as_str()), true)
            }
        };
        let status = CacheStatus::Forward {
            reason: self.reason,
            stored,
            detail,
        };
        record_status(&status);
        let mut response = render(&entry, head, request_headers);
        state.apply_status(
            response.headers_mut(),
            StatusHeaders::produced(status, report, store_failed, true),
            detailed,
        );
        let shared = stored.then(|| Arc::new(Shared::new(entry, request_headers)));
        (response, shared)
    }

    /// The service answered a validation with `304`: the stored headers are updated from it
    /// (RFC 9111 §4.3.4), its freshness computed again, and the stored body served.
    #[allow(clippy::too_many_arguments)]
    async fn refreshed<B>(
        &self,
        stale: &StoredResponse,
        not_modified: &http::response::Parts,
        mut tags: CacheTags,
        times: (u64, u64),
        request_headers: &HeaderMap,
        head: bool,
        detailed: bool,
        report: &ScopeReport,
    ) -> (Response<CacheBody<B>>, Option<Arc<Shared>>) {
        let mut headers = stale.headers.clone();
        if stale.generated_etag && !not_modified.headers.contains_key(header::ETAG) {
            headers.remove(header::ETAG);
        }
        for name in not_modified.headers.keys() {
            if *name == header::CONTENT_LENGTH {
                continue;
            }
            headers.remove(name);
        }
        for (name, value) in &not_modified.headers {
            if *name != header::CONTENT_LENGTH {
                headers.append(name.clone(), value.clone());
            }
        }
        let authorized = self.authorized;
        let stored = self
            .state
            .policy
            .storability(stale.status, &headers, authorized);
        let freshness = stored.unwrap_or(policy::Freshness {
            ttl: std::time::Duration::ZERO,
            stale_while_revalidate: std::time::Duration::ZERO,
            stale_if_error: std::time::Duration::ZERO,
            keep: std::time::Duration::ZERO,
            must_revalidate: true,
            no_cache: false,
        });
        let entry = StoredResponse::new(
            stale.status,
            headers,
            stale.body.clone(),
            &freshness,
            times,
            stale.vary.clone(),
        );
        if let Err(reason) = stored {
            let status = CacheStatus::Forward {
                reason: self.reason,
                stored: false,
                detail: Some(reason.as_str()),
            };
            record_status(&status);
            let mut response = render(&entry, head, request_headers);
            self.state.apply_status(
                response.headers_mut(),
                StatusHeaders::produced(status, report, false, true),
                detailed,
            );
            return (response, None);
        }
        tags.merge(CacheTags {
            records: report.records.clone(),
            entities: report.entities.clone(),
        });
        self.keep_and_render(
            entry,
            &tags,
            request_headers,
            head,
            detailed,
            report,
            Some("revalidated"),
        )
        .await
    }

    /// The stale entry answers because the service failed (RFC 5861 §4).
    fn stale_on_error<B>(
        &self,
        stale: &StoredResponse,
        head: bool,
        request_headers: &HeaderMap,
        detailed: bool,
    ) -> Response<CacheBody<B>> {
        let status = CacheStatus::Forward {
            reason: self.reason,
            stored: false,
            detail: Some("stale-if-error"),
        };
        record_status(&status);
        let mut response = render(stale, head, request_headers);
        self.state.apply_status(
            response.headers_mut(),
            StatusHeaders::served(status),
            detailed,
        );
        response
    }

    fn not_stored<B>(
        &self,
        mut parts: http::response::Parts,
        body: CacheBody<B>,
        head: bool,
        reason: NotStored,
        report: &ScopeReport,
        detailed: bool,
    ) -> Response<CacheBody<B>> {
        tracing::debug!(reason = reason.as_str(), "response not stored");
        let status = CacheStatus::Forward {
            reason: self.reason,
            stored: false,
            detail: Some(reason.as_str()),
        };
        record_status(&status);
        self.state.apply_status(
            &mut parts.headers,
            StatusHeaders::produced(status, report, false, true),
            detailed,
        );
        // A HEAD that was fetched as a GET answers without the body.
        let body = if head { CacheBody::empty() } else { body };
        Response::from_parts(parts, body)
    }
}

/// Headers a `304 Not Modified` carries over from the stored response (RFC 9110 §15.4.5).
const NOT_MODIFIED_HEADERS: [header::HeaderName; 6] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
];

/// A response from a stored entry for a request with `request` headers: `304` when its
/// conditionals say the client's copy is current (RFC 9111 §4.3.2), `206`/`416` for a single
/// byte range of a `200` (RFC 9110 §14), no body for `HEAD`, and `Age` from the entry's current
/// age (RFC 9111 §4.2.3). `Age` is sent to every client: RFC 9111 §5.1 requires it on a
/// response a cache serves (unlike the status details, it is not opt-in).
fn render<B>(entry: &StoredResponse, head: bool, request: &HeaderMap) -> Response<CacheBody<B>> {
    let age = HeaderValue::from(entry.age_ms(entry::now_ms()) / 1000);
    if entry.status.is_success() && not_modified(entry, request) {
        let mut headers = HeaderMap::with_capacity(NOT_MODIFIED_HEADERS.len() + 1);
        for name in NOT_MODIFIED_HEADERS {
            for value in entry.headers.get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(header::AGE, age);
        let mut response = Response::new(CacheBody::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        *response.headers_mut() = headers;
        return response;
    }
    let mut headers = entry.headers.clone();
    headers.insert(header::AGE, age);
    let mut status = entry.status;
    let body = if head {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
        CacheBody::empty()
    } else {
        match requested_range(entry, request) {
            None => CacheBody::full(entry.body.clone()),
            Some(Ok((first, last))) => {
                status = StatusCode::PARTIAL_CONTENT;
                let range = format!("bytes {first}-{last}/{}", entry.body.len());
                if let Ok(value) = HeaderValue::from_str(&range) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
                CacheBody::full(entry.body.slice(first..=last))
            }
            Some(Err(())) => {
                status = StatusCode::RANGE_NOT_SATISFIABLE;
                let range = format!("bytes */{}", entry.body.len());
                if let Ok(value) = HeaderValue::from_str(&range) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
                CacheBody::empty()
            }
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Whether the client's conditionals match the entry: `If-None-Match` (weak comparison), or
/// without it `If-Modified-Since` against the entry's `Last-Modified` (else its `Date`, else
/// when it arrived), RFC 9111 §4.3.2.
fn not_modified(entry: &StoredResponse, request: &HeaderMap) -> bool {
    if let Some(if_none_match) = request.get(header::IF_NONE_MATCH) {
        return entry.matches_if_none_match(if_none_match);
    }
    let Some(since) = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(policy::parse_http_date)
    else {
        return false;
    };
    let modified = entry
        .headers
        .get(header::LAST_MODIFIED)
        .or_else(|| entry.headers.get(header::DATE))
        .and_then(|v| v.to_str().ok())
        .and_then(policy::parse_http_date)
        .unwrap_or_else(|| {
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(entry.stored_at_ms)
        });
    modified <= since
}

/// The single byte range a request asks of a stored `200` (`None`: answer in full: no
/// `Range`, several ranges, another unit, a syntax error, or an `If-Range` that does not
/// match); `Err` when it cannot be satisfied (RFC 9110 §14.2, §13.1.5).
fn requested_range(
    entry: &StoredResponse,
    request: &HeaderMap,
) -> Option<Result<(usize, usize), ()>> {
    if entry.status != StatusCode::OK {
        return None;
    }
    let spec = request.get(header::RANGE)?.to_str().ok()?.trim();
    if let Some(if_range) = request.get(header::IF_RANGE) {
        let if_range = if_range.to_str().ok()?.trim();
        let matches = if if_range.starts_with('"') {
            // A strong comparison: a weak tag never matches.
            !entry.etag.as_bytes().starts_with(b"W/")
                && entry.etag.as_bytes() == if_range.as_bytes()
        } else {
            entry
                .headers
                .get(header::LAST_MODIFIED)
                .is_some_and(|m| m.as_bytes() == if_range.as_bytes())
        };
        if !matches {
            return None;
        }
    }
    let (unit, set) = spec.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return None;
    }
    let len = entry.body.len();
    let (first, last) = set.trim().split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: usize = last.parse().ok()?;
        if suffix == 0 || len == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(suffix), len - 1)
    } else {
        let first: usize = first.parse().ok()?;
        let last = if last.is_empty() {
            usize::MAX
        } else {
            last.parse().ok()?
        };
        if last < first {
            return None;
        }
        if first >= len {
            return Some(Err(()));
        }
        (first, last.min(len - 1))
    };
    Some(Ok(range))
}

/// What a lookup found.
pub(crate) struct Lookup {
    /// The entry's store key and the entry.
    pub found: Option<(String, Arc<StoredResponse>)>,
}

/// What the in-process tier holds for one key of the layer: a decoded response, or a vary
/// marker with the time its URI was last invalidated (read with it).
enum TierEntry {
    Response(Arc<StoredResponse>),
    Vary {
        names: Vec<String>,
        invalidated: u64,
    },
}

/// Storing failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Entry(#[from] EntryError),
}

impl LayerState {
    /// Looks `key` up (following a vary marker to the request's variant): in the in-process
    /// tier when the store has one, else in the store.
    async fn lookup(&self, key: &str, request: &HeaderMap) -> Result<Lookup, StoreError> {
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
                        let variant = self.variant(key, names, request, *invalidated).await?;
                        return Ok(Lookup { found: variant });
                    }
                },
                TierLookup::Miss(miss) => ticket = miss,
            }
        }
        // A hit reads one key: the purge sequence is read when a fill needs it, the
        // invalidation stamp only with a variant (a plain entry is deleted when invalidated).
        let raw = self.store.get(&entry_key).await?;
        let found = match raw.map(entry::decode) {
            None => None,
            Some(Ok(Stored::Response(entry))) => {
                let entry = Arc::new(*entry);
                if let (Some(tier), Some(ticket)) = (tier, ticket) {
                    tier.insert(ticket, Arc::new(TierEntry::Response(Arc::clone(&entry))));
                }
                Some((entry_key, entry))
            }
            Some(Ok(Stored::Vary(names))) => {
                let stamp = self.store.get(&self.invalidated_key(key)).await?;
                let invalidated = Dependents::parse_sequence(stamp.as_deref());
                let found = self.variant(key, &names, request, invalidated).await?;
                if let (Some(tier), Some(ticket)) = (tier, ticket) {
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
    async fn variant(
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
            match self.store.get(&variant_key).await?.map(entry::decode) {
                Some(Ok(Stored::Response(entry))) => {
                    let entry = Arc::new(*entry);
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
    fn invalidated_key(&self, key: &str) -> String {
        self.keys.keys.http(&format!("{key}\ninvalidated"))
    }

    /// Invalidates the stored responses of `keys` (and all their variants) for every instance
    /// sharing the store: the plain entries (or vary markers) are deleted, and the time is
    /// noted so that no variant stored before it is used again.
    async fn invalidate(&self, keys: &[String]) -> Result<(), StoreError> {
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
        // their variants are looked up again against the new stamp).
        self.store.announce(&entries).await?;
        tracing::debug!(
            keys = keys.len(),
            "stored responses invalidated by an unsafe request"
        );
        Ok(())
    }

    /// `504` for an `only-if-cached` request nothing stored can answer (RFC 9111 §5.2.1.7).
    fn gateway_timeout<B>(&self, parts: &Parts) -> Response<CacheBody<B>> {
        let status = CacheStatus::Forward {
            reason: Forward::Request,
            stored: false,
            detail: Some("only-if-cached"),
        };
        record_status(&status);
        let mut response = Response::new(CacheBody::empty());
        *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        let detailed = self.policy.detailed_status.includes(parts);
        self.apply_status(
            response.headers_mut(),
            StatusHeaders::produced(status, &ScopeReport::default(), false, true),
            detailed,
        );
        response
    }

    /// Claims a place for `variant` among the at most `max` that `group` stores, for
    /// `lifetime`, counted in the store for every instance; false when the group is full.
    async fn claim_place(
        &self,
        group: &str,
        variant: &str,
        max: usize,
        lifetime: std::time::Duration,
    ) -> Result<bool, StoreError> {
        if max == usize::MAX {
            return Ok(true);
        }
        let member = self.keys.keys.http(variant);
        self.store
            .claim_bounded(&self.keys.variants(group), &member, max, lifetime)
            .await
    }

    /// [`claim_place`](Self::claim_place) as the store step needs it: `None` when the
    /// response may be stored, else why not (`full` when `group` has no place left,
    /// `StoreFailed` when counting failed: the response is then served uncached).
    async fn place_for(
        &self,
        group: &str,
        variant: &str,
        max: usize,
        lifetime: std::time::Duration,
        full: NotStored,
    ) -> Option<NotStored> {
        match self.claim_place(group, variant, max, lifetime).await {
            Ok(true) => None,
            Ok(false) => Some(full),
            Err(err) => {
                tracing::warn!(error = %err, group, "counting a group's stored responses failed; served it uncached");
                Some(NotStored::StoreFailed)
            }
        }
    }

    /// Stores `entry` under `request_key` (and a vary marker under `key`), tagged with `tags`.
    /// `Ok(false)`: a record it read changed while it was produced, so it was not kept.
    ///
    /// Order matters for a purge racing with this: tags are added first, the entry second, the
    /// purge sequence checked last. A purge that announced itself after our check finds our tag
    /// and deletes the entry; one that announced itself before it is seen by the check.
    async fn keep(
        &self,
        key: &str,
        request_key: &str,
        entry: &StoredResponse,
        tags: &CacheTags,
        sequence: u64,
    ) -> Result<bool, KeepError> {
        let keys = &self.keys.keys;
        let entry_key = keys.http(request_key);
        let ttl = entry.store_ttl(self.policy.max_store_ttl());
        let tag_ttl = self.policy.max_store_ttl().max(ttl);
        self.dependents
            .register(&entry_key, &tags.records, &tags.entities, tag_ttl)
            .await?;

        let encoded = entry.encode()?;
        if entry.vary.is_empty() {
            self.store.set(&entry_key, encoded, ttl).await?;
        } else {
            let marker = entry::encode_vary(&entry.vary)?;
            self.store
                .set_many(&[
                    (keys.http(key), marker, ttl),
                    (entry_key.clone(), encoded, ttl),
                ])
                .await?;
        }
        if tags.is_empty() {
            return Ok(true);
        }

        let changed = self
            .dependents
            .changed_since(sequence, &tags.records, &tags.entities)
            .await?;
        if changed {
            tracing::debug!("a record this response read changed meanwhile; not keeping it");
            self.store.delete(&[entry_key]).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Takes the handler's tags (the [`CacheTags`] extension and the tag header) off a
    /// response.
    fn take_tags(&self, parts: &mut http::response::Parts) -> CacheTags {
        let mut tags = parts.extensions.remove::<CacheTags>().unwrap_or_default();
        if let Some(name) = &self.policy.tag_header {
            if parts.headers.contains_key(name) {
                let from_header = CacheTags::new().with_header(&parts.headers, name);
                parts.headers.remove(name);
                tags.merge(from_header);
            }
        }
        tags
    }

    /// Sets the status headers; `detailed`: the request's client is in the
    /// [`detailed_status`](crate::CacheLayerBuilder::detailed_status) audience.
    fn apply_status(&self, headers: &mut HeaderMap, status: StatusHeaders, detailed: bool) {
        if self.policy.status_headers {
            status.apply(&self.policy.cache_name, headers, detailed);
        }
    }

    /// A response from a stored entry for this request, with its status headers.
    fn serve<B>(
        &self,
        entry: &StoredResponse,
        parts: &Parts,
        status: CacheStatus,
    ) -> Response<CacheBody<B>> {
        record_status(&status);
        let head = parts.method == Method::HEAD;
        let mut response = render(entry, head, &parts.headers);
        let detailed = self.policy.detailed_status.includes(parts);
        self.apply_status(
            response.headers_mut(),
            StatusHeaders::served(status),
            detailed,
        );
        response
    }

    /// Refreshes a stale entry in the background, once: one task per entry in this process,
    /// and one process at a time through a store lock.
    fn refresh_in_background<S, ReqBody, ResBody>(
        self: &Arc<Self>,
        inner: S,
        parts: Parts,
        body: ReqBody,
        key: String,
        (entry_key, stale): (String, Arc<StoredResponse>),
    ) where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqBody: Send + 'static,
        ResBody: Body + Send + 'static,
        ResBody::Data: Send,
        ResBody::Error: Into<BodyError>,
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
struct Refreshing {
    state: Arc<LayerState>,
    entry_key: String,
}

impl Drop for Refreshing {
    fn drop(&mut self) {
        self.state.refreshing.lock().remove(&self.entry_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)], peer: Option<&str>) -> Parts {
        let mut request = http::Request::get("/events/recAAAAAAAAAAAAAA");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request
            .body(())
            .map(|r| r.into_parts())
            .unwrap_or_else(|_| http::Request::new(()).into_parts());
        if let Some(peer) = peer {
            parts
                .extensions
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        }
        parts
    }

    #[test]
    fn the_client_is_the_peer_address_unless_a_trusted_header_names_it() {
        let peer_only = ClientIdentity::default();
        let behind_proxy = ClientIdentity {
            header: Some(HeaderName::from_static("x-forwarded-for")),
            client_fn: None,
        };
        let forwarded = parts(
            &[("x-forwarded-for", " 203.0.113.9, 10.0.0.1")],
            Some("127.0.0.2:5555"),
        );
        assert_eq!(peer_only.of(&forwarded).as_deref(), Some("127.0.0.2"));
        assert_eq!(behind_proxy.of(&forwarded).as_deref(), Some("203.0.113.9"));
        let direct = parts(&[], Some("[2001:db8:1:2:3:4:5:6]:443"));
        assert_eq!(
            behind_proxy.of(&direct).as_deref(),
            Some("2001:db8:1:2::/64"),
            "no header: the peer address, IPv6 by its /64"
        );
        assert_eq!(peer_only.of(&parts(&[], None)), None);
        let principal = ClientIdentity {
            client_fn: Some(Arc::new(|_: &Parts| Some("user:ada".to_owned()))),
            ..behind_proxy
        };
        assert_eq!(principal.of(&forwarded).as_deref(), Some("user:ada"));
        let long = "x".repeat(500);
        let hostile = ClientIdentity {
            header: Some(HeaderName::from_static("x-client")),
            client_fn: None,
        };
        let named = hostile.of(&parts(&[("x-client", &long)], None));
        assert_eq!(named.map(|n| n.len()), Some(MAX_CLIENT_LEN));
    }
}
