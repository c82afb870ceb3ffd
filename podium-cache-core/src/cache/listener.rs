//! Invalidation listeners: who hears that a record changed.
//!
//! The engine calls every registered listener after a change is stored and before the call that
//! made it returns (so a webhook is acknowledged only after the listeners ran): the HTTP layer
//! purges the responses tagged with the record, a broadcaster tells other instances, a user hook
//! purges a CDN.
//!
//! ```
//! use podium_cache_core::cache::{Change, InvalidationListener};
//! struct LogIt;
//! #[async_trait::async_trait]
//! impl InvalidationListener for LogIt {
//!     async fn on_change(&self, change: &Change) {
//!         println!("{} {} {:?}", change.entity, change.id, change.kind);
//!     }
//! }
//! ```

use async_trait::async_trait;

/// What happened to a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A newer version was stored (a webhook delivery or an explicit upsert).
    Upserted,
    /// The cached copy was dropped; the next read refetches.
    Invalidated,
    /// The record is gone (deleted through the cache, by a sweep, or reported destroyed).
    Deleted,
}

/// One change to one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Entity name (`"events"`).
    pub entity: String,
    /// Record id.
    pub id: String,
    /// What happened.
    pub kind: ChangeKind,
}

/// Hears about every change the engine makes.
#[async_trait]
pub trait InvalidationListener: Send + Sync + 'static {
    /// Called once per change, after the store has it.
    async fn on_change(&self, change: &Change);
}
