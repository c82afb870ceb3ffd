//! ONE behaviour suite for every `Store` (`store_suite/`): each behaviour runs against the
//! in-memory store, against a real redis-server started on a free loopback port, and against a
//! real 3-master Redis Cluster.
//!
//! The cluster is started once per test binary ([`RedisCluster::shared`], ~1-2 s) rather than
//! once per test. The bodies use fixed key names ("a", "p:gen:e:{r1}", …), so the cluster tests
//! take turns: each holds [`CLUSTER_TURN`] for its whole run and starts from an empty keyspace
//! (`FLUSHALL` on every master). Namespacing the keys instead would have meant a key-rewriting
//! wrapper between the suite and the store under test; taking turns tests the store as it is and
//! costs well under a second per test.

mod store_suite;

use std::sync::Arc;
use std::time::Duration;

use podium_cache_core::store::{MemoryStore, RedisClusterStore, RedisStore, Store};
use podium_local::redis::RedisServer;
use podium_local::redis_cluster::RedisCluster;

/// Held by a cluster test for its whole run: the tests share one cluster and its keyspace.
static CLUSTER_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A store on the binary's shared cluster, emptied for the caller, who must hold
/// [`CLUSTER_TURN`].
async fn empty_cluster_store() -> Arc<dyn Store> {
    let cluster = tokio::task::spawn_blocking(RedisCluster::shared)
        .await
        .expect("starting the cluster panicked")
        .expect("redis cluster");
    cluster.flush_all().expect("FLUSHALL on every master");
    // Generous for debug builds on a loaded 2-core machine; production keeps 250 ms.
    let store = RedisClusterStore::builder(cluster.nodes())
        .call_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect to the cluster");
    Arc::new(store)
}

use store_suite::store_suite;

async fn memory() -> (Arc<dyn Store>, ()) {
    (Arc::new(MemoryStore::new(10_000)), ())
}

async fn redis() -> (Arc<dyn Store>, RedisServer) {
    let server = RedisServer::start().expect("redis-server");
    let store = RedisStore::connect(&server.url()).await.expect("connect");
    (Arc::new(store), server)
}

async fn cluster() -> (Arc<dyn Store>, tokio::sync::MutexGuard<'static, ()>) {
    let turn = CLUSTER_TURN.lock().await;
    let store = empty_cluster_store().await;
    assert_eq!(store.name(), "redis-cluster");
    (store, turn)
}

store_suite!(memory, memory());
store_suite!(redis, redis());
store_suite!(cluster, cluster());
