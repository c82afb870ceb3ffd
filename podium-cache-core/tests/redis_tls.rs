//! Managed Redis over TLS (`rediss://`): a real `redis-server` that speaks TLS only, on a CA
//! and server certificate made at run time (`podium_local::tls`), reached through
//! `Cache::from_settings` with `redis_ca_file`.
//!
//! A server the client cannot trust behaves as an unreachable Redis does today: the cache is
//! built, the store answers a clear error on every call, and reads fall through to Airtable
//! (correctness rule 5). A CA file that cannot be used is a setup error naming the setting.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{assert_setup_error_names, harness, Event, Harness, StoreKind, BASE};
use podium_cache_core::cache::Cache;
use podium_cache_core::config::Settings;
use podium_cache_core::store::StoreError;
use podium_cache_core::Cacheable;
use podium_local::redis::RedisServer;
use podium_local::tls::TestCertificates;

/// A bound that only detects a hang.
const PATIENCE: Duration = Duration::from_secs(15);

/// Settings for the harness's local Airtable server and `redis_url`, plus `extra`.
fn settings(h: &Harness, redis_url: &str, extra: &[(&str, &str)]) -> Settings {
    let mut env = vec![
        ("PODIUM_REDIS_URL".to_owned(), redis_url.to_owned()),
        ("PODIUM_AIRTABLE_API_KEY".to_owned(), h.airtable.api_key()),
        ("PODIUM_AIRTABLE_BASE_ID".to_owned(), BASE.to_owned()),
        ("PODIUM_AIRTABLE_API_URL".to_owned(), h.airtable.url()),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Settings::from_sources(None, env).expect("settings")
}

fn ca_setting(file: &Path) -> (&'static str, &str) {
    ("PODIUM_REDIS_CA_FILE", file.to_str().expect("utf-8 path"))
}

/// A TLS redis-server on its own CA, and the Airtable harness (its own store is not used).
async fn tls_server() -> (Harness, TestCertificates, RedisServer) {
    let h = harness(StoreKind::Memory).records(2).start().await;
    let certificates = TestCertificates::generate().expect("certificates");
    let server = RedisServer::start_tls(&certificates.files()).expect("TLS redis-server");
    (h, certificates, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rediss_url_with_its_ca_file_reads_and_writes_through_the_tls_server() {
    let (h, certificates, server) = tls_server().await;
    assert!(server.url().starts_with("rediss://"), "{}", server.url());
    let ca = certificates.ca_file();
    let cache = Cache::from_settings(&settings(&h, &server.url(), &[ca_setting(&ca)]))
        .await
        .expect("cache");
    assert_eq!(cache.store().name(), "redis");

    let id = &h.ids[0];
    let calls = h.calls();
    let first = cache.get::<Event>(id).await.expect("read").expect("found");
    assert_eq!(h.calls(), calls + 1, "the miss read Airtable");
    let key = cache.keys().data("events", Event::schema_hash(), id);
    let stored = cache.store().get(&key).await.expect("store over TLS");
    assert!(stored.is_some(), "the record was written to the TLS server");

    let again = cache.get::<Event>(id).await.expect("read").expect("found");
    assert_eq!(again, first);
    assert_eq!(
        h.calls(),
        calls + 1,
        "the second read was served by the TLS server"
    );
    assert_eq!(cache.metrics().store_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_tier_links_over_tls_with_the_same_ca() {
    let (h, certificates, server) = tls_server().await;
    let ca = certificates.ca_file();
    let settings = settings(
        &h,
        &server.url(),
        &[ca_setting(&ca), ("PODIUM_L1_CAPACITY", "100")],
    );
    let (store, _) = Cache::stores_from_settings(&settings)
        .await
        .expect("stores");
    assert_eq!(store.name(), "tiered");
    let tier = store.typed_tier().expect("a tier");
    assert!(
        tier.wait_serving(PATIENCE).await,
        "the invalidation link subscribed over TLS within {PATIENCE:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_signed_by_another_ca_is_refused_and_reads_fall_through_to_airtable() {
    let (h, _certificates, server) = tls_server().await;
    let other = TestCertificates::generate().expect("another CA");
    let ca = other.ca_file();
    let cache = Cache::from_settings(&settings(&h, &server.url(), &[ca_setting(&ca)]))
        .await
        .expect("an untrusted server is not a setup error, as an unreachable one is not");

    let err = cache.store().get("podium:probe").await.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, StoreError::Unavailable(_)) && message.contains("certificate"),
        "a clear TLS error: {message}"
    );

    let id = &h.ids[0];
    let calls = h.calls();
    for _ in 0..2 {
        let event = cache.get::<Event>(id).await.expect("read falls through");
        assert_eq!(event.map(|e| e.id).as_deref(), Some(id.as_str()));
    }
    assert_eq!(
        h.calls(),
        calls + 2,
        "nothing was cached: each read asked Airtable"
    );
    assert!(cache.metrics().store_errors > 0, "{:?}", cache.metrics());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_redis_url_against_the_tls_port_fails_clearly() {
    let (h, _certificates, server) = tls_server().await;
    let plain = format!("redis://127.0.0.1:{}/", server.port());
    let cache = Cache::from_settings(&settings(&h, &plain, &[]))
        .await
        .expect("cache");
    let err = cache.store().get("podium:probe").await.unwrap_err();
    let message = err.to_string();
    assert!(err.is_disruption(), "{message}");
    assert!(message.contains("rediss://"), "says what to do: {message}");

    let id = &h.ids[0];
    let event = cache.get::<Event>(id).await.expect("read falls through");
    assert!(event.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_that_is_missing_or_holds_no_certificate_is_a_setup_error_naming_it() {
    let (h, certificates, server) = tls_server().await;
    let missing = certificates.dir().join("missing.pem");
    let key = certificates.files().key;
    for file in [missing, key] {
        let err = Cache::from_settings(&settings(&h, &server.url(), &[ca_setting(&file)]))
            .await
            .map(|_| ())
            .unwrap_err();
        assert_setup_error_names(&err, "redis_ca_file");
        assert!(
            err.to_string().contains(file.to_str().expect("utf-8")),
            "{err}"
        );
    }
}
