//! Bounded negative caching (issue #9, part 3): "not found" for an id the cache has never seen
//! lives only in a bounded, short-lived in-process structure, so random ids leave the store as
//! it was; a record deleted through the cache keeps its long tombstone in the store.
//!
//! The 1,000,000-id measurement (Redis `used_memory`, entry counts) is the bench
//! `benches/negative_flood.rs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{fields, harness, Event, Harness, StoreKind, BASE, TABLE};
use podium_cache_core::cache::Cache;
use podium_cache_core::scope::Scope;
use rand::distributions::Alphanumeric;
use rand::Rng;

fn random_ids(n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let tail: String = rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(14)
                .map(char::from)
                .collect();
            format!("rec{tail}")
        })
        .collect()
}

async fn key_count(h: &Harness) -> usize {
    let mut keys = 0;
    let mut cursor = 0;
    loop {
        let page = h.store.scan("*", cursor, 1_000).await.unwrap();
        keys += page.keys.len();
        cursor = page.cursor;
        if cursor == 0 {
            return keys;
        }
    }
}

/// The TTL Redis holds for `key`, in seconds.
async fn redis_ttl(h: &Harness, key: &str) -> i64 {
    let url = h.redis.as_ref().map(|r| r.url()).unwrap();
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("TTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn random_ids_leave_the_store_as_it_was() {
    for kind in [StoreKind::Memory, StoreKind::Redis] {
        let h = harness(kind).records(1).rate_limit(None).start().await;
        assert!(h.cache.get::<Event>(&h.ids[0]).await.unwrap().is_some());
        let before = key_count(&h).await;
        let random = random_ids(1_000);
        for chunk in random.chunks(100) {
            let answers = h.cache.get_many::<Event>(chunk).await.unwrap();
            assert!(answers.iter().all(Option::is_none));
        }
        assert_eq!(
            key_count(&h).await,
            before,
            "{kind:?}: 1,000 random ids wrote nothing to the store"
        );
        assert_eq!(h.cache.negative_entries(), 1_000);
        // They are remembered in process: asking again costs nothing.
        let calls = h.calls();
        let scope = Scope::new();
        let again = scope
            .run(h.cache.get_many::<Event>(&random[..100]))
            .await
            .unwrap();
        assert!(again.iter().all(Option::is_none));
        assert_eq!(h.calls(), calls, "{kind:?}");
        let report = scope.report();
        assert_eq!((report.hits, report.never_seen), (100, 100), "{kind:?}");
        assert_eq!(h.cache.metrics().negative_hits, 100);
    }
}

#[tokio::test]
async fn the_negative_cache_holds_at_most_its_capacity() {
    let h = harness(StoreKind::Memory)
        .records(0)
        .rate_limit(None)
        .start()
        .await;
    let cache = Cache::builder(Arc::clone(&h.store), Arc::clone(&h.source))
        .negative_cache(Duration::from_secs(300), 200)
        .build();
    for chunk in random_ids(2_000).chunks(100) {
        cache.get_many::<Event>(chunk).await.unwrap();
    }
    let held = cache.negative_entries();
    assert!(held <= 200, "{held} entries for a capacity of 200");
    assert_eq!(cache.metrics().negative_stored, 2_000);
}

#[tokio::test]
async fn a_deleted_records_tombstone_keeps_its_long_ttl() {
    let h = harness(StoreKind::Redis).records(2).start().await;
    let id = &h.ids[0];
    assert!(h.cache.get::<Event>(id).await.unwrap().is_some());
    h.cache.delete::<Event>(id).await.unwrap();
    let tombstone = h.cache.keys().tombstone("events", id);
    assert_eq!(
        h.store.get(&tombstone).await.unwrap().as_deref(),
        Some(&b"deleted"[..])
    );
    let ttl = redis_ttl(&h, &tombstone).await;
    assert!(
        ttl > 9 * 3600 - 60,
        "a deleted record's tombstone lives 9 h: {ttl} s"
    );
    let calls = h.calls();
    assert_eq!(h.cache.get::<Event>(id).await.unwrap(), None);
    assert_eq!(h.calls(), calls, "answered from the tombstone");
    assert_eq!(h.cache.negative_entries(), 0, "not the negative cache");
}

#[tokio::test]
async fn a_known_id_that_vanished_from_the_source_gets_a_store_tombstone() {
    let h = harness(StoreKind::Redis).records(1).start().await;
    let id = &h.ids[0];
    assert!(h.cache.get::<Event>(id).await.unwrap().is_some());
    // Deleted in Airtable behind the cache's back, then invalidated (e.g. by a webhook).
    assert!(h.airtable.remove(BASE, TABLE, id));
    h.cache.invalidate::<Event>(id).await.unwrap();
    assert_eq!(h.cache.get::<Event>(id).await.unwrap(), None);
    let tombstone = h.cache.keys().tombstone("events", id);
    let ttl = redis_ttl(&h, &tombstone).await;
    assert!(ttl > 9 * 3600 - 60, "a known id's tombstone: {ttl} s");
    assert_eq!(h.cache.negative_entries(), 0);
}

#[tokio::test]
async fn a_never_seen_answer_expires_soon_and_yields_to_any_change() {
    let h = harness(StoreKind::Memory)
        .records(0)
        .rate_limit(None)
        .start()
        .await;
    // A negative TTL no stall of a loaded machine outlasts, for what must be remembered…
    let cache = Cache::builder(Arc::clone(&h.store), Arc::clone(&h.source))
        .negative_cache(Duration::from_secs(600), 1_000)
        .build();
    let [created, other]: [String; 2] = random_ids(2).try_into().unwrap();
    assert_eq!(cache.get::<Event>(&created).await.unwrap(), None);
    let calls = h.calls();
    assert_eq!(cache.get::<Event>(&created).await.unwrap(), None);
    assert_eq!(h.calls(), calls, "remembered");

    // The record is created and the cache hears of it: the answer is not believed any more.
    h.airtable
        .insert_with_id(BASE, TABLE, &created, fields("New", "new", 1));
    cache.invalidate::<Event>(&created).await.unwrap();
    let found = cache.get::<Event>(&created).await.unwrap();
    assert_eq!(found.map(|e| e.name).as_deref(), Some("New"));

    // …and a short one, which only has to lapse: without a change the answer is believed for
    // its TTL only.
    let short = Cache::builder(Arc::clone(&h.store), Arc::clone(&h.source))
        .negative_cache(Duration::from_millis(300), 1_000)
        .build();
    assert_eq!(short.get::<Event>(&other).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let calls = h.calls();
    assert_eq!(short.get::<Event>(&other).await.unwrap(), None);
    assert_eq!(h.calls(), calls + 1, "asked again after the negative TTL");
}
