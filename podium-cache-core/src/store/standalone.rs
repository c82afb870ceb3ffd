//! [`RedisStore`]: Redis or Valkey through one multiplexed connection that reconnects by
//! itself ([`Redis`] over [`Standalone`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionAddr, RedisError};
use tokio::sync::Mutex;

use super::commands;
use super::redis::{Entry, Mode, Redis, Shared};
use super::tls::{self, RedisCa};
use super::{ScanPage, StoreError};
use crate::config::Secret;

/// A [`Store`](super::Store) on Redis or Valkey: one multiplexed connection (redis crate
/// `ConnectionManager`) shared by every task, reconnecting by itself; `MGET` for multi-key
/// reads; the record write is one Lua script, so the stale-set guard is atomic on the server.
pub type RedisStore = Redis<Standalone>;

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
        let mode = Standalone {
            client,
            manager: Mutex::new(None),
        };
        Ok(Redis::new(mode, self.call_timeout).warm_up().await)
    }
}

/// How a [`RedisStore`] reaches its server: one `ConnectionManager`, made on first use.
pub struct Standalone {
    client: Client,
    manager: Mutex<Option<ConnectionManager>>,
}

impl std::fmt::Debug for Standalone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client's connection info may carry a password.
        f.debug_struct("Standalone").finish_non_exhaustive()
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
}

#[async_trait]
impl Mode for Standalone {
    type Connection = ConnectionManager;
    const NAME: &'static str = "redis";

    async fn connection(&self, shared: &Arc<Shared>) -> Result<ConnectionManager, StoreError> {
        let mut slot = self.manager.lock().await;
        if let Some(manager) = slot.as_ref() {
            return Ok(manager.clone());
        }
        let mut config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(shared.call_timeout.max(Duration::from_millis(100))))
            .set_response_timeout(Some(shared.call_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        if self
            .client
            .get_connection_info()
            .redis_settings()
            .protocol()
            .supports_resp3()
        {
            // On RESP3 the manager reconnects as soon as the connection drops, before any call
            // fails: the disconnection notice is the only sign of it.
            let shared = Arc::downgrade(shared);
            config = config.set_push_sender(move |push: redis::PushInfo| {
                if push.kind == redis::PushKind::Disconnection {
                    if let Some(shared) = shared.upgrade() {
                        shared.epoch.advance();
                    }
                }
                Ok::<(), std::convert::Infallible>(())
            });
        }
        let connected = tokio::time::timeout(
            shared.call_timeout * 4,
            self.client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| StoreError::Timeout(shared.call_timeout * 4))
        .and_then(|made| made.map_err(|e| self.connect_error(e)));
        let manager = shared.epoch.watch(connected)?;
        shared.epoch.advance();
        *slot = Some(manager.clone());
        Ok(manager)
    }

    /// Unreachable, dropped, refused or timed out: [`StoreError::Unavailable`]; anything else:
    /// [`StoreError::Protocol`].
    fn map_err(&self, err: RedisError, _call_timeout: Duration) -> StoreError {
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

    /// One pipeline for every entry.
    fn pipelines<'a>(&self, entries: &'a [Entry]) -> Vec<Vec<&'a Entry>> {
        vec![entries.iter().collect()]
    }

    /// One server holds every key: any record write goes.
    fn check_record_write(&self, _keys: &[&str]) -> Result<(), StoreError> {
        Ok(())
    }

    async fn scan(
        store: &Redis<Self>,
        pattern: &str,
        cursor: u64,
        count: usize,
    ) -> Result<ScanPage, StoreError> {
        commands::scan(store, pattern, cursor, count).await
    }
}

impl Standalone {
    /// A failed connection attempt as a store error. A plain `redis://` connection that the
    /// server drops at once (rather than refuses) is what a TLS-only server does, as managed
    /// Redis services are: the error says so.
    fn connect_error(&self, err: RedisError) -> StoreError {
        let plain = matches!(
            self.client.get_connection_info().addr(),
            ConnectionAddr::Tcp(..)
        );
        let dropped = err.is_connection_dropped() && !err.is_connection_refusal();
        match self.map_err(err, Duration::ZERO) {
            StoreError::Unavailable(message) if plain && dropped => StoreError::Unavailable(
                format!("{message} (the server closed the connection: if it speaks TLS only, as managed Redis services do, use a rediss:// URL)"),
            ),
            other => other,
        }
    }
}
