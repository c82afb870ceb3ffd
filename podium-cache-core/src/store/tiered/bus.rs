//! The invalidation link of a [`TieredStore`](super::TieredStore): Redis pub/sub on
//! `{prefix}:inval`. A message is `{origin}\n{key}\n{key}…`; `origin` names the instance that
//! sent it, which skips its own messages (it evicted locally before publishing).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Client;
use tokio::sync::Mutex;
use tracing::Instrument;

use super::tier::{inc, TypedTier};
use crate::store::tls::{self, RedisCa};
use crate::store::StoreError;

/// First wait before resubscribing after a lost link; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(20);
/// Longest wait between two subscription attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Where and how the link talks to Redis.
#[derive(Clone, Debug)]
pub(super) struct BusConfig {
    pub(super) channel: String,
    pub(super) origin: String,
    pub(super) call_timeout: Duration,
    pub(super) ping_interval: Duration,
}

/// Publishes invalidations (one multiplexed, self-reconnecting connection) and owns the
/// subscriber task, which ends when the bus is dropped.
pub(super) struct Bus {
    clients: Vec<Client>,
    config: BusConfig,
    publisher: Mutex<Option<ConnectionManager>>,
    subscriber: tokio::task::JoinHandle<()>,
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

impl Bus {
    /// Validates the node URLs and starts the subscriber task (the tier serves once the
    /// subscription is confirmed). Must be called within a Tokio runtime.
    pub(super) fn start(
        urls: &[String],
        ca: Option<&RedisCa>,
        config: BusConfig,
        tier: Arc<TypedTier>,
    ) -> Result<Self, StoreError> {
        if urls.is_empty() {
            return Err(StoreError::Unavailable(
                "the in-process tier needs a redis URL for its invalidation link".into(),
            ));
        }
        let clients = urls
            .iter()
            .map(|url| {
                tls::client(url, ca).map_err(|e| {
                    StoreError::Unavailable(format!("invalid invalidation-link URL: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let span = tracing::info_span!("l1.link", channel = %config.channel);
        let subscriber =
            tokio::spawn(run_link(clients.clone(), config.clone(), tier).instrument(span));
        Ok(Self {
            clients,
            config,
            publisher: Mutex::new(None),
            subscriber,
        })
    }

    /// Publishes the invalidation of `keys`; returns once Redis has queued the message for
    /// every subscriber, or fails.
    pub(super) async fn publish(&self, keys: &[&str]) -> Result<(), StoreError> {
        let mut payload = String::with_capacity(
            self.config.origin.len() + keys.iter().map(|k| k.len() + 1).sum::<usize>(),
        );
        payload.push_str(&self.config.origin);
        for key in keys {
            payload.push('\n');
            payload.push_str(key);
        }
        let mut conn = self.publisher().await?;
        let timeout = self.config.call_timeout;
        let result = tokio::time::timeout(
            timeout,
            redis::cmd("PUBLISH")
                .arg(&self.config.channel)
                .arg(payload)
                .query_async::<i64>(&mut conn),
        )
        .await;
        match result {
            Ok(Ok(_receivers)) => Ok(()),
            Ok(Err(err)) => {
                // Next call starts from a fresh connection (possibly to another node).
                *self.publisher.lock().await = None;
                Err(StoreError::Unavailable(format!(
                    "invalidation not published: {err}"
                )))
            }
            Err(_) => Err(StoreError::Timeout(timeout)),
        }
    }

    async fn publisher(&self) -> Result<ConnectionManager, StoreError> {
        let mut slot = self.publisher.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let timeout = self.config.call_timeout;
        let mut last = StoreError::Unavailable("no invalidation-link node".into());
        for client in &self.clients {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout.max(Duration::from_millis(100))))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(200));
            match tokio::time::timeout(
                timeout * 4,
                client.get_connection_manager_with_config(config),
            )
            .await
            {
                Ok(Ok(conn)) => {
                    *slot = Some(conn.clone());
                    return Ok(conn);
                }
                Ok(Err(err)) => {
                    last = StoreError::Unavailable(format!("invalidation link: {err}"));
                }
                Err(_) => last = StoreError::Timeout(timeout * 4),
            }
        }
        Err(last)
    }
}

/// Keeps a subscription up for as long as the bus lives: subscribe, switch the tier on, evict
/// what other instances announce, ping; on any failure switch the tier off (flushed, bypassed)
/// and subscribe again, trying the nodes in turn.
async fn run_link(clients: Vec<Client>, config: BusConfig, tier: Arc<TypedTier>) {
    let mut backoff = MIN_BACKOFF;
    let mut node = 0usize;
    let mut failures = 0u64;
    loop {
        let client = &clients[node % clients.len()];
        match subscribe(client, &config).await {
            Ok(pubsub) => {
                if failures > 0 {
                    tracing::info!(
                        attempts = failures,
                        "invalidation link back: the in-process tier serves again"
                    );
                } else {
                    tracing::debug!("invalidation link up: the in-process tier serves");
                }
                failures = 0;
                backoff = MIN_BACKOFF;
                tier.set_serving(true);
                let reason = pump(pubsub, &config, &tier).await;
                tier.link_lost();
                tracing::warn!(
                    reason,
                    "invalidation link lost: the in-process tier is flushed and bypassed until it is back"
                );
            }
            Err(err) => {
                failures += 1;
                node = node.wrapping_add(1);
                if failures == 1 || failures.is_multiple_of(50) {
                    tracing::warn!(error = %err, attempts = failures, "invalidation link: subscribe failed");
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One subscription, confirmed by the server.
async fn subscribe(client: &Client, config: &BusConfig) -> Result<redis::aio::PubSub, String> {
    let deadline = config.call_timeout * 4;
    let attempt = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&config.channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(deadline, attempt).await {
        Ok(Ok(pubsub)) => Ok(pubsub),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no confirmation within {deadline:?}")),
    }
}

/// Applies messages until the subscription ends or stops answering pings; why it ended.
async fn pump(pubsub: redis::aio::PubSub, config: &BusConfig, tier: &TypedTier) -> &'static str {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => apply(message.get_payload_bytes(), config, tier),
                None => return "connection closed",
            },
            _ = ping.tick() => {
                let answer = tokio::time::timeout(
                    config.call_timeout * 4,
                    sink.ping::<redis::Value>(),
                )
                .await;
                if !matches!(answer, Ok(Ok(_))) {
                    return "no answer to PING";
                }
            }
        }
    }
}

/// Evicts the keys of one message (unless this instance sent it).
fn apply(payload: &[u8], config: &BusConfig, tier: &TypedTier) {
    let Ok(text) = std::str::from_utf8(payload) else {
        // Which keys it meant is unknown: forget everything rather than miss one.
        tracing::warn!("invalidation message is not UTF-8; flushing the in-process tier");
        tier.flush();
        return;
    };
    let mut lines = text.split('\n');
    if lines.next() == Some(config.origin.as_str()) {
        return;
    }
    for key in lines.filter(|k| !k.is_empty()) {
        tier.invalidate(key);
    }
    inc(&tier.counters().broadcasts_received);
}
