//! The sweep: finds cached records that were deleted in the source behind the cache's back
//! (Airtable automations do not fire on delete) and removes them, with about 1% of the calls a
//! per-record check would make.
//!
//! # What a run does
//! 1. **Lock.** Takes the store-held lock `{prefix}:lock:sweep` (`SET NX` with a TTL and a
//!    random token), refreshes it in the background while it runs and releases it at the end
//!    only if it still holds the token: two sweeps never overlap, and a crashed one frees the
//!    lock when its TTL runs out. A second sweep fails with [`SweepError::LockHeld`].
//! 2. **Scan.** Walks each entity's data keys with the store's `SCAN` (never `KEYS`), a page
//!    at a time, and reads the cached records' JSON to collect which ids other cached records
//!    reference through their linked-record fields ([`FieldKind::Link`]).
//! 3. **Verify** each entity's cached ids against the source, asking for one field only:
//!    - *Id checks*: `OR(RECORD_ID()='…',…)` with up to 100 ids a call; an id the answer
//!      lacks is gone. Cost: `⌈cached/100⌉` calls, whatever the table's size.
//!    - *Listing the table*: every id of the table, 100 a page. Cost: `⌈table/100⌉` calls,
//!      cheaper when the cache holds most of the table (the usual case for hot tables).
//!
//!    The table's size is not known up front, so the sweep lists the table with a budget of
//!    exactly what the id checks would cost (`maxRecords = 100 × ⌈cached/100⌉`). If the
//!    listing ends within the budget it is complete: every cached id it lacks is gone, at no
//!    more calls than the checks. If it hits the budget, the ids it saw are confirmed alive and
//!    only the cached ids it did not see are checked by id. This is the classic rent-or-buy
//!    rule: never worse than twice the cheaper choice, equal to it when the cache holds most of
//!    the table, and the listing's calls are never wasted (every id it sees needs no check).
//!    An entity with at most 100 cached ids is checked by id directly (one call either way).
//!    Listing is sound because the source pages from a snapshot (Airtable's offsets are
//!    cursors) and the ids were scanned before the listing started.
//! 4. **Remove.** Every id found gone is removed with its index entries and tagged responses
//!    and tombstoned ([`Cache::remove_gone`], which tells the listeners, e.g. the HTTP layer's
//!    purge), unless the run is a dry run. Ids the source could not confirm either way (429s
//!    or 5xx that outlasted the client's retries: [`SourceError::is_unconfirmed`]) are left
//!    alone and counted. As a guard against a misconfigured base, an entity where more than
//!    [`Sweep::max_gone_share`] of the cached records look gone is reported and not touched.
//!
//! [`Strategy::References`] is the seed project's strategy: it checks only the cached ids no
//! other cached record references, so a deleted record that is still linked from a cached
//! record is missed until its TTL. The default [`Strategy::Full`] reports how many of the
//! records it found gone were such referenced ones ([`Counts::gone_referenced`]).
//!
//! Every source call passes the process-wide rate limiter of the Airtable base, so a sweep
//! running inside the app shares the 5 requests a second fairly with the app's reads. A
//! cancellation ([`Sweep::cancel_on`]) stops between batches: removals already made are
//! complete, nothing is half-removed, and the lock is released.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use podium_cache_core::cache::Cache;
//! use podium_cache_core::source::AirtableSource;
//! use podium_cache_core::store::MemoryStore;
//! use podium_cache_core::sweep::{Outcome, Strategy, Sweep};
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema, podium_cache_core::Cacheable)]
//! #[cacheable(table = "Events")]
//! struct Event {
//!     id: String,
//!     name: String,
//!     #[serde(default)]
//!     #[cacheable(references = "users")]
//!     owner: Vec<String>,
//! }
//!
//! let source = AirtableSource::builder("patXXXX", "appXXXXXXXXXXXXXX")
//!     .api_url("http://127.0.0.1:9")
//!     .build()?;
//! let cache = Cache::builder(Arc::new(MemoryStore::new(1_000)), Arc::new(source)).build();
//! let report = Sweep::new(&cache)
//!     .entity::<Event>()
//!     .strategy(Strategy::Full)
//!     .run()
//!     .await?;
//! assert_eq!(report.totals.cached, 0); // nothing cached: no Airtable call at all
//! assert_eq!(report.outcome(), Outcome::Clean);
//! println!("{report}");
//! # Ok(()) }
//! ```

mod builder;
mod entity;
mod error;
mod lock;
mod report;
mod run;

pub use builder::{
    select, Sweep, SweepEntity, DEFAULT_LOCK_TTL, DEFAULT_MAX_GONE_SHARE, DEFAULT_SCAN_COUNT,
};
pub use error::SweepError;
pub use lock::LOCK_NAME;
pub use report::{Counts, EntityReport, Method, Outcome, Progress, Strategy, SweepReport};
