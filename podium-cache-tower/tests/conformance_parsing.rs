//! Parsing: HTTP-dates in all three forms (RFC 9110 §5.6.7), invalid dates (RFC 9111 §5.3),
//! and `Vary` matching (RFC 9111 §4.1).

mod common;

use common::origin::{http_date, origin, origin_calls, request, respond, Mode};
use common::{harness, send, StoreKind};

async fn calls_with_expires(mode: Mode, expires: &str) -> usize {
    let h = harness(StoreKind::Memory).await;
    let layer = mode.builder(&h.cache).build();
    origin_calls(layer, 200, &[("expires", expires)], &[]).await
}

/// RFC 9110 §5.6.7: a recipient parses IMF-fixdate, RFC 850 and asctime dates, in any case.
#[tokio::test]
async fn rfc9110_5_6_7_expires_in_all_three_date_forms_and_any_case() {
    let imf = http_date(3600);
    let at = httpdate::parse_http_date(&imf).expect("date");
    let t = chrono::DateTime::<chrono::Utc>::from(at);
    let rfc850 = t.format("%A, %d-%b-%y %H:%M:%S GMT").to_string();
    let asctime = t.format("%a %b %e %H:%M:%S %Y").to_string();
    for mode in Mode::BOTH {
        for expires in [
            imf.clone(),
            rfc850.clone(),
            asctime.clone(),
            imf.to_lowercase(),
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
