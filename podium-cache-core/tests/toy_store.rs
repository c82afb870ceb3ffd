//! A store written from the seven required `Store` methods only (`toy_store/toy.rs`, the same
//! code the `store` module docs show): the whole store behaviour suite passes on it (its locks,
//! counters, sets and claims come from the per-process fallback), and the cache reads through
//! it.

mod common;
mod store_suite;

use std::sync::Arc;

use common::{fields, harness, now_ms, Event, StoreKind, BASE, TABLE};
use podium_cache_core::cache::Query;
use podium_cache_core::scope::Scope;
use podium_cache_core::store::Locks;
use store_suite::store_suite;

include!("toy_store/toy.rs");

async fn toy() -> (Arc<dyn Store>, ()) {
    (Arc::new(ToyStore::default()), ())
}

store_suite!(toy, toy());

#[tokio::test]
async fn a_toy_store_has_no_extensions_of_its_own() {
    let store = ToyStore::default();
    assert!(store.extensions().is_none());
    assert_eq!(store.epoch(), 0);
}

/// The toy store, but every `get` lets other tasks run before it answers: a check-then-set
/// that is not serialised lets every racer through.
#[derive(Default)]
struct YieldingStore(ToyStore);

#[async_trait]
impl Store for YieldingStore {
    fn name(&self) -> &'static str {
        "yielding-toy"
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let value = self.0.get(key).await;
        tokio::task::yield_now().await;
        value
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, StoreError> {
        self.0.get_many(keys).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        self.0.set(key, value, ttl).await
    }
    async fn delete(&self, keys: &[String]) -> Result<u64, StoreError> {
        self.0.delete(keys).await
    }
    async fn write_record(&self, write: &RecordWrite) -> Result<WriteOutcome, StoreError> {
        self.0.write_record(write).await
    }
    async fn scan(&self, pattern: &str, cursor: u64, count: usize) -> Result<ScanPage, StoreError> {
        self.0.scan(pattern, cursor, count).await
    }
}

#[tokio::test]
async fn racing_lock_takers_on_a_store_without_extensions_get_one_lock() {
    let store: Arc<dyn Store> = Arc::new(YieldingStore::default());
    // Every taker is spawned before any is awaited, so they race.
    let takers: Vec<_> = (0..32)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let token = format!("taker-{i}");
                store
                    .set_if_absent("lock", token.into(), store_suite::MINUTE)
                    .await
                    .expect("set_if_absent")
            })
        })
        .collect();
    let mut won = 0;
    for taker in takers {
        won += usize::from(taker.await.expect("taker panicked"));
    }
    assert_eq!(won, 1, "exactly one taker holds the lock");
}

#[tokio::test]
async fn the_cache_reads_through_a_toy_store() {
    let h = harness(StoreKind::Memory)
        .records(3)
        .start()
        .await
        .on_store(Arc::new(ToyStore::default()));
    let id = &h.ids[0];
    let scope = Scope::new();
    let first = scope.run(h.cache.get::<Event>(id)).await.unwrap().unwrap();
    assert_eq!(first.name, "Event 0");
    let report = scope.report();
    assert_eq!((report.hits, report.misses, report.source_calls), (0, 1, 1));
    let scope = Scope::new();
    let second = scope.run(h.cache.get::<Event>(id)).await.unwrap().unwrap();
    assert_eq!(first, second);
    let report = scope.report();
    assert_eq!((report.hits, report.misses, report.source_calls), (1, 0, 0));
    // An invalidation (a record write and the entity's generation counter) makes it a miss.
    h.cache.invalidate::<Event>(id).await.unwrap();
    let calls = h.calls();
    h.cache.get::<Event>(id).await.unwrap().unwrap();
    assert_eq!(h.calls(), calls + 1, "read again after the invalidation");
}

#[tokio::test]
async fn a_cached_query_on_a_toy_store_sees_a_new_record() {
    let h = harness(StoreKind::Memory)
        .records(4)
        .start()
        .await
        .on_store(Arc::new(ToyStore::default()));
    let q = Query::field_equals("name", "Event 2");
    let first: Vec<Event> = h.cache.query(&q).await.unwrap();
    assert_eq!(first.len(), 1);
    let calls = h.calls();
    let second: Vec<Event> = h.cache.query(&q).await.unwrap();
    assert_eq!((first, h.calls()), (second, calls), "cached");
    // The upsert moves the entity's query generation (a counter the fallback keeps in the
    // toy store itself, where the query path reads it).
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
    assert_eq!(third.len(), 2);
}
