//! Webhook deliveries, measured in one run: the cost of verifying one signed delivery (µs),
//! beside the HMAC alone (the floor), and the deliveries/s the app's endpoint sustains over
//! loopback HTTP with 16 concurrent senders, on the in-memory store and on Redis.
//!
//! `cargo bench -p podium-example --bench webhooks [-- --seconds 5 --json PATH]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use podium_cache_core::config::{Secret, Settings};
use podium_cache_core::webhook::signature::{verify, SignatureHeaders, DEFAULT_TOLERANCE};
use podium_cache_core::webhook::{sign, WebhookSecret};
use podium_example::server::{self, RunOptions};
use podium_local::redis::RedisServer;
use serde_json::{json, Value};
use sha2::Sha256;

fn delivery(id: &str, version: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "table": "Projects",
        "record_id": id,
        "record": {"id": id, "name": format!("Project {version}"), "description": "A project with a description of ordinary length for a delivery body.",
                   "repo": "https://example.com/repo", "demo": "https://example.com/demo", "image_url": "https://example.com/i.png",
                   "points": version, "event": ["recEVT00000000001"], "owner": ["recUSR00000000001"], "collaborators": ["recUSR00000000002"]},
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }))
    .unwrap_or_default()
}

/// ns per `verify` of one signed delivery, and ns per bare HMAC-SHA256 of the same bytes.
fn verification_cost(iterations: u32) -> (f64, f64, usize) {
    let secret = WebhookSecret::generate();
    let body = delivery("recPRJ00000000001", 1);
    let now = chrono::Utc::now().timestamp();
    let headers = SignatureHeaders::new(
        "msg_bench",
        now.to_string(),
        sign(&secret, "msg_bench", now, &body),
    );
    let secrets = [secret.clone()];
    for _ in 0..1_000 {
        assert!(verify(&secrets, &headers, &body, now, DEFAULT_TOLERANCE).is_ok());
    }
    let start = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(verify(
            &secrets,
            &headers,
            std::hint::black_box(&body),
            now,
            DEFAULT_TOLERANCE,
        ))
        .ok();
    }
    let verify_ns = start.elapsed().as_nanos() as f64 / f64::from(iterations);
    let start = Instant::now();
    for _ in 0..iterations {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.key()).expect("any key length");
        mac.update(b"msg_bench.");
        mac.update(now.to_string().as_bytes());
        mac.update(b".");
        mac.update(std::hint::black_box(&body));
        std::hint::black_box(mac.finalize());
    }
    let hmac_ns = start.elapsed().as_nanos() as f64 / f64::from(iterations);
    (verify_ns, hmac_ns, body.len())
}

/// Deliveries/s and p50/p99 through the app's endpoint over HTTP.
async fn endpoint(redis_url: Option<String>, seconds: u64) -> Value {
    let secret = WebhookSecret::generate();
    let mut settings = Settings::default();
    settings.webhook_secret = Some(Secret::new(secret.expose()));
    settings.redis_url = redis_url.map(Secret::new);
    let app = server::start(RunOptions {
        bind: "127.0.0.1:0".parse().expect("addr"),
        settings: Some(settings),
        demo_latency: (Duration::ZERO, Duration::ZERO),
        demo_rate_limit: None,
        ..RunOptions::default()
    })
    .await
    .expect("app");
    let url = format!("http://{}/api/webhooks/airtable", app.addr);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(32)
        .build()
        .expect("client");
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for sender in 0..16 {
        let (http, url, secret, counter) = (
            http.clone(),
            url.clone(),
            secret.clone(),
            Arc::clone(&counter),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut refused = 0u64;
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let id = format!("recPRJ{:011}", (n % 2_000) + 1);
                let body = delivery(&id, n);
                let now = chrono::Utc::now().timestamp();
                let msg = format!("msg_{sender}_{n}");
                let signature = sign(&secret, &msg, now, &body);
                let start = Instant::now();
                let response = http
                    .post(&url)
                    .header("webhook-id", &msg)
                    .header("webhook-timestamp", now.to_string())
                    .header("webhook-signature", signature)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => latencies.push(start.elapsed()),
                    _ => refused += 1,
                }
            }
            (latencies, refused)
        }));
    }
    let mut latencies = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (l, r) = task.await.expect("sender");
        latencies.extend(l);
        refused += r;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * q).round() as usize)
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(f64::NAN)
    };
    let applied = app.cache.metrics().upserts_applied;
    let _ = app.shutdown().await;
    json!({
        "deliveries_per_sec": latencies.len() as f64 / elapsed.as_secs_f64(),
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "accepted": latencies.len(),
        "refused": refused,
        "applied": applied,
    })
}

fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn main() {
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(5);
    let (verify_ns, hmac_ns, bytes) = verification_cost(200_000);
    let redis = RedisServer::start().expect("redis-server");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (memory, on_redis) = runtime.block_on(async {
        (
            endpoint(None, seconds).await,
            endpoint(Some(redis.url()), seconds).await,
        )
    });
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    println!("## Webhook deliveries\n");
    println!("| measurement | value | ratio |");
    println!("|---|---|---|");
    println!(
        "| HMAC-SHA256 of one {bytes}-byte delivery (floor) | {:.2} µs | 1.00 |",
        hmac_ns / 1e3
    );
    println!(
        "| `verify` of one signed delivery | {:.2} µs | {:.2} |",
        verify_ns / 1e3,
        verify_ns / hmac_ns
    );
    println!();
    println!(
        "| endpoint, 16 concurrent senders, {seconds} s | deliveries/s | p50 | p99 | refused |"
    );
    println!("|---|---|---|---|---|");
    for (name, v) in [("MemoryStore", &memory), ("RedisStore", &on_redis)] {
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {} |",
            f(v, "deliveries_per_sec"),
            f(v, "p50_ms"),
            f(v, "p99_ms"),
            v["refused"]
        );
    }
    let results = json!({
        "verify_ns": verify_ns, "hmac_ns": hmac_ns, "body_bytes": bytes,
        "endpoint_memory": memory, "endpoint_redis": on_redis,
    });
    if let Some(path) = arg("--json") {
        if let Some(parent) = std::path::Path::new(&path).parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(
            &path,
            serde_json::to_vec_pretty(&results).unwrap_or_default(),
        );
    }
}
