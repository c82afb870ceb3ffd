//! Secrets never leak: the real `podium-example` binary runs at `RUST_LOG=trace` with a
//! distinctive Airtable key, `whsec_` webhook secret, native-webhook MAC secret, Redis
//! password and admin token; every path is exercised (reads that hit, miss and 404, reads by
//! slug and e-mail, the projects list, deletes with, without and with a wrong admin token (and
//! an admin's read), Airtable failing, signed / badly signed / legacy-secret
//! deliveries, native notifications with a bad and a good MAC and one Airtable sends itself,
//! `/metrics`, `/healthz`, Redis going away and coming back, shutdown); then neither its
//! stdout, its stderr nor any answer it gave contains a secret, in any encoding it travels in.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use podium_cache_core::source::AirtableSource;
use podium_cache_core::webhook::native::{MacSecret, WebhooksApi};
use podium_cache_core::webhook::{sign, WebhookSecret};
use podium_example::demo::{self, DEMO_BASE, FIRST_EVENT, FIRST_USER};
use podium_local::airtable::AirtableServer;
use podium_local::redis::{free_port, RedisServer};

/// Every secret carries `LEAK` in its plain form, so a fragment of one is found too.
const AIRTABLE_KEY: &str = "patLEAKairtableKEY.7f3c9d2b1a0e8f4c6d5b3a2918e7f6c5d4b3a29180f7e6d5";
/// The webhook secret's key: 32 bytes, written `whsec_<base64>`.
const WEBHOOK_KEY: &[u8; 32] = b"LEAKwebhookKEY-0123456789abcdefg";
const REDIS_USER: &str = "podium";
const REDIS_PASSWORD: &str = "LEAKredisPASSWORD-5e8a1f";
const ADMIN_TOKEN: &str = "LEAKadminTOKEN-9c4e2a7b1d";

struct App {
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl App {
    fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// SIGTERM (graceful shutdown, logged), then everything it printed.
    fn stop(self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.finish(Duration::from_secs(10))
    }

    /// Waits for the process to end by itself (at most `patience`), then everything it printed.
    fn finish(mut self, patience: Duration) -> String {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
        self.output()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_app(env: &[(&str, String)], dir: &std::path::Path) -> App {
    let mut command = Command::new(env!("CARGO_BIN_EXE_podium-example"));
    for (name, _) in std::env::vars() {
        if name.starts_with("PODIUM_") {
            command.env_remove(name);
        }
    }
    command
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the binary starts");
    let output = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    let streams: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().expect("stdout")),
        Box::new(child.stderr.take().expect("stderr")),
    ];
    for mut stream in streams {
        let output = Arc::clone(&output);
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                output.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        }));
    }
    App {
        child,
        output,
        readers,
    }
}

/// Everything the test saw come back from the app, searched along with its output.
#[derive(Default)]
struct Answers(String);

impl Answers {
    async fn send(&mut self, request: reqwest::RequestBuilder) -> (u16, String) {
        let response = request.send().await.expect("the app answers");
        let status = response.status().as_u16();
        let headers = format!("{:?}", response.headers());
        let body = response.text().await.unwrap_or_default();
        self.0.push_str(&format!("{status} {headers} {body}\n"));
        (status, body)
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional).
fn unbase64(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let Some(v) = BASE64.iter().position(|b| *b == c) else {
            continue;
        };
        acc = acc << 6 | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every form a secret may travel in: the text, its pieces, its key bytes as text, base64
/// (standard and URL-safe) and hex, and the base64 a `Basic` or `AUTH` header would carry.
fn forms(name: &str, text: &str, key: Option<&[u8]>, out: &mut Vec<(String, String)>) {
    let mut add = |form: &str, value: String| out.push((format!("{name} ({form})"), value));
    add("text", text.to_owned());
    add("hex", hex(text.as_bytes()));
    add(
        "base64",
        base64(text.as_bytes()).trim_end_matches('=').to_owned(),
    );
    if let Some(key) = key {
        add("key as text", String::from_utf8_lossy(key).into_owned());
        add("key base64", base64(key).trim_end_matches('=').to_owned());
        add("key hex", hex(key));
        add("key hex upper", hex(key).to_uppercase());
        add(
            "key base64url",
            base64(key)
                .replace('+', "-")
                .replace('/', "_")
                .trim_end_matches('=')
                .to_owned(),
        );
    }
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn iso_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_log_line_error_or_answer_at_trace_level() {
    // Redis: the default user may only PING (the harness's readiness probe); the app's user
    // needs the password.
    let password_rule = format!(">{REDIS_PASSWORD}");
    let mut redis = RedisServer::start_with(&[
        "--user",
        "default",
        "on",
        "nopass",
        "-@all",
        "+ping",
        "--user",
        REDIS_USER,
        "on",
        &password_rule,
        "~*",
        "&*",
        "+@all",
    ])
    .expect("redis-server with a password");
    let redis_url = format!(
        "redis://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{}/0",
        redis.port()
    );

    let airtable = AirtableServer::builder()
        .api_key(AIRTABLE_KEY)
        .rate_limit(None)
        .seed_json(&demo::seed(DEMO_BASE, &podium_example::models::models()))
        .start()
        .await
        .expect("local Airtable");
    let port = free_port().expect("a free port");
    let app_base = format!("http://127.0.0.1:{port}");

    // A native webhook on the local Airtable that notifies the app, as `cargo xtask webhooks
    // create` makes one.
    let source = AirtableSource::builder(AIRTABLE_KEY, DEMO_BASE)
        .api_url(airtable.url())
        .build()
        .expect("client");
    let created = WebhooksApi::new(source)
        .create_table_data(&format!("{app_base}/api/webhooks/airtable/notify"))
        .await
        .expect("webhook created");
    let mac_text = created.mac_secret_base64.expose().to_owned();
    let mac = MacSecret::from_base64(&mac_text).expect("MAC secret");

    let webhook_secret = WebhookSecret::from_key(WEBHOOK_KEY.to_vec()).expect("secret");
    let webhook_text = webhook_secret.expose();
    let dir = std::env::temp_dir().join(format!("podium-leak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a folder without .secrets.toml");
    let app = start_app(
        &[
            ("PODIUM_BIND", format!("127.0.0.1:{port}")),
            ("PODIUM_AIRTABLE_API_KEY", AIRTABLE_KEY.to_owned()),
            ("PODIUM_AIRTABLE_BASE_ID", DEMO_BASE.to_owned()),
            ("PODIUM_AIRTABLE_API_URL", airtable.url()),
            ("PODIUM_WEBHOOK_SECRET", webhook_text.clone()),
            ("PODIUM_ALLOW_LEGACY_SECRET", "true".to_owned()),
            ("PODIUM_REDIS_URL", redis_url.clone()),
            ("PODIUM_AIRTABLE_WEBHOOK_ID", created.id.clone()),
            ("PODIUM_AIRTABLE_WEBHOOK_MAC_SECRET", mac_text.clone()),
            ("PODIUM_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ],
        &dir,
    );

    let http = reqwest::Client::new();
    let url = |path: &str| format!("{app_base}{path}");
    let mut answers = Answers::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = http.get(url("/healthz")).send().await {
            if response.status().is_success() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the app never answered: {}",
            app.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Reads: miss, hit, 404, by slug, by e-mail, the projects list.
    let first_event = format!("/events/{FIRST_EVENT}");
    for _ in 0..2 {
        let (status, body) = answers.send(http.get(url(&first_event))).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = answers
        .send(http.get(url("/events/recNOPE0000000001")))
        .await;
    assert_eq!(status, 404);
    for path in [
        "/events/by-slug/hack-night",
        "/users/by-email/ada@example.com",
        &format!("/users/{FIRST_USER}"),
        &format!("{first_event}/projects"),
    ] {
        let (status, body) = answers.send(http.get(url(path))).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    // Airtable failing (a retry, then an error answer).
    airtable.fail_next(12, 503);
    answers
        .send(http.get(url("/events/recEVT00000000002")))
        .await;
    airtable.clear_faults();
    airtable.fail_next(1, 401);
    answers
        .send(http.get(url("/votes/recVOT00000000002")))
        .await;
    airtable.clear_faults();
    // Deletes without and with a wrong admin token (refused), an admin's read (with the
    // detailed status headers), and a delete through the cache (an Airtable DELETE with the key).
    let (status, _) = answers
        .send(http.delete(url("/votes/recVOT00000000001")))
        .await;
    assert_eq!(status, 401);
    let (status, _) = answers
        .send(
            http.delete(url("/votes/recVOT00000000001"))
                .bearer_auth(format!("{ADMIN_TOKEN}x")),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = answers
        .send(http.get(url(&first_event)).bearer_auth(ADMIN_TOKEN))
        .await;
    assert_eq!(status, 200);
    let (status, body) = answers
        .send(
            http.delete(url("/votes/recVOT00000000001"))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await;
    assert!(matches!(status, 200 | 204), "{status} {body}");

    // Deliveries: signed, badly signed, legacy secret (right and wrong).
    let delivery = |name: &str| {
        serde_json::to_vec(&serde_json::json!({
            "table": "Events", "record_id": FIRST_EVENT,
            "record": {"id": FIRST_EVENT, "name": name, "slug": "hack-night"},
            "timestamp": iso_now(),
        }))
        .expect("json")
    };
    let body = delivery("Signed");
    let now = now_secs();
    let (status, text) = answers
        .send(
            http.post(url("/api/webhooks/airtable"))
                .header("content-type", "application/json")
                .header("webhook-id", "msg_leak_1")
                .header("webhook-timestamp", now.to_string())
                .header(
                    "webhook-signature",
                    sign(&webhook_secret, "msg_leak_1", now, &body),
                )
                .body(body),
        )
        .await;
    assert_eq!(status, 200, "a signed delivery is applied: {text}");
    let body = delivery("Forged");
    let (status, _) = answers
        .send(
            http.post(url("/api/webhooks/airtable"))
                .header("content-type", "application/json")
                .header("webhook-id", "msg_leak_2")
                .header("webhook-timestamp", now.to_string())
                .header(
                    "webhook-signature",
                    "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                )
                .body(body),
        )
        .await;
    assert_eq!(status, 401);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, text) = answers
        .send(
            http.post(url("/api/webhooks/airtable"))
                .header("content-type", "application/json")
                .header("x-airtable-secret", &webhook_text)
                .body(delivery("Legacy")),
        )
        .await;
    assert_eq!(status, 200, "the legacy secret is accepted: {text}");
    let (status, _) = answers
        .send(
            http.post(url("/api/webhooks/airtable"))
                .header("content-type", "application/json")
                .header("x-airtable-secret", format!("{webhook_text}x"))
                .body(delivery("Legacy wrong")),
        )
        .await;
    assert_eq!(status, 401);

    // Native notifications: a bad MAC, a good one, and one Airtable sends after a change.
    let ping = serde_json::to_vec(&serde_json::json!({
        "base": {"id": DEMO_BASE}, "webhook": {"id": created.id}, "timestamp": iso_now(),
    }))
    .expect("json");
    let (status, _) = answers
        .send(
            http.post(url("/api/webhooks/airtable/notify"))
                .header("content-type", "application/json")
                .header(
                    "x-airtable-content-mac",
                    format!("hmac-sha256={}", "0".repeat(64)),
                )
                .body(ping.clone()),
        )
        .await;
    assert_eq!(status, 401);
    let (status, text) = answers
        .send(
            http.post(url("/api/webhooks/airtable/notify"))
                .header("content-type", "application/json")
                .header("x-airtable-content-mac", mac.sign(&ping))
                .body(ping),
        )
        .await;
    assert_eq!(
        status, 200,
        "a notification with the right MAC is applied: {text}"
    );
    let (status, text) = answers
        .send(
            http.patch(format!(
                "{}/v0/{DEMO_BASE}/Events/{FIRST_EVENT}",
                airtable.url()
            ))
            .bearer_auth(AIRTABLE_KEY)
            .json(&serde_json::json!({"fields": {"name": "Renamed"}})),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = answers.send(http.get(url(&first_event))).await;
        if body.contains("Renamed") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Airtable's notification never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    answers.send(http.get(url("/metrics"))).await;
    answers.send(http.get(url("/healthz"))).await;

    // Redis goes away: reads fall through to Airtable, a delivery is answered 503, and every
    // error is logged; then it comes back and the app reconnects (and authenticates again).
    redis.stop();
    for path in [
        first_event.as_str(),
        "/users/by-email/grace@example.com",
        "/healthz",
    ] {
        answers.send(http.get(url(path))).await;
    }
    let body = delivery("During the outage");
    let now = now_secs();
    answers
        .send(
            http.post(url("/api/webhooks/airtable"))
                .header("content-type", "application/json")
                .header("webhook-id", "msg_leak_3")
                .header("webhook-timestamp", now.to_string())
                .header(
                    "webhook-signature",
                    sign(&webhook_secret, "msg_leak_3", now, &body),
                )
                .body(body),
        )
        .await;
    redis.restart().expect("redis back");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = answers.send(http.get(url("/healthz"))).await;
        if body.contains("\"reachable\":true") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the app never got Redis back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    answers.send(http.get(url(&first_event))).await;
    answers.send(http.get(url("/metrics"))).await;

    let mut output = app.stop();

    // A wrong Redis password: the app starts, reads fall through, every refusal is logged.
    let wrong_url = redis_url.replace(REDIS_PASSWORD, "LEAKwrongREDISpassword");
    let port = free_port().expect("a free port");
    let app = start_app(
        &[
            ("PODIUM_BIND", format!("127.0.0.1:{port}")),
            ("PODIUM_AIRTABLE_API_KEY", AIRTABLE_KEY.to_owned()),
            ("PODIUM_AIRTABLE_BASE_ID", DEMO_BASE.to_owned()),
            ("PODIUM_AIRTABLE_API_URL", airtable.url()),
            ("PODIUM_WEBHOOK_SECRET", webhook_text.clone()),
            ("PODIUM_REDIS_URL", wrong_url.clone()),
        ],
        &dir,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let read = http
            .get(format!("http://127.0.0.1:{port}{first_event}"))
            .send()
            .await;
        if let Ok(response) = read {
            let status = response.status().as_u16();
            answers
                .0
                .push_str(&response.text().await.unwrap_or_default());
            assert_eq!(status, 200, "a read with the store refusing falls through");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the app never answered: {}",
            app.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wrong_password_output = app.stop();
    assert!(
        wrong_password_output
            .to_lowercase()
            .contains("authentication failed"),
        "the refused password is reported: {wrong_password_output}"
    );
    output.push_str(&wrong_password_output);

    // A `.secrets.toml` with a misspelled key, then one with a broken line: the app refuses
    // to start and says why, without the values.
    for text in [
        format!("airtable_api_kye = \"{AIRTABLE_KEY}\"\n"),
        format!("webhook_secret = \"{webhook_text}\n"),
    ] {
        std::fs::write(dir.join(".secrets.toml"), text).expect("write .secrets.toml");
        let app = start_app(&[("PODIUM_BIND", "127.0.0.1:0".to_owned())], &dir);
        let startup_error = app.finish(Duration::from_secs(30));
        assert!(
            startup_error.contains("invalid .secrets.toml"),
            "the app names the broken file: {startup_error}"
        );
        output.push_str(&startup_error);
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(path) = std::env::var_os("PODIUM_LEAK_TEST_OUTPUT") {
        let _ = std::fs::write(
            path,
            format!("{output}\n----- answers -----\n{}", answers.0),
        );
    }

    // The run did log at trace level and did go down every path searched.
    for evidence in [
        " TRACE ",
        " DEBUG ",
        "delivery refused",
        "native webhook notification",
        "shutting down",
    ] {
        assert!(
            output.contains(evidence),
            "no {evidence:?} in the output:\n{output}"
        );
    }
    assert!(output.lines().count() > 100, "too little output:\n{output}");

    let mut secrets = Vec::new();
    forms("Airtable key", AIRTABLE_KEY, None, &mut secrets);
    forms(
        "webhook secret",
        &webhook_text,
        Some(WEBHOOK_KEY),
        &mut secrets,
    );
    let mac_key = unbase64(&mac_text);
    assert_eq!(base64(&mac_key), mac_text, "the MAC secret decodes");
    assert_eq!(
        format!("whsec_{}", base64(WEBHOOK_KEY)),
        webhook_text,
        "the webhook secret's base64 part is what is searched"
    );
    forms("MAC secret", &mac_text, Some(&mac_key), &mut secrets);
    forms("Redis password", REDIS_PASSWORD, None, &mut secrets);
    forms("Redis URL", &redis_url, None, &mut secrets);
    forms("admin token", ADMIN_TOKEN, None, &mut secrets);
    secrets.push(("any secret's marker".into(), "LEAK".into()));
    let searched = [
        ("the app's output", &output),
        ("the app's answers", &answers.0),
    ];
    for (place, text) in searched {
        for (name, value) in &secrets {
            if let Some(at) = text.find(value.as_str()) {
                let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
                panic!("{name} found in {place}: {}", &text[line_start..line_end]);
            }
        }
    }
}
