//! Where records come from: the [`Source`] trait, the Airtable REST client and its Webhooks API
//! client ([`webhooks_api`]).
//!
//! A source answers four questions about one table: one record by id, several records by id,
//! the records matching a filter, and deleting records. [`AirtableSource`] is the shipped
//! implementation; anything with the same four operations fits.

pub mod airtable;
pub mod formula;
pub mod limiter;
pub mod scopes;
pub mod shared_limiter;
mod startup;
pub mod webhooks_api;
mod wire;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

pub use self::airtable::{AirtableSource, AirtableSourceBuilder};
pub use self::startup::check_token_scopes;
pub use self::webhooks_api::WebhooksApi;

/// A record as a source returns it: id plus fields by their source (Airtable) names.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRecord {
    /// Record id (`rec…`).
    pub id: String,
    /// Field values by field name; empty fields are absent.
    pub fields: Map<String, Value>,
}

impl SourceRecord {
    /// The flat JSON object a model deserialises from: `{<id_key>: id, <field>: value, …}`.
    pub fn into_flat(self, id_key: &str) -> Value {
        let mut object = self.fields;
        object.insert(id_key.to_owned(), Value::String(self.id));
        Value::Object(object)
    }
}

/// Which records a list call returns and what it returns of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// An Airtable formula (build it with [`formula`]); `None` lists the whole table.
    pub filter: Option<String>,
    /// Only these fields (fewer bytes); empty means all fields.
    pub fields: Vec<String>,
    /// Stop after this many records.
    pub max_records: Option<usize>,
}

/// Why a source call failed. The engine decides by kind, never by message text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source answered 404 for something other than a record (a record that does not exist
    /// is `Ok(None)` or simply absent).
    #[error("not found: {0}")]
    NotFound(String),
    /// The source's rate limit held past the retries.
    #[error("rate limited by the source: {0}")]
    RateLimited(String),
    /// A 5xx, a timeout or a broken connection that outlasted the retries.
    #[error("source temporarily unavailable: {0}")]
    Transient(String),
    /// The source refused the request as malformed (a 4xx other than 401/403/404/429).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The credentials were refused (401).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The source refused the call (403): Airtable answers `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`
    /// alike for an unknown base or table, a token without the scope or the base access the
    /// call needs, and a user without the permission
    /// (<https://airtable.com/developers/web/api/errors>). Never "not found": no read turns it
    /// into a miss or a negative-cache entry.
    #[error("{}", forbidden_text(kind, message, *scope))]
    Forbidden {
        /// The source's error type (`INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`,
        /// `INVALID_PERMISSIONS`, …; empty when the body had none).
        kind: String,
        /// The source's message.
        message: String,
        /// The scope the refused call needs, when the client knows it.
        scope: Option<&'static str>,
    },
    /// The source answered something that is not the expected JSON shape.
    #[error("unexpected response: {0}")]
    Decode(String),
}

fn forbidden_text(kind: &str, message: &str, scope: Option<&str>) -> String {
    let kind = if kind.is_empty() { "403" } else { kind };
    match scope {
        Some(scope) => format!(
            "forbidden ({kind}): {message} (this call needs the token scope {scope}, the token's access to the base, and the base and table to exist)"
        ),
        None => format!("forbidden ({kind}): {message}"),
    }
}

impl SourceError {
    /// Whether the existence of records could not be decided (the sweep leaves such ids alone).
    pub fn is_unconfirmed(&self) -> bool {
        matches!(self, Self::RateLimited(_) | Self::Transient(_))
    }
}

/// Counters a source keeps for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// 429 answers received.
    pub rate_limited: u64,
    /// Retries made after 5xx, timeouts and 429s.
    pub retries: u64,
}

/// Where records come from.
#[async_trait]
pub trait Source: Send + Sync + 'static {
    /// One record; `Ok(None)` when the source says it does not exist.
    async fn get(&self, table: &str, id: &str) -> Result<Option<SourceRecord>, SourceError>;

    /// The records among `ids` that exist (any order; missing ids are simply absent).
    async fn get_many(&self, table: &str, ids: &[String])
        -> Result<Vec<SourceRecord>, SourceError>;

    /// Every record matching `query`, all pages.
    async fn list(&self, table: &str, query: &ListQuery) -> Result<Vec<SourceRecord>, SourceError>;

    /// Deletes records; the ids the source confirmed deleted (a missing id is not an error).
    async fn delete(&self, table: &str, ids: &[String]) -> Result<Vec<String>, SourceError>;

    /// Requests made so far.
    fn stats(&self) -> SourceStats;

    /// Whether `id` has the shape of this source's record ids. The engine answers "not found"
    /// for any other id with no source call and no store write, so random input cannot spend
    /// the source's rate limit or fill the store. Default: any non-empty id of at most 64 bytes.
    fn is_valid_id(&self, id: &str) -> bool {
        !id.is_empty() && id.len() <= 64
    }

    /// How long one call may take at most under the source's limits (for callers' timeouts).
    fn call_budget(&self) -> Duration {
        Duration::from_secs(60)
    }

    /// Resolves when no call of this process is waiting for the source's budget any more, so a
    /// call made next would be the first in line. The engine's batcher composes a batch only
    /// then: while a budget shared with other instances is spent, misses keep joining the next
    /// batch instead of waiting behind an early, small one (and ids another instance fetches
    /// meanwhile are found in the store instead of fetched twice). A hint only: the call still
    /// passes the budget. Default: at once (a source whose budget the engine's own account
    /// mirrors, or that has none).
    ///
    /// ```
    /// # async fn demo(source: &dyn podium_cache_core::source::Source) {
    /// source.ready().await;
    /// # }
    /// ```
    async fn ready(&self) {}
}
