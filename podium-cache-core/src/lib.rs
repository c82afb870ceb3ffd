//! # podium-cache-core
//!
//! A read-through cache for Airtable (or any slow, rate-limited record source), kept fresh by
//! signed webhooks. Reads cost a store round trip (microseconds in process, well under a
//! millisecond on Redis); misses are coalesced and batched into as few source calls as the
//! source's rate limit allows; a record changed or deleted is never served again once the change
//! is acknowledged.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
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
