//! The policy hooks: traits with blanket impls for closures, and who is trusted with what.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;

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
