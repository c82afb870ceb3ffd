//! The local Airtable server's native webhooks live as Airtable's do: they expire after 7 days
//! unless refreshed, keep payloads a week, number them without reuse, allow 10 per base, and
//! retry a failed ping.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode as AxumStatus;
use axum::routing::post;
use podium_local::airtable::{AirtableServer, RunningAirtable, MAX_WEBHOOKS_PER_BASE};
use serde_json::{json, Map, Value};

const BASE: &str = "appLIFECYCLELIFE1";
const DAY: Duration = Duration::from_secs(24 * 3600);
/// A guard against a hang, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(30);

async fn start() -> RunningAirtable {
    AirtableServer::builder()
        .rate_limit(None)
        .seed_json(&json!({"bases": {BASE: {"Events": {"fields": ["name"], "records": []}}}}))
        .start()
        .await
        .expect("server starts")
}

fn name(value: &str) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("name".into(), json!(value));
    fields
}

async fn call(server: &RunningAirtable, method: reqwest::Method, path: &str) -> (u16, Value) {
    let body = json!({
        "notificationUrl": null,
        "specification": {"options": {"filters": {"dataTypes": ["tableData"]}}},
    });
    let mut request = reqwest::Client::new()
        .request(
            method.clone(),
            format!("{}/v0/bases/{BASE}/{path}", server.url()),
        )
        .bearer_auth(server.api_key());
    if method == reqwest::Method::POST && path == "webhooks" {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create(server: &RunningAirtable) -> (u16, Value) {
    call(server, reqwest::Method::POST, "webhooks").await
}

#[tokio::test]
async fn an_unrefreshed_webhook_expires_after_seven_days_and_cannot_be_refreshed() {
    let server = start().await;
    let (status, created) = create(&server).await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().expect("an id").to_owned();

    server.advance_webhook_clock(6 * DAY);
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        &format!("webhooks/{id}/refresh"),
    )
    .await;
    assert_eq!(status, 200, "an active webhook is refreshed");
    server.advance_webhook_clock(6 * DAY);
    assert!(
        server.webhooks(BASE)[0].is_hook_enabled,
        "the refresh gave it 7 more days"
    );

    server.advance_webhook_clock(2 * DAY);
    let hook = &server.webhooks(BASE)[0];
    assert!(!hook.is_hook_enabled, "8 days after the refresh it expired");
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        &format!("webhooks/{id}/refresh"),
    )
    .await;
    assert_eq!(status, 422, "an expired webhook cannot be refreshed");
    server.insert(BASE, "Events", name("after expiry"));
    assert_eq!(
        server.webhooks(BASE)[0].cursor_for_next_payload,
        1,
        "an expired webhook records no payloads"
    );
}

#[tokio::test]
async fn payloads_older_than_a_week_are_dropped_and_the_cursor_skips_them() {
    let server = start().await;
    let (_, created) = create(&server).await;
    let id = created["id"].as_str().expect("an id").to_owned();
    server.insert(BASE, "Events", name("old 1"));
    server.insert(BASE, "Events", name("old 2"));
    server.advance_webhook_clock(4 * DAY);
    let (status, _) = call(
        &server,
        reqwest::Method::POST,
        &format!("webhooks/{id}/refresh"),
    )
    .await;
    assert_eq!(status, 200);
    server.insert(BASE, "Events", name("recent"));
    server.advance_webhook_clock(4 * DAY);

    let (status, page) = call(
        &server,
        reqwest::Method::GET,
        &format!("webhooks/{id}/payloads?cursor=1"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let payloads = page["payloads"].as_array().expect("payloads");
    assert_eq!(
        payloads.len(),
        1,
        "the two 8-day-old payloads are gone: {page}"
    );
    assert_eq!(page["cursor"], 4, "numbers are never reused");
    // The first returned payload is number cursor - len = 3, after the requested 1: a gap.
    assert_eq!(page["cursor"].as_u64().unwrap_or(0) - 1, 3);
}

#[tokio::test]
async fn a_base_has_at_most_ten_webhooks() {
    let server = start().await;
    for _ in 0..MAX_WEBHOOKS_PER_BASE {
        let (status, body) = create(&server).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = create(&server).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["type"], "TOO_MANY_WEBHOOKS_IN_BASE");
    assert_eq!(server.webhooks(BASE).len(), MAX_WEBHOOKS_PER_BASE);

    let first = server.webhooks(BASE)[0].id.clone();
    let (status, _) = call(
        &server,
        reqwest::Method::DELETE,
        &format!("webhooks/{first}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(create(&server).await.0, 200, "room again after a delete");
}

#[tokio::test]
async fn a_failed_ping_is_retried_until_it_succeeds() {
    let server = start().await;
    let hits = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/notify",
        post({
            let hits = Arc::clone(&hits);
            move || async move {
                // The first two attempts fail.
                if hits.fetch_add(1, Ordering::SeqCst) < 2 {
                    AxumStatus::SERVICE_UNAVAILABLE
                } else {
                    AxumStatus::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let created = reqwest::Client::new()
        .post(format!("{}/v0/bases/{BASE}/webhooks", server.url()))
        .bearer_auth(server.api_key())
        .json(&json!({
            "notificationUrl": format!("http://{addr}/notify"),
            "specification": {"options": {"filters": {"dataTypes": ["tableData"]}}},
        }))
        .send()
        .await
        .expect("create")
        .json::<Value>()
        .await
        .expect("json");
    let id = created["id"].as_str().expect("an id").to_owned();

    server.insert(BASE, "Events", name("pinged"));
    let result = tokio::time::timeout(PATIENCE, server.wait_for_webhook_ping(&id))
        .await
        .expect("the ping finished")
        .expect("a ping was sent");
    assert!(result.success, "{result:?}");
    assert_eq!(result.retry_number, 2, "{result:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert_eq!(server.webhooks(BASE)[0].pings, 3);
}
