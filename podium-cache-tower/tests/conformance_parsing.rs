//! Parsing: HTTP-dates in all three forms (RFC 9110 §5.6.7), invalid dates (RFC 9111 §5.3),
//! `Vary` matching (RFC 9111 §4.1), directive syntax and the fields stored or never stored
//! (§3.1, §5.2.2.4, §5.2.2.7).

mod common;

use common::origin::{http_date, origin, origin_calls, request, respond, Mode};
use common::{harness, send, Reply, StoreKind};

async fn calls_with_expires(mode: Mode, expires: &str) -> usize {
    let h = harness(StoreKind::Memory).await;
    let layer = mode.builder(&h.cache).build();
    origin_calls(layer, 200, &[("expires", expires)], &[]).await
}

/// RFC 9110 §5.6.7: a recipient parses IMF-fixdate, RFC 850 and asctime dates, in any case
/// and whatever their day name.
#[tokio::test]
async fn rfc9110_5_6_7_expires_in_all_three_date_forms_and_any_case() {
    let imf = http_date(3600);
    let at = httpdate::parse_http_date(&imf).expect("date");
    let t = chrono::DateTime::<chrono::Utc>::from(at);
    let rfc850 = t.format("%A, %d-%b-%y %H:%M:%S GMT").to_string();
    let asctime = t.format("%a %b %e %H:%M:%S %Y").to_string();
    // A day name that does not match the date (the name only repeats what the date says).
    let other_day = (t + chrono::Duration::days(1)).format("%a").to_string();
    let wrong_day = format!("{other_day}{}", &asctime[3..]);
    for mode in Mode::BOTH {
        for expires in [
            imf.clone(),
            rfc850.clone(),
            asctime.clone(),
            imf.to_lowercase(),
            wrong_day.clone(),
        ] {
            assert_eq!(
                calls_with_expires(mode, &expires).await,
                1,
                "{mode:?}: {expires}"
            );
        }
    }
}

/// RFC 9111 §5.3: an invalid `Expires` (e.g. `0`) means already expired.
#[tokio::test]
async fn rfc9111_5_3_an_invalid_expires_means_expired() {
    for mode in Mode::BOTH {
        for expires in ["0", "never", "Thu, 32 Foo 2099 99:00:00 GMT"] {
            assert_eq!(
                calls_with_expires(mode, expires).await,
                2,
                "{mode:?}: {expires}"
            );
        }
    }
}

/// RFC 9111 §4.1: varied request headers match after normalisation (whitespace between list
/// members, combined field lines, the case of case-insensitive values).
#[tokio::test]
async fn rfc9111_4_1_vary_values_are_normalised_before_matching() {
    for mode in Mode::BOTH {
        let h = harness(StoreKind::Memory).await;
        let (app, log) = origin(mode.builder(&h.cache).build(), |n, _| {
            respond(
                200,
                &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")],
                &format!("run {n}"),
            )
        });
        let first = send(
            &app,
            request("GET", "/r", &[("accept-encoding", "gzip, br")]),
        )
        .await;
        for same in ["gzip,br", "gzip ,  br", "GZIP, BR"] {
            let reply = send(&app, request("GET", "/r", &[("accept-encoding", same)])).await;
            assert_eq!(
                reply.text(),
                first.text(),
                "{mode:?}: `{same}` did not match"
            );
        }
        let two_lines = send(
            &app,
            request(
                "GET",
                "/r",
                &[("accept-encoding", "gzip"), ("accept-encoding", "br")],
            ),
        )
        .await;
        assert_eq!(
            two_lines.text(),
            first.text(),
            "{mode:?}: field lines not combined"
        );
        let other = send(&app, request("GET", "/r", &[("accept-encoding", "br")])).await;
        assert_ne!(other.text(), first.text(), "{mode:?}");
        assert_eq!(log.count(), 2);
    }
}

/// RFC 9111 §4.1: `Vary: *` never matches.
#[tokio::test]
async fn rfc9111_4_1_vary_star_never_matches() {
    for mode in Mode::BOTH {
        let h = harness(StoreKind::Memory).await;
        let (app, log) = origin(mode.builder(&h.cache).build(), |n, _| {
            respond(
                200,
                &[("cache-control", "max-age=60"), ("vary", "*")],
                &format!("run {n}"),
            )
        });
        send(&app, request("GET", "/r", &[])).await;
        send(&app, request("GET", "/r", &[])).await;
        assert_eq!(log.count(), 2, "{mode:?}");
    }
}

/// Stores `/r` from an origin answering `headers`: the response that filled the store, then
/// the stored response as a hit.
async fn stored_replies(
    mode: Mode,
    headers: &'static [(&'static str, &'static str)],
) -> (Reply, Reply) {
    let h = harness(StoreKind::Memory).await;
    let (app, log) = origin(mode.builder(&h.cache).build(), move |_, _| {
        respond(200, headers, "x")
    });
    let miss = send(&app, request("GET", "/r", &[])).await;
    let hit = send(&app, request("GET", "/r", &[])).await;
    assert_eq!(log.count(), 1, "{mode:?}: the response was not reused");
    (miss, hit)
}

async fn stored_reply(mode: Mode, headers: &'static [(&'static str, &'static str)]) -> Reply {
    stored_replies(mode, headers).await.1
}

/// RFC 9111 §3.1: a cache does not store the fields `Connection` names nor the proxy
/// authentication fields.
#[tokio::test]
async fn rfc9111_3_1_connection_listed_and_proxy_fields_are_not_stored() {
    for mode in Mode::BOTH {
        let hit = stored_reply(
            mode,
            &[
                ("cache-control", "max-age=3600"),
                ("connection", "a, b"),
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("proxy-authenticate", "Basic realm=\"x\""),
                ("proxy-authentication-info", "nextnonce=\"y\""),
            ],
        )
        .await;
        assert_eq!(hit.header("c"), "3", "{mode:?}");
        for name in ["a", "b", "proxy-authenticate", "proxy-authentication-info"] {
            assert!(
                hit.headers.get(name).is_none(),
                "{mode:?}: {name} was stored"
            );
        }
    }
}

/// RFC 9111 §5.2.2.4: the qualified `no-cache="a, b"` lets the response be reused, but never
/// with the listed fields unless validated: the layer stores it without them.
#[tokio::test]
async fn rfc9111_5_2_2_4_qualified_no_cache_stores_the_response_without_the_fields() {
    for mode in Mode::BOTH {
        let (miss, hit) = stored_replies(
            mode,
            &[
                ("cache-control", "no-cache=\"a, b\""),
                ("cache-control", "max-age=3600"),
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
            ],
        )
        .await;
        assert_eq!(
            (miss.header("a"), miss.header("b")),
            ("1", "2"),
            "{mode:?}: the fields were not forwarded with the response that filled the store"
        );
        assert_eq!(hit.header("c"), "3", "{mode:?}");
        assert!(hit.headers.get("a").is_none(), "{mode:?}: a was reused");
        assert!(hit.headers.get("b").is_none(), "{mode:?}: b was reused");
    }
}

/// RFC 9111 §5.2.2.7: the qualified `private="a"` keeps the listed field for one user: a
/// shared cache stores the rest of the response and not the field.
#[tokio::test]
async fn rfc9111_5_2_2_7_qualified_private_stores_the_response_without_the_field() {
    for mode in Mode::BOTH {
        let (miss, hit) = stored_replies(
            mode,
            &[
                ("cache-control", "private=\"a\", max-age=3600"),
                ("a", "1"),
                ("c", "3"),
            ],
        )
        .await;
        assert_eq!(miss.header("a"), "1", "{mode:?}: a was not forwarded");
        assert_eq!(hit.header("c"), "3", "{mode:?}");
        assert!(hit.headers.get("a").is_none(), "{mode:?}: a was stored");
    }
}

/// RFC 9111 §3.1: a cache stores every received field it is not told to leave out,
/// `Set-Cookie` included, in the standards mode; `no-cache="set-cookie"` keeps the cookie out
/// of the store (§5.2.2.4). The app mode stores no response that sets a cookie.
#[tokio::test]
async fn rfc9111_3_1_set_cookie_is_stored_with_the_response_in_standards_mode() {
    let hit = stored_reply(
        Mode::Standards,
        &[("cache-control", "max-age=3600"), ("set-cookie", "a=b")],
    )
    .await;
    assert_eq!(hit.header("set-cookie"), "a=b");

    let (miss, hit) = stored_replies(
        Mode::Standards,
        &[
            ("cache-control", "max-age=3600, no-cache=\"set-cookie\""),
            ("set-cookie", "a=b"),
        ],
    )
    .await;
    assert_eq!(
        miss.header("set-cookie"),
        "a=b",
        "the cookie reached its client"
    );
    assert!(
        hit.headers.get("set-cookie").is_none(),
        "the cookie was reused"
    );

    let h = harness(StoreKind::Memory).await;
    let app_mode = Mode::App.builder(&h.cache).build();
    let headers = [("cache-control", "max-age=3600"), ("set-cookie", "a=b")];
    assert_eq!(origin_calls(app_mode, 200, &headers, &[]).await, 2);
}

/// RFC 9111 §2 and §4: the standards mode keys a response by its target URI: different hosts
/// never share a response, and a query is matched as sent (the app mode sorts its pairs: an
/// app knows its parameters). The host's case does not matter (RFC 9110 §4.2.3).
#[tokio::test]
async fn rfc9111_4_the_target_uri_with_its_host_and_query_as_sent_is_the_key() {
    for mode in Mode::BOTH {
        let h = harness(StoreKind::Memory).await;
        let (app, log) = origin(mode.builder(&h.cache).build(), |n, _| {
            respond(
                200,
                &[("cache-control", "max-age=3600")],
                &format!("run {n}"),
            )
        });
        let get = |uri: &str, host: &str| request("GET", uri, &[("host", host)]);
        send(&app, get("/r?a=1&b=2", "one.example")).await;
        send(&app, get("/r?a=1&b=2", "ONE.example")).await;
        assert_eq!(log.count(), 1, "{mode:?}: the host's case made a new key");
        send(&app, get("/r?a=1&b=2", "two.example")).await;
        send(&app, get("/r?b=2&a=1", "one.example")).await;
        let expected = match mode {
            Mode::Standards => 3,
            Mode::App => 1,
        };
        assert_eq!(log.count(), expected, "{mode:?}");
    }
}
