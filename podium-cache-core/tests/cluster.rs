//! The cache on a real Redis Cluster: the read-through engine over [`RedisClusterStore`] and the
//! local Airtable server, the cluster-specific parts of the store (slots, masters), and a store
//! that outlives the cluster being down.
//!
//! The engine tests share one 3-master cluster per test binary ([`RedisCluster::shared`]) and
//! run side by side, each under its own key prefix. The fault test starts its own cluster.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{assert_setup_error_names, harness, now_ms, Event, Harness, StoreKind, BASE, TABLE};
use podium_cache_core::cache::Cache;
use podium_cache_core::config::{ConfigError, Settings};
use podium_cache_core::store::{Condition, RecordWrite, RedisClusterStore, Store, StoreError};
use podium_cache_core::UpsertOutcome;
use podium_local::redis_cluster::RedisCluster;

const MINUTE: Duration = Duration::from_secs(60);

/// The binary's shared cluster (started on first use).
async fn shared_cluster() -> &'static RedisCluster {
    tokio::task::spawn_blocking(RedisCluster::shared)
        .await
        .expect("starting the cluster panicked")
        .expect("redis cluster")
}

/// A store on `cluster`, with a call timeout generous enough for debug builds on a loaded
/// 2-core machine (production keeps 250 ms).
async fn store_on(cluster: &RedisCluster) -> Arc<RedisClusterStore> {
    let store = RedisClusterStore::builder(cluster.nodes())
        .call_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect to the cluster");
    Arc::new(store)
}

/// The local Airtable server with `records` events, and a cache over the shared cluster whose
/// keys all start with `prefix`.
async fn cluster_harness(records: usize, prefix: &str) -> Harness {
    let mut h = harness(StoreKind::Memory).records(records).start().await;
    let store: Arc<dyn Store> = store_on(shared_cluster().await).await;
    h.cache = Cache::builder(Arc::clone(&store), Arc::clone(&h.source))
        .prefix(prefix)
        .build();
    h.store = store;
    h
}

fn event(id: &str, version: i64) -> Event {
    Event {
        id: id.to_owned(),
        name: format!("v{version}"),
        slug: format!("slug-{version}"),
        version,
        owner: vec![],
    }
}

#[tokio::test]
async fn a_miss_is_fetched_once_then_served_from_the_cluster() {
    let h = cluster_harness(2, "tmiss").await;
    let id = &h.ids[0];
    let first = h.cache.get::<Event>(id).await.unwrap().unwrap();
    assert_eq!(first.name, "Event 0");
    assert_eq!(h.calls(), 1);
    let second = h.cache.get::<Event>(id).await.unwrap().unwrap();
    assert_eq!(first, second);
    assert_eq!(h.calls(), 1, "the second read is a hit");
    let metrics = h.cache.metrics();
    assert_eq!((metrics.hits, metrics.misses), (1, 1));
    assert_eq!(metrics.store_errors, 0, "{metrics:?}");
    // An id Airtable does not have is asked once, then answered from its tombstone.
    assert_eq!(
        h.cache.get::<Event>("recNOPENOPENOPE01").await.unwrap(),
        None
    );
    assert_eq!(
        h.cache.get::<Event>("recNOPENOPENOPE01").await.unwrap(),
        None
    );
    assert_eq!(h.calls(), 2);
    assert_eq!(h.cache.metrics().tombstone_hits, 1);
}

#[tokio::test]
async fn upserts_are_ordered_and_a_delete_leaves_a_tombstone() {
    let h = cluster_harness(2, "tupsert").await;
    let id = h.ids[0].clone();
    let t = now_ms();
    assert_eq!(
        h.cache.upsert(&event(&id, 3), t).await.unwrap(),
        UpsertOutcome::Applied
    );
    assert_eq!(
        h.cache.upsert(&event(&id, 2), t - 1_000).await.unwrap(),
        UpsertOutcome::Stale,
        "an older delivery changes nothing"
    );
    let read: Event = h.cache.get(&id).await.unwrap().unwrap();
    assert_eq!(read.version, 3);
    assert_eq!(h.calls(), 0, "the upsert stored the record: no source call");

    h.cache.delete::<Event>(&id).await.unwrap();
    assert!(
        h.airtable.get(BASE, TABLE, &id).is_none(),
        "deleted in Airtable"
    );
    let calls = h.calls();
    for _ in 0..3 {
        assert_eq!(h.cache.get::<Event>(&id).await.unwrap(), None);
    }
    assert_eq!(h.calls(), calls, "the tombstone answers: no source call");
    assert!(h.cache.get::<Event>(&h.ids[1]).await.unwrap().is_some());
}

#[tokio::test]
async fn get_many_across_slots_answers_in_order_with_one_batch() {
    let h = cluster_harness(30, "tmany").await;
    // The 30 records' keys carry 30 different hash tags: they are spread over the masters.
    h.cache.get::<Event>(&h.ids[3]).await.unwrap();
    let mut ids = h.ids.clone();
    ids.push("recDOESNOTEXIST01".into());
    let records = h.cache.get_many::<Event>(&ids).await.unwrap();
    assert_eq!(records.len(), 31);
    for (id, record) in ids.iter().zip(&records).take(30) {
        assert_eq!(&record.as_ref().unwrap().id, id);
    }
    assert!(records[30].is_none());
    assert_eq!(
        h.calls(),
        2,
        "one get for the first read, one batch for the rest"
    );
    // Every one is now a hit, read back across all slots in one store call.
    let again = h.cache.get_many::<Event>(&ids).await.unwrap();
    assert_eq!(again, records);
    assert_eq!(h.calls(), 2);
}

#[tokio::test]
async fn a_hundred_concurrent_misses_on_one_id_make_one_airtable_call() {
    let h = cluster_harness(1, "tcoalesce").await;
    let id = h.ids[0].clone();
    let readers: Vec<_> = (0..100)
        .map(|_| {
            let cache = h.cache.clone();
            let id = id.clone();
            tokio::spawn(async move { cache.get::<Event>(&id).await })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap().unwrap().unwrap().id, id);
    }
    assert_eq!(h.calls(), 1);
}

#[tokio::test]
async fn scan_visits_every_master_and_finds_every_key() {
    let store = store_on(shared_cluster().await).await;
    let keys: Vec<String> = (0..120).map(|i| format!("tscan:ev:{{rec{i}}}")).collect();
    let entries: Vec<_> = keys
        .iter()
        .map(|k| (k.clone(), Bytes::from_static(b"x"), MINUTE))
        .collect();
    store.set_many(&entries).await.unwrap();
    let mut seen = BTreeSet::new();
    let mut masters_visited = BTreeSet::new();
    let mut cursor = 0;
    for _ in 0..1_000 {
        masters_visited.insert(cursor >> 48);
        let page = store.scan("tscan:ev:*", cursor, 25).await.unwrap();
        seen.extend(page.keys);
        cursor = page.cursor;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(cursor, 0, "the scan must finish");
    assert_eq!(seen, keys.into_iter().collect::<BTreeSet<_>>());
    assert_eq!(
        masters_visited,
        (0..3).collect::<BTreeSet<u64>>(),
        "the cursor walks master 0, 1 and 2"
    );
}

#[tokio::test]
async fn a_record_write_spanning_slots_is_refused_before_it_is_sent() {
    let store = store_on(shared_cluster().await).await;
    let write = RecordWrite {
        version_key: "tspan:gen:e:{r1}".into(),
        condition: Condition::Always,
        bump_generation: true,
        timestamp_ms: None,
        version_ttl: MINUTE,
        set: vec![("tspan:e:h:{r2}".into(), Bytes::from_static(b"x"), MINUTE)],
        delete: vec![],
    };
    let err = store.write_record(&write).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Protocol(m) if m.contains("hash slots")),
        "{err}"
    );
    assert_eq!(
        store.get("tspan:gen:e:{r1}").await.unwrap(),
        None,
        "nothing written"
    );
}

/// Calls `op` until it succeeds or `within` has passed; the time it took.
async fn until_ok<T, F, Fut>(within: Duration, mut op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let started = Instant::now();
    loop {
        match op().await {
            Ok(_) => return started.elapsed(),
            Err(err) => assert!(
                started.elapsed() < within,
                "still failing after {within:?}: {err}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Keys that land on every master (100 hash tags cover the 3 masters' slot ranges).
fn keys_on_every_master() -> Vec<String> {
    (0..100).map(|i| format!("tfault:{{k{i}}}")).collect()
}

#[tokio::test]
async fn a_cluster_down_at_start_is_no_error_and_the_store_reconnects_by_itself() {
    let mut cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .unwrap()
        .expect("redis cluster");
    let nodes = cluster.ports().len();
    for node in 0..nodes {
        cluster.kill(node).unwrap();
    }
    // Down at start: connecting is not an error, and calls fail as unavailable. The call
    // timeout is the harness's, generous for a debug build on a loaded 2-core machine: with
    // 500 ms, a reconnect starved of CPU timed out call after call.
    let store = RedisClusterStore::builder(cluster.nodes())
        .call_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("a cluster that is down is not a setup error");
    // A deadline against a hang (the call's own timeout is 2 s), not a bound on its speed.
    let err = tokio::time::timeout(Duration::from_secs(30), store.get("tfault:{k0}"))
        .await
        .expect("a call to a cluster that is down hung instead of failing")
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_) | StoreError::Timeout(_)),
        "{err}"
    );

    // The cluster comes up: the store connects by itself.
    let mut cluster = tokio::task::spawn_blocking(move || {
        for node in 0..nodes {
            cluster.restart(node).expect("restart");
        }
        cluster
            .wait_until_ok(Duration::from_secs(20))
            .expect("cluster healthy again");
        cluster
    })
    .await
    .unwrap();
    let keys = keys_on_every_master();
    let entries: Vec<_> = keys
        .iter()
        .map(|k| (k.clone(), Bytes::from_static(b"1"), MINUTE))
        .collect();
    until_ok(Duration::from_secs(60), || store.set_many(&entries)).await;
    let values = store.get_many(&keys).await.unwrap();
    assert!(values.iter().all(|v| v.as_deref() == Some(&b"1"[..])));

    // A master dies and comes back (empty: nothing persists): the store reconnects to it.
    let killed = cluster.kill_master(0).unwrap();
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.restart(killed).expect("restart");
        cluster
            .wait_until_ok(Duration::from_secs(20))
            .expect("cluster healthy again");
        cluster
    })
    .await
    .unwrap();
    until_ok(Duration::from_secs(60), || store.set_many(&entries)).await;
    let values = store.get_many(&keys).await.unwrap();
    assert!(values.iter().all(|v| v.as_deref() == Some(&b"1"[..])));
    drop(cluster);
}

fn cluster_settings(nodes: &str) -> Result<Settings, ConfigError> {
    Settings::from_sources(
        None,
        [
            ("PODIUM_REDIS_CLUSTER_NODES", nodes),
            ("PODIUM_AIRTABLE_API_KEY", "patLOCAL"),
            ("PODIUM_AIRTABLE_BASE_ID", BASE),
            ("PODIUM_AIRTABLE_API_URL", "http://127.0.0.1:9"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
}

#[tokio::test]
async fn cluster_nodes_in_the_settings_select_the_cluster_store() {
    let cluster = shared_cluster().await;
    let settings = cluster_settings(&cluster.nodes().join(",")).unwrap();
    assert_eq!(settings.redis_cluster_nodes.len(), 3);
    let (store, _source) = Cache::stores_from_settings(&settings).await.unwrap();
    assert_eq!(store.name(), "redis-cluster");
    store
        .set("tsettings:{a}", Bytes::from_static(b"1"), MINUTE)
        .await
        .unwrap();
    assert_eq!(
        store.get("tsettings:{a}").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
}

#[tokio::test]
async fn a_cluster_node_that_is_not_a_url_is_a_clear_setup_error() {
    let settings = cluster_settings("redis://127.0.0.1:1,not a url").unwrap();
    let err = Cache::stores_from_settings(&settings)
        .await
        .map(|_| ())
        .unwrap_err();
    assert_setup_error_names(&err, "redis_cluster_nodes");
}
