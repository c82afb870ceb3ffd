//! RFC 9213: targeted cache-control fields. `CDN-Cache-Control`, and a field configured for
//! this cache before it, take precedence over `Cache-Control` (and `Expires`).

mod common;

use common::origin::{origin_calls, Mode};
use common::{harness, StoreKind};
use podium_cache_tower::CacheLayerBuilder;

async fn calls(
    builder: impl Fn(&podium_cache_core::Cache) -> CacheLayerBuilder,
    headers: &[(&str, &str)],
) -> usize {
    let h = harness(StoreKind::Memory).await;
    origin_calls(builder(&h.cache).build(), 200, headers, &[]).await
}

/// RFC 9213 §2.2 / §3: `CDN-Cache-Control` is used instead of `Cache-Control` and `Expires`.
#[tokio::test]
async fn rfc9213_3_cdn_cache_control_takes_precedence_over_cache_control() {
    for mode in Mode::BOTH {
        let b = |c: &podium_cache_core::Cache| mode.builder(c);
        let stored = [
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ];
        assert_eq!(calls(b, &stored).await, 1, "{mode:?}");
        let refused = [
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "no-store"),
        ];
        assert_eq!(calls(b, &refused).await, 2, "{mode:?}");
        let expires = [
            ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ("cdn-cache-control", "max-age=60"),
        ];
        assert_eq!(
            calls(b, &expires).await,
            1,
            "{mode:?}: Expires was not ignored"
        );
    }
}

/// RFC 9213 §2.2: a field targeted at this cache is read first, in the configured order.
#[tokio::test]
async fn rfc9213_2_2_a_configured_targeted_field_comes_first() {
    let b = |c: &podium_cache_core::Cache| {
        Mode::Standards
            .builder(c)
            .targeted_cache_control("podium-cache-control")
    };
    let ours = [
        ("podium-cache-control", "max-age=60"),
        ("cdn-cache-control", "no-store"),
        ("cache-control", "no-store"),
    ];
    assert_eq!(calls(b, &ours).await, 1);
    let ours_refuses = [
        ("podium-cache-control", "no-store"),
        ("cdn-cache-control", "max-age=60"),
    ];
    assert_eq!(calls(b, &ours_refuses).await, 2);
}

/// RFC 9213 §2.1: a targeted field without a valid value is ignored: `Cache-Control` applies.
#[tokio::test]
async fn rfc9213_2_1_an_invalid_targeted_field_is_ignored() {
    let b = |c: &podium_cache_core::Cache| Mode::Standards.builder(c);
    let invalid = [
        ("cdn-cache-control", "max-age=60, ,; ="),
        ("cache-control", "no-store"),
    ];
    assert_eq!(calls(b, &invalid).await, 2);
    let invalid_ok = [
        ("cdn-cache-control", "(nonsense)"),
        ("cache-control", "max-age=60"),
    ];
    assert_eq!(calls(b, &invalid_ok).await, 1);
}

/// RFC 9213 §2.1: targeted fields are Structured Field Dictionaries; one that fails to parse
/// as one (here a member whose key is not a key) is ignored, and `Cache-Control` applies.
#[tokio::test]
async fn rfc9213_2_1_a_targeted_field_that_is_not_a_structured_dictionary_is_ignored() {
    for mode in Mode::BOTH {
        let b = |c: &podium_cache_core::Cache| mode.builder(c);
        let invalid = [
            ("cdn-cache-control", "max-age=10000, &&&&&"),
            ("cache-control", "no-store"),
        ];
        assert_eq!(calls(b, &invalid).await, 2, "{mode:?}");
    }
}

/// RFC 9213 §2.1: a directive whose value has another type than the one its directive implies
/// (`max-age` as a String, not an Integer) is not consumed: the field is ignored.
#[tokio::test]
async fn rfc9213_2_1_a_directive_of_the_wrong_type_voids_the_targeted_field() {
    for mode in Mode::BOTH {
        let b = |c: &podium_cache_core::Cache| mode.builder(c);
        for value in ["max-age=\"10000\"", "max-age=1.5", "no-store=1"] {
            let invalid = [("cdn-cache-control", value), ("cache-control", "no-store")];
            assert_eq!(calls(b, &invalid).await, 2, "{mode:?}: {value}");
        }
        let booleans = [
            ("cdn-cache-control", "max-age=60, no-store=?0"),
            ("cache-control", "no-store"),
        ];
        assert_eq!(
            calls(b, &booleans).await,
            1,
            "{mode:?}: ?0 is the directive absent"
        );
    }
}
