//! Airtable's 403 is an error, never "not found": an unknown table, an unknown base and a token
//! without `data.records:read` all fail the read, store no negative entry (the next read asks
//! Airtable again), and the error names the scope. Against the local Airtable server, which
//! answers these 403 `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND` as Airtable does.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{fields, Event, BASE, TABLE};
use podium_cache_core::cache::{Cache, CacheError};
use podium_cache_core::source::scopes::{RECORDS_READ, RECORDS_WRITE};
use podium_cache_core::source::{AirtableSource, Source, SourceError};
use podium_cache_core::store::MemoryStore;
use podium_local::airtable::{AirtableServer, RunningAirtable, Token};

/// A base that exists but has no `Events` table.
const OTHER_BASE: &str = "appOTHEROTHER0001";
/// A base that does not exist.
const NO_BASE: &str = "appNOSUCHBASE0001";
/// A well-formed record id (the engine asks the source only for those).
const SOME_ID: &str = "recAAAAAAAAAAAAAA";

async fn server() -> RunningAirtable {
    let airtable = AirtableServer::builder()
        .rate_limit(None)
        .start()
        .await
        .expect("local airtable");
    airtable.insert_with_id(BASE, TABLE, SOME_ID, fields("Event", "event", 1));
    airtable.insert(OTHER_BASE, "Users", fields("Ada", "ada", 1));
    airtable
}

fn cache(airtable: &RunningAirtable, key: &str, base: &str) -> Cache {
    let source = AirtableSource::builder(key, base)
        .api_url(airtable.url())
        .retries(1, Duration::from_millis(10), Duration::from_millis(20))
        .build()
        .expect("source");
    let source: Arc<dyn Source> = Arc::new(source);
    Cache::builder(Arc::new(MemoryStore::new(1_000)), source).build()
}

/// Two reads of `SOME_ID` both fail with a 403 and each reaches Airtable.
async fn assert_forbidden_twice(airtable: &RunningAirtable, cache: &Cache, base: &str) {
    for attempt in 1..=2u64 {
        match cache.get::<Event>(SOME_ID).await {
            Err(CacheError::Source(err)) => match err.as_ref() {
                SourceError::Forbidden { kind, scope, .. } => {
                    assert_eq!(kind, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND");
                    assert_eq!(*scope, Some(RECORDS_READ));
                    assert!(err.to_string().contains(RECORDS_READ), "{err}");
                }
                other => panic!("attempt {attempt}: not Forbidden: {other:?}"),
            },
            other => panic!("attempt {attempt}: a 403 must be an error, got {other:?}"),
        }
        let calls = airtable.calls_for(base);
        assert_eq!(
            calls.total, attempt,
            "attempt {attempt}: every read asks Airtable (no negative entry was stored)"
        );
    }
}

#[tokio::test]
async fn a_table_missing_from_the_base_fails_the_read_and_is_never_cached_as_not_found() {
    let airtable = server().await;
    let cache = cache(&airtable, &airtable.api_key(), OTHER_BASE);
    assert_forbidden_twice(&airtable, &cache, OTHER_BASE).await;
    // The batched and indexed reads (a list with a formula) fail the same way.
    let many = cache.get_many::<Event>(&[SOME_ID.to_owned()]).await;
    assert!(
        matches!(&many, Err(CacheError::Source(e)) if matches!(e.as_ref(), SourceError::Forbidden { .. })),
        "{many:?}"
    );
    let by_slug = cache.get_by_index::<Event>("slug", "event").await;
    assert!(
        matches!(&by_slug, Err(CacheError::Source(e)) if matches!(e.as_ref(), SourceError::Forbidden { .. })),
        "{by_slug:?}"
    );
}

#[tokio::test]
async fn an_unknown_base_fails_the_read_and_is_never_cached_as_not_found() {
    let airtable = server().await;
    let cache = cache(&airtable, &airtable.api_key(), NO_BASE);
    assert_forbidden_twice(&airtable, &cache, NO_BASE).await;
}

#[tokio::test]
async fn a_token_without_records_read_fails_the_read_naming_the_scope() {
    let airtable = server().await;
    airtable
        .add_token(Token::new("patWriteOnly").scopes([RECORDS_WRITE]))
        .expect("token");
    let cache = cache(&airtable, "patWriteOnly", BASE);
    assert_forbidden_twice(&airtable, &cache, BASE).await;
    assert_eq!(airtable.calls().forbidden, 2, "refused for the scope");
    // The same record with the full token: found (the 403 was the scope, not the record).
    let full = cache_with_full_token(&airtable);
    assert!(full.get::<Event>(SOME_ID).await.expect("read").is_some());
}

#[tokio::test]
async fn a_missing_record_is_still_not_found_and_cached_as_such() {
    // The contrast: a 404 for a record of an existing table is "not found" and the second read
    // is answered from the negative entry, so the counts above do tell the two apart.
    let airtable = server().await;
    let cache = cache_with_full_token(&airtable);
    let missing = "recMISSINGMISSING";
    assert!(cache.get::<Event>(missing).await.expect("read").is_none());
    let after_first = airtable.calls_for(BASE).total;
    assert!(cache.get::<Event>(missing).await.expect("read").is_none());
    assert_eq!(airtable.calls_for(BASE).total, after_first);
}

fn cache_with_full_token(airtable: &RunningAirtable) -> Cache {
    cache(airtable, &airtable.api_key(), BASE)
}

#[tokio::test]
async fn a_batch_delete_refused_for_any_reason_falls_back_to_one_by_one() {
    let airtable = server().await;
    let source = AirtableSource::builder(airtable.api_key(), BASE)
        .api_url(airtable.url())
        .build()
        .expect("source");
    // A refusal of the whole batch (injected: 403, 422) or a missing id in it (404).
    for (status, missing) in [(403, false), (422, false), (404, true)] {
        let mut ids: Vec<String> = (0..3)
            .map(|i| airtable.insert(BASE, TABLE, fields(&format!("E{i}"), "e", 1)))
            .collect();
        let mut expected = ids.clone();
        if missing {
            ids.push("recGONEGONEGONE01".to_owned());
        } else {
            airtable.fail_next(1, status);
        }
        let before = airtable.calls_for(BASE).delete;
        let mut deleted = source
            .delete(TABLE, &ids)
            .await
            .expect("deleted one by one");
        deleted.sort();
        expected.sort();
        assert_eq!(deleted, expected, "{status}");
        assert_eq!(
            airtable.calls_for(BASE).delete - before,
            1 + ids.len() as u64,
            "{status}: the batch, then one call per id"
        );
        for id in &expected {
            assert!(
                airtable.get(BASE, TABLE, id).is_none(),
                "{status}: {id} deleted"
            );
        }
    }
}
