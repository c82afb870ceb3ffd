//! The in-process tier (`TieredStore`): two `Cache` instances sharing one real redis-server,
//! each with its own tier, kept coherent by pub/sub on `{prefix}:inval`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{
    fields, harness, now_ms, tiered, Event, Harness, ObservedStore, ReadHook, StoreKind, BASE,
    TABLE,
};
use podium_cache_core::cache::Cache;
use podium_cache_core::config::Settings;
use podium_cache_core::store::{RedisStore, Store, TieredStore, TypedTier};
use podium_cache_core::{Cacheable, UpsertOutcome};
use tokio::sync::Semaphore;

/// Generous for debug builds on a loaded machine; a deadline, never a measured expectation.
const PATIENCE: Duration = Duration::from_secs(15);

fn event(id: &str, version: i64) -> Event {
    Event {
        id: id.to_owned(),
        name: format!("v{version}"),
        slug: format!("slug-{version}"),
        version,
        owner: vec![],
    }
}

/// One app instance: its own redis connections, its own tier, the shared source.
struct Instance {
    cache: Cache,
    store: TieredStore,
}

impl Instance {
    fn tier(&self) -> &TypedTier {
        self.store.tier()
    }

    async fn version(&self, id: &str) -> Option<i64> {
        self.cache
            .get::<Event>(id)
            .await
            .expect("read")
            .map(|e| e.version)
    }

    /// Reads `id` until the tier answers it: a miss fills redis (the fill's own write evicts),
    /// the next read comes from redis and is kept, the one after is a tier hit.
    async fn warm(&self, id: &str) {
        let hits = self.tier().metrics().hits;
        for _ in 0..3 {
            self.version(id).await;
            if self.tier().metrics().hits > hits {
                return;
            }
        }
        panic!("three reads of {id} and none answered in process");
    }
}

async fn instance(h: &Harness, bus_url: &str, gate: Option<Arc<ReadGate>>) -> Instance {
    let redis = h.redis.as_ref().expect("a redis harness");
    let shared: Arc<dyn Store> = Arc::new(
        RedisStore::builder(redis.url())
            .call_timeout(Duration::from_secs(2))
            .connect()
            .await
            .expect("redis store"),
    );
    let shared: Arc<dyn Store> = match gate {
        Some(gate) => ObservedStore::with_read_hook(shared, gate),
        None => shared,
    };
    let store = tiered(shared, bus_url, PATIENCE).await;
    let cache = Cache::builder(Arc::new(store.clone()), Arc::clone(&h.source)).build();
    Instance { cache, store }
}

/// Polls `condition` until it holds; panics with `what` after [`PATIENCE`].
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn admin(h: &Harness) -> redis::aio::MultiplexedConnection {
    let redis = h.redis.as_ref().expect("a redis harness");
    redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection")
}

async fn command(conn: &mut redis::aio::MultiplexedConnection, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(conn).await.expect("admin command")
}

/// A redis user of its own, so a test can lock one instance's link out of the server.
async fn link_user(
    conn: &mut redis::aio::MultiplexedConnection,
    h: &Harness,
    name: &str,
) -> String {
    command(
        conn,
        &["ACL", "SETUSER", name, "on", ">pw", "~*", "&*", "+@all"],
    )
    .await;
    let port = h.redis.as_ref().expect("redis").port();
    format!("redis://{name}:pw@127.0.0.1:{port}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_on_instance_a_is_seen_by_instance_b() {
    let h = harness(StoreKind::Redis).records(1).start().await;
    let url = h.redis.as_ref().expect("redis").url();
    let a = instance(&h, &url, None).await;
    let b = instance(&h, &url, None).await;
    let id = h.ids[0].clone();
    b.warm(&id).await;
    assert_eq!(b.version(&id).await, Some(1));
    let calls = h.calls();

    assert_eq!(
        a.cache
            .upsert(&event(&id, 2), now_ms())
            .await
            .expect("upsert"),
        UpsertOutcome::Applied
    );
    assert_eq!(a.tier().metrics().broadcasts_sent, 1);
    eventually("B hears of the update", || {
        b.tier().metrics().broadcasts_received >= 1
    })
    .await;
    assert_eq!(b.version(&id).await, Some(2));
    assert_eq!(h.calls(), calls, "B read the new version from redis");
    // And B keeps the new version in process.
    b.warm(&id).await;
    assert_eq!(b.version(&id).await, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_and_sweep_removal_on_a_evict_on_b() {
    let h = harness(StoreKind::Redis).records(2).start().await;
    let url = h.redis.as_ref().expect("redis").url();
    let a = instance(&h, &url, None).await;
    let b = instance(&h, &url, None).await;
    let (changed, gone) = (h.ids[0].clone(), h.ids[1].clone());
    b.warm(&changed).await;
    b.warm(&gone).await;

    // Changed in Airtable without a webhook; A is told to drop it, and a sweep finds `gone`
    // deleted behind the cache's back.
    assert!(h
        .airtable
        .update(BASE, TABLE, &changed, fields("edited", "event-0", 5)));
    a.cache
        .invalidate::<Event>(&changed)
        .await
        .expect("invalidate");
    a.cache
        .remove_gone(Event::meta(), Event::schema_hash(), &gone)
        .await
        .expect("remove");
    eventually("B hears of both changes", || {
        b.tier().metrics().broadcasts_received >= 2
    })
    .await;

    assert_eq!(b.version(&changed).await, Some(5));
    assert_eq!(b.version(&gone).await, None);
    assert_eq!(b.version(&gone).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_racing_an_invalidation_is_not_stored_in_the_tier() {
    let h = harness(StoreKind::Redis).records(1).start().await;
    let url = h.redis.as_ref().expect("redis").url();
    let gate = ReadGate::new();
    let a = instance(&h, &url, None).await;
    let b = instance(&h, &url, Some(Arc::clone(&gate))).await;
    let id = h.ids[0].clone();
    assert_eq!(a.version(&id).await, Some(1), "redis now holds v1");

    // B reads v1 from redis; before it can keep it, A stores v2 and B hears of it.
    gate.arm();
    let reader = {
        let cache = b.cache.clone();
        let id = id.clone();
        tokio::spawn(async move { cache.get::<Event>(&id).await })
    };
    gate.wait_held().await;
    a.cache
        .upsert(&event(&id, 2), now_ms())
        .await
        .expect("upsert");
    eventually("B hears of the update", || {
        b.tier().metrics().broadcasts_received >= 1
    })
    .await;
    gate.release();
    let raced = reader.await.expect("reader task").expect("read");
    assert_eq!(
        raced.map(|e| e.version),
        Some(1),
        "the read that began before the write answers what it read"
    );

    assert_eq!(b.version(&id).await, Some(2));
    assert_eq!(b.version(&id).await, Some(2));
    assert_eq!(b.tier().metrics().inserts_refused, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_racing_a_local_write_is_not_stored_in_the_tier() {
    let h = harness(StoreKind::Redis).records(1).start().await;
    let url = h.redis.as_ref().expect("redis").url();
    let gate = ReadGate::new();
    let b = instance(&h, &url, Some(Arc::clone(&gate))).await;
    let id = h.ids[0].clone();
    let primed = h
        .cache
        .get::<Event>(&id)
        .await
        .expect("read")
        .map(|e| e.version);
    assert_eq!(primed, Some(1), "redis now holds v1");

    gate.arm();
    let reader = {
        let cache = b.cache.clone();
        let id = id.clone();
        tokio::spawn(async move { cache.get::<Event>(&id).await })
    };
    gate.wait_held().await;
    b.cache
        .upsert(&event(&id, 2), now_ms())
        .await
        .expect("upsert");
    gate.release();
    reader.await.expect("reader task").expect("read");

    assert_eq!(b.version(&id).await, Some(2));
    assert_eq!(b.version(&id).await, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_pubsub_link_flushes_and_bypasses_the_tier() {
    let h = harness(StoreKind::Redis).records(1).start().await;
    let url = h.redis.as_ref().expect("redis").url();
    let mut admin = admin(&h).await;
    let b_url = link_user(&mut admin, &h, "instance-b").await;
    let a = instance(&h, &url, None).await;
    let b = instance(&h, &b_url, None).await;
    let id = h.ids[0].clone();
    b.warm(&id).await;

    // B's link cannot come back until the test allows it; then only the pub/sub connections
    // are killed (the data connections stay up).
    command(&mut admin, &["ACL", "SETUSER", "instance-b", "off"]).await;
    let killed = command(&mut admin, &["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    let killed_at = std::time::Instant::now();
    assert!(
        matches!(killed, redis::Value::Int(n) if n >= 2),
        "{killed:?}"
    );
    assert!(
        b.tier().wait_bypassed(PATIENCE).await,
        "B notices the lost link"
    );
    let noticed = killed_at.elapsed();
    let m = b.tier().metrics();
    assert!(!m.serving && m.link_drops == 1 && m.flushes == 1, "{m:?}");

    // Published while B cannot hear it: B must not answer from its tier.
    a.cache
        .upsert(&event(&id, 2), now_ms())
        .await
        .expect("upsert");
    let hits = b.tier().metrics().hits;
    let reads_while_down = [b.version(&id).await, b.version(&id).await];
    let stale_reads = reads_while_down.iter().filter(|v| **v != Some(2)).count();
    let tier_hits_while_down = b.tier().metrics().hits - hits;
    assert_eq!(stale_reads, 0, "{reads_while_down:?}");
    assert_eq!(tier_hits_while_down, 0, "the tier is bypassed");
    assert!(b.tier().metrics().bypassed >= 2);

    // Resubscribed: the tier serves again and hears what follows.
    command(&mut admin, &["ACL", "SETUSER", "instance-b", "on"]).await;
    let allowed_at = std::time::Instant::now();
    assert!(b.tier().wait_serving(PATIENCE).await, "B resubscribes");
    let resubscribed = allowed_at.elapsed();
    b.warm(&id).await;
    assert_eq!(b.version(&id).await, Some(2));
    let received = b.tier().metrics().broadcasts_received;
    a.cache
        .upsert(&event(&id, 3), now_ms() + 1)
        .await
        .expect("upsert");
    eventually("B hears of the next update", || {
        b.tier().metrics().broadcasts_received > received
    })
    .await;
    assert_eq!(b.version(&id).await, Some(3));
    let m = b.tier().metrics();
    println!(
        "FAULT pubsub_killed: stale_reads={stale_reads} \
         tier_hits_while_down={tier_hits_while_down} noticed_s={:.3} bypassed_reads={} \
         link_drops={} flushes={} recovery_s={:.2}",
        noticed.as_secs_f64(),
        m.bypassed,
        m.link_drops,
        m.flushes,
        resubscribed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_fails_until_its_broadcast_is_published() {
    let h = harness(StoreKind::Redis).records(1).start().await;
    let url = h.redis.as_ref().expect("redis").url();
    let mut admin = admin(&h).await;
    let a_url = link_user(&mut admin, &h, "instance-a").await;
    let a = instance(&h, &a_url, None).await;
    let b = instance(&h, &url, None).await;
    let id = h.ids[0].clone();
    b.warm(&id).await;

    // A can write to redis but cannot publish: the delivery must not be acknowledged.
    command(&mut admin, &["ACL", "DELUSER", "instance-a"]).await;
    let t = now_ms();
    let failed = a.cache.upsert(&event(&id, 2), t).await;
    assert!(failed.is_err(), "{failed:?}");
    assert!(a.tier().metrics().broadcast_failures >= 1);

    // The retried delivery is stale (the first attempt was stored) and is announced anyway.
    link_user(&mut admin, &h, "instance-a").await;
    let received = b.tier().metrics().broadcasts_received;
    let mut retried = a.cache.upsert(&event(&id, 2), t).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while retried.is_err() && tokio::time::Instant::now() < deadline {
        // The publisher reconnects with the restored user on a later attempt.
        tokio::time::sleep(Duration::from_millis(50)).await;
        retried = a.cache.upsert(&event(&id, 2), t).await;
    }
    assert_eq!(retried.expect("retried upsert"), UpsertOutcome::Stale);
    eventually("B hears of the retried delivery", || {
        b.tier().metrics().broadcasts_received > received
    })
    .await;
    assert_eq!(b.version(&id).await, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_hit_hands_out_the_decoded_value_without_decoding() {
    let h = harness(StoreKind::Redis).records(1).start().await;
    let url = h.redis.as_ref().expect("redis").url();
    let b = instance(&h, &url, None).await;
    let id = h.ids[0].clone();
    b.warm(&id).await;
    let first = b
        .cache
        .get_arc::<Event>(&id)
        .await
        .expect("read")
        .expect("found");
    let second = b
        .cache
        .get_arc::<Event>(&id)
        .await
        .expect("read")
        .expect("found");
    assert!(
        Arc::ptr_eq(&first, &second),
        "both reads share the one decoded value"
    );
    assert_eq!(b.cache.metrics().hits, b.tier().metrics().hits + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_put_the_tier_in_front_of_redis_only_when_asked() {
    let h = harness(StoreKind::Redis).records(1).start().await;
    let url = h.redis.as_ref().expect("redis").url();
    let settings = |l1: &str| {
        Settings::from_sources(
            None,
            [
                ("PODIUM_REDIS_URL", url.as_str()),
                ("PODIUM_L1_CAPACITY", l1),
                ("PODIUM_AIRTABLE_API_KEY", h.airtable.api_key().as_str()),
                ("PODIUM_AIRTABLE_BASE_ID", BASE),
                ("PODIUM_AIRTABLE_API_URL", h.airtable.url().as_str()),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .expect("settings")
    };
    let (store, _) = Cache::stores_from_settings(&settings("500"))
        .await
        .expect("stores");
    assert_eq!(store.name(), "tiered");
    let tier = store.typed_tier().expect("a tier");
    assert!(tier.wait_serving(PATIENCE).await);

    let (store, _) = Cache::stores_from_settings(&settings("0"))
        .await
        .expect("stores");
    assert_eq!(store.name(), "redis");
    assert!(store.typed_tier().is_none());
}

/// Holds one `get_many` answer of the shared store (after redis answered) until released:
/// makes "a read that raced a write" happen exactly.
struct ReadGate {
    armed: AtomicBool,
    held: AtomicUsize,
    release: Semaphore,
}

impl ReadGate {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            armed: AtomicBool::new(false),
            held: AtomicUsize::new(0),
            release: Semaphore::new(0),
        })
    }
    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
    async fn wait_held(&self) {
        eventually("the read reaches the gate", || {
            self.held.load(Ordering::SeqCst) >= 1
        })
        .await;
    }
    fn release(&self) {
        self.release.add_permits(1);
    }
}

/// Holds the first read after [`ReadGate::arm`] (after redis answered it) until released.
#[async_trait]
impl ReadHook for ReadGate {
    async fn after_get_many(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.held.fetch_add(1, Ordering::SeqCst);
            let _ = self.release.acquire().await.map(|p| p.forget());
        }
    }
}
