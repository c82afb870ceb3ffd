//! RFC 9111 §4.2 freshness, in the standards mode (`freshness_from_headers`) and, where it
//! differs, the app mode.

mod common;

use common::origin::{http_date, Mode};
use common::{harness, StoreKind};

/// Two GETs of `/r` through a layer in `mode` whose origin answers `status` and `headers`;
/// how many reached the origin.
async fn origin_calls(mode: Mode, status: u16, headers: &[(&str, &str)]) -> usize {
    let h = harness(StoreKind::Memory).await;
    common::origin::origin_calls(mode.builder(&h.cache).build(), status, headers, &[]).await
}

/// RFC 9111 §4.2: a response with no freshness (no `max-age`, `Expires` or heuristic) is not
/// served from the cache in the standards mode; the app mode keeps it for its TTL.
#[tokio::test]
async fn rfc9111_4_2_a_response_without_freshness_is_not_reused_in_standards_mode() {
    assert_eq!(origin_calls(Mode::Standards, 200, &[]).await, 2);
    assert_eq!(
        origin_calls(Mode::App, 200, &[]).await,
        1,
        "app mode: the TTL"
    );
}

/// RFC 9111 §4.2.1: `max-age` gives the freshness lifetime.
#[tokio::test]
async fn rfc9111_4_2_1_max_age_makes_a_response_reusable() {
    for mode in Mode::BOTH {
        let calls = origin_calls(mode, 200, &[("cache-control", "max-age=60")]).await;
        assert_eq!(calls, 1, "{mode:?}");
    }
}

/// RFC 9111 §4.2.1 and §5.2.2.10: a shared cache uses `s-maxage` before `max-age`.
#[tokio::test]
async fn rfc9111_5_2_2_10_s_maxage_wins_over_max_age_in_a_shared_cache() {
    for mode in Mode::BOTH {
        let calls = origin_calls(mode, 200, &[("cache-control", "max-age=0, s-maxage=60")]).await;
        assert_eq!(calls, 1, "{mode:?}");
        let calls = origin_calls(mode, 200, &[("cache-control", "max-age=60, s-maxage=0")]).await;
        assert_eq!(calls, 2, "{mode:?}");
    }
}

/// RFC 9111 §4.2.1: `Expires` minus `Date` is the freshness lifetime; one in the past is stale.
#[tokio::test]
async fn rfc9111_4_2_1_expires_counts_from_date() {
    let (future, now, past) = (http_date(120), http_date(0), http_date(-120));
    let fresh = [("date", now.as_str()), ("expires", future.as_str())];
    let stale = [("date", now.as_str()), ("expires", past.as_str())];
    for mode in Mode::BOTH {
        assert_eq!(origin_calls(mode, 200, &fresh).await, 1, "{mode:?}");
        assert_eq!(origin_calls(mode, 200, &stale).await, 2, "{mode:?}");
    }
}

/// RFC 9111 §4.2.2: a heuristically cacheable status with `Last-Modified` and no explicit
/// freshness gets heuristic freshness (a fraction of the time since it was modified).
#[tokio::test]
async fn rfc9111_4_2_2_heuristic_freshness_from_last_modified() {
    let modified = http_date(-10 * 24 * 3600);
    let headers = [("last-modified", modified.as_str())];
    assert_eq!(origin_calls(Mode::Standards, 200, &headers).await, 1);
    assert_eq!(origin_calls(Mode::Standards, 404, &headers).await, 1);
    // 302 is not heuristically cacheable (RFC 9110 §15.1): only explicit freshness stores it.
    assert_eq!(origin_calls(Mode::Standards, 302, &headers).await, 2);
}

/// RFC 9111 §3: any final status with explicit freshness may be stored, not only a list.
#[tokio::test]
async fn rfc9111_3_any_final_status_with_explicit_freshness_is_stored() {
    for mode in Mode::BOTH {
        for status in [302, 307, 400, 500] {
            let calls = origin_calls(mode, status, &[("cache-control", "max-age=60")]).await;
            assert_eq!(calls, 1, "{mode:?} {status}");
        }
    }
}

/// RFC 9111 §5.2.2.4 / §5.2.2.5: `no-store` is never stored; `no-cache` without a validator
/// cannot be reused.
#[tokio::test]
async fn rfc9111_5_2_2_no_store_and_unvalidatable_no_cache_are_not_reused() {
    for mode in Mode::BOTH {
        let calls = origin_calls(mode, 200, &[("cache-control", "max-age=60, no-store")]).await;
        assert_eq!(calls, 2, "{mode:?}");
        let calls = origin_calls(mode, 200, &[("cache-control", "max-age=60, no-cache")]).await;
        assert_eq!(calls, 2, "{mode:?}");
    }
}

/// RFC 9111 §5.2.2.3: with `must-understand`, a status whose caching rules the cache
/// implements is stored by them (`no-store` is ignored); any other status is not stored.
#[tokio::test]
async fn rfc9111_5_2_2_3_must_understand_overrides_no_store_for_understood_statuses() {
    let cc = [("cache-control", "max-age=3600, no-store, must-understand")];
    for mode in Mode::BOTH {
        assert_eq!(origin_calls(mode, 200, &cc).await, 1, "{mode:?}: 200");
        assert_eq!(origin_calls(mode, 599, &cc).await, 2, "{mode:?}: 599");
        let plain_no_store = [("cache-control", "max-age=3600, no-store")];
        assert_eq!(
            origin_calls(mode, 200, &plain_no_store).await,
            2,
            "{mode:?}"
        );
    }
}

/// RFC 9111 §4.2.1: a directive given twice keeps its first value (on one line or several);
/// §5.2: whitespace around `=` is not the directive's syntax, so it is ignored.
#[tokio::test]
async fn rfc9111_4_2_1_duplicate_directives_keep_the_first_value() {
    let mode = Mode::Standards;
    let one_line = [("cache-control", "max-age=1800, max-age=0")];
    assert_eq!(origin_calls(mode, 200, &one_line).await, 1, "same line");
    let lines = [
        ("cache-control", "max-age=1800"),
        ("cache-control", "max-age=0"),
    ];
    assert_eq!(origin_calls(mode, 200, &lines).await, 1, "separate lines");
    let stale_first = [("cache-control", "max-age=0, max-age=1800")];
    assert_eq!(
        origin_calls(mode, 200, &stale_first).await,
        2,
        "stale first"
    );
    for spaced in ["max-age =3600", "max-age= 3600"] {
        let calls = origin_calls(mode, 200, &[("cache-control", spaced)]).await;
        assert_eq!(calls, 2, "{spaced}");
    }
    let quoted = [("cache-control", "max-age=\"3600\"")];
    assert_eq!(origin_calls(mode, 200, &quoted).await, 1, "a quoted value");
}

/// RFC 9110 §5.6.4 (quoted strings) with RFC 9111 §5.2: a `max-age` inside a quoted argument
/// is not a directive, before or after the real one.
#[tokio::test]
async fn rfc9111_5_2_a_directive_inside_a_quoted_string_is_not_read() {
    for cc in [
        "extension=\"max-age=3600\", max-age=0",
        "max-age=0, extension=\"a, max-age=3600\"",
    ] {
        let calls = origin_calls(Mode::Standards, 200, &[("cache-control", cc)]).await;
        assert_eq!(calls, 2, "{cc}");
    }
}

/// RFC 9111 §4.2.2 and RFC 9110 §15.1: every heuristically cacheable status gets heuristic
/// freshness from `Last-Modified` in the standards mode; others (here 302, 500) do not.
#[tokio::test]
async fn rfc9110_15_1_heuristically_cacheable_statuses_get_heuristic_freshness() {
    let modified = http_date(-100_000);
    let headers = [("last-modified", modified.as_str())];
    for status in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
        let calls = origin_calls(Mode::Standards, status, &headers).await;
        assert_eq!(calls, 1, "{status}: heuristically cacheable");
    }
    for status in [302, 500] {
        let calls = origin_calls(Mode::Standards, status, &headers).await;
        assert_eq!(calls, 2, "{status}: not heuristically cacheable");
    }
}

/// RFC 9111 §4.2.1 / §4.2.3: without `Date` the response's arrival stands in for it: an
/// `Expires` in the future is counted from then, and the apparent age is zero.
#[tokio::test]
async fn rfc9111_4_2_3_a_missing_date_counts_from_the_response_time() {
    let expires = http_date(3600);
    for mode in Mode::BOTH {
        let calls = origin_calls(mode, 200, &[("expires", expires.as_str())]).await;
        assert_eq!(calls, 1, "{mode:?}");
    }
}
