//! The generated Airtable automation scripts, run for real under Node against a stand-in of
//! Airtable's scripting API (`tests/js/airtable_sandbox.js`) and a real HTTP webhook that
//! verifies each delivery with `webhook::signature::verify`.
//!
//! Needs `node` (v18 or newer) on PATH, or its path in the `NODE` environment variable.

#[path = "common/conference.rs"]
mod conference;

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use conference::{Rating, Speaker, Talk};
use podium_cache_core::entity::{Cacheable, EntityMeta, FieldKind, FieldMeta};
use podium_cache_core::scripts::{automation_script, automation_script_with, ScriptOptions};
use podium_cache_core::webhook::signature::{
    verify, SignatureHeaders, VerifyError, WebhookSecret, DEFAULT_TOLERANCE,
};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

const WEBHOOK_PATH: &str = "/api/webhooks/airtable";

// ---------------------------------------------------------------------------------------------
// The webhook: verifies with the real `verify`, answers 200/401 (or a forced answer), records.

#[derive(Clone, Debug)]
struct Received {
    headers: SignatureHeaders,
    content_type: Option<String>,
    body: Bytes,
    verified: Result<(), VerifyError>,
    status: u16,
    at: Instant,
}

#[derive(Default)]
struct Inbox {
    forced: VecDeque<(u16, String)>,
    received: Vec<Received>,
}

#[derive(Clone)]
struct ServerState {
    secret: WebhookSecret,
    inbox: Arc<Mutex<Inbox>>,
}

struct Webhook {
    url: String,
    secret: WebhookSecret,
    inbox: Arc<Mutex<Inbox>>,
}

impl Webhook {
    /// Starts a webhook on 127.0.0.1; the first answers are `forced` (status, body), the rest
    /// come from verifying the signature.
    async fn start(forced: &[(u16, &str)]) -> Webhook {
        let secret = WebhookSecret::generate();
        let inbox = Arc::new(Mutex::new(Inbox {
            forced: forced.iter().map(|(s, b)| (*s, b.to_string())).collect(),
            received: Vec::new(),
        }));
        let state = ServerState {
            secret: secret.clone(),
            inbox: inbox.clone(),
        };
        let app = Router::new()
            .route(WEBHOOK_PATH, post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test webhook");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Webhook {
            url: format!("http://{addr}{WEBHOOK_PATH}"),
            secret,
            inbox,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.inbox.lock().expect("inbox lock").received.clone()
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn receive(
    State(state): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let signature_headers = SignatureHeaders::from_lookup(|name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let verified = verify(
        std::slice::from_ref(&state.secret),
        &signature_headers,
        &body,
        now_secs(),
        DEFAULT_TOLERANCE,
    );
    let mut inbox = state.inbox.lock().expect("inbox lock");
    let (status, answer) = match inbox.forced.pop_front() {
        Some(forced) => forced,
        None => match &verified {
            Ok(()) => (200, r#"{"status":"applied"}"#.to_owned()),
            Err(err) => (401, json!({ "error": err.to_string() }).to_string()),
        },
    };
    inbox.received.push(Received {
        headers: signature_headers,
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
        verified,
        status,
        at: Instant::now(),
    });
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        answer,
    )
}

// ---------------------------------------------------------------------------------------------
// Running a script under Node in the stand-in sandbox.

#[derive(Debug)]
struct NodeRun {
    ok: bool,
    error: Option<String>,
    logs: Vec<String>,
    output: Map<String, Value>,
    absent_globals: Vec<String>,
    selftest: Value,
    wall: Duration,
    /// The script's own total time on the sandbox's virtual clock (scenario `"clock": "virtual"`).
    virtual_elapsed_ms: Option<u64>,
}

impl NodeRun {
    fn error(&self) -> &str {
        self.error.as_deref().unwrap_or("")
    }

    fn logged(&self, needle: &str) -> bool {
        self.logs.iter().any(|line| line.contains(needle))
    }
}

fn harness() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js/airtable_sandbox.js")
}

fn node() -> String {
    std::env::var("NODE").unwrap_or_else(|_| "node".to_owned())
}

/// Runs `script` in the sandbox described by `scenario` (the `script` key is filled in).
async fn run_script(label: &str, script: &str, mut scenario: Value) -> NodeRun {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "podium-automation-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let path = dir.join("script.js");
    std::fs::write(&path, script).expect("write script");
    scenario["script"] = json!(path);
    let label = label.to_owned();
    let run = tokio::task::spawn_blocking(move || run_node_blocking(&scenario))
        .await
        .expect("node runner thread");
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("node run [{label}]: {} ms", run.wall.as_millis());
    run
}

fn run_node_blocking(scenario: &Value) -> NodeRun {
    let started = Instant::now();
    let mut child = Command::new(node())
        .arg(harness())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("cannot start `{}` ({err}): these tests need Node.js 18+ on PATH (or NODE=/path/to/node)", node())
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(scenario.to_string().as_bytes())
        .expect("write scenario");
    let deadline = started + Duration::from_secs(30);
    loop {
        match child.try_wait().expect("poll node") {
            Some(_) => break,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("node did not finish within 30 s");
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let out = child.wait_with_output().expect("node output");
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the harness failed ({}): {}{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|err| panic!("harness printed no JSON ({err}): {stdout}"));
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    NodeRun {
        ok: result["ok"].as_bool().unwrap_or(false),
        error: result["error"].as_str().map(str::to_owned),
        logs: strings(&result["logs"]),
        output: result["output"].as_object().cloned().unwrap_or_default(),
        absent_globals: strings(&result["absentGlobals"]),
        selftest: result["selftest"].clone(),
        wall,
        virtual_elapsed_ms: result["virtualElapsedMs"].as_u64(),
    }
}

// ---------------------------------------------------------------------------------------------
// A model's stand-in table and the record the script must send for it.

const RECORD_ID: &str = "recTrigger0001";

struct Sample {
    meta: &'static EntityMeta,
    /// The stand-in table: the model's fields plus one the model does not have.
    table: Value,
    /// The `record` object the delivery must carry.
    expected: Value,
    /// Linked ids per link field, as `references()` must report them.
    links: Vec<(&'static str, Vec<String>)>,
}

/// Builds the trigger record of `T`'s table (cells in the REST API's shapes; the sandbox hands
/// them to the script in the scripting API's, e.g. links as `[{id, name}]`): numbers
/// and booleans have their JSON types (read from the model's schema), text has quotes and
/// non-ASCII, the model's last field is an empty cell, and one extra field is not in the model.
fn sample<T: Cacheable + JsonSchema>() -> Sample {
    let schema = serde_json::to_value(schemars::schema_for!(T)).expect("schema as JSON");
    sample_of(T::meta(), |name: &str| -> String {
        let ty = &schema["properties"][name]["type"];
        let types: Vec<&str> = match ty {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        ["number", "integer", "boolean"]
            .into_iter()
            .find(|t| types.contains(t))
            .unwrap_or("string")
            .to_owned()
    })
}

/// [`sample`] for a table described by `meta` alone, `json_type` naming each scalar field's
/// JSON type (`"number"`, `"integer"`, `"boolean"` or `"string"`).
fn sample_of(meta: &'static EntityMeta, json_type: impl Fn(&str) -> String) -> Sample {
    let mut fields = Vec::new();
    let mut cells = Map::new();
    let mut expected = Map::new();
    let mut links = Vec::new();
    expected.insert("id".into(), json!(RECORD_ID));
    let last = meta.fields.len().saturating_sub(1);
    for (i, field) in meta.fields.iter().enumerate() {
        let empty = i == last;
        match field.kind {
            FieldKind::Link { entity, many } => {
                fields.push(json!({"name": field.name, "type": "multipleRecordLinks"}));
                let ids: Vec<String> = if empty {
                    vec![]
                } else {
                    vec![format!("rec{entity}{i}a"), format!("rec{entity}{i}b")]
                };
                if !empty {
                    cells.insert(field.name.into(), json!(ids));
                    let value = if many { json!(ids) } else { json!(ids[0]) };
                    expected.insert(field.name.into(), value);
                }
                let linked = if many {
                    ids
                } else {
                    ids.into_iter().take(1).collect()
                };
                links.push((field.name, linked));
            }
            FieldKind::Scalar => {
                let (airtable_type, value) = match json_type(field.name).as_str() {
                    "number" | "integer" => ("number", json!(i + 1)),
                    "boolean" => ("checkbox", json!(true)),
                    _ => (
                        "singleLineText",
                        json!(format!(
                            "{} of {} — \"quoted\" ✓ 🎉",
                            field.name, meta.table
                        )),
                    ),
                };
                fields.push(json!({"name": field.name, "type": airtable_type}));
                if !empty {
                    cells.insert(field.name.into(), value.clone());
                    expected.insert(field.name.into(), value);
                }
            }
        }
    }
    fields.push(json!({"name": "Internal notes", "type": "multilineText"}));
    cells.insert("Internal notes".into(), json!("not part of the model"));
    let table = json!({
        "name": meta.table,
        "fields": fields,
        "records": [
            {"id": "recOther", "cells": {}},
            {"id": RECORD_ID, "name": "the trigger record", "cells": cells},
        ],
    });
    Sample {
        meta,
        table,
        expected: Value::Object(expected),
        links,
    }
}

/// The seed's "Invalidate Config" table, readable by every reader of the base: the scripts
/// must not read the secret from it.
fn config_table(rows: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, (k, v))| json!({"id": format!("recCfg{i}"), "cells": {"key": k, "value": v}}))
        .collect();
    json!({
        "name": "Invalidate Config",
        "fields": [{"name": "key", "type": "singleLineText"}, {"name": "value", "type": "singleLineText"}],
        "records": records,
    })
}

/// The script secret's name the setup steps give.
const SECRET_NAME: &str = "podium_webhook_secret";

fn scenario(webhook: &Webhook, table: &Value, subtle: bool) -> Value {
    json!({
        "mode": "run",
        "recordId": RECORD_ID,
        "inputs": {"webhookUrl": webhook.url},
        "secrets": {SECRET_NAME: webhook.secret.expose()},
        "tables": [table],
        "subtle": subtle,
        "tamper": false,
    })
}

/// Runs `sample`'s script with default options, crypto.subtle and the webhook's URL and secret.
async fn run_default(label: &str, sample: &Sample, webhook: &Webhook) -> NodeRun {
    let script = automation_script(sample.meta);
    run_script(label, &script, scenario(webhook, &sample.table, true)).await
}

/// Asserts the delivery's `timestamp` is ISO-8601 UTC with milliseconds and close to now.
fn assert_iso_millis(timestamp: &str) {
    let bytes = timestamp.as_bytes();
    assert_eq!(bytes.len(), 24, "{timestamp}");
    assert_eq!(bytes[19], b'.', "{timestamp}");
    assert!(timestamp.ends_with('Z'), "{timestamp}");
    let parsed = chrono::DateTime::parse_from_rfc3339(timestamp).expect("RFC 3339 timestamp");
    let age = chrono::Utc::now().signed_duration_since(parsed);
    assert!(age.num_seconds().abs() < 60, "{timestamp} is not now");
}

/// Runs `T`'s generated script once and checks everything the webhook received.
async fn delivers_a_verified_record<T: Cacheable + JsonSchema>(subtle: bool) -> Duration {
    let sample = sample::<T>();
    let webhook = Webhook::start(&[]).await;
    let script = automation_script(sample.meta);
    let label = format!(
        "{} {}",
        sample.meta.entity,
        if subtle { "crypto.subtle" } else { "bundled" }
    );
    let run = run_script(&label, &script, scenario(&webhook, &sample.table, subtle)).await;
    assert!(
        run.ok,
        "{label}: script failed: {} {:?}",
        run.error(),
        run.logs
    );

    let mut forbidden = vec!["setTimeout", "Buffer", "process", "require", "TextEncoder"];
    if !subtle {
        forbidden.push("crypto");
    }
    for name in forbidden {
        assert!(
            run.absent_globals.iter().any(|g| g == name),
            "{label}: {name} leaked into the sandbox"
        );
    }
    let via = if subtle {
        "via crypto.subtle"
    } else {
        "via bundled SHA-256"
    };
    assert!(run.logged(via), "{label}: expected {via}: {:?}", run.logs);

    let received = webhook.received();
    assert_eq!(received.len(), 1, "{label}: one delivery");
    let delivery = &received[0];
    assert_eq!(delivery.verified, Ok(()), "{label}");
    assert_eq!(delivery.status, 200);
    assert_eq!(delivery.content_type.as_deref(), Some("application/json"));
    // Verified again here, independently of the server's bookkeeping.
    verify(
        std::slice::from_ref(&webhook.secret),
        &delivery.headers,
        &delivery.body,
        now_secs(),
        DEFAULT_TOLERANCE,
    )
    .expect("signature verifies");
    let id = delivery.headers.id.as_deref().unwrap_or_default();
    assert!(id.starts_with("msg_") && id.len() > 10, "{id}");

    let body: Value = serde_json::from_slice(&delivery.body).expect("JSON body");
    let mut keys: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["record", "record_id", "table", "timestamp"]);
    assert_eq!(body["table"], json!(sample.meta.table));
    assert_eq!(body["record_id"], json!(RECORD_ID));
    assert_eq!(body["record"], sample.expected, "{label}: record fields");
    assert_iso_millis(body["timestamp"].as_str().expect("timestamp string"));

    let model: T = serde_json::from_value(body["record"].clone()).expect("record fits the model");
    assert_eq!(model.id(), RECORD_ID);
    let references: Vec<(&str, Vec<String>)> = model
        .references()
        .iter()
        .map(|r| (r.field, r.ids.iter().map(|s| s.to_string()).collect()))
        .collect();
    assert_eq!(references, sample.links, "{label}: linked ids");

    assert_eq!(run.output.get("status"), Some(&json!("delivered")));
    assert_eq!(run.output.get("httpStatus"), Some(&json!(200)));
    assert_eq!(run.output.get("response"), Some(&json!("applied")));
    run.wall
}

async fn every_model_delivers(subtle: bool) {
    let mut total = Duration::ZERO;
    total += delivers_a_verified_record::<Speaker>(subtle).await;
    total += delivers_a_verified_record::<Talk>(subtle).await;
    total += delivers_a_verified_record::<Rating>(subtle).await;
    eprintln!(
        "three models, subtle={subtle}: {} ms of node",
        total.as_millis()
    );
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn every_model_script_delivers_a_verified_record_using_crypto_subtle() {
    every_model_delivers(true).await;
}

#[tokio::test]
async fn every_model_script_delivers_a_verified_record_with_the_bundled_hmac_when_crypto_is_absent()
{
    every_model_delivers(false).await;
}

#[tokio::test]
async fn bundled_utf8_base64_sha256_and_hmac_agree_with_node_crypto() {
    let script = automation_script(Talk::meta());
    let run = run_script(
        "selftest",
        &script,
        json!({"mode": "selftest", "recordId": null, "tables": [], "subtle": false}),
    )
    .await;
    assert!(run.ok, "selftest failed: {}", run.error());
    let checked = run.selftest["checked"].as_u64().unwrap_or(0);
    assert!(checked > 600, "only {checked} checks ran");
}

#[tokio::test]
async fn a_body_changed_after_signing_is_refused_and_the_script_fails_explaining_why() {
    let sample = sample::<Talk>();
    let webhook = Webhook::start(&[]).await;
    let mut scenario = scenario(&webhook, &sample.table, false);
    scenario["tamper"] = json!(true);
    let run = run_script("tampered", &automation_script(sample.meta), scenario).await;
    assert!(!run.ok);
    let error = run.error();
    assert!(error.contains("HTTP 401"), "{error}");
    assert!(error.contains("signature was refused"), "{error}");
    assert!(error.contains("webhook_secret"), "{error}");
    let received = webhook.received();
    assert_eq!(received.len(), 1, "a refusal is not retried");
    assert_eq!(received[0].verified, Err(VerifyError::SignatureMismatch));
    assert_eq!(received[0].status, 401);
    assert!(!run.output.contains_key("status"));
}

#[tokio::test]
async fn a_missing_record_id_input_explains_how_to_add_it() {
    let sample = sample::<Talk>();
    let webhook = Webhook::start(&[]).await;
    let mut scenario = scenario(&webhook, &sample.table, true);
    scenario["recordId"] = Value::Null;
    let run = run_script("no recordId", &automation_script(sample.meta), scenario).await;
    assert!(!run.ok);
    let error = run.error();
    assert!(error.contains("No recordId input variable"), "{error}");
    assert!(
        error.contains("add an input variable named recordId"),
        "{error}"
    );
    assert!(error.contains("Airtable record ID"), "{error}");
    assert!(webhook.received().is_empty());
}

fn assert_config_help(error: &str) {
    for needle in [
        "recordId",
        "webhookUrl",
        SECRET_NAME,
        "whsec_",
        "cargo xtask gen-secret",
        "Invalidate Config",
    ] {
        assert!(error.contains(needle), "missing {needle:?} in: {error}");
    }
}

/// Issue #16, finding 3: the secret must not sit where every base reader can read it. With no
/// script secret, a secret in the seed's "Invalidate Config" table is not used: the run fails
/// explaining where the secret goes, and nothing is sent.
#[tokio::test]
async fn the_secret_is_never_read_from_a_table_every_reader_can_read() {
    let sample = sample::<Talk>();
    let webhook = Webhook::start(&[]).await;
    let mut scenario = scenario(&webhook, &sample.table, true);
    scenario["secrets"] = json!({});
    scenario["tables"] = json!([
        sample.table,
        config_table(&[
            ("webhook_url", &webhook.url),
            ("webhook_secret", &webhook.secret.expose())
        ]),
    ]);
    let run = run_script(
        "secret in a table",
        &automation_script(sample.meta),
        scenario,
    )
    .await;
    assert!(!run.ok);
    assert!(run.error().contains("No webhook secret"), "{}", run.error());
    assert_config_help(run.error());
    assert!(webhook.received().is_empty());
}

/// Where script secrets do not exist, the input variable webhookSecret is used, and the run
/// log says who can see it.
#[tokio::test]
async fn without_script_secrets_the_input_variable_is_used_and_the_log_says_who_sees_it() {
    let sample = sample::<Talk>();
    let webhook = Webhook::start(&[]).await;
    let mut scenario = scenario(&webhook, &sample.table, true);
    scenario["secrets"] = Value::Null;
    scenario["inputs"]["webhookSecret"] = json!(webhook.secret.expose());
    let run = run_script("input secret", &automation_script(sample.meta), scenario).await;
    assert!(run.ok, "{} {:?}", run.error(), run.logs);
    assert!(
        run.logged("anyone who can view this automation"),
        "{:?}",
        run.logs
    );
    assert_eq!(webhook.received().len(), 1);
    assert_eq!(webhook.received()[0].verified, Ok(()));
}

#[tokio::test]
async fn a_missing_webhook_url_input_is_explained() {
    let sample = sample::<Talk>();
    let webhook = Webhook::start(&[]).await;
    let mut scenario = scenario(&webhook, &sample.table, true);
    scenario["inputs"] = json!({});
    let run = run_script("no webhookUrl", &automation_script(sample.meta), scenario).await;
    assert!(!run.ok);
    assert!(
        run.error().contains("No webhookUrl input variable"),
        "{}",
        run.error()
    );
    assert_config_help(run.error());
    assert!(webhook.received().is_empty());
}

#[tokio::test]
async fn a_secret_without_the_whsec_prefix_is_explained() {
    let sample = sample::<Talk>();
    let webhook = Webhook::start(&[]).await;
    let mut scenario = scenario(&webhook, &sample.table, true);
    scenario["secrets"] = json!({SECRET_NAME: "hunter2"});
    let run = run_script("bad secret", &automation_script(sample.meta), scenario).await;
    assert!(!run.ok);
    assert!(
        run.error().contains("must be whsec_ followed by base64"),
        "{}",
        run.error()
    );
    assert!(webhook.received().is_empty());
}

#[tokio::test]
async fn a_500_answer_is_retried_with_the_same_message_id_and_the_next_200_succeeds() {
    let sample = sample::<Talk>();
    let webhook = Webhook::start(&[(500, "temporarily broken")]).await;
    let run = run_default("500 then 200", &sample, &webhook).await;
    assert!(run.ok, "{} {:?}", run.error(), run.logs);
    assert!(run.logged("Attempt 1 failed: HTTP 500: temporarily broken"));
    let waits = logged_waits(&run);
    assert_eq!(waits.len(), 1, "{:?}", run.logs);
    assert!((250..=375).contains(&waits[0]), "{waits:?}");
    assert_eq!(run.output.get("attempts"), Some(&json!(2)));
    let received = webhook.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].status, 500);
    assert_eq!(received[1].status, 200);
    assert_eq!(received[0].headers.id, received[1].headers.id);
    assert!(received.iter().all(|r| r.verified.is_ok()));
    let waited = received[1].at.duration_since(received[0].at);
    assert!(waited >= Duration::from_millis(250), "waited {waited:?}");
}

#[tokio::test]
async fn a_4xx_answer_fails_the_run_with_the_status_and_the_body() {
    let sample = sample::<Rating>();
    let webhook = Webhook::start(&[(422, r#"{"error":"record does not fit the model"}"#)]).await;
    let run = run_default("422", &sample, &webhook).await;
    assert!(!run.ok);
    let error = run.error();
    assert!(
        error.contains("refused the delivery of Ratings record recTrigger0001"),
        "{error}"
    );
    assert!(error.contains("HTTP 422"), "{error}");
    assert!(error.contains("record does not fit the model"), "{error}");
    assert!(error.contains("cargo xtask gen-scripts"), "{error}");
    assert_eq!(webhook.received().len(), 1, "a 4xx is not retried");
}

#[tokio::test]
async fn persistent_5xx_answers_are_retried_three_times_with_growing_back_off_then_fail() {
    let sample = sample::<Rating>();
    let webhook = Webhook::start(&[(503, "down"); 4]).await;
    let script = automation_script_with(sample.meta, &ScriptOptions::default().backoff_ms(40));
    let run = run_script("4x 503", &script, scenario(&webhook, &sample.table, false)).await;
    assert!(!run.ok);
    let error = run.error();
    assert!(error.contains("after 4 attempts"), "{error}");
    assert!(error.contains("HTTP 503: down"), "{error}");
    let received = webhook.received();
    assert_eq!(received.len(), 4);
    for (i, pair) in received.windows(2).enumerate() {
        let gap = pair[1].at.duration_since(pair[0].at);
        let min = Duration::from_millis(40 << i);
        assert!(gap >= min, "gap {i} was {gap:?}, expected at least {min:?}");
    }
}

#[tokio::test]
async fn max_retries_caps_the_attempts_at_one_more_than_the_retries() {
    let sample = sample::<Rating>();
    let webhook = Webhook::start(&[(503, "down"); 3]).await;
    let options = ScriptOptions::default().max_retries(1).backoff_ms(10);
    let script = automation_script_with(sample.meta, &options);
    let run = run_script(
        "max_retries 1",
        &script,
        scenario(&webhook, &sample.table, true),
    )
    .await;
    assert!(!run.ok);
    let error = run.error();
    assert!(error.contains("after 2 attempts"), "{error}");
    assert_eq!(webhook.received().len(), 2, "one try and one retry");
}

/// A table whose name holds quotes, a newline, U+2028 and `</script>`, with a field named with
/// an apostrophe: the generated script still parses, finds the table and delivers both names
/// unchanged.
#[tokio::test]
async fn table_and_field_names_with_quotes_and_line_separators_arrive_unchanged() {
    static QUOTED: EntityMeta = EntityMeta {
        table: "Bob's \"Events\"\n\u{2028}</script>",
        entity: "bobs",
        id_key: "id",
        fields: &[
            FieldMeta {
                name: "it's",
                kind: FieldKind::Scalar,
                index: false,
            },
            FieldMeta {
                name: "host",
                kind: FieldKind::Link {
                    entity: "users",
                    many: false,
                },
                index: false,
            },
        ],
    };
    let sample = sample_of(&QUOTED, |_| "string".to_owned());
    let webhook = Webhook::start(&[]).await;
    let script = automation_script(&QUOTED);
    let run = run_script(
        "quoted names",
        &script,
        scenario(&webhook, &sample.table, true),
    )
    .await;
    assert!(run.ok, "script failed: {} {:?}", run.error(), run.logs);
    let received = webhook.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].verified, Ok(()));
    let body: Value = serde_json::from_slice(&received[0].body).expect("JSON body");
    assert_eq!(body["table"], json!(QUOTED.table));
    assert_eq!(body["record"], sample.expected);
    assert!(body["record"]["it's"].is_string(), "{body}");
}

#[tokio::test]
async fn network_errors_are_retried_then_fail_with_an_explanation() {
    let sample = sample::<Speaker>();
    let webhook = Webhook::start(&[]).await;
    // A port that was free a moment ago: connections are refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut scenario = scenario(&webhook, &sample.table, true);
    scenario["inputs"]["webhookUrl"] = json!(format!("http://127.0.0.1:{port}{WEBHOOK_PATH}"));
    let script = automation_script_with(sample.meta, &ScriptOptions::default().backoff_ms(10));
    let run = run_script("connection refused", &script, scenario).await;
    assert!(!run.ok);
    let error = run.error();
    assert!(error.contains("after 4 attempts"), "{error}");
    assert!(error.contains("network error"), "{error}");
    assert!(error.contains("reachable"), "{error}");
    assert_eq!(
        run.logs
            .iter()
            .filter(|l| l.contains("failed: network error"))
            .count(),
        4
    );
}

/// An answer 409 to a retry means an earlier attempt with the same `webhook-id` was accepted
/// but its answer got lost: the run counts as delivered.
#[tokio::test]
async fn a_409_answer_to_a_retry_counts_as_delivered() {
    let sample = sample::<Talk>();
    let webhook = Webhook::start(&[(500, "lost answer"), (409, "already applied")]).await;
    let script = automation_script_with(sample.meta, &ScriptOptions::default().backoff_ms(10));
    let run = run_script(
        "500 then 409",
        &script,
        scenario(&webhook, &sample.table, true),
    )
    .await;
    assert!(run.ok, "{} {:?}", run.error(), run.logs);
    assert_eq!(run.output.get("status"), Some(&json!("delivered")));
    assert_eq!(run.output.get("httpStatus"), Some(&json!(409)));
    assert_eq!(run.output.get("attempts"), Some(&json!(2)));
    let received = webhook.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].headers.id, received[1].headers.id);
}

/// A 409 to the first attempt cannot be a lost earlier answer: it is a refusal, not retried.
#[tokio::test]
async fn a_409_answer_to_the_first_attempt_fails_the_run() {
    let sample = sample::<Talk>();
    let webhook = Webhook::start(&[(409, "conflict")]).await;
    let run = run_default("409 first", &sample, &webhook).await;
    assert!(!run.ok, "{:?}", run.logs);
    assert!(
        run.error().contains("HTTP 409: conflict"),
        "{}",
        run.error()
    );
    assert_eq!(webhook.received().len(), 1, "a 4xx is not retried");
    assert!(!run.output.contains_key("status"));
}

/// A 404 means the URL is not the app's webhook endpoint: the run says which input to fix.
#[tokio::test]
async fn a_404_answer_points_at_the_webhook_url_input() {
    let sample = sample::<Speaker>();
    let webhook = Webhook::start(&[(404, "not found")]).await;
    let run = run_default("404", &sample, &webhook).await;
    assert!(!run.ok);
    let error = run.error();
    assert!(error.contains("HTTP 404"), "{error}");
    assert!(
        error.contains("Check the webhookUrl input variable"),
        "{error}"
    );
    assert!(error.contains(WEBHOOK_PATH), "{error}");
    assert_eq!(webhook.received().len(), 1);
}

/// A long refusal is quoted up to 500 characters, then cut with "...".
#[tokio::test]
async fn a_long_refusal_body_is_quoted_up_to_500_characters() {
    let sample = sample::<Rating>();
    let long = "x".repeat(600);
    let webhook = Webhook::start(&[(422, long.as_str())]).await;
    let run = run_default("long 422", &sample, &webhook).await;
    assert!(!run.ok);
    let error = run.error();
    assert!(
        error.contains(&format!("{}...", "x".repeat(500))),
        "{error}"
    );
    assert!(!error.contains(&"x".repeat(501)), "{error}");
}

#[tokio::test]
async fn a_webhook_url_that_is_not_http_is_refused_and_nothing_is_sent() {
    let sample = sample::<Talk>();
    let webhook = Webhook::start(&[]).await;
    let mut scenario = scenario(&webhook, &sample.table, true);
    scenario["inputs"]["webhookUrl"] = json!(webhook.url.replacen("http://", "ftp://", 1));
    let run = run_script("ftp url", &automation_script(sample.meta), scenario).await;
    assert!(!run.ok);
    assert!(
        run.error()
            .contains("The webhookUrl input variable is not an http(s) URL"),
        "{}",
        run.error()
    );
    assert_config_help(run.error());
    assert!(webhook.received().is_empty());
}

/// The model's table is gone from the base (renamed): the run names it, says how to fix it,
/// and sends nothing.
#[tokio::test]
async fn a_renamed_table_fails_the_run_naming_the_table_and_the_fix() {
    let sample = sample::<Talk>();
    let webhook = Webhook::start(&[]).await;
    let mut renamed = sample.table.clone();
    renamed["name"] = json!("Sessions");
    let run = run_script(
        "renamed table",
        &automation_script(sample.meta),
        scenario(&webhook, &renamed, true),
    )
    .await;
    assert!(!run.ok);
    let error = run.error();
    assert!(
        error.contains(r#"The table "Talks" was not found in this base"#),
        "{error}"
    );
    assert!(error.contains("cargo xtask gen-scripts"), "{error}");
    assert!(webhook.received().is_empty());
}

#[tokio::test]
async fn a_trigger_record_deleted_before_the_run_fails_it_and_nothing_is_sent() {
    let sample = sample::<Speaker>();
    let webhook = Webhook::start(&[]).await;
    let mut scenario = scenario(&webhook, &sample.table, true);
    scenario["recordId"] = json!("recDeleted000001");
    let run = run_script("deleted record", &automation_script(sample.meta), scenario).await;
    assert!(!run.ok);
    assert!(
        run.error()
            .contains(r#"Record recDeleted000001 was not found in "Speakers""#),
        "{}",
        run.error()
    );
    assert!(webhook.received().is_empty());
}

/// A model field the table does not have is left out of the delivery (the app uses its
/// default) and named in the run log; the other fields are still sent.
#[tokio::test]
async fn a_model_field_missing_from_the_table_is_left_out_and_logged() {
    let mut sample = sample::<Speaker>();
    let webhook = Webhook::start(&[]).await;
    if let Some(fields) = sample.table["fields"].as_array_mut() {
        fields.retain(|f| f["name"] != "email");
    }
    let run = run_default("missing field", &sample, &webhook).await;
    assert!(run.ok, "{} {:?}", run.error(), run.logs);
    assert!(
        run.logged(r#"Table "Speakers" has no field(s) "email""#),
        "{:?}",
        run.logs
    );
    let received = webhook.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].verified, Ok(()));
    let body: Value = serde_json::from_slice(&received[0].body).expect("JSON body");
    let mut expected = sample.expected.clone();
    if let Some(object) = expected.as_object_mut() {
        object.remove("email");
    }
    assert_eq!(body["record"], expected);
}

/// The waits the run log announced ("Retrying in N ms"), in order.
fn logged_waits(run: &NodeRun) -> Vec<u64> {
    run.logs
        .iter()
        .filter_map(|line| {
            let rest = line.strip_prefix("Retrying in ")?;
            rest.split(' ').next()?.parse().ok()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Issue #16, finding 4: cell shapes of the scripting API, and the 30-second run limit.

/// A collaborator as the REST API returns it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, JsonSchema)]
struct Collaborator {
    id: String,
    email: String,
    name: Option<String>,
}

/// An attachment as the REST API returns it (the fields a model would read).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, JsonSchema)]
struct Attachment {
    id: String,
    url: String,
    filename: String,
    size: Option<u64>,
    #[serde(rename = "type")]
    mime: Option<String>,
}

/// A model with a field of every kind whose scripting-API shape differs from its REST shape.
#[derive(
    Clone,
    Debug,
    PartialEq,
    serde::Serialize,
    serde::Deserialize,
    JsonSchema,
    podium_cache_core::Cacheable,
)]
#[cacheable(table = "Tasks")]
struct Task {
    id: String,
    title: String,
    status: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    owner_emails: Vec<String>,
    #[serde(default)]
    owner_status: Vec<String>,
    assignee: Option<Collaborator>,
    #[serde(default)]
    reviewers: Vec<Collaborator>,
    #[serde(default)]
    photos: Vec<Attachment>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    archived: bool,
    due: Option<String>,
    #[serde(default)]
    #[cacheable(references = "users")]
    owner: Vec<String>,
    #[cacheable(references = "users")]
    lead: Option<String>,
}

/// The Tasks table: field types as Airtable names them, cells in the REST API's shapes.
fn task_table() -> (Value, Value) {
    let ada = json!({"id": "usrAda00000000001", "email": "ada@example.com", "name": "Ada"});
    let bob = json!({"id": "usrBob00000000002", "email": "bob@example.com", "name": "Bob"});
    let photo = json!({"id": "attPhoto000000001", "url": "https://dl.airtable.com/p.png",
        "filename": "p.png", "size": 1234, "type": "image/png", "width": 10, "height": 20});
    let cells = json!({
        "title": "Ship it",
        "status": "In progress",
        "tags": ["urgent", "backend"],
        "owner_emails": ["ada@example.com", "bob@example.com"],
        "owner_status": ["Active", "Away"],
        "assignee": ada,
        "reviewers": [ada, bob],
        "photos": [photo],
        "done": true,
        "archived": false,
        "due": "2026-11-25",
        "owner": ["recUsr0000000001a", "recUsr0000000002b"],
        "lead": ["recUsr0000000003c"],
    });
    let fields = json!([
        {"name": "title", "type": "singleLineText"},
        {"name": "status", "type": "singleSelect"},
        {"name": "tags", "type": "multipleSelects"},
        {"name": "owner_emails", "type": "multipleLookupValues", "result": "email"},
        {"name": "owner_status", "type": "multipleLookupValues", "result": "singleSelect"},
        {"name": "assignee", "type": "singleCollaborator"},
        {"name": "reviewers", "type": "multipleCollaborators"},
        {"name": "photos", "type": "multipleAttachments"},
        {"name": "done", "type": "checkbox"},
        {"name": "archived", "type": "checkbox"},
        {"name": "due", "type": "date"},
        {"name": "owner", "type": "multipleRecordLinks"},
        {"name": "lead", "type": "multipleRecordLinks"},
    ]);
    let mut expected = cells.clone();
    expected["id"] = json!(RECORD_ID);
    expected["lead"] = json!("recUsr0000000003c");
    // The REST API leaves an unchecked checkbox out.
    if let Some(object) = expected.as_object_mut() {
        object.remove("archived");
    }
    let table = json!({
        "name": "Tasks",
        "fields": fields,
        "records": [{"id": RECORD_ID, "cells": cells}],
    });
    (table, expected)
}

#[tokio::test]
async fn every_field_type_arrives_in_the_rest_shape_the_model_reads() {
    let (table, expected) = task_table();
    let webhook = Webhook::start(&[]).await;
    let run = run_script(
        "field types",
        &automation_script(Task::meta()),
        scenario(&webhook, &table, true),
    )
    .await;
    assert!(run.ok, "{} {:?}", run.error(), run.logs);
    let received = webhook.received();
    assert_eq!(received.len(), 1);
    let body: Value = serde_json::from_slice(&received[0].body).expect("JSON body");
    assert_eq!(body["record"], expected);
    let task: Task = serde_json::from_value(body["record"].clone())
        .expect("the delivered record fits the model (no 422)");
    assert_eq!(task.status.as_deref(), Some("In progress"));
    assert_eq!(task.owner_status, ["Active", "Away"]);
    assert_eq!(
        task.assignee.map(|a| a.email),
        Some("ada@example.com".into())
    );
    assert!(task.done && !task.archived);
}

/// "The app is down" three ways: connections refused, 503 answers, requests that get no answer
/// until Airtable's 12 s fetch limit. On the sandbox's virtual clock, the whole run (default
/// options, and options asking for far more retries and longer waits than fit) ends within
/// 25 s, and the last failure explains itself.
#[tokio::test]
async fn with_the_app_down_the_script_finishes_within_25_seconds_and_says_why() {
    let sample = sample::<Rating>();
    let webhook = Webhook::start(&[]).await;
    let greedy = ScriptOptions::default().max_retries(20).backoff_ms(2_000);
    for (options, label) in [(ScriptOptions::default(), "default"), (greedy, "greedy")] {
        let script = automation_script_with(sample.meta, &options);
        for down in [
            json!({"kind": "refused"}),
            json!({"kind": "status", "status": 503}),
            json!({"kind": "hang"}),
        ] {
            let mut scenario = scenario(&webhook, &sample.table, false);
            scenario["clock"] = json!("virtual");
            scenario["appDown"] = down.clone();
            let run = run_script(&format!("{label} {down}"), &script, scenario).await;
            assert!(!run.ok, "{label} {down}: the run must fail");
            let elapsed = run.virtual_elapsed_ms.expect("virtual clock");
            assert!(
                elapsed <= 25_000,
                "{label} {down}: the run took {elapsed} ms of its clock: {:?}",
                run.logs
            );
            let error = run.error();
            assert!(error.contains("did not accept the delivery"), "{error}");
            assert!(error.contains("Is the app running"), "{error}");
            let attempts = run.logs.iter().filter(|l| l.contains("failed:")).count();
            // A fast failure is retried; after a 12 s hang a 2 s wait and another 12 s no
            // longer fit, so the greedy script stops there.
            let min_attempts = if label == "greedy" && down["kind"] == "hang" {
                1
            } else {
                2
            };
            assert!(
                attempts >= min_attempts,
                "{label} {down}: {attempts} attempts: {:?}",
                run.logs
            );
            if label == "greedy" {
                assert!(
                    error.contains("Airtable stops a script after 30 s"),
                    "{error}"
                );
            }
        }
    }
    assert!(
        webhook.received().is_empty(),
        "no fetch reached the network"
    );
}

/// Back-offs are jittered, so that runs failing together do not retry in lockstep: each wait
/// lies between the nominal one and half as much again, and runs do not all wait alike.
#[tokio::test]
async fn back_off_waits_are_jittered_between_the_nominal_wait_and_half_as_much_again() {
    let sample = sample::<Rating>();
    let webhook = Webhook::start(&[]).await;
    let script = automation_script(sample.meta);
    let mut runs = Vec::new();
    for i in 0..4 {
        let mut scenario = scenario(&webhook, &sample.table, false);
        scenario["clock"] = json!("virtual");
        scenario["appDown"] = json!({"kind": "refused"});
        let run = run_script(&format!("jitter {i}"), &script, scenario).await;
        let waits = logged_waits(&run);
        assert_eq!(waits.len(), 3, "{:?}", run.logs);
        for (n, wait) in waits.iter().enumerate() {
            let nominal = 250u64 << n;
            assert!(
                (nominal..=nominal + nominal / 2).contains(wait),
                "wait {n} was {wait} ms"
            );
        }
        runs.push(waits);
    }
    assert!(
        runs.iter().any(|w| *w != runs[0]),
        "four runs waited exactly alike: {runs:?}"
    );
}
