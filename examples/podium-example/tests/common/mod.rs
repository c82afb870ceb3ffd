//! Shared helpers of the example app's integration tests: the whole app on a free port with the
//! local Airtable server (no latency) and, when asked, a real redis-server.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::time::Duration;

use podium_cache_core::config::{Secret, Settings};
use podium_cache_core::webhook::{sign, WebhookSecret};
use podium_example::server::{self, RunOptions, RunningApp};
use podium_local::redis::RedisServer;
use serde_json::Value;

pub struct TestApp {
    pub app: RunningApp,
    pub redis: Option<RedisServer>,
    pub http: reqwest::Client,
    pub base: String,
}

/// The app with `trust_delivery_fields = true`: deliveries' fields are stored as they came.
pub async fn start_trusting_delivery_fields(with_redis: bool) -> TestApp {
    start_with(Options {
        redis: with_redis,
        adjust: Some(Box::new(|settings| settings.trust_delivery_fields = true)),
        ..Options::default()
    })
    .await
}

pub async fn start(with_redis: bool) -> TestApp {
    start_with(Options {
        redis: with_redis,
        ..Options::default()
    })
    .await
}

/// A last change to the app's settings.
pub type AdjustSettings = Box<dyn FnOnce(&mut Settings)>;

/// How [`start_with`] starts the app.
#[derive(Default)]
pub struct Options {
    /// A real redis-server instead of the in-memory store.
    pub redis: bool,
    /// The in-memory store's capacity (`memory_capacity`), when not the default.
    pub memory_capacity: Option<u64>,
    /// The local Airtable server's latency (none by default).
    pub latency: Duration,
    /// The local Airtable server's rate limit per base (none by default).
    pub rate_limit: Option<u32>,
    /// Changes the settings last.
    pub adjust: Option<AdjustSettings>,
}

pub async fn start_with(options: Options) -> TestApp {
    let redis = options
        .redis
        .then(|| RedisServer::start().expect("redis-server"));
    let secret = WebhookSecret::generate();
    let mut settings = Settings::default();
    settings.webhook_secret = Some(Secret::new(secret.expose()));
    settings.redis_url = redis.as_ref().map(|r| Secret::new(r.url()));
    if let Some(capacity) = options.memory_capacity {
        settings.memory_capacity = capacity;
    }
    if let Some(adjust) = options.adjust {
        adjust(&mut settings);
    }
    let app = server::start(RunOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        settings: Some(settings),
        demo_latency: (options.latency, options.latency),
        demo_rate_limit: options.rate_limit,
        ..RunOptions::default()
    })
    .await
    .expect("app starts");
    let base = format!("http://{}", app.addr);
    TestApp {
        app,
        redis,
        http: reqwest::Client::new(),
        base,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Changes `fields` of record `id` of `table` in the local Airtable server (as a user editing
    /// the base does), so that a delivery read as a signal finds the change there.
    pub fn set_in_airtable(&self, table: &str, id: &str, fields: Value) {
        let Value::Object(fields) = fields else {
            panic!("fields must be a JSON object: {fields}");
        };
        let airtable = self
            .app
            .airtable
            .as_ref()
            .expect("the local Airtable server runs");
        assert!(
            airtable.update(podium_example::demo::DEMO_BASE, table, id, fields),
            "{table} {id} exists in the local Airtable server"
        );
    }

    /// Waits until `GET path` answers what `done` accepts (e.g. after a change in the local
    /// Airtable server, until the demo's native webhook has carried it to the app), so that a
    /// delivery sent next does not race it; panics after 10 s naming `what`.
    pub async fn settle(&self, what: &str, path: &str, done: impl Fn(u16, &Value) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = self.get_json(path).await;
            if done(status, &body) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: GET {path} still answers {status} {body} after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Record reads (get and list calls) the local Airtable server answered; webhook API
    /// calls (the demo's native webhook) are not counted.
    pub fn airtable_calls(&self) -> u64 {
        self.app
            .airtable
            .as_ref()
            .map(|a| a.calls().get + a.calls().list)
            .unwrap_or(0)
    }

    /// List (formula) calls the local Airtable server answered.
    pub fn airtable_list_calls(&self) -> u64 {
        self.app
            .airtable
            .as_ref()
            .map(|a| a.calls().list)
            .unwrap_or(0)
    }

    /// Every key in the store, for "nothing changed" assertions.
    pub async fn store_keys(&self) -> BTreeSet<String> {
        let store = self.app.cache.store();
        let mut keys = BTreeSet::new();
        let mut cursor = 0;
        loop {
            let page = store.scan("*", cursor, 500).await.expect("scan");
            keys.extend(page.keys);
            cursor = page.cursor;
            if cursor == 0 {
                return keys;
            }
        }
    }

    /// Posts `body` signed with the app's secret (id and timestamp given).
    pub async fn deliver_signed(&self, id: &str, timestamp: i64, body: &[u8]) -> (u16, Value) {
        self.deliver_signed_with(&self.app.webhook_secret, id, timestamp, body)
            .await
    }

    /// Posts `body` signed with `secret` (id and timestamp given).
    pub async fn deliver_signed_with(
        &self,
        secret: &WebhookSecret,
        id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> (u16, Value) {
        let signature = sign(secret, id, timestamp, body);
        self.post_webhook(
            body.to_vec(),
            &[
                ("webhook-id", id.to_string()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", signature),
            ],
        )
        .await
    }

    pub async fn post_webhook(&self, body: Vec<u8>, headers: &[(&str, String)]) -> (u16, Value) {
        let mut request = self
            .http
            .post(self.url("/api/webhooks/airtable"))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("webhook answers");
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("answer");
        let status = response.status().as_u16();
        (
            status,
            response.json::<Value>().await.unwrap_or(Value::Null),
        )
    }
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An ISO-8601 UTC timestamp with milliseconds, `offset_ms` from now.
pub fn iso(offset_ms: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::milliseconds(offset_ms))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
