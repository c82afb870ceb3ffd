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
use crate::layer::{CacheLayer, LayerState};
use crate::policy::{self, BypassReason, NotStored, Plan, Vary};
use crate::purge::CacheTags;
use crate::status::{CacheStatus, Forward, StatusHeaders};
use podium_cache_core::cache::Dependents;

/// The middleware [`CacheLayer`] wraps a service in.
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
    layer: CacheLayer,
}

impl<S> std::fmt::Debug for CacheService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheService")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<S> CacheService<S> {
    /// Wraps `inner` with the cache of `layer`.
    pub fn new(inner: S, layer: CacheLayer) -> Self {
        Self { inner, layer }
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
        let state = Arc::clone(self.layer.state());
        let span = tracing::debug_span!(
            "http_cache",
            method = %request.method(),
            path = %request.uri().path(),
            cache_status = tracing::field::Empty,
        );
        ResponseFuture::new(handle(state, inner, request).instrument(span))
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
    let (key, max_age) = match state.policy.plan(&parts) {
        Plan::Bypass(reason) => {
            let (forward, detail) = match reason {
                BypassReason::Method => (Forward::Method, None),
                BypassReason::RequestNoStore => (Forward::Request, None),
                BypassReason::Private => (Forward::Bypass, Some("private")),
                BypassReason::NoKey => (Forward::Bypass, Some("no-key")),
            };
            return pass_through(&state, inner, parts, body, forward, detail, false).await;
        }
        Plan::Revalidate { key } => {
            let sequence = match state.read_sequence().await {
                Ok(sequence) => sequence,
                Err(err) => return store_down(&state, inner, parts, body, &err).await,
            };
            let fill = Fill {
                state: &state,
                key: &key,
                sequence,
                reason: Forward::Request,
            };
            // A forced refetch is a miss like any other: coalesced, in the client's scope.
            return fill.coalesced(inner, parts, body).await;
        }
        Plan::Lookup { key, max_age } => (key, max_age),
    };

    let lookup = match state.lookup(&key, &parts.headers).await {
        Ok(lookup) => lookup,
        Err(err) => return store_down(&state, inner, parts, body, &err).await,
    };
    let mut reason = Forward::Miss;
    if let Some((entry_key, entry)) = lookup.found {
        let now = entry::now_ms();
        let too_old = max_age.is_some_and(|secs| entry.age_ms(now) > secs.saturating_mul(1000));
        match entry.age(now) {
            Age::Fresh if !too_old => {
                let status = CacheStatus::Hit {
                    ttl: entry.remaining_secs(now),
                };
                return Ok(state.serve(&entry, &parts, status));
            }
            Age::Stale if !too_old => {
                let status = CacheStatus::Hit {
                    ttl: entry.remaining_secs(now),
                };
                let response = state.serve(&entry, &parts, status);
                state.refresh_in_background(inner, parts, body, key, entry_key, lookup.sequence);
                return Ok(response);
            }
            _ => reason = Forward::Stale,
        }
    }

    let fill = Fill {
        state: &state,
        key: &key,
        sequence: lookup.sequence,
        reason,
    };
    // Also when the entry exists but this request may not use it (too old for its `max-age`).
    fill.coalesced(inner, parts, body).await
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
            // A HEAD miss fetches the GET, so the entry can serve both.
            parts.method = Method::GET;
        }
        let request_headers = parts.headers.clone();
        let detailed = state.policy.detailed_status.includes(&parts);
        let keys_on_query = state.policy.keys_on_query(&parts);
        let group = policy::variant_group(&parts);
        let not_found_group = policy::not_found_group(&parts);
        let scope = state.client.scope_for(&parts);
        let request = Request::from_parts(parts, body);
        let max_body = state.policy.max_body;
        let produced = scope
            .run(async move {
                let response = inner.call(request).await?;
                let (mut parts, body) = response.into_parts();
                let tags = state.take_tags(&mut parts);
                let collected = match state.policy.storability(parts.status, &parts.headers) {
                    Ok(freshness) => Ok((freshness, collect_limited(body, max_body).await)),
                    Err(reason) => Err((reason, body)),
                };
                Ok((parts, tags, collected))
            })
            .await;
        let (mut parts, mut tags, collected) = produced?;
        let report = scope.report();

        let (freshness, bytes) = match collected {
            Ok((freshness, Collected::Complete(bytes))) => (freshness, bytes),
            Ok((_, Collected::Uncacheable { body, reason })) => {
                return Ok((
                    self.not_stored(parts, body, head, reason, &report, detailed),
                    None,
                ));
            }
            Err((reason, body)) => {
                let body = CacheBody::inner(body);
                return Ok((
                    self.not_stored(parts, body, head, reason, &report, detailed),
                    None,
                ));
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
        if keys_on_query || !vary.is_empty() {
            let variant = policy::variant_key(self.key, &vary, &request_headers);
            let lifetime = freshness.ttl + freshness.stale_while_revalidate;
            let refused = match state
                .claim_place(&group, &variant, state.policy.max_variants, lifetime)
                .await
            {
                Ok(true) => None,
                Ok(false) => Some(NotStored::TooManyVariants),
                Err(err) => {
                    tracing::warn!(error = %err, "counting a response's variants failed; served it uncached");
                    Some(NotStored::StoreFailed)
                }
            };
            if let Some(reason) = refused {
                let body = CacheBody::full(bytes);
                return Ok((
                    self.not_stored(parts, body, head, reason, &report, detailed),
                    None,
                ));
            }
        }
        if matches!(parts.status, StatusCode::NOT_FOUND | StatusCode::GONE) {
            let variant = policy::variant_key(self.key, &vary, &request_headers);
            let lifetime = freshness.ttl + freshness.stale_while_revalidate;
            let refused = match state
                .claim_place(
                    &not_found_group,
                    &variant,
                    state.policy.max_not_found,
                    lifetime,
                )
                .await
            {
                Ok(true) => None,
                Ok(false) => Some(NotStored::TooManyNotFound),
                Err(err) => {
                    tracing::warn!(error = %err, "counting a route's stored 404s failed; served it uncached");
                    Some(NotStored::StoreFailed)
                }
            };
            if let Some(reason) = refused {
                let body = CacheBody::full(bytes);
                return Ok((
                    self.not_stored(parts, body, head, reason, &report, detailed),
                    None,
                ));
            }
        }
        let extensions = std::mem::take(&mut parts.extensions);
        let entry = StoredResponse::new(
            parts.status,
            parts.headers,
            bytes,
            freshness.ttl,
            freshness.stale_while_revalidate,
            vary,
        );
        let request_key = if entry.vary.is_empty() {
            self.key.to_owned()
        } else {
            policy::variant_key(self.key, &entry.vary, &request_headers)
        };
        let kept = state
            .keep(self.key, &request_key, &entry, &tags, self.sequence)
            .await;
        let (stored, detail, store_failed) = match &kept {
            Ok(true) => (true, None, false),
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
        let mut response = render(&entry, head, request_headers.get(header::IF_NONE_MATCH));
        *response.extensions_mut() = extensions;
        state.apply_status(
            response.headers_mut(),
            StatusHeaders::produced(status, &report, store_failed, true),
            detailed,
        );
        let shared = stored.then(|| Arc::new(Shared::new(entry, &request_headers)));
        Ok((response, shared))
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

/// A response from a stored entry: `304` when `If-None-Match` matches a 2xx entry, no body for
/// `HEAD`, `Age` from the entry's age. `Age` is sent to every client: RFC 9111 §5.1 requires
/// it on a response a cache serves (unlike the status details, it is not opt-in).
fn render<B>(
    entry: &StoredResponse,
    head: bool,
    if_none_match: Option<&HeaderValue>,
) -> Response<CacheBody<B>> {
    let age = HeaderValue::from(entry.age_ms(entry::now_ms()) / 1000);
    if entry.status.is_success() && if_none_match.is_some_and(|v| entry.matches_if_none_match(v)) {
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
    let body = if head {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
        CacheBody::empty()
    } else {
        CacheBody::full(entry.body.clone())
    };
    let mut response = Response::new(body);
    *response.status_mut() = entry.status;
    *response.headers_mut() = headers;
    response
}

/// What a lookup found.
pub(crate) struct Lookup {
    /// The entry's store key and the entry.
    pub found: Option<(String, StoredResponse)>,
    /// The purge sequence when the lookup was made.
    pub sequence: u64,
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
    /// Looks `key` up (following a vary marker to the request's variant), and reads the purge
    /// sequence in the same round trip.
    async fn lookup(&self, key: &str, request: &HeaderMap) -> Result<Lookup, StoreError> {
        let entry_key = self.keys.keys.http(key);
        let mut values = self
            .store
            .get_many(&[entry_key.clone(), self.dependents.sequence_key().to_owned()])
            .await?
            .into_iter();
        let raw = values.next().flatten();
        let sequence = Dependents::parse_sequence(values.next().flatten().as_deref());
        let found = match raw.map(entry::decode) {
            None => None,
            Some(Ok(Stored::Response(entry))) => Some((entry_key, entry)),
            Some(Ok(Stored::Vary(names))) => {
                let variant_key = self
                    .keys
                    .keys
                    .http(&policy::variant_key(key, &names, request));
                match self.store.get(&variant_key).await?.map(entry::decode) {
                    Some(Ok(Stored::Response(entry))) => Some((variant_key, entry)),
                    Some(Ok(Stored::Vary(_))) | None => None,
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "ignoring an unreadable cached response");
                        None
                    }
                }
            }
            Some(Err(err)) => {
                tracing::warn!(error = %err, "ignoring an unreadable cached response");
                None
            }
        };
        Ok(Lookup { found, sequence })
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

    async fn read_sequence(&self) -> Result<u64, StoreError> {
        self.dependents.sequence().await
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
        let ttl = entry.store_ttl();
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
        let mut response = render(entry, head, parts.headers.get(header::IF_NONE_MATCH));
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
        entry_key: String,
        sequence: u64,
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
                let fill = Fill {
                    state: &state,
                    key: &key,
                    sequence,
                    reason: Forward::Stale,
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
