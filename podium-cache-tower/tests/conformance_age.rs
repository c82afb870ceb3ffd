//! RFC 9111 §4.2.3: the current age of a response counts the origin's `Age`, the response
//! delay and the time it has been stored; it decides freshness and is sent in `Age`.

mod common;

use common::origin::{http_date, origin, pairs, request, respond, Mode};
use std::time::Duration;

use common::{harness, send, StoreKind};

fn age_of(reply: &common::Reply) -> u64 {
    reply
        .header("age")
        .parse()
        .unwrap_or_else(|_| panic!("no Age: {:?}", reply.headers))
}

/// RFC 9111 §4.2.3: the origin's `Age` is added to the resident time, on the miss that stores
/// the response and on every hit (the app mode's TTL is raised above it: it caps lifetimes).
#[tokio::test]
async fn rfc9111_4_2_3_age_from_origin_is_added_to_resident_time() {
    for mode in Mode::BOTH {
        let h = harness(StoreKind::Memory).await;
        let layer = mode
            .builder(&h.cache)
            .ttl(Duration::from_secs(10_000))
            .build();
        let (app, log) = origin(layer, |_, _| {
            respond(
                200,
                &[("cache-control", "max-age=5000"), ("age", "2000")],
                "x",
            )
        });
        let miss = send(&app, request("GET", "/r", &[])).await;
        assert!(
            age_of(&miss) >= 2000,
            "{mode:?}: miss said Age {}",
            miss.header("age")
        );
        let hit = send(&app, request("GET", "/r", &[])).await;
        assert!(hit.is_layer_hit(), "{mode:?}: {}", hit.cache_status());
        assert!(
            age_of(&hit) >= 2000,
            "{mode:?}: hit said Age {}",
            hit.header("age")
        );
        assert_eq!(log.count(), 1);
    }
}

/// RFC 9111 §4.2.3 / §4.2: a response whose `Age` exceeds its lifetime is stale on arrival
/// and is not served as fresh.
#[tokio::test]
async fn rfc9111_4_2_3_a_response_stale_on_arrival_is_not_served_fresh() {
    for mode in Mode::BOTH {
        let h = harness(StoreKind::Memory).await;
        let (app, log) = origin(mode.builder(&h.cache).build(), |n, _| {
            respond(
                200,
                &[("cache-control", "max-age=60"), ("age", "100")],
                &format!("run {n}"),
            )
        });
        send(&app, request("GET", "/r", &[])).await;
        let second = send(&app, request("GET", "/r", &[])).await;
        assert_eq!(
            log.count(),
            2,
            "{mode:?}: a stale response was served as fresh"
        );
        assert_eq!(second.text(), "run 2");
    }
}

/// RFC 9111 §4.2.3: the apparent age (`Date` to arrival) counts when it is larger: the
/// response is stale on arrival (kept only to be validated, by its `ETag`) and says its age.
#[tokio::test]
async fn rfc9111_4_2_3_apparent_age_from_date_counts() {
    for mode in Mode::BOTH {
        let h = harness(StoreKind::Memory).await;
        let date = http_date(-100);
        let headers = pairs(&[
            ("cache-control", "max-age=60"),
            ("date", &date),
            ("etag", "\"a\""),
        ]);
        let (app, log) = origin(mode.builder(&h.cache).build(), move |_, _| {
            respond(200, &headers, "x")
        });
        let first = send(&app, request("GET", "/r", &[])).await;
        assert!(
            age_of(&first) >= 99,
            "{mode:?}: Age {}",
            first.header("age")
        );
        send(&app, request("GET", "/r", &[])).await;
        assert_eq!(log.count(), 2, "{mode:?}");
    }
}

/// RFC 9111 §5.1: `Age` is digits; any other value is invalid and ignored. With several
/// values (on one line or several) the first is used (§4.2.1).
#[tokio::test]
async fn rfc9111_5_1_an_invalid_age_is_ignored_and_the_first_value_is_used() {
    let calls = |ages: &'static [&'static str]| async move {
        let h = harness(StoreKind::Memory).await;
        let mut headers = vec![("cache-control", "max-age=3600")];
        headers.extend(ages.iter().map(|a| ("age", *a)));
        let layer = Mode::Standards.builder(&h.cache).build();
        common::origin::origin_calls(layer, 200, &headers, &[]).await
    };
    for ignored in [
        &["abc"][..],
        &["-7200"],
        &["7200.0"],
        &["0, 7200"],
        &["0", "7200"],
    ] {
        assert_eq!(calls(ignored).await, 1, "Age {ignored:?} made it stale");
    }
    for stale in [&["7200, 0"][..], &["7200", "0"], &["2147483648"]] {
        assert_eq!(calls(stale).await, 2, "Age {stale:?} was not counted");
    }
}
