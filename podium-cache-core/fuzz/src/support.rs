//! What several targets share: one runtime, a cache on a fresh in-memory store, typed reads.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use podium_cache_core::source::{ListQuery, Source, SourceError, SourceRecord, SourceStats};
use podium_cache_core::store::MemoryStore;
use podium_cache_core::{Cache, CacheError, Cacheable};
use podium_example::models::{Event, Project, Referral, User, Vote};
use serde_json::Value;

/// The one current-thread runtime every async check runs on (a new one per input would
/// dominate the run time).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    })
}

/// A source that has nothing and fails every call: a check that reaches it has read something
/// the store should have had.
#[derive(Debug, Default)]
pub struct NoSource;

fn no_source() -> SourceError {
    SourceError::Transient("the fuzz source answers nothing".into())
}

#[async_trait]
impl Source for NoSource {
    async fn get(&self, _table: &str, _id: &str) -> Result<Option<SourceRecord>, SourceError> {
        Err(no_source())
    }

    async fn get_many(
        &self,
        _table: &str,
        _ids: &[String],
    ) -> Result<Vec<SourceRecord>, SourceError> {
        Err(no_source())
    }

    async fn list(
        &self,
        _table: &str,
        _query: &ListQuery,
    ) -> Result<Vec<SourceRecord>, SourceError> {
        Err(no_source())
    }

    async fn delete(&self, _table: &str, _ids: &[String]) -> Result<Vec<String>, SourceError> {
        Err(no_source())
    }

    fn stats(&self) -> SourceStats {
        SourceStats::default()
    }

    fn call_budget(&self) -> Duration {
        Duration::from_millis(10)
    }
}

/// A cache on a new, empty in-memory store and [`NoSource`], so every input starts alike.
pub fn fresh_cache() -> Cache {
    Cache::builder(Arc::new(MemoryStore::new(10_000)), Arc::new(NoSource)).build()
}

/// Reads record `id` of `table` (one of the example app's models) as its flat JSON;
/// `None` for a table without a model.
pub async fn read_record(
    cache: &Cache,
    table: &str,
    id: &str,
) -> Option<Result<Option<Value>, CacheError>> {
    async fn read<T: Cacheable>(cache: &Cache, id: &str) -> Result<Option<Value>, CacheError> {
        let record = cache.get::<T>(id).await?;
        Ok(record.map(|r| serde_json::to_value(r).unwrap_or(Value::Null)))
    }
    Some(match table {
        "Users" => read::<User>(cache, id).await,
        "Events" => read::<Event>(cache, id).await,
        "Projects" => read::<Project>(cache, id).await,
        "Votes" => read::<Vote>(cache, id).await,
        "Referrals" => read::<Referral>(cache, id).await,
        _ => return None,
    })
}

/// `text` as a TOML basic string (`"…"`, with `\\`, `\"` and control characters escaped).
/// Written here rather than with `toml`'s serializer: toml_write 0.1.2 counts a run of quotes
/// in a `u8` and overflows on 256 of them (found by the `config` and `keys` targets; see their regressions).
pub fn toml_basic_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
