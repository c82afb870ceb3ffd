//! The five correctness rules of DESIGN.md, each with a test that fails when the rule is broken.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{fields, harness, now_ms, Event, Gate, StoreKind, BASE, TABLE};
use podium_cache_core::UpsertOutcome;

fn event(id: &str, version: i64) -> Event {
    Event {
        id: id.to_owned(),
        name: format!("v{version}"),
        slug: "the-slug".into(),
        version,
        owner: vec![],
    }
}

// Rule 1: after a webhook for R is acknowledged, no read returns an older R.
#[tokio::test]
async fn acknowledged_upsert_is_never_followed_by_an_older_read() {
    for kind in [StoreKind::Memory, StoreKind::Redis] {
        let h = harness(kind).records(1).start().await;
        let id = h.ids[0].clone();
        let t = now_ms();
        assert_eq!(
            h.cache.upsert(&event(&id, 3), t).await.unwrap(),
            UpsertOutcome::Applied
        );
        // An older delivery that arrives late, and one with the same timestamp, change nothing.
        assert_eq!(
            h.cache.upsert(&event(&id, 2), t - 1_000).await.unwrap(),
            UpsertOutcome::Stale
        );
        assert_eq!(
            h.cache.upsert(&event(&id, 9), t).await.unwrap(),
            UpsertOutcome::Stale
        );
        let read: Event = h.cache.get(&id).await.unwrap().unwrap();
        assert_eq!(read.version, 3, "{kind:?}");
        assert_eq!(
            h.calls(),
            0,
            "a delivery for an uncached record stores it: no source call"
        );
    }
}

// Rule 2: after delete, no read returns R until it exists again in Airtable.
#[tokio::test]
async fn deleted_record_is_never_served_again() {
    for kind in [StoreKind::Memory, StoreKind::Redis] {
        let h = harness(kind).records(2).start().await;
        let id = h.ids[0].clone();
        assert!(h.cache.get::<Event>(&id).await.unwrap().is_some());
        h.cache.delete::<Event>(&id).await.unwrap();
        assert!(
            h.airtable.get(BASE, TABLE, &id).is_none(),
            "deleted in Airtable"
        );
        let calls = h.calls();
        for _ in 0..3 {
            assert_eq!(h.cache.get::<Event>(&id).await.unwrap(), None, "{kind:?}");
        }
        assert_eq!(h.calls(), calls, "the tombstone answers: no source call");
        // The other record is untouched.
        assert!(h.cache.get::<Event>(&h.ids[1]).await.unwrap().is_some());
        // Recreated in Airtable and reported: served again.
        h.airtable
            .insert_with_id(BASE, TABLE, &id, fields("back", "back", 5));
        let restored = Event {
            id: id.clone(),
            name: "back".into(),
            slug: "back".into(),
            version: 5,
            owner: vec![],
        };
        h.cache.upsert(&restored, now_ms() + 10).await.unwrap();
        assert_eq!(
            h.cache.get::<Event>(&id).await.unwrap().map(|e| e.version),
            Some(5)
        );
    }
}

// Rule 2 under a race: a fill that fetched R before the delete must not bring it back.
#[tokio::test]
async fn fill_in_flight_during_delete_does_not_resurrect_the_record() {
    let gate = Gate::closed();
    let h = harness(StoreKind::Redis)
        .records(1)
        .gate(Arc::clone(&gate))
        .start()
        .await;
    let id = h.ids[0].clone();
    let reader = common::held_read(&h.cache, &gate, &id).await;
    h.cache.delete::<Event>(&id).await.unwrap();
    gate.open();
    let _overlapping = reader.await.unwrap().unwrap();
    assert_eq!(h.cache.get::<Event>(&id).await.unwrap(), None);
}

// Rule 3: a fill that started before an upsert must not overwrite it (the stale-set race),
// with the interleaving made exact by holding the source's answer.
#[tokio::test]
async fn fill_that_started_before_an_upsert_never_overwrites_it() {
    for kind in [StoreKind::Memory, StoreKind::Redis] {
        let gate = Gate::closed();
        let h = harness(kind)
            .records(1)
            .gate(Arc::clone(&gate))
            .start()
            .await;
        let id = h.ids[0].clone();
        // 1. A read misses and fetches version 1; its answer is held at the gate.
        let reader = common::held_read(&h.cache, &gate, &id).await;
        // 2. Meanwhile the record changes and the webhook is acknowledged.
        h.airtable
            .update(BASE, TABLE, &id, fields("v2", "the-slug", 2));
        assert_eq!(
            h.cache.upsert(&event(&id, 2), now_ms()).await.unwrap(),
            UpsertOutcome::Applied
        );
        // 3. The old answer arrives.
        gate.open();
        let overlapping = reader.await.unwrap().unwrap().unwrap();
        assert_eq!(
            overlapping.version, 1,
            "the overlapping read saw the old version"
        );
        // 4. Every later read sees version 2, from the store.
        let calls = h.calls();
        for _ in 0..3 {
            assert_eq!(
                h.cache.get::<Event>(&id).await.unwrap().unwrap().version,
                2,
                "{kind:?}"
            );
        }
        assert_eq!(h.calls(), calls);
        assert!(h.cache.metrics().fills_discarded >= 1);
    }
}

// Rule 4: N concurrent misses on R make one Airtable call.
#[tokio::test]
async fn thousand_concurrent_misses_on_one_id_make_one_airtable_call() {
    for kind in [StoreKind::Memory, StoreKind::Redis] {
        let h = harness(kind)
            .records(1)
            .latency(Duration::from_millis(100))
            .start()
            .await;
        let id = h.ids[0].clone();
        let readers: Vec<_> = (0..1_000)
            .map(|_| {
                let cache = h.cache.clone();
                let id = id.clone();
                tokio::spawn(async move { cache.get::<Event>(&id).await })
            })
            .collect();
        for reader in readers {
            assert_eq!(reader.await.unwrap().unwrap().unwrap().id, id);
        }
        assert_eq!(
            h.calls(),
            1,
            "{kind:?}: one Airtable call for 1,000 concurrent misses"
        );
        assert_eq!(h.cache.metrics().source_calls, 1);
    }
}

// Rule 5: the store failing never fails a read, and it recovers by itself.
#[tokio::test]
async fn dead_store_never_fails_a_read_and_recovery_needs_no_restart() {
    let mut h = harness(StoreKind::Redis)
        .records(3)
        .rate_limit(None)
        .start()
        .await;
    let id = h.ids[0].clone();
    assert!(h.cache.get::<Event>(&id).await.unwrap().is_some());
    let redis = h.redis.as_mut().unwrap();
    redis.stop();
    for other in &h.ids {
        let read = h
            .cache
            .get::<Event>(other)
            .await
            .expect("a dead store must not fail a read");
        assert_eq!(read.map(|e| e.id).as_deref(), Some(other.as_str()));
    }
    assert!(h.cache.metrics().store_errors >= 3);
    redis.restart().unwrap();
    // Back without restarting anything: within a few seconds reads are stored and hit again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let calls = h.calls();
        let _ = h.cache.get::<Event>(&id).await.unwrap();
        let _ = h.cache.get::<Event>(&id).await.unwrap();
        if h.calls() <= calls + 1 && h.cache.store().get("probe").await.is_ok() {
            let calls = h.calls();
            assert!(h.cache.get::<Event>(&id).await.unwrap().is_some());
            if h.calls() == calls {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store did not come back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
