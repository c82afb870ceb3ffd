//! Signed automation deliveries through the app's webhook route: every bad input is refused
//! with its status and error body and changes nothing; good ones are applied exactly once. By
//! default a delivery is a signal: the record is re-read from Airtable and Airtable's answer is
//! stored, whatever fields the delivery carries; with `trust_delivery_fields` the delivered
//! fields are stored, in timestamp order.

mod common;

use common::{iso, now_secs, start, start_trusting_delivery_fields, start_with, Options};
use podium_cache_core::config::Secret;
use podium_cache_core::webhook::WebhookSecret;
use podium_example::demo::{FIRST_EVENT, FIRST_USER};
use serde_json::{json, Value};

fn event_delivery(name: &str, timestamp: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "table": "Events",
        "record_id": FIRST_EVENT,
        "record": {"id": FIRST_EVENT, "name": name, "slug": "hack-night", "max_votes": 3,
                    "owner": ["recUSR00000000001"], "attendees": [], "projects": []},
        "timestamp": timestamp,
    }))
    .unwrap()
}

#[tokio::test]
async fn signed_delivery_is_applied_and_served_without_an_airtable_call() {
    let t = start(false).await;
    let event_path = format!("/events/{FIRST_EVENT}");
    t.set_in_airtable("Events", FIRST_EVENT, json!({"name": "Fresh"}));
    t.settle("the native webhook", &event_path, |_, e| {
        e["name"] == "Fresh"
    })
    .await;
    let calls = t.airtable_calls();
    let (status, body) = t
        .deliver_signed("msg_1", now_secs(), &event_delivery("Fresh", &iso(0)))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "applied", "table": "Events", "record_id": FIRST_EVENT})
    );
    assert_eq!(
        t.airtable_calls(),
        calls + 1,
        "the delivery re-read the record"
    );
    let (status, event) = t.get_json(&event_path).await;
    assert_eq!(status, 200);
    assert_eq!(event["name"], "Fresh");
    assert_eq!(
        t.airtable_calls(),
        calls + 1,
        "the delivery stored the record"
    );
}

#[tokio::test]
async fn trusted_delivery_is_stored_as_it_came_without_an_airtable_call() {
    let t = start_trusting_delivery_fields(false).await;
    let (status, body) = t
        .deliver_signed("msg_1", now_secs(), &event_delivery("Fresh", &iso(0)))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "applied");
    let (status, event) = t.get_json(&format!("/events/{FIRST_EVENT}")).await;
    assert_eq!(status, 200);
    assert_eq!(event["name"], "Fresh");
    assert_eq!(t.airtable_calls(), 0, "the delivery stored the record");
}

/// Issue #16, finding 3: whoever can read the secret can sign. A correctly signed delivery
/// whose fields differ from Airtable's record stores Airtable's record, whether the record was
/// cached before or not, and a field that does not even fit the model is not looked at.
#[tokio::test]
async fn a_signed_delivery_whose_fields_differ_from_airtable_never_serves_them() {
    for redis in [false, true] {
        let t = start(redis).await;
        let (status, before) = t.get_json(&format!("/events/{FIRST_EVENT}")).await;
        assert_eq!((status, &before["name"]), (200, &json!("Hack Night")));
        let (status, body) = t
            .deliver_signed("msg_forged", now_secs(), &event_delivery("Forged", &iso(0)))
            .await;
        assert_eq!(
            (status, &body["status"]),
            (200, &json!("applied")),
            "{body}"
        );
        let (_, event) = t.get_json(&format!("/events/{FIRST_EVENT}")).await;
        assert_eq!(
            event, before,
            "Airtable's record is served, not the delivered one"
        );

        // A record not cached yet, with a field of the wrong type: Airtable's answer is stored.
        let user = serde_json::to_vec(&json!({"table": "Users", "record_id": FIRST_USER,
            "record": {"name": "Mallory", "email": ["not", "a", "string"]}, "timestamp": iso(0)}))
        .unwrap();
        let (status, body) = t.deliver_signed("msg_forged_2", now_secs(), &user).await;
        assert_eq!(
            (status, &body["status"]),
            (200, &json!("applied")),
            "{body}"
        );
        let calls = t.airtable_calls();
        let (status, stored) = t.get_json(&format!("/users/{FIRST_USER}")).await;
        assert_eq!(status, 200);
        assert_eq!(stored["email"], "ada@example.com", "{stored}");
        assert_ne!(stored["name"], "Mallory");
        assert_eq!(t.airtable_calls(), calls, "the re-read was stored");
        t.app.shutdown().await.unwrap();
    }
}

/// A delivery for a record Airtable no longer has removes it (a tombstone), and a delivery
/// naming no record id of Airtable's shape is refused before anything is asked.
#[tokio::test]
async fn a_delivery_for_a_record_airtable_deleted_removes_it() {
    let t = start(true).await;
    let (status, _) = t.get_json(&format!("/events/{FIRST_EVENT}")).await;
    assert_eq!(status, 200);
    let airtable = t.app.airtable.as_ref().unwrap();
    assert!(airtable.remove(podium_example::demo::DEMO_BASE, "Events", FIRST_EVENT));
    t.settle(
        "the native webhook",
        &format!("/events/{FIRST_EVENT}"),
        |status, _| status == 404,
    )
    .await;
    let (status, body) = t
        .deliver_signed("msg_gone", now_secs(), &event_delivery("Whatever", &iso(0)))
        .await;
    assert_eq!((status, &body["status"]), (200, &json!("gone")), "{body}");
    let calls = t.airtable_calls();
    let (status, body) = t.get_json(&format!("/events/{FIRST_EVENT}")).await;
    assert_eq!((status, body), (404, json!({"error": "not found"})));
    assert_eq!(t.airtable_calls(), calls, "the tombstone answers");

    let bogus = serde_json::to_vec(&json!({"table": "Events", "record_id": "../../x",
        "timestamp": iso(0)}))
    .unwrap();
    let (status, body) = t.deliver_signed("msg_bogus", now_secs(), &bogus).await;
    assert_eq!(
        (status, &body["code"]),
        (400, &json!("malformed_json")),
        "{body}"
    );
    assert_eq!(t.airtable_calls(), calls, "nothing asked for a bogus id");
}

/// Airtable refusing the re-read (403: the token lost its access) is a 502 the script retries,
/// never a removal: the record is served again once Airtable answers.
#[tokio::test]
async fn airtable_refusing_the_reread_is_a_502_and_removes_nothing() {
    let t = start(false).await;
    t.app.airtable.as_ref().unwrap().fail_next(1, 403);
    let (status, body) = t
        .deliver_signed("msg_403", now_secs(), &event_delivery("x", &iso(0)))
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "airtable_forbidden", "{body}");
    let tombstones: Vec<String> = t
        .store_keys()
        .await
        .into_iter()
        .filter(|k| k.contains(":tomb:"))
        .collect();
    assert!(tombstones.is_empty(), "{tombstones:?}");
    let (status, event) = t.get_json(&format!("/events/{FIRST_EVENT}")).await;
    assert_eq!((status, &event["name"]), (200, &json!("Hack Night")));
}

#[tokio::test]
async fn every_bad_input_is_refused_with_its_status_and_changes_nothing() {
    let t = start_trusting_delivery_fields(false).await;
    let good = event_delivery("Bad", &iso(0));
    let now = now_secs();
    let before = t.store_keys().await;

    // No signature at all.
    let (status, body) = t.post_webhook(good.clone(), &[]).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized", "{body}");

    // A signature over other bytes (one byte changed after signing).
    let mut tampered = good.clone();
    let signature = podium_cache_core::webhook::sign(&t.app.webhook_secret, "msg_t", now, &good);
    tampered[10] ^= 1;
    let (status, body) = t
        .post_webhook(
            tampered,
            &[
                ("webhook-id", "msg_t".into()),
                ("webhook-timestamp", now.to_string()),
                ("webhook-signature", signature),
            ],
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized", "{body}");

    // A correct signature with a timestamp ten minutes old.
    let (status, body) = t.deliver_signed("msg_old", now - 600, &good).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized", "{body}");

    // Over 1 MiB.
    let big = event_delivery(&"x".repeat(1_100_000), &iso(0));
    let (status, body) = t.deliver_signed("msg_big", now, &big).await;
    assert_eq!(status, 413);
    assert_eq!(body["code"], "body_too_large", "{body}");

    // Malformed JSON, signed correctly.
    let (status, body) = t.deliver_signed("msg_json", now, b"{\"table\": ").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "malformed_json", "{body}");

    // An unknown table names the known ones.
    let unknown = serde_json::to_vec(
        &json!({"table": "Sessions", "record_id": "recA", "record": {}, "timestamp": iso(0)}),
    )
    .unwrap();
    let (status, body) = t.deliver_signed("msg_table", now, &unknown).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["detail"]["known_tables"],
        json!(["Events", "Projects", "Referrals", "Users", "Votes"])
    );

    // A record that does not fit the model names the field.
    let misfit = serde_json::to_vec(&json!({"table": "Events", "record_id": FIRST_EVENT,
        "record": {"name": "x", "max_votes": "many"}, "timestamp": iso(0)}))
    .unwrap();
    let (status, body) = t.deliver_signed("msg_fit", now, &misfit).await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"]["path"], "max_votes", "{body}");

    // A timestamp that is not ISO-8601.
    let (status, body) = t
        .deliver_signed("msg_ts", now, &event_delivery("x", "yesterday"))
        .await;
    assert_eq!(status, 400, "{body}");

    assert_eq!(
        t.store_keys().await,
        before,
        "no refused delivery wrote anything"
    );
    assert_eq!(t.app.cache.metrics().upserts_applied, 0);
    let (_, event) = t.get_json(&format!("/events/{FIRST_EVENT}")).await;
    assert_eq!(event["name"], "Hack Night");
}

/// `webhook_secret` and `webhook_secrets` together: a delivery signed with any of them is
/// applied (a secret is rotated without a failed delivery), one signed with another is 401.
#[tokio::test]
async fn a_delivery_signed_with_any_configured_secret_is_accepted_and_another_is_refused() {
    let [old, new, unknown] = [(); 3].map(|()| WebhookSecret::generate());
    let (old_secret, new_secret) = (old.expose(), new.expose());
    let t = start_with(Options {
        adjust: Some(Box::new(move |settings| {
            settings.webhook_secret = Some(Secret::new(old_secret));
            settings.webhook_secrets = vec![Secret::new(new_secret)];
        })),
        ..Options::default()
    })
    .await;
    for (n, secret) in [&old, &new].into_iter().enumerate() {
        let name = format!("Signed {n}");
        t.set_in_airtable("Events", FIRST_EVENT, json!({"name": name}));
        t.settle(
            "the native webhook",
            &format!("/events/{FIRST_EVENT}"),
            |_, e| e["name"] == name.as_str(),
        )
        .await;
        let body = event_delivery(&name, &iso(n as i64 * 10));
        let (status, body) = t
            .deliver_signed_with(secret, &format!("msg_rot_{n}"), now_secs(), &body)
            .await;
        assert_eq!(
            (status, &body["status"]),
            (200, &json!("applied")),
            "{body}"
        );
        let (_, event) = t.get_json(&format!("/events/{FIRST_EVENT}")).await;
        assert_eq!(event["name"], name.as_str());
    }
    let before = t.store_keys().await;
    let body = event_delivery("Unknown secret", &iso(100));
    let (status, body) = t
        .deliver_signed_with(&unknown, "msg_rot_x", now_secs(), &body)
        .await;
    assert_eq!(
        (status, &body["code"]),
        (401, &json!("unauthorized")),
        "{body}"
    );
    assert_eq!(
        t.store_keys().await,
        before,
        "the refused delivery changed nothing"
    );
    let (_, event) = t.get_json(&format!("/events/{FIRST_EVENT}")).await;
    assert_eq!(event["name"], "Signed 1");
}

#[tokio::test]
async fn replayed_delivery_is_applied_once() {
    let t = start(true).await;
    let event_path = format!("/events/{FIRST_EVENT}");
    t.set_in_airtable("Events", FIRST_EVENT, json!({"name": "Once"}));
    t.settle("the native webhook", &event_path, |_, e| {
        e["name"] == "Once"
    })
    .await;
    let body = event_delivery("Once", &iso(0));
    let (status, first) = t.deliver_signed("msg_replay", now_secs(), &body).await;
    assert_eq!((status, first["status"].clone()), (200, json!("applied")));
    // A newer change arrives, then the first delivery is replayed: it must not apply again.
    t.set_in_airtable("Events", FIRST_EVENT, json!({"name": "Newer"}));
    t.settle("the native webhook", &event_path, |_, e| {
        e["name"] == "Newer"
    })
    .await;
    let (status, _) = t
        .deliver_signed("msg_newer", now_secs(), &event_delivery("Newer", &iso(5)))
        .await;
    assert_eq!(status, 200);
    let calls = t.airtable_calls();
    let (status, replay) = t.deliver_signed("msg_replay", now_secs(), &body).await;
    assert_eq!(status, 200);
    assert_eq!(replay["duplicate"], json!(true), "{replay}");
    assert_eq!(replay["status"], json!("duplicate"));
    assert_eq!(t.airtable_calls(), calls, "a replay is not re-read");
    let (_, event) = t.get_json(&format!("/events/{FIRST_EVENT}")).await;
    assert_eq!(event["name"], "Newer");
}

#[tokio::test]
async fn trusted_deliveries_in_reverse_order_leave_the_newer_one() {
    let t = start_trusting_delivery_fields(false).await;
    let newer = event_delivery("Newer", &iso(0));
    let older = event_delivery("Older", &iso(-2_000));
    let (_, a) = t.deliver_signed("msg_a", now_secs(), &newer).await;
    let (status, b) = t.deliver_signed("msg_b", now_secs(), &older).await;
    assert_eq!(a["status"], "applied");
    assert_eq!((status, b["status"].clone()), (200, json!("stale")));
    let (_, event) = t.get_json(&format!("/events/{FIRST_EVENT}")).await;
    assert_eq!(event["name"], "Newer");
}

#[tokio::test]
async fn changed_email_moves_the_index_entry() {
    let t = start(false).await;
    let (status, user) = t.get_json("/users/by-email/ADA@example.com").await;
    assert_eq!((status, user["id"].clone()), (200, json!(FIRST_USER)));
    let mut record: Value = user.clone();
    record["email"] = json!("countess@example.com");
    // The automation fires because the e-mail changed in Airtable.
    t.set_in_airtable(
        "Users",
        FIRST_USER,
        json!({"email": "countess@example.com"}),
    );
    let delivery = serde_json::to_vec(
        &json!({"table": "Users", "record_id": FIRST_USER, "record": record, "timestamp": iso(0)}),
    )
    .unwrap();
    let (status, body) = t.deliver_signed("msg_email", now_secs(), &delivery).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = t.get_json("/users/by-email/ada@example.com").await;
    assert_eq!(status, 404, "the old e-mail no longer finds the user");
    let lists = t.airtable_list_calls();
    let (status, moved) = t.get_json("/users/by-email/Countess@Example.com").await;
    assert_eq!((status, moved["id"].clone()), (200, json!(FIRST_USER)));
    assert_eq!(
        t.airtable_list_calls(),
        lists,
        "the new e-mail is found through the index, with no formula query"
    );
}

#[tokio::test]
async fn store_unavailable_answers_503_so_the_script_retries() {
    let mut t = start(true).await;
    t.redis.as_mut().unwrap().stop();
    let (status, body) = t
        .deliver_signed("msg_down", now_secs(), &event_delivery("Down", &iso(0)))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "store_unavailable");
    // Back up: the retried delivery (same id) applies.
    t.redis.as_mut().unwrap().restart().unwrap();
    let mut applied = false;
    for _ in 0..50 {
        let (status, body) = t
            .deliver_signed("msg_down", now_secs(), &event_delivery("Down", &iso(0)))
            .await;
        if status == 200 {
            assert_eq!(
                body["status"], "applied",
                "the failed attempt did not burn the delivery id"
            );
            applied = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(applied);
}

#[tokio::test]
async fn health_reports_the_store_and_tables() {
    let t = start(false).await;
    let (status, body) = t.get_json("/api/webhooks/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["store"]["reachable"], json!(true));
    assert_eq!(body["tables"].as_array().map(Vec::len), Some(5));
}

mod any_input {
    use super::common;
    use bytes::Bytes;
    use podium_cache_core::webhook::{sign, Receiver};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

        /// Any byte sequence as the body, or as the signature header, is answered (never a
        /// panic) and applies nothing.
        #[test]
        fn any_body_or_signature_is_answered_without_applying(
            body in proptest::collection::vec(any::<u8>(), 0..2048),
            signature in "\\PC{0,200}",
            sign_it in any::<bool>(),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let t = common::start(false).await;
                let receiver = Receiver::new(t.app.cache.clone(), podium_example::server::models(), vec![t.app.webhook_secret.clone()]);
                let now = common::now_secs();
                let header_value = if sign_it { sign(&t.app.webhook_secret, "msg_p", now, &body) } else { signature.clone() };
                let lookup = |name: &str| match name {
                    "webhook-id" => Some("msg_p".to_string()),
                    "webhook-timestamp" => Some(now.to_string()),
                    "webhook-signature" => Some(header_value.clone()),
                    _ => None,
                };
                let result = receiver.receive(lookup, &Bytes::from(body.clone()), now).await;
                // Random bytes never form a valid delivery of a known table with a fitting record.
                prop_assert!(result.is_err(), "{result:?}");
                prop_assert_eq!(t.app.cache.metrics().upserts_applied, 0);
                t.app.shutdown().await.unwrap();
                Ok(())
            })?;
        }
    }
}

/// What signal mode costs: 1,000 deliveries for 100 records from 16 concurrent senders, each
/// acknowledged only after Airtable's record is stored. The re-reads are batched with each
/// other (and would be with misses), so far fewer Airtable calls than deliveries reach the
/// local server; the number is printed for the record.
#[tokio::test]
async fn a_thousand_deliveries_cost_far_fewer_airtable_calls_than_deliveries() {
    let t = start(false).await;
    let airtable = t.app.airtable.as_ref().unwrap();
    let ids: Vec<String> = (0..100)
        .map(|i| {
            let fields = json!({"name": format!("Event {i}"), "slug": format!("event-{i}"),
                "max_votes": 3, "owner": [FIRST_USER]});
            let Value::Object(fields) = fields else {
                unreachable!()
            };
            airtable.insert(podium_example::demo::DEMO_BASE, "Events", fields)
        })
        .collect();
    // Let the native webhook's notifications of the inserts pass first.
    let last = ids.last().cloned().unwrap_or_default();
    t.settle("the inserts", &format!("/events/{last}"), |status, _| {
        status == 200
    })
    .await;
    let before = t.airtable_calls();
    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..16 {
        let (ids, http) = (ids.clone(), t.http.clone());
        let (url, secret) = (
            t.url("/api/webhooks/airtable"),
            t.app.webhook_secret.clone(),
        );
        senders.spawn(async move {
            let mut applied = 0;
            for n in (sender..1000).step_by(16) {
                let id = &ids[n % ids.len()];
                let body = serde_json::to_vec(
                    &json!({"table": "Events", "record_id": id, "timestamp": iso(0)}),
                )
                .unwrap();
                let (msg, now) = (format!("msg_load_{n}"), now_secs());
                let response = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("webhook-id", &msg)
                    .header("webhook-timestamp", now.to_string())
                    .header(
                        "webhook-signature",
                        podium_cache_core::webhook::sign(&secret, &msg, now, &body),
                    )
                    .body(body)
                    .send()
                    .await
                    .expect("webhook answers");
                assert_eq!(response.status().as_u16(), 200);
                applied += 1;
            }
            applied
        });
    }
    let mut delivered = 0;
    while let Some(applied) = senders.join_next().await {
        delivered += applied.expect("sender");
    }
    assert_eq!(delivered, 1000);
    let calls = t.airtable_calls() - before;
    eprintln!("signal mode: {calls} Airtable get/list calls for 1000 deliveries of 100 records from 16 senders");
    assert!(calls > 0, "every delivery is re-read");
    assert!(calls < 500, "re-reads are batched: {calls} calls");
    // Every record is served from the store afterwards.
    let after = t.airtable_calls();
    for id in ids.iter().take(10) {
        let (status, _) = t.get_json(&format!("/events/{id}")).await;
        assert_eq!(status, 200);
    }
    assert_eq!(t.airtable_calls(), after);
}
