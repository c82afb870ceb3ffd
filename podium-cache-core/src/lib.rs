//! # podium-cache-core
//!
//! A read-through cache for Airtable (or any slow, rate-limited record source), kept fresh by
//! signed webhooks. Reads cost a store round trip (microseconds in process, well under a
//! millisecond on Redis); misses are coalesced and batched into as few source calls as the
//! source's rate limit allows; a record changed or deleted is never served again once the change
//! is acknowledged.
//!
//! ## Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `redis` | on | `store::RedisStore`, the in-process tier kept coherent over Redis pub/sub, the Airtable budget shared through the store, `rediss://` with a private CA |
//! | `cluster` | off | `store::RedisClusterStore` (`redis_cluster_nodes`); implies `redis` |
//! | `metrics` | off | every engine counter also sent to the `metrics` facade as `podium_cache_<name>` |
//! | `tasks` | off | `tasks`: the task runner a binary of yours calls |
//!
//! Without `redis`, [`Cache::from_settings`] refuses a `redis_url` (or cluster nodes without
//! `cluster`) with [`cache::SetupError::FeatureDisabled`], naming the feature to enable.
//! The Airtable client (reqwest with rustls) and `.secrets.toml` parsing (toml) are always
//! built: they are what every configuration uses.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod coalesce;
pub mod config;
pub mod entity;
pub mod key;
pub mod maintenance;
pub mod scope;
pub mod scripts;
pub mod source;
pub mod store;
pub mod sweep;
#[cfg(feature = "tasks")]
pub mod tasks;
pub mod webhook;

pub use cache::{Cache, CacheError, Query, UpsertOutcome};
pub use config::Settings;
pub use entity::{Cacheable, EntityMeta};
pub use maintenance::Maintenance;
pub use podium_cache_macros::Cacheable;
pub use webhook::Models;

/// The serde this crate is built with (a model's `Serialize`/`Deserialize` must be serde 1's).
/// With `#[serde(crate = "podium_cache_core::serde")]` a model needs no serde dependency of
/// its own (see [`prelude`]).
pub use serde;

/// The schemars this crate is built with (a model's `JsonSchema` must be this major version).
/// With `#[schemars(crate = "podium_cache_core::schemars")]` a model needs no schemars
/// dependency of its own (see [`prelude`]).
pub use schemars;

/// What a model needs: the derives of serde and schemars in the versions this crate uses, and
/// [`Cacheable`].
///
/// ```
/// use podium_cache_core::prelude::*;
///
/// #[derive(Clone, Serialize, Deserialize, JsonSchema, Cacheable)]
/// #[serde(crate = "podium_cache_core::serde")]
/// #[schemars(crate = "podium_cache_core::schemars")]
/// #[cacheable(table = "Events")]
/// struct Event {
///     id: String,
///     name: String,
/// }
/// assert_eq!(Event::meta().entity, "events");
/// ```
pub mod prelude {
    pub use crate::Cacheable;
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
}

/// Paths for the code `#[derive(Cacheable)]` generates; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use schemars;
    pub use serde;
}
