//! One Airtable budget for all instances: several `AirtableSource`s, each standing for one app
//! instance (own store connection, own in-process limiter), share the budget through a real
//! redis-server (and a Redis Cluster), so together they never make the local Airtable server
//! (5 requests in any second, counted on arrival) answer 429; when the store goes down, each
//! falls back to its local limiter and says so once.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{fields, BASE, TABLE};
use podium_cache_core::key::Keys;
use podium_cache_core::source::{AirtableSource, Source};
use podium_cache_core::store::{
    RateLimitCall, RateLimitReply, RateLimits, RedisClusterStore, RedisStore, Store,
};
use podium_local::airtable::{AirtableServer, RunningAirtable};
use podium_local::redis::RedisServer;
use podium_local::redis_cluster::RedisCluster;

const SECOND: Duration = Duration::from_secs(1);

/// Requests each simulated instance makes at once.
const PER_INSTANCE: usize = 20;

/// A name no other test in this binary uses (the in-process limiter registry is per process).
fn unique(name: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{name}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The local Airtable server at Airtable's limit, answering after 10–150 ms (network and
/// server jitter), with `records` events.
async fn airtable(records: usize) -> (RunningAirtable, Vec<String>) {
    let airtable = AirtableServer::builder()
        .rate_limit(Some(5))
        .latency(Duration::from_millis(10), Duration::from_millis(150))
        .start()
        .await
        .expect("local airtable");
    let ids = (0..records)
        .map(|i| airtable.insert(BASE, TABLE, fields(&format!("E{i}"), &format!("e-{i}"), 1)))
        .collect();
    (airtable, ids)
}

/// One "instance": its own in-process limiter scope, no retries (a 429 would surface as an
/// error), and the shared budget in `store` under `key` when given.
fn instance(
    airtable: &RunningAirtable,
    shared: Option<(Arc<dyn Store>, &str)>,
    local_rps: f64,
) -> AirtableSource {
    let mut builder = AirtableSource::builder(airtable.api_key(), BASE)
        .api_url(airtable.url())
        .limiter_scope(unique("instance"))
        .rate_limit(5, SECOND)
        .rate_limit_pause(Duration::from_millis(1_100))
        .retries(0, Duration::from_millis(10), Duration::from_millis(10))
        .local_rps(local_rps);
    if let Some((store, key)) = shared {
        builder = builder.shared_limit(store, key);
    }
    builder.build().expect("source")
}

/// One answered request: which instance sent it, whether it succeeded, and its place in the
/// order of all answers.
struct Answered {
    instance: usize,
    ok: bool,
    order: usize,
}

/// Every instance reads `PER_INSTANCE` records at once.
async fn read_all(instances: &[AirtableSource], ids: &[String]) -> Vec<Answered> {
    let answered = AtomicUsize::new(0);
    let answered = &answered;
    let calls = instances.iter().enumerate().flat_map(|(instance, source)| {
        ids.iter()
            .cycle()
            .take(PER_INSTANCE)
            .map(move |id| async move {
                let ok = source.get(TABLE, id).await.is_ok();
                let order = answered.fetch_add(1, Ordering::SeqCst);
                Answered {
                    instance,
                    ok,
                    order,
                }
            })
    });
    futures::future::join_all(calls).await
}

async fn redis_store(server: &RedisServer) -> Arc<dyn Store> {
    Arc::new(
        RedisStore::builder(server.url())
            .call_timeout(Duration::from_secs(2))
            .connect()
            .await
            .expect("redis store"),
    )
}

async fn cluster_store() -> Arc<dyn Store> {
    let cluster = tokio::task::spawn_blocking(RedisCluster::shared)
        .await
        .expect("starting the cluster panicked")
        .expect("redis cluster");
    Arc::new(
        RedisClusterStore::builder(cluster.nodes())
            .call_timeout(Duration::from_secs(2))
            .connect()
            .await
            .expect("cluster store"),
    )
}

/// Two instances, each with its own connection to the store, share the budget.
async fn two_instances_keep_to_the_budget(store_a: Arc<dyn Store>, store_b: Arc<dyn Store>) {
    let (airtable, ids) = airtable(8).await;
    let key = Keys::new(unique("shared")).rate_limit(BASE);
    let instances = [
        instance(&airtable, Some((store_a, &key)), 5.0),
        instance(&airtable, Some((store_b, &key)), 5.0),
    ];
    let answers = read_all(&instances, &ids).await;

    let calls = airtable.calls();
    assert_eq!(
        calls.rate_limited, 0,
        "the server saw more than 5 requests in one second: {calls:?}"
    );
    assert!(answers.iter().all(|a| a.ok), "every request was answered");
    assert_eq!(calls.total, 2 * PER_INSTANCE as u64);
    // Shared fairly: neither instance waits until the other is done.
    for instance in 0..2 {
        let early = answers
            .iter()
            .filter(|a| a.instance == instance && a.order < PER_INSTANCE)
            .count();
        assert!(
            early >= PER_INSTANCE / 4,
            "instance {instance} got {early} of the first {PER_INSTANCE} slots"
        );
    }
    for source in &instances {
        let stats = source.shared_limiter_stats().expect("shared limiter");
        assert_eq!(
            stats.store_grants, PER_INSTANCE as u64,
            "every slot came from the store: {stats:?}"
        );
        assert_eq!(stats.fallbacks, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_never_make_airtable_answer_429() {
    let server = RedisServer::start().expect("redis-server");
    two_instances_keep_to_the_budget(redis_store(&server).await, redis_store(&server).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_a_cluster_never_make_airtable_answer_429() {
    two_instances_keep_to_the_budget(cluster_store().await, cluster_store().await).await;
}

/// The control: the same two instances, each keeping only its own 5 per second, overrun the
/// server. (So the test above would fail if the shared budget did not hold them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_shared_budget_two_instances_overrun_airtable() {
    let (airtable, ids) = airtable(8).await;
    let instances = [
        instance(&airtable, None, 5.0),
        instance(&airtable, None, 5.0),
    ];
    read_all(&instances, &ids).await;
    assert!(
        airtable.calls().rate_limited > 0,
        "two local budgets of 5/s together exceed 5/s: {:?}",
        airtable.calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_holds_a_slot_until_released_then_one_window_more() {
    let server = RedisServer::start().expect("redis-server");
    let store = redis_store(&server).await;
    let key = unique("script");
    // A long window, so no slot frees by itself while the test runs.
    let window = Duration::from_secs(60);
    let acquire = |slot: &str| RateLimitCall::Acquire {
        slot: format!("h1-{slot}"),
        max: 2,
        window,
        lease: Duration::from_secs(120),
        holder: "h1".into(),
    };
    let ask = |key: String, call: RateLimitCall| {
        let store = Arc::clone(&store);
        async move { store.rate_limit(&key, &call).await.expect("script") }
    };
    assert_eq!(
        ask(key.clone(), acquire("a")).await,
        RateLimitReply::Granted
    );
    assert_eq!(
        ask(key.clone(), acquire("b")).await,
        RateLimitReply::Granted
    );
    // Both slots in flight: wait (at most one window, the soonest an answer could free one).
    let RateLimitReply::Wait(wait) = ask(key.clone(), acquire("c")).await else {
        panic!("a third slot while two are in flight");
    };
    assert!(wait <= window, "{wait:?}");
    // "a" was answered: its slot is busy one more window, not free.
    let release = RateLimitCall::Release {
        slot: "h1-a".into(),
        window,
    };
    assert_eq!(ask(key.clone(), release).await, RateLimitReply::Granted);
    assert!(matches!(
        ask(key.clone(), acquire("c")).await,
        RateLimitReply::Wait(_)
    ));

    // A 429 holds everyone for the pause, even with a slot to spare.
    let paused = unique("script-pause");
    let pause = Duration::from_secs(30);
    ask(paused.clone(), RateLimitCall::Pause { duration: pause }).await;
    let RateLimitReply::Wait(wait) = ask(paused, acquire("d")).await else {
        panic!("acquired during a pause");
    };
    assert!(wait > pause / 2 && wait <= pause, "{wait:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_gives_a_waiting_holder_its_fair_share_before_a_busy_one() {
    let server = RedisServer::start().expect("redis-server");
    let store = redis_store(&server).await;
    let key = unique("fair");
    let acquire = |holder: &str, slot: usize| RateLimitCall::Acquire {
        slot: format!("{holder}-{slot}"),
        max: 4,
        window: Duration::from_secs(60),
        lease: Duration::from_secs(120),
        holder: holder.into(),
    };
    let ask = |call: RateLimitCall| {
        let store = Arc::clone(&store);
        let key = key.clone();
        async move { store.rate_limit(&key, &call).await.expect("script") }
    };
    // h1 alone takes the whole budget; h2 comes and waits.
    for slot in 0..4 {
        assert_eq!(ask(acquire("h1", slot)).await, RateLimitReply::Granted);
    }
    assert!(matches!(
        ask(acquire("h2", 0)).await,
        RateLimitReply::Wait(_)
    ));
    // One of h1's slots frees (released with a 1 ms window).
    let release = RateLimitCall::Release {
        slot: "h1-0".into(),
        window: Duration::from_millis(1),
    };
    ask(release).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    // h1 asks first, but holds 3 of 4 while h2 waits (fair share: 2): refused.
    assert!(matches!(
        ask(acquire("h1", 4)).await,
        RateLimitReply::Wait(_)
    ));
    // The free slot is h2's.
    assert_eq!(ask(acquire("h2", 1)).await, RateLimitReply::Granted);
}

/// Log lines of the core crate at INFO and above: (level, message, `limiter` field).
type Lines = Mutex<Vec<(tracing::Level, String, String)>>;

/// A minimal subscriber that keeps the core crate's INFO+ events (set once for this binary).
struct Capture(&'static Lines);

fn captured() -> &'static Lines {
    static LINES: OnceLock<&'static Lines> = OnceLock::new();
    LINES.get_or_init(|| {
        let lines: &'static Lines = Box::leak(Box::new(Mutex::new(Vec::new())));
        tracing::subscriber::set_global_default(Capture(lines)).expect("global subscriber");
        lines
    })
}

#[derive(Default)]
struct Fields {
    message: String,
    limiter: String,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "limiter" => self.limiter = format!("{value:?}"),
            _ => {}
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with("podium_cache_core")
            && *metadata.level() <= tracing::Level::INFO
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Ok(mut lines) = self.0.lock() {
            lines.push((*event.metadata().level(), fields.message, fields.limiter));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Lines at `level` about the limiter under `key`.
fn lines_about(key: &str, level: tracing::Level) -> Vec<String> {
    captured()
        .lock()
        .map(|lines| {
            lines
                .iter()
                .filter(|(l, _, limiter)| *l == level && limiter == key)
                .map(|(_, message, _)| message.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_going_down_falls_back_to_the_local_limiter_with_one_log_line() {
    captured();
    let (airtable, ids) = airtable(4).await;
    let mut server = RedisServer::start().expect("redis-server");
    let key = Keys::new(unique("down")).rate_limit(BASE);
    let store: Arc<dyn Store> = Arc::new(
        RedisStore::builder(server.url())
            .call_timeout(Duration::from_millis(500))
            .connect()
            .await
            .expect("redis store"),
    );
    let source = instance(&airtable, Some((store, &key)), 2.0);
    let stats = || source.shared_limiter_stats().expect("shared limiter");

    for id in ids.iter().take(3) {
        source.get(TABLE, id).await.expect("answered");
    }
    assert_eq!(stats().store_grants, 3);

    server.stop();
    let answers =
        futures::future::join_all(ids.iter().cycle().take(8).map(|id| source.get(TABLE, id))).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(stats().store_grants, 3);
    assert_eq!(stats().local_grants, 8, "{:?}", stats());
    assert_eq!(stats().fallbacks, 1);
    assert_eq!(airtable.calls().rate_limited, 0, "{:?}", airtable.calls());
    let warnings = lines_about(&key, tracing::Level::WARN);
    assert_eq!(warnings.len(), 1, "one line says so: {warnings:?}");
    assert!(warnings[0].contains("falling back"), "{warnings:?}");

    // Back: the store is asked again and the budget is shared again, announced once.
    server.restart().expect("restart redis");
    let mut recovered = false;
    for id in ids.iter().cycle().take(40) {
        source.get(TABLE, id).await.expect("answered");
        if stats().store_grants > 3 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the shared budget is used again: {:?}", stats());
    assert_eq!(lines_about(&key, tracing::Level::WARN).len(), 1);
    assert_eq!(lines_about(&key, tracing::Level::INFO).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_with_redis_share_the_airtable_budget_through_it() {
    let (airtable, ids) = airtable(1).await;
    let server = RedisServer::start().expect("redis-server");
    let env = [
        ("PODIUM_REDIS_URL", server.url()),
        ("PODIUM_AIRTABLE_API_KEY", airtable.api_key()),
        ("PODIUM_AIRTABLE_BASE_ID", BASE.to_owned()),
        ("PODIUM_AIRTABLE_API_URL", airtable.url()),
        ("PODIUM_PREFIX", "wired".to_owned()),
        ("PODIUM_EXPECTED_INSTANCES", "2".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let settings = podium_cache_core::config::Settings::from_sources(None, env).expect("settings");
    assert_eq!(settings.local_airtable_rps(), 2.5);
    let (store, source) = podium_cache_core::cache::Cache::stores_from_settings(&settings)
        .await
        .expect("stores");
    source.get(TABLE, &ids[0]).await.expect("answered");
    let budget = Keys::new("wired").rate_limit(BASE);
    let page = store.scan("wired:rl:*", 0, 100).await.expect("scan");
    assert_eq!(page.keys, vec![budget], "the budget lives in redis");
}
