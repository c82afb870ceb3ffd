//! Over real sockets, on the whole app: every write needs `Authorization: Bearer <admin
//! token>`. Without it, or with another token, the answer is 401 and nothing changes: not the
//! record in (the local) Airtable, not the cache, not what a read answers.

mod common;

use podium_example::demo::{DEMO_BASE, FIRST_EVENT};

const PROJECT: &str = "recPRJ00000000001";

#[tokio::test]
async fn a_delete_without_the_admin_token_is_401_and_deletes_nothing() {
    let t = common::start(false).await;
    let airtable = t.app.airtable.as_ref().expect("the demo's local Airtable");
    let url = t.url(&format!("/projects/{PROJECT}"));
    let (status, before) = t.get_json(&format!("/projects/{PROJECT}")).await;
    assert_eq!(status, 200, "{before}");
    let keys_before = t.store_keys().await;

    let refused = [
        t.http.delete(&url),
        t.http
            .delete(&url)
            .bearer_auth("not-the-admin-token-0123456789"),
        t.http.delete(&url).header(
            "authorization",
            format!("Basic {}", t.app.admin_token.expose()),
        ),
        t.http
            .delete(&url)
            .bearer_auth(format!("{}x", t.app.admin_token.expose())),
        // Other writes on a record route are writes too, whatever the route makes of them.
        t.http.post(&url).body("{}"),
        t.http.patch(&url).body("{}"),
        t.http.put(&url).body("{}"),
    ];
    for request in refused {
        let response = request.send().await.expect("the app answers");
        assert_eq!(response.status(), 401);
        let challenge = response.headers().get("www-authenticate").cloned();
        assert_eq!(
            challenge.as_ref().and_then(|v| v.to_str().ok()),
            Some("Bearer realm=\"podium-example\"")
        );
        let body = response.text().await.unwrap_or_default();
        assert!(
            !body.contains(t.app.admin_token.expose()),
            "the token is in the answer"
        );
    }

    assert!(
        airtable.get(DEMO_BASE, "Projects", PROJECT).is_some(),
        "the record is still in Airtable"
    );
    assert_eq!(airtable.calls().delete, 0, "no delete reached Airtable");
    assert_eq!(t.store_keys().await, keys_before, "the cache is unchanged");
    let (status, after) = t.get_json(&format!("/projects/{PROJECT}")).await;
    assert_eq!((status, &after), (200, &before), "the record still reads");
}

#[tokio::test]
async fn a_delete_with_the_admin_token_deletes_the_record() {
    let t = common::start(false).await;
    let airtable = t.app.airtable.as_ref().expect("the demo's local Airtable");
    let path = format!("/events/{FIRST_EVENT}");
    assert_eq!(t.get_json(&path).await.0, 200);

    let response = t
        .http
        .delete(t.url(&path))
        .bearer_auth(t.app.admin_token.expose())
        .send()
        .await
        .expect("the app answers");
    assert_eq!(response.status(), 204);
    assert!(
        airtable.get(DEMO_BASE, "Events", FIRST_EVENT).is_none(),
        "the record is gone from Airtable"
    );
    assert_eq!(t.get_json(&path).await.0, 404, "and from the app");
}
