//! Over real sockets, on the whole app: a default response tells no client whether (or when)
//! another read a record, here the user an auth check reads by e-mail; the admin token's holder
//! gets the details of what it asks.

mod common;

use podium_example::demo::FIRST_USER;

/// The detail headers no default response carries.
const DETAILS: [&str; 3] = ["x-cache-hits", "x-cache-misses", "x-airtable-calls"];

/// `(cache-status, x-cache, detail headers present)` of a GET of `path`.
async fn status_of(
    t: &common::TestApp,
    path: &str,
    token: Option<&str>,
) -> (String, String, Vec<&'static str>) {
    let mut request = t.http.get(t.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the app answers");
    assert_eq!(response.status(), 200, "{path}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let details = DETAILS
        .into_iter()
        .filter(|name| response.headers().contains_key(*name))
        .collect();
    (header("cache-status"), header("x-cache"), details)
}

#[tokio::test]
async fn a_default_response_reveals_no_other_clients_reads() {
    let t = common::start(false).await;
    // Someone signs in: the auth check reads Ada by e-mail. Another client then reads her by
    // id, and reads Grace (whom nobody read) by id: both answers say the same.
    status_of(&t, "/users/by-email/ada@example.com", None).await;
    let read = status_of(&t, &format!("/users/{FIRST_USER}"), None).await;
    let unread = status_of(&t, "/users/recUSR00000000002", None).await;
    assert_eq!(read, unread);
    assert_eq!(
        read,
        (
            "podium; fwd=miss; stored".to_owned(),
            "MISS".to_owned(),
            vec![]
        )
    );
    // The by-email URL again: a hit, as a CDN says, without `ttl=` or counts.
    let hit = status_of(&t, "/users/by-email/ada@example.com", None).await;
    assert_eq!(hit, ("podium; hit".to_owned(), "HIT".to_owned(), vec![]));

    // The admin token's holder sees what its request read.
    let token = t.app.admin_token.expose().to_owned();
    let (status, x_cache, details) = status_of(&t, "/users/recUSR00000000003", Some(&token)).await;
    assert_eq!(status, "podium; fwd=bypass; detail=private");
    assert_eq!(x_cache, "MISS");
    assert_eq!(details, DETAILS.to_vec());
}
