//! The HTTP tier under attack, over real sockets (the example app with the layer in front of
//! the local Airtable server):
//!
//! (A response never outliving its purge key under an eviction flood is
//! `podium-cache-tower/tests/eviction_flood.rs`.)
//!
//! - a 404 planted by an index lookup before a record exists (or before a rename) is purged when
//!   the creation (or rename) is acknowledged;
//! - junk paths (malformed ids, encoded aliases of real ids) store nothing: the warm entries stay
//!   hot and the store's key count stays where it was;
//! - index lookups go through their client's fair share: 300 random lookups from one address do
//!   not hold back another address's miss.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{iso, now_secs, start_with, Options, TestApp};
use podium_example::demo::{DEMO_BASE, FIRST_USER};
use serde_json::{json, Map, Value};

/// A user record's Airtable fields.
fn user_fields(email: &str, name: &str) -> Map<String, Value> {
    let Value::Object(fields) = json!({"email": email, "display_name": name}) else {
        unreachable!("a JSON object literal")
    };
    fields
}

/// A signed delivery of user `id` as Airtable now has it (the local server is updated first, so
/// the delivery and Airtable agree whichever way the receiver reads it).
async fn change_user(t: &TestApp, id: &str, email: &str, name: &str, seq: u64) -> (u16, Value) {
    let airtable = t.app.airtable.as_ref().expect("the demo Airtable server");
    let fields = user_fields(email, name);
    if !airtable.update(DEMO_BASE, "Users", id, fields.clone()) {
        airtable.insert_with_id(DEMO_BASE, "Users", id, fields.clone());
    }
    let mut record = fields;
    record.insert("id".into(), json!(id));
    let body = serde_json::to_vec(&json!({
        "table": "Users",
        "record_id": id,
        "record": record,
        "timestamp": iso(seq as i64),
    }))
    .expect("json");
    t.deliver_signed(&format!("msg_{id}_{seq}"), now_secs(), &body)
        .await
}

/// A delivery answered 2xx: the change is acknowledged. In signal mode it is `applied`, or
/// `stale` when the demo's native webhook already carried the same change (the record was
/// re-read from Airtable either way).
fn acknowledged(status: u16, body: &Value) {
    assert_eq!(status, 200, "{body}");
    assert!(
        body["status"] == "applied" || body["status"] == "stale",
        "{body}"
    );
}

fn cache_status(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A client whose requests come from `address` (a loopback address of its own).
fn client_at(address: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(address))
        .pool_max_idle_per_host(64)
        .build()
        .expect("client")
}

async fn planted_not_found_is_purged_by_creation_and_rename(redis: bool) {
    let t = start_with(Options {
        redis,
        ..Options::default()
    })
    .await;
    // Before Carol exists: 404, stored.
    let carol_url = t.url("/users/by-email/carol@example.org");
    for expected in ["fwd=miss; stored", "hit"] {
        let response = t.http.get(&carol_url).send().await.expect("answer");
        assert_eq!(response.status(), 404);
        let status = cache_status(&response);
        assert!(status.contains(expected), "{status}");
    }
    // Carol is created in Airtable and her delivery acknowledged: the lookup finds her at once.
    let carol = "recCAROL000000001";
    let (status, body) = change_user(&t, carol, "carol@example.org", "Carol", 1).await;
    acknowledged(status, &body);
    let (status, body) = t.get_json("/users/by-email/carol@example.org").await;
    assert_eq!(status, 200, "a planted 404 outlived the creation: {body}");
    assert_eq!(body["id"], carol);

    // A rename to an e-mail someone already looked up: the old 404 goes too.
    let renamed = t.url("/users/by-email/ada@renamed.example");
    let response = t.http.get(&renamed).send().await.expect("answer");
    assert_eq!(response.status(), 404);
    let (status, body) = change_user(&t, FIRST_USER, "ada@renamed.example", "Ada", 2).await;
    acknowledged(status, &body);
    let (status, body) = t.get_json("/users/by-email/ada@renamed.example").await;
    assert_eq!(status, 200, "a planted 404 outlived the rename: {body}");
    assert_eq!(body["id"], FIRST_USER);
}

#[tokio::test]
async fn a_planted_index_404_answers_200_right_after_the_creation_is_acknowledged() {
    planted_not_found_is_purged_by_creation_and_rename(false).await;
}

#[tokio::test]
async fn a_planted_index_404_answers_200_right_after_the_creation_is_acknowledged_on_redis() {
    planted_not_found_is_purged_by_creation_and_rename(true).await;
}

/// The demo's record URLs and e-mail lookups: what a warm cache holds.
fn warm_paths(t: &TestApp) -> Vec<String> {
    let airtable = t.app.airtable.as_ref().expect("demo airtable");
    let mut paths = Vec::new();
    for (table, route) in [
        ("Users", "users"),
        ("Events", "events"),
        ("Projects", "projects"),
        ("Votes", "votes"),
        ("Referrals", "referrals"),
    ] {
        for id in airtable.ids(DEMO_BASE, table) {
            paths.push(format!("/{route}/{id}"));
        }
    }
    for record in airtable.records(DEMO_BASE, "Users") {
        if let Some(email) = record.fields.get("email").and_then(Value::as_str) {
            paths.push(format!("/users/by-email/{email}"));
        }
    }
    paths
}

/// The `n`th junk path: malformed ids, and aliases of a real id that the handler reads as
/// another (malformed) id or, percent-decoded, as the real one.
fn junk_path(n: usize, real: &str) -> String {
    match n % 5 {
        0 => format!("/users/junk-{n}"),
        1 => {
            // One character of the real id percent-encoded, a different one each time.
            let at = (n / 5) % real.len();
            let (head, tail) = real.split_at(at);
            let mut chars = tail.chars();
            let encoded = chars
                .next()
                .map(|c| format!("%{:02X}", c as u32))
                .unwrap_or_default();
            format!("/users/{head}{encoded}{}", chars.as_str())
        }
        2 => format!("/users/{real};x{n}"),
        3 => format!("/users/{real}%3F{n}"),
        _ => format!("/events/{n:x}"),
    }
}

async fn junk_costs_nothing_to_keep(redis: bool, requests: usize) {
    let t = Arc::new(
        start_with(Options {
            redis,
            ..Options::default()
        })
        .await,
    );
    let paths = warm_paths(&t);
    for path in &paths {
        let response = t.http.get(t.url(path)).send().await.expect("answer");
        assert_eq!(response.status(), 200, "{path}");
    }
    let keys_before = t.store_keys().await.len();
    let calls_before = t.airtable_calls();
    // An encoded alias of a warm record's URL is the same resource: served from its entry.
    let alias = t
        .http
        .get(t.url(&junk_path(1, FIRST_USER)))
        .send()
        .await
        .expect("answer");
    assert_eq!(alias.status(), 200);
    let status = cache_status(&alias);
    assert!(
        status.contains("hit"),
        "the alias made an entry of its own: {status}"
    );

    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..32 {
        let (t, next) = (Arc::clone(&t), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                if n >= requests {
                    return statuses;
                }
                let response = t
                    .http
                    .get(t.url(&junk_path(n, FIRST_USER)))
                    .send()
                    .await
                    .expect("answer");
                statuses.push(response.status().as_u16());
            }
        }));
    }
    let mut answered = 0usize;
    for worker in workers {
        answered += worker.await.expect("worker").len();
    }
    assert_eq!(answered, requests);
    let keys_after = t.store_keys().await.len();
    let flood_calls = t.airtable_calls() - calls_before;

    // The next pass over the warm paths: every one a hit, no Airtable call.
    let calls_before_pass = t.airtable_calls();
    let mut cold = Vec::new();
    for path in &paths {
        let response = t.http.get(t.url(path)).send().await.expect("answer");
        let status = cache_status(&response);
        if !status.contains("hit") {
            cold.push(format!("{path}: {status}"));
        }
    }
    let pass_calls = t.airtable_calls() - calls_before_pass;
    println!(
        "{}: {requests} junk requests, Airtable calls during the flood {flood_calls}, store keys {keys_before} -> {keys_after}, next pass: {} cold, {pass_calls} Airtable calls",
        if redis { "redis" } else { "memory" },
        cold.len()
    );
    assert!(cold.is_empty(), "warm entries lost to the junk: {cold:?}");
    assert_eq!(pass_calls, 0);
    assert!(
        keys_after <= keys_before + 8,
        "junk grew the store: {keys_before} -> {keys_after} keys"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn junk_paths_leave_the_warm_entries_hot_and_the_memory_store_bounded() {
    // 150,000 as in the audit with `PODIUM_JUNK_REQUESTS=150000` (about a minute in a debug
    // build); 30,000 in the suite.
    let requests = std::env::var("PODIUM_JUNK_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30_000);
    junk_costs_nothing_to_keep(false, requests).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn junk_paths_leave_the_warm_entries_hot_and_redis_bounded() {
    junk_costs_nothing_to_keep(true, 5_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_index_lookups_cannot_hold_back_another_clients_miss() {
    // Airtable as it is: 100 ms a call, 5 calls a second per base.
    let t = Arc::new(
        start_with(Options {
            latency: Duration::from_millis(100),
            rate_limit: Some(5),
            ..Options::default()
        })
        .await,
    );
    let attacker = client_at(Ipv4Addr::new(127, 0, 0, 2));
    let victim = client_at(Ipv4Addr::new(127, 0, 0, 1));
    let mut lookups = Vec::new();
    for n in 0..300 {
        let (attacker, url) = (
            attacker.clone(),
            t.url(&format!("/users/by-email/x{n}@nowhere.test")),
        );
        lookups.push(tokio::spawn(async move {
            attacker.get(url).send().await.map(|r| r.status().as_u16())
        }));
    }
    // Wait until the attacker's lookups are queued and Airtable is busy with them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while t.airtable_list_calls() < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the attacker's lookups never reached Airtable"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let calls_before = t.airtable_calls();
    let response = victim
        .get(t.url(&format!("/users/{FIRST_USER}")))
        .send()
        .await
        .expect("answer");
    let calls_before_answer = t.airtable_calls();
    assert_eq!(response.status(), 200);
    // The attacker's remaining lookups are not waited for.
    for lookup in &lookups {
        lookup.abort();
    }
    // The victim's miss is sent in the next free slot: the calls Airtable answered meanwhile
    // are those already in flight or queued in the slots of one budget window (5), plus its
    // own. Without a fair share for index lookups it waited behind the attacker's whole queue.
    let between = calls_before_answer - calls_before;
    println!("Airtable calls answered while the victim waited: {between}");
    assert!(
        between <= 11,
        "the victim's miss waited behind {between} Airtable calls of the attacker's lookups"
    );
}
