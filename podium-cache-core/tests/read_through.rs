//! The read-through engine against the local Airtable server: hits, batching, indexes,
//! queries, negative answers, and the Airtable client's limits.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fields, harness, now_ms, Event, Gate, StoreKind, BASE, TABLE};
use podium_cache_core::cache::{Cache, CacheError, Query};
use podium_cache_core::scope::Scope;
use podium_cache_core::source::{AirtableSource, Source, SourceError};
use podium_cache_core::Cacheable;

#[tokio::test]
async fn second_read_is_a_hit_with_no_airtable_call() {
    for kind in [StoreKind::Memory, StoreKind::Redis] {
        let h = harness(kind).records(2).start().await;
        let id = &h.ids[0];
        let scope = Scope::new();
        let first = scope.run(h.cache.get::<Event>(id)).await.unwrap().unwrap();
        assert_eq!(first.name, "Event 0");
        assert_eq!(first.owner, vec!["recUSER0000000001".to_string()]);
        let report = scope.report();
        assert_eq!((report.hits, report.misses, report.source_calls), (0, 1, 1));
        let scope = Scope::new();
        let second = scope.run(h.cache.get::<Event>(id)).await.unwrap().unwrap();
        assert_eq!(first, second);
        let report = scope.report();
        assert_eq!(
            (report.hits, report.misses, report.source_calls),
            (1, 0, 0),
            "{kind:?}"
        );
        assert_eq!(report.records, vec![("events".to_string(), id.clone())]);
        assert_eq!(h.calls(), 1);
    }
}

/// Misses waiting together in the batcher go out together, 100 ids a call. The batch window is
/// taken out of the picture: the one call slot is held by a first read whose answer waits at a
/// closed gate, the 999 other misses queue behind it, and only once every one is queued is the
/// gate opened. (The test runs on one thread: `misses_queued` is counted in the same poll that
/// queues the id.)
#[tokio::test]
async fn concurrent_misses_on_different_ids_are_batched() {
    let gate = Gate::closed();
    let mut h = harness(StoreKind::Redis)
        .records(1_000)
        .gate(Arc::clone(&gate))
        .start()
        .await;
    h.cache = Cache::builder(Arc::clone(&h.store), Arc::clone(&h.source))
        .max_in_flight_batches(1)
        .build();
    let read = |id: &String| {
        let cache = h.cache.clone();
        let id = id.clone();
        tokio::spawn(async move { cache.get::<Event>(&id).await })
    };
    let mut readers = vec![read(&h.ids[0])];
    gate.wait_for_held(1).await;
    readers.extend(h.ids[1..].iter().map(read));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while h.cache.metrics().misses_queued < 1_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "1,000 misses were not queued within 60 s: {:?}",
            h.cache.metrics()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.calls(), 1, "nothing but the held call was sent");
    gate.open();
    for (reader, id) in readers.into_iter().zip(&h.ids) {
        assert_eq!(&reader.await.unwrap().unwrap().unwrap().id, id);
    }
    assert_eq!(
        h.calls(),
        11,
        "the held call, then the 999 queued misses in 10 calls of at most 100 ids"
    );
    assert_eq!(h.cache.metrics().source_calls, 11);
    assert_eq!(
        h.airtable.calls().rate_limited,
        0,
        "the client keeps to the limit"
    );
    // Now every one is a hit.
    let ids = h.ids.clone();
    let all = h.cache.get_many::<Event>(&ids).await.unwrap();
    assert!(all.iter().all(Option::is_some));
    assert_eq!(h.calls(), 11);
}

#[tokio::test]
async fn get_many_answers_in_order_with_misses_batched() {
    for kind in [StoreKind::Memory, StoreKind::Redis] {
        let h = harness(kind).records(30).start().await;
        h.cache.get::<Event>(&h.ids[3]).await.unwrap();
        let mut ids = h.ids.clone();
        ids.push("recDOESNOTEXIST01".into());
        let records = h.cache.get_many::<Event>(&ids).await.unwrap();
        assert_eq!(records.len(), 31);
        for (id, record) in ids.iter().zip(&records).take(30) {
            assert_eq!(&record.as_ref().unwrap().id, id);
        }
        assert!(records[30].is_none());
        assert_eq!(
            h.calls(),
            2,
            "{kind:?}: one get for the first read, one batch for the rest"
        );
    }
}

#[tokio::test]
async fn missing_id_is_remembered_without_asking_again() {
    for kind in [StoreKind::Memory, StoreKind::Redis] {
        let h = harness(kind).records(1).start().await;
        assert_eq!(
            h.cache.get::<Event>("recNOPENOPENOPE01").await.unwrap(),
            None
        );
        assert_eq!(
            h.cache.get::<Event>("recNOPENOPENOPE01").await.unwrap(),
            None
        );
        assert_eq!(h.calls(), 1, "{kind:?}");
        assert_eq!(h.cache.metrics().tombstone_hits, 1);
    }
}

#[tokio::test]
async fn index_lookup_is_normalised_and_follows_a_changed_value() {
    for kind in [StoreKind::Memory, StoreKind::Redis] {
        let h = harness(kind).records(3).start().await;
        let id = h.ids[1].clone();
        let found: Event = h
            .cache
            .get_by_index("slug", "  EVENT-1 ")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, id);
        let calls = h.calls();
        let again: Event = h
            .cache
            .get_by_index("slug", "event-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.id, id);
        assert_eq!(
            h.calls(),
            calls,
            "{kind:?}: the index answers the second lookup"
        );
        // The slug changes (webhook): the old value must no longer find the record.
        h.airtable
            .update(BASE, TABLE, &id, fields("Event 1", "renamed", 2));
        let changed = Event {
            id: id.clone(),
            name: "Event 1".into(),
            slug: "renamed".into(),
            version: 2,
            owner: vec![],
        };
        h.cache.upsert(&changed, now_ms()).await.unwrap();
        assert_eq!(
            h.cache
                .get_by_index::<Event>("slug", "event-1")
                .await
                .unwrap(),
            None,
            "{kind:?}"
        );
        let calls = h.calls();
        let renamed: Event = h
            .cache
            .get_by_index("slug", "Renamed")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(renamed.version, 2);
        assert_eq!(h.calls(), calls, "the upsert wrote the new index entry");
    }
}

#[tokio::test]
async fn index_lookup_on_an_unindexed_field_is_a_clear_error() {
    let h = harness(StoreKind::Memory).records(1).start().await;
    let err = h
        .cache
        .get_by_index::<Event>("name", "x")
        .await
        .unwrap_err();
    assert!(matches!(err, CacheError::UnknownIndex { .. }));
    assert!(err.to_string().contains("slug"), "{err}");
}

#[tokio::test]
async fn quote_or_backslash_in_a_lookup_value_cannot_widen_the_query() {
    let h = harness(StoreKind::Memory).records(5).start().await;
    for hostile in [
        "x' OR TRUE() OR 'y",
        "x\\' OR TRUE() OR \\'y",
        "a\\",
        "'",
        "\\",
    ] {
        assert_eq!(
            h.cache
                .get_by_index::<Event>("slug", hostile)
                .await
                .unwrap(),
            None,
            "{hostile}"
        );
    }
    let odd = h
        .airtable
        .insert(BASE, TABLE, fields("odd", "o'brien\\x", 1));
    let found: Event = h
        .cache
        .get_by_index("slug", "O'Brien\\X")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, odd);
}

#[tokio::test]
async fn query_results_are_cached_until_the_entity_changes() {
    for kind in [StoreKind::Memory, StoreKind::Redis] {
        let h = harness(kind).records(4).start().await;
        let q = Query::field_equals("name", "Event 2");
        let first: Vec<Event> = h.cache.query(&q).await.unwrap();
        assert_eq!(first.len(), 1);
        let calls = h.calls();
        let second: Vec<Event> = h.cache.query(&q).await.unwrap();
        assert_eq!(first, second);
        assert_eq!(h.calls(), calls, "{kind:?}: cached");
        // A new record that matches arrives by webhook: the cached list must not hide it.
        let new_id = h.airtable.insert(BASE, TABLE, fields("Event 2", "dup", 1));
        let created = Event {
            id: new_id,
            name: "Event 2".into(),
            slug: "dup".into(),
            version: 1,
            owner: vec![],
        };
        h.cache.upsert(&created, now_ms()).await.unwrap();
        let third: Vec<Event> = h.cache.query(&q).await.unwrap();
        assert_eq!(third.len(), 2, "{kind:?}");
    }
}

#[tokio::test]
async fn record_that_does_not_fit_the_model_is_an_error_not_a_panic() {
    let h = harness(StoreKind::Memory).records(0).start().await;
    let mut bad = serde_json::Map::new();
    bad.insert("version".into(), serde_json::json!("not a number"));
    let id = h.airtable.insert(BASE, TABLE, bad);
    let err = h.cache.get::<Event>(&id).await.unwrap_err();
    assert!(matches!(err, CacheError::Decode { .. }), "{err}");
    assert!(err.to_string().contains(&id));
}

#[tokio::test]
async fn limiter_never_lets_more_than_five_requests_into_one_second() {
    let h = harness(StoreKind::Memory).records(1).start().await;
    let source = AirtableSource::builder(h.airtable.api_key(), BASE)
        .api_url(h.airtable.url())
        .build()
        .unwrap();
    let started = Instant::now();
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let source = source.clone();
            let id = h.ids[0].clone();
            tokio::spawn(async move { source.get(TABLE, &id).await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().unwrap().is_some());
    }
    let elapsed = started.elapsed();
    let rps = 16.0 / elapsed.as_secs_f64();
    println!("limiter: 16 requests in {elapsed:?} = {rps:.2} requests/s");
    assert_eq!(
        h.airtable.calls().rate_limited,
        0,
        "the server's 5/s window never saw a 6th"
    );
    assert!(
        elapsed >= Duration::from_secs(3),
        "16 requests at 5/s need 3 full windows"
    );
}

#[tokio::test]
async fn airtable_errors_are_typed_by_status() {
    let h = harness(StoreKind::Memory)
        .records(1)
        .rate_limit(None)
        .start()
        .await;
    let wrong_key = AirtableSource::builder("wrong", BASE)
        .api_url(h.airtable.url())
        .build()
        .unwrap();
    assert!(matches!(
        wrong_key.get(TABLE, &h.ids[0]).await,
        Err(SourceError::Unauthorized(_))
    ));
    let source = AirtableSource::builder(h.airtable.api_key(), BASE)
        .api_url(format!("{}/v0/", h.airtable.url()))
        .retries(2, Duration::from_millis(10), Duration::from_millis(20))
        .build()
        .unwrap();
    // A URL ending in /v0 works too; a missing record is None whatever the body.
    assert!(source.get(TABLE, &h.ids[0]).await.unwrap().is_some());
    assert!(source
        .get(TABLE, "recMISSINGMISSIN")
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        source.list("NoSuchTable", &Default::default()).await,
        Err(SourceError::Forbidden { .. })
    ));
    // 5xx is retried…
    h.airtable.fail_next(2, 503);
    assert!(source.get(TABLE, &h.ids[0]).await.unwrap().is_some());
    // …and typed when it outlasts the retries.
    h.airtable.fail_next(3, 500);
    let err = source.get(TABLE, &h.ids[0]).await.unwrap_err();
    assert!(
        matches!(err, SourceError::Transient(_)) && err.is_unconfirmed(),
        "{err}"
    );
    h.airtable.clear_faults();
    let bad_formula = podium_cache_core::source::ListQuery {
        filter: Some("AND(".into()),
        ..Default::default()
    };
    assert!(matches!(
        source.list(TABLE, &bad_formula).await,
        Err(SourceError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn long_formulas_go_through_post_list_records() {
    let h = harness(StoreKind::Memory)
        .records(300)
        .rate_limit(None)
        .start()
        .await;
    let source = AirtableSource::builder(h.airtable.api_key(), BASE)
        .api_url(h.airtable.url())
        .build()
        .unwrap();
    // 300 ids → three pages of 100 through get_many; one formula of 100 ids is long but fits a
    // URL; 1,000 fake ids padded out make the URL too long for GET.
    let found = source.get_many(TABLE, &h.ids).await.unwrap();
    assert_eq!(found.len(), 300);
    let long = podium_cache_core::source::ListQuery {
        filter: Some(format!(
            "OR({}, FALSE())",
            vec!["{name}='x'"; 2_000].join(",")
        )),
        ..Default::default()
    };
    let before = h.airtable.calls();
    assert!(source.list(TABLE, &long).await.unwrap().is_empty());
    let after = h.airtable.calls();
    assert_eq!(
        (after.list - before.list, after.list_post - before.list_post),
        (1, 1),
        "the long formula went as one POST …/listRecords (a GET that long is refused with 414)"
    );
    // A formula that fits a URL stays a GET.
    let short = podium_cache_core::source::ListQuery {
        filter: Some("{name}='x'".to_owned()),
        ..Default::default()
    };
    assert!(source.list(TABLE, &short).await.unwrap().is_empty());
    let last = h.airtable.calls();
    assert_eq!(
        (last.list - after.list, last.list_post - after.list_post),
        (1, 0),
        "a short formula is listed with GET"
    );
}

#[tokio::test]
async fn malformed_ids_cost_no_airtable_call_and_no_store_write() {
    for kind in [StoreKind::Memory, StoreKind::Redis] {
        let h = harness(kind).records(1).start().await;
        let before: HashSet<String> = h
            .store
            .scan("*", 0, 1_000)
            .await
            .unwrap()
            .keys
            .into_iter()
            .collect();
        for bad in [
            "",
            "rec",
            "recSHORT",
            "x:y",
            "rec{AAAAAAAAAAAAAA}",
            "rec*AAAAAAAAAAAAA",
            &"rec".repeat(100),
        ] {
            assert_eq!(h.cache.get::<Event>(bad).await.unwrap(), None, "{bad:?}");
        }
        let mixed = vec!["recSHORT".to_string(), h.ids[0].clone()];
        let answers = h.cache.get_many::<Event>(&mixed).await.unwrap();
        assert!(answers[0].is_none() && answers[1].is_some());
        assert_eq!(h.calls(), 1, "{kind:?}: only the real id was fetched");
        let after = h.store.scan("*", 0, 1_000).await.unwrap().keys;
        let written: Vec<&String> = after.iter().filter(|k| !before.contains(*k)).collect();
        // The real record's entry and its slug's index entry: nothing keyed by a malformed id.
        let data = h
            .cache
            .keys()
            .data("events", <Event as Cacheable>::schema_hash(), &h.ids[0]);
        assert!(written.contains(&&data), "{kind:?}: {written:?}");
        assert!(
            written
                .iter()
                .all(|k| k.contains(h.ids[0].as_str()) || k.ends_with(":slug:event-0")),
            "{kind:?}: only the real record's keys were written: {written:?}"
        );
    }
}
