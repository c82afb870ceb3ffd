//! `native_notification`: Airtable native-webhook notifications and the wire types of the
//! Webhooks API.
//!
//! Modes (the input's first byte, modulo 5):
//! - 0 MAC secret: any text parses as a `macSecretBase64` or is refused; a parsed one round-trips,
//!   verifies what it signs and nothing else, and never shows itself.
//! - 1 forged: a notification with the input's MAC header and body is never accepted
//!   (unauthorized, or too large, before any parsing).
//! - 2 signed: the input's body with a correct MAC: refused as malformed or for another webhook,
//!   or accepted at once (the ping is recorded; its round runs in the background, where Airtable
//!   is unreachable).
//! - 3 structured: a notification naming the input's base and webhook ids (or the configured
//!   ones), correctly signed: exactly the answer its ids call for.
//! - 4 wire types: any body either fails to parse or parses into a value that serializes back
//!   to itself; a created webhook's `Debug` does not depend on its MAC secret.

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use podium_cache_core::config::Secret;
use podium_cache_core::source::AirtableSource;
use podium_cache_core::store::MemoryStore;
use podium_cache_core::webhook::native::{
    Accepted, CreatedWebhook, FieldSchema, MacSecret, NativeError, NativeWebhooks, Notification,
    Payload, PayloadPage, TableChanges, TableSchema, WebhookDescription, WebhooksApi, MAC_HEADER,
};
use podium_cache_core::webhook::NativeErrorKind;
use podium_cache_core::webhook::SyncOutcome;
use podium_cache_core::Cache;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::input::{encode, encode_text, Input};
use crate::support::{runtime, NoSource};

/// The configured webhook.
pub const WEBHOOK: &str = "achFUZZWEBHOOK001";
/// The configured base.
pub const BASE: &str = "appFUZZBASE000001";
/// The configured webhook's MAC secret (base64).
pub const MAC_SECRET: &str = "ZnV6ei1uYXRpdmUtbWFjLXNlY3JldC0zMi1ieXRlcyE=";
/// The receiver's body limit.
pub const MAX_BODY: usize = 2048;

fn mac_secret() -> MacSecret {
    MAC_SECRET.parse().expect("the fuzz MAC secret parses")
}

/// A port on this machine that nothing listens on (bound once, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(9)
}

/// One receiver for every input (building the HTTP client is the costly part). Its Airtable is
/// a closed local port, so a round fails at once with no retries; nothing else is shared
/// between inputs but the cache, whose only writes (the pager lock) are undone by each round.
fn native() -> &'static NativeWebhooks {
    static NATIVE: OnceLock<NativeWebhooks> = OnceLock::new();
    NATIVE.get_or_init(|| {
        let source = AirtableSource::builder("patFUZZNOTAREALKEY", BASE)
            .api_url(format!("http://127.0.0.1:{}", closed_port()))
            .retries(0, Duration::from_millis(1), Duration::from_millis(1))
            .rate_limit(1_000_000, Duration::from_secs(1))
            .request_timeout(Duration::from_millis(500))
            .build()
            .expect("the fuzz Airtable client builds");
        let cache = Cache::builder(Arc::new(MemoryStore::new(1_000)), Arc::new(NoSource)).build();
        NativeWebhooks::builder(
            cache,
            podium_example::server::models(),
            WebhooksApi::new(source),
        )
        .webhook(WEBHOOK, mac_secret())
        .max_body(MAX_BODY)
        .lock_wait(Duration::from_millis(10))
        .build()
    })
}

fn notify(mac: Option<String>, body: &[u8]) -> Result<Accepted, NativeError> {
    runtime().block_on(native().notify(
        |name| {
            if name == MAC_HEADER {
                mac.clone()
            } else {
                None
            }
        },
        body,
    ))
}

/// Runs one input.
pub fn check(data: &[u8]) {
    let Some(mut input) = Input::new(data) else {
        return;
    };
    match input.mode() % 5 {
        0 => secret_text(&input.text(), input.bytes()),
        1 => forged(input.optional_text(), input.bytes()),
        2 => signed(input.bytes()),
        3 => structured(&mut input),
        _ => wire_types(input.bytes()),
    }
}

fn secret_text(text: &str, body: &[u8]) {
    let Ok(secret) = MacSecret::from_base64(text) else {
        return;
    };
    let exposed = secret.expose_base64();
    assert_eq!(
        MacSecret::from_base64(&exposed).ok().as_ref(),
        Some(&secret),
        "a parsed secret round-trips"
    );
    let mac = secret.sign(body);
    assert!(
        secret.verifies(&mac, body),
        "a secret verifies what it signs"
    );
    assert!(secret.verifies(
        &mac.to_uppercase().replace("HMAC-SHA256=", "hmac-sha256="),
        body
    ));
    let mut other = body.to_vec();
    other.push(b'!');
    assert!(
        !secret.verifies(&mac, &other),
        "a changed body does not verify"
    );
    assert_eq!(format!("{secret:?}"), "MacSecret([redacted])");
    assert_eq!(format!("{secret}"), "[redacted]");
}

/// An error never shows the MAC secret (unless the input itself carried it: errors may quote
/// what was sent, such as a webhook id).
fn check_refusal_text(err: &NativeError, sent: &[&[u8]]) {
    let carried = sent.iter().any(|s| {
        s.windows(MAC_SECRET.len())
            .any(|w| w == MAC_SECRET.as_bytes())
    });
    let text = err.to_string();
    assert!(
        carried || !text.contains(MAC_SECRET),
        "the MAC secret in an error: {text}"
    );
}

fn forged(mac: Option<String>, body: &[u8]) {
    let genuine = mac_secret().sign(body);
    if mac
        .as_deref()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(&genuine))
    {
        return;
    }
    let header = mac.clone().unwrap_or_default();
    match notify(mac, body) {
        Ok(outcome) => panic!("a notification with a wrong MAC was accepted: {outcome:?}"),
        Err(err) => {
            check_refusal_text(&err, &[header.as_bytes(), body]);
            let expected = if body.len() > MAX_BODY {
                NativeErrorKind::TooLarge
            } else {
                NativeErrorKind::Unauthorized
            };
            assert_eq!(err.kind(), expected, "{err}");
        }
    }
}

/// The refusal a correctly signed body calls for; `None`: it is accepted (recorded, its round
/// left to the background).
fn expected_refusal(body: &[u8]) -> Option<NativeErrorKind> {
    if body.len() > MAX_BODY {
        return Some(NativeErrorKind::TooLarge);
    }
    match serde_json::from_slice::<Notification>(body) {
        Err(_) => Some(NativeErrorKind::Malformed),
        Ok(n) if n.webhook.id != WEBHOOK => Some(NativeErrorKind::Unauthorized),
        Ok(n) if n.base.id != BASE => Some(NativeErrorKind::Malformed),
        Ok(_) => None,
    }
}

fn signed(body: &[u8]) {
    let mac = mac_secret().sign(body);
    match (notify(Some(mac), body), expected_refusal(body)) {
        (Ok(_), None) => {}
        (Ok(accepted), Some(kind)) => panic!("accepted {accepted:?}, expected a {kind:?} refusal"),
        (Err(err), expected) => {
            check_refusal_text(&err, &[body]);
            assert_eq!(Some(err.kind()), expected, "{err}");
        }
    }
}

fn structured(input: &mut Input<'_>) {
    let pick = |text: String, configured: &str| {
        if text.is_empty() {
            configured.to_owned()
        } else {
            text
        }
    };
    let base = pick(input.text(), BASE);
    let webhook = pick(input.text(), WEBHOOK);
    let timestamp = input.text();
    let body = json!({"base": {"id": base}, "webhook": {"id": webhook}, "timestamp": timestamp});
    signed(&serde_json::to_vec(&body).expect("json"));
}

/// `T` parsed from `body`, when it parses, serializes to something that parses back to itself.
fn round_trips<T>(body: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(value) = serde_json::from_slice::<T>(body) {
        let text = serde_json::to_vec(&value).expect("a parsed value serializes");
        let again: T = serde_json::from_slice(&text).unwrap_or_else(|e| {
            panic!(
                "{} does not parse back ({e}): {}",
                std::any::type_name::<T>(),
                String::from_utf8_lossy(&text)
            )
        });
        assert_eq!(again, value, "{}", std::any::type_name::<T>());
    }
}

fn wire_types(body: &[u8]) {
    round_trips::<PayloadPage>(body);
    round_trips::<Payload>(body);
    round_trips::<TableChanges>(body);
    round_trips::<Notification>(body);
    round_trips::<WebhookDescription>(body);
    round_trips::<TableSchema>(body);
    round_trips::<FieldSchema>(body);
    round_trips::<SyncOutcome>(body);
    if let Ok(created) = serde_json::from_slice::<CreatedWebhook>(body) {
        let shown = format!("{created:?}");
        let mut blank = created.clone();
        blank.mac_secret_base64 = Secret::new("");
        assert_eq!(shown, format!("{blank:?}"), "Debug shows the MAC secret");
    }
}

/// Inputs to start from.
pub fn seeds() -> Vec<Vec<u8>> {
    let ping = format!(
        r#"{{"base":{{"id":"{BASE}"}},"webhook":{{"id":"{WEBHOOK}"}},"timestamp":"2026-11-25T19:04:05.123Z"}}"#
    );
    let page = r#"{"payloads":[{"timestamp":"2026-11-25T19:04:05.123Z","baseTransactionNumber":4,"payloadFormat":"v0","actionMetadata":{"source":"client"},"changedTablesById":{"tblA":{"createdRecordsById":{"recA":{"createdTime":"x","cellValuesByFieldId":{"fld1":1.5}}},"changedRecordsById":{"recB":{"current":{"cellValuesByFieldId":{}}}},"destroyedRecordIds":["recC"]}}},{"timestamp":"t","baseTransactionNumber":5,"error":true,"code":"INVALID_FILTERS"}],"cursor":6,"mightHaveMore":false}"#;
    let created = r#"{"id":"achNEW","macSecretBase64":"c2VjcmV0LWtleQ==","expirationTime":"2026-12-01T00:00:00.000Z"}"#;
    let schema = r#"{"id":"tblA","name":"Events","primaryFieldId":"fld1","fields":[{"id":"fld1","name":"name","type":"singleLineText"}]}"#;
    let listed = r#"{"id":"achA","notificationUrl":"http://x/notify","cursorForNextPayload":3,"isHookEnabled":true,"areNotificationsEnabled":true,"specification":{"options":{"filters":{"dataTypes":["tableData"]}}}}"#;
    let mac = mac_secret().sign(ping.as_bytes());
    vec![
        encode_text(0, &[MAC_SECRET, "{}"]),
        encode_text(0, &["c2VjcmV0", "body"]),
        encode(1, &[mac.as_bytes(), br#"{"base":{"id":"appX"}}"#]),
        encode(1, &[b"hmac-sha256=00ff", ping.as_bytes()]),
        encode(2, &[ping.as_bytes()]),
        encode(
            2,
            &[br#"{"base":{"id":"appFUZZBASE000001"},"webhook":{"id":"achOTHER"}}"#],
        ),
        encode_text(3, &["", "", "2026-11-25T19:04:05.123Z"]),
        encode_text(3, &["appOTHER", "", ""]),
        encode_text(3, &["", "achOTHER", ""]),
        encode_text(4, &[page]),
        encode_text(4, &[created]),
        encode_text(4, &[schema]),
        encode_text(4, &[listed]),
    ]
}
