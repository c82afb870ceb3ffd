//! Request keys: the default key, query allow-lists, per-principal keys, and the plan for one
//! request (look up or bypass).

#[cfg(feature = "axum")]
use axum::extract::MatchedPath;
use http::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, PRAGMA};
use http::request::Parts;
use http::{HeaderMap, Method};
use sha2::{Digest, Sha256};

use super::config::Policy;
use super::directives::CacheControl;

/// The method a key names: `HEAD` counts as `GET` (a `HEAD` is answered from the `GET` entry).
pub(crate) fn key_method(parts: &Parts) -> &str {
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

/// The app mode's request key: the method (`HEAD` counts as `GET`), the path and the query
/// with its `&`-separated pairs sorted, so `?b=2&a=1` and `?a=1&b=2` share an entry (an app
/// knows its own query parameters; the standards mode uses [`target_uri_key`]).
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
        // The common case, on every request: no formatting machinery.
        _ => {
            let mut key = String::with_capacity(method.len() + 1 + path.len());
            key.push_str(method);
            key.push(' ');
            key.push_str(&path);
            key
        }
    }
}

/// The standards mode's request key: the method (`HEAD` counts as `GET`) and the target URI
/// (RFC 9111 §2, §4): its authority (the request's absolute-form authority, else its `Host`,
/// lower-cased: RFC 9110 §4.2.3), the path (percent-encoding normalised as in
/// [`normalized_path`]) and the query exactly as sent. A cache in front of an origin it does
/// not know keeps responses for different hosts apart, and does not take `?b=2&a=1` for
/// `?a=1&b=2` (the origin may not).
///
/// ```
/// let key = |uri: &str, host: &str| {
///     let (parts, _) = http::Request::get(uri).header("host", host).body(()).unwrap().into_parts();
///     podium_cache_tower::policy::target_uri_key(&parts)
/// };
/// assert_eq!(key("/a?z&y=1", "Example.com"), "GET example.com/a?z&y=1");
/// assert_ne!(key("/a", "one.example"), key("/a", "two.example"));
/// assert_eq!(key("http://Other.example/a", "ignored"), "GET other.example/a");
/// ```
pub fn target_uri_key(parts: &Parts) -> String {
    let method = key_method(parts);
    let authority = request_authority(parts).unwrap_or("");
    let path = normalized_path(parts.uri.path());
    let query = parts.uri.query();
    let mut key = String::with_capacity(
        method.len() + 1 + authority.len() + path.len() + query.map_or(0, |q| q.len() + 1),
    );
    key.push_str(method);
    key.push(' ');
    key.extend(authority.chars().map(|c| c.to_ascii_lowercase()));
    key.push_str(&path);
    if let Some(query) = query {
        key.push('?');
        key.push_str(query);
    }
    key
}

/// The authority a request targets: that of an absolute-form target, else its `Host` (RFC
/// 9112 §3.2.2: a server ignores `Host` when the target has an authority).
pub(crate) fn request_authority(parts: &Parts) -> Option<&str> {
    parts.uri.authority().map(|a| a.as_str()).or_else(|| {
        parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
    })
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
pub(crate) fn allowed_pairs(parts: &Parts, allowed: &[impl AsRef<str>]) -> Vec<(String, String)> {
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

/// What separates a request key from the principal it is kept for.
const PRINCIPAL_MARK: &str = "\nprincipal:";

/// The shared request key a per-principal key was made from (`None` for a shared key): an
/// unsafe request to the URI invalidates every principal's entry through it.
pub(crate) fn shared_key_of(key: &str) -> Option<&str> {
    // The mark starts with a line feed, which no path or query holds: finding the line feeds
    // first (a byte search) is cheaper on every request than searching for the whole mark.
    key.match_indices('\n')
        .find(|(at, _)| key[*at..].starts_with(PRINCIPAL_MARK))
        .map(|(at, _)| &key[..at])
}

/// The `name=value` pairs of every `Cookie` field.
pub(crate) fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
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

impl Policy {
    /// The request key of `parts` (before `Vary` and principal), or `None` when the key
    /// function leaves it uncached.
    pub fn key_of(&self, parts: &Parts) -> Option<String> {
        match &self.key_fn {
            Some(f) => f.key(parts),
            None => Some(match self.query_allow.get(route_of(parts)) {
                Some(allowed) => allowed_request_key(parts, allowed),
                None if self.standards => target_uri_key(parts),
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
    pub(crate) fn request_directives(&self, parts: &Parts) -> CacheControl {
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

    pub(crate) fn has_private_cookie(&self, headers: &HeaderMap) -> bool {
        !self.private_cookies.is_empty()
            && cookies(headers).any(|(name, _)| self.private_cookies.iter().any(|c| c == name))
    }
}
