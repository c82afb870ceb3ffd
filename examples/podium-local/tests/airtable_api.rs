//! The local Airtable server answers the REST subset the way Airtable does.

use std::time::{Duration, Instant};

use podium_local::airtable::{
    AirtableServer, ChangeKind, RunningAirtable, SeedData, Token, ALL_SCOPES, DEFAULT_USER_EMAIL,
    DEFAULT_USER_ID, RECORDS_READ, RECORDS_WRITE, SCHEMA_READ, WEBHOOK_MANAGE,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

const BASE: &str = "appTESTTESTTEST01";
const OTHER_BASE: &str = "appOTHEROTHER001";

fn seed() -> Value {
    json!({"bases": {
        BASE: {
            "Users": [
                {"id": "recUSER000000001", "createdTime": "2026-11-25T19:04:05.000Z",
                 "fields": {"name": "Ada", "email": "ada@example.com", "age": 36, "note": "", "admin": false}},
                {"id": "recUSER000000002", "fields": {"name": "O'Brien", "email": "ob@example.com", "age": 41}},
                {"id": "recUSER000000003", "fields": {"name": "Grace", "email": "grace@example.com", "age": 85, "tags": ["a", "b"]}}
            ],
            "Invalidate Config": [{"fields": {"key": "webhook_url", "value": "http://x"}}],
            "Events": {"fields": ["name", "owner"], "records": []}
        },
        OTHER_BASE: {"Things": []}
    }})
}

async fn start() -> RunningAirtable {
    AirtableServer::builder()
        .rate_limit(None)
        .seed_json(&seed())
        .start()
        .await
        .expect("server starts")
}

struct Api {
    client: reqwest::Client,
    server: RunningAirtable,
}

impl Api {
    fn new(server: &RunningAirtable) -> Api {
        Api {
            client: reqwest::Client::new(),
            server: server.clone(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(&self.server.api_key(), method, path, body)
            .await
    }

    async fn call_as(
        &self,
        key: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}/v0/{path}", self.server.url());
        let mut request = self.client.request(method, url).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request is answered");
        let status = response.status();
        let text = response.text().await.expect("body is read");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }
}

fn ids(body: &Value) -> Vec<String> {
    body["records"]
        .as_array()
        .expect("records array")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[tokio::test]
async fn get_record_answers_airtable_shape_without_empty_fields() {
    let server = start().await;
    let api = Api::new(&server);
    let (status, body) = api.get(&format!("{BASE}/Users/recUSER000000001")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"id": "recUSER000000001", "createdTime": "2026-11-25T19:04:05.000Z",
               "fields": {"name": "Ada", "email": "ada@example.com", "age": 36}})
    );
    let (_, generated) = api.get(&format!("{BASE}/Users/recUSER000000002")).await;
    let created = generated["createdTime"].as_str().expect("createdTime");
    assert_eq!(created.len(), "2026-11-25T19:04:05.000Z".len());
    assert!(created.ends_with('Z'));
}

#[tokio::test]
async fn missing_record_is_404_with_plain_not_found() {
    let server = start().await;
    let (status, body) = Api::new(&server)
        .get(&format!("{BASE}/Users/recNOPENOPENOPE1"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "NOT_FOUND"}));
}

#[tokio::test]
async fn unknown_table_and_unknown_base_are_403_model_not_found() {
    // Airtable answers both 403 INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND
    // (https://airtable.com/developers/web/api/errors, "403 Forbidden").
    let server = start().await;
    let api = Api::new(&server);
    let model_not_found = json!({"error": {
        "type": "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
        "message": "Invalid permissions, or the requested model was not found. Check that both your user and your token have the required permissions, and that the model names and/or ids are correct."
    }});
    for path in [
        format!("{BASE}/Nope"),
        format!("{BASE}/Nope/recUSER000000001"),
        "appNOPENOPENOPE1/Users/recX".to_owned(),
        "appNOPENOPENOPE1/Users".to_owned(),
    ] {
        let (status, body) = api.get(&path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(body, model_not_found, "{path}");
    }
    let (status, body) = api.get("nothing/here/at/all/really").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "NOT_FOUND"}));
}

#[tokio::test]
async fn missing_or_wrong_api_key_is_401() {
    let server = start().await;
    let client = reqwest::Client::new();
    let url = format!("{}/v0/{BASE}/Users", server.url());
    let expected =
        json!({"error": {"type": "AUTHENTICATION_REQUIRED", "message": "Authentication required"}});
    for request in [client.get(&url), client.get(&url).bearer_auth("keyWrong")] {
        let response = request.send().await.expect("answered");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.json::<Value>().await.expect("json"), expected);
    }
    let stats = server.calls();
    assert_eq!((stats.total, stats.unauthorized, stats.list), (2, 2, 0));
}

#[tokio::test]
async fn url_encoded_table_names_resolve() {
    let server = start().await;
    let (status, body) = Api::new(&server)
        .get(&format!("{BASE}/Invalidate%20Config"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["records"][0]["fields"]["key"], "webhook_url");
}

#[tokio::test]
async fn list_pages_in_insertion_order_with_opaque_offsets() {
    let server = start().await;
    let inserted: Vec<String> = (0..25)
        .map(|i| server.insert(BASE, "Events", fields(json!({"name": format!("e{i}")}))))
        .collect();
    let api = Api::new(&server);
    let mut seen = Vec::new();
    let mut offset: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("{BASE}/Events?pageSize=10");
        if let Some(offset) = &offset {
            path.push_str(&format!("&offset={}", offset.replace('/', "%2F")));
        }
        let (status, body) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        pages += 1;
        seen.extend(ids(&body));
        match body.get("offset").and_then(Value::as_str) {
            Some(next) => {
                assert!(next.starts_with("itr"), "{next}");
                offset = Some(next.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, inserted);
    assert_eq!(server.calls().list, 3);
}

#[tokio::test]
async fn invalid_offset_is_422_iterator_not_available() {
    let server = start().await;
    let (status, body) = Api::new(&server)
        .get(&format!("{BASE}/Users?offset=itrBOGUS%2FrecBOGUS"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["type"], "LIST_RECORDS_ITERATOR_NOT_AVAILABLE");
}

#[tokio::test]
async fn max_records_caps_the_total_across_pages() {
    let server = start().await;
    for i in 0..7 {
        server.insert(BASE, "Events", fields(json!({"name": format!("e{i}")})));
    }
    let api = Api::new(&server);
    let (_, first) = api
        .get(&format!("{BASE}/Events?maxRecords=5&pageSize=3"))
        .await;
    assert_eq!(ids(&first).len(), 3);
    let offset = first["offset"]
        .as_str()
        .expect("offset")
        .replace('/', "%2F");
    let (_, second) = api
        .get(&format!(
            "{BASE}/Events?maxRecords=5&pageSize=3&offset={offset}"
        ))
        .await;
    assert_eq!(ids(&second).len(), 2);
    assert!(second.get("offset").is_none());
}

#[tokio::test]
async fn fields_parameter_restricts_fields_and_rejects_unknown_names() {
    let server = start().await;
    let api = Api::new(&server);
    for key in ["fields[]", "fields%5B%5D"] {
        let (status, body) = api.get(&format!("{BASE}/Users?{key}=name&{key}=age")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body["records"][0]["fields"],
            json!({"name": "Ada", "age": 36})
        );
    }
    let (status, body) = api.get(&format!("{BASE}/Users?fields[]=x")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body,
        json!({"error": {"type": "UNKNOWN_FIELD_NAME", "message": "Unknown field name: \"x\""}})
    );
    // Declared but empty fields are known.
    let (status, _) = api.get(&format!("{BASE}/Events?fields[]=owner")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn filter_by_formula_matches_escaped_values_exactly_and_is_logged() {
    let server = start().await;
    let api = Api::new(&server);
    let client = reqwest::Client::new();
    let formula = r"{name}='O\'Brien'";
    let response = client
        .get(format!("{}/v0/{BASE}/Users", server.url()))
        .query(&[("filterByFormula", formula)])
        .bearer_auth(server.api_key())
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(ids(&body), vec!["recUSER000000002"]);
    assert_eq!(server.last_formula().as_deref(), Some(formula));

    let (_, body) = api
        .get(&format!("{BASE}/Users?filterByFormula=%7Bage%7D%3E40"))
        .await;
    assert_eq!(ids(&body), vec!["recUSER000000002", "recUSER000000003"]);
    assert_eq!(server.last_formulas().len(), 2);
}

#[tokio::test]
async fn invalid_formula_is_422_invalid_filter_by_formula() {
    let server = start().await;
    let (status, body) = Api::new(&server)
        .get(&format!(
            "{BASE}/Users?filterByFormula=%7Bname%7D%3D%27unterminated"
        ))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["type"], "INVALID_FILTER_BY_FORMULA");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("The formula for filtering records is invalid: "),
        "{message}"
    );
}

#[tokio::test]
async fn post_list_records_takes_a_long_formula_in_the_body() {
    let server = start().await;
    let wanted: Vec<String> = (0..100)
        .map(|i| server.insert(BASE, "Events", fields(json!({"name": format!("e{i}")}))))
        .collect();
    for i in 0..20 {
        server.insert(BASE, "Events", fields(json!({"name": format!("other{i}")})));
    }
    let formula = format!(
        "OR({})",
        wanted
            .iter()
            .map(|id| format!("RECORD_ID()='{id}'"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let (status, body) = Api::new(&server)
        .call(
            Method::POST,
            &format!("{BASE}/Events/listRecords"),
            Some(json!({"filterByFormula": formula, "fields": ["name"], "pageSize": 100})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), wanted);
    assert!(body.get("offset").is_none());
    assert_eq!(server.calls().list, 1);
}

#[tokio::test]
async fn sort_parameter_orders_records() {
    let server = start().await;
    let (_, body) = Api::new(&server)
        .get(&format!(
            "{BASE}/Users?sort[0][field]=age&sort[0][direction]=desc"
        ))
        .await;
    assert_eq!(
        ids(&body),
        vec!["recUSER000000003", "recUSER000000002", "recUSER000000001"]
    );
}

#[tokio::test]
async fn create_one_or_many_records_and_refuse_more_than_ten() {
    let server = start().await;
    let api = Api::new(&server);
    let (status, one) = api
        .call(
            Method::POST,
            &format!("{BASE}/Users"),
            Some(json!({"fields": {"name": "Lin"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let id = one["id"].as_str().expect("id");
    assert!(id.starts_with("rec") && id.len() == 17, "{id}");
    assert_eq!(one["fields"], json!({"name": "Lin"}));
    assert!(server.get(BASE, "Users", id).is_some());

    let (status, many) = api
        .call(
            Method::POST,
            &format!("{BASE}/Users"),
            Some(json!({"records": [{"fields": {"name": "A"}}, {"fields": {"name": "B"}}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&many).len(), 2);
    assert_eq!(server.len(BASE, "Users"), 6);

    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"fields": {"name": i.to_string()}}))
        .collect();
    let (status, body) = api
        .call(
            Method::POST,
            &format!("{BASE}/Users"),
            Some(json!({"records": eleven})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["type"], "INVALID_RECORDS");

    let (status, body) = api
        .call(
            Method::POST,
            &format!("{BASE}/Nope"),
            Some(json!({"fields": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error"]["type"],
        "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"
    );
    assert_eq!(server.calls().create, 4);
}

#[tokio::test]
async fn malformed_json_body_is_422_invalid_request_unknown() {
    let server = start().await;
    let response = reqwest::Client::new()
        .post(format!("{}/v0/{BASE}/Users", server.url()))
        .bearer_auth(server.api_key())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({"error": {"type": "INVALID_REQUEST_UNKNOWN",
                         "message": "Invalid request: parameter validation failed. Check your request data."}})
    );
}

#[tokio::test]
async fn patch_merges_put_replaces_and_missing_ids_change_nothing() {
    let server = start().await;
    let api = Api::new(&server);
    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("{BASE}/Users/recUSER000000001"),
            Some(json!({"fields": {"age": 37, "email": null}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["fields"], json!({"name": "Ada", "age": 37}));

    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("{BASE}/Users"),
            Some(json!({"records": [
                {"id": "recUSER000000002", "fields": {"age": 42}},
                {"id": "recUSER000000003", "fields": {"age": 86}}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["records"][1]["fields"]["age"], 86);

    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("{BASE}/Users"),
            Some(json!({"records": [
                {"id": "recUSER000000002", "fields": {"age": 1}},
                {"id": "recMISSINGMISSIN", "fields": {"age": 1}}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "NOT_FOUND"}));
    let unchanged = server
        .get(BASE, "Users", "recUSER000000002")
        .expect("record");
    assert_eq!(unchanged.fields["age"], 42);

    let (status, _) = api
        .call(
            Method::PATCH,
            &format!("{BASE}/Users/recMISSINGMISSIN"),
            Some(json!({"fields": {"age": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = api
        .call(
            Method::PUT,
            &format!("{BASE}/Users/recUSER000000003"),
            Some(json!({"fields": {"name": "Hopper"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["fields"], json!({"name": "Hopper"}));
    assert_eq!(server.calls().update, 5);
}

#[tokio::test]
async fn delete_one_and_many_and_a_missing_id_deletes_nothing() {
    let server = start().await;
    let api = Api::new(&server);
    let (status, body) = api
        .call(
            Method::DELETE,
            &format!("{BASE}/Users/recUSER000000001"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"id": "recUSER000000001", "deleted": true}));
    let (status, body) = api
        .call(
            Method::DELETE,
            &format!("{BASE}/Users/recUSER000000001"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "NOT_FOUND"}));

    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("{BASE}/Users?records[]=recUSER000000002&records[]=recMISSINGMISSIN"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(server.len(BASE, "Users"), 2);

    let (status, body) = api
        .call(
            Method::DELETE,
            &format!("{BASE}/Users?records%5B%5D=recUSER000000002&records%5B%5D=recUSER000000003"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"records": [{"id": "recUSER000000002", "deleted": true},
                           {"id": "recUSER000000003", "deleted": true}]})
    );
    assert_eq!(server.len(BASE, "Users"), 0);

    let eleven: String = (0..11).map(|i| format!("records[]=rec{i}&")).collect();
    let (status, body) = api
        .call(Method::DELETE, &format!("{BASE}/Users?{eleven}"), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["type"], "INVALID_RECORDS");
    assert_eq!(server.calls().delete, 5);
}

#[tokio::test]
async fn direct_access_is_not_counted_and_every_change_is_logged_in_order() {
    let server = start().await;
    let start_seq = server.last_change_seq();
    assert_eq!(start_seq, 4, "seeding logs one change per record");
    let id = server.insert(BASE, "Events", fields(json!({"name": "Launch"})));
    assert!(server.update(
        BASE,
        "Events",
        &id,
        fields(json!({"owner": ["recUSER000000001"]}))
    ));
    assert!(!server.update(BASE, "Events", "recMISSINGMISSIN", Map::new()));
    let api = Api::new(&server);
    let (status, _) = api
        .call(Method::DELETE, &format!("{BASE}/Events/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!server.remove(BASE, "Events", &id));
    assert!(server.insert_with_id(BASE, "Events", "recFIXEDFIXEDFIX", Map::new()));
    assert!(!server.insert_with_id(
        BASE,
        "Events",
        "recFIXEDFIXEDFIX",
        fields(json!({"name": "x"}))
    ));

    let changes = server.changes_since(start_seq);
    let kinds: Vec<ChangeKind> = changes.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ChangeKind::Created,
            ChangeKind::Changed,
            ChangeKind::Destroyed,
            ChangeKind::Created,
            ChangeKind::Changed
        ]
    );
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(
        changes[2].previous.as_ref().map(|r| r.id.as_str()),
        Some(id.as_str())
    );
    assert_eq!(changes[2].table, "Events");
    let stats = server.calls();
    assert_eq!((stats.total, stats.delete), (1, 1));
}

#[tokio::test]
async fn counters_are_kept_per_base_and_reset() {
    let server = start().await;
    let api = Api::new(&server);
    api.get(&format!("{BASE}/Users/recUSER000000001")).await;
    api.get(&format!("{OTHER_BASE}/Things")).await;
    api.get(&format!("{OTHER_BASE}/Things")).await;
    assert_eq!(server.calls().total, 3);
    assert_eq!(server.calls_for(BASE).get, 1);
    assert_eq!(server.calls_for(OTHER_BASE).list, 2);
    server.reset_calls();
    assert_eq!(server.calls().total, 0);
    assert_eq!(server.calls_for(OTHER_BASE).list, 0);
    assert!(server.last_formulas().is_empty());
}

#[tokio::test]
async fn over_the_limit_requests_get_429_and_are_counted() {
    let server = AirtableServer::builder()
        .rate_limit(Some(5))
        .seed_json(&seed())
        .start()
        .await
        .expect("server starts");
    let client = reqwest::Client::new();
    let url = format!("{}/v0/{BASE}/Users", server.url());
    let requests = (0..8).map(|_| {
        let request = client.get(&url).bearer_auth(server.api_key());
        tokio::spawn(async move {
            let response = request.send().await.expect("answered");
            let status = response.status();
            (status, response.json::<Value>().await.expect("json"))
        })
    });
    let mut limited = Vec::new();
    for handle in requests.collect::<Vec<_>>() {
        let (status, body) = handle.await.expect("task");
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited.push(body);
        } else {
            assert_eq!(status, StatusCode::OK);
        }
    }
    assert_eq!(limited.len(), 3);
    assert_eq!(
        limited[0],
        json!({"errors": [{"error": "RATE_LIMIT_REACHED",
                           "message": "Rate limit exceeded. Please try again later"}]})
    );
    let stats = server.calls();
    assert_eq!((stats.total, stats.list, stats.rate_limited), (8, 8, 3));
    assert_eq!(stats.served(), 5);

    // Another base has its own window.
    let other = client
        .get(format!("{}/v0/{OTHER_BASE}/Things", server.url()))
        .bearer_auth(server.api_key())
        .send()
        .await
        .expect("answered");
    assert_eq!(other.status(), StatusCode::OK);
    // Direct access bypasses the limit.
    assert_eq!(server.len(BASE, "Users"), 3);
    // The window slides: a second later requests pass again.
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    let again = client
        .get(&url)
        .bearer_auth(server.api_key())
        .send()
        .await
        .expect("answered");
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn latency_is_honoured() {
    let server = start().await;
    server.set_latency(Duration::from_millis(150), Duration::from_millis(200));
    let api = Api::new(&server);
    let started = Instant::now();
    let (status, _) = api.get(&format!("{BASE}/Users/recUSER000000001")).await;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    // Set back to none, the next call is answered at once: a latency of an hour set and then
    // cleared must not hold it (a deadline against the hour, not a bound on the server's speed).
    server.set_latency(Duration::from_secs(3_600), Duration::from_secs(3_600));
    server.set_latency(Duration::ZERO, Duration::ZERO);
    let (status, _) = tokio::time::timeout(
        Duration::from_secs(30),
        api.get(&format!("{BASE}/Users/recUSER000000001")),
    )
    .await
    .expect("the latency set back to zero was not applied");
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn injected_faults_answer_airtable_shaped_errors_then_stop() {
    let server = start().await;
    let api = Api::new(&server);
    let path = format!("{BASE}/Users/recUSER000000001");
    server.fail_next(2, 503);
    for _ in 0..2 {
        let (status, body) = api.get(&path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["type"], "SERVICE_UNAVAILABLE");
    }
    assert_eq!(api.get(&path).await.0, StatusCode::OK);

    server.fail_next(1, 429);
    let (status, body) = api.get(&path).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["errors"][0]["error"], "RATE_LIMIT_REACHED");

    server.fail_ratio(1.0, 500);
    let (status, body) = api.get(&path).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["type"], "SERVER_ERROR");
    server.fail_ratio(0.0, 500);
    assert_eq!(api.get(&path).await.0, StatusCode::OK);

    let stats = server.calls();
    assert_eq!(
        (stats.errors_injected, stats.rate_limited, stats.get),
        (4, 0, 6)
    );
}

#[tokio::test]
async fn seed_from_file_and_bad_seed_fails_to_start() {
    let dir = std::env::temp_dir().join(format!("podium-local-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("seed.json");
    std::fs::write(&path, seed().to_string()).expect("seed written");
    let server = AirtableServer::builder()
        .seed_file(&path)
        .seed(SeedData::new().with_record_id(BASE, "Extra", "recEXTRAEXTRAEXT", json!({"a": 1})))
        .start()
        .await
        .expect("server starts");
    assert_eq!(server.len(BASE, "Users"), 3);
    assert_eq!(server.ids(BASE, "Extra"), vec!["recEXTRAEXTRAEXT"]);
    assert_eq!(server.bases(), vec![OTHER_BASE.to_owned(), BASE.to_owned()]);
    std::fs::remove_dir_all(&dir).expect("temp dir removed");

    let bad = AirtableServer::builder()
        .seed_json(&json!({"bases": {BASE: {"Users": "nope"}}}))
        .start()
        .await;
    assert!(matches!(
        bad,
        Err(podium_local::HarnessError::InvalidSeed(_))
    ));
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let server = start().await;
    let url = format!("{}/v0/{BASE}/Users", server.url());
    server.shutdown().await;
    let result = reqwest::Client::new()
        .get(url)
        .bearer_auth(server.api_key())
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(result.is_err(), "{result:?}");
}

const MODEL_NOT_FOUND: &str = "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND";

#[tokio::test]
async fn each_call_needs_its_scope_and_a_missing_one_is_403() {
    let server = AirtableServer::builder()
        .rate_limit(None)
        .seed_json(&seed())
        .token(Token::new("patRead").scopes([RECORDS_READ]))
        .token(Token::new("patWrite").scopes([RECORDS_WRITE]))
        .token(Token::new("patHooks").scopes([WEBHOOK_MANAGE]))
        .token(Token::new("patHooksRead").scopes([WEBHOOK_MANAGE, RECORDS_READ]))
        .token(Token::new("patSchema").scopes([SCHEMA_READ]))
        .start()
        .await
        .expect("server starts");
    let api = Api::new(&server);
    let record = format!("{BASE}/Users/recUSER000000001");
    let table = format!("{BASE}/Users");
    let hooks = format!("bases/{BASE}/webhooks");
    let schema = format!("meta/bases/{BASE}/tables");
    let spec =
        |types: Value| json!({"specification": {"options": {"filters": {"dataTypes": types}}}});
    let cases: Vec<(&str, Method, String, Option<Value>, StatusCode)> = vec![
        ("patRead", Method::GET, record.clone(), None, StatusCode::OK),
        ("patRead", Method::GET, table.clone(), None, StatusCode::OK),
        (
            "patRead",
            Method::DELETE,
            record.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "patRead",
            Method::PATCH,
            record.clone(),
            Some(json!({"fields": {"age": 1}})),
            StatusCode::FORBIDDEN,
        ),
        (
            "patRead",
            Method::GET,
            schema.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "patRead",
            Method::GET,
            hooks.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "patWrite",
            Method::GET,
            record.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "patWrite",
            Method::POST,
            table.clone(),
            Some(json!({"fields": {"name": "New"}})),
            StatusCode::OK,
        ),
        ("patHooks", Method::GET, hooks.clone(), None, StatusCode::OK),
        // Creating a webhook also needs the scopes of its data types.
        (
            "patHooks",
            Method::POST,
            hooks.clone(),
            Some(spec(json!(["tableData"]))),
            StatusCode::FORBIDDEN,
        ),
        (
            "patHooksRead",
            Method::POST,
            hooks.clone(),
            Some(spec(json!(["tableFields"]))),
            StatusCode::FORBIDDEN,
        ),
        (
            "patHooksRead",
            Method::POST,
            hooks.clone(),
            Some(spec(json!(["tableData"]))),
            StatusCode::OK,
        ),
        (
            "patSchema",
            Method::GET,
            schema.clone(),
            None,
            StatusCode::OK,
        ),
        (
            "patSchema",
            Method::GET,
            record.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
    ];
    let mut refused = 0;
    for (key, method, path, body, expected) in cases {
        let label = format!("{key} {method} {path}");
        let (status, answer) = api.call_as(key, method, &path, body).await;
        assert_eq!(status, expected, "{label}: {answer}");
        if expected == StatusCode::FORBIDDEN {
            refused += 1;
            assert_eq!(answer["error"]["type"], MODEL_NOT_FOUND, "{label}");
        }
    }
    assert_eq!(server.calls().forbidden, refused);
    assert_eq!(
        server.len(BASE, "Users"),
        4,
        "refused calls changed nothing"
    );
    assert_eq!(
        server
            .get(BASE, "Users", "recUSER000000001")
            .expect("kept")
            .fields["age"],
        json!(36)
    );

    // Listing payloads needs the data-type scopes too.
    let hook = server.webhooks(BASE).pop().expect("one webhook");
    let payloads = format!("{hooks}/{}/payloads", hook.id);
    let (status, _) = api.call_as("patHooks", Method::GET, &payloads, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api
        .call_as("patHooksRead", Method::GET, &payloads, None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn whoami_answers_the_user_with_email_and_scopes_as_the_token_allows() {
    let server = AirtableServer::builder()
        .seed_json(&seed())
        .token(Token::new("patNoEmail").scopes([RECORDS_READ, WEBHOOK_MANAGE]))
        .token(
            Token::new("patPersonal")
                .personal()
                .user("usrOTHEROTHER001", "o@example.com"),
        )
        .start()
        .await
        .expect("server starts");
    let api = Api::new(&server);
    let mut all: Vec<&str> = ALL_SCOPES.to_vec();
    all.sort_unstable();
    let (status, body) = api.get("meta/whoami").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"id": DEFAULT_USER_ID, "email": DEFAULT_USER_EMAIL, "scopes": all})
    );
    let (_, body) = api
        .call_as("patNoEmail", Method::GET, "meta/whoami", None)
        .await;
    assert_eq!(
        body,
        json!({"id": DEFAULT_USER_ID, "scopes": [RECORDS_READ, WEBHOOK_MANAGE]}),
        "no email without user.email:read"
    );
    let (_, body) = api
        .call_as("patPersonal", Method::GET, "meta/whoami", None)
        .await;
    assert_eq!(
        body,
        json!({"id": "usrOTHEROTHER001", "email": "o@example.com"}),
        "a personal access token's scopes are not reported"
    );
    let (status, _) = api
        .call_as("patWRONG", Method::GET, "meta/whoami", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!((server.calls().total, server.calls().unauthorized), (4, 1));
}

#[tokio::test]
async fn tokens_with_unknown_scopes_or_empty_keys_are_refused() {
    for token in [
        Token::new("patTypo").scopes(["data.records:reed"]),
        Token::new(" "),
    ] {
        let started = AirtableServer::builder().token(token.clone()).start().await;
        assert!(
            matches!(started, Err(podium_local::HarnessError::InvalidToken(_))),
            "{token:?}"
        );
    }
    let server = start().await;
    let typo = server.add_token(Token::new("patTypo").scopes(["webhooks:manage"]));
    assert!(
        matches!(typo, Err(podium_local::HarnessError::InvalidToken(ref m)) if m.contains("webhooks:manage"))
    );
    let (status, _) = Api::new(&server)
        .call_as("patTypo", Method::GET, &format!("{BASE}/Users"), None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the refused token was not added"
    );
}

#[tokio::test]
async fn add_token_changes_a_tokens_scopes_at_once() {
    let server = start().await;
    let api = Api::new(&server);
    let key = server.api_key();
    let path = format!("{BASE}/Users/recUSER000000001");
    server
        .add_token(Token::new(key.clone()).scopes([RECORDS_WRITE]))
        .expect("token replaced");
    assert_eq!(api.get(&path).await.0, StatusCode::FORBIDDEN);
    server.add_token(Token::new(key)).expect("token replaced");
    assert_eq!(api.get(&path).await.0, StatusCode::OK);
}
