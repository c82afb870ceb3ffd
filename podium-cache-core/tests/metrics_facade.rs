//! Feature `metrics`: every engine counter is mirrored to the `metrics` facade, so the exporter
//! an application installs sees the same numbers as [`Cache::metrics`].

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{harness, Event, StoreKind};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use parking_lot::Mutex;

/// A recorder that keeps counters by name (what an exporter would read).
#[derive(Default)]
struct Counters(Mutex<HashMap<String, Arc<AtomicU64>>>);

impl Counters {
    fn get(&self, name: &str) -> u64 {
        self.0
            .lock()
            .get(name)
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    }
}

impl Recorder for Counters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let counter = Arc::clone(self.0.lock().entry(key.name().to_owned()).or_default());
        Counter::from_arc(counter)
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn engine_counters_reach_the_metrics_facade() {
    let recorder = Counters::default();
    // The recorder is per thread: a current-thread runtime keeps every task on this one.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let snapshot = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let h = harness(StoreKind::Memory).records(1).start().await;
            let id = &h.ids[0];
            assert!(h.cache.get::<Event>(id).await.expect("miss").is_some());
            assert!(h.cache.get::<Event>(id).await.expect("hit").is_some());
            h.cache.metrics()
        })
    });
    assert_eq!((snapshot.misses, snapshot.hits), (1, 1));
    for (name, value) in snapshot.pairs() {
        assert_eq!(
            recorder.get(&format!("podium_cache_{name}")),
            value,
            "podium_cache_{name} must equal the snapshot's {name}"
        );
    }
}
