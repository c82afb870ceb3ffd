//! # podium-cache-tower
//!
//! A tower middleware that caches whole HTTP responses of any service in the store of a
//! [`podium_cache_core::Cache`] (memory or Redis), and purges exactly the responses that read a
//! record when that record changes — in every instance that shares the store.
//!
//! - [`CacheLayer`] / [`CacheService`]: works around any `Service<http::Request<B>>` answering
//!   `http::Response<impl http_body::Body>`: an axum `Router` (`.layer(..)`,
//!   `.route_layer(..)`), a plain hyper service, any tower stack.
//! - [`policy`]: what is cacheable, the request key, `Vary`, `Cache-Control` (RFC 9111 where it
//!   applies to a shared cache).
//! - [`status`]: `Cache-Status` (RFC 9211) and `X-Cache` on every response, saying hit or miss
//!   and nothing about other clients' reads; `ttl=`, `X-Cache-Hits`, `X-Cache-Misses` and
//!   `X-Airtable-Calls` only for the clients given them
//!   ([`CacheLayerBuilder::detailed_status`]).
//! - [`purge`]: the tags that tie responses to records, and the listener that purges them.
//! - [`webhook`]: the axum router that receives Airtable's webhook deliveries.
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
//!    answer is stored and added to the tag set of each of those records.
//! 4. Any change a core cache applies to a record (`upsert`/`invalidate`/`delete`, a webhook,
//!    a sweep, in any process sharing the store) purges the responses tagged with it (see
//!    [`purge`])
//!    deletes the responses in its tag set (and its entity's list responses).
//! 5. The store is down → requests pass through, nothing fails, `X-Cache: BYPASS`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use axum::{body::Body, routing::get, Router};
//! use http::Request;
//! use tower::ServiceExt;
//! use podium_cache_core::{source::AirtableSource, store::MemoryStore, Cache};
//! use podium_cache_tower::CacheLayer;
//!
//! let source = AirtableSource::builder("patXXXX", "appXXXXXXXXXXXXXX")
//!     .api_url("http://127.0.0.1:9")
//!     .build()?;
//! let cache = Cache::builder(Arc::new(MemoryStore::new(10_000)), Arc::new(source)).build();
//! let app = Router::new()
//!     .route("/hello", get(|| async { "hello" }))
//!     .layer(CacheLayer::new(&cache));
//!
//! let first = app.clone().oneshot(Request::get("/hello").body(Body::empty())?).await?;
//! assert_eq!(first.headers()["cache-status"], "podium; fwd=miss; stored");
//!
//! let second = app.oneshot(Request::get("/hello").body(Body::empty())?).await?;
//! assert_eq!(second.headers()["x-cache"], "HIT");
//! assert_eq!(second.headers()["cache-status"], "podium; hit");
//! assert!(second.headers().get("x-airtable-calls").is_none(), "details are opt-in");
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
mod coalesce;
mod entry;
mod future;
mod layer;
pub mod policy;
pub mod purge;
pub mod response;
mod service;
pub mod status;
pub mod webhook;

pub use body::{BodyError, CacheBody};
pub use entry::EntryError;
pub use future::ResponseFuture;
pub use layer::{CacheLayer, CacheLayerBuilder};
pub use purge::CacheTags;
pub use response::{Failure, Found};
pub use service::CacheService;
