//! # podium-cache-tower
//!
//! A tower middleware that caches whole HTTP responses of any service in a podium-cache store
//! (memory or Redis), and purges exactly the responses that read a record when that record
//! changes — in every instance that shares the store.
//!
//! - [`CacheLayer`] / [`CacheService`]: works around any `Service<http::Request<B>>` answering
//!   `http::Response<impl http_body::Body>`: an axum `Router` (`.layer(..)`,
//!   `.route_layer(..)`), a plain hyper service, any tower stack. Build it from a
//!   [`podium_cache_core::Cache`] ([`CacheLayer::builder`]: the records the engine reads
//!   while answering tag the response) or from a store alone ([`CacheLayer::with_store`]: no
//!   record source; handlers tag responses themselves).
//! - [`policy`]: what is cacheable, the request key, `Vary`, `Cache-Control` (RFC 9111 where it
//!   applies to a shared cache).
//! - [`status`]: `Cache-Status` (RFC 9211) and `X-Cache` on every response, saying hit or miss
//!   and nothing about other clients' reads; `ttl=`, `X-Cache-Hits`, `X-Cache-Misses` and
//!   `X-Airtable-Calls` only for the clients given them
//!   ([`CacheLayerBuilder::detailed_status`]).
//! - [`purge`]: the tags that tie responses to records, and the listener that purges them.
//! - `webhook` (feature `axum`, on by default): the axum router that receives Airtable's
//!   webhook deliveries. Without the feature the layer runs on plain tower/hyper: the route of
//!   a request is its path, and its client a `SocketAddr` request extension.
//!
//! How a request goes:
//!
//! 1. Not `GET`/`HEAD`, credentials (or `Cache-Control: no-store` where request directives are
//!    honoured: [`CacheLayerBuilder::request_cache_control`]) → straight to the service.
//! 2. Lookup under `keys.http(request key)`: a fresh entry is served (`Age`, `ETag`, `304` for
//!    a matching `If-None-Match`); a stale one inside its stale-while-revalidate window is
//!    served while one background request refreshes it.
//! 3. A miss runs the service once for all concurrent misses of the key, inside a core
//!    [`Scope`](podium_cache_core::scope::Scope) that collects the records it read; a storable
//!    answer is stored and added to the tag set of each of those records (and of the records
//!    its `Cache-Tag` header or [`CacheTags`] name).
//! 4. Any change a core cache applies to a record (`upsert`/`invalidate`/`delete`, a webhook,
//!    a sweep, in any process sharing the store), or a purge through
//!    [`CacheLayer::dependents`], deletes the responses in its tag set (and its entity's list
//!    responses); see [`purge`].
//! 5. The store is down → requests pass through, nothing fails, `X-Cache: BYPASS`.
//!
//! A layer over a store alone, around an axum router whose handler tags its answer:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use axum::{body::Body, routing::get, Router};
//! use http::Request;
//! use tower::ServiceExt;
//! use podium_cache_core::store::MemoryStore;
//! use podium_cache_tower::CacheLayer;
//!
//! let layer = CacheLayer::with_store(Arc::new(MemoryStore::new(10_000))).build();
//! let app = Router::new()
//!     .route("/hello", get(|| async { ([("cache-tag", "pages:hello")], "hello") }))
//!     .layer(layer.clone());
//! let get_hello = || Request::get("/hello").body(Body::empty());
//!
//! let first = app.clone().oneshot(get_hello()?).await?;
//! assert_eq!(first.headers()["cache-status"], "podium; fwd=miss; stored");
//! assert!(first.headers().get("cache-tag").is_none(), "the layer keeps its tags");
//!
//! let second = app.clone().oneshot(get_hello()?).await?;
//! assert_eq!(second.headers()["x-cache"], "HIT");
//! assert_eq!(second.headers()["cache-status"], "podium; hit");
//! assert!(second.headers().get("x-airtable-calls").is_none(), "details are opt-in");
//!
//! // The page changed: every response tagged with it goes, in every instance.
//! layer.dependents().purge("pages", "hello").await?;
//! let third = app.oneshot(get_hello()?).await?;
//! assert_eq!(third.headers()["x-cache"], "MISS");
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
mod bounds;
mod client;
mod coalesce;
mod entry;
mod fill;
mod future;
mod invalidate;
mod keep;
mod layer;
mod lookup;
pub mod policy;
pub mod purge;
mod range;
mod refresh;
mod render;
mod respond;
#[cfg(feature = "axum")]
pub mod response;
mod service;
mod state;
pub mod status;
#[cfg(feature = "axum")]
pub mod webhook;

pub use body::{BodyError, CacheBody};
pub use entry::EntryError;
pub use future::ResponseFuture;
pub use layer::{CacheLayer, CacheLayerBuilder};
pub use purge::CacheTags;
#[cfg(feature = "axum")]
pub use response::{Failure, Found};
pub use service::CacheService;
