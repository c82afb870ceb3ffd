//! The layer's configuration and its defaults.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::StatusCode;

use super::hooks::{Audience, KeyFn, PrincipalFn};

/// The layer's configuration (set through [`CacheLayerBuilder`](crate::CacheLayerBuilder)).
#[derive(Clone)]
pub(crate) struct Policy {
    pub ttl: Duration,
    pub default_swr: Duration,
    pub max_swr: Duration,
    /// How long a response without validators is kept past its freshness (for `max-stale`
    /// and a request's `stale-if-error`); `None`: the mode's default
    /// ([`DEFAULT_STANDARDS_KEEP_STALE`] in the standards mode, none in the app mode).
    pub keep_stale: Option<Duration>,
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
            .field("keep_stale", &self.keep_stale)
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

/// In the standards mode, how long a response without validators is kept once stale by
/// default: a request's `max-stale` (RFC 9111 §5.2.1.2) or `stale-if-error` (RFC 5861 §4) may
/// still take it; any other request refetches it.
pub const DEFAULT_STANDARDS_KEEP_STALE: Duration = Duration::from_secs(60);

/// The default largest body stored: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

impl Default for Policy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            default_swr: Duration::ZERO,
            max_swr: Duration::from_secs(3600),
            keep_stale: None,
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
    /// How long a response without validators is kept once stale.
    pub fn keep_stale(&self) -> Duration {
        let default = if self.standards {
            DEFAULT_STANDARDS_KEEP_STALE
        } else {
            Duration::ZERO
        };
        self.keep_stale.unwrap_or(default).min(self.max_swr)
    }

    /// The longest any entry (and so any tag set) lives in the store.
    pub fn max_store_ttl(&self) -> Duration {
        if self.standards {
            STANDARDS_MAX_KEEP + self.max_swr
        } else {
            self.ttl + self.max_swr
        }
    }
}
