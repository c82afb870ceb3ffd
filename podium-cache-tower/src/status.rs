//! What the layer tells the client about how a response was produced.
//!
//! By default a response says only what a CDN says, and nothing about other clients' reads:
//!
//! - `Cache-Status` ([RFC 9211](https://www.rfc-editor.org/rfc/rfc9211)): `podium; hit` (served
//!   from the store, also a stale entry served while it is refreshed),
//!   `podium; fwd=miss; stored`, `podium; fwd=miss` (answered by another request's call),
//!   `podium; fwd=request; stored` (the request said `no-cache`, where request directives are
//!   honoured), `podium; fwd=stale; stored` (the entry was older than the request's `max-age`),
//!   `podium; fwd=method`, `podium; fwd=bypass; detail=…`, `podium; fwd=miss; detail=…` (not
//!   stored, and why); and `podium; hit; detail=stale` when the service answered with an
//!   expired record because Airtable failed (the core cache's stale-if-error: the scope's
//!   `stale` count).
//! - `X-Cache: HIT | MISS | BYPASS`: what the layer did: `HIT` served from the store, `MISS`
//!   asked the service after a lookup, `BYPASS` did not look (or the store failed).
//! - `Age` (set where the response is rendered, not here): RFC 9111 §5.1 requires it on a
//!   response served from a cache, so it is always there.
//!
//! The details that tell one client what others did are opt-in
//! ([`CacheLayerBuilder::detailed_status`](crate::CacheLayerBuilder::detailed_status), for
//! everyone or for trusted clients only): `ttl=` on a hit (`podium; hit; ttl=42`, negative for
//! a stale entry) and `collapsed` for a request answered by another's call; `X-Cache` from the
//! record reads the service made through the core cache (all hits → `HIT`, all misses →
//! `MISS`, both → `MIXED`; a store call failing → `BYPASS`), which says whether someone read a
//! record before; and `X-Cache-Hits`, `X-Cache-Misses` and `X-Airtable-Calls`. Without the
//! opt-in these three are removed, also when the service set them.
//!
//! ```
//! use podium_cache_core::scope::ScopeReport;
//! use podium_cache_tower::status::{CacheStatus, Forward, XCache};
//!
//! let status = CacheStatus::Forward { reason: Forward::Miss, stored: true, detail: None };
//! assert_eq!(status.to_header_value("podium"), "podium; fwd=miss; stored");
//! assert_eq!(CacheStatus::Hit { ttl: 42 }.to_header_value("podium"), "podium; hit");
//! assert_eq!(CacheStatus::Hit { ttl: 42 }.to_detailed_header_value("podium"), "podium; hit; ttl=42");
//!
//! let report = ScopeReport { hits: 2, misses: 1, ..ScopeReport::default() };
//! assert_eq!(XCache::from_report(&report, true), XCache::Mixed);
//! ```

use std::fmt::Write as _;

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};
use podium_cache_core::scope::ScopeReport;

/// `Cache-Status` (RFC 9211).
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
/// `X-Cache`: `HIT`, `MISS`, `MIXED` or `BYPASS`.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
/// `X-Cache-Hits`: reads answered by a cache for this response.
pub const X_CACHE_HITS: HeaderName = HeaderName::from_static("x-cache-hits");
/// `X-Cache-Misses`: reads that had to ask the source for this response.
pub const X_CACHE_MISSES: HeaderName = HeaderName::from_static("x-cache-misses");
/// `X-Airtable-Calls`: source (Airtable) calls made for this response.
pub const X_AIRTABLE_CALLS: HeaderName = HeaderName::from_static("x-airtable-calls");

/// Why the layer forwarded a request to the service (RFC 9211 `fwd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// The layer does not handle this request (credentials, no key, store unavailable).
    Bypass,
    /// The method is not cacheable.
    Method,
    /// No entry.
    Miss,
    /// The request asked for it (`no-cache`, `no-store`).
    Request,
    /// An entry existed but was too old to use.
    Stale,
}

impl Forward {
    /// The RFC 9211 token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bypass => "bypass",
            Self::Method => "method",
            Self::Miss => "miss",
            Self::Request => "request",
            Self::Stale => "stale",
        }
    }
}

/// What the layer did with one request, as `Cache-Status` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the store; `ttl` is the remaining freshness in seconds (negative: a stale
    /// entry served while it is revalidated in the background).
    Hit {
        /// Remaining freshness lifetime, seconds.
        ttl: i64,
    },
    /// Answered with the response another, concurrent request fetched for the same key.
    Collapsed,
    /// The service answered with at least one expired record that the core cache served
    /// because the source failed (stale-if-error): `hit; detail=stale`.
    StaleRecords,
    /// Forwarded to the service.
    Forward {
        /// Why.
        reason: Forward,
        /// Whether the answer was stored.
        stored: bool,
        /// Extra detail (`detail=` parameter), e.g. why it was not stored.
        detail: Option<&'static str>,
    },
}

impl CacheStatus {
    /// What the layer did, unless the service's record reads were answered stale
    /// ([`ScopeReport::stale`]): then [`CacheStatus::StaleRecords`], whatever the layer did.
    ///
    /// ```
    /// use podium_cache_core::scope::ScopeReport;
    /// use podium_cache_tower::status::{CacheStatus, Forward};
    /// let status = CacheStatus::Forward { reason: Forward::Miss, stored: false, detail: None };
    /// let report = ScopeReport { hits: 1, stale: 1, ..ScopeReport::default() };
    /// assert_eq!(status.clone().or_stale(&report).to_header_value("podium"), "podium; hit; detail=stale");
    /// assert_eq!(status.clone().or_stale(&ScopeReport::default()), status);
    /// ```
    pub fn or_stale(self, report: &ScopeReport) -> Self {
        if report.stale > 0 {
            Self::StaleRecords
        } else {
            self
        }
    }

    /// Whether the response came out of the layer (not from the service for this request).
    pub fn served_by_layer(&self) -> bool {
        matches!(self, Self::Hit { .. } | Self::Collapsed)
    }

    /// The header value every client gets, with `name` as the cache's identifier: nothing
    /// about other clients' reads (no `ttl=`, no `collapsed`).
    pub fn to_header_value(&self, name: &str) -> String {
        self.render(name, false)
    }

    /// The header value with the details ([`crate::status`]): `ttl=` on a hit, `collapsed`.
    pub fn to_detailed_header_value(&self, name: &str) -> String {
        self.render(name, true)
    }

    fn render(&self, name: &str, detailed: bool) -> String {
        let mut out = String::with_capacity(48);
        out.push_str(name);
        match self {
            Self::Hit { ttl } if detailed => {
                let _ = write!(out, "; hit; ttl={ttl}");
            }
            Self::Hit { .. } => out.push_str("; hit"),
            Self::Collapsed if detailed => out.push_str("; fwd=miss; collapsed"),
            Self::Collapsed => out.push_str("; fwd=miss"),
            Self::StaleRecords => out.push_str("; hit; detail=stale"),
            Self::Forward {
                reason,
                stored,
                detail,
            } => {
                out.push_str("; fwd=");
                out.push_str(reason.as_str());
                if *stored {
                    out.push_str("; stored");
                }
                if let Some(detail) = detail {
                    out.push_str("; detail=");
                    out.push_str(detail);
                }
            }
        }
        out
    }
}

/// The seed's `X-Cache` summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XCache {
    /// Everything came from a cache.
    Hit,
    /// Everything was fetched from the source (or nothing was read from any cache).
    Miss,
    /// Some reads hit, some missed.
    Mixed,
    /// The store was not usable.
    Bypass,
}

impl XCache {
    /// The header text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Mixed => "MIXED",
            Self::Bypass => "BYPASS",
        }
    }

    /// The summary of a response the service produced: from the scope's record reads; `BYPASS`
    /// when a store call failed; a response that read nothing is `MISS` when the layer looked
    /// for it (`consulted`) and `BYPASS` when it did not.
    pub fn from_report(report: &ScopeReport, consulted: bool) -> Self {
        if report.store_errors > 0 {
            return Self::Bypass;
        }
        match (report.hits > 0, report.misses > 0) {
            (true, true) => Self::Mixed,
            (true, false) => Self::Hit,
            (false, true) => Self::Miss,
            (false, false) if consulted => Self::Miss,
            (false, false) => Self::Bypass,
        }
    }
}

/// Everything the status headers of one response say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusHeaders {
    /// What the layer did.
    pub cache_status: CacheStatus,
    /// The `X-Cache` every client gets: what the layer did (`HIT`, `MISS` or `BYPASS`).
    pub layer: XCache,
    /// The detailed `X-Cache` summary, of the record reads too.
    pub x_cache: XCache,
    /// `X-Cache-Hits`.
    pub hits: u64,
    /// `X-Cache-Misses`.
    pub misses: u64,
    /// `X-Airtable-Calls`.
    pub source_calls: u64,
}

impl StatusHeaders {
    /// A response served by the layer: one hit, no source call.
    pub fn served(cache_status: CacheStatus) -> Self {
        // A request answered by another's call waited for the service, as a miss does.
        let layer = if cache_status == CacheStatus::Collapsed {
            XCache::Miss
        } else {
            XCache::Hit
        };
        Self {
            cache_status,
            layer,
            x_cache: XCache::Hit,
            hits: 1,
            misses: 0,
            source_calls: 0,
        }
    }

    /// A response the service produced, with what its scope collected. `store_failed`: the
    /// layer's own store call failed; `consulted`: the layer looked the request up. A scope
    /// that was answered stale records makes `Cache-Status` say `hit; detail=stale`.
    pub fn produced(
        cache_status: CacheStatus,
        report: &ScopeReport,
        store_failed: bool,
        consulted: bool,
    ) -> Self {
        let x_cache = if store_failed {
            XCache::Bypass
        } else {
            XCache::from_report(report, consulted)
        };
        let cache_status = cache_status.or_stale(report);
        let layer = if store_failed || report.store_errors > 0 || !consulted {
            XCache::Bypass
        } else if cache_status == CacheStatus::StaleRecords {
            XCache::Hit
        } else {
            XCache::Miss
        };
        Self {
            cache_status,
            layer,
            x_cache,
            hits: report.hits,
            misses: report.misses,
            source_calls: report.source_calls,
        }
    }

    /// Writes the headers (replacing any the service set): with the details when `detailed`,
    /// else only `Cache-Status` and `X-Cache` without them (and the detail headers removed).
    pub fn apply(&self, cache_name: &str, headers: &mut HeaderMap, detailed: bool) {
        let cache_status = if detailed {
            self.cache_status.to_detailed_header_value(cache_name)
        } else {
            self.cache_status.to_header_value(cache_name)
        };
        if let Ok(value) = HeaderValue::from_str(&cache_status) {
            headers.insert(CACHE_STATUS, value);
        }
        self.apply_rest(headers, detailed);
    }

    /// The plain (not detailed) headers of a response rendered from a stored entry, with the
    /// `Cache-Status` value already made (the layer makes a plain hit's once). Nothing is
    /// removed: the detail headers are never stored (see `entry::is_stored_header`), so a
    /// stored entry cannot carry them.
    pub(crate) fn apply_stored_plain(&self, cache_status: HeaderValue, headers: &mut HeaderMap) {
        headers.insert(CACHE_STATUS, cache_status);
        headers.insert(X_CACHE, HeaderValue::from_static(self.layer.as_str()));
    }

    fn apply_rest(&self, headers: &mut HeaderMap, detailed: bool) {
        let x_cache = if detailed { self.x_cache } else { self.layer };
        headers.insert(X_CACHE, HeaderValue::from_static(x_cache.as_str()));
        if detailed {
            headers.insert(X_CACHE_HITS, HeaderValue::from(self.hits));
            headers.insert(X_CACHE_MISSES, HeaderValue::from(self.misses));
            headers.insert(X_AIRTABLE_CALLS, HeaderValue::from(self.source_calls));
        } else {
            for name in [X_CACHE_HITS, X_CACHE_MISSES, X_AIRTABLE_CALLS] {
                headers.remove(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_status_values_follow_rfc_9211_syntax_with_details_opt_in() {
        for (status, detailed, default) in [
            (
                CacheStatus::Hit { ttl: 42 },
                "podium; hit; ttl=42",
                "podium; hit",
            ),
            (
                CacheStatus::Hit { ttl: -3 },
                "podium; hit; ttl=-3",
                "podium; hit",
            ),
            (
                CacheStatus::Collapsed,
                "podium; fwd=miss; collapsed",
                "podium; fwd=miss",
            ),
        ] {
            assert_eq!(status.to_detailed_header_value("podium"), detailed);
            assert_eq!(status.to_header_value("podium"), default);
        }
        assert_eq!(
            CacheStatus::Forward {
                reason: Forward::Bypass,
                stored: false,
                detail: Some("store-unavailable")
            }
            .to_header_value("edge"),
            "edge; fwd=bypass; detail=store-unavailable"
        );
    }

    #[test]
    fn default_headers_look_alike_whether_or_not_a_record_was_read_before() {
        let mut headers = HeaderMap::new();
        headers.insert(X_AIRTABLE_CALLS, HeaderValue::from_static("7"));
        let warm = ScopeReport {
            hits: 2,
            ..ScopeReport::default()
        };
        let cold = ScopeReport {
            misses: 2,
            source_calls: 1,
            ..ScopeReport::default()
        };
        let miss = CacheStatus::Forward {
            reason: Forward::Miss,
            stored: true,
            detail: None,
        };
        let mut seen = Vec::new();
        for report in [&warm, &cold] {
            let mut out = headers.clone();
            StatusHeaders::produced(miss.clone(), report, false, true)
                .apply("podium", &mut out, false);
            seen.push(out);
        }
        assert_eq!(seen[0], seen[1], "a warm and a cold record read look alike");
        assert_eq!(seen[0][X_CACHE], "MISS");
        assert!(
            seen[0].get(X_AIRTABLE_CALLS).is_none(),
            "the service's own is removed"
        );
        let mut detailed = HeaderMap::new();
        StatusHeaders::produced(miss, &warm, false, true).apply("podium", &mut detailed, true);
        assert_eq!(detailed[X_CACHE], "HIT");
        assert_eq!(detailed[X_CACHE_HITS], "2");
        let mut collapsed = HeaderMap::new();
        StatusHeaders::served(CacheStatus::Collapsed).apply("podium", &mut collapsed, false);
        assert_eq!(collapsed[X_CACHE], "MISS");
    }

    #[test]
    fn a_scope_answered_stale_makes_cache_status_a_stale_hit() {
        let forwarded = CacheStatus::Forward {
            reason: Forward::Request,
            stored: true,
            detail: None,
        };
        let stale = ScopeReport {
            hits: 2,
            stale: 1,
            ..ScopeReport::default()
        };
        let headers = StatusHeaders::produced(forwarded.clone(), &stale, false, true);
        assert_eq!(
            headers.cache_status.to_header_value("podium"),
            "podium; hit; detail=stale"
        );
        assert_eq!(headers.x_cache, XCache::Hit);
        let fresh = ScopeReport {
            hits: 2,
            ..ScopeReport::default()
        };
        let headers = StatusHeaders::produced(forwarded.clone(), &fresh, false, true);
        assert_eq!(headers.cache_status, forwarded);
    }

    #[test]
    fn x_cache_summarises_the_scope() {
        let report = |hits, misses, store_errors| ScopeReport {
            hits,
            misses,
            store_errors,
            ..ScopeReport::default()
        };
        assert_eq!(XCache::from_report(&report(3, 0, 0), true), XCache::Hit);
        assert_eq!(XCache::from_report(&report(0, 2, 0), true), XCache::Miss);
        assert_eq!(XCache::from_report(&report(1, 1, 0), true), XCache::Mixed);
        assert_eq!(XCache::from_report(&report(1, 1, 1), true), XCache::Bypass);
        assert_eq!(XCache::from_report(&report(0, 0, 0), true), XCache::Miss);
        assert_eq!(XCache::from_report(&report(0, 0, 0), false), XCache::Bypass);
    }
}
