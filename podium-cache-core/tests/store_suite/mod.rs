//! The store behaviour suite: every behaviour the engine relies on, as one function per
//! behaviour over an `Arc<dyn Store>`, and [`store_suite!`] to run them all on a store.
//!
//! Used by `store_behaviour.rs` (the shipped stores) and `toy_store.rs` (a store with only the
//! required methods, its extensions the per-process fallback).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use podium_cache_core::store::{
    BoundedSets, Condition, Counters, Locks, RecordWrite, Store, Version, WriteOutcome,
};

/// One `#[tokio::test]` per behaviour in a module `$module`, each running on the store that
/// `$setup` (an expression of type `impl Future<Output = (Arc<dyn Store>, impl Sized)>`,
/// resolved inside the module, which sees the caller's items) builds; the second value is kept
/// alive until the test ends (a server, a lock on a shared cluster).
macro_rules! store_suite {
    ($module:ident, $setup:expr) => {
        store_suite!(@each $module, $setup, [
            values_round_trip_and_get_many_keeps_order,
            entries_expire_after_their_ttl,
            set_if_absent_sets_once,
            delete_counts_existing_keys,
            increment_counts_from_zero,
            sets_collect_members,
            record_write_checks_the_generation,
            record_write_orders_by_timestamp,
            record_writes_racing_on_one_generation_apply_exactly_once,
            a_fill_racing_an_invalidation_never_outlives_it,
            scan_pages_through_every_matching_key,
            compare_and_delete_or_extend_only_touch_the_expected_value,
            bounded_set_admits_at_most_max_members_until_they_expire,
        ]);
    };
    (@each $module:ident, $setup:expr, [$($name:ident),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _keep) = $setup.await;
                    crate::store_suite::$name(store).await;
                }
            )*
        }
    };
}
pub(crate) use store_suite;

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub const MINUTE: Duration = Duration::from_secs(60);

pub async fn values_round_trip_and_get_many_keeps_order(store: Arc<dyn Store>) {
    store.set("a", b("1"), MINUTE).await.unwrap();
    store.set("c", b("3"), MINUTE).await.unwrap();
    assert_eq!(store.get("a").await.unwrap(), Some(b("1")));
    assert_eq!(store.get("b").await.unwrap(), None);
    let many = store
        .get_many(&["c".into(), "b".into(), "a".into()])
        .await
        .unwrap();
    assert_eq!(many, vec![Some(b("3")), None, Some(b("1"))]);
    assert!(store.get_many(&[]).await.unwrap().is_empty());
    store
        .set_many(&[("x".into(), b("9"), MINUTE), ("y".into(), b("8"), MINUTE)])
        .await
        .unwrap();
    assert_eq!(store.get("y").await.unwrap(), Some(b("8")));
}

pub async fn entries_expire_after_their_ttl(store: Arc<dyn Store>) {
    store
        .set("short", b("v"), Duration::from_millis(80))
        .await
        .unwrap();
    store.set("long", b("v"), MINUTE).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.get("short").await.unwrap(), None);
    assert_eq!(store.get("long").await.unwrap(), Some(b("v")));
}

pub async fn set_if_absent_sets_once(store: Arc<dyn Store>) {
    assert!(store.set_if_absent("once", b("1"), MINUTE).await.unwrap());
    assert!(!store.set_if_absent("once", b("2"), MINUTE).await.unwrap());
    assert_eq!(store.get("once").await.unwrap(), Some(b("1")));
}

pub async fn delete_counts_existing_keys(store: Arc<dyn Store>) {
    store.set("d1", b("1"), MINUTE).await.unwrap();
    store.set("d2", b("1"), MINUTE).await.unwrap();
    let n = store
        .delete(&["d1".into(), "d2".into(), "d3".into()])
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(store.get("d1").await.unwrap(), None);
    assert_eq!(store.delete(&[]).await.unwrap(), 0);
}

pub async fn increment_counts_from_zero(store: Arc<dyn Store>) {
    assert_eq!(store.increment("n", MINUTE).await.unwrap(), 1);
    assert_eq!(store.increment("n", MINUTE).await.unwrap(), 2);
    assert_eq!(store.get("n").await.unwrap(), Some(b("2")));
}

pub async fn sets_collect_members(store: Arc<dyn Store>) {
    store
        .add_to_set("s", &["a".into(), "b".into()], MINUTE)
        .await
        .unwrap();
    store
        .add_to_set("s", &["b".into(), "c".into()], MINUTE)
        .await
        .unwrap();
    let members: BTreeSet<String> = store.set_members("s").await.unwrap().into_iter().collect();
    assert_eq!(
        members,
        ["a", "b", "c"].iter().map(|s| s.to_string()).collect()
    );
    assert!(store.set_members("absent").await.unwrap().is_empty());
}

pub async fn bounded_set_admits_at_most_max_members_until_they_expire(store: Arc<dyn Store>) {
    // Every claim below lives a minute, so nothing lapses mid-test however slow the machine;
    // only at the end is m1's place shortened (a member's TTL runs from its last claim).
    assert!(store.claim_bounded("v", "m1", 2, MINUTE).await.unwrap());
    assert!(store.claim_bounded("v", "m2", 2, MINUTE).await.unwrap());
    assert!(
        !store.claim_bounded("v", "m3", 2, MINUTE).await.unwrap(),
        "a third member is refused while two are live"
    );
    assert!(
        store.claim_bounded("v", "m2", 2, MINUTE).await.unwrap(),
        "a member keeps its place"
    );
    // Concurrent newcomers on a full set: every one is refused.
    let refused = futures::future::join_all((0..20).map(|i| {
        let store = Arc::clone(&store);
        async move { store.claim_bounded("v", &format!("n{i}"), 2, MINUTE).await }
    }))
    .await;
    assert!(refused.into_iter().all(|r| !r.unwrap()));
    // m1 expires and frees its place for exactly one newcomer.
    assert!(store
        .claim_bounded("v", "m1", 2, Duration::from_millis(150))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(store.claim_bounded("v", "m3", 2, MINUTE).await.unwrap());
    assert!(!store.claim_bounded("v", "m4", 2, MINUTE).await.unwrap());
    // Other keys are other sets.
    assert!(store.claim_bounded("w", "m4", 1, MINUTE).await.unwrap());
}

pub fn write(condition: Condition, bump: bool, ts: Option<i64>) -> RecordWrite {
    RecordWrite {
        version_key: "p:gen:e:{r1}".into(),
        condition,
        bump_generation: bump,
        timestamp_ms: ts,
        version_ttl: MINUTE,
        set: vec![("p:e:h:{r1}".into(), b("data"), MINUTE)],
        delete: vec!["p:tomb:e:{r1}".into()],
    }
}

pub async fn record_write_checks_the_generation(store: Arc<dyn Store>) {
    store
        .set("p:tomb:e:{r1}", b("deleted"), MINUTE)
        .await
        .unwrap();
    // A fill that saw generation 0 stores while nothing changed.
    let outcome = store
        .write_record(&write(Condition::GenerationIs(0), false, None))
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Applied(Version::default()));
    assert_eq!(store.get("p:e:h:{r1}").await.unwrap(), Some(b("data")));
    assert_eq!(store.get("p:tomb:e:{r1}").await.unwrap(), None);
    // An invalidation bumps the generation…
    let bumped = store
        .write_record(&RecordWrite {
            set: vec![],
            delete: vec!["p:e:h:{r1}".into()],
            ..write(Condition::Always, true, None)
        })
        .await
        .unwrap();
    assert_eq!(
        bumped,
        WriteOutcome::Applied(Version {
            generation: 1,
            timestamp_ms: 0
        })
    );
    // …so a fill that saw generation 0 is refused and writes nothing.
    let stale = store
        .write_record(&write(Condition::GenerationIs(0), false, None))
        .await
        .unwrap();
    assert_eq!(
        stale,
        WriteOutcome::Rejected(Version {
            generation: 1,
            timestamp_ms: 0
        })
    );
    assert_eq!(store.get("p:e:h:{r1}").await.unwrap(), None);
}

/// Rule 3's atomicity: many writers that all saw generation `g` race to bump it; the check
/// and the write are one step, so exactly one of them wins per generation and its data is what
/// stays (a check-then-set split in two would let several pass the check).
pub async fn record_writes_racing_on_one_generation_apply_exactly_once(store: Arc<dyn Store>) {
    const WRITERS: usize = 24;
    for generation in 0..4_u64 {
        let outcomes = futures::future::join_all((0..WRITERS).map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let racer = RecordWrite {
                    set: vec![("p:e:h:{r1}".into(), b(&format!("w{i}")), MINUTE)],
                    ..write(Condition::GenerationIs(generation), true, None)
                };
                (i, store.write_record(&racer).await.unwrap())
            })
        }))
        .await;
        let winners: Vec<usize> = outcomes
            .iter()
            .map(|o| o.as_ref().expect("writer task"))
            .filter(|(_, outcome)| outcome.applied())
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "generation {generation}: exactly one writer wins, not {winners:?}"
        );
        for (i, outcome) in outcomes.iter().map(|o| o.as_ref().expect("writer task")) {
            let expected = Version {
                generation: generation + 1,
                timestamp_ms: 0,
            };
            if *i == winners[0] {
                assert_eq!(*outcome, WriteOutcome::Applied(expected));
            } else {
                assert_eq!(*outcome, WriteOutcome::Rejected(expected), "writer {i}");
            }
        }
        assert_eq!(
            store.get("p:e:h:{r1}").await.unwrap(),
            Some(b(&format!("w{}", winners[0]))),
            "generation {generation}: the winner's data stays"
        );
    }
}

/// Rule 3 under a race: fills that saw generation 0 run concurrently with an invalidation; a
/// fill may land before the invalidation (which then deletes it), never after it.
pub async fn a_fill_racing_an_invalidation_never_outlives_it(store: Arc<dyn Store>) {
    for round in 0..8_u64 {
        let key = format!("p:e:h:{{r{round}}}");
        let version_key = format!("p:gen:e:{{r{round}}}");
        let fill = RecordWrite {
            version_key: version_key.clone(),
            set: vec![(key.clone(), b("stale fill"), MINUTE)],
            delete: vec![],
            ..write(Condition::GenerationIs(0), false, None)
        };
        let invalidate = RecordWrite {
            version_key,
            set: vec![],
            delete: vec![key.clone()],
            ..write(Condition::Always, true, None)
        };
        let fills = (0..16).map(|_| {
            let (store, fill) = (Arc::clone(&store), fill.clone());
            tokio::spawn(async move { store.write_record(&fill).await.unwrap() })
        });
        let invalidation = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.write_record(&invalidate).await.unwrap() })
        };
        let fills: Vec<_> = futures::future::join_all(fills).await;
        assert!(invalidation.await.expect("invalidation task").applied());
        assert!(fills.iter().all(|f| f.is_ok()), "fill tasks");
        assert_eq!(
            store.get(&key).await.unwrap(),
            None,
            "round {round}: a fill that saw generation 0 was stored after the invalidation"
        );
    }
}

pub async fn record_write_orders_by_timestamp(store: Arc<dyn Store>) {
    let t = 1_764_098_645_123_i64;
    let first = store
        .write_record(&write(Condition::NewerThan(t), true, Some(t)))
        .await
        .unwrap();
    assert_eq!(
        first,
        WriteOutcome::Applied(Version {
            generation: 1,
            timestamp_ms: t
        })
    );
    for not_newer in [t, t - 1] {
        let outcome = store
            .write_record(&write(
                Condition::NewerThan(not_newer),
                true,
                Some(not_newer),
            ))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            WriteOutcome::Rejected(Version {
                generation: 1,
                timestamp_ms: t
            })
        );
    }
    let newer = store
        .write_record(&write(Condition::NewerThan(t + 1), true, Some(t + 1)))
        .await
        .unwrap();
    assert_eq!(
        newer,
        WriteOutcome::Applied(Version {
            generation: 2,
            timestamp_ms: t + 1
        })
    );
    // An unconditional write with an older timestamp keeps the newest one.
    let keep = store
        .write_record(&write(Condition::Always, true, Some(t - 5)))
        .await
        .unwrap();
    assert_eq!(
        keep,
        WriteOutcome::Applied(Version {
            generation: 3,
            timestamp_ms: t + 1
        })
    );
    let raw = store.get("p:gen:e:{r1}").await.unwrap();
    assert_eq!(Version::parse(raw.as_deref()).unwrap().timestamp_ms, t + 1);
}

pub async fn scan_pages_through_every_matching_key(store: Arc<dyn Store>) {
    for i in 0..250 {
        store
            .set(&format!("p:ev:h:{{rec{i}}}"), b("x"), MINUTE)
            .await
            .unwrap();
    }
    store.set("p:other:h:{rec1}", b("x"), MINUTE).await.unwrap();
    let mut seen = BTreeSet::new();
    let mut cursor = 0;
    let mut pages = 0;
    loop {
        let page = store.scan("p:ev:h:{*}", cursor, 50).await.unwrap();
        pages += 1;
        seen.extend(page.keys);
        cursor = page.cursor;
        if cursor == 0 {
            break;
        }
        assert!(pages < 1_000, "scan must finish");
    }
    assert_eq!(seen.len(), 250);
    assert!(seen.iter().all(|k| k.starts_with("p:ev:h:")));
    assert!(pages > 1, "a page size of 50 must take several pages");
}

pub async fn compare_and_delete_or_extend_only_touch_the_expected_value(store: Arc<dyn Store>) {
    store.set("lock", b("mine"), MINUTE).await.unwrap();
    assert!(!store.delete_if_equals("lock", b"theirs").await.unwrap());
    assert!(!store
        .expire_if_equals("lock", b"theirs", MINUTE)
        .await
        .unwrap());
    assert_eq!(store.get("lock").await.unwrap(), Some(b("mine")));
    // A short lock is extended past its TTL. Should the machine stall longer than the short
    // TTL between the set and the extension, the lock lapsed and the step is taken again.
    let mut extended = false;
    for _ in 0..20 {
        store
            .set("lock", b("mine"), Duration::from_millis(300))
            .await
            .unwrap();
        if store
            .expire_if_equals("lock", b"mine", MINUTE)
            .await
            .unwrap()
        {
            extended = true;
            break;
        }
        assert_eq!(
            store.get("lock").await.unwrap(),
            None,
            "a refused extension of the right value means the lock had lapsed"
        );
    }
    assert!(extended, "the lock was never extended");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        store.get("lock").await.unwrap(),
        Some(b("mine")),
        "extended past its first TTL"
    );
    assert!(store.delete_if_equals("lock", b"mine").await.unwrap());
    assert_eq!(store.get("lock").await.unwrap(), None);
    assert!(!store.delete_if_equals("lock", b"mine").await.unwrap());
    assert!(!store
        .expire_if_equals("absent", b"mine", MINUTE)
        .await
        .unwrap());
}
