//! Hot keys: a popular record is refreshed in the background by one reader shortly before it
//! expires (XFetch), so nobody waits for it; and while Airtable fails, an expired record is
//! served stale for up to `stale_if_error` (never one with a tombstone), marked in the scope.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{fields, harness, Event, Gate, Harness, StoreKind, BASE, TABLE};
use podium_cache_core::cache::Cache;
use podium_cache_core::scope::{Scope, ScopeReport};
use podium_cache_core::Cacheable;
use rand::Rng;

const READERS: usize = 1_000;

/// A cache over the harness's store and source with these TTLs and no jitter.
fn cache(h: &Harness, data_ttl: Duration, stale_if_error: Duration, beta: f64) -> Cache {
    Cache::builder(Arc::clone(&h.store), Arc::clone(&h.source))
        .data_ttl(data_ttl)
        .tombstone_ttl(data_ttl * 2)
        .jitter(0.0)
        .stale_if_error(stale_if_error)
        .xfetch_beta(beta)
        .build()
}

/// Reads `id` inside a fresh scope: the answer and what the scope saw.
async fn read(cache: &Cache, id: &str) -> (Result<Option<Event>, String>, ScopeReport) {
    let scope = Scope::new();
    let answer = scope
        .run(cache.get::<Event>(id))
        .await
        .map_err(|e| e.to_string());
    (answer, scope.report())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_key_read_by_1000_readers_as_it_expires_is_refreshed_once_with_no_waiting_reader() {
    // Every Airtable call takes 200 ms: XFetch's delta.
    let h = harness(StoreKind::Memory)
        .records(1)
        .latency(Duration::from_millis(200))
        .start()
        .await;
    let id = h.ids[0].clone();
    // Long enough that the refreshed copy is still far from its own expiry when the readers
    // stop (else XFetch rightly refreshes it too).
    let ttl = Duration::from_secs(6);
    let cache = cache(&h, ttl, Duration::ZERO, 1.0);
    let (first, _) = read(&cache, &id).await;
    assert_eq!(first.expect("filled").expect("exists").version, 1);
    let filled = tokio::time::Instant::now();
    // Airtable moves on; only a refresh can bring version 2 into the cache.
    h.airtable
        .update(BASE, TABLE, &id, fields("Event 0", "event-0", 2));
    let calls_after_fill = h.calls();
    let before = cache.metrics();

    // 1,000 readers read the key over and over until past its expiry.
    let until = filled + ttl + Duration::from_millis(500);
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let cache = cache.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let scope = Scope::new();
                let mut last = None;
                let mut failures = 0;
                while tokio::time::Instant::now() < until {
                    match scope.run(cache.get::<Event>(&id)).await {
                        Ok(Some(event)) => last = Some(event.version),
                        _ => failures += 1,
                    }
                    let pause = rand::thread_rng().gen_range(50..150);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                (scope.report(), last, failures)
            })
        })
        .collect();
    let mut last_versions = Vec::with_capacity(READERS);
    for reader in readers {
        let (report, last, failures) = reader.await.expect("reader");
        assert_eq!(failures, 0);
        assert_eq!(
            (report.misses, report.source_calls),
            (0, 0),
            "a reader waited for Airtable: {report:?}"
        );
        last_versions.push(last);
    }

    let after = cache.metrics();
    assert_eq!(after.misses - before.misses, 0, "no synchronous miss");
    // One refresh per stored copy, not one per reader. Usually that is one refresh; a refresh
    // starved of CPU measures a long fetch time, and XFetch (rightly) may then refresh the
    // refreshed copy too before the readers stop, so a second one is allowed, never a crowd.
    let refreshes = after.early_refreshes - before.early_refreshes;
    assert!(
        (1..=3).contains(&refreshes),
        "refreshed early once per stored copy, not per reader: {refreshes} refreshes"
    );
    assert_eq!(
        h.calls() - calls_after_fill,
        refreshes,
        "one background Airtable call per refresh and no other"
    );
    assert!(
        last_versions.iter().all(|v| *v == Some(2)),
        "the refresh was stored and read before the old copy expired"
    );
}

#[tokio::test]
async fn an_early_refresh_that_lost_the_race_to_a_webhook_is_not_stored() {
    for kind in [StoreKind::Memory, StoreKind::Redis] {
        early_refresh_loses_the_race_to_a_webhook(kind).await;
    }
}

async fn early_refresh_loses_the_race_to_a_webhook(kind: StoreKind) {
    let gate = Gate::closed();
    let h = harness(kind)
        .records(1)
        .gate(Arc::clone(&gate))
        .start()
        .await;
    let id = h.ids[0].clone();
    // β so large that every read of a fresh record refreshes it early.
    let cache = cache(&h, Duration::from_secs(3600), Duration::ZERO, 1e12);
    let now = common::now_ms();
    let v1 = Event {
        id: id.clone(),
        name: "webhook v1".into(),
        slug: "event-0".into(),
        version: 1,
        owner: vec![],
    };
    cache.upsert(&v1, now).await.expect("upsert v1");

    // The read is a hit and starts a refresh, whose answer (v1 from Airtable) is held.
    let (answer, report) = read(&cache, &id).await;
    assert_eq!(answer.expect("hit"), Some(v1));
    assert_eq!((report.hits, report.misses), (1, 0));
    gate.wait_for_held(1).await;

    // Meanwhile Airtable changed and its webhook was applied.
    let v2 = Event {
        name: "webhook v2".into(),
        version: 2,
        ..cache.get::<Event>(&id).await.expect("hit").expect("exists")
    };
    h.airtable
        .update(BASE, TABLE, &id, fields("webhook v2", "event-0", 2));
    cache.upsert(&v2, now + 1).await.expect("upsert v2");
    gate.open();

    // The held refresh finishes and is refused by the stale-set guard.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cache.metrics().fills_discarded == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{kind:?}: the released refresh was never discarded: {:?}",
            cache.metrics()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(cache.metrics().early_refreshes >= 1, "{kind:?}");
    assert_eq!(cache.metrics().fills_discarded, 1, "{kind:?}");
    assert_eq!(
        cache.get::<Event>(&id).await.expect("read"),
        Some(v2),
        "{kind:?}"
    );
}

/// Rule 4 for early refreshes: instances sharing a store refresh a hot record once between
/// them (the claim is held in the store), not once per instance.
#[tokio::test]
async fn instances_sharing_a_store_refresh_a_hot_record_once_between_them() {
    let gate = Gate::closed();
    let h = harness(StoreKind::Redis)
        .records(1)
        .gate(Arc::clone(&gate))
        .start()
        .await;
    let id = h.ids[0].clone();
    // Two instances (separate in-process state) on one store; every read of a fresh record
    // draws an early refresh.
    let first = cache(&h, Duration::from_secs(3600), Duration::ZERO, 1e12);
    let second = cache(&h, Duration::from_secs(3600), Duration::ZERO, 1e12);
    let v1 = Event {
        id: id.clone(),
        name: "v1".into(),
        slug: "event-0".into(),
        version: 1,
        owner: vec![],
    };
    first
        .upsert(&v1, common::now_ms())
        .await
        .expect("upsert v1");
    // The first instance's refresh claims the entry; its Airtable answer is held.
    let (answer, _) = read(&first, &id).await;
    assert_eq!(answer.expect("hit"), Some(v1.clone()));
    gate.wait_for_held(1).await;
    // The second instance reads the same stored entry, again and again: each read draws a
    // refresh, which finds the claim taken.
    for _ in 0..20 {
        let (answer, report) = read(&second, &id).await;
        assert_eq!(answer.expect("hit"), Some(v1.clone()));
        assert_eq!((report.hits, report.misses), (1, 0));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        (
            first.metrics().early_refreshes,
            second.metrics().early_refreshes
        ),
        (1, 0),
        "one refresh between the two instances"
    );
    assert_eq!(gate.held(), 1, "one refresh call reached Airtable");
    gate.open();
}

#[tokio::test]
async fn an_expired_record_is_served_stale_while_airtable_answers_503() {
    for kind in [StoreKind::Memory, StoreKind::Redis] {
        let h = harness(kind).records(1).start().await;
        let id = h.ids[0].clone();
        let cache = cache(&h, Duration::from_secs(1), Duration::from_secs(3600), 0.0);
        let (filled, _) = read(&cache, &id).await;
        let filled = filled.expect("filled").expect("exists");
        tokio::time::sleep(Duration::from_millis(1_300)).await;

        h.airtable.fail_ratio(1.0, 503);
        let (answer, report) = read(&cache, &id).await;
        assert_eq!(
            answer.expect("served stale"),
            Some(filled.clone()),
            "{kind:?}"
        );
        assert_eq!(report.stale, 1, "{kind:?}: {report:?}");
        assert_eq!((report.hits, report.misses), (1, 0), "{kind:?}");
        assert_eq!(cache.metrics().stale_served, 1);

        // Airtable is back: the next read refetches, and it is fresh again.
        h.airtable.clear_faults();
        let (answer, report) = read(&cache, &id).await;
        assert_eq!(answer.expect("refetched"), Some(filled), "{kind:?}");
        assert_eq!((report.stale, report.misses), (0, 1), "{kind:?}");
    }
}

#[tokio::test]
async fn without_stale_if_error_an_expired_record_and_a_503_is_an_error() {
    let h = harness(StoreKind::Memory).records(1).start().await;
    let id = h.ids[0].clone();
    let cache = cache(&h, Duration::from_secs(1), Duration::ZERO, 0.0);
    read(&cache, &id).await.0.expect("filled");
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    h.airtable.fail_ratio(1.0, 503);
    let (answer, report) = read(&cache, &id).await;
    assert!(answer.is_err(), "{answer:?}");
    assert_eq!(report.stale, 0);
}

#[tokio::test]
async fn a_tombstoned_record_is_never_served_stale() {
    for kind in [StoreKind::Memory, StoreKind::Redis] {
        let h = harness(kind).records(2).start().await;
        let cache = cache(&h, Duration::from_secs(1), Duration::from_secs(3600), 0.0);
        // Record 0 is deleted in Airtable behind the cache's back; record 1 through the cache.
        let (gone_behind, deleted) = (h.ids[0].clone(), h.ids[1].clone());
        for id in &h.ids {
            read(&cache, id).await.0.expect("filled");
        }
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        assert!(h.airtable.remove(BASE, TABLE, &gone_behind));
        let (answer, _) = read(&cache, &gone_behind).await;
        assert_eq!(answer.expect("asked airtable"), None, "{kind:?}");
        cache.delete::<Event>(&deleted).await.expect("delete");

        h.airtable.fail_ratio(1.0, 503);
        for id in [&gone_behind, &deleted] {
            let (answer, report) = read(&cache, id).await;
            assert_eq!(answer.expect("tombstone"), None, "{kind:?}");
            assert_eq!(report.stale, 0, "{kind:?}");
        }
        assert_eq!(cache.metrics().stale_served, 0);
    }
}

#[tokio::test]
async fn beyond_the_stale_window_the_source_error_is_returned() {
    let h = harness(StoreKind::Memory).records(2).start().await;
    let window = Duration::from_secs(1);
    // An instance whose stale window, hence store TTL, is long.
    let long_window = cache(&h, Duration::from_secs(1), Duration::from_secs(60), 0.0);
    let cache = cache(&h, Duration::from_secs(1), window, 0.0);

    // Expired by more than the window; the store dropped it (its TTL is TTL + window).
    let (dropped, kept) = (h.ids[0].clone(), h.ids[1].clone());
    read(&cache, &dropped).await.0.expect("filled");
    // Expired by more than the window, yet still in the store (filled by the long-window
    // instance): the header alone must refuse it.
    read(&long_window, &kept).await.0.expect("filled");
    tokio::time::sleep(Duration::from_millis(2_300)).await;

    h.airtable.fail_ratio(1.0, 503);
    for id in [&dropped, &kept] {
        let (answer, report) = read(&cache, id).await;
        assert!(answer.is_err(), "{id}: {answer:?}");
        assert_eq!(report.stale, 0);
    }
}

#[tokio::test]
async fn an_entry_of_an_older_format_is_a_miss_that_refetches() {
    let h = harness(StoreKind::Memory).records(1).start().await;
    let id = h.ids[0].clone();
    let cache = cache(&h, Duration::from_secs(3600), Duration::ZERO, 1.0);
    // What earlier versions stored under the data key: the model's plain JSON.
    let key = cache.keys().data("events", Event::schema_hash(), &id);
    let plain = br#"{"id":"x","name":"old","slug":"old","version":0,"owner":[]}"#;
    h.store
        .set(
            &key,
            bytes::Bytes::from_static(plain),
            Duration::from_secs(60),
        )
        .await
        .expect("store");
    let (answer, report) = read(&cache, &id).await;
    assert_eq!(answer.expect("refetched").expect("exists").version, 1);
    assert_eq!(report.misses, 1);
    assert_eq!(cache.metrics().decode_errors, 1);
    assert_eq!(h.calls(), 1);
    // Stored again in the current format: a hit.
    let (_, report) = read(&cache, &id).await;
    assert_eq!((report.hits, report.misses), (1, 0));
}
