//! [`Redis`]: the one Redis store, generic over how it reaches the server. [`RedisStore`]
//! (`Redis<Standalone>`, one server, `standalone.rs`) and [`RedisClusterStore`]
//! (`Redis<Cluster>`, a cluster, `cluster.rs`) share everything written here: the call timeout,
//! the [epoch](Store::epoch), the command layer ([`Exec`]) and with it the extensions, and the
//! [`Store`] methods. A [`Mode`] says only what differs: how the connection is made, how errors
//! map, how `set_many` groups its entries into pipelines (one; one per hash slot), which record
//! writes it refuses (a cluster: keys in several slots), and how `scan` walks the keyspace.
//!
//! [`RedisStore`]: super::RedisStore
//! [`RedisClusterStore`]: super::RedisClusterStore

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::try_join_all;
use redis::{ErrorKind, FromRedisValue, RedisError, RedisResult, ServerErrorKind};

use super::commands::{self, Exec};
use super::script::{record_write_args, record_write_keys, record_write_outcome, WRITE_RECORD_LUA};
use super::{Epoch, RecordWrite, ScanPage, Store, StoreError, StoreExtensions, WriteOutcome};

/// One entry of `set_many`.
pub(crate) type Entry = (String, Bytes, Duration);

/// What differs between a standalone Redis and a Redis Cluster.
#[async_trait]
pub(crate) trait Mode: Send + Sync + Sized + 'static {
    /// The shared, multiplexed connection.
    type Connection: redis::aio::ConnectionLike + Clone + Send + Sync + 'static;
    /// [`Store::name`].
    const NAME: &'static str;

    /// The shared connection, made on first use; making it moves the epoch.
    async fn connection(&self, shared: &Arc<Shared>) -> Result<Self::Connection, StoreError>;

    /// A redis error as a store error.
    fn map_err(&self, err: RedisError, call_timeout: Duration) -> StoreError;

    /// How a call on the connection ended: `timed_out` when nothing answered within the call
    /// timeout (any reply or error counts as an answer). Nothing to do by default.
    fn call_ended(&self, _timed_out: bool) {}

    /// `set_many`'s entries grouped into pipelines the server accepts.
    fn pipelines<'a>(&self, entries: &'a [Entry]) -> Vec<Vec<&'a Entry>>;

    /// Refuses a record write the server would refuse, before it is sent.
    fn check_record_write(&self, keys: &[&str]) -> Result<(), StoreError>;

    /// One page of keys matching `pattern`.
    async fn scan(
        store: &Redis<Self>,
        pattern: &str,
        cursor: u64,
        count: usize,
    ) -> Result<ScanPage, StoreError>;
}

/// A [`Store`] on Redis or Valkey, over a standalone server ([`RedisStore`](super::RedisStore))
/// or a cluster ([`RedisClusterStore`](super::RedisClusterStore)): see those for how to build
/// one.
pub struct Redis<M> {
    inner: Arc<Inner<M>>,
}

struct Inner<M> {
    mode: M,
    shared: Arc<Shared>,
    /// The SHA1 of [`WRITE_RECORD_LUA`], for `EVALSHA`.
    script_hash: String,
}

/// What the connection's callbacks may need after the store is gone.
pub(crate) struct Shared {
    /// Moves on every disruption and every connection made: see [`Store::epoch`].
    pub(crate) epoch: Epoch,
    /// How long one call may take.
    pub(crate) call_timeout: Duration,
}

impl<M> Clone for Redis<M> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<M: std::fmt::Debug> std::fmt::Debug for Redis<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("mode", &self.inner.mode)
            .field("call_timeout", &self.inner.shared.call_timeout)
            .finish_non_exhaustive()
    }
}

// `Mode` is sealed (crate-private): only this crate's two modes implement it.
#[allow(private_bounds)]
impl<M: Mode> Redis<M> {
    /// A store over `mode`; it connects on first use (see [`warm_up`](Self::warm_up)).
    pub(crate) fn new(mode: M, call_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                mode,
                shared: Arc::new(Shared {
                    epoch: Epoch::default(),
                    call_timeout,
                }),
                script_hash: redis::Script::new(WRITE_RECORD_LUA).get_hash().to_owned(),
            }),
        }
    }

    /// Tries to connect now; a server that is down is not an error (reads fall through until
    /// it is up, and the store connects by itself).
    pub(crate) async fn warm_up(self) -> Self {
        if let Err(err) = self.connection().await {
            tracing::warn!(
                error = %err,
                store = M::NAME,
                "redis not reachable yet; reads fall through until it is"
            );
        }
        self
    }

    #[cfg(feature = "cluster")]
    pub(crate) fn mode(&self) -> &M {
        &self.inner.mode
    }

    pub(crate) fn call_timeout(&self) -> Duration {
        self.inner.shared.call_timeout
    }

    pub(crate) async fn connection(&self) -> Result<M::Connection, StoreError> {
        self.inner.mode.connection(&self.inner.shared).await
    }

    /// Runs `call` within the call timeout, maps its error, and moves the epoch on a
    /// disruption.
    pub(crate) async fn within<T>(
        &self,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let timeout = self.call_timeout();
        let result = tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| StoreError::Timeout(timeout))
            .and_then(|reply| reply.map_err(|e| self.inner.mode.map_err(e, timeout)));
        self.inner
            .mode
            .call_ended(matches!(result, Err(StoreError::Timeout(_))));
        self.inner.shared.epoch.watch(result)
    }
}

#[async_trait]
impl<M: Mode> Exec for Redis<M> {
    async fn query<T: FromRedisValue + Send>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut connection = self.connection().await?;
        self.within(cmd.query_async::<T>(&mut connection)).await
    }

    async fn run_pipeline<T: FromRedisValue + Send>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection().await?;
        self.within(pipe.query_async::<T>(&mut connection)).await
    }
}

#[async_trait]
impl<M: Mode> Store for Redis<M> {
    fn name(&self) -> &'static str {
        M::NAME
    }

    fn epoch(&self) -> u64 {
        self.inner.shared.epoch.current()
    }

    /// Written once for every Redis store, over the command layer (`redis_ext.rs`).
    fn extensions(&self) -> Option<&dyn StoreExtensions> {
        Some(self)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        commands::get(self, key).await
    }

    /// One `MGET` (a cluster client splits it into one per slot, runs them concurrently and
    /// puts the answers back in key order).
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, StoreError> {
        let values = commands::get_many(self, keys).await?;
        if values.len() != keys.len() {
            return Err(StoreError::Protocol(format!(
                "MGET of {} keys answered {} values",
                keys.len(),
                values.len()
            )));
        }
        Ok(values)
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        commands::set(self, key, &value, ttl).await
    }

    /// One pipeline of `SET`s per group the mode makes (a cluster: one per slot), all at once,
    /// within one call timeout.
    async fn set_many(&self, entries: &[Entry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let pipelines: Vec<redis::Pipeline> = self
            .inner
            .mode
            .pipelines(entries)
            .into_iter()
            .map(commands::set_many_pipeline)
            .collect();
        tracing::trace!(
            entries = entries.len(),
            pipelines = pipelines.len(),
            "set_many"
        );
        let connection = self.connection().await?;
        let calls = pipelines.iter().map(|pipe| {
            let mut connection = connection.clone();
            async move { pipe.query_async::<()>(&mut connection).await }
        });
        self.within(try_join_all(calls)).await?;
        Ok(())
    }

    /// `DEL` (a cluster client splits it by slot and sums the counts).
    async fn delete(&self, keys: &[String]) -> Result<u64, StoreError> {
        commands::delete(self, keys).await
    }

    /// One `EVALSHA` of the record write script; `EVAL` when the server has not seen it yet
    /// (first use, a restart, or a new master after a failover), which caches it there.
    async fn write_record(&self, write: &RecordWrite) -> Result<WriteOutcome, StoreError> {
        let keys = record_write_keys(write);
        self.inner.mode.check_record_write(&keys)?;
        let args = record_write_args(write);
        let script_call = |name: &str, script: &str| {
            let mut cmd = redis::cmd(name);
            cmd.arg(script).arg(keys.len());
            for key in &keys {
                cmd.arg(*key);
            }
            for arg in &args {
                cmd.arg(arg.as_slice());
            }
            cmd
        };
        let evalsha = script_call("EVALSHA", &self.inner.script_hash);
        let mut connection = self.connection().await?;
        let reply: (i64, u64, i64) = self
            .within(async {
                match evalsha.query_async(&mut connection).await {
                    Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                        script_call("EVAL", WRITE_RECORD_LUA)
                            .query_async(&mut connection)
                            .await
                    }
                    other => other,
                }
            })
            .await?;
        Ok(record_write_outcome(reply))
    }

    async fn scan(&self, pattern: &str, cursor: u64, count: usize) -> Result<ScanPage, StoreError> {
        M::scan(self, pattern, cursor, count).await
    }
}
