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
//!   `Expires`. Never stored: `no-store` (unless with `must-understand` on a status whose
//!   rules the layer implements, RFC 9111 §5.2.2.3), `private`, `Set-Cookie`, `Vary: *`,
//!   `206`, `304`; nor the fields `Connection` names, the proxy authentication fields, and
//!   those a qualified `no-cache="…"` or `private="…"` names (§3.1, §5.2.2.4, §5.2.2.7).
//!   Directives are split outside quoted strings and the first occurrence of one wins (§4.2.1).
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
//!   it; `stale-if-error=N` (RFC 5861, in the response or the request) serves it when the
//!   service answers `5xx` or fails; a `must-revalidate` entry the service cannot validate is
//!   answered `504`. A `200` to a `HEAD` forwarded for a stale entry freshens it (or, with
//!   other validators, invalidates it, §4.3.5).
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

mod config;
mod date;
mod directives;
mod freshness;
mod hooks;
mod key;
mod targeted;
#[cfg(test)]
mod tests;
mod vary;

pub(crate) use config::Policy;
pub use config::{
    CDN_CACHE_CONTROL, DEFAULT_MAX_BODY, DEFAULT_MAX_NOT_FOUND, DEFAULT_MAX_VARIANTS,
    DEFAULT_STANDARDS_KEEP_STALE, DEFAULT_STATUSES, STANDARDS_MAX_KEEP,
};
pub use date::parse_http_date;
pub use directives::CacheControl;
pub(crate) use freshness::initial_age_ms;
pub use freshness::{Freshness, NotStored, HEURISTIC_STATUSES, MAX_HEURISTIC, UNDERSTOOD_STATUSES};
pub use hooks::{Audience, ClientName, KeyFn, Principal, PrincipalFn, RequestKey, Trust, TrustFn};
pub use key::{
    allowed_request_key, default_request_key, normalized_path, target_uri_key, BypassReason,
};
pub(crate) use key::{
    default_principal, not_found_group, request_authority, shared_key_of, variant_group, Plan,
};
pub(crate) use vary::{variant_key, vary, vary_value, Vary};
