//! Storability and freshness of a response (RFC 9111 §3, §4.2, §5.2.2): which responses are
//! stored, for how long, and without which fields.

use std::time::{Duration, SystemTime};

use http::header::{Entry, HeaderName, SET_COOKIE};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::config::Policy;
use super::date::parse_date;
use super::directives::{split_list, CacheControl};
use super::vary::{vary, Vary};

/// Why a response was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStored {
    /// Its status is not one of the cacheable statuses.
    Status,
    /// `Cache-Control: no-store`.
    NoStore,
    /// `Cache-Control: no-cache` (it would have to be revalidated on every use).
    NoCache,
    /// `Cache-Control: private`.
    Private,
    /// It sets a cookie (app mode only).
    SetCookie,
    /// `Vary: *`.
    VaryAll,
    /// Its freshness lifetime is zero (`max-age=0`, an `Expires` in the past, a TTL of 0).
    Expired,
    /// Its body is larger than the configured maximum.
    TooLarge,
    /// Its body ended with trailers or failed.
    Body,
    /// The store failed.
    StoreFailed,
    /// A record it read changed while it was produced (it was served, not kept).
    Superseded,
    /// It answered "not found" for an id the cache has never seen (see
    /// [`ScopeReport::never_seen`](podium_cache_core::scope::ScopeReport::never_seen)).
    NeverSeen,
    /// It was built from records served stale while the source failed (stale-if-error): the
    /// next request should try the source again rather than get this answer for a full TTL.
    StaleRecords,
    /// Its path already stores as many variants (query strings, `Vary` values) as allowed.
    TooManyVariants,
    /// The route already stores as many "not found" answers as allowed.
    TooManyNotFound,
}

impl NotStored {
    /// A short name, as used in `Cache-Status` `detail` and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::NoStore => "no-store",
            Self::NoCache => "no-cache",
            Self::Private => "private",
            Self::SetCookie => "set-cookie",
            Self::VaryAll => "vary-star",
            Self::Expired => "expired",
            Self::TooLarge => "too-large",
            Self::Body => "body",
            Self::StoreFailed => "store-failed",
            Self::Superseded => "superseded",
            Self::NeverSeen => "never-seen",
            Self::StaleRecords => "stale-records",
            Self::TooManyVariants => "variant-limit",
            Self::TooManyNotFound => "not-found-limit",
        }
    }
}

/// How long a stored response stays fresh, and how long after that it may still be served
/// while it is refreshed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    /// Freshness lifetime.
    pub ttl: Duration,
    /// The stale-while-revalidate window after it.
    pub stale_while_revalidate: Duration,
    /// The stale-if-error window after it (RFC 5861 §4).
    pub stale_if_error: Duration,
    /// How long past its freshness it is kept to be validated (it has a validator).
    pub keep: Duration,
    /// `must-revalidate`, `proxy-revalidate` or `s-maxage`: never served stale.
    pub must_revalidate: bool,
    /// `no-cache`: validated before every use.
    pub no_cache: bool,
}

/// The statuses RFC 9110 §15.1 calls heuristically cacheable.
pub const HEURISTIC_STATUSES: [u16; 12] =
    [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// The statuses whose caching rules the layer implements (RFC 9110 §15): what
/// `must-understand` asks of a cache (RFC 9111 §5.2.2.3). `206` is absent: partial responses
/// are never stored.
pub const UNDERSTOOD_STATUSES: [u16; 14] = [
    200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501,
];

/// The most heuristic freshness a response gets (RFC 9111 §4.2.2 leaves the cap to the cache).
pub const MAX_HEURISTIC: Duration = Duration::from_secs(24 * 3600);

/// Whether a response carries a validator of its origin (`ETag` or `Last-Modified`), one the
/// origin can answer a conditional request on (RFC 9111 §4.3.1).
pub(crate) fn has_origin_validator(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::ETAG) || headers.contains_key(http::header::LAST_MODIFIED)
}

/// The fields of a response the layer must not store (RFC 9111 §3.1): those its
/// `Connection` field names, the proxy authentication fields, and those named by a qualified
/// `no-cache` or `private` of the directives this cache follows (§5.2.2.4, §5.2.2.7).
pub(crate) fn unstored_fields(headers: &HeaderMap, directives: &CacheControl) -> Vec<String> {
    let mut names: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(split_list)
        .map(str::to_ascii_lowercase)
        .collect();
    names.extend(
        [
            "proxy-authenticate",
            "proxy-authentication-info",
            "proxy-authorization",
        ]
        .map(str::to_owned),
    );
    names.extend(directives.no_cache_fields.iter().cloned());
    names.extend(directives.private_fields.iter().cloned());
    names
}

/// Heuristic freshness (RFC 9111 §4.2.2): a tenth of the time since `Last-Modified` (as of
/// `Date`, or now), at most [`MAX_HEURISTIC`]; none without `Last-Modified`.
fn heuristic_lifetime(headers: &HeaderMap) -> Duration {
    let Some(modified) = headers
        .get(http::header::LAST_MODIFIED)
        .and_then(parse_date)
    else {
        return Duration::ZERO;
    };
    let date = headers
        .get(http::header::DATE)
        .and_then(parse_date)
        .unwrap_or_else(SystemTime::now);
    let since = date.duration_since(modified).unwrap_or(Duration::ZERO);
    (since / 10).min(MAX_HEURISTIC)
}

/// The lifetime `Expires` gives (relative to `Date`, or to now when there is none); zero for a
/// date in the past or one that does not parse (RFC 9111 §5.3: an invalid date means "already
/// expired").
fn expires_lifetime(headers: &HeaderMap) -> Option<Duration> {
    let expires = headers.get(http::header::EXPIRES)?;
    let Some(expires) = parse_date(expires) else {
        return Some(Duration::ZERO);
    };
    let date = headers
        .get(http::header::DATE)
        .and_then(parse_date)
        .unwrap_or_else(SystemTime::now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

/// The corrected initial age of a response in milliseconds (RFC 9111 §4.2.3): the larger of
/// its apparent age (`Date` to its arrival) and the origin's `Age` plus the response delay.
pub(crate) fn initial_age_ms(
    headers: &HeaderMap,
    request_time_ms: u64,
    response_time_ms: u64,
) -> u64 {
    // The first field line's first member (RFC 9111 §5.1, §4.2.1: the first occurrence);
    // anything but digits is invalid and ignored.
    let age_value = headers
        .get(http::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let v = v.split(',').next().unwrap_or_default().trim();
            match v.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                    Some(u64::from(u32::MAX))
                }
                Err(_) => None,
            }
        })
        .unwrap_or(0);
    let date_ms = headers
        .get(http::header::DATE)
        .and_then(parse_date)
        .and_then(|d| d.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let apparent = date_ms.map_or(0, |date| response_time_ms.saturating_sub(date));
    let delay = response_time_ms.saturating_sub(request_time_ms);
    let corrected = age_value.saturating_mul(1000).saturating_add(delay);
    apparent.max(corrected)
}

impl Policy {
    /// The directives this cache follows for a response: those of the first targeted field
    /// with a valid value (RFC 9213 §2.2), else `Cache-Control`. The flag tells whether a
    /// targeted field was used (then `Expires` is ignored too).
    pub fn response_directives(&self, headers: &HeaderMap) -> (CacheControl, bool) {
        for name in &self.targeted {
            if headers.contains_key(name) && super::targeted::is_valid(headers, name) {
                return (CacheControl::parse_field(headers, name), true);
            }
        }
        (CacheControl::parse(headers), false)
    }

    /// `headers` as the layer stores them, without the fields a cache must not store
    /// ([`unstored_fields`]), and the fields among those left out that still go to the client
    /// whose request fetched (or validated) the response: those a qualified
    /// `no-cache` or `private` names. RFC 9111 §5.2.2.4 and §5.2.2.7 limit what a cache
    /// stores and reuses, not what it forwards. The directives are parsed once for both.
    pub(crate) fn split_stored(
        &self,
        mut headers: HeaderMap,
    ) -> (HeaderMap, Vec<(HeaderName, HeaderValue)>) {
        let (cc, _) = self.response_directives(&headers);
        let mut withheld = Vec::new();
        for name in cc.no_cache_fields.iter().chain(&cc.private_fields) {
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            if let Entry::Occupied(entry) = headers.entry(name) {
                let (name, values) = entry.remove_entry_mult();
                withheld.extend(values.map(|value| (name.clone(), value)));
            }
        }
        for name in unstored_fields(&headers, &cc) {
            headers.remove(name.as_str());
        }
        (headers, withheld)
    }

    /// Whether (and for how long) a response may be stored. `authorized`: the request
    /// carried `Authorization` (RFC 9111 §3.5).
    pub fn storability(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        authorized: bool,
    ) -> Result<Freshness, NotStored> {
        // RFC 9111 §3: a final status; 206 and 304 are never stored as a full response here.
        if status.is_informational() || matches!(status.as_u16(), 206 | 304) {
            return Err(NotStored::Status);
        }
        let (cc, targeted) = self.response_directives(headers);
        // RFC 9111 §5.2.2.3: with `must-understand`, a cache that implements the caching
        // rules of the status stores by those rules and ignores `no-store`; for any other
        // status `no-store` stands.
        let understood = cc.must_understand && UNDERSTOOD_STATUSES.contains(&status.as_u16());
        if cc.no_store && !understood {
            return Err(NotStored::NoStore);
        }
        if cc.must_understand && !understood {
            return Err(NotStored::Status);
        }
        if cc.private {
            return Err(NotStored::Private);
        }
        if authorized && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate) {
            return Err(NotStored::Private);
        }
        // App mode keeps no response that sets a cookie: an app's cookies are its sessions.
        // The standards mode stores every received field, `Set-Cookie` too (RFC 9111 §3.1);
        // an origin keeps a cookie out of shared caches with `private` or
        // `no-cache="set-cookie"` (RFC 9111 §5.2.2.7, §5.2.2.4).
        if !self.standards && headers.contains_key(SET_COOKIE) {
            return Err(NotStored::SetCookie);
        }
        if matches!(vary(headers), Vary::All) {
            return Err(NotStored::VaryAll);
        }
        let validator = has_origin_validator(headers);
        if cc.no_cache && !validator {
            // It would have to be validated on every use, and there is nothing to validate with.
            return Err(NotStored::NoCache);
        }
        let explicit = cc.shared_max_age().map(Duration::from_secs).or_else(|| {
            if targeted {
                None
            } else {
                expires_lifetime(headers)
            }
        });
        let listed = self.statuses.contains(&status);
        let heuristic_status = HEURISTIC_STATUSES.contains(&status.as_u16()) || cc.public;
        let lifetime = match (self.standards, explicit) {
            (true, Some(explicit)) => explicit,
            (true, None) if heuristic_status => heuristic_lifetime(headers),
            (false, Some(explicit)) => explicit.min(self.ttl),
            (false, None) if listed => self.ttl,
            (_, None) => return Err(NotStored::Status),
        };
        let lifetime = if cc.no_cache {
            Duration::ZERO
        } else {
            lifetime
        };
        if lifetime.is_zero() && !validator {
            return Err(NotStored::Expired);
        }
        // `s-maxage` carries `proxy-revalidate` for a shared cache (RFC 9111 §5.2.2.10).
        let must_revalidate = cc.must_revalidate || cc.s_maxage.is_some();
        let (swr, sie) = if must_revalidate || cc.no_cache {
            (Duration::ZERO, Duration::ZERO)
        } else {
            let swr = cc
                .stale_while_revalidate
                .map_or(self.default_swr, Duration::from_secs)
                .min(self.max_swr);
            let sie = cc
                .stale_if_error
                .map_or(Duration::ZERO, Duration::from_secs)
                .min(self.max_swr);
            (swr, sie)
        };
        // A response the origin can validate is kept past its freshness, to be validated; one
        // it cannot, for a while, for the requests that accept it stale (`max-stale`, a
        // request's `stale-if-error`).
        let keep = if validator {
            self.max_swr
        } else {
            self.keep_stale()
        };
        Ok(Freshness {
            ttl: lifetime,
            stale_while_revalidate: swr,
            stale_if_error: sie,
            keep,
            must_revalidate,
            no_cache: cc.no_cache,
        })
    }
}
