//! A fill: the service is asked (once for every concurrent request of a key), its answer
//! stored when it may be, and rendered.

use std::sync::Arc;

use http::header::{self};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use podium_cache_core::scope::ScopeReport;
use tower::Service;

use crate::body::{collect_limited, BodyError, CacheBody, Collected};
use crate::coalesce::{follow, Shared};
use crate::entry::{self, Age, StoredResponse};
use crate::policy::{self, NotStored, Vary};
use crate::purge::CacheTags;
use crate::render::render;
use crate::respond::record_status;
use crate::state::LayerState;
use crate::status::{CacheStatus, Forward, StatusHeaders};
use podium_cache_core::coalesce::Join;

/// Everything a request's fill needs besides the service and the request.
pub(crate) struct Fill<'a> {
    pub(crate) state: &'a Arc<LayerState>,
    /// The request key (before `Vary`).
    pub(crate) key: &'a str,
    /// The purge sequence read before the service ran.
    pub(crate) sequence: u64,
    /// Why the request was forwarded.
    pub(crate) reason: Forward,
    /// The request carries `Authorization` (RFC 9111 §3.5 decides what is stored).
    pub(crate) authorized: bool,
    /// The stored entry this fill validates (conditionally, when it has validators), and
    /// falls back on when the service fails and it allows stale-if-error.
    pub(crate) stale: Option<Arc<StoredResponse>>,
    /// The request's own `stale-if-error=N` (seconds, RFC 5861 §4), where request directives
    /// are honoured.
    pub(crate) request_sie: Option<u64>,
}

/// What the service's answer to a fill is.
pub(crate) enum Outcome<B> {
    /// `304` to the layer's own conditional request.
    NotModified,
    /// A `5xx` while a stale entry allows stale-if-error.
    Failed,
    /// Storable; its body as read.
    Collected(policy::Freshness, Collected<B>),
    /// Not storable, for this reason.
    Refused(NotStored, B),
    /// A `200` to a forwarded `HEAD` whose validators or length differ from the stored
    /// response's: that response is invalidated (RFC 9111 §4.3.5).
    Replaced(B),
}

impl Fill<'_> {
    /// Runs the service once for every concurrent request of the key: the first runs it, the
    /// others wait (up to the coalescing timeout) and are answered with its response.
    pub(crate) async fn coalesced<S, ReqBody, ResBody>(
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
        match state.in_flight.join(key.to_owned()) {
            Join::Follower(receiver) => {
                if let Some(shared) = follow(receiver, state.policy.coalesce_timeout).await {
                    if shared.fits(&parts.headers) {
                        return Ok(state.serve(
                            &shared.entry,
                            &parts,
                            CacheStatus::Collapsed,
                            entry::now_ms(),
                        ));
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
                                let response = state.serve(&entry, &parts, status, now);
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

impl Fill<'_> {
    /// Runs the service inside a scope, stores its answer when allowed, and renders the
    /// response. Also returns what followers may share.
    ///
    /// The service is asked for the full response (the client's own conditionals and `Range`
    /// are answered from the stored entry, RFC 9111 §4.3.2); when a stale entry with validators
    /// is being validated, the request carries them (§4.3.1) and a `304` refreshes the entry
    /// (§4.3.4). A failure (`5xx`, or the service's error) is answered from a stale entry
    /// that allows it (RFC 5861 §4).
    pub(crate) async fn run<S, ReqBody, ResBody>(
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
        // The standards mode forwards a HEAD as a HEAD (its answer updates the stored GET
        // response, RFC 9111 §4.3.5); the app mode fetches the GET, so the entry serves both.
        let forwarded_head = head && state.policy.standards;
        if head && !forwarded_head {
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
            .is_some_and(|e| (e.sie_ms > 0 || self.request_sie.is_some()) && !e.must_revalidate);
        let authorized = self.authorized;
        let detailed = state.policy.detailed_status.includes(&parts);
        let keys_on_query = state.policy.keys_on_query(&parts);
        let group = policy::variant_group(&parts);
        let not_found_group = policy::not_found_group(&parts);
        let scope = state.client.scope_for(&parts);
        let request = Request::from_parts(parts, body);
        let max_body = state.policy.max_body;
        let request_time = entry::now_ms();
        let stale_entry = self.stale.as_deref();
        let produced = scope
            .run(async move {
                let response = inner.call(request).await?;
                let response_time = entry::now_ms();
                let (mut parts, body) = response.into_parts();
                let tags = state.take_tags(&mut parts);
                let outcome = if validating && parts.status == StatusCode::NOT_MODIFIED {
                    Outcome::NotModified
                } else if forwarded_head {
                    match stale_entry {
                        Some(stale) if parts.status == StatusCode::OK => {
                            if stale.same_representation(&parts.headers) {
                                Outcome::NotModified
                            } else {
                                Outcome::Replaced(body)
                            }
                        }
                        _ => Outcome::Refused(NotStored::Status, body),
                    }
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
                if let Some(stale) = self.stale.as_ref() {
                    if stale.usable_on_error(now, self.request_sie) {
                        tracing::debug!("the service failed; answering from a stale entry");
                        return Ok((
                            self.stale_on_error(stale, head, &request_headers, detailed),
                            None,
                        ));
                    }
                    if stale.must_revalidate {
                        // RFC 9111 §5.2.2.2: never the stale entry; a generated error, 504.
                        tracing::debug!("the service failed; must-revalidate entry not served");
                        let response = state.gateway_timeout(detailed, "must-revalidate");
                        return Ok((response, None));
                    }
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
            Outcome::Replaced(body) => {
                if let Err(err) = state.invalidate(&[self.key.to_owned()]).await {
                    tracing::warn!(error = %err, "invalidating a replaced stored response failed");
                }
                let body = CacheBody::inner(body);
                let reason = NotStored::Status;
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
                let usable = |e: &&Arc<StoredResponse>| e.usable_on_error(now, self.request_sie);
                if let Some(stale) = self.stale.as_ref().filter(usable) {
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
        let (stored_headers, withheld) = state.policy.split_stored(parts.headers.clone());
        let entry = StoredResponse::new(
            parts.status,
            stored_headers,
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
        append(&mut response, withheld);
        Ok((response, shared))
    }

    /// Stores `entry` (tagged) and renders it for the request; `detail` names what happened
    /// when it was stored (e.g. `revalidated`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn keep_and_render<B>(
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
        let mut response = render(&entry, head, request_headers, entry::now_ms());
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
    pub(crate) async fn refreshed<B>(
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
        // Fields the `304`'s directives keep out of the store still go to this client, whose
        // request the `304` answered (RFC 9111 §5.2.2.4, §5.2.2.7), as after a full fetch.
        let (stored_headers, withheld) = self.state.policy.split_stored(headers);
        let entry = StoredResponse::new(
            stale.status,
            stored_headers,
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
            let mut response = render(&entry, head, request_headers, entry::now_ms());
            self.state.apply_status(
                response.headers_mut(),
                StatusHeaders::produced(status, report, false, true),
                detailed,
            );
            append(&mut response, withheld);
            return (response, None);
        }
        tags.merge(CacheTags {
            records: report.records.clone(),
            entities: report.entities.clone(),
        });
        let (mut response, shared) = self
            .keep_and_render(
                entry,
                &tags,
                request_headers,
                head,
                detailed,
                report,
                Some("revalidated"),
            )
            .await;
        append(&mut response, withheld);
        (response, shared)
    }

    /// The stale entry answers because the service failed (RFC 5861 §4).
    pub(crate) fn stale_on_error<B>(
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
        let mut response = render(stale, head, request_headers, entry::now_ms());
        self.state.apply_status(
            response.headers_mut(),
            StatusHeaders::served(status),
            detailed,
        );
        response
    }

    pub(crate) fn not_stored<B>(
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

/// Adds `fields` (withheld from the store) to the response for the client that fetched it.
fn append<B>(response: &mut Response<B>, fields: Vec<(HeaderName, HeaderValue)>) {
    for (name, value) in fields {
        response.headers_mut().append(name, value);
    }
}
