//! Record-level invalidation: a change to a record purges exactly the responses that read it,
//! in every instance sharing the store.

mod common;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use common::{events_app, harness, now_ms, req, send, AppState, Event, StoreKind};
use podium_cache_tower::{CacheLayer, CacheTags};
use tokio::sync::Notify;

fn renamed(id: &str, name: &str) -> Event {
    Event {
        id: id.to_owned(),
        name: name.to_owned(),
        slug: name.to_lowercase(),
    }
}

#[tokio::test]
async fn upserting_a_record_purges_exactly_the_responses_that_read_it() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let state = AppState::new(&h.cache);
        let app = events_app(&state, CacheLayer::new(&h.cache));
        let (a, b) = (&h.ids[0], &h.ids[1]);
        let (url_a, url_b) = (format!("/events/{a}"), format!("/events/{b}"));

        send(&app, req(&url_a)).await;
        send(&app, req(&url_b)).await;
        assert!(send(&app, req(&url_a)).await.is_layer_hit());
        assert!(send(&app, req(&url_b)).await.is_layer_hit());

        h.cache
            .upsert(&renamed(a, "Renamed A"), now_ms())
            .await
            .expect("upsert");

        let after_a = send(&app, req(&url_a)).await;
        assert!(
            !after_a.is_layer_hit(),
            "{kind:?}: the response that read A survived"
        );
        assert_eq!(after_a.json()["name"], "Renamed A");
        let after_b = send(&app, req(&url_b)).await;
        assert!(
            after_b.is_layer_hit(),
            "{kind:?}: the response that read only B was purged"
        );
        assert_eq!(after_b.json()["name"], "Event 1");
    }
}

#[tokio::test]
async fn a_purge_made_through_another_instance_holds_here() {
    let h = harness(StoreKind::Redis).await;
    let state_one = AppState::new(&h.cache);
    let one = events_app(&state_one, CacheLayer::new(&h.cache));
    let second_cache = h.second_instance().await;
    let state_two = AppState::new(&second_cache);
    let two = events_app(&state_two, CacheLayer::new(&second_cache));
    let a = &h.ids[0];
    let url = format!("/events/{a}");

    send(&one, req(&url)).await;
    let shared = send(&two, req(&url)).await;
    assert!(shared.is_layer_hit(), "instances share stored responses");
    assert_eq!(state_two.runs(), 0);

    second_cache
        .upsert(&renamed(a, "Changed Elsewhere"), now_ms())
        .await
        .expect("upsert");

    let reply = send(&one, req(&url)).await;
    assert!(
        !reply.is_layer_hit(),
        "instance one still served the purged response"
    );
    assert_eq!(reply.json()["name"], "Changed Elsewhere");
}

#[tokio::test]
async fn list_responses_are_purged_when_a_record_of_their_entity_changes() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let state = AppState::new(&h.cache);
        let app = events_app(&state, CacheLayer::new(&h.cache));
        let list = send(&app, req("/events")).await;
        assert_eq!(list.json().as_array().map(Vec::len), Some(4));
        assert!(send(&app, req("/events")).await.is_layer_hit());

        // A record the list never contained: a create.
        let created = renamed("recNEWNEWNEWNEW01", "Brand New");
        h.cache.upsert(&created, now_ms()).await.expect("upsert");
        h.airtable.insert_with_id(
            common::BASE,
            "Events",
            &created.id,
            common::fields("Brand New"),
        );

        let after = send(&app, req("/events")).await;
        assert!(
            !after.is_layer_hit(),
            "{kind:?}: a create left the list cached"
        );
        assert_eq!(after.json().as_array().map(Vec::len), Some(5));
    }
}

#[tokio::test]
async fn delete_purges_the_deleted_records_responses() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let state = AppState::new(&h.cache);
        let app = events_app(&state, CacheLayer::new(&h.cache));
        let url = format!("/events/{}", h.ids[2]);
        assert_eq!(send(&app, req(&url)).await.status, StatusCode::OK);
        assert!(send(&app, req(&url)).await.is_layer_hit());

        h.cache.delete::<Event>(&h.ids[2]).await.expect("delete");

        let gone = send(&app, req(&url)).await;
        assert_eq!(
            gone.status,
            StatusCode::NOT_FOUND,
            "{kind:?}: a deleted record was served"
        );
        assert_eq!(gone.json()["error"], "not found");
    }
}

#[tokio::test]
async fn handler_tags_purge_too_and_the_tag_header_never_reaches_the_client() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let tagged_id = h.ids[3].clone();
        let id = tagged_id.clone();
        let app = Router::new()
            .route(
                "/by-header",
                get(move || {
                    let id = id.clone();
                    async move { ([("cache-tag", format!("events:{id} other:x"))], "header") }
                }),
            )
            .route(
                "/by-extension",
                get(move || {
                    let id = tagged_id.clone();
                    async move { (CacheTags::new().record("events", id), "extension") }
                }),
            )
            .route("/untagged", get(|| async { "untagged" }))
            .layer(CacheLayer::new(&h.cache));
        for url in ["/by-header", "/by-extension", "/untagged"] {
            let first = send(&app, req(url)).await;
            assert_eq!(
                first.header("cache-tag"),
                "",
                "the tag header leaked to the client"
            );
            assert!(send(&app, req(url)).await.is_layer_hit());
        }

        h.cache
            .invalidate::<Event>(&h.ids[3])
            .await
            .expect("invalidate");

        assert!(
            !send(&app, req("/by-header")).await.is_layer_hit(),
            "{kind:?}"
        );
        assert!(
            !send(&app, req("/by-extension")).await.is_layer_hit(),
            "{kind:?}"
        );
        assert!(
            send(&app, req("/untagged")).await.is_layer_hit(),
            "{kind:?}"
        );
    }
}

#[derive(Clone)]
struct RaceState {
    app: AppState,
    read: Arc<Notify>,
    release: Arc<Notify>,
}

async fn slow_event(State(state): State<RaceState>, Path(id): Path<String>) -> impl IntoResponse {
    let event = state.app.cache.get::<Event>(&id).await.ok().flatten();
    state.read.notify_one();
    // Hold the (now old) record until the test has changed it.
    state.release.notified().await;
    Json(event)
}

#[tokio::test]
async fn a_response_whose_record_changes_while_it_is_produced_is_not_kept() {
    for kind in StoreKind::ALL {
        let h = harness(kind).await;
        let state = RaceState {
            app: AppState::new(&h.cache),
            read: Arc::new(Notify::new()),
            release: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/events/{id}", get(slow_event))
            .layer(CacheLayer::new(&h.cache))
            .with_state(state.clone());
        let a = h.ids[0].clone();
        let url = format!("/events/{a}");

        let in_flight = tokio::spawn({
            let (app, url) = (app.clone(), url.clone());
            async move { send(&app, req(&url)).await }
        });
        state.read.notified().await;
        h.cache
            .upsert(&renamed(&a, "Newer"), now_ms())
            .await
            .expect("upsert");
        state.release.notify_one();
        let old = in_flight.await.expect("request task");
        assert_eq!(old.json()["name"], "Event 0");
        assert_eq!(old.cache_status(), "podium; fwd=miss; detail=superseded");

        // The next request must not be served the old record from the layer.
        let next = tokio::spawn({
            let (app, url) = (app.clone(), url.clone());
            async move { send(&app, req(&url)).await }
        });
        state.read.notified().await;
        state.release.notify_one();
        let next = next.await.expect("request task");
        assert_eq!(
            next.json()["name"],
            "Newer",
            "{kind:?}: the superseded response was kept"
        );
    }
}
