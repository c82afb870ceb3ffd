//! [`CacheLayer`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::request::Parts;
use http::StatusCode;
use podium_cache_core::cache::{Cache, Dependents};
use podium_cache_core::key::Keys;
use podium_cache_core::store::Store;
use tower::Layer;

use crate::client::ClientIdentity;
use crate::policy::{default_principal, Audience, ClientName, Policy, Principal, RequestKey};
use crate::purge::LayerKeys;
use crate::service::CacheService;
use crate::state::LayerState;

/// A tower [`Layer`] that caches whole `GET` responses of the service it wraps, in the store
/// of a [`podium_cache_core::Cache`], and purges exactly the responses that read a record when
/// that record changes.
///
/// Build it from the core cache (it uses the cache's store and key prefix, and every change
/// the cache applies purges the responses that read the record):
///
/// ```
/// # fn demo(cache: &podium_cache_core::Cache) {
/// use std::time::Duration;
/// use axum::{routing::get, Router};
/// use podium_cache_tower::CacheLayer;
///
/// let app: Router = Router::new()
///     .route("/events", get(|| async { "[]" }))
///     .layer(
///         CacheLayer::builder(cache)
///             .ttl(Duration::from_secs(600))
///             .stale_while_revalidate(Duration::from_secs(30))
///             .private_cookies(["session"])
///             .build(),
///     );
/// # }
/// ```
#[derive(Clone)]
pub struct CacheLayer {
    state: Arc<LayerState>,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("store", &self.state.store.name())
            .field("policy", &self.state.policy)
            .finish()
    }
}

impl CacheLayer {
    /// A layer with the default configuration (see [`CacheLayerBuilder`]).
    ///
    /// ```
    /// # fn demo(cache: &podium_cache_core::Cache) {
    /// let layer = podium_cache_tower::CacheLayer::new(cache);
    /// # }
    /// ```
    pub fn new(cache: &Cache) -> Self {
        Self::builder(cache).build()
    }

    /// A builder over `cache`: responses are stored in its store under its key prefix, and
    /// purged by every change it (or any cache sharing the store) applies.
    pub fn builder(cache: &Cache) -> CacheLayerBuilder {
        CacheLayerBuilder::over(
            Arc::clone(cache.store()),
            cache.keys().clone(),
            cache.dependents().clone(),
        )
    }

    /// A builder over a store alone, with no [`Cache`] and no record source: caching any
    /// service's responses (key prefix `podium` unless [`prefix`](CacheLayerBuilder::prefix)
    /// says otherwise). Responses are tied to records by the tags handlers give them
    /// ([`CacheTags`](crate::CacheTags) or a `Cache-Tag` header) and purged with
    /// [`CacheLayer::dependents`] (or any [`Dependents`] over the same store and prefix, in
    /// any process).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use podium_cache_core::store::MemoryStore;
    /// use podium_cache_tower::CacheLayer;
    ///
    /// let layer = CacheLayer::with_store(Arc::new(MemoryStore::new(10_000)))
    ///     .prefix("web")
    ///     .build();
    /// // After the record changes elsewhere: drop every response tagged with it.
    /// layer.dependents().purge("events", "recAAAAAAAAAAAAAA").await?;
    /// # Ok(()) }
    /// ```
    pub fn with_store(store: Arc<dyn Store>) -> CacheLayerBuilder {
        let keys = Keys::default();
        CacheLayerBuilder::over(
            Arc::clone(&store),
            keys.clone(),
            Dependents::new(store, keys),
        )
    }

    /// Where this layer's responses are registered against the records they read: purge a
    /// record's responses with [`Dependents::purge`].
    pub fn dependents(&self) -> &Dependents {
        &self.state.dependents
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = CacheService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CacheService::from_state(inner, Arc::clone(&self.state))
    }
}

/// Configures a [`CacheLayer`].
///
/// | setting | default |
/// | --- | --- |
/// | [`freshness_from_headers`](Self::freshness_from_headers) | off: the app mode (a TTL for every cacheable answer) |
/// | [`ttl`](Self::ttl) | 5 minutes (also the most `max-age` / `s-maxage` can ask for; unused in the standards mode) |
/// | [`targeted_cache_control`](Self::targeted_cache_control) | none; `CDN-Cache-Control` is always read first |
/// | [`stale_while_revalidate`](Self::stale_while_revalidate) | 0 (only when the response asks) |
/// | [`max_stale_while_revalidate`](Self::max_stale_while_revalidate) | 1 hour |
/// | [`key_fn`](Self::key_fn) | [`default_request_key`](crate::policy::default_request_key) + `Vary` |
/// | [`query_params`](Self::query_params) | none: every query parameter is part of the key |
/// | [`max_variants`](Self::max_variants) | 100 per path |
/// | [`max_not_found`](Self::max_not_found) | 1000 per route |
/// | [`max_body_size`](Self::max_body_size) | 1 MiB |
/// | [`cacheable_statuses`](Self::cacheable_statuses) | 200, 203, 204, 301, 404, 410 |
/// | [`private_cookies`](Self::private_cookies) | none (`Authorization` is always private) |
/// | [`per_principal`](Self::per_principal) | off: private requests bypass the cache |
/// | [`coalesce_timeout`](Self::coalesce_timeout) | 5 s |
/// | [`tag_header`](Self::tag_header) | `Cache-Tag` |
/// | [`status_headers`](Self::status_headers) | on |
/// | [`detailed_status`](Self::detailed_status) | nobody: `Cache-Status` and `X-Cache` say hit or miss only |
/// | [`request_cache_control`](Self::request_cache_control) | nobody: a request's `Cache-Control` is ignored |
/// | [`cache_name`](Self::cache_name) | `podium` |
/// | [`trusted_client_header`](Self::trusted_client_header) | none: the client is the peer address |
/// | [`client_fn`](Self::client_fn) | none |
///
/// ```
/// # fn demo(cache: &podium_cache_core::Cache) {
/// use std::time::Duration;
/// use http::StatusCode;
/// let layer = podium_cache_tower::CacheLayer::builder(cache)
///     .ttl(Duration::from_secs(3600))
///     .max_body_size(256 * 1024)
///     .cacheable_statuses([StatusCode::OK, StatusCode::NOT_FOUND])
///     .key_fn(|parts| Some(format!("{} {}", parts.method, parts.uri.path())))
///     .build();
/// # }
/// ```
pub struct CacheLayerBuilder {
    store: Arc<dyn Store>,
    keys: Keys,
    dependents: Dependents,
    policy: Policy,
    per_principal: bool,
    client: ClientIdentity,
}

impl fmt::Debug for CacheLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayerBuilder")
            .field("store", &self.store.name())
            .field("prefix", &self.keys.prefix())
            .field("policy", &self.policy)
            .field("per_principal", &self.per_principal)
            .field("client", &self.client)
            .finish()
    }
}

impl CacheLayerBuilder {
    fn over(store: Arc<dyn Store>, keys: Keys, dependents: Dependents) -> Self {
        Self {
            store,
            keys,
            dependents,
            policy: Policy::default(),
            per_principal: false,
            client: ClientIdentity::default(),
        }
    }

    /// The key prefix of stored responses and their tags (default: the cache's prefix, or
    /// `podium` for [`CacheLayer::with_store`]). A layer built from a [`Cache`] is purged by
    /// that cache's changes only while the two share a prefix, so set it there only to keep
    /// this layer's responses apart from the cache's purges.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use podium_cache_core::store::MemoryStore;
    /// let layer = podium_cache_tower::CacheLayer::with_store(Arc::new(MemoryStore::new(100)))
    ///     .prefix("shop")
    ///     .build();
    /// assert!(format!("{:?}", layer.dependents()).contains("shop"));
    /// ```
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.keys = Keys::new(prefix);
        self.dependents = Dependents::new(Arc::clone(&self.store), self.keys.clone());
        self
    }

    /// The freshness lifetime of stored responses, and the most a response's `max-age` or
    /// `s-maxage` can ask for (they can only lower it). Zero stores nothing.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.policy.ttl = ttl;
        self
    }

    /// The standards mode: a shared cache as RFC 9111 describes it, for a reverse proxy in
    /// front of an origin that says how long its responses stay fresh. Freshness comes only
    /// from the response's own headers (`s-maxage`, `max-age`, `Expires` against `Date`, all
    /// corrected by `Age`) or, for the statuses RFC 9110 §15.1 calls heuristically cacheable
    /// and `public` responses, from RFC 9111 §4.2.2 heuristics (a tenth of the time since
    /// `Last-Modified`, at most a day); there is no default TTL ([`ttl`](Self::ttl) is not
    /// used). Requests' own `Cache-Control` is honoured for everyone (RFC 9111 §5.2.1), a
    /// `HEAD` miss is forwarded as a `HEAD`, and a request with `Authorization` is looked up
    /// and its answer stored as RFC 9111 §3.5 allows (`public`, `s-maxage`,
    /// `must-revalidate`) unless [`per_principal`](Self::per_principal) keys it. The request
    /// key is the target URI with its host and its query as sent
    /// ([`target_uri_key`](crate::policy::target_uri_key)), not the app mode's path with
    /// sorted query pairs; a response stored with `Set-Cookie` keeps it (RFC 9111 §3.1), and
    /// one without validators is kept a while once stale ([`keep_stale`](Self::keep_stale)).
    ///
    /// Which mode to choose: the default (app) mode is for an application that purges its
    /// responses record by record ([`purge`](crate::purge)): every cacheable answer is kept
    /// for the TTL even when it carries no freshness, and a record change purges it. Choose
    /// the standards mode when the layer fronts responses it is not told about (a proxy, a
    /// service whose handlers set `Cache-Control`), where only the response can say how long
    /// it stays valid. Age, validation, invalidation by unsafe methods, `CDN-Cache-Control`,
    /// stale-if-error, ranges and request directives work in both modes.
    ///
    /// ```
    /// # fn demo(cache: &podium_cache_core::Cache) {
    /// let layer = podium_cache_tower::CacheLayer::builder(cache)
    ///     .freshness_from_headers()
    ///     .build();
    /// # }
    /// ```
    pub fn freshness_from_headers(mut self) -> Self {
        self.policy.standards = true;
        self.policy.request_directives = Audience::Everyone;
        self
    }

    /// A targeted cache-control field (RFC 9213) meant for this cache, e.g.
    /// `Podium-Cache-Control`: when a response carries it with a valid value, its directives
    /// are used and `Cache-Control` and `Expires` ignored. It is read before
    /// `CDN-Cache-Control`, which is always read before `Cache-Control`. A name that is not a
    /// valid header name is ignored (with a warning).
    ///
    /// ```
    /// # fn demo(cache: &podium_cache_core::Cache) {
    /// let layer = podium_cache_tower::CacheLayer::builder(cache)
    ///     .targeted_cache_control("podium-cache-control")
    ///     .build();
    /// # }
    /// ```
    pub fn targeted_cache_control(mut self, name: &str) -> Self {
        match HeaderName::from_bytes(name.trim().as_bytes()) {
            Ok(header) => self.policy.targeted.insert(0, header),
            Err(_) => tracing::warn!(header = name, "targeted_cache_control is not a header name"),
        }
        self
    }

    /// The stale-while-revalidate window of responses that do not set one themselves: after
    /// its TTL an entry is still served for this long while one background request refreshes
    /// it.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.policy.default_swr = window;
        self
    }

    /// The longest stale-while-revalidate or stale-if-error window any response gets, and how
    /// long a response with validators is kept past its freshness to be validated (default
    /// 1 hour).
    pub fn max_stale_while_revalidate(mut self, window: Duration) -> Self {
        self.policy.max_swr = window;
        self
    }

    /// How long a response without validators (`ETag`, `Last-Modified`) is kept in the store
    /// once stale: a request whose `max-stale` (RFC 9111 §5.2.1.2) or `stale-if-error`
    /// (RFC 5861 §4) accepts it is answered from it; any other request refetches it. Default
    /// 60 s in the standards mode, none in the app mode; at most
    /// [`max_stale_while_revalidate`](Self::max_stale_while_revalidate). Responses with
    /// validators are kept that longest window, to be validated.
    ///
    /// ```
    /// # fn demo(cache: &podium_cache_core::Cache) {
    /// use std::time::Duration;
    /// let layer = podium_cache_tower::CacheLayer::builder(cache)
    ///     .freshness_from_headers()
    ///     .keep_stale(Duration::from_secs(300))
    ///     .build();
    /// # }
    /// ```
    pub fn keep_stale(mut self, window: Duration) -> Self {
        self.policy.keep_stale = Some(window);
        self
    }

    /// Replaces the request key function (a closure or any [`RequestKey`]). Return `None` to
    /// leave a request uncached. The values of the request headers a response's `Vary` names
    /// are always appended.
    pub fn key_fn<F>(self, key: F) -> Self
    where
        // The `Fn` bound (closures infer their argument's type); a type implementing
        // `RequestKey` goes through `key_policy`.
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.key_policy(key)
    }

    /// Like [`key_fn`](Self::key_fn), for any [`RequestKey`] (a type, not only a closure).
    ///
    /// ```
    /// # fn demo(cache: &podium_cache_core::Cache) {
    /// use http::request::Parts;
    /// use podium_cache_tower::policy::RequestKey;
    /// struct PathOnly;
    /// impl RequestKey for PathOnly {
    ///     fn key(&self, parts: &Parts) -> Option<String> {
    ///         Some(parts.uri.path().to_owned())
    ///     }
    /// }
    /// let layer = podium_cache_tower::CacheLayer::builder(cache).key_policy(PathOnly).build();
    /// # }
    /// ```
    pub fn key_policy<K: RequestKey>(mut self, key: K) -> Self {
        self.policy.key_fn = Some(Arc::new(key));
        self
    }

    /// Keys the responses of `route` on the query parameters named in `params` only: the
    /// others (tracking tags, cache busters, junk) leave the key as it is, so they share the
    /// entry of the request without them and cannot make new entries. `route` is the route as
    /// axum matched it (its [`MatchedPath`](axum::extract::MatchedPath), e.g.
    /// `/events/{id}`), or the request path where the layer does not run inside an axum
    /// `Router`. Names are compared percent-decoded, as the handler sees them. List every
    /// parameter the route's handler reads: one it reads but is not listed would be answered
    /// from the entry of another value. Has no effect with a [`key_fn`](Self::key_fn).
    ///
    /// ```
    /// # fn demo(cache: &podium_cache_core::Cache) {
    /// let layer = podium_cache_tower::CacheLayer::builder(cache)
    ///     .query_params("/events", ["page", "sort"])
    ///     .query_params("/events/{id}", [] as [&str; 0]) // no parameter matters
    ///     .build();
    /// # }
    /// ```
    pub fn query_params<I>(mut self, route: impl Into<String>, params: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let params: Vec<String> = params.into_iter().map(Into::into).collect();
        self.policy.query_allow.insert(route.into(), params.into());
        self
    }

    /// The most variants one path (method and path) stores: distinct keyed query strings and
    /// `Vary` values together, counted in the store, so every instance sharing it keeps to the
    /// same bound. Past it, a new variant is answered by the service and not stored
    /// (`Cache-Status: …; detail=variant-limit`) until stored variants expire; the stored ones
    /// keep being served. `usize::MAX` lifts the bound.
    pub fn max_variants(mut self, variants: usize) -> Self {
        self.policy.max_variants = variants;
        self
    }

    /// The most "not found" answers (404, 410) one route stores (axum's matched route, e.g.
    /// `/users/by-email/{email}`, else the path), counted in the store like variants, so a
    /// flood of lookups for values that exist nowhere neither grows the store without bound nor
    /// crowds out hot entries. Past it a new "not found" is answered by the service and not
    /// stored (`Cache-Status: …; detail=not-found-limit`). `usize::MAX` lifts the bound.
    ///
    /// ```
    /// # fn demo(cache: &podium_cache_core::Cache) {
    /// let layer = podium_cache_tower::CacheLayer::builder(cache).max_not_found(500).build();
    /// # }
    /// ```
    pub fn max_not_found(mut self, answers: usize) -> Self {
        self.policy.max_not_found = answers;
        self
    }

    /// The largest body stored; larger ones stream through uncached.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.policy.max_body = bytes;
        self
    }

    /// The statuses whose responses may be stored.
    pub fn cacheable_statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.policy.statuses = statuses.into_iter().collect();
        self
    }

    /// Cookies that identify a user (e.g. `session`): a request carrying one is private.
    pub fn private_cookies<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.policy.private_cookies = names.into_iter().map(Into::into).collect();
        self
    }

    /// Caches private requests per principal instead of bypassing them: the key gets a digest
    /// of the `Authorization` value and of the private cookies' values, so two users never
    /// share an entry. Responses marked `private` are still never stored.
    pub fn per_principal(mut self) -> Self {
        self.per_principal = true;
        self
    }

    /// Caches private requests per principal, named by `principal` (`None`: bypass).
    pub fn principal_fn<F>(self, principal: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.principal_policy(principal)
    }

    /// Like [`principal_fn`](Self::principal_fn), for any [`Principal`].
    pub fn principal_policy<P: Principal>(mut self, principal: P) -> Self {
        self.policy.principal = Some(Arc::new(principal));
        self
    }

    /// How long concurrent misses wait for the one request that fetches the key before they
    /// call the service themselves.
    pub fn coalesce_timeout(mut self, timeout: Duration) -> Self {
        self.policy.coalesce_timeout = timeout;
        self
    }

    /// The response header handlers may tag responses with (`entity:id` tokens); it is
    /// stripped before the client sees the response. `None` disables it.
    pub fn tag_header(mut self, name: Option<HeaderName>) -> Self {
        self.policy.tag_header = name;
        self
    }

    /// Whether to add `Cache-Status` and `X-Cache` (and, for the
    /// [`detailed_status`](Self::detailed_status) audience, `X-Cache-Hits`, `X-Cache-Misses`
    /// and `X-Airtable-Calls`) to responses.
    pub fn status_headers(mut self, enabled: bool) -> Self {
        self.policy.status_headers = enabled;
        self
    }

    /// Who gets the detailed status headers ([`crate::status`]): `ttl=` and `collapsed` in
    /// `Cache-Status`, `X-Cache` of the record reads (`MIXED`), `X-Cache-Hits`,
    /// `X-Cache-Misses` and `X-Airtable-Calls`. They tell one client whether, and when,
    /// others read a record (the read an auth check makes, for one), so by default nobody gets
    /// them: `Cache-Status` and `X-Cache` say hit or miss, as a CDN's do, and `Age` is set as
    /// RFC 9111 requires.
    ///
    /// ```
    /// # fn demo(cache: &podium_cache_core::Cache) {
    /// use std::net::SocketAddr;
    /// use axum::extract::ConnectInfo;
    /// use podium_cache_tower::policy::Audience;
    /// // Operators on the host itself (the peer address, not a header anyone can send).
    /// let layer = podium_cache_tower::CacheLayer::builder(cache)
    ///     .detailed_status(Audience::trusted(|parts| {
    ///         parts
    ///             .extensions
    ///             .get::<ConnectInfo<SocketAddr>>()
    ///             .is_some_and(|peer| peer.0.ip().is_loopback())
    ///     }))
    ///     .build();
    /// # }
    /// ```
    pub fn detailed_status(mut self, audience: Audience) -> Self {
        self.policy.detailed_status = audience;
        self
    }

    /// Whose request `Cache-Control` (and `Pragma: no-cache`) the layer honours. By default
    /// nobody's, as Varnish, Fastly and Cloudflare by default: a client that could say
    /// `no-cache` or `max-age=0` could make the layer call the service (and Airtable) on every
    /// request. [`Audience::Everyone`] is what RFC 9111 §5.2.1 describes (the standards mode
    /// turns it on). Where honoured, `no-store` bypasses the layer, and `no-cache`, `max-age=0`
    /// or a `max-age` the entry is older than refetch: coalesced with every other request
    /// fetching the key, and run in the client's scope, so its record misses count against the
    /// client's share ([`Scope::with_client`]).
    ///
    /// ```
    /// # fn demo(cache: &podium_cache_core::Cache) {
    /// use podium_cache_tower::policy::Audience;
    /// let layer = podium_cache_tower::CacheLayer::builder(cache)
    ///     .request_cache_control(Audience::Everyone)
    ///     .build();
    /// # }
    /// ```
    pub fn request_cache_control(mut self, audience: Audience) -> Self {
        self.policy.request_directives = audience;
        self
    }

    /// The cache's name in `Cache-Status` (default `podium`).
    pub fn cache_name(mut self, name: impl Into<String>) -> Self {
        self.policy.cache_name = name.into();
        self
    }

    /// Names each request's client by the first hop of this header (e.g. `x-forwarded-for`)
    /// instead of the peer address; requests without it fall back to the peer address. The
    /// core engine queues, shares the source budget and limits outstanding misses per client
    /// (see [`Scope::with_client`]). Set it only behind a proxy that overwrites the header:
    /// anyone can send it. A name that is not a valid header name is ignored (with a warning).
    ///
    /// Serve the app with `into_make_service_with_connect_info::<SocketAddr>()` so the peer
    /// address is known.
    ///
    /// ```
    /// # fn demo(cache: &podium_cache_core::Cache) {
    /// let layer = podium_cache_tower::CacheLayer::builder(cache)
    ///     .trusted_client_header("x-forwarded-for")
    ///     .build();
    /// # }
    /// ```
    pub fn trusted_client_header(mut self, name: &str) -> Self {
        match HeaderName::from_bytes(name.trim().as_bytes()) {
            Ok(header) => self.client.header = Some(header),
            Err(_) => {
                tracing::warn!(
                    header = name,
                    "trusted_client_header is not a header name; using the peer address"
                );
                self.client.header = None;
            }
        }
        self
    }

    /// Names each request's client with `client` (e.g. an authenticated principal); when it
    /// answers `None` the trusted header or the peer address is used. Return only identities
    /// you have verified: a client that can choose its name can spread its misses over many.
    ///
    /// ```
    /// # fn demo(cache: &podium_cache_core::Cache) {
    /// let layer = podium_cache_tower::CacheLayer::builder(cache)
    ///     .client_fn(|parts| {
    ///         parts.extensions.get::<String>().map(|user| format!("user:{user}"))
    ///     })
    ///     .build();
    /// # }
    /// ```
    pub fn client_fn<F>(self, client: F) -> Self
    where
        F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.client_policy(client)
    }

    /// Like [`client_fn`](Self::client_fn), for any [`ClientName`].
    pub fn client_policy<C: ClientName>(mut self, client: C) -> Self {
        self.client.client_fn = Some(Arc::new(client));
        self
    }

    /// Builds the layer. Its responses are purged by the core cache's changes (see
    /// [`purge`](crate::purge)) or through [`CacheLayer::dependents`]; nothing is registered
    /// with the cache.
    pub fn build(mut self) -> CacheLayer {
        if self.per_principal && self.policy.principal.is_none() {
            let cookies = self.policy.private_cookies.clone();
            self.policy.principal = Some(Arc::new(move |parts: &Parts| {
                default_principal(&cookies, parts)
            }));
        }
        tracing::debug!(policy = ?self.policy, "http cache layer built");
        CacheLayer {
            state: Arc::new(LayerState::new(
                self.store,
                LayerKeys::new(self.keys),
                self.dependents,
                self.policy,
                self.client,
            )),
        }
    }
}
