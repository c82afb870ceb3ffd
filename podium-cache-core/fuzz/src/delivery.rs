//! `webhook_delivery`: an automation delivery through the whole [`Receiver`] pipeline (size
//! limit, Standard Webhooks signature and timestamp, JSON, table, model fit, replay guard,
//! ordered upsert) on a fresh in-memory cache.
//!
//! Modes (the input's first byte, modulo 4):
//! - 0 raw: every header and the body from the input (bit `0x10`: legacy secret enabled);
//!   nothing may be accepted unless its credentials verify.
//! - 1 signed: the body from the input, signed with the receiver's secret at a timestamp up to
//!   ±350 s from the receiver's clock; a well-formed id within tolerance is never refused as
//!   unauthorized.
//! - 2 structured: a delivery built from the input's table, record id, timestamp and fields,
//!   signed; an accepted one is readable afterwards and a replay of it is a no-op.
//! - 3 ordering: two deliveries of one record with timestamps from the input; the later
//!   timestamp wins whatever the arrival order, an equal or older one is `stale`.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;
use podium_cache_core::config::Secret;
use podium_cache_core::webhook::receiver::LEGACY_SECRET_HEADER;
use podium_cache_core::webhook::signature::DEFAULT_TOLERANCE;
use podium_cache_core::webhook::{
    sign, verify, Delivery, Receipt, ReceiptStatus, ReceiveError, ReceiveErrorKind, Receiver,
    SignatureHeaders, WebhookSecret,
};
use podium_cache_core::Cache;
use serde_json::{json, Map, Value};

use crate::input::{encode, encode_text, number_field, Input};
use crate::support::{fresh_cache, read_record, runtime};

/// The receiver's secret (32 bytes).
pub const SECRET: &str = "whsec_ZnV6ei1kZWxpdmVyeS1zZWNyZXQtb2YtMzItYnl0ZXM=";
/// The receiver's clock (unix seconds).
pub const NOW: i64 = 1_790_000_000;
/// The receiver's body limit (small, so the fuzzer reaches it).
pub const MAX_BODY: usize = 2048;
/// The example app's tables.
pub const TABLES: [&str; 5] = ["Users", "Events", "Projects", "Votes", "Referrals"];

fn secret() -> &'static WebhookSecret {
    static SECRET_KEY: OnceLock<WebhookSecret> = OnceLock::new();
    SECRET_KEY.get_or_init(|| SECRET.parse().expect("the fuzz secret parses"))
}

fn receiver(cache: &Cache, legacy: bool) -> Receiver {
    let receiver = Receiver::new(
        cache.clone(),
        podium_example::server::models(),
        vec![secret().clone()],
    )
    .with_max_body(MAX_BODY)
    // Trusted mode: what this target checks is that only verified deliveries are applied, as
    // they came and in order (signal mode re-reads from a source the fuzzer does not have).
    .trust_delivery_fields(true);
    if legacy {
        receiver.allow_legacy_secret(Secret::new(SECRET))
    } else {
        receiver
    }
}

/// Headers by lower-case name.
#[derive(Clone, Debug, Default)]
struct Headers(HashMap<&'static str, String>);

impl Headers {
    fn signed(headers: &SignatureHeaders) -> Self {
        let mut map = HashMap::new();
        let pairs = [
            ("webhook-id", &headers.id),
            ("webhook-timestamp", &headers.timestamp),
            ("webhook-signature", &headers.signature),
        ];
        for (name, value) in pairs {
            if let Some(value) = value {
                map.insert(name, value.clone());
            }
        }
        Self(map)
    }

    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |name| self.0.get(name).cloned()
    }
}

fn signed_headers(id: &str, timestamp: i64, body: &[u8]) -> SignatureHeaders {
    SignatureHeaders::new(
        id,
        timestamp.to_string(),
        sign(secret(), id, timestamp, body),
    )
}

async fn receive(
    receiver: &Receiver,
    headers: &Headers,
    body: &Bytes,
) -> Result<Receipt, ReceiveError> {
    receiver.receive(headers.lookup(), body, NOW).await
}

/// Refusals are one of the statuses the pipeline documents, and "too large" means too large.
/// (The in-memory store never fails, so 503 never happens here.)
fn check_refusal(result: &Result<Receipt, ReceiveError>, body: &[u8], headers: &Headers) {
    let body_len = body.len();
    if let Err(err) = result {
        assert!(
            matches!(
                err.kind(),
                ReceiveErrorKind::Malformed
                    | ReceiveErrorKind::UnknownTable
                    | ReceiveErrorKind::Unauthorized
                    | ReceiveErrorKind::TooLarge
                    | ReceiveErrorKind::Unprocessable
            ),
            "unexpected kind {:?} for {err}",
            err.kind()
        );
        assert_eq!(
            matches!(err, ReceiveError::TooLarge { .. }),
            body_len > MAX_BODY,
            "{err}"
        );
        // Errors may quote what was sent (a table name, a timestamp), never the secret itself.
        let carries = |sent: &[u8]| sent.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
        let carried = carries(body) || headers.0.values().any(|v| carries(v.as_bytes()));
        assert!(
            carried || !err.to_string().contains(SECRET),
            "the secret in an error: {err}"
        );
    }
}

/// An accepted delivery: its body is a `Delivery` with a valid timestamp and the receipt names
/// it; when applied, the record is readable from the cache without asking the source; a
/// replay of the same signed delivery is a no-op.
async fn check_accepted(
    cache: &Cache,
    receiver: &Receiver,
    headers: &Headers,
    body: &Bytes,
    receipt: &Receipt,
) {
    let delivery: Delivery = serde_json::from_slice(body).expect("an accepted body is a delivery");
    assert_eq!(receipt.table, delivery.table);
    assert_eq!(receipt.record_id, delivery.record_id);
    assert!(!receipt.duplicate && receipt.status != ReceiptStatus::Duplicate);
    let timestamp = chrono::DateTime::parse_from_rfc3339(&delivery.timestamp)
        .expect("an accepted delivery has an ISO-8601 timestamp");
    if timestamp.timestamp_millis() > 0 {
        assert_eq!(
            receipt.status,
            ReceiptStatus::Applied,
            "the first delivery of a record to an empty cache is applied"
        );
    }
    let id = &delivery.record_id;
    if receipt.status == ReceiptStatus::Applied && !id.is_empty() && id.len() <= 64 {
        let read = read_record(cache, &delivery.table, id)
            .await
            .expect("accepted deliveries are for known tables");
        match read {
            Ok(Some(record)) => assert_eq!(record["id"], Value::String(id.clone())),
            other => panic!("an applied delivery of {id:?} is not readable: {other:?}"),
        }
    }
    if headers.0.contains_key("webhook-id") {
        let again = receive(receiver, headers, body).await;
        match again {
            Ok(replay) => {
                assert_eq!(replay.status, ReceiptStatus::Duplicate);
                assert!(replay.duplicate);
            }
            Err(err) => panic!("a replayed delivery was refused: {err}"),
        }
    }
}

/// Runs one input.
pub fn check(data: &[u8]) {
    let Some(input) = Input::new(data) else {
        return;
    };
    runtime().block_on(async move {
        match input.mode() % 4 {
            0 => raw(input).await,
            1 => signed(input).await,
            2 => structured(input).await,
            _ => ordering(input).await,
        }
    });
}

async fn raw(mut input: Input<'_>) {
    let legacy = input.mode() & 0x10 != 0;
    let signature = SignatureHeaders {
        id: input.optional_text(),
        timestamp: input.optional_text(),
        signature: input.optional_text(),
    };
    let legacy_header = input.optional_text();
    let body = Bytes::copy_from_slice(input.bytes());
    let mut headers = Headers::signed(&signature);
    if let Some(value) = &legacy_header {
        headers.0.insert(LEGACY_SECRET_HEADER, value.clone());
    }
    let cache = fresh_cache();
    let receiver = receiver(&cache, legacy);
    let result = receive(&receiver, &headers, &body).await;
    check_refusal(&result, &body, &headers);
    if let Ok(receipt) = &result {
        let unsigned = signature.id.is_none()
            && signature.timestamp.is_none()
            && signature.signature.is_none();
        let verified = verify(
            std::slice::from_ref(secret()),
            &signature,
            &body,
            NOW,
            DEFAULT_TOLERANCE,
        )
        .is_ok();
        let legacy_matches =
            legacy && unsigned && legacy_header.as_deref().map(str::trim) == Some(SECRET);
        assert!(
            verified || legacy_matches,
            "accepted without valid credentials: {receipt:?}"
        );
        check_accepted(&cache, &receiver, &headers, &body, receipt).await;
    }
}

async fn signed(mut input: Input<'_>) {
    let id = input.text();
    let offset = (input.number() % 701) as i64 - 350;
    let body = Bytes::copy_from_slice(input.bytes());
    let headers = Headers::signed(&signed_headers(&id, NOW + offset, &body));
    let cache = fresh_cache();
    let receiver = receiver(&cache, false);
    let result = receive(&receiver, &headers, &body).await;
    check_refusal(&result, &body, &headers);
    let well_formed_id = !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic());
    let in_tolerance = offset.unsigned_abs() <= DEFAULT_TOLERANCE.as_secs();
    if well_formed_id && in_tolerance && body.len() <= MAX_BODY {
        assert!(
            !matches!(result, Err(ReceiveError::Unauthorized(_))),
            "a correctly signed delivery was refused: {result:?}"
        );
    }
    if !in_tolerance || !well_formed_id {
        assert!(
            result.is_err(),
            "accepted outside the tolerance or with a malformed id"
        );
    }
    if let Ok(receipt) = &result {
        check_accepted(&cache, &receiver, &headers, &body, receipt).await;
    }
}

/// An ISO-8601 UTC timestamp with milliseconds.
pub fn iso(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn table_of(field: &str) -> String {
    match field.parse::<usize>() {
        Ok(n) if n < TABLES.len() && field.len() == 1 => TABLES[n].to_owned(),
        _ => field.to_owned(),
    }
}

fn value_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

async fn structured(mut input: Input<'_>) {
    let table = table_of(&input.text());
    let record_id = input.text();
    let timestamp = match input.optional_text() {
        None => iso(NOW * 1000),
        Some(text) => text,
    };
    let mut record = Map::new();
    let fields = input.texts(16);
    for pair in fields.chunks(2) {
        let value = pair.get(1).map(|v| value_of(v)).unwrap_or(Value::Null);
        record.insert(pair[0].clone(), value);
    }
    let body = json!({
        "table": table, "record_id": record_id, "record": record, "timestamp": timestamp,
    });
    let body = Bytes::from(serde_json::to_vec(&body).expect("json"));
    let headers = Headers::signed(&signed_headers("msg_fuzz", NOW, &body));
    let cache = fresh_cache();
    let receiver = receiver(&cache, false);
    let result = receive(&receiver, &headers, &body).await;
    check_refusal(&result, &body, &headers);
    if body.len() <= MAX_BODY {
        assert!(
            !matches!(result, Err(ReceiveError::Unauthorized(_))),
            "a signed delivery was refused: {result:?}"
        );
        let timestamp_ok = chrono::DateTime::parse_from_rfc3339(&timestamp).is_ok();
        if timestamp_ok && !TABLES.contains(&table.as_str()) {
            assert!(
                matches!(result, Err(ReceiveError::UnknownTable { .. })),
                "table {table:?}: {result:?}"
            );
        }
        if !timestamp_ok {
            assert!(
                matches!(result, Err(ReceiveError::Malformed(_))),
                "timestamp {timestamp:?}: {result:?}"
            );
        }
    }
    if let Ok(receipt) = &result {
        check_accepted(&cache, &receiver, &headers, &body, receipt).await;
    }
}

async fn ordering(mut input: Input<'_>) {
    let record_id = input.text();
    let first_ms = (input.number() % 86_400_000) as i64;
    let second_ms = (input.number() % 86_400_000) as i64;
    let (first_name, second_name) = (input.text(), input.text());
    if record_id.is_empty() || record_id.len() > 64 {
        return;
    }
    let base = NOW * 1000 - 86_400_000;
    let cache = fresh_cache();
    let receiver = receiver(&cache, false);
    let mut statuses = Vec::new();
    for (n, (ms, name)) in [(first_ms, &first_name), (second_ms, &second_name)]
        .into_iter()
        .enumerate()
    {
        let body = json!({
            "table": "Events", "record_id": record_id,
            "record": {"id": record_id, "name": name}, "timestamp": iso(base + ms),
        });
        let body = Bytes::from(serde_json::to_vec(&body).expect("json"));
        let headers = Headers::signed(&signed_headers(&format!("msg_{n}"), NOW, &body));
        let result = receive(&receiver, &headers, &body).await;
        check_refusal(&result, &body, &headers);
        if body.len() > MAX_BODY {
            return;
        }
        match result {
            Ok(receipt) => statuses.push(receipt.status),
            Err(err) => panic!("a well-formed Events delivery was refused: {err}"),
        }
    }
    let expected_second = if second_ms > first_ms {
        ReceiptStatus::Applied
    } else {
        ReceiptStatus::Stale
    };
    assert_eq!(statuses, [ReceiptStatus::Applied, expected_second]);
    let winner = if second_ms > first_ms {
        &second_name
    } else {
        &first_name
    };
    let read = read_record(&cache, "Events", &record_id).await;
    match read {
        Some(Ok(Some(record))) => assert_eq!(
            record["name"],
            Value::String(winner.clone()),
            "the newer delivery's record is the one read"
        ),
        other => panic!("the delivered record is not readable: {other:?}"),
    }
}

/// Inputs to start from: one of each mode that gets past the signature.
pub fn seeds() -> Vec<Vec<u8>> {
    let body = br#"{"table":"Events","record_id":"recEVT00000000001","record":{"id":"recEVT00000000001","name":"Hack Night","slug":"hack-night"},"timestamp":"2026-09-21T13:46:40.000Z"}"#;
    let legacy_body = br#"{"table":"Users","record_id":"recUSR00000000001","record":{"email":"ada@example.com"},"timestamp":"2026-09-21T13:46:40.000Z"}"#;
    let headers = signed_headers("msg_1", NOW, body);
    let (id, ts, sig) = (
        headers.id.unwrap_or_default(),
        headers.timestamp.unwrap_or_default(),
        headers.signature.unwrap_or_default(),
    );
    vec![
        encode(
            0,
            &[id.as_bytes(), ts.as_bytes(), sig.as_bytes(), b"", body],
        ),
        encode(0x10, &[b"", b"", b"", SECRET.as_bytes(), legacy_body]),
        encode(0, &[b"msg_2", b"1790000000", b"v1,AAAA", b"", b"{}"]),
        encode(1, &[b"msg_3", &number_field(350), body]),
        encode(1, &[b"msg_4", &number_field(0), br#"{"table":"Votes"}"#]),
        encode_text(
            2,
            &[
                "1",
                "recEVT00000000002",
                "",
                "name",
                "Demo Day",
                "slug",
                "demo-day",
                "max_votes",
                "3",
                "owner",
                r#"["recUSR00000000001"]"#,
            ],
        ),
        encode_text(
            2,
            &[
                "0",
                "recUSR00000000009",
                "2026-11-25T19:04:05.123Z",
                "email",
                " Ada@Example.COM ",
            ],
        ),
        encode_text(2, &["Nope", "rec1", "yesterday", "id", "rec2"]),
        encode(
            3,
            &[
                b"recEVT00000000003",
                &number_field(5_000),
                &number_field(4_000),
                b"newer",
                b"older",
            ],
        ),
    ]
}
