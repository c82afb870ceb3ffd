//! RFC 9111 §3.5: a shared cache stores the response to a request with `Authorization` only
//! when it says `public`, `s-maxage` or `must-revalidate`.

mod common;

use common::origin::{origin_calls, Mode};
use common::{harness, StoreKind};

async fn calls(mode: Mode, cache_control: &str) -> usize {
    let h = harness(StoreKind::Memory).await;
    let layer = mode.builder(&h.cache).build();
    let auth = [("authorization", "Bearer secret")];
    origin_calls(layer, 200, &[("cache-control", cache_control)], &auth).await
}

/// RFC 9111 §3.5: without `public`, `s-maxage` or `must-revalidate`, it is not stored.
#[tokio::test]
async fn rfc9111_3_5_an_authorized_response_is_not_stored_by_default() {
    for mode in Mode::BOTH {
        assert_eq!(calls(mode, "max-age=60").await, 2, "{mode:?}");
    }
}

/// RFC 9111 §3.5: `public`, `s-maxage` or `must-revalidate` allow storing it (standards mode;
/// the app mode bypasses requests with credentials unless principals are keyed).
#[tokio::test]
async fn rfc9111_3_5_public_s_maxage_or_must_revalidate_allow_storing_it() {
    for directive in [
        "public, max-age=60",
        "s-maxage=60",
        "max-age=60, must-revalidate",
    ] {
        assert_eq!(calls(Mode::Standards, directive).await, 1, "{directive}");
        assert_eq!(
            calls(Mode::App, directive).await,
            2,
            "app mode: {directive}"
        );
    }
}
