//! How the layer names the client of a request.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

#[cfg(feature = "axum")]
use axum::extract::ConnectInfo;
use http::header::HeaderName;
use http::request::Parts;
use podium_cache_core::scope::Scope;

/// The peer address of a request: axum's `ConnectInfo<SocketAddr>` (feature `axum`), else a
/// `SocketAddr` request extension (what a plain hyper server can insert).
pub(crate) fn peer_address(parts: &Parts) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        return Some(info.0);
    }
    parts.extensions.get::<SocketAddr>().copied()
}

/// A function naming the client of a request (e.g. an authenticated principal).
pub(crate) type ClientFn = Arc<dyn crate::policy::ClientName>;

/// The longest client name taken from a header as it is; longer ones are cut.
pub(crate) const MAX_CLIENT_LEN: usize = 64;

/// How the layer names the client of a request, for the core engine's per-client miss queues
/// and limits: the [`client_fn`](CacheLayerBuilder::client_fn) if it names one, else the
/// first hop of the [trusted header](CacheLayerBuilder::trusted_client_header), else the peer
/// address (axum's `ConnectInfo<SocketAddr>`, or a `SocketAddr` request extension). IPv6
/// addresses are grouped by /64, the block one host usually holds.
#[derive(Clone, Default)]
pub(crate) struct ClientIdentity {
    pub header: Option<HeaderName>,
    pub client_fn: Option<ClientFn>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("header", &self.header)
            .field("client_fn", &self.client_fn.is_some())
            .finish()
    }
}

impl ClientIdentity {
    /// The client of the request with `parts`, if it can be named.
    pub(crate) fn of(&self, parts: &Parts) -> Option<String> {
        if let Some(client) = self.client_fn.as_ref().and_then(|f| f.client(parts)) {
            return Some(client);
        }
        if let Some(name) = &self.header {
            let first_hop = parts
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(',').next())
                .map(str::trim)
                .filter(|hop| !hop.is_empty());
            if let Some(hop) = first_hop {
                return Some(match hop.parse::<IpAddr>() {
                    Ok(ip) => ip_client(ip),
                    Err(_) => hop.chars().take(MAX_CLIENT_LEN).collect(),
                });
            }
        }
        peer_address(parts).map(|addr| ip_client(addr.ip()))
    }

    /// A core scope for the request, attributed to its client when it has one.
    pub(crate) fn scope_for(&self, parts: &Parts) -> Scope {
        match self.of(parts) {
            Some(client) => Scope::new().with_client(client),
            None => Scope::new(),
        }
    }
}

/// An address as a client name: IPv4 as it is, IPv6 by its /64 (IPv4-mapped as IPv4).
pub(crate) fn ip_client(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)], peer: Option<&str>) -> Parts {
        let mut request = http::Request::get("/events/recAAAAAAAAAAAAAA");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (mut parts, ()) = request
            .body(())
            .map(|r| r.into_parts())
            .unwrap_or_else(|_| http::Request::new(()).into_parts());
        if let Some(peer) = peer {
            parts
                .extensions
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        }
        parts
    }

    #[test]
    fn the_client_is_the_peer_address_unless_a_trusted_header_names_it() {
        let peer_only = ClientIdentity::default();
        let behind_proxy = ClientIdentity {
            header: Some(HeaderName::from_static("x-forwarded-for")),
            client_fn: None,
        };
        let forwarded = parts(
            &[("x-forwarded-for", " 203.0.113.9, 10.0.0.1")],
            Some("127.0.0.2:5555"),
        );
        assert_eq!(peer_only.of(&forwarded).as_deref(), Some("127.0.0.2"));
        assert_eq!(behind_proxy.of(&forwarded).as_deref(), Some("203.0.113.9"));
        let direct = parts(&[], Some("[2001:db8:1:2:3:4:5:6]:443"));
        assert_eq!(
            behind_proxy.of(&direct).as_deref(),
            Some("2001:db8:1:2::/64"),
            "no header: the peer address, IPv6 by its /64"
        );
        assert_eq!(peer_only.of(&parts(&[], None)), None);
        let principal = ClientIdentity {
            client_fn: Some(Arc::new(|_: &Parts| Some("user:ada".to_owned()))),
            ..behind_proxy
        };
        assert_eq!(principal.of(&forwarded).as_deref(), Some("user:ada"));
        let long = "x".repeat(500);
        let hostile = ClientIdentity {
            header: Some(HeaderName::from_static("x-client")),
            client_fn: None,
        };
        let named = hostile.of(&parts(&[("x-client", &long)], None));
        assert_eq!(named.map(|n| n.len()), Some(MAX_CLIENT_LEN));
    }
}
