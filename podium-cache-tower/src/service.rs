//! [`CacheService`]: the middleware itself.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{self};
use http::{Method, Request, Response};
use http_body::Body;
use tower::Service;
use tracing::Instrument;

use crate::body::{BodyError, CacheBody};
use crate::bounds::{SendBody, SendService};
use crate::entry::{self, Age, StoredResponse};
use crate::fill::Fill;
use crate::future::ResponseFuture;
use crate::invalidate::unsafe_method;
use crate::policy::{self, BypassReason, Plan};
use crate::respond::{pass_through, store_down};
use crate::state::LayerState;
use crate::status::{CacheStatus, Forward};

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
        let span = tracing::debug_span!(
            "http_cache",
            method = %request.method(),
            path = %request.uri().path(),
            cache_status = tracing::field::Empty,
        );
        let (parts, body) = request.into_parts();
        // A fresh entry found without awaiting answers here: no future to allocate, and the
        // wrapped service is neither cloned nor called.
        let step = match span.in_scope(|| first_step(&self.state, &parts)) {
            ControlFlow::Break(response) => return ResponseFuture::ready(response),
            ControlFlow::Continue(step) => step,
        };
        // The ready service goes with this request; a fresh clone waits for the next one.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let state = Arc::clone(&self.state);
        ResponseFuture::new(handle(state, inner, parts, body, step).instrument(span))
    }
}

/// What [`CacheService::call`] decided before any await, for a request it did not answer.
pub(crate) enum Step {
    /// An unsafe method: forwarded, then its target invalidated (RFC 9111 §4.4).
    Unsafe,
    /// Straight to the service, with the status it reports.
    Pass {
        forward: Forward,
        detail: Option<&'static str>,
    },
    /// Look the key up (unless it was found already and may not answer as it is).
    Lookup {
        key: String,
        directives: policy::CacheControl,
        authorized: bool,
        found: Option<Arc<StoredResponse>>,
    },
}

/// The steps of a request that need no await: its plan, and a hit when the entry is at hand
/// (`Break` with the response; `Continue` with what the awaited steps start from).
pub(crate) fn first_step<B>(
    state: &LayerState,
    parts: &http::request::Parts,
) -> ControlFlow<Response<CacheBody<B>>, Step> {
    if !is_safe(&parts.method) {
        return ControlFlow::Continue(Step::Unsafe);
    }
    let (key, directives, authorized) = match state.policy.plan(parts) {
        Plan::Bypass(reason) => {
            let (forward, detail) = match reason {
                BypassReason::Method => (Forward::Method, None),
                BypassReason::RequestNoStore => (Forward::Request, None),
                BypassReason::Private => (Forward::Bypass, Some("private")),
                BypassReason::NoKey => (Forward::Bypass, Some("no-key")),
            };
            return ControlFlow::Continue(Step::Pass { forward, detail });
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
        return ControlFlow::Continue(Step::Pass {
            forward: Forward::Request,
            detail: None,
        });
    }
    let found = state.lookup_now(&key);
    if let Some(entry) = &found {
        let now = entry::now_ms();
        if let Use::Fresh | Use::StaleAccepted = choose(entry, &directives, now) {
            let status = CacheStatus::Hit {
                ttl: entry.remaining_secs(now),
            };
            return ControlFlow::Break(state.serve(entry, parts, status, now));
        }
    }
    ControlFlow::Continue(Step::Lookup {
        key,
        directives,
        authorized,
        found,
    })
}

/// How a found entry may answer a request (RFC 9111 §4.2, §5.2.1; RFC 5861).
pub(crate) enum Use {
    /// Fresh enough for the request.
    Fresh,
    /// Stale, and the request's `max-stale` accepts it.
    StaleAccepted,
    /// Stale within its stale-while-revalidate window: served, refreshed in the background.
    WhileRevalidate,
    /// Must be validated with the service first.
    Validate,
}

pub(crate) fn choose(entry: &StoredResponse, request: &policy::CacheControl, now: u64) -> Use {
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
pub(crate) fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

pub(crate) async fn handle<S, ReqBody, ResBody>(
    state: Arc<LayerState>,
    inner: S,
    parts: http::request::Parts,
    body: ReqBody,
    step: Step,
) -> Result<Response<CacheBody<ResBody>>, S::Error>
where
    S: SendService<ReqBody, ResBody>,
    ReqBody: Send + 'static,
    ResBody: SendBody,
{
    let (key, directives, authorized, found) = match step {
        Step::Unsafe => return Box::pin(unsafe_method(&state, inner, parts, body)).await,
        Step::Pass { forward, detail } => {
            return Box::pin(pass_through(
                &state, inner, parts, body, forward, detail, false,
            ))
            .await;
        }
        Step::Lookup {
            key,
            directives,
            authorized,
            found,
        } => (key, directives, authorized, found),
    };
    let found = match found {
        Some(entry) => Some((state.keys.keys.http(&key), entry)),
        None => match state.lookup(&key, &parts.headers).await {
            Ok(lookup) => lookup.found,
            Err(err) => return Box::pin(store_down(&state, inner, parts, body, &err)).await,
        },
    };
    let mut reason = Forward::Miss;
    let mut stale = None;
    if let Some((entry_key, entry)) = found {
        let now = entry::now_ms();
        let status = CacheStatus::Hit {
            ttl: entry.remaining_secs(now),
        };
        match choose(&entry, &directives, now) {
            Use::Fresh | Use::StaleAccepted => return Ok(state.serve(&entry, &parts, status, now)),
            Use::WhileRevalidate => {
                let response = state.serve(&entry, &parts, status, now);
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
    // Everything past a hit lives in its own boxed future: the future of every request (the
    // hit's too) is only as large as the hit path needs, not the service call and the store
    // write (which made it several kilobytes to allocate and copy on each hit).
    let miss = Miss {
        key,
        directives,
        authorized,
        reason,
        stale,
    };
    Box::pin(miss.run(state, inner, parts, body)).await
}

/// A request no fresh entry answers, as [`handle`] found it.
struct Miss {
    key: String,
    directives: policy::CacheControl,
    authorized: bool,
    reason: Forward,
    stale: Option<Arc<StoredResponse>>,
}

impl Miss {
    /// Answers `only-if-cached`, forwards a standards-mode `HEAD`, or fills (coalesced).
    async fn run<S, ReqBody, ResBody>(
        self,
        state: Arc<LayerState>,
        inner: S,
        parts: http::request::Parts,
        body: ReqBody,
    ) -> Result<Response<CacheBody<ResBody>>, S::Error>
    where
        S: SendService<ReqBody, ResBody>,
        ReqBody: Send + 'static,
        ResBody: SendBody,
    {
        let Miss {
            key,
            directives,
            authorized,
            reason,
            stale,
        } = self;
        if directives.only_if_cached {
            // RFC 9111 §5.2.1.7: nothing stored can answer; the layer does not ask the service.
            let detailed = state.policy.detailed_status.includes(&parts);
            return Ok(state.gateway_timeout(detailed, "only-if-cached"));
        }
        if state.policy.standards && parts.method == Method::HEAD && stale.is_none() {
            // The standards mode forwards a HEAD as a HEAD; its answer (no body) is not stored.
            // One with a stale entry goes through a fill: its `200` freshens or invalidates the
            // stored `GET` response (RFC 9111 §4.3.5).
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
            request_sie: directives.stale_if_error,
        };
        // Also when the entry exists but this request may not use it (too old for its `max-age`).
        fill.coalesced(inner, parts, body).await
    }
}
