//! Airtable native webhooks end to end: the local Airtable server's Webhooks API and pings, a
//! real redis-server, the axum router served on a real listener, and the cache.
//!
//! A ping is acknowledged once verified and recorded in the store; its payloads are applied
//! afterwards in the background, so tests wait (with a deadline) for what a ping caused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use podium_cache_core::cache::{Cache, Change, ChangeKind, InvalidationListener};
use podium_cache_core::source::{AirtableSource, SourceError};
use podium_cache_core::store::{
    RecordWrite, RedisStore, ScanPage, Store, StoreError, StoreExtensions, WriteOutcome,
};
use podium_cache_core::webhook::native::{
    table_data_specification, MacSecret, NativeError, NativeWebhooks, WebhooksApi,
};
use podium_cache_core::webhook::{Models, Receiver, WebhookSecret};
use podium_cache_core::Cacheable;
use podium_cache_tower::webhook::WebhookRoutes;
use podium_local::airtable::{AirtableServer, RunningAirtable};
use podium_local::redis::RedisServer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

const BASE: &str = "appNATIVENATIVE01";
const NOTIFY_PATH: &str = "/api/webhooks/airtable/notify";
/// A guard against a hang, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Cacheable,
)]
#[cacheable(table = "Events")]
#[serde(default)]
struct Event {
    id: String,
    name: String,
    #[cacheable(index)]
    slug: String,
}

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Everything a test needs: the local Airtable with `Events` (modelled) and `Logs` (not), a
/// redis-server, and an Airtable client on the local server.
struct Harness {
    airtable: RunningAirtable,
    redis: RedisServer,
    source: AirtableSource,
}

impl Harness {
    async fn start() -> Result<Harness, Box<dyn std::error::Error + Send + Sync>> {
        let airtable = AirtableServer::builder()
            .rate_limit(None)
            .seed_json(&json!({"bases": {BASE: {
                "Events": {"fields": ["name", "slug"], "records": []},
                "Logs": {"fields": ["message"], "records": []}
            }}}))
            .start()
            .await?;
        let redis = RedisServer::start()?;
        let source = AirtableSource::builder(airtable.api_key(), BASE)
            .api_url(airtable.url())
            .rate_limit(1000, Duration::from_secs(1))
            .build()?;
        Ok(Harness {
            airtable,
            redis,
            source,
        })
    }

    fn api(&self) -> WebhooksApi {
        WebhooksApi::new(self.source.clone())
    }

    async fn redis_store(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(Arc::new(RedisStore::connect(&self.redis.url()).await?))
    }

    /// A cache over `store` (a new one per simulated process).
    fn cache(&self, store: Arc<dyn Store>) -> Cache {
        Cache::builder(store, Arc::new(self.source.clone()))
            .prefix("nt")
            .build()
    }

    fn event(&self, name: &str) -> String {
        let slug = name.to_lowercase();
        self.airtable
            .insert(BASE, "Events", fields(json!({"name": name, "slug": slug})))
    }

    fn rename(&self, id: &str, name: &str) -> bool {
        self.airtable
            .update(BASE, "Events", id, fields(json!({"name": name})))
    }

    /// Creates a webhook pinging `url`; pings are turned off unless `pings`.
    async fn webhook(
        &self,
        url: &str,
        pings: bool,
    ) -> Result<(String, MacSecret), Box<dyn std::error::Error + Send + Sync>> {
        let created = self.api().create_table_data(url).await?;
        let secret: MacSecret = created.mac_secret_base64.expose().parse()?;
        if !pings {
            self.airtable.set_webhook_notifications(&created.id, false);
        }
        Ok((created.id, secret))
    }

    /// Record calls (get + list) the cache made to Airtable so far.
    fn record_calls(&self) -> u64 {
        let calls = self.airtable.calls_for(BASE);
        calls.get + calls.list
    }
}

fn models() -> Models {
    Models::new().register::<Event>()
}

/// The router with native notifications at `NOTIFY_PATH`, served on `listener`.
fn serve(listener: tokio::net::TcpListener, native: NativeWebhooks) {
    let receiver = Receiver::new(
        native.cache().clone(),
        models(),
        vec![WebhookSecret::generate()],
    );
    let app: axum::Router = WebhookRoutes::new(receiver).native(native).into_router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

async fn listener() -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

fn notify_url(addr: SocketAddr) -> String {
    format!("http://{addr}{NOTIFY_PATH}")
}

/// POSTs a notification body with the given MAC header (none when `None`); the status and
/// the JSON body (`null` when empty, as a success is).
async fn post_notification(
    client: &reqwest::Client,
    addr: SocketAddr,
    body: &str,
    mac: Option<String>,
) -> Result<(u16, Value), reqwest::Error> {
    let mut request = client
        .post(notify_url(addr))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(mac) = mac {
        request = request.header("X-Airtable-Content-MAC", mac);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Waits (at most `PATIENCE`) until `done` holds, polling; panics with `what` otherwise.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !done().await {
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the saved cursor of `webhook` reaches `cursor` (its payloads are applied).
async fn applied_through(native: &NativeWebhooks, webhook: &str, cursor: u64) {
    eventually(
        &format!("the cursor of {webhook} to reach {cursor}"),
        || async { native.cursor(webhook).await.ok() == Some(cursor) },
    )
    .await;
}

fn ping_body(webhook: &str) -> String {
    json!({"base": {"id": BASE}, "webhook": {"id": webhook}, "timestamp": "2026-11-25T19:04:05.123Z"})
        .to_string()
}

/// Hears every change the caches it is added to make.
#[derive(Default)]
struct Recorder {
    changes: parking_lot::Mutex<Vec<(String, ChangeKind)>>,
}

#[async_trait]
impl InvalidationListener for Recorder {
    async fn on_change(&self, change: &Change) {
        self.changes.lock().push((change.id.clone(), change.kind));
    }
}

impl Recorder {
    fn invalidations_of(&self, id: &str) -> usize {
        self.changes
            .lock()
            .iter()
            .filter(|(i, k)| i == id && *k == ChangeKind::Invalidated)
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_makes_the_cache_refetch_changed_records_and_tombstone_destroyed_ones() -> TestResult
{
    let h = Harness::start().await?;
    let kept = h.event("Kept v1");
    let doomed = h.event("Doomed");
    let cache = h.cache(h.redis_store().await?);
    assert_eq!(
        cache.get::<Event>(&kept).await?.map(|e| e.name),
        Some("Kept v1".into())
    );
    assert!(cache.get::<Event>(&doomed).await?.is_some());

    let (listener, addr) = listener().await?;
    let (webhook, secret) = h.webhook(&notify_url(addr), true).await?;
    let native = NativeWebhooks::builder(cache.clone(), models(), h.api())
        .webhook(webhook.clone(), secret)
        .build();
    serve(listener, native.clone());

    // Change one record and destroy another through the REST API, create one directly.
    let client = reqwest::Client::new();
    let rest = |method: reqwest::Method, path: String| {
        client
            .request(
                method,
                format!("{}/v0/{BASE}/Events/{path}", h.airtable.url()),
            )
            .bearer_auth(h.airtable.api_key())
    };
    let patched = rest(reqwest::Method::PATCH, kept.clone())
        .json(&json!({"fields": {"name": "Kept v2"}}))
        .send()
        .await?;
    assert!(patched.status().is_success());
    let deleted = rest(reqwest::Method::DELETE, doomed.clone()).send().await?;
    assert!(deleted.status().is_success());
    let created = h.event("Fresh");
    h.airtable
        .insert(BASE, "Logs", fields(json!({"message": "not a model"})));

    let result = tokio::time::timeout(PATIENCE, h.airtable.wait_for_webhook_ping(&webhook))
        .await?
        .ok_or("no ping was sent")?;
    assert!(result.success, "ping failed: {result:?}");
    assert_eq!(result.status, Some(200));
    applied_through(&native, &webhook, 5).await;

    let before = h.record_calls();
    assert_eq!(
        cache.get::<Event>(&doomed).await?,
        None,
        "a destroyed record must answer None"
    );
    assert_eq!(
        h.record_calls(),
        before,
        "the tombstone answers without Airtable"
    );
    assert_eq!(
        cache.get::<Event>(&kept).await?.map(|e| e.name),
        Some("Kept v2".into())
    );
    assert_eq!(
        cache.get::<Event>(&created).await?.map(|e| e.name),
        Some("Fresh".into())
    );
    assert!(
        h.record_calls() > before,
        "the changed record was refetched"
    );
    assert_eq!(
        h.airtable.webhooks(BASE)[0].cursor_for_next_payload,
        5,
        "four changes were recorded as four payloads"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroyed_record_answers_none_from_its_tombstone_with_no_airtable_call() -> TestResult {
    let h = Harness::start().await?;
    let cached = h.event("Cached then destroyed");
    let never_read = h.event("Destroyed before any read");
    let cache = h.cache(h.redis_store().await?);
    assert!(cache.get::<Event>(&cached).await?.is_some());

    let (webhook, secret) = h.webhook("http://127.0.0.1:9/unused", false).await?;
    let native = NativeWebhooks::builder(cache.clone(), models(), h.api())
        .webhook(webhook.clone(), secret)
        .build();
    assert!(h.airtable.remove(BASE, "Events", &cached));
    assert!(h.airtable.remove(BASE, "Events", &never_read));

    let outcome = native.sync(&webhook).await?;
    assert_eq!((outcome.removed, outcome.invalidated), (2, 0));

    let before = h.record_calls();
    let tombstone_hits = cache.metrics().tombstone_hits;
    assert_eq!(cache.get::<Event>(&cached).await?, None);
    assert_eq!(cache.get::<Event>(&never_read).await?, None);
    assert_eq!(h.record_calls(), before, "no Airtable call");
    assert_eq!(
        cache.metrics().tombstone_hits - tombstone_hits,
        2,
        "both answered from tombstones"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_reports_invalidations_removals_and_tables_without_models() -> TestResult {
    let h = Harness::start().await?;
    let changed = h.event("Changed");
    let destroyed = h.event("Destroyed");
    let cache = h.cache(h.redis_store().await?);
    let (webhook, secret) = h.webhook("http://127.0.0.1:9/unused", false).await?;
    let native = NativeWebhooks::builder(cache.clone(), models(), h.api())
        .webhook(webhook.clone(), secret)
        .build();

    let created = h.event("Created");
    assert!(h.rename(&changed, "Changed v2"));
    assert!(h.airtable.remove(BASE, "Events", &destroyed));
    h.airtable
        .insert(BASE, "Logs", fields(json!({"message": "skipped"})));

    assert_eq!(
        native.cursor(&webhook).await?,
        1,
        "a new webhook starts at 1"
    );
    let outcome = native.sync(&webhook).await?;
    assert_eq!(outcome.payloads, 4);
    assert_eq!(outcome.invalidated, 2, "created and changed");
    assert_eq!(outcome.removed, 1);
    assert_eq!(
        outcome.unknown_tables, 1,
        "the Logs payload is counted, not applied"
    );
    assert_eq!(outcome.cursor, 5);
    assert!(!outcome.more);
    assert_eq!(outcome.gaps, 0, "a new webhook's cursor 1 is no gap");
    assert_eq!(
        native.cursor(&webhook).await?,
        5,
        "the cursor is saved in the store"
    );
    assert_eq!(
        cache.get::<Event>(&created).await?.map(|e| e.name),
        Some("Created".into())
    );

    let again = native.sync(&webhook).await?;
    assert_eq!(
        (again.payloads, again.cursor),
        (0, 5),
        "nothing is applied twice"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_cut_short_is_continued_by_a_new_instance_from_the_saved_cursor() -> TestResult {
    let h = Harness::start().await?;
    let ids: Vec<String> = (0..5).map(|i| h.event(&format!("E{i}"))).collect();
    let store = h.redis_store().await?;
    let (webhook, secret) = h.webhook("http://127.0.0.1:9/unused", false).await?;
    for id in &ids {
        assert!(h.rename(id, "renamed"));
    }
    let recorder = Arc::new(Recorder::default());

    let first = h.cache(Arc::clone(&store));
    first.add_listener(recorder.clone());
    let cut_short = NativeWebhooks::builder(first, models(), h.api())
        .webhook(webhook.clone(), secret.clone())
        .page_size(2)
        .max_pages_per_round(1)
        .build();
    let outcome = cut_short.sync(&webhook).await?;
    assert_eq!((outcome.pages, outcome.payloads, outcome.cursor), (1, 2, 3));
    assert!(outcome.more);
    drop(cut_short);

    // A new process: new cache, new receiver, same store.
    let second = h.cache(store);
    second.add_listener(recorder.clone());
    let resumed = NativeWebhooks::builder(second, models(), h.api())
        .webhook(webhook.clone(), secret)
        .page_size(2)
        .build();
    let outcome = resumed.sync(&webhook).await?;
    assert_eq!((outcome.payloads, outcome.cursor), (3, 6));
    for id in &ids {
        assert_eq!(
            recorder.invalidations_of(id),
            1,
            "{id} applied exactly once"
        );
    }
    Ok(())
}

/// A store that fails cursor saves after letting `ok_saves` through (a crash between applying
/// a page and saving its cursor).
struct CrashingCursorStore {
    inner: Arc<dyn Store>,
    ok_saves: AtomicUsize,
}

#[async_trait]
impl Store for CrashingCursorStore {
    fn name(&self) -> &'static str {
        "crashing-cursor"
    }
    fn extensions(&self) -> Option<&dyn StoreExtensions> {
        self.inner.extensions()
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, StoreError> {
        self.inner.get_many(keys).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        if key.contains(":wh:cursor:") {
            let allowed = self
                .ok_saves
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if !allowed {
                return Err(StoreError::Unavailable(
                    "crashed before saving the cursor".into(),
                ));
            }
        }
        self.inner.set(key, value, ttl).await
    }
    async fn set_many(&self, entries: &[(String, Bytes, Duration)]) -> Result<(), StoreError> {
        self.inner.set_many(entries).await
    }
    async fn delete(&self, keys: &[String]) -> Result<u64, StoreError> {
        self.inner.delete(keys).await
    }
    async fn write_record(&self, write: &RecordWrite) -> Result<WriteOutcome, StoreError> {
        self.inner.write_record(write).await
    }
    async fn scan(&self, pattern: &str, cursor: u64, count: usize) -> Result<ScanPage, StoreError> {
        self.inner.scan(pattern, cursor, count).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_cursor_is_saved_reapplies_only_that_page() -> TestResult {
    let h = Harness::start().await?;
    let ids: Vec<String> = (0..5).map(|i| h.event(&format!("E{i}"))).collect();
    let store = h.redis_store().await?;
    let (webhook, secret) = h.webhook("http://127.0.0.1:9/unused", false).await?;
    for id in &ids {
        assert!(h.rename(id, "renamed"));
    }
    let recorder = Arc::new(Recorder::default());

    // Page 1 (E0, E1) is applied and saved; page 2 (E2, E3) is applied, then the process dies.
    let crashing: Arc<dyn Store> = Arc::new(CrashingCursorStore {
        inner: Arc::clone(&store),
        ok_saves: AtomicUsize::new(1),
    });
    let doomed_cache = h.cache(crashing);
    doomed_cache.add_listener(recorder.clone());
    let doomed = NativeWebhooks::builder(doomed_cache, models(), h.api())
        .webhook(webhook.clone(), secret.clone())
        .page_size(2)
        .build();
    let crash = doomed.sync(&webhook).await;
    assert!(matches!(crash, Err(NativeError::Store(_))), "{crash:?}");
    drop(doomed);

    let cache = h.cache(store);
    cache.add_listener(recorder.clone());
    let restarted = NativeWebhooks::builder(cache, models(), h.api())
        .webhook(webhook.clone(), secret)
        .page_size(2)
        .build();
    let outcome = restarted.sync(&webhook).await?;
    assert_eq!(
        outcome.payloads, 3,
        "from the saved cursor: page 2 again, then page 3"
    );
    assert_eq!(outcome.cursor, 6);
    let applied: Vec<usize> = ids.iter().map(|id| recorder.invalidations_of(id)).collect();
    assert_eq!(
        applied,
        vec![1, 1, 2, 2, 1],
        "nothing skipped; only page 2 re-applied"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_notifications_never_page_in_parallel_and_lose_nothing() -> TestResult {
    let h = Harness::start().await?;
    let a = h.event("A v1");
    let b = h.event("B v1");
    let store = h.redis_store().await?;
    let reader = h.cache(Arc::clone(&store));
    assert!(reader.get::<Event>(&a).await?.is_some());
    assert!(reader.get::<Event>(&b).await?.is_some());

    // Two processes sharing the store, each serving the notification route.
    let (listener_one, one) = listener().await?;
    let (listener_two, two) = listener().await?;
    let (webhook, secret) = h.webhook(&notify_url(one), false).await?;
    for listener in [listener_one, listener_two] {
        let native = NativeWebhooks::builder(h.cache(Arc::clone(&store)), models(), h.api())
            .webhook(webhook.clone(), secret.clone())
            .page_size(1)
            .build();
        serve(listener, native);
    }
    // Slow Airtable down so that rounds would overlap if they were not serialized.
    h.airtable
        .set_latency(Duration::from_millis(15), Duration::from_millis(30));
    for i in 0..3 {
        assert!(h.rename(&a, &format!("A v{}", i + 2)));
    }

    let client = reqwest::Client::new();
    let body = ping_body(&webhook);
    let mac = secret.sign(body.as_bytes());
    let mut first_wave = Vec::new();
    for i in 0..6 {
        let (client, body, mac) = (client.clone(), body.clone(), mac.clone());
        let addr = if i % 2 == 0 { one } else { two };
        first_wave.push(tokio::spawn(async move {
            post_notification(&client, addr, &body, Some(mac)).await
        }));
    }
    // A change made while the first wave is being paged, announced by its own notification.
    assert!(h.rename(&b, "B v2"));
    let late = post_notification(&client, two, &body, Some(mac.clone())).await?;
    assert_eq!(late.0, 200, "{late:?}");
    // Acknowledged means recorded: the change is applied afterwards, whichever instance
    // holds the lock.
    for call in first_wave {
        let (status, answer) = tokio::time::timeout(PATIENCE, call).await???;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer, Value::Null, "Airtable asks for an empty body");
    }
    let cursor_reader = NativeWebhooks::builder(reader.clone(), models(), h.api()).build();
    applied_through(&cursor_reader, &webhook, 5).await;
    assert_eq!(
        h.airtable.webhook_calls().max_concurrent_payload_requests,
        1,
        "two rounds of one webhook overlapped"
    );
    h.airtable.set_latency(Duration::ZERO, Duration::ZERO);
    assert_eq!(
        reader.get::<Event>(&a).await?.map(|e| e.name),
        Some("A v4".into())
    );
    assert_eq!(
        reader.get::<Event>(&b).await?.map(|e| e.name),
        Some("B v2".into()),
        "the change announced by the late ping is applied"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_missing_mac_is_refused_with_401_and_applies_nothing() -> TestResult {
    let h = Harness::start().await?;
    let id = h.event("Original");
    let cache = h.cache(h.redis_store().await?);
    assert!(cache.get::<Event>(&id).await?.is_some());
    let (listener, addr) = listener().await?;
    let (webhook, secret) = h.webhook(&notify_url(addr), false).await?;
    let native = NativeWebhooks::builder(cache.clone(), models(), h.api())
        .webhook(webhook.clone(), secret.clone())
        .build();
    serve(listener, native.clone());
    assert!(h.rename(&id, "Changed"));

    let client = reqwest::Client::new();
    let body = ping_body(&webhook);
    let other: MacSecret = "b3RoZXIgc2VjcmV0".parse()?;
    let refusals = [
        Some(other.sign(body.as_bytes())),
        Some(secret.sign(b"another body")),
        Some("hmac-sha256=not-hex".to_owned()),
        Some(
            secret
                .sign(body.as_bytes())
                .replace("hmac-sha256=", "sha1="),
        ),
        None,
    ];
    for mac in refusals {
        let (status, answer) = post_notification(&client, addr, &body, mac.clone()).await?;
        assert_eq!(status, 401, "{mac:?}: {answer}");
        assert_eq!(answer["code"], "unauthorized");
        assert!(answer["error"].is_string());
    }
    // Signed with the webhook's secret but not a notification: 400.
    let (status, answer) =
        post_notification(&client, addr, "[1, 2]", Some(secret.sign(b"[1, 2]"))).await?;
    assert_eq!(status, 400, "{answer}");

    assert_eq!(
        h.airtable.webhook_calls().payloads,
        0,
        "no payload was read"
    );
    assert_eq!(native.cursor(&webhook).await?, 1);
    let before = h.record_calls();
    assert_eq!(
        cache.get::<Event>(&id).await?.map(|e| e.name),
        Some("Original".into())
    );
    assert_eq!(h.record_calls(), before, "the cached copy was not touched");

    // The genuine notification still works afterwards.
    let (status, answer) =
        post_notification(&client, addr, &body, Some(secret.sign(body.as_bytes()))).await?;
    assert_eq!(status, 200, "{answer}");
    applied_through(&native, &webhook, 2).await;
    assert_eq!(
        cache.get::<Event>(&id).await?.map(|e| e.name),
        Some("Changed".into())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhooks_api_creates_lists_pages_refreshes_and_deletes_like_airtable() -> TestResult {
    let h = Harness::start().await?;
    let api = h.api();
    let created = api
        .create("http://127.0.0.1:9/unused", table_data_specification())
        .await?;
    assert!(
        created.id.starts_with("ach") && created.id.len() == 17,
        "{}",
        created.id
    );
    let secret: MacSecret = created.mac_secret_base64.expose().parse()?;
    assert!(!secret.expose_base64().is_empty());
    let expires = created.expiration_time.clone().ok_or("no expirationTime")?;
    let expires = chrono::DateTime::parse_from_rfc3339(&expires)?;
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((167..=168).contains(&days), "7 days, got {days} hours");
    api.enable_notifications(&created.id, false).await?;

    let listed = api.list().await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.id);
    assert_eq!(listed[0].cursor_for_next_payload, 1);
    assert!(listed[0].is_hook_enabled);
    assert!(!listed[0].are_notifications_enabled);
    assert_eq!(listed[0].specification, table_data_specification());

    let tables = api.tables().await?;
    let events = tables
        .iter()
        .find(|t| t.name == "Events")
        .ok_or("no Events table in the schema")?;
    assert!(events.id.starts_with("tbl"));
    let field_ids: HashMap<&str, &str> = events
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.id.as_str()))
        .collect();
    let name_field = *field_ids.get("name").ok_or("no name field")?;
    assert!(name_field.starts_with("fld"));
    assert_eq!(events.primary_field_id.as_deref(), Some(name_field));

    let id = h.event("One");
    assert!(h.rename(&id, "One v2"));
    assert!(h.airtable.remove(BASE, "Events", &id));

    let page = api.payloads(&created.id, 1, 1).await?;
    assert_eq!(
        (page.payloads.len(), page.cursor, page.might_have_more),
        (1, 2, true)
    );
    let first = &page.payloads[0];
    assert_eq!(first.payload_format, "v0");
    let created_cells = &first.changed_tables_by_id[&events.id].created_records_by_id[&id];
    assert_eq!(created_cells["cellValuesByFieldId"][name_field], "One");
    assert!(created_cells["createdTime"].is_string());

    let rest = api.payloads(&created.id, page.cursor, 50).await?;
    assert_eq!(
        (rest.payloads.len(), rest.cursor, rest.might_have_more),
        (2, 4, false)
    );
    let changed = &rest.payloads[0].changed_tables_by_id[&events.id].changed_records_by_id[&id];
    assert_eq!(
        changed["current"]["cellValuesByFieldId"][name_field],
        "One v2"
    );
    assert_eq!(
        rest.payloads[1].changed_tables_by_id[&events.id].destroyed_record_ids,
        vec![id.clone()]
    );
    assert!(rest.payloads[1].base_transaction_number > rest.payloads[0].base_transaction_number);

    let empty = api.payloads(&created.id, 4, 50).await?;
    assert_eq!(
        (empty.payloads.len(), empty.cursor),
        (0, 4),
        "no payloads: the cursor stays"
    );

    let refreshed = api.refresh(&created.id).await?.ok_or("no expirationTime")?;
    assert!(chrono::DateTime::parse_from_rfc3339(&refreshed)? >= expires);

    let calls = h.airtable.webhook_calls();
    assert_eq!(
        (calls.create, calls.list, calls.payloads, calls.schema),
        (1, 1, 3, 1)
    );
    assert!(
        h.airtable.calls_for(BASE).total >= 8,
        "webhook calls are API calls"
    );

    api.delete(&created.id).await?;
    assert!(api.list().await?.is_empty());
    assert!(matches!(
        api.payloads(&created.id, 1, 50).await,
        Err(SourceError::NotFound(_))
    ));

    let stranger = AirtableSource::builder("keyWRONG", BASE)
        .api_url(h.airtable.url())
        .build()?;
    assert!(matches!(
        WebhooksApi::new(stranger).list().await,
        Err(SourceError::Unauthorized(_))
    ));
    Ok(())
}

/// Waits until every ping recorded for `webhook` is drained (the background pager is idle).
async fn drained(cache: &Cache, webhook: &str) {
    let keys = cache.keys();
    let (pending, drained) = (
        keys.webhook_state("pending", webhook),
        keys.webhook_state("drained", webhook),
    );
    eventually("the recorded pings to be drained", || async {
        let store = cache.store();
        matches!(
            (store.get(&pending).await, store.get(&drained).await),
            (Ok(Some(p)), Ok(Some(d))) if p == d
        )
    })
    .await;
}

/// The p-th percentile (0-100) of sorted durations.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let index = (sorted.len() * p / 100).min(sorted.len().saturating_sub(1));
    sorted.get(index).copied().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_is_answered_before_any_airtable_call_while_airtable_is_slow_or_paused() -> TestResult
{
    let h = Harness::start().await?;
    let id = h.event("Before");
    let store = h.redis_store().await?;
    // A client whose 429 pause is long enough to be seen, short enough for a test.
    let paused_source = AirtableSource::builder(h.airtable.api_key(), BASE)
        .api_url(h.airtable.url())
        .rate_limit(1000, Duration::from_secs(1))
        .rate_limit_pause(Duration::from_secs(3))
        .build()?;
    let cache = h.cache(Arc::clone(&store));
    assert!(cache.get::<Event>(&id).await?.is_some());
    let (listener, addr) = listener().await?;
    let (webhook, secret) = h.webhook(&notify_url(addr), false).await?;
    let native = NativeWebhooks::builder(cache.clone(), models(), WebhooksApi::new(paused_source))
        .webhook(webhook.clone(), secret.clone())
        .build();
    serve(listener, native.clone());
    let client = reqwest::Client::new();
    let body = ping_body(&webhook);
    let mac = secret.sign(body.as_bytes());

    // Airtable answers every call after 5 s.
    h.airtable
        .set_latency(Duration::from_secs(5), Duration::from_secs(5));
    assert!(h.rename(&id, "Slow"));
    let mut latencies = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let (status, answer) = post_notification(&client, addr, &body, Some(mac.clone())).await?;
        latencies.push(started.elapsed());
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            h.airtable.webhook_calls().payloads,
            0,
            "a ping was answered only after a payload call"
        );
    }
    latencies.sort();
    println!(
        "ping latency over {} pings, Airtable at 5 s a call: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        percentile(&latencies, 50),
        percentile(&latencies, 99),
        latencies.last().copied().unwrap_or_default()
    );
    applied_through(&native, &webhook, 2).await;
    h.airtable.set_latency(Duration::ZERO, Duration::ZERO);
    drained(&cache, &webhook).await;
    assert_eq!(
        cache.get::<Event>(&id).await?.map(|e| e.name),
        Some("Slow".into()),
        "the payload was applied after the answers"
    );

    // Airtable answers 429: the client pauses the base for 3 s; pings are answered meanwhile.
    let before = h.airtable.webhook_calls().payloads;
    h.airtable.fail_next(1, 429);
    assert!(h.rename(&id, "Paused"));
    let (status, answer) = post_notification(&client, addr, &body, Some(mac.clone())).await?;
    assert_eq!(status, 200, "{answer}");
    eventually("the 429 to be answered", || async {
        h.airtable.calls().errors_injected > 0
    })
    .await;
    let (status, answer) = post_notification(&client, addr, &body, Some(mac)).await?;
    assert_eq!(status, 200, "answered during the 429 pause: {answer}");
    assert_eq!(
        h.airtable.webhook_calls().payloads,
        before,
        "no payload page was read during the pause"
    );
    applied_through(&native, &webhook, 3).await;
    assert_eq!(
        cache.get::<Event>(&id).await?.map(|e| e.name),
        Some("Paused".into())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_round_frees_the_webhook_lock_at_once() -> TestResult {
    let h = Harness::start().await?;
    let id = h.event("E");
    let store = h.redis_store().await?;
    let cache = h.cache(Arc::clone(&store));
    let (webhook, secret) = h.webhook("http://127.0.0.1:9/unused", false).await?;
    assert!(h.rename(&id, "E v2"));
    // The lock would outlive the test by far if only its TTL freed it.
    let native = NativeWebhooks::builder(cache.clone(), models(), h.api())
        .webhook(webhook.clone(), secret)
        .lock_ttl(Duration::from_secs(600))
        .build();
    let lock_key = cache.keys().lock(&format!("webhook:{webhook}"));
    h.airtable
        .set_latency(Duration::from_secs(30), Duration::from_secs(30));

    let round = tokio::spawn({
        let (native, webhook) = (native.clone(), webhook.clone());
        async move { native.sync(&webhook).await }
    });
    eventually("the round to take the lock", || async {
        matches!(store.get(&lock_key).await, Ok(Some(_)))
    })
    .await;
    round.abort();
    assert!(round.await.is_err_and(|e| e.is_cancelled()));
    eventually("the cancelled round's lock to be released", || async {
        matches!(store.get(&lock_key).await, Ok(None))
    })
    .await;
    h.airtable.set_latency(Duration::ZERO, Duration::ZERO);
    let outcome = tokio::time::timeout(PATIENCE, native.sync(&webhook)).await??;
    assert_eq!(outcome.payloads, 1, "another round runs at once");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_gap_invalidates_every_modelled_table() -> TestResult {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let h = Harness::start().await?;
    let unseen = h.event("Unseen v1");
    let seen = h.event("Seen v1");
    let cache = h.cache(h.redis_store().await?);
    let (webhook, secret) = h.webhook("http://127.0.0.1:9/unused", false).await?;
    let native = NativeWebhooks::builder(cache.clone(), models(), h.api())
        .webhook(webhook.clone(), secret)
        .build();
    for id in [&unseen, &seen] {
        assert!(cache.get::<Event>(id).await?.is_some());
    }

    // Payload 1 is recorded, then deleted by Airtable a week later, before anyone read it.
    assert!(h.rename(&unseen, "Unseen v2"));
    h.airtable.advance_webhook_clock(4 * DAY);
    h.api().refresh(&webhook).await?;
    h.airtable.advance_webhook_clock(4 * DAY);
    assert!(h.rename(&seen, "Seen v2"));

    let outcome = native.sync(&webhook).await?;
    assert_eq!(
        (outcome.gaps, outcome.skipped_payloads),
        (1, 1),
        "{outcome:?}"
    );
    assert_eq!(outcome.gap_invalidations, 2, "both cached Events");
    assert_eq!((outcome.payloads, outcome.cursor), (1, 3));
    assert_eq!(native.stats().gaps, 1, "the gap is counted");
    assert_eq!(
        cache.get::<Event>(&unseen).await?.map(|e| e.name),
        Some("Unseen v2".into()),
        "the change whose payload was lost is read again"
    );

    // A lost saved cursor (store flushed) reads from 1 again: Airtable no longer has payload
    // 1, so that is a gap too.
    cache
        .store()
        .delete(&[cache.keys().webhook_cursor(&webhook)])
        .await?;
    let again = native.sync(&webhook).await?;
    assert_eq!((again.gaps, again.cursor), (1, 3), "{again:?}");
    Ok(())
}
