//! In-app maintenance: two app instances over one real redis-server and the local Airtable
//! server sweep on a short interval; a record deleted in Airtable leaves the cache within a
//! round, and the two instances never sweep at the same time. The native webhook is refreshed
//! without cron.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::watched_source::{ListWatch, WatchedSource};
use common::workshops::{Member, Workshop};
use podium_cache_core::cache::Cache;
use podium_cache_core::entity::Cacheable;
use podium_cache_core::maintenance::{Maintenance, MaintenanceHandle, MaintenanceStats};
use podium_cache_core::source::AirtableSource;
use podium_cache_core::store::{MemoryStore, RedisStore};
use podium_cache_core::webhook::native::WebhooksApi;
use podium_local::airtable::{AirtableServer, RunningAirtable};
use podium_local::redis::RedisServer;
use serde_json::{json, Map, Value};

const BASE: &str = "appMAINTENANCE001";

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Listings in progress over every instance, and the most at once. A sweep lists one batch
/// at a time, so more than one at once means two sweeps overlapped.
#[derive(Default)]
struct Overlap {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl ListWatch for Overlap {
    fn started(&self, _table: &str) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }
    fn answered(&self, _table: &str) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One app instance: its own connection to the shared redis and its own Airtable client.
async fn instance(
    redis: &RedisServer,
    airtable: &RunningAirtable,
    overlap: &Arc<Overlap>,
) -> Cache {
    let store = RedisStore::builder(redis.url())
        .call_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("redis store");
    let source = AirtableSource::builder(airtable.api_key(), BASE)
        .api_url(airtable.url())
        .build()
        .expect("source");
    // The real Airtable client, with its listings counted in `overlap`.
    let source = WatchedSource {
        inner: Arc::new(source),
        watch: Arc::clone(overlap) as Arc<dyn ListWatch>,
    };
    Cache::builder(Arc::new(store), Arc::new(source)).build()
}

fn maintenance(cache: &Cache) -> MaintenanceHandle {
    Maintenance::new(cache)
        .model::<Member>()
        .model::<Workshop>()
        .first_round_after(Duration::from_millis(20))
        .sweep_every(Duration::from_secs(1))
        .spawn()
}

fn total(a: &MaintenanceHandle, b: &MaintenanceHandle) -> MaintenanceStats {
    let (a, b) = (a.stats(), b.stats());
    MaintenanceStats {
        sweeps_run: a.sweeps_run + b.sweeps_run,
        sweeps_failed: a.sweeps_failed + b.sweeps_failed,
        sweeps_skipped: a.sweeps_skipped + b.sweeps_skipped,
        records_removed: a.records_removed + b.records_removed,
        ..MaintenanceStats::default()
    }
}

/// Waits (at most `limit`) until `done` holds.
async fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sweep_in_turn_and_a_record_deleted_in_airtable_leaves_the_cache() {
    // Every call takes 40-80 ms: a sweep lasts long enough for the other instance to try.
    let airtable = AirtableServer::builder()
        .rate_limit(None)
        .latency(Duration::from_millis(40), Duration::from_millis(80))
        .start()
        .await
        .expect("local airtable");
    let redis = RedisServer::start().expect("redis-server");
    let members: Vec<String> = (0..4)
        .map(|i| airtable.insert(BASE, "Members", fields(json!({"name": format!("M{i}")}))))
        .collect();
    let workshop = airtable.insert(BASE, "Workshops", fields(json!({"title": "Rust"})));
    let overlap = Arc::new(Overlap::default());
    let cache_a = instance(&redis, &airtable, &overlap).await;
    let cache_b = instance(&redis, &airtable, &overlap).await;
    for id in &members {
        assert!(cache_a.get::<Member>(id).await.expect("read").is_some());
    }
    assert!(cache_b
        .get::<Workshop>(&workshop)
        .await
        .expect("read")
        .is_some());
    assert!(airtable.remove(BASE, "Members", &members[2]));

    let a = maintenance(&cache_a);
    let b = maintenance(&cache_b);
    eventually(
        Duration::from_secs(30),
        "a sweep removed the record",
        || total(&a, &b).records_removed == 1,
    )
    .await;
    // Gone from the shared store; the live records stay cached.
    let data_key = |id: &str| cache_a.keys().data("members", Member::schema_hash(), id);
    let store = cache_b.store();
    assert_eq!(
        store.get(&data_key(&members[2])).await.expect("store"),
        None
    );
    assert!(store
        .get(&data_key(&members[0]))
        .await
        .expect("store")
        .is_some());
    assert_eq!(
        cache_b.get::<Member>(&members[2]).await.expect("read"),
        None
    );

    // More rounds: each interval is swept by one instance, never by both at once.
    eventually(
        Duration::from_secs(30),
        "four rounds over both instances",
        || {
            let t = total(&a, &b);
            t.sweeps_run + t.sweeps_skipped >= 4 && t.sweeps_run >= 2
        },
    )
    .await;
    let (stats_a, stats_b) = (a.stats(), b.stats());
    println!("a: {stats_a:?}\nb: {stats_b:?}");
    a.shutdown().await;
    b.shutdown().await;
    assert_eq!(
        overlap.most.load(Ordering::SeqCst),
        1,
        "two sweeps listed Airtable at the same time"
    );
    assert_eq!(stats_a.sweeps_failed + stats_b.sweeps_failed, 0);
    assert!(
        stats_a.sweeps_skipped + stats_b.sweeps_skipped >= 1,
        "an interval claimed by one instance is skipped by the other"
    );
    assert_eq!(stats_a.records_removed + stats_b.records_removed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_webhook_is_refreshed_by_the_app_and_shutdown_stops_it() {
    let airtable = AirtableServer::builder()
        .rate_limit(None)
        .start()
        .await
        .expect("local airtable");
    airtable.insert(BASE, "Members", fields(json!({"name": "M"})));
    let source = AirtableSource::builder(airtable.api_key(), BASE)
        .api_url(airtable.url())
        .build()
        .expect("source");
    let api = WebhooksApi::new(source.clone());
    let created = api
        .create_table_data("http://127.0.0.1:9/notify")
        .await
        .expect("create webhook");
    let cache = Cache::builder(Arc::new(MemoryStore::new(1_000)), Arc::new(source)).build();
    let handle = Maintenance::new(&cache)
        .refresh_webhooks(api, vec![created.id.clone()])
        .first_round_after(Duration::from_millis(10))
        .refresh_every(Duration::from_secs(1))
        .spawn();
    eventually(Duration::from_secs(20), "two refreshes", || {
        handle.stats().webhook_refreshes >= 2
    })
    .await;
    assert_eq!(handle.stats().webhook_refresh_failures, 0);
    handle.shutdown().await;
    let refreshed = airtable.webhook_calls().refresh;
    assert!(refreshed >= 2, "{refreshed} refresh calls");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        airtable.webhook_calls().refresh,
        refreshed,
        "no refresh after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_webhook_is_recreated_with_its_secret_kept_in_the_store_or_alarmed() {
    use podium_cache_core::webhook::native::{MacSecret, NativeWebhooks, MAC_HEADER};
    use podium_cache_core::webhook::Models;
    const WEEK_AND_A_DAY: Duration = Duration::from_secs(8 * 24 * 3600);

    let airtable = AirtableServer::builder()
        .rate_limit(None)
        .start()
        .await
        .expect("local airtable");
    let member = airtable.insert(BASE, "Members", fields(json!({"name": "v1"})));
    let source = AirtableSource::builder(airtable.api_key(), BASE)
        .api_url(airtable.url())
        .build()
        .expect("source");
    let api = WebhooksApi::new(source.clone());
    let url = "http://127.0.0.1:9/notify";
    let created = api.create_table_data(url).await.expect("create webhook");
    let old_secret: MacSecret = created.mac_secret_base64.expose().parse().expect("secret");
    let cache = Cache::builder(Arc::new(MemoryStore::new(1_000)), Arc::new(source)).build();
    assert!(cache.get::<Member>(&member).await.expect("read").is_some());
    airtable.advance_webhook_clock(WEEK_AND_A_DAY);

    // Without re-creation: an alarm, nothing else.
    let alarmed = Maintenance::new(&cache)
        .refresh_webhooks(api.clone(), vec![created.id.clone()])
        .first_round_after(Duration::from_millis(10))
        .spawn();
    eventually(Duration::from_secs(20), "the expiry to be noticed", || {
        alarmed.stats().webhooks_expired >= 1
    })
    .await;
    assert_eq!(alarmed.stats().webhooks_recreated, 0);
    alarmed.shutdown().await;
    assert_eq!(airtable.webhooks(BASE).len(), 1, "nothing was created");

    // With re-creation: a new webhook, its secret in the store, the old one's changes gone.
    airtable.update(
        BASE,
        "Members",
        &member,
        fields(json!({"name": "v2 while unheard"})),
    );
    let handle = Maintenance::new(&cache)
        .model::<Member>()
        .sweep_every(Duration::from_secs(3600))
        .first_round_after(Duration::from_millis(10))
        .refresh_webhooks(api, vec![created.id.clone()])
        .recreate_expired_webhooks(url)
        .spawn();
    eventually(
        Duration::from_secs(20),
        "the webhook to be re-created",
        || handle.stats().webhooks_recreated >= 1,
    )
    .await;
    handle.shutdown().await;
    let hooks = airtable.webhooks(BASE);
    assert_eq!(hooks.len(), 1, "the expired one was deleted: {hooks:?}");
    assert_ne!(hooks[0].id, created.id);
    assert!(hooks[0].is_hook_enabled);
    assert_eq!(hooks[0].notification_url.as_deref(), Some(url));
    assert_eq!(
        cache
            .get::<Member>(&member)
            .await
            .expect("read")
            .map(|m| m.name),
        Some("v2 while unheard".into()),
        "the change made while no webhook listened is read again"
    );

    // A receiver configured with the old webhook accepts the new one's pings.
    let new_secret: MacSecret = hooks[0].mac_secret_base64.parse().expect("secret");
    let receiver = NativeWebhooks::builder(
        cache.clone(),
        Models::new(),
        WebhooksApi::new(
            AirtableSource::builder(airtable.api_key(), BASE)
                .api_url(airtable.url())
                .build()
                .expect("source"),
        ),
    )
    .webhook(created.id.clone(), old_secret)
    .build();
    let body = json!({"base": {"id": BASE}, "webhook": {"id": hooks[0].id}, "timestamp": "2026-01-01T00:00:00.000Z"}).to_string();
    let mac = new_secret.sign(body.as_bytes());
    let accepted = receiver
        .notify(
            |name| (name == MAC_HEADER).then(|| mac.clone()),
            body.as_bytes(),
        )
        .await
        .expect("the new webhook's ping is accepted");
    assert_eq!(accepted.webhook_id, hooks[0].id);
}
