//! The store operations that are the same commands on a standalone Redis and on a Redis
//! Cluster: written once over [`Exec`], which each store implements with its own connection,
//! timeout and error mapping.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::{Cmd, FromRedisValue, Pipeline};

use super::{ScanPage, StoreError};

/// Runs one command or pipeline on a store's connection.
#[async_trait]
pub(crate) trait Exec: Send + Sync {
    /// One command, within the store's call timeout.
    async fn query<T: FromRedisValue + Send>(&self, cmd: &Cmd) -> Result<T, StoreError>;
    /// One pipeline, within the store's call timeout.
    async fn run_pipeline<T: FromRedisValue + Send>(
        &self,
        pipe: &Pipeline,
    ) -> Result<T, StoreError>;
}

pub(crate) async fn get(exec: &impl Exec, key: &str) -> Result<Option<Bytes>, StoreError> {
    let value: Option<Vec<u8>> = exec.query(redis::cmd("GET").arg(key)).await?;
    Ok(value.map(Bytes::from))
}

/// `MGET` (a cluster client splits it by slot and restores the order).
pub(crate) async fn get_many(
    exec: &impl Exec,
    keys: &[String],
) -> Result<Vec<Option<Bytes>>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Option<Vec<u8>>> = exec.query(redis::cmd("MGET").arg(keys)).await?;
    Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
}

pub(crate) async fn set(
    exec: &impl Exec,
    key: &str,
    value: &[u8],
    ttl: Duration,
) -> Result<(), StoreError> {
    exec.query::<()>(
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(millis(ttl)),
    )
    .await
}

/// A pipeline of `SET … PX` for `entries` (for a cluster: entries of one slot).
pub(crate) fn set_many_pipeline<'a>(
    entries: impl IntoIterator<Item = &'a (String, Bytes, Duration)>,
) -> Pipeline {
    let mut pipe = redis::pipe();
    for (key, value, ttl) in entries {
        pipe.cmd("SET")
            .arg(key)
            .arg(value.as_ref())
            .arg("PX")
            .arg(millis(*ttl))
            .ignore();
    }
    pipe
}

/// `DEL` (a cluster client splits it by slot and sums the counts).
pub(crate) async fn delete(exec: &impl Exec, keys: &[String]) -> Result<u64, StoreError> {
    if keys.is_empty() {
        return Ok(0);
    }
    exec.query(redis::cmd("DEL").arg(keys)).await
}

/// `SCAN cursor MATCH pattern COUNT count` on one node.
pub(crate) fn scan_cmd(cursor: u64, pattern: &str, count: usize) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count.max(1));
    cmd
}

pub(crate) async fn scan(
    exec: &impl Exec,
    pattern: &str,
    cursor: u64,
    count: usize,
) -> Result<ScanPage, StoreError> {
    let (cursor, keys): (u64, Vec<String>) = exec.query(&scan_cmd(cursor, pattern, count)).await?;
    Ok(ScanPage { cursor, keys })
}

/// A TTL in whole milliseconds, at least 1 (Redis refuses `PX 0`).
pub(crate) fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}
