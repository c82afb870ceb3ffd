//! What is cacheable, under which key, and for how long.
//!
//! The layer caches like a shared cache (RFC 9111) would, in one of two modes: the app mode
//! (the default: a TTL for every cacheable answer, kept honest by record purges) and the
//! standards mode
//! ([`CacheLayerBuilder::freshness_from_headers`](crate::CacheLayerBuilder::freshness_from_headers):
//! freshness only from the response's headers or RFC 9111 §4.2.2 heuristics).
//!
//! - **Requests**: `GET` and `HEAD` are looked up (a `HEAD` is answered from the `GET` entry;
//!   on a miss the app mode fetches the `GET`, the standards mode forwards the `HEAD`). Any
//!   other method except `OPTIONS` and `TRACE` is unsafe: a non-error answer invalidates the
//!   stored responses of its URI and of same-origin `Location`/`Content-Location` URIs
//!   (RFC 9111 §4.4). A request's own `Cache-Control` (and `Pragma`) is ignored by default in
//!   the app mode, as Varnish, Fastly and Cloudflare ignore it: otherwise any client could make
//!   the layer skip its entries and call the service (and Airtable) at will. Where it is
//!   honoured ([`CacheLayerBuilder::request_cache_control`](crate::CacheLayerBuilder::request_cache_control),
//!   for everyone as RFC 9111 §5.2.1 describes and the standards mode does, or for trusted
//!   clients only), `no-store` bypasses the cache; `no-cache` (or `Pragma: no-cache`),
//!   `max-age=0`, a `max-age` the entry is older than or a `min-fresh` it cannot meet make the
//!   layer validate with the service (coalesced, in the client's scope); `max-stale` accepts a
//!   stale entry; `only-if-cached` answers `504` when nothing stored can answer.
//!   A request carrying `Authorization` or one of the configured session cookies is private: it
//!   bypasses the cache, unless per-principal keys are enabled
//!   ([`CacheLayerBuilder::per_principal`](crate::CacheLayerBuilder::per_principal)); in the
//!   standards mode a request with `Authorization` is looked up and its answer stored only when
//!   it says `public`, `s-maxage` or `must-revalidate` (RFC 9111 §3.5).
//!   The client's conditionals (`If-None-Match`, `If-Modified-Since`) and a single byte
//!   `Range` are answered from the stored entry (`304`, `206`, `416`).
//! - **Responses**: the directives are those of the first targeted field with a valid value
//!   (a configured one, then `CDN-Cache-Control`, RFC 9213), else `Cache-Control` and
//!   `Expires`. Never stored: `no-store`, `private`, `Set-Cookie`, `Vary: *`, `206`, `304`.
//!   Freshness: `s-maxage`, else `max-age`, else `Expires` − `Date` (any HTTP-date form; an
//!   invalid one means expired); in the app mode capped by the TTL, which also applies to the
//!   cacheable statuses (default 200, 203, 204, 301, 404, 410) that give none; in the standards
//!   mode the heuristically cacheable statuses get a tenth of the time since `Last-Modified`.
//!   The current age (RFC 9111 §4.2.3: the origin's `Age`, the response delay, the time
//!   stored) decides freshness and is sent in `Age`. A response with a validator (`ETag`,
//!   `Last-Modified`) is kept past freshness and validated conditionally; a `304` refreshes its
//!   headers (§4.3.4); `no-cache` responses are validated on every use; `must-revalidate`,
//!   `proxy-revalidate` and `s-maxage` forbid serving stale. `stale-while-revalidate=N` (or the
//!   configured default window) serves a stale entry while one background request validates
//!   it; `stale-if-error=N` (RFC 5861) serves it when the service answers `5xx` or fails.
//! - **Keys**: method + path + sorted query ([`default_request_key`], replaceable with
//!   [`CacheLayerBuilder::key_fn`](crate::CacheLayerBuilder::key_fn)), plus the values of the
//!   request headers the response's `Vary` names. A route given an allow-list
//!   ([`CacheLayerBuilder::query_params`](crate::CacheLayerBuilder::query_params)) keys on the
//!   listed parameters only ([`allowed_request_key`]), so junk parameters share the entry of the
//!   request without them.
//! - **Variants**: one path stores at most
//!   [`max_variants`](crate::CacheLayerBuilder::max_variants) variants (distinct query strings
//!   or `Vary` values, counted in the store for every instance); past that a new variant is
//!   served but not stored, so random query strings cannot crowd out the entries already there.
//!
//! ```
//! use http::HeaderMap;
//! use podium_cache_tower::policy::{default_request_key, CacheControl};
//!
//! let request = http::Request::get("/events?b=2&a=1").body(()).unwrap();
//! let (parts, _) = request.into_parts();
//! assert_eq!(default_request_key(&parts), "GET /events?a=1&b=2");
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("cache-control", "public, s-maxage=30, max-age=5".parse().unwrap());
//! let cc = CacheControl::parse(&headers);
//! assert_eq!(cc.shared_max_age(), Some(30));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[cfg(feature = "axum")]
use axum::extract::MatchedPath;
use http::header::{HeaderName, AUTHORIZATION, CACHE_CONTROL, COOKIE, PRAGMA, SET_COOKIE, VARY};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode};
use sha2::{Digest, Sha256};

/// A policy hook: computes the request key of a request, or `None` to leave it uncached.
/// Every `Fn(&Parts) -> Option<String>` closure is one.
///
/// ```
/// use http::request::Parts;
/// use podium_cache_tower::policy::RequestKey;
///
/// struct PathOnly;
/// impl RequestKey for PathOnly {
///     fn key(&self, parts: &Parts) -> Option<String> {
///         Some(parts.uri.path().to_owned())
///     }
/// }
/// let (parts, _) = http::Request::get("/a?b").body(()).unwrap().into_parts();
/// assert_eq!(PathOnly.key(&parts).as_deref(), Some("/a"));
/// let closure = |p: &Parts| Some(p.method.to_string());
/// assert_eq!(closure.key(&parts).as_deref(), Some("GET"));
/// ```
pub trait RequestKey: Send + Sync + 'static {
    /// The key of the request with `parts`, or `None` to leave it uncached.
    fn key(&self, parts: &Parts) -> Option<String>;
}

impl<F> RequestKey for F
where
    F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
{
    fn key(&self, parts: &Parts) -> Option<String> {
        self(parts)
    }
}

/// A policy hook: tells whether a request comes from a client the application trusts. Every
/// `Fn(&Parts) -> bool` closure is one.
pub trait Trust: Send + Sync + 'static {
    /// Whether the request with `parts` is trusted.
    fn trusts(&self, parts: &Parts) -> bool;
}

impl<F> Trust for F
where
    F: Fn(&Parts) -> bool + Send + Sync + 'static,
{
    fn trusts(&self, parts: &Parts) -> bool {
        self(parts)
    }
}

/// A policy hook: names the principal a private request belongs to (`None`: it has none and
/// bypasses the cache). Every `Fn(&Parts) -> Option<String>` closure is one.
pub trait Principal: Send + Sync + 'static {
    /// The principal of the request with `parts`.
    fn principal(&self, parts: &Parts) -> Option<String>;
}

impl<F> Principal for F
where
    F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
{
    fn principal(&self, parts: &Parts) -> Option<String> {
        self(parts)
    }
}

/// A policy hook: names the client of a request for the core engine's per-client queues and
/// limits (`None`: the trusted header or the peer address is used). Every
/// `Fn(&Parts) -> Option<String>` closure is one.
pub trait ClientName: Send + Sync + 'static {
    /// The client of the request with `parts`.
    fn client(&self, parts: &Parts) -> Option<String>;
}

impl<F> ClientName for F
where
    F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
{
    fn client(&self, parts: &Parts) -> Option<String> {
        self(parts)
    }
}

/// A shared [`RequestKey`].
pub type KeyFn = Arc<dyn RequestKey>;

/// Tells whether a request comes from a client the application trusts (e.g. one carrying an
/// operator's token, or one from an internal network).
pub type TrustFn = Arc<dyn Trust>;

/// Which clients the layer gives something it does not give everyone: detailed status headers
/// ([`CacheLayerBuilder::detailed_status`](crate::CacheLayerBuilder::detailed_status)) or
/// control through their own `Cache-Control`
/// ([`CacheLayerBuilder::request_cache_control`](crate::CacheLayerBuilder::request_cache_control)).
///
/// ```
/// use podium_cache_tower::policy::Audience;
///
/// let operators = Audience::trusted(|parts| parts.headers.contains_key("x-operator"));
/// let (plain, _) = http::Request::get("/x").body(()).unwrap().into_parts();
/// let (operator, _) = http::Request::get("/x").header("x-operator", "1").body(()).unwrap().into_parts();
/// assert!(!operators.includes(&plain));
/// assert!(operators.includes(&operator));
/// assert!(!Audience::Nobody.includes(&operator));
/// assert!(Audience::Everyone.includes(&plain));
/// ```
#[derive(Clone, Default)]
pub enum Audience {
    /// No client.
    #[default]
    Nobody,
    /// The clients whose requests the function accepts. Accept only what the client cannot
    /// choose by itself (a verified credential, a peer address): a header anyone can send
    /// makes everyone trusted.
    Trusted(TrustFn),
    /// Every client.
    Everyone,
}

impl Audience {
    /// The clients whose requests `trust` accepts.
    pub fn trusted<F>(trust: F) -> Self
    where
        // The `Fn` bound (not just `Trust`) lets closures infer their argument's type.
        F: Fn(&Parts) -> bool + Send + Sync + 'static,
    {
        Self::Trusted(Arc::new(trust))
    }

    /// Whether the request with `parts` is one of this audience's.
    pub fn includes(&self, parts: &Parts) -> bool {
        match self {
            Self::Nobody => false,
            Self::Trusted(trust) => trust.trusts(parts),
            Self::Everyone => true,
        }
    }
}

impl fmt::Debug for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Nobody => "Nobody",
            Self::Trusted(_) => "Trusted(..)",
            Self::Everyone => "Everyone",
        })
    }
}

/// Names the principal a private request belongs to, or `None` when it has none (then the
/// request bypasses the cache).
pub type PrincipalFn = Arc<dyn Principal>;

/// The method a key names: `HEAD` counts as `GET` (a `HEAD` is answered from the `GET` entry).
fn key_method(parts: &Parts) -> &str {
    if parts.method == Method::HEAD {
        "GET"
    } else {
        parts.method.as_str()
    }
}

/// The path as a key names it: percent-encoded unreserved characters decoded and the hex digits
/// of every other escape upper-cased (RFC 3986 §6.2.2.1-2), so `/users/%72ec1` and
/// `/users/rec1` (one resource, as the handler sees it) share one entry, while an escape that
/// changes what the handler sees (`%2F`, `%3F`) stays apart.
///
/// ```
/// use podium_cache_tower::policy::normalized_path;
/// assert_eq!(normalized_path("/users/%72ec%41b"), "/users/recAb");
/// assert_eq!(normalized_path("/a%2fb%3F"), "/a%2Fb%3F");
/// assert_eq!(normalized_path("/plain"), "/plain");
/// ```
pub fn normalized_path(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains('%') {
        return std::borrow::Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        let escape = (byte == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok().map(|value| (hex, value)));
        match escape {
            Some((_, value)) if value.is_ascii_alphanumeric() || b"-._~".contains(&value) => {
                out.push(char::from(value));
                i += 3;
            }
            Some((hex, _)) => {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
                i += 3;
            }
            None => {
                // `path` is a valid `&str`, and '%' is ASCII: copy the whole character.
                let len = path[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&path[i..i + len]);
                i += len;
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The default request key: the method (`HEAD` counts as `GET`), the path and the query with
/// its `&`-separated pairs sorted, so `?b=2&a=1` and `?a=1&b=2` share an entry.
///
/// ```
/// let (parts, _) = http::Request::head("/a?z&y=1").body(()).unwrap().into_parts();
/// assert_eq!(podium_cache_tower::policy::default_request_key(&parts), "GET /a?y=1&z");
/// ```
pub fn default_request_key(parts: &Parts) -> String {
    let method = key_method(parts);
    let path = normalized_path(parts.uri.path());
    match parts.uri.query() {
        Some(query) if !query.is_empty() => {
            let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
            pairs.sort_unstable();
            format!("{method} {path}?{}", pairs.join("&"))
        }
        _ => format!("{method} {path}"),
    }
}

/// The request key of a route with a query allow-list: like [`default_request_key`], but only
/// the `allowed` parameters enter it. Names and values are percent-decoded before they are
/// compared and re-encoded in one canonical form, so `?pa%67e=2` is `?page=2` (as the handler
/// reads it) and the order of different parameters does not matter; repeated values of one
/// parameter keep their order.
///
/// ```
/// let (parts, _) = http::Request::get("/events?utm_source=x&sort=name&pa%67e=2")
///     .body(())
///     .unwrap()
///     .into_parts();
/// assert_eq!(
///     podium_cache_tower::policy::allowed_request_key(&parts, &["page", "sort"]),
///     "GET /events?page=2&sort=name"
/// );
/// ```
pub fn allowed_request_key(parts: &Parts, allowed: &[impl AsRef<str>]) -> String {
    let method = key_method(parts);
    let path = normalized_path(parts.uri.path());
    let mut pairs = allowed_pairs(parts, allowed);
    if pairs.is_empty() {
        return format!("{method} {path}");
    }
    // Stable: repeated values of one name keep the order the handler sees.
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{method} {path}?{query}")
}

/// The decoded query pairs of `parts` whose names are `allowed`.
fn allowed_pairs(parts: &Parts, allowed: &[impl AsRef<str>]) -> Vec<(String, String)> {
    let Some(query) = parts.uri.query() else {
        return Vec::new();
    };
    form_urlencoded::parse(query.as_bytes())
        .filter(|(name, _)| allowed.iter().any(|a| a.as_ref() == name.as_ref()))
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// The route a request matched: axum's `MatchedPath` (`/events/{id}`) when the layer runs
/// inside a `Router` (feature `axum`), else the request's path.
pub(crate) fn route_of(parts: &Parts) -> &str {
    #[cfg(feature = "axum")]
    if let Some(matched) = parts.extensions.get::<MatchedPath>() {
        return matched.as_str();
    }
    parts.uri.path()
}

/// The group whose variants are capped: the method (`HEAD` counts as `GET`) and the path.
pub(crate) fn variant_group(parts: &Parts) -> String {
    let method = key_method(parts);
    format!("{method} {}", normalized_path(parts.uri.path()))
}

/// The group whose stored "not found" answers are capped: the method and the route (axum's
/// matched route, else the path), so random ids under one route share one bound.
pub(crate) fn not_found_group(parts: &Parts) -> String {
    let method = key_method(parts);
    format!("{method} {} not-found", route_of(parts))
}

/// The parsed `Cache-Control` directives this layer acts on.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("cache-control", "max-age=60, stale-while-revalidate=30".parse().unwrap());
/// let cc = podium_cache_tower::policy::CacheControl::parse(&headers);
/// assert_eq!((cc.max_age, cc.stale_while_revalidate), (Some(60), Some(30)));
/// assert!(!cc.no_store);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (also set by a request's `Pragma: no-cache` when it has no `Cache-Control`).
    pub no_cache: bool,
    /// `private`.
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate` or `proxy-revalidate`.
    pub must_revalidate: bool,
    /// `max-age=N` (seconds).
    pub max_age: Option<u64>,
    /// `s-maxage=N` (seconds).
    pub s_maxage: Option<u64>,
    /// `stale-while-revalidate=N` (seconds).
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error=N` (seconds, RFC 5861 §4).
    pub stale_if_error: Option<u64>,
    /// A request's `max-stale[=N]` (seconds; `u64::MAX` when it names no limit).
    pub max_stale: Option<u64>,
    /// A request's `min-fresh=N` (seconds).
    pub min_fresh: Option<u64>,
    /// A request's `only-if-cached`.
    pub only_if_cached: bool,
    /// `must-understand` (RFC 9111 §5.2.2.3).
    pub must_understand: bool,
    /// The fields a qualified `no-cache="…"` names (lower-cased): never sent from the
    /// cache without validation (RFC 9111 §5.2.2.4), so the layer stores the response
    /// without them.
    pub no_cache_fields: Vec<String>,
    /// The fields a qualified `private="…"` names (lower-cased): a shared cache must not
    /// store them (RFC 9111 §5.2.2.7), and may store the rest.
    pub private_fields: Vec<String>,
}

impl CacheControl {
    /// Parses every `Cache-Control` field of `headers` (directive names are case-insensitive;
    /// unknown directives are ignored; a malformed number is treated as 0, the safe reading).
    pub fn parse(headers: &HeaderMap) -> Self {
        Self::parse_field(headers, &CACHE_CONTROL)
    }

    /// Parses every `name` field of `headers` with the syntax of `Cache-Control` (as targeted
    /// fields such as `CDN-Cache-Control` have, RFC 9213 §2.1).
    ///
    /// Directives are split on commas outside quoted strings (RFC 9110 §5.6.4), so a quoted
    /// argument never yields a directive of its own. A directive given twice keeps its first
    /// value (RFC 9111 §4.2.1). An argument with whitespace around its `=` is not the
    /// directive's syntax and is ignored (RFC 9111 §5.2). The qualified forms of `no-cache`
    /// and `private` name fields the layer stores without (§5.2.2.4, §5.2.2.7).
    ///
    /// ```
    /// let mut headers = http::HeaderMap::new();
    /// headers.append("cache-control", r#"no-cache="a, b", max-age=60"#.parse().unwrap());
    /// headers.append("cache-control", "max-age=1".parse().unwrap());
    /// let cc = podium_cache_tower::policy::CacheControl::parse(&headers);
    /// assert_eq!(cc.max_age, Some(60), "the first occurrence wins");
    /// assert!(!cc.no_cache, "the qualified form does not mean no-cache for the whole response");
    /// assert_eq!(cc.no_cache_fields, ["a", "b"]);
    /// ```
    pub fn parse_field(headers: &HeaderMap, name: &HeaderName) -> Self {
        let mut cc = Self::default();
        for value in headers.get_all(name) {
            let Ok(text) = value.to_str() else {
                // Unreadable directives: be conservative.
                cc.no_store = true;
                continue;
            };
            for directive in split_list(text) {
                cc.apply(directive);
            }
        }
        cc
    }

    /// Applies one directive (`name` or `name=argument`).
    fn apply(&mut self, directive: &str) {
        let (name, arg) = match directive.split_once('=') {
            Some((n, a)) => {
                if n.ends_with(char::is_whitespace) || a.starts_with(char::is_whitespace) {
                    // `max-age =60`, `max-age= 60`: not the directive's syntax.
                    return;
                }
                (n, Some(unquote(a)))
            }
            None => (directive, None),
        };
        // RFC 9111 §1.2.2: a delta-seconds too large to hold is the largest value; anything
        // else that is not digits is 0, the safe reading.
        let seconds = |a: Option<&str>| {
            a.map_or(0, |a| match a.parse::<u64>() {
                Ok(n) => n,
                Err(_) if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) => u64::MAX / 1000,
                Err(_) => 0,
            })
        };
        // The first occurrence of a directive with a value is the one used (RFC 9111 §4.2.1).
        let first = |slot: &mut Option<u64>, value: u64| {
            if slot.is_none() {
                *slot = Some(value);
            }
        };
        match name.to_ascii_lowercase().as_str() {
            "no-store" => self.no_store = true,
            "no-cache" => match arg {
                Some(fields) if !fields.trim().is_empty() => {
                    self.no_cache_fields.extend(field_names(fields));
                }
                _ => self.no_cache = true,
            },
            "private" => match arg {
                Some(fields) if !fields.trim().is_empty() => {
                    self.private_fields.extend(field_names(fields));
                }
                _ => self.private = true,
            },
            "public" => self.public = true,
            "must-revalidate" | "proxy-revalidate" => self.must_revalidate = true,
            "max-age" => first(&mut self.max_age, seconds(arg)),
            "s-maxage" => first(&mut self.s_maxage, seconds(arg)),
            "stale-while-revalidate" => first(&mut self.stale_while_revalidate, seconds(arg)),
            "stale-if-error" => first(&mut self.stale_if_error, seconds(arg)),
            "max-stale" => first(
                &mut self.max_stale,
                arg.map_or(u64::MAX, |a| a.parse().unwrap_or(0)),
            ),
            "min-fresh" => first(&mut self.min_fresh, seconds(arg)),
            "only-if-cached" => self.only_if_cached = true,
            "must-understand" => self.must_understand = true,
            _ => {}
        }
    }

    /// The freshness lifetime a shared cache uses: `s-maxage`, else `max-age`.
    pub fn shared_max_age(&self) -> Option<u64> {
        self.s_maxage.or(self.max_age)
    }

    /// Whether a field holds only well-formed directives (a targeted field with anything else
    /// is invalid and ignored, RFC 9213 §2.1).
    fn is_valid_field(headers: &HeaderMap, name: &HeaderName) -> bool {
        let token = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        let mut any = false;
        for value in headers.get_all(name) {
            let Ok(text) = value.to_str() else {
                return false;
            };
            for directive in text.split(',').map(str::trim) {
                let ok = match directive.split_once('=') {
                    Some((n, a)) => token(n.trim()) && !a.trim().is_empty(),
                    None => token(directive),
                };
                if !ok {
                    return false;
                }
                any = true;
            }
        }
        any
    }
}

/// The members of a comma-separated list, split on commas outside quoted strings (RFC 9110
/// §5.6.1, §5.6.4), trimmed, empty ones dropped.
pub(crate) fn split_list(text: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, b) in text.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty())
}

/// A directive argument without its quotes (a quoted-string, RFC 9110 §5.6.4; both forms are
/// accepted, RFC 9111 §5.2).
fn unquote(arg: &str) -> &str {
    arg.strip_prefix('"')
        .and_then(|a| a.strip_suffix('"'))
        .unwrap_or(arg)
}

/// The lower-cased field names of a qualified directive's argument.
fn field_names(arg: &str) -> impl Iterator<Item = String> + '_ {
    split_list(arg).map(str::to_ascii_lowercase)
}

/// Why a request bypasses the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BypassReason {
    /// Not `GET` or `HEAD`.
    Method,
    /// The request said `Cache-Control: no-store`.
    RequestNoStore,
    /// The request carries credentials (`Authorization` or a configured session cookie) and
    /// per-principal keys are off (or named no principal).
    Private,
    /// The key function returned `None`.
    NoKey,
}

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
    /// It sets a cookie.
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

/// What the layer does with one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Straight to the service, nothing stored.
    Bypass(BypassReason),
    /// Look the key up; on a miss ask the service (coalesced) and store the answer.
    Lookup {
        key: String,
        /// The request's own directives (when they are honoured for its client; empty
        /// otherwise): `no-cache` and `max-age=0` make the layer validate the entry with the
        /// service, `max-age`, `min-fresh`, `max-stale`, `only-if-cached` choose which entry
        /// may answer.
        request: CacheControl,
        /// The request carries `Authorization` and is looked up under the shared key: its
        /// answer is stored only as RFC 9111 §3.5 allows.
        authorized: bool,
    },
}

/// The layer's configuration (set through [`CacheLayerBuilder`](crate::CacheLayerBuilder)).
#[derive(Clone)]
pub(crate) struct Policy {
    pub ttl: Duration,
    pub default_swr: Duration,
    pub max_swr: Duration,
    pub max_body: usize,
    pub statuses: Vec<StatusCode>,
    pub private_cookies: Vec<String>,
    pub principal: Option<PrincipalFn>,
    pub key_fn: Option<KeyFn>,
    /// Per route (see [`route_of`]): the query parameters that enter the key.
    pub query_allow: HashMap<String, Arc<[String]>>,
    /// The most variants one path stores (see [`variant_group`]).
    pub max_variants: usize,
    /// The most "not found" answers (404, 410) one route stores (see [`not_found_group`]).
    pub max_not_found: usize,
    pub coalesce_timeout: Duration,
    pub tag_header: Option<HeaderName>,
    pub status_headers: bool,
    /// Who gets the detailed status headers (see [`crate::status`]).
    pub detailed_status: Audience,
    /// Whose request `Cache-Control` / `Pragma` is honoured.
    pub request_directives: Audience,
    pub cache_name: String,
    /// The standards mode ([`CacheLayerBuilder::freshness_from_headers`](crate::CacheLayerBuilder::freshness_from_headers)):
    /// freshness only from the response's headers or RFC 9111 heuristics.
    pub standards: bool,
    /// Targeted cache-control fields read before `Cache-Control`, first first (RFC 9213).
    pub targeted: Vec<HeaderName>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("ttl", &self.ttl)
            .field("default_swr", &self.default_swr)
            .field("max_swr", &self.max_swr)
            .field("max_body", &self.max_body)
            .field("statuses", &self.statuses)
            .field("private_cookies", &self.private_cookies)
            .field("per_principal", &self.principal.is_some())
            .field("custom_key", &self.key_fn.is_some())
            .field("query_allow", &self.query_allow)
            .field("max_variants", &self.max_variants)
            .field("max_not_found", &self.max_not_found)
            .field("coalesce_timeout", &self.coalesce_timeout)
            .field("tag_header", &self.tag_header)
            .field("status_headers", &self.status_headers)
            .field("detailed_status", &self.detailed_status)
            .field("request_directives", &self.request_directives)
            .field("cache_name", &self.cache_name)
            .field("standards", &self.standards)
            .field("targeted", &self.targeted)
            .finish()
    }
}

/// What separates a request key from the principal it is kept for.
const PRINCIPAL_MARK: &str = "\nprincipal:";

/// The shared request key a per-principal key was made from (`None` for a shared key): an
/// unsafe request to the URI invalidates every principal's entry through it.
pub(crate) fn shared_key_of(key: &str) -> Option<&str> {
    key.split_once(PRINCIPAL_MARK).map(|(shared, _)| shared)
}

/// The default cacheable statuses.
pub const DEFAULT_STATUSES: [u16; 6] = [200, 203, 204, 301, 404, 410];
/// The default most variants (query strings, `Vary` values) one path stores.
pub const DEFAULT_MAX_VARIANTS: usize = 100;

/// How many "not found" answers one route stores by default.
pub const DEFAULT_MAX_NOT_FOUND: usize = 1000;
/// `CDN-Cache-Control` (RFC 9213 §3), read before `Cache-Control` by default.
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// In the standards mode, the longest an entry is kept in the store past its own freshness
/// rules (a response may ask for a year; the store may drop it sooner, RFC 9111 §3).
pub const STANDARDS_MAX_KEEP: Duration = Duration::from_secs(24 * 3600);

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

/// The default largest body stored: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

impl Default for Policy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            default_swr: Duration::ZERO,
            max_swr: Duration::from_secs(3600),
            max_body: DEFAULT_MAX_BODY,
            statuses: DEFAULT_STATUSES
                .iter()
                .filter_map(|s| StatusCode::from_u16(*s).ok())
                .collect(),
            private_cookies: Vec::new(),
            principal: None,
            key_fn: None,
            query_allow: HashMap::new(),
            max_variants: DEFAULT_MAX_VARIANTS,
            max_not_found: DEFAULT_MAX_NOT_FOUND,
            coalesce_timeout: Duration::from_secs(5),
            tag_header: Some(HeaderName::from_static("cache-tag")),
            status_headers: true,
            detailed_status: Audience::Nobody,
            request_directives: Audience::Nobody,
            cache_name: "podium".to_owned(),
            standards: false,
            targeted: vec![CDN_CACHE_CONTROL],
        }
    }
}

impl Policy {
    /// The longest any entry (and so any tag set) lives in the store.
    pub fn max_store_ttl(&self) -> Duration {
        if self.standards {
            STANDARDS_MAX_KEEP + self.max_swr
        } else {
            self.ttl + self.max_swr
        }
    }

    /// The request key of `parts` (before `Vary` and principal), or `None` when the key
    /// function leaves it uncached.
    pub fn key_of(&self, parts: &Parts) -> Option<String> {
        match &self.key_fn {
            Some(f) => f.key(parts),
            None => Some(match self.query_allow.get(route_of(parts)) {
                Some(allowed) => allowed_request_key(parts, allowed),
                None => default_request_key(parts),
            }),
        }
    }

    /// Decides what to do with a request.
    pub fn plan(&self, parts: &Parts) -> Plan {
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return Plan::Bypass(BypassReason::Method);
        }
        let mut cc = self.request_directives(parts);
        if cc.no_store {
            return Plan::Bypass(BypassReason::RequestNoStore);
        }
        let Some(mut key) = self.key_of(parts) else {
            return Plan::Bypass(BypassReason::NoKey);
        };
        let mut authorized = false;
        if self.is_private(&parts.headers) {
            let principal = self.principal.as_ref().and_then(|f| f.principal(parts));
            match principal {
                Some(principal) => {
                    key.push_str(PRINCIPAL_MARK);
                    key.push_str(&hex::encode(&Sha256::digest(principal.as_bytes())[..16]));
                }
                // RFC 9111 §3.5: a shared cache may answer a request with `Authorization`, and
                // store the answer when it says `public`, `s-maxage` or `must-revalidate`.
                None if self.standards && !self.has_private_cookie(&parts.headers) => {
                    authorized = true;
                }
                None => return Plan::Bypass(BypassReason::Private),
            }
        }
        if cc.max_age == Some(0) {
            cc.no_cache = true;
        }
        Plan::Lookup {
            key,
            request: cc,
            authorized,
        }
    }

    /// The request's `Cache-Control` (or, without one, `Pragma: no-cache`) when this client's
    /// directives are honoured; none otherwise.
    fn request_directives(&self, parts: &Parts) -> CacheControl {
        if !self.request_directives.includes(parts) {
            return CacheControl::default();
        }
        let mut cc = CacheControl::parse(&parts.headers);
        if !parts.headers.contains_key(CACHE_CONTROL) {
            cc.no_cache = parts
                .headers
                .get_all(PRAGMA)
                .iter()
                .any(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"));
        }
        cc
    }

    /// Whether the request's key holds query parameters, so that it is one variant of its path
    /// (with an allow-list, only listed parameters count).
    pub fn keys_on_query(&self, parts: &Parts) -> bool {
        let has_pairs = |q: &str| q.split('&').any(|pair| !pair.is_empty());
        match (&self.key_fn, self.query_allow.get(route_of(parts))) {
            (None, Some(allowed)) => !allowed_pairs(parts, allowed).is_empty(),
            _ => parts.uri.query().is_some_and(has_pairs),
        }
    }

    /// Whether a request carries credentials: `Authorization` or a configured session cookie.
    pub fn is_private(&self, headers: &HeaderMap) -> bool {
        headers.contains_key(AUTHORIZATION) || self.has_private_cookie(headers)
    }

    fn has_private_cookie(&self, headers: &HeaderMap) -> bool {
        !self.private_cookies.is_empty()
            && cookies(headers).any(|(name, _)| self.private_cookies.iter().any(|c| c == name))
    }

    /// The directives this cache follows for a response: those of the first targeted field
    /// with a valid value (RFC 9213 §2.2), else `Cache-Control`. The flag tells whether a
    /// targeted field was used (then `Expires` is ignored too).
    pub fn response_directives(&self, headers: &HeaderMap) -> (CacheControl, bool) {
        for name in &self.targeted {
            if headers.contains_key(name) && CacheControl::is_valid_field(headers, name) {
                return (CacheControl::parse_field(headers, name), true);
            }
        }
        (CacheControl::parse(headers), false)
    }

    /// `headers` as the layer stores them: without the fields a cache must not store
    /// ([`unstored_fields`]).
    pub fn stored_headers(&self, mut headers: HeaderMap) -> HeaderMap {
        let (cc, _) = self.response_directives(&headers);
        for name in unstored_fields(&headers, &cc) {
            headers.remove(name.as_str());
        }
        headers
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
        if headers.contains_key(SET_COOKIE) {
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
        // A response the origin can validate is kept past its freshness, to be validated.
        let keep = if validator {
            self.max_swr
        } else {
            Duration::ZERO
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

/// Parses an HTTP-date in any of its three forms (IMF-fixdate, RFC 850, asctime; RFC 9110
/// §5.6.7), in any letter case; `None` when it is not one.
///
/// ```
/// use podium_cache_tower::policy::parse_http_date;
/// let a = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
/// assert!(a.is_some());
/// assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), a);
/// assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), a);
/// assert_eq!(parse_http_date("sun, 06 NOV 1994 08:49:37 gmt"), a);
/// assert_eq!(parse_http_date("yesterday"), None);
/// ```
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    if let Ok(date) = httpdate::parse_http_date(text) {
        return Some(date);
    }
    // Day and month names are case-insensitive (RFC 9110 §5.6.7): recase them and "GMT".
    let mut out = String::with_capacity(text.len());
    let mut word_start = true;
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            out.push(if word_start {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
            word_start = false;
        } else {
            out.push(c);
            word_start = true;
        }
    }
    let out = out.replace("Gmt", "GMT");
    httpdate::parse_http_date(&out).ok()
}

fn parse_date(value: &http::HeaderValue) -> Option<SystemTime> {
    value.to_str().ok().and_then(parse_http_date)
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

/// The `Vary` of a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Vary {
    /// No `Vary` (or an empty one).
    None,
    /// `Vary: *`: never served from a cache.
    All,
    /// The (lower-cased, sorted, deduplicated) request header names.
    Names(Vec<String>),
}

/// Reads the `Vary` fields of a response.
pub(crate) fn vary(headers: &HeaderMap) -> Vary {
    let mut names = Vec::new();
    for value in headers.get_all(VARY) {
        let Ok(text) = value.to_str() else {
            return Vary::All;
        };
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return Vary::All;
            }
            names.push(name.to_ascii_lowercase());
        }
    }
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        Vary::None
    } else {
        Vary::Names(names)
    }
}

/// The key of the variant of `key` that `request` selects among responses varying on `names`.
pub(crate) fn variant_key(key: &str, names: &[String], request: &HeaderMap) -> String {
    let mut out = String::with_capacity(key.len() + 32 * names.len());
    out.push_str(key);
    for name in names {
        out.push_str("\nvary:");
        out.push_str(name);
        out.push('=');
        out.push_str(&vary_value(request, name));
    }
    out
}

/// The value a request has for a header a response varies on, normalised as RFC 9111 §4.1
/// allows: its field lines combined, list members trimmed and separated by `", "`, inner runs
/// of whitespace collapsed, and lower-cased for the fields whose values are case-insensitive
/// (`Accept*`). An absent header is `\0`, apart from an empty one.
pub(crate) fn vary_value(request: &HeaderMap, name: &str) -> String {
    let mut values = request.get_all(name).iter().peekable();
    if values.peek().is_none() {
        return "\0".to_owned();
    }
    let fold = name.starts_with("accept");
    let mut members: Vec<String> = Vec::new();
    for value in values {
        // Non-UTF-8 values are written in hex so distinct values never share a key.
        let text = match value.to_str() {
            Ok(text) => text.to_owned(),
            Err(_) => {
                members.push(hex::encode(value.as_bytes()));
                continue;
            }
        };
        for member in text.split(',') {
            let member = member.split_whitespace().collect::<Vec<_>>().join(" ");
            let member = member.replace(" ;", ";").replace("; ", ";");
            if member.is_empty() {
                continue;
            }
            members.push(if fold {
                member.to_ascii_lowercase()
            } else {
                member
            });
        }
    }
    members.join(", ")
}

/// The `name=value` pairs of every `Cookie` field.
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            Some((name.trim(), value.trim()))
        })
}

/// The default principal of a private request: a digest of its `Authorization` value and of
/// the values of the configured session cookies.
pub(crate) fn default_principal(private_cookies: &[String], parts: &Parts) -> Option<String> {
    let mut hasher = Sha256::new();
    let mut any = false;
    if let Some(auth) = parts.headers.get(AUTHORIZATION) {
        hasher.update(b"authorization\0");
        hasher.update(auth.as_bytes());
        any = true;
    }
    let mut named: Vec<(&str, &str)> = cookies(&parts.headers)
        .filter(|(name, _)| private_cookies.iter().any(|c| c == name))
        .collect();
    named.sort_unstable();
    for (name, value) in named {
        hasher.update(b"\0cookie\0");
        hasher.update(name.as_bytes());
        hasher.update(b"=");
        hasher.update(value.as_bytes());
        any = true;
    }
    any.then(|| hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(builder: http::request::Builder) -> Parts {
        match builder.body(()) {
            Ok(req) => req.into_parts().0,
            Err(err) => panic!("bad test request: {err}"),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn query_order_does_not_change_the_key_but_values_do() {
        let a = default_request_key(&parts(http::Request::get("/x?b=2&a=1")));
        let b = default_request_key(&parts(http::Request::get("/x?a=1&b=2")));
        let c = default_request_key(&parts(http::Request::get("/x?a=1&b=3")));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn an_allow_list_decodes_names_and_keeps_repeated_values_in_order() {
        let key = |uri: &str| allowed_request_key(&parts(http::Request::get(uri)), &["tag", "q"]);
        assert_eq!(key("/s?tag=b&x=1&tag=a&q=a+b"), "GET /s?q=a+b&tag=b&tag=a");
        assert_eq!(key("/s?%74ag=b&tag=a&q=a%20b"), key("/s?q=a+b&tag=b&tag=a"));
        assert_ne!(key("/s?tag=a&tag=b"), key("/s?tag=b&tag=a"));
        assert_eq!(key("/s?x=1&y"), "GET /s");

        let mut policy = Policy::default();
        policy
            .query_allow
            .insert("/s".into(), vec!["q".to_string()].into());
        assert!(!policy.keys_on_query(&parts(http::Request::get("/s?utm=1"))));
        assert!(policy.keys_on_query(&parts(http::Request::get("/s?q=1"))));
        assert!(policy.keys_on_query(&parts(http::Request::get("/t?utm=1"))));
        assert!(!policy.keys_on_query(&parts(http::Request::get("/t?&"))));
        let key_of = |p: Plan| match p {
            Plan::Lookup { key, .. } => key,
            other => panic!("expected a lookup, got {other:?}"),
        };
        assert_eq!(
            key_of(policy.plan(&parts(http::Request::get("/s?utm=1&q=z")))),
            "GET /s?q=z"
        );
    }

    #[test]
    fn only_get_and_head_are_looked_up() {
        let policy = Policy::default();
        assert_eq!(
            policy.plan(&parts(http::Request::post("/x"))),
            Plan::Bypass(BypassReason::Method)
        );
        assert!(matches!(
            policy.plan(&parts(http::Request::head("/x"))),
            Plan::Lookup { .. }
        ));
    }

    #[test]
    fn request_directives_are_ignored_unless_honoured_for_the_client() {
        let directives = [
            ("cache-control", "no-store"),
            ("cache-control", "no-cache"),
            ("cache-control", "max-age=0"),
            ("pragma", "no-cache"),
        ];
        let plan = |policy: &Policy, (name, value): (&str, &str), trusted: bool| {
            let mut request = http::Request::get("/x").header(name, value);
            if trusted {
                request = request.header("x-operator", "1");
            }
            policy.plan(&parts(request))
        };
        let lookup = Plan::Lookup {
            key: "GET /x".into(),
            request: CacheControl::default(),
            authorized: false,
        };
        let ignoring = Policy::default();
        let operators = Policy {
            request_directives: Audience::trusted(|p| p.headers.contains_key("x-operator")),
            ..Policy::default()
        };
        for directive in directives {
            assert_eq!(plan(&ignoring, directive, true), lookup, "{directive:?}");
            assert_eq!(plan(&operators, directive, false), lookup, "{directive:?}");
            assert_ne!(plan(&operators, directive, true), lookup, "{directive:?}");
        }
        let stale = http::Request::get("/x").header("cache-control", "max-age=5");
        assert_eq!(ignoring.plan(&parts(stale)), lookup);
    }

    #[test]
    fn request_directives_choose_bypass_or_revalidation() {
        let policy = Policy {
            request_directives: Audience::Everyone,
            ..Policy::default()
        };
        let no_store = http::Request::get("/x").header("cache-control", "no-store");
        assert_eq!(
            policy.plan(&parts(no_store)),
            Plan::Bypass(BypassReason::RequestNoStore)
        );
        let no_cache = http::Request::get("/x").header("cache-control", "no-cache");
        assert!(matches!(
            policy.plan(&parts(no_cache)),
            Plan::Lookup { request, .. } if request.no_cache
        ));
        let pragma = http::Request::get("/x").header("pragma", "no-cache");
        assert!(matches!(
            policy.plan(&parts(pragma)),
            Plan::Lookup { request, .. } if request.no_cache
        ));
    }

    #[test]
    fn credentials_bypass_unless_principals_are_keyed() {
        let mut policy = Policy {
            private_cookies: vec!["session".into()],
            ..Policy::default()
        };
        let auth = || http::Request::get("/x").header("authorization", "Bearer a");
        let cookie = || http::Request::get("/x").header("cookie", "theme=dark; session=s1");
        let harmless = http::Request::get("/x").header("cookie", "theme=dark");
        assert_eq!(
            policy.plan(&parts(auth())),
            Plan::Bypass(BypassReason::Private)
        );
        assert_eq!(
            policy.plan(&parts(cookie())),
            Plan::Bypass(BypassReason::Private)
        );
        assert!(matches!(policy.plan(&parts(harmless)), Plan::Lookup { .. }));

        let cookies = policy.private_cookies.clone();
        policy.principal = Some(Arc::new(move |p: &Parts| default_principal(&cookies, p)));
        let key_of = |p: Plan| match p {
            Plan::Lookup { key, .. } => key,
            other => panic!("expected a lookup, got {other:?}"),
        };
        let a = key_of(policy.plan(&parts(auth())));
        let b = key_of(policy.plan(&parts(
            http::Request::get("/x").header("authorization", "Bearer b"),
        )));
        assert_ne!(a, b, "two principals must never share an entry");
        assert!(!a.contains("Bearer"), "credentials must not appear in keys");
    }

    #[test]
    fn response_rules_refuse_what_a_shared_cache_must_not_keep() {
        let policy = Policy::default();
        let ok = StatusCode::OK;
        for (pairs, reason) in [
            (vec![("cache-control", "no-store")], NotStored::NoStore),
            (
                vec![("cache-control", "private, max-age=60")],
                NotStored::Private,
            ),
            (vec![("cache-control", "no-cache")], NotStored::NoCache),
            (vec![("set-cookie", "a=b")], NotStored::SetCookie),
            (vec![("vary", "accept, *")], NotStored::VaryAll),
            (vec![("cache-control", "max-age=0")], NotStored::Expired),
            (
                vec![("expires", "Thu, 01 Jan 1970 00:00:00 GMT")],
                NotStored::Expired,
            ),
        ] {
            assert_eq!(
                policy.storability(ok, &headers(&pairs), false),
                Err(reason),
                "{pairs:?}"
            );
        }
        assert_eq!(
            policy.storability(StatusCode::INTERNAL_SERVER_ERROR, &HeaderMap::new(), false),
            Err(NotStored::Status)
        );
    }

    #[test]
    fn max_age_and_s_maxage_only_lower_the_ttl() {
        let policy = Policy {
            ttl: Duration::from_secs(100),
            ..Policy::default()
        };
        let ttl = |pairs: &[(&'static str, &'static str)]| {
            policy
                .storability(StatusCode::OK, &headers(pairs), false)
                .map(|f| f.ttl.as_secs())
        };
        assert_eq!(ttl(&[]), Ok(100));
        assert_eq!(ttl(&[("cache-control", "max-age=10")]), Ok(10));
        assert_eq!(ttl(&[("cache-control", "max-age=1000")]), Ok(100));
        assert_eq!(ttl(&[("cache-control", "max-age=10, s-maxage=20")]), Ok(20));
    }

    #[test]
    fn stale_while_revalidate_is_capped_and_must_revalidate_disables_it() {
        let policy = Policy {
            max_swr: Duration::from_secs(50),
            ..Policy::default()
        };
        let swr = |value: &'static str| {
            policy
                .storability(StatusCode::OK, &headers(&[("cache-control", value)]), false)
                .map(|f| f.stale_while_revalidate.as_secs())
        };
        assert_eq!(swr("max-age=5, stale-while-revalidate=20"), Ok(20));
        assert_eq!(swr("max-age=5, stale-while-revalidate=500"), Ok(50));
        assert_eq!(
            swr("max-age=5, stale-while-revalidate=20, must-revalidate"),
            Ok(0)
        );
    }

    #[test]
    fn variants_differ_by_the_varied_header_only() {
        let names = match vary(&headers(&[("vary", "Accept-Language, accept")])) {
            Vary::Names(n) => n,
            other => panic!("expected names, got {other:?}"),
        };
        assert_eq!(names, vec!["accept".to_string(), "accept-language".into()]);
        let en = variant_key("k", &names, &headers(&[("accept-language", "en")]));
        let fr = variant_key("k", &names, &headers(&[("accept-language", "fr")]));
        let en_again = variant_key(
            "k",
            &names,
            &headers(&[("accept-language", "en"), ("x-other", "1")]),
        );
        assert_ne!(en, fr);
        assert_eq!(en, en_again);
    }
}
