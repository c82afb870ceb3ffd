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
use podium_cache_core::cache::{Cache, Query};
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

    async fn versions(&self, ids: &[String]) -> Vec<Option<i64>> {
        let records = self.cache.get_many::<Event>(ids).await.expect("read");
        records.into_iter().map(|e| e.map(|e| e.version)).collect()
    }

    async fn by_slug(&self, slug: &str) -> Option<i64> {
        self.cache
            .get_by_index::<Event>("slug", slug)
            .await
            .expect("index read")
            .map(|e| e.version)
    }

    /// Versions of the records `query` finds, sorted.
    async fn query(&self, query: &Query) -> Vec<i64> {
        let records = self.cache.query::<Event>(query).await.expect("query");
        let mut versions: Vec<i64> = records.into_iter().map(|e| e.version).collect();
        versions.sort_unstable();
        versions
    }

    async fn upsert(&self, record: &Event, at_ms: i64) {
        self.cache.upsert(record, at_ms).await.expect("upsert");
    }

    /// Waits until this instance has received `n` broadcasts.
    async fn heard(&self, n: u64) {
        eventually(&format!("{n} broadcasts received"), || {
            self.tier().metrics().broadcasts_received >= n
        })
        .await;
    }

    /// Reads `ids` together until one read needs no store call.
    async fn warm_many(&self, ids: &[String], probe: &ReadProbe) {
        settle(&format!("{ids:?}"), probe, || self.versions(ids)).await;
    }

    /// Reads by slug until one read needs no store call (the index hint and the record are
    /// both held).
    async fn warm_index(&self, slug: &str, probe: &ReadProbe) {
        settle(&format!("slug {slug}"), probe, || self.by_slug(slug)).await;
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

/// A harness with `records` records and one instance on its redis whose store reads go through
/// the returned probe.
async fn probed(records: usize) -> (Harness, Instance, Arc<ReadProbe>) {
    let h = harness(StoreKind::Redis).records(records).start().await;
    let url = h.redis.as_ref().expect("redis").url();
    let probe = ReadProbe::new();
    let b = instance(&h, &url, Some(Arc::clone(&probe))).await;
    (h, b, probe)
}

/// [`probed`] with a second instance, A (unprobed), on the same redis.
async fn pair(records: usize) -> (Harness, Instance, Instance, Arc<ReadProbe>) {
    let (h, b, probe) = probed(records).await;
    let url = h.redis.as_ref().expect("redis").url();
    let a = instance(&h, &url, None).await;
    (h, a, b, probe)
}

/// Repeats `read` until one needs no store call (at most four times).
async fn settle<F, Fut>(what: &str, probe: &ReadProbe, read: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future,
{
    for _ in 0..4 {
        let reads = probe.reads();
        read().await;
        if probe.reads() == reads {
            return;
        }
    }
    panic!("four reads of {what} and none answered in process");
}

async fn instance(h: &Harness, bus_url: &str, probe: Option<Arc<ReadProbe>>) -> Instance {
    let redis = h.redis.as_ref().expect("a redis harness");
    instance_on(h, &redis.url(), bus_url, probe).await
}

/// An instance whose data connections use `data_url` (e.g. a redis user of its own).
async fn instance_on(
    h: &Harness,
    data_url: &str,
    bus_url: &str,
    probe: Option<Arc<ReadProbe>>,
) -> Instance {
    let shared: Arc<dyn Store> = Arc::new(
        RedisStore::builder(data_url)
            .call_timeout(Duration::from_secs(2))
            .connect()
            .await
            .expect("redis store"),
    );
    let shared: Arc<dyn Store> = match probe {
        Some(probe) => ObservedStore::with_read_hook(shared, probe),
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

/// A harness with `records` records, its redis URL and an admin connection to it.
async fn administered(records: usize) -> (Harness, String, redis::aio::MultiplexedConnection) {
    let h = harness(StoreKind::Redis).records(records).start().await;
    let url = h.redis.as_ref().expect("redis").url();
    let admin = admin(&h).await;
    (h, url, admin)
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
    let gate = ReadProbe::new();
    let a = instance(&h, &url, None).await;
    let b = instance(&h, &url, Some(Arc::clone(&gate))).await;
    let id = h.ids[0].clone();
    assert_eq!(a.version(&id).await, Some(1), "redis now holds v1");

    // B reads v1 from redis; before it can keep it, A stores v2 and B hears of it.
    let reader = {
        let (cache, id) = (b.cache.clone(), id.clone());
        gate.hold(async move { cache.get::<Event>(&id).await })
            .await
    };
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
    let (h, b, gate) = probed(1).await;
    let id = h.ids[0].clone();
    let primed = h
        .cache
        .get::<Event>(&id)
        .await
        .expect("read")
        .map(|e| e.version);
    assert_eq!(primed, Some(1), "redis now holds v1");

    let reader = {
        let (cache, id) = (b.cache.clone(), id.clone());
        gate.hold(async move { cache.get::<Event>(&id).await })
            .await
    };
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
    let (h, url, mut admin) = administered(1).await;
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
    let ids = [id.clone()];
    let reads_while_down = [
        b.version(&id).await,
        b.version(&id).await,
        b.versions(&ids).await[0],
        b.versions(&ids).await[0],
    ];
    let stale_reads = reads_while_down.iter().filter(|v| **v != Some(2)).count();
    let tier_hits_while_down = b.tier().metrics().hits - hits;
    assert_eq!(stale_reads, 0, "{reads_while_down:?}");
    assert_eq!(tier_hits_while_down, 0, "the tier is bypassed");
    assert!(b.tier().metrics().bypassed >= 4);

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
    let (h, url, mut admin) = administered(1).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_serves_tier_hits_without_a_store_round_trip() {
    let (h, b, probe) = probed(3).await;
    b.warm(&h.ids[0]).await;
    b.warm(&h.ids[1]).await;

    let held = vec![h.ids[0].clone(), h.ids[1].clone()];
    let (reads, calls_airtable) = (probe.reads(), h.calls());
    assert_eq!(b.versions(&held).await, vec![Some(1), Some(1)]);
    assert_eq!(probe.reads(), reads, "both answered in process");
    assert_eq!(h.calls(), calls_airtable);

    // A third id, never read: only its keys go to redis, in one round trip, and one source
    // call fetches it. The read after keeps it; the one after that needs no store at all.
    let all = h.ids.clone();
    let (calls, keys) = probe.reads();
    assert_eq!(b.versions(&all).await, vec![Some(1); 3]);
    assert_eq!(
        probe.reads(),
        (calls + 1, keys + 3),
        "one store round trip, for the keys of the one id not held"
    );
    assert_eq!(h.calls(), calls_airtable + 1);
    assert_eq!(b.versions(&all).await, vec![Some(1); 3]);
    let settled = probe.reads();
    let hits = b.tier().metrics().hits;
    assert_eq!(b.versions(&all).await, vec![Some(1); 3]);
    assert_eq!(probe.reads(), settled, "all three answered in process");
    assert_eq!(b.tier().metrics().hits, hits + 3);
    assert_eq!(h.calls(), calls_airtable + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_after_update_on_other_instance_is_fresh() {
    let (h, a, b, probe) = pair(2).await;
    let ids = h.ids.clone();
    b.warm_many(&ids, &probe).await;

    a.upsert(&event(&ids[0], 2), now_ms()).await;
    b.heard(1).await;
    let calls = h.calls();
    let (reads, _) = probe.reads();
    assert_eq!(b.versions(&ids).await, vec![Some(2), Some(1)]);
    assert_eq!(
        probe.reads().0,
        reads + 1,
        "the evicted record is read from redis"
    );
    assert_eq!(h.calls(), calls, "and needs no source call");
    b.warm_many(&ids, &probe).await;
    assert_eq!(b.versions(&ids).await, vec![Some(2), Some(1)]);

    // Deleted on A: B's tier never answers the tombstoned record.
    a.cache
        .remove_gone(Event::meta(), Event::schema_hash(), &ids[1])
        .await
        .expect("remove");
    b.heard(2).await;
    assert_eq!(b.versions(&ids).await, vec![Some(2), None]);
    assert_eq!(b.versions(&ids).await, vec![Some(2), None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_fill_racing_an_invalidation_is_not_stored_in_the_tier() {
    let (h, a, b, gate) = pair(2).await;
    let ids = h.ids.clone();
    assert_eq!(
        a.versions(&ids).await,
        vec![Some(1), Some(1)],
        "redis holds v1"
    );

    // B reads both from redis; before it can keep them, A stores v2 of the first.
    let reader = {
        let (cache, ids) = (b.cache.clone(), ids.clone());
        gate.hold(async move { cache.get_many::<Event>(&ids).await })
            .await
    };
    a.upsert(&event(&ids[0], 2), now_ms()).await;
    b.heard(1).await;
    gate.release();
    let raced = reader.await.expect("reader task").expect("read");
    let raced: Vec<_> = raced.into_iter().map(|e| e.map(|e| e.version)).collect();
    assert_eq!(
        raced,
        vec![Some(1), Some(1)],
        "the read that began before the write answers what it read"
    );
    let m = b.tier().metrics();
    // The raced record is refused. The untouched one is kept, unless its key happens to share
    // the raced key's lock stripe (one chance in the tier's stripe count, the hasher being
    // seeded per tier): an invalidation voids every ticket of its stripe, which costs a redis
    // read later and is never stale.
    assert!(
        (m.inserts, m.inserts_refused) == (1, 1) || (m.inserts, m.inserts_refused) == (0, 2),
        "the raced record is refused, the untouched one kept unless it shares the stripe: {m:?}"
    );
    // The raced v1 was not kept: B answers v2 for it, from redis.
    assert_eq!(b.versions(&ids).await, vec![Some(2), Some(1)]);
    assert_eq!(b.versions(&ids).await, vec![Some(2), Some(1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_read_after_update_on_other_instance_is_fresh() {
    let (h, a, b, probe) = pair(2).await;
    let id = h.ids[0].clone();
    b.warm_index("event-0", &probe).await;
    assert_eq!(
        b.by_slug("EVENT-0 ").await,
        Some(1),
        "normalised, in process"
    );

    // A changes the record but not its slug: B finds the new version by the same value,
    // from redis (the record was evicted), with no source call.
    let updated = Event {
        slug: "event-0".into(),
        ..event(&id, 2)
    };
    a.upsert(&updated, now_ms()).await;
    b.heard(1).await;
    let calls = h.calls();
    assert_eq!(b.by_slug("event-0").await, Some(2));
    assert_eq!(h.calls(), calls);
    b.warm_index("event-0", &probe).await;

    // A moves the slug (Airtable first, then the webhook's upsert): B's hint for the old value
    // leads to a record that no longer has it, so B no longer finds it there, and finds it
    // under the new value.
    assert!(h
        .airtable
        .update(BASE, TABLE, &id, fields("v3", "slug-3", 3)));
    a.upsert(&event(&id, 3), now_ms() + 1).await;
    b.heard(2).await;
    assert_eq!(b.by_slug("event-0").await, None);
    assert_eq!(b.by_slug("slug-3").await, Some(3));
    b.warm_index("slug-3", &probe).await;
    assert_eq!(b.by_slug("slug-3").await, Some(3));
    assert_eq!(b.by_slug("event-0").await, None);

    // Another record takes the old value over: B's hint for it leads to the first record,
    // which no longer has it; B drops the hint, finds the new owner of the value and keeps
    // that instead.
    let other = h.ids[1].clone();
    let takeover = Event {
        slug: "slug-3".into(),
        ..event(&other, 4)
    };
    assert!(h
        .airtable
        .update(BASE, TABLE, &id, fields("v5", "slug-5", 5)));
    a.upsert(&event(&id, 5), now_ms() + 2).await;
    assert!(h
        .airtable
        .update(BASE, TABLE, &other, fields("v4", "slug-3", 4)));
    a.upsert(&takeover, now_ms() + 3).await;
    b.heard(4).await;
    let calls = h.calls();
    assert_eq!(b.by_slug("slug-3").await, Some(4));
    assert_eq!(
        h.calls(),
        calls,
        "the store's entry for the value led to it"
    );
    b.warm_index("slug-3", &probe).await;
    assert_eq!(b.by_slug("slug-3").await, Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_serves_its_id_list_from_the_tier_and_sees_updates_on_other_instances() {
    let (h, a, b, probe) = pair(3).await;
    let owned = Query::links_to("owner", "recUSER0000000001");

    // A miss (source), then a hit from redis (the list and the records are kept), then only
    // the entity's generation is read from redis.
    let calls = h.calls();
    assert_eq!(b.query(&owned).await, vec![1, 1, 1]);
    assert_eq!(h.calls(), calls + 1);
    assert_eq!(b.query(&owned).await, vec![1, 1, 1]);
    let (reads, keys) = probe.reads();
    assert_eq!(b.query(&owned).await, vec![1, 1, 1]);
    assert_eq!(
        probe.reads(),
        (reads + 1, keys + 1),
        "one read: the entity generation"
    );
    assert_eq!(h.calls(), calls + 1);

    // A change on A takes a record out of the result and moves the entity's generation: B's
    // next query asks the source again and no longer lists it.
    let mut unowned = fields("v2", "slug-2", 2);
    unowned.insert("owner".into(), serde_json::json!([]));
    assert!(h.airtable.update(BASE, TABLE, &h.ids[0], unowned));
    a.upsert(&event(&h.ids[0], 2), now_ms()).await;
    b.heard(1).await;
    assert_eq!(b.query(&owned).await, vec![1, 1]);
    assert_eq!(h.calls(), calls + 2);
    assert_eq!(b.query(&owned).await, vec![1, 1]);
    assert_eq!(b.query(&owned).await, vec![1, 1]);
    assert_eq!(h.calls(), calls + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_after_a_retried_upsert_on_other_instance_is_fresh() {
    let (h, url, mut admin) = administered(2).await;
    let a_url = link_user(&mut admin, &h, "writer-a").await;
    let a = instance_on(&h, &a_url, &url, None).await;
    let b = instance(&h, &url, None).await;
    let owned = Query::links_to("owner", "recUSER0000000001");
    for _ in 0..3 {
        assert_eq!(b.query(&owned).await, vec![1, 1]);
    }

    // The record is stored and announced, then moving the entity's generation fails: the
    // delivery is not acknowledged. Its retry is not newer, and must finish the job.
    let mut unowned = fields("v2", "slug-2", 2);
    unowned.insert("owner".into(), serde_json::json!([]));
    assert!(h.airtable.update(BASE, TABLE, &h.ids[0], unowned));
    command(&mut admin, &["ACL", "SETUSER", "writer-a", "-incr"]).await;
    let t = now_ms();
    let failed = a.cache.upsert(&event(&h.ids[0], 2), t).await;
    assert!(failed.is_err(), "{failed:?}");
    command(&mut admin, &["ACL", "SETUSER", "writer-a", "+incr"]).await;
    let retried = a.cache.upsert(&event(&h.ids[0], 2), t).await;
    assert_eq!(retried.expect("retried upsert"), UpsertOutcome::Stale);
    b.heard(2).await;
    assert_eq!(b.query(&owned).await, vec![1], "the record left the result");
}

/// Counts the reads of the shared store (calls and keys), and holds one `get_many` answer
/// (after redis answered) until released: makes "a read that raced a write" happen exactly.
struct ReadProbe {
    armed: AtomicBool,
    held: AtomicUsize,
    release: Semaphore,
    calls: AtomicUsize,
    keys: AtomicUsize,
}

impl ReadProbe {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            armed: AtomicBool::new(false),
            held: AtomicUsize::new(0),
            release: Semaphore::new(0),
            calls: AtomicUsize::new(0),
            keys: AtomicUsize::new(0),
        })
    }
    /// `(calls, keys)` read from the shared store so far.
    fn reads(&self) -> (usize, usize) {
        (
            self.calls.load(Ordering::SeqCst),
            self.keys.load(Ordering::SeqCst),
        )
    }
    fn count(&self, keys: usize) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.keys.fetch_add(keys, Ordering::SeqCst);
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
    /// Spawns `read` with the next store read held here; returns once it is held.
    async fn hold<F>(&self, read: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.arm();
        let task = tokio::spawn(read);
        self.wait_held().await;
        task
    }
    fn release(&self) {
        self.release.add_permits(1);
    }
}

/// Counts every read; holds the first `get_many` after [`ReadProbe::arm`] (after redis
/// answered it) until released.
#[async_trait]
impl ReadHook for ReadProbe {
    fn before_read(&self, keys: usize) {
        self.count(keys);
    }

    async fn after_get_many(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.held.fetch_add(1, Ordering::SeqCst);
            let _ = self.release.acquire().await.map(|p| p.forget());
        }
    }
}
