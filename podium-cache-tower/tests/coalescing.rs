//! Freshness under load: concurrent misses for one key run the handler once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::{harness, req, send, wait_until, within, Counter, StoreKind};
use podium_cache_tower::policy::Audience;
use podium_cache_tower::CacheLayer;
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_misses_run_the_handler_once() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let runs = Counter::default();
        let counter = runs.clone();
        let app = Router::new()
            .route(
                "/slow",
                get(move || {
                    let counter = counter.clone();
                    async move {
                        let run = counter.bump();
                        // Long enough for all hundred requests to arrive while it runs.
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        format!("run {run}")
                    }
                }),
            )
            .layer(
                CacheLayer::builder(&h.cache)
                    .coalesce_timeout(Duration::from_secs(60))
                    .detailed_status(Audience::Everyone)
                    .build(),
            );

        let replies = futures::future::join_all((0..100).map(|_| {
            let app = app.clone();
            tokio::spawn(async move { send(&app, req("/slow")).await })
        }))
        .await;
        let replies: Vec<_> = replies.into_iter().map(|r| r.expect("task")).collect();

        assert_eq!(runs.get(), 1, "{kind:?}: the handler ran more than once");
        assert!(replies
            .iter()
            .all(|r| r.status == 200 && r.text() == "run 1"));
        let stored = replies
            .iter()
            .filter(|r| r.cache_status() == "podium; fwd=miss; stored")
            .count();
        assert_eq!(
            stored, 1,
            "{kind:?}: exactly one request fetched and stored"
        );
        let collapsed = replies
            .iter()
            .filter(|r| r.cache_status() == "podium; fwd=miss; collapsed")
            .count();
        assert!(collapsed > 0, "{kind:?}: no request waited for the leader");
        assert!(replies
            .iter()
            .filter(|r| r.cache_status() != "podium; fwd=miss; stored")
            .all(|r| r.x_cache() == "HIT"));
    }
}

#[tokio::test]
async fn a_waiting_request_runs_the_handler_itself_after_the_timeout() {
    let h = harness(StoreKind::Memory).await;
    let runs = Counter::default();
    let release = Arc::new(Notify::new());
    let (counter, gate) = (runs.clone(), Arc::clone(&release));
    let app = Router::new()
        .route(
            "/stuck",
            get(move || {
                let (counter, gate) = (counter.clone(), Arc::clone(&gate));
                async move {
                    let run = counter.bump();
                    if run == 1 {
                        gate.notified().await; // the leader hangs until the test releases it
                    }
                    format!("run {run}")
                }
            }),
        )
        .layer(
            CacheLayer::builder(&h.cache)
                .coalesce_timeout(Duration::from_millis(100))
                .build(),
        );

    let leader = tokio::spawn({
        let app = app.clone();
        async move { send(&app, req("/stuck")).await }
    });
    wait_until(
        "the leader runs the handler",
        Duration::from_secs(30),
        || runs.get() == 1,
    )
    .await;
    let follower = within(
        "the follower to give up waiting",
        Duration::from_secs(30),
        send(&app, req("/stuck")),
    )
    .await;
    assert_eq!(
        follower.text(),
        "run 2",
        "the follower gave up waiting and ran it"
    );
    assert_eq!(follower.cache_status(), "podium; fwd=miss; stored");

    release.notify_one();
    let leader = within("the released leader", Duration::from_secs(30), leader)
        .await
        .expect("leader task");
    assert_eq!(leader.text(), "run 1");
}

// One thread: while the test sleeps, the follower runs until it waits (on the memory store
// nothing it does waits for I/O), so after the sleep it has either run the handler or joined.
#[tokio::test(flavor = "current_thread")]
async fn a_failed_leader_lets_the_waiting_requests_run_the_handler() {
    let h = harness(StoreKind::Memory).await;
    let runs = Counter::default();
    let release = Arc::new(Notify::new());
    let (counter, gate) = (runs.clone(), Arc::clone(&release));
    let app = Router::new()
        .route(
            "/flaky",
            get(move || {
                let (counter, gate) = (counter.clone(), Arc::clone(&gate));
                async move {
                    let run = counter.bump();
                    if run == 1 {
                        gate.notified().await;
                    }
                    format!("run {run}")
                }
            }),
        )
        .layer(
            CacheLayer::builder(&h.cache)
                .coalesce_timeout(Duration::from_secs(60))
                .build(),
        );
    // The leader's client goes away mid-request: its future is dropped.
    let leader = tokio::spawn({
        let app = app.clone();
        async move { send(&app, req("/flaky")).await }
    });
    wait_until(
        "the leader runs the handler",
        Duration::from_secs(30),
        || runs.get() == 1,
    )
    .await;
    let follower = tokio::spawn({
        let app = app.clone();
        async move { send(&app, req("/flaky")).await }
    });
    // Let the follower run until it waits (see the runtime above).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        runs.get(),
        1,
        "the follower ran the handler instead of joining the leader"
    );
    assert!(
        !follower.is_finished(),
        "the follower answered without waiting for the leader"
    );
    leader.abort();
    // Half the coalescing timeout (60 s): the follower must be released by the leader's drop,
    // not by giving up.
    let follower = within(
        "the follower to be released when the leader went away",
        Duration::from_secs(30),
        follower,
    )
    .await
    .expect("follower task");
    assert_eq!(follower.text(), "run 2");
    assert_eq!(runs.get(), 2);
}
