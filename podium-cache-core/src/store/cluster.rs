//! [`RedisClusterStore`]: a Redis or Valkey Cluster through the redis crate's async cluster client
//! ([`Redis`] over [`Cluster`]; everything that is the same commands as on one server lives in
//! `redis.rs`).
//!
//! How each operation meets the cluster's hash slots:
//! - single-key commands go to the master of the key's slot (the client follows `MOVED`/`ASK`
//!   and refreshes its slot map by itself);
//! - `get_many` is one `MGET` and `delete` one `DEL`: the client splits them into one command per
//!   slot, sends those concurrently and puts the answers back in the order of the keys (`DEL`
//!   counts are summed);
//! - `set_many` groups the entries by slot and sends one pipeline per slot, concurrently;
//! - the record write is the shared Lua script (see `script.rs`); every key of one record carries
//!   the record id as a hash tag, so the script is single-slot, and a write whose keys are not is
//!   refused before it is sent;
//! - `scan` walks the masters one after the other (ordered by their first slot): the high 16
//!   bits of the cursor say which master, the low 48 bits are that master's own `SCAN` cursor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{ErrorKind, RedisError, ServerErrorKind, Value};
use tokio::sync::Mutex;

use super::commands;
use super::redis::{Entry, Mode, Redis, Shared};
use super::tls::RedisCa;
use super::{ScanPage, StoreError};

/// Bits of a [`ScanPage::cursor`] that carry one master's own `SCAN` cursor; the bits above
/// them carry the master's index.
const NODE_CURSOR_BITS: u32 = 48;
/// Mask of the node cursor within a store cursor.
const NODE_CURSOR_MASK: u64 = (1 << NODE_CURSOR_BITS) - 1;
/// After a failed connection attempt, calls fail at once for this long instead of each trying
/// (and waiting) again, so a cluster that is down costs reads nothing but a fall-through.
const CONNECT_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Calls in a row that got no answer at all within the call timeout, after which the shared
/// connection counts as wedged and the next call makes a new one.
///
/// The redis crate's cluster connection (1.8) can stop answering for good: after a master comes
/// back, its background task may start a slot refresh that waits forever for its own connection
/// table's lock, and while a refresh runs it polls nothing else, so every later command waits
/// in its queue (no node receives anything; the node that came back sees connections opened
/// and never written to). A new connection has a new task and table; dropping the last clone
/// of the old one aborts its task.
const WEDGED_AFTER_TIMEOUTS: u32 = 3;

/// Configures a [`RedisClusterStore`].
///
/// ```no_run
/// # async fn demo() -> Result<(), podium_cache_core::store::StoreError> {
/// use podium_cache_core::store::RedisClusterStore;
/// use std::time::Duration;
/// let store = RedisClusterStore::builder(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"])
///     .call_timeout(Duration::from_millis(250))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisClusterStoreBuilder {
    nodes: Vec<String>,
    call_timeout: Duration,
    ca: Option<RedisCa>,
}

impl std::fmt::Debug for RedisClusterStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Seed URLs may carry a password: only their number is shown.
        f.debug_struct("RedisClusterStoreBuilder")
            .field("seed_nodes", &self.nodes.len())
            .field("call_timeout", &self.call_timeout)
            .field("ca", &self.ca)
            .finish()
    }
}

impl RedisClusterStoreBuilder {
    /// How long one store call may take before it counts as failed (default 250 ms), so a slow
    /// or unreachable cluster makes reads fall through to the source instead of piling up.
    /// Calls that touch several slots (`get_many`, `set_many`, `delete`) get this budget as a
    /// whole.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Trusts `ca` (a private certificate authority) instead of the public roots; the seed
    /// nodes must then be `rediss://` URLs, and every node the cluster names is reached over
    /// TLS.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use podium_cache_core::store::{RedisCa, RedisClusterStore};
    /// let ca = RedisCa::from_pem(std::fs::read("/etc/redis/ca.pem")?)?;
    /// let store = RedisClusterStore::builder(["rediss://10.0.0.1:7000"])
    ///     .ca(ca)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn ca(mut self, ca: RedisCa) -> Self {
        self.ca = Some(ca);
        self
    }

    /// Validates the seed node URLs and connects. A cluster that is down now is not an error:
    /// the store answers [`StoreError::Unavailable`] until it can connect, and connects by
    /// itself on a later call; once connected, the client follows slot moves and failovers and
    /// reconnects to nodes that come back.
    pub async fn connect(self) -> Result<RedisClusterStore, StoreError> {
        if self.nodes.is_empty() {
            return Err(StoreError::Unavailable(
                "invalid redis_cluster_nodes: no seed node given".into(),
            ));
        }
        if self.ca.is_some() && !self.nodes.iter().all(|n| n.starts_with("rediss://")) {
            return Err(StoreError::Unavailable(
                "invalid redis_cluster_nodes: a CA is given, so every seed node must be a rediss:// URL".into(),
            ));
        }
        let mut builder = ClusterClientBuilder::new(self.nodes.iter().map(String::as_str));
        if let Some(ca) = &self.ca {
            builder = builder.certs(ca.certificates());
        }
        let client = builder
            .connection_timeout(self.call_timeout.max(Duration::from_millis(100)))
            .response_timeout(self.call_timeout)
            // Each call is bounded by `call_timeout` here; inside it the client may retry
            // (redirects, a reconnect) as often as fits, quickly rather than after its default
            // 1.28 s minimum wait.
            .overall_response_timeout(None)
            .retries(4)
            .min_retry_wait(10)
            .max_retry_wait(100)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("invalid redis_cluster_nodes: {e}")))?;
        let mode = Cluster {
            client,
            connection: Mutex::new(ConnectionSlot::default()),
            seed_nodes: self.nodes.len(),
            timeouts_in_a_row: AtomicU32::new(0),
        };
        Ok(Redis::new(mode, self.call_timeout).warm_up().await)
    }
}

/// A [`Store`](super::Store) on a Redis or Valkey Cluster.
///
/// One async cluster connection (redis crate `cluster_async`) is shared by every task; it keeps a
/// multiplexed connection per node, routes each command to the master of its key's slot,
/// follows `MOVED`/`ASK`, and refreshes the slot map and reconnects by itself. Same semantics as
/// [`RedisStore`](super::RedisStore): a per-call timeout, errors mapped to
/// [`StoreError::Unavailable`], [`StoreError::Timeout`] and [`StoreError::Protocol`], and a lazy
/// connection (a cluster that is down at start is not an error). See the module documentation
/// for how multi-key operations and `scan` cross slots.
///
/// ```no_run
/// # async fn demo() -> Result<(), podium_cache_core::store::StoreError> {
/// use podium_cache_core::store::{RedisClusterStore, Store};
/// use std::time::Duration;
/// let store = RedisClusterStore::connect(["redis://127.0.0.1:7000"]).await?;
/// store.set("podium:a", "1".into(), Duration::from_secs(60)).await?;
/// store.set("podium:b", "2".into(), Duration::from_secs(60)).await?;
/// // The two keys live in different slots; one call still answers both, in order.
/// let values = store.get_many(&["podium:b".into(), "podium:a".into()]).await?;
/// assert_eq!(values[0].as_deref(), Some(&b"2"[..]));
/// # Ok(()) }
/// ```
pub type RedisClusterStore = Redis<Cluster>;

/// How a [`RedisClusterStore`] reaches its cluster: one async cluster connection, made on first
/// use.
pub struct Cluster {
    client: ClusterClient,
    connection: Mutex<ConnectionSlot>,
    seed_nodes: usize,
    /// Calls since the last answer that timed out (see [`WEDGED_AFTER_TIMEOUTS`]).
    timeouts_in_a_row: AtomicU32,
}

/// The shared connection once made, and when the last attempt to make it failed.
#[derive(Default)]
struct ConnectionSlot {
    connection: Option<ClusterConnection>,
    failed_at: Option<Instant>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Seed URLs may carry a password: only their number is shown.
        f.debug_struct("Cluster")
            .field("seed_nodes", &self.seed_nodes)
            .finish_non_exhaustive()
    }
}

impl RedisClusterStore {
    /// A builder for the cluster reachable through `nodes` (seed node URLs,
    /// `redis://[:password@]host:port`; one reachable seed is enough, the client discovers the
    /// rest).
    pub fn builder<I, S>(nodes: I) -> RedisClusterStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisClusterStoreBuilder {
            nodes: nodes.into_iter().map(Into::into).collect(),
            call_timeout: Duration::from_millis(250),
            ca: None,
        }
    }

    /// Connects with the default options.
    pub async fn connect<I, S>(nodes: I) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::builder(nodes).connect().await
    }
}

#[async_trait]
impl Mode for Cluster {
    type Connection = ClusterConnection;
    const NAME: &'static str = "redis-cluster";

    /// The shared cluster connection, made on first use (and again after a failed attempt, at
    /// most every [`CONNECT_RETRY_INTERVAL`]).
    async fn connection(&self, shared: &Arc<Shared>) -> Result<ClusterConnection, StoreError> {
        let mut slot = self.connection.lock().await;
        if slot.connection.is_some() && self.is_wedged() {
            tracing::warn!(
                timeouts_in_a_row = WEDGED_AFTER_TIMEOUTS,
                "the redis cluster connection answers nothing; making a new one"
            );
            slot.connection = None;
            self.timeouts_in_a_row.store(0, Ordering::Relaxed);
            shared.epoch.advance();
        }
        if let Some(connection) = slot.connection.as_ref() {
            return Ok(connection.clone());
        }
        if let Some(failed_at) = slot.failed_at {
            if failed_at.elapsed() < CONNECT_RETRY_INTERVAL {
                return Err(StoreError::Unavailable(
                    "redis cluster not reachable (connect failed moments ago)".into(),
                ));
            }
        }
        let budget = shared.call_timeout * 4;
        let attempt = tokio::time::timeout(budget, self.client.get_async_connection()).await;
        match attempt {
            Ok(Ok(connection)) => {
                tracing::info!(
                    seed_nodes = self.seed_nodes,
                    "connected to the redis cluster"
                );
                slot.connection = Some(connection.clone());
                slot.failed_at = None;
                shared.epoch.advance();
                Ok(connection)
            }
            Ok(Err(err)) => {
                slot.failed_at = Some(Instant::now());
                shared.epoch.advance();
                Err(self.map_err(err, shared.call_timeout))
            }
            Err(_) => {
                slot.failed_at = Some(Instant::now());
                shared.epoch.advance();
                Err(StoreError::Timeout(budget))
            }
        }
    }

    fn map_err(&self, err: RedisError, call_timeout: Duration) -> StoreError {
        map_err(err, call_timeout)
    }

    /// Counts calls in a row that nothing answered; any answer starts the count again.
    fn call_ended(&self, timed_out: bool) {
        if timed_out {
            self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed);
        } else {
            self.timeouts_in_a_row.store(0, Ordering::Relaxed);
        }
    }

    /// A cluster pipeline must stay within one slot: one pipeline per slot.
    fn pipelines<'a>(&self, entries: &'a [Entry]) -> Vec<Vec<&'a Entry>> {
        let mut by_slot: HashMap<Slot, Vec<&Entry>> = HashMap::new();
        for entry in entries {
            by_slot
                .entry(Slot::for_key(&entry.0))
                .or_default()
                .push(entry);
        }
        by_slot.into_values().collect()
    }

    /// Every key of one record write must be in one slot (the record id as hash tag).
    fn check_record_write(&self, keys: &[&str]) -> Result<(), StoreError> {
        let Some(first) = keys.first() else {
            return Ok(());
        };
        let slot = Slot::for_key(first);
        match keys.iter().find(|key| Slot::for_key(key) != slot) {
            Some(stray) => Err(StoreError::Protocol(format!(
                "record write spans hash slots: {stray:?} is not in the slot of {first:?} \
                 (every key of one record needs the same hash tag)"
            ))),
            None => Ok(()),
        }
    }

    /// The masters one after the other: see the module documentation.
    async fn scan(
        store: &Redis<Self>,
        pattern: &str,
        cursor: u64,
        count: usize,
    ) -> Result<ScanPage, StoreError> {
        let mut connection = store.connection().await?;
        let masters = Cluster::masters(store, &mut connection).await?;
        let (index, node_cursor) = split_cursor(cursor);
        let Some(master) = masters.get(index) else {
            return Err(StoreError::Protocol(format!(
                "scan cursor {cursor} names master {index}, but the cluster now has {} masters",
                masters.len()
            )));
        };
        let cmd = commands::scan_cmd(node_cursor, pattern, count);
        let reply = store
            .within(connection.route_command(cmd, master.routing()))
            .await?;
        let reply = reply
            .extract_error()
            .map_err(|e| store.mode().map_err(e, store.call_timeout()))?;
        let (node_next, keys): (u64, Vec<String>) =
            redis::from_redis_value(reply).map_err(|e| StoreError::Protocol(e.to_string()))?;
        let cursor = next_cursor(index, node_next, masters.len())?;
        tracing::trace!(
            master = index,
            masters = masters.len(),
            keys = keys.len(),
            cursor,
            "scan page"
        );
        Ok(ScanPage { cursor, keys })
    }
}

impl Cluster {
    /// Whether the last [`WEDGED_AFTER_TIMEOUTS`] calls all went unanswered.
    fn is_wedged(&self) -> bool {
        self.timeouts_in_a_row.load(Ordering::Relaxed) >= WEDGED_AFTER_TIMEOUTS
    }

    /// The masters, ordered by the first slot each serves (the order every caller agrees on,
    /// whichever node answers), from `CLUSTER SLOTS`.
    async fn masters(
        store: &RedisClusterStore,
        connection: &mut ClusterConnection,
    ) -> Result<Vec<Master>, StoreError> {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SLOTS");
        let reply = store
            .within(
                connection
                    .route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random)),
            )
            .await?;
        let reply = reply
            .extract_error()
            .map_err(|e| store.mode().map_err(e, store.call_timeout()))?;
        parse_masters(reply)
    }
}

/// One master of the cluster, as `scan` addresses it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Master {
    /// The lowest slot it serves.
    first_slot: u16,
    /// Its address as the cluster announces it (`None` when the cluster does not say).
    host: Option<String>,
    port: u16,
}

impl Master {
    /// Routes to exactly this node when its address is known. (Routing by slot would also
    /// work, but the client sends a slot's command to another node while the slot's master is
    /// disconnected; for a keyless `SCAN` that would silently scan the wrong node.)
    fn routing(&self) -> RoutingInfo {
        RoutingInfo::SingleNode(match &self.host {
            Some(host) => SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port: self.port,
            },
            None => {
                SingleNodeRoutingInfo::SpecificNode(Route::new(self.first_slot, SlotAddr::Master))
            }
        })
    }
}

/// Reads the masters out of a `CLUSTER SLOTS` reply:
/// `[[start, end, [host, port, id, …], replicas…], …]`.
fn parse_masters(reply: Value) -> Result<Vec<Master>, StoreError> {
    let Value::Array(ranges) = reply else {
        return Err(StoreError::Protocol(format!(
            "CLUSTER SLOTS answered {reply:?}, not an array"
        )));
    };
    // Keyed by node id when given (else by address): one master may serve several ranges.
    let mut masters: HashMap<String, Master> = HashMap::new();
    for range in ranges {
        let Value::Array(items) = range else { continue };
        let (Some(Value::Int(start)), Some(Value::Array(node))) = (items.first(), items.get(2))
        else {
            continue;
        };
        let (Ok(start), Some(Value::Int(port))) = (u16::try_from(*start), node.get(1)) else {
            continue;
        };
        let Ok(port) = u16::try_from(*port) else {
            continue;
        };
        let host = node
            .first()
            .and_then(text)
            .filter(|h| !h.is_empty() && h != "?");
        let identity = node
            .get(2)
            .and_then(text)
            .unwrap_or_else(|| format!("{}:{port}", host.as_deref().unwrap_or("")));
        let master = masters.entry(identity).or_insert(Master {
            first_slot: start,
            host,
            port,
        });
        master.first_slot = master.first_slot.min(start);
    }
    if masters.is_empty() {
        return Err(StoreError::Unavailable(
            "the cluster reports no slot served by any master".into(),
        ));
    }
    let mut masters: Vec<Master> = masters.into_values().collect();
    masters.sort_by_key(|m| m.first_slot);
    Ok(masters)
}

/// A bulk or simple string reply as text.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Splits a store cursor into the master's index and that master's cursor.
fn split_cursor(cursor: u64) -> (usize, u64) {
    let index = usize::try_from(cursor >> NODE_CURSOR_BITS).unwrap_or(usize::MAX);
    (index, cursor & NODE_CURSOR_MASK)
}

/// The store cursor after master `index` of `masters` answered `node_cursor`: the same master
/// while it has more, else the next master from its start, else 0 (done).
fn next_cursor(index: usize, node_cursor: u64, masters: usize) -> Result<u64, StoreError> {
    if node_cursor > NODE_CURSOR_MASK {
        return Err(StoreError::Protocol(format!(
            "a master's SCAN cursor {node_cursor} does not fit in {NODE_CURSOR_BITS} bits"
        )));
    }
    let index = index as u64;
    Ok(if node_cursor != 0 {
        (index << NODE_CURSOR_BITS) | node_cursor
    } else if index + 1 < masters as u64 {
        (index + 1) << NODE_CURSOR_BITS
    } else {
        0
    })
}

/// Maps a redis error: unreachable nodes and a cluster in transition (down, failing over,
/// moving slots past the retries) are [`StoreError::Unavailable`], a client-side timeout is
/// [`StoreError::Timeout`], anything else is [`StoreError::Protocol`].
fn map_err(err: RedisError, call_timeout: Duration) -> StoreError {
    if err.is_timeout() {
        return StoreError::Timeout(call_timeout);
    }
    let transient = matches!(
        err.kind(),
        ErrorKind::ClusterConnectionNotFound
            | ErrorKind::Server(
                ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::BusyLoading
                    | ServerErrorKind::Moved
                    | ServerErrorKind::Ask
                    | ServerErrorKind::ReadOnly
            )
    );
    if transient || err.is_io_error() || err.is_connection_dropped() || err.is_connection_refusal()
    {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Protocol(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn range(start: i64, end: i64, host: &str, port: i64, id: &str) -> Value {
        Value::Array(vec![
            Value::Int(start),
            Value::Int(end),
            Value::Array(vec![bulk(host), Value::Int(port), bulk(id)]),
        ])
    }

    fn offline_cluster() -> Cluster {
        Cluster {
            client: ClusterClientBuilder::new(["redis://127.0.0.1:1"])
                .build()
                .expect("client"),
            connection: Mutex::new(ConnectionSlot::default()),
            seed_nodes: 1,
            timeouts_in_a_row: AtomicU32::new(0),
        }
    }

    #[test]
    fn only_unanswered_calls_in_a_row_mark_the_connection_wedged() {
        let cluster = offline_cluster();
        for _ in 1..WEDGED_AFTER_TIMEOUTS {
            cluster.call_ended(true);
        }
        assert!(!cluster.is_wedged(), "one timeout short");
        // Any answer (a reply or an error) starts the count again.
        cluster.call_ended(false);
        for _ in 1..WEDGED_AFTER_TIMEOUTS {
            cluster.call_ended(true);
        }
        assert!(!cluster.is_wedged(), "the answer reset the count");
        cluster.call_ended(true);
        assert!(cluster.is_wedged());
    }

    #[test]
    fn masters_are_ordered_by_first_slot_and_merge_their_ranges() {
        let reply = Value::Array(vec![
            range(10923, 16383, "127.0.0.1", 7002, "c"),
            range(0, 5460, "127.0.0.1", 7000, "a"),
            range(5461, 10000, "127.0.0.1", 7001, "b"),
            range(10001, 10922, "127.0.0.1", 7000, "a"),
        ]);
        let masters = parse_masters(reply).expect("masters");
        let order: Vec<(u16, u16)> = masters.iter().map(|m| (m.first_slot, m.port)).collect();
        assert_eq!(order, [(0, 7000), (5461, 7001), (10923, 7002)]);
    }

    #[test]
    fn a_master_without_address_is_routed_by_its_slot() {
        let masters =
            parse_masters(Value::Array(vec![range(0, 16383, "", 7000, "a")])).expect("masters");
        assert_eq!(masters.len(), 1);
        assert_eq!(masters[0].host, None);
        assert_eq!(
            masters[0].routing(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                0,
                SlotAddr::Master
            )))
        );
    }

    #[test]
    fn an_empty_slot_table_is_unavailable() {
        assert!(matches!(
            parse_masters(Value::Array(vec![])),
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            parse_masters(Value::Nil),
            Err(StoreError::Protocol(_))
        ));
    }

    #[test]
    fn the_cursor_walks_each_master_then_the_next_then_ends() {
        // Master 0 has more.
        let c = next_cursor(0, 17, 3).expect("cursor");
        assert_eq!(split_cursor(c), (0, 17));
        // Master 0 is done: master 1 from its start (a non-zero cursor).
        let c = next_cursor(0, 0, 3).expect("cursor");
        assert_ne!(c, 0);
        assert_eq!(split_cursor(c), (1, 0));
        // Master 2 has more, with a large node cursor.
        let c = next_cursor(2, NODE_CURSOR_MASK, 3).expect("cursor");
        assert_eq!(split_cursor(c), (2, NODE_CURSOR_MASK));
        // The last master is done: the scan is complete.
        assert_eq!(next_cursor(2, 0, 3).expect("cursor"), 0);
        // A node cursor that does not fit is refused, not truncated.
        assert!(next_cursor(0, NODE_CURSOR_MASK + 1, 3).is_err());
    }

    #[test]
    fn cluster_states_and_unreachable_nodes_are_unavailable() {
        let down = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ClusterDown),
            "CLUSTERDOWN",
        ));
        assert!(matches!(
            map_err(down, Duration::from_millis(1)),
            StoreError::Unavailable(_)
        ));
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            map_err(io, Duration::from_millis(1)),
            StoreError::Unavailable(_)
        ));
        let cross = RedisError::from((ErrorKind::Server(ServerErrorKind::CrossSlot), "CROSSSLOT"));
        assert!(matches!(
            map_err(cross, Duration::from_millis(1)),
            StoreError::Protocol(_)
        ));
    }
}
