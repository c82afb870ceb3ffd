//! RFC 9111 §4.4: a non-error response to an unsafe method invalidates the stored responses
//! of its target URI and of the same-origin URIs in `Location` and `Content-Location`, for
//! every instance sharing the store. Over real sockets.

mod common;

use common::origin::{origin, request, respond, Mode};
use common::{harness, leave_this_millisecond, send, serve, StoreKind};
use podium_cache_tower::CacheLayer;

/// A layer over a counting origin: GETs answer `run N` fresh for a minute (varying on
/// `Accept-Language`), unsafe methods answer `status` with `headers`.
fn app(
    layer: CacheLayer,
    status: u16,
    headers: &'static [(&'static str, &'static str)],
) -> (axum::Router, common::origin::Log) {
    origin(layer, move |n, seen| {
        if seen.method == axum::http::Method::GET {
            respond(
                200,
                &[("cache-control", "max-age=60"), ("vary", "accept-language")],
                &format!("run {n}"),
            )
        } else {
            respond(status, headers, "done")
        }
    })
}

async fn get(client: &reqwest::Client, url: &str) -> String {
    client
        .get(url)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body")
}

/// RFC 9111 §4.4: POST, PUT, DELETE, PATCH (any unsafe method) invalidate the target URI.
#[tokio::test]
async fn rfc9111_4_4_unsafe_methods_invalidate_the_target_uri() {
    for mode in Mode::BOTH {
        let h = harness(StoreKind::Memory).await;
        let (router, log) = app(mode.builder(&h.cache).build(), 200, &[]);
        let base = serve(router).await;
        let client = reqwest::Client::new();
        let url = format!("{base}/things/1");
        for method in ["POST", "PUT", "DELETE", "PATCH", "PURGE-ISH"] {
            let before = get(&client, &url).await;
            assert_eq!(get(&client, &url).await, before, "{mode:?}: not stored");
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            client
                .request(method.clone(), &url)
                .send()
                .await
                .expect("unsafe request");
            // So that the refill below is reusable and the next round's "stored" check holds.
            leave_this_millisecond().await;
            let after = get(&client, &url).await;
            assert_ne!(
                after, before,
                "{mode:?}: {method} left the stored GET in place"
            );
        }
        assert!(log.count() >= 10);
    }
}

/// RFC 9111 §4.4: same-origin `Location` and `Content-Location` URIs are invalidated too; a
/// URI on another origin is not.
#[tokio::test]
async fn rfc9111_4_4_location_and_content_location_on_the_same_origin_are_invalidated() {
    let h = harness(StoreKind::Memory).await;
    let (router, _log) = app(
        Mode::Standards.builder(&h.cache).build(),
        201,
        &[
            ("location", "/things/2"),
            ("content-location", "3"),
            ("link", "</things/4>"),
        ],
    );
    let base = serve(router).await;
    let client = reqwest::Client::new();
    let urls: Vec<String> = (2..=4).map(|i| format!("{base}/things/{i}")).collect();
    let mut before = Vec::new();
    for url in &urls {
        before.push(get(&client, url).await);
    }
    client
        .post(format!("{base}/things/new"))
        .send()
        .await
        .expect("POST");
    assert_ne!(
        get(&client, &urls[0]).await,
        before[0],
        "Location not invalidated"
    );
    assert_ne!(
        get(&client, &urls[1]).await,
        before[1],
        "relative Content-Location not invalidated"
    );
    assert_eq!(
        get(&client, &urls[2]).await,
        before[2],
        "an unnamed URI was invalidated"
    );

    let (router, _log) = app(
        Mode::Standards.builder(&h.cache).build(),
        201,
        &[("location", "http://elsewhere.example/things/5")],
    );
    let base = serve(router).await;
    let url = format!("{base}/things/5");
    let stored = get(&client, &url).await;
    client
        .post(format!("{base}/things/new"))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        get(&client, &url).await,
        stored,
        "another origin's URI was invalidated"
    );
}

/// RFC 9111 §4.4: only a non-error response invalidates.
#[tokio::test]
async fn rfc9111_4_4_an_error_response_does_not_invalidate() {
    for mode in Mode::BOTH {
        let h = harness(StoreKind::Memory).await;
        let (router, _log) = app(mode.builder(&h.cache).build(), 500, &[]);
        let base = serve(router).await;
        let client = reqwest::Client::new();
        let url = format!("{base}/things/1");
        let stored = get(&client, &url).await;
        client.post(&url).send().await.expect("POST");
        assert_eq!(
            get(&client, &url).await,
            stored,
            "{mode:?}: a 500 invalidated"
        );
    }
}

/// RFC 9111 §4.4: the invalidation holds for every instance sharing the store and for every
/// variant (`Vary`) of the URI.
#[tokio::test]
async fn rfc9111_4_4_invalidation_reaches_every_instance_and_every_variant() {
    let h = harness(StoreKind::Redis).await;
    let other = h.second_instance().await;
    let (first, _) = app(Mode::Standards.builder(&h.cache).build(), 204, &[]);
    let (second, _) = app(Mode::Standards.builder(&other).build(), 204, &[]);
    let lang = |l: &'static str| [("accept-language", l)];
    let en = send(&first, request("GET", "/things/1", &lang("en")))
        .await
        .text();
    let fr = send(&first, request("GET", "/things/1", &lang("fr")))
        .await
        .text();
    assert_eq!(
        send(&second, request("GET", "/things/1", &lang("fr")))
            .await
            .text(),
        fr
    );
    send(&second, request("DELETE", "/things/1", &[])).await;
    let en_after = send(&first, request("GET", "/things/1", &lang("fr")))
        .await
        .text();
    assert_ne!(
        en_after, fr,
        "the fr variant survived another instance's DELETE"
    );
    assert_ne!(
        send(&first, request("GET", "/things/1", &lang("en")))
            .await
            .text(),
        en
    );
}

/// RFC 9111 §4.4 with per-principal keys: an unsafe request to a URI (from any principal, in
/// any instance sharing the store) invalidates every principal's stored response for it.
#[tokio::test]
async fn rfc9111_4_4_invalidation_reaches_every_principals_entry_in_every_instance() {
    let h = harness(StoreKind::Redis).await;
    let other = h.second_instance().await;
    let layer =
        |cache: &podium_cache_core::Cache| Mode::Standards.builder(cache).per_principal().build();
    let (first, _) = app(layer(&h.cache), 204, &[]);
    let (second, _) = app(layer(&other), 204, &[]);
    let ada = [("authorization", "Bearer ada")];
    let stored = send(&first, request("GET", "/things/1", &ada)).await.text();
    assert_eq!(
        send(&first, request("GET", "/things/1", &ada)).await.text(),
        stored,
        "not stored per principal"
    );
    send(
        &second,
        request("POST", "/things/1", &[("authorization", "Bearer bob")]),
    )
    .await;
    // So that the refill below is reusable (a refill in the POST's millisecond is not).
    leave_this_millisecond().await;
    let after = send(&first, request("GET", "/things/1", &ada)).await.text();
    assert_ne!(
        after, stored,
        "ada's entry survived bob's POST in another instance"
    );
    assert_eq!(
        send(&first, request("GET", "/things/1", &ada)).await.text(),
        after,
        "the answer after the POST is stored again"
    );
}
