//! [`RedisStore`]: Redis or Valkey through one multiplexed connection that reconnects by itself.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionAddr, FromRedisValue, RedisError, Script};
use tokio::sync::Mutex;

use super::commands::{self, Exec};
use super::script::{record_write_args, record_write_keys, record_write_outcome, WRITE_RECORD_LUA};
use super::tls::{self, RedisCa};
use super::{Epoch, RecordWrite, ScanPage, Store, StoreError, StoreExtensions, WriteOutcome};
use crate::config::Secret;

/// Configures a [`RedisStore`].
///
/// ```no_run
/// # async fn demo() -> Result<(), podium_cache_core::store::StoreError> {
/// use podium_cache_core::store::RedisStore;
/// use std::time::Duration;
/// let store = RedisStore::builder("redis://127.0.0.1:6390/")
///     .call_timeout(Duration::from_millis(250))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RedisStoreBuilder {
    /// May carry a password: a [`Secret`], so the derived `Debug` shows `[redacted]`.
    url: Secret,
    call_timeout: Duration,
    ca: Option<RedisCa>,
}

impl RedisStoreBuilder {
    /// How long one store call may take before it counts as failed (default 250 ms), so a slow
    /// or dead Redis makes reads fall through to the source instead of piling up.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Trusts `ca` (a private certificate authority) instead of the public roots for a
    /// `rediss://` URL; with a `redis://` URL, [`connect`](Self::connect) refuses it.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use podium_cache_core::store::{RedisCa, RedisStore};
    /// let ca = RedisCa::from_pem(std::fs::read("/etc/redis/ca.pem")?)?;
    /// let store = RedisStore::builder("rediss://redis.internal:6380/")
    ///     .ca(ca)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn ca(mut self, ca: RedisCa) -> Self {
        self.ca = Some(ca);
        self
    }

    /// Validates the URL and opens the connection. A Redis that is down now is not an error:
    /// the store answers [`StoreError::Unavailable`] until it can connect, and connects by itself.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let client = tls::client(self.url.expose(), self.ca.as_ref())
            .map_err(|e| StoreError::Unavailable(format!("invalid redis_url: {e}")))?;
        let store = RedisStore {
            inner: Arc::new(Inner {
                client,
                manager: Mutex::new(None),
                epoch: Epoch::default(),
                call_timeout: self.call_timeout,
                script: Script::new(WRITE_RECORD_LUA),
            }),
        };
        if let Err(err) = store.connection().await {
            tracing::warn!(error = %err, "redis not reachable yet; reads fall through until it is");
        }
        Ok(store)
    }
}

/// A [`Store`] on Redis or Valkey: one multiplexed connection (redis crate `ConnectionManager`)
/// shared by every task, reconnecting by itself; `MGET` for multi-key reads; the record write is
/// one Lua script, so the stale-set guard is atomic on the server.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    manager: Mutex<Option<ConnectionManager>>,
    /// Moves on every disruption and every (re)connection: see [`Store::epoch`].
    epoch: Epoch,
    call_timeout: Duration,
    script: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("call_timeout", &self.inner.call_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A builder for the store at `url` (`redis://[:password@]host:port[/db]`, or `rediss://`
    /// for TLS).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: Secret::new(url),
            call_timeout: Duration::from_millis(250),
            ca: None,
        }
    }

    /// Connects with the default options.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let mut slot = self.inner.manager.lock().await;
        if let Some(manager) = slot.as_ref() {
            return Ok(manager.clone());
        }
        let mut config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(
                self.inner.call_timeout.max(Duration::from_millis(100)),
            ))
            .set_response_timeout(Some(self.inner.call_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        if self
            .inner
            .client
            .get_connection_info()
            .redis_settings()
            .protocol()
            .supports_resp3()
        {
            // On RESP3 the manager reconnects as soon as the connection drops, before any call
            // fails: the disconnection notice is the only sign of it.
            let inner = Arc::downgrade(&self.inner);
            config = config.set_push_sender(move |push: redis::PushInfo| {
                if push.kind == redis::PushKind::Disconnection {
                    if let Some(inner) = inner.upgrade() {
                        inner.epoch.advance();
                    }
                }
                Ok::<(), std::convert::Infallible>(())
            });
        }
        let connected = tokio::time::timeout(
            self.inner.call_timeout * 4,
            self.inner.client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| StoreError::Timeout(self.inner.call_timeout * 4))
        .and_then(|made| made.map_err(|e| self.connect_error(e)));
        let manager = self.inner.epoch.watch(connected)?;
        self.inner.epoch.advance();
        *slot = Some(manager.clone());
        Ok(manager)
    }

    /// A failed connection attempt as a store error. A plain `redis://` connection that the
    /// server drops at once (rather than refuses) is what a TLS-only server does, as managed
    /// Redis services are: the error says so.
    fn connect_error(&self, err: RedisError) -> StoreError {
        let plain = matches!(
            self.inner.client.get_connection_info().addr(),
            ConnectionAddr::Tcp(..)
        );
        let dropped = err.is_connection_dropped() && !err.is_connection_refusal();
        match map_err(err) {
            StoreError::Unavailable(message) if plain && dropped => StoreError::Unavailable(
                format!("{message} (the server closed the connection: if it speaks TLS only, as managed Redis services do, use a rediss:// URL)"),
            ),
            other => other,
        }
    }

    /// Runs `call` within the call timeout, maps its error, and moves the epoch on a
    /// disruption.
    async fn within<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let result = tokio::time::timeout(self.inner.call_timeout, call)
            .await
            .map_err(|_| StoreError::Timeout(self.inner.call_timeout))
            .and_then(|reply| reply.map_err(map_err));
        self.inner.epoch.watch(result)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.connection().await?;
        self.within(cmd.query_async::<T>(&mut conn)).await
    }
}

impl RedisStore {
    async fn run_pipeline<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection().await?;
        self.within(pipe.query_async::<T>(&mut conn)).await
    }
}

fn map_err(err: RedisError) -> StoreError {
    if err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
    {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Protocol(err.to_string())
    }
}

#[async_trait]
impl Exec for RedisStore {
    async fn query<T: FromRedisValue + Send>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        RedisStore::query(self, cmd).await
    }

    async fn run_pipeline<T: FromRedisValue + Send>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        RedisStore::run_pipeline(self, pipe).await
    }
}

#[async_trait]
impl Store for RedisStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn epoch(&self) -> u64 {
        self.inner.epoch.current()
    }

    /// Written once for every Redis store, over the command layer (`redis_ext.rs`).
    fn extensions(&self) -> Option<&dyn StoreExtensions> {
        Some(self)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        commands::get(self, key).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, StoreError> {
        commands::get_many(self, keys).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        commands::set(self, key, &value, ttl).await
    }

    async fn set_many(&self, entries: &[(String, Bytes, Duration)]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        RedisStore::run_pipeline::<()>(self, &commands::set_many_pipeline(entries)).await
    }

    async fn delete(&self, keys: &[String]) -> Result<u64, StoreError> {
        commands::delete(self, keys).await
    }

    async fn write_record(&self, write: &RecordWrite) -> Result<WriteOutcome, StoreError> {
        let mut invocation = self.inner.script.prepare_invoke();
        for key in record_write_keys(write) {
            invocation.key(key);
        }
        for arg in record_write_args(write) {
            invocation.arg(arg);
        }
        let mut conn = self.connection().await?;
        let reply: (i64, u64, i64) = self.within(invocation.invoke_async(&mut conn)).await?;
        Ok(record_write_outcome(reply))
    }

    async fn scan(&self, pattern: &str, cursor: u64, count: usize) -> Result<ScanPage, StoreError> {
        commands::scan(self, pattern, cursor, count).await
    }
}
