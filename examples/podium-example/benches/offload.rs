//! Offload: the example app against the local Airtable server (2,000 projects, 100-500 ms,
//! 5 requests/s), 32 concurrent clients reading ids drawn from Zipf(s = 1.0) while 1% of
//! operations update a record in Airtable (delivered by a signed webhook, as the automation
//! would) and 0.1% delete one through the app. Beside it, the same readers with the cache
//! bypassed (straight to Airtable through the same rate-limited client).
//!
//! Reports reads/s, p50/p99, the share of reads that needed an Airtable call, Airtable 429s and
//! stale reads: reads that returned a version older than one whose webhook had been
//! acknowledged before the read started, or a record whose delete had been acknowledged.
//!
//! `cargo bench -p podium-example --bench offload [-- --seconds 60 --json PATH]`

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use podium_cache_core::config::{Secret, Settings};
use podium_cache_core::source::{AirtableSource, Source};
use podium_cache_core::webhook::{sign, WebhookSecret};
use podium_example::server::{self, RunOptions};
use podium_local::airtable::AirtableServer;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const BASE: &str = "appOFFLOADBENCH01";
const RECORDS: usize = 2_000;
const CLIENTS: usize = 32;

/// Zipf(s = 1) over `n` ranks by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let weights: Vec<f64> = (1..=n).map(|k| 1.0 / k as f64).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        Zipf {
            cdf: weights
                .iter()
                .map(|w| {
                    acc += w / total;
                    acc
                })
                .collect(),
        }
    }
    fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.gen();
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

/// What the writers acknowledged, per record: the newest version and whether it was deleted,
/// each with the instant of the acknowledgement.
#[derive(Default)]
struct Acked {
    versions: HashMap<String, (i64, Instant)>,
    deleted: HashMap<String, Instant>,
}

#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    stale: u64,
    errors: u64,
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

async fn cached_run(seconds: u64) -> Value {
    let airtable = AirtableServer::builder()
        .latency(Duration::from_millis(100), Duration::from_millis(500))
        .rate_limit(Some(5))
        .start()
        .await
        .expect("local airtable");
    let ids: Vec<String> = (0..RECORDS)
        .map(|i| {
            airtable.insert(
                BASE,
                "Projects",
                serde_json::from_value(json!({"name": format!("P{i}"), "points": 0})).expect("map"),
            )
        })
        .collect();
    let secret = WebhookSecret::generate();
    let mut settings = Settings::default();
    settings.airtable_api_key = Some(Secret::new(airtable.api_key()));
    settings.airtable_base_id = Some(BASE.into());
    settings.airtable_api_url = airtable.url();
    settings.webhook_secret = Some(Secret::new(secret.expose()));
    let app = server::start(RunOptions {
        bind: "127.0.0.1:0".parse().expect("addr"),
        settings: Some(settings),
        ..RunOptions::default()
    })
    .await
    .expect("app");
    let base = format!("http://{}", app.addr);
    let admin = app.admin_token.expose().to_owned();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let acked = Arc::new(Mutex::new(Acked::default()));
    let zipf = Arc::new(Zipf::new(RECORDS));
    let ids = Arc::new(ids);
    let version_counter = Arc::new(AtomicU64::new(0));
    let writes = Arc::new(Mutex::new(()));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let writes = Arc::clone(&writes);
        let admin = admin.clone();
        let (http, base, acked, zipf, ids, airtable, secret, counter) = (
            http.clone(),
            base.clone(),
            Arc::clone(&acked),
            Arc::clone(&zipf),
            Arc::clone(&ids),
            airtable.clone(),
            secret.clone(),
            Arc::clone(&version_counter),
        );
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            let mut rng = rand::rngs::StdRng::from_entropy();
            while Instant::now() < deadline {
                let id = &ids[zipf.sample(&mut rng)];
                let roll: f64 = rng.gen();
                if roll < 0.001 {
                    // Delete through the app (a write: with the admin token).
                    let response = http
                        .delete(format!("{base}/projects/{id}"))
                        .bearer_auth(&admin)
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status().is_success() => {
                            acked.lock().deleted.insert(id.clone(), Instant::now());
                        }
                        _ => out.errors += 1,
                    }
                } else if roll < 0.011 {
                    // An update in Airtable, delivered by a signed webhook.
                    if acked.lock().deleted.contains_key(id) {
                        continue;
                    }
                    // The change and its timestamp, taken together (as Airtable's automation
                    // reports the change time), so versions and timestamps agree.
                    let (version, record, timestamp) = {
                        let _writer = writes.lock();
                        let version = counter.fetch_add(1, Ordering::Relaxed) as i64 + 1;
                        let mut fields = serde_json::Map::new();
                        fields.insert("points".into(), json!(version));
                        if !airtable.update(BASE, "Projects", id, fields) {
                            continue;
                        }
                        let record = airtable
                            .get(BASE, "Projects", id)
                            .map(|r| r.fields)
                            .unwrap_or_default();
                        let timestamp =
                            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                        std::thread::sleep(Duration::from_millis(1));
                        (version, record, timestamp)
                    };
                    let mut flat = record.clone();
                    flat.insert("id".into(), json!(id));
                    let body = serde_json::to_vec(&json!({
                        "table": "Projects", "record_id": id, "record": flat,
                        "timestamp": timestamp,
                    }))
                    .unwrap_or_default();
                    let now = chrono::Utc::now().timestamp();
                    let msg = format!("msg_{version}");
                    let signature = sign(&secret, &msg, now, &body);
                    let response = http
                        .post(format!("{base}/api/webhooks/airtable"))
                        .header("webhook-id", &msg)
                        .header("webhook-timestamp", now.to_string())
                        .header("webhook-signature", signature)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status().is_success() => {
                            let mut acked = acked.lock();
                            let entry = acked
                                .versions
                                .entry(id.clone())
                                .or_insert((0, Instant::now()));
                            if version > entry.0 {
                                *entry = (version, Instant::now());
                            }
                        }
                        _ => out.errors += 1,
                    }
                } else {
                    let read_start = Instant::now();
                    let (min_version, deleted) = {
                        let acked = acked.lock();
                        (
                            acked.versions.get(id).map(|v| v.0).unwrap_or(0),
                            acked.deleted.contains_key(id),
                        )
                    };
                    let response = http.get(format!("{base}/projects/{id}")).send().await;
                    let elapsed = read_start.elapsed();
                    match response {
                        Ok(r) if r.status().as_u16() == 200 => {
                            out.latencies.push(elapsed);
                            let body: Value = r.json().await.unwrap_or(Value::Null);
                            let points = body["points"].as_f64().unwrap_or(-1.0) as i64;
                            if deleted || points < min_version {
                                out.stale += 1;
                            }
                        }
                        Ok(r) if r.status().as_u16() == 404 => out.latencies.push(elapsed),
                        _ => out.errors += 1,
                    }
                }
            }
            out
        }));
    }
    let mut all = Outcome::default();
    for task in tasks {
        let out = task.await.expect("client");
        all.latencies.extend(out.latencies);
        all.stale += out.stale;
        all.errors += out.errors;
    }
    let elapsed = started.elapsed();
    all.latencies.sort_unstable();
    let reads = all.latencies.len() as u64;
    let calls = airtable.calls();
    let read_calls = calls.get + calls.list;
    let metrics = app.cache.metrics();
    let _ = app.shutdown().await;
    json!({
        "reads": reads,
        "reads_per_sec": reads as f64 / elapsed.as_secs_f64(),
        "p50_ms": percentile(&all.latencies, 0.5).as_secs_f64() * 1e3,
        "p99_ms": percentile(&all.latencies, 0.99).as_secs_f64() * 1e3,
        "airtable_read_calls": read_calls,
        "misses": metrics.misses,
        "share_needing_airtable": metrics.misses as f64 / reads.max(1) as f64,
        "airtable_429": calls.rate_limited,
        "stale_reads": all.stale,
        "errors": all.errors,
        "updates_acknowledged": version_counter.load(Ordering::Relaxed),
    })
}

async fn bypass_run(seconds: u64) -> Value {
    let airtable = AirtableServer::builder()
        .latency(Duration::from_millis(100), Duration::from_millis(500))
        .rate_limit(Some(5))
        .start()
        .await
        .expect("local airtable");
    let ids: Vec<String> = (0..RECORDS)
        .map(|i| {
            airtable.insert(
                BASE,
                "Projects",
                serde_json::from_value(json!({"name": format!("P{i}"), "points": 0})).expect("map"),
            )
        })
        .collect();
    let source = AirtableSource::builder(airtable.api_key(), BASE)
        .api_url(airtable.url())
        .build()
        .expect("source");
    let zipf = Arc::new(Zipf::new(RECORDS));
    let ids = Arc::new(ids);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (source, zipf, ids) = (source.clone(), Arc::clone(&zipf), Arc::clone(&ids));
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::from_entropy();
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let id = &ids[zipf.sample(&mut rng)];
                let start = Instant::now();
                if source.get("Projects", id).await.is_ok() {
                    latencies.push(start.elapsed());
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client"));
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    json!({
        "reads": latencies.len(),
        "reads_per_sec": latencies.len() as f64 / elapsed.as_secs_f64(),
        "p50_ms": percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        "p99_ms": percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        "airtable_429": airtable.calls().rate_limited,
    })
}

fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn main() {
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(60);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Side by side in one run: the bypassed readers wait on Airtable's 5 requests/s, so they
    // take almost no CPU from the cached run.
    let (cached, bypass) =
        runtime.block_on(async { tokio::join!(cached_run(seconds), bypass_run(seconds)) });
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    println!("## Offload ({seconds} s, {CLIENTS} clients, Zipf(1) over {RECORDS} records, Airtable 100-500 ms at 5 req/s)\n");
    println!(
        "| run | reads/s | p50 | p99 | reads needing Airtable | Airtable 429s | stale reads |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| with podium-cache | {:.0} | {:.2} ms | {:.2} ms | {:.2}% | {} | {} |",
        f(&cached, "reads_per_sec"),
        f(&cached, "p50_ms"),
        f(&cached, "p99_ms"),
        f(&cached, "share_needing_airtable") * 100.0,
        cached["airtable_429"],
        cached["stale_reads"]
    );
    println!(
        "| cache bypassed | {:.1} | {:.0} ms | {:.0} ms | 100% | {} | n/a |",
        f(&bypass, "reads_per_sec"),
        f(&bypass, "p50_ms"),
        f(&bypass, "p99_ms"),
        bypass["airtable_429"]
    );
    println!(
        "\nspeed-up: {:.0}x reads/s, p50 {:.0}x lower",
        f(&cached, "reads_per_sec") / f(&bypass, "reads_per_sec"),
        f(&bypass, "p50_ms") / f(&cached, "p50_ms")
    );
    let results = json!({"cached": cached, "bypass": bypass, "seconds": seconds});
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
