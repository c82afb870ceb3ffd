//! The README's "Use it in your app" path, run as a user runs it: the app binary and the task
//! runner binary of this crate, each a separate process configured by `PODIUM_*` variables,
//! against the local Airtable server and a real redis-server they share.

mod common;

use std::collections::BTreeSet;

use common::{World, ADA, BASE, COBOL, GIT, GRACE, LINUS, RUST};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_serves_a_miss_then_a_hit_from_the_cache() {
    let world = World::start("miss-hit").await;
    let app = world.app().await;

    for path in [
        format!("/members/{ADA}"),
        "/members/by-email/ada@example.com".to_owned(),
        format!("/workshops/{RUST}"),
    ] {
        let first = app.get(&path).await;
        assert_eq!(first.status, 200, "{path}: {first:?}");
        assert_eq!(first.x_cache, "MISS", "{path}: {first:?}");
        assert_eq!(first.cache_status, "podium; fwd=miss; stored", "{path}: {first:?}");

        let calls = world.airtable.calls().total;
        let second = app.get(&path).await;
        assert_eq!((second.status, second.x_cache.as_str()), (200, "HIT"), "{path}: {second:?}");
        assert_eq!(second.cache_status, "podium; hit", "{path}: {second:?}");
        assert_eq!(second.body, first.body, "{path}: the same record");
        assert_eq!(world.airtable.calls().total, calls, "{path}: a hit calls no one");
    }
    let member = app.get(&format!("/members/{ADA}")).await.body;
    assert_eq!(member, json!({"id": ADA, "name": "Ada", "email": "ada@example.com"}));
    let workshop = app.get(&format!("/workshops/{RUST}")).await.body;
    assert_eq!(workshop, json!({"id": RUST, "title": "Rust", "host": [ADA]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_scripts_writes_exactly_the_scripts_of_the_apps_own_models() {
    let world = World::start("gen-scripts").await;
    let out = world.dir.0.join("scripts");
    let (status, stdout, stderr) =
        world.tasks(&["gen-scripts", "--out", out.to_str().expect("a UTF-8 path")]).await;
    assert!(status.success(), "gen-scripts: {status}\n{stdout}\n{stderr}");

    let written: BTreeSet<String> = std::fs::read_dir(&out)
        .expect("the output directory")
        .map(|entry| entry.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    let expected = ["members_automation.js", "workshops_automation.js"].map(String::from);
    assert_eq!(written, BTreeSet::from(expected));
    let script = |name: &str| std::fs::read_to_string(out.join(name)).expect("a script");
    assert!(script("members_automation.js").contains("\"Members\""), "names its table");
    assert!(script("workshops_automation.js").contains("\"host\""), "sends the model's fields");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_with_the_settings_the_app_runs_on() {
    let world = World::start("check").await;
    let (status, stdout, stderr) = world.tasks(&["check"]).await;
    assert!(status.success(), "check: {status}\n{stdout}\n{stderr}");
    assert!(stdout.contains("table \"Members\""), "{stdout}");
    assert!(stdout.contains("table \"Workshops\""), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_from_the_task_runner_makes_the_running_app_answer_404_for_each_deleted_record_at_once(
) {
    let world = World::start("sweep").await;
    let app = world.app().await;
    let live =
        [format!("/members/{ADA}"), format!("/members/{GRACE}"), format!("/workshops/{RUST}")];
    let live = [&live[..], &[format!("/workshops/{COBOL}")]].concat();
    let deleted = [format!("/members/{LINUS}"), format!("/workshops/{GIT}")];
    let by_email = "/members/by-email/linus@example.com".to_owned();
    for path in live.iter().chain(&deleted).chain([&by_email]) {
        assert_eq!(app.get(path).await.x_cache, "MISS", "{path}: first read");
        assert_eq!(app.get(path).await.x_cache, "HIT", "{path}: cached");
    }

    // Deleted in Airtable behind the cache's back: no automation fires on a delete.
    assert!(world.airtable.remove(BASE, "Members", LINUS));
    assert!(world.airtable.remove(BASE, "Workshops", GIT));
    for path in deleted.iter().chain([&by_email]) {
        let answer = app.get(path).await;
        assert_eq!((answer.status, answer.x_cache.as_str()), (200, "HIT"), "{path}: still served");
    }

    let (status, stdout, stderr) = world.tasks(&["sweep", "--json"]).await;
    assert!(status.success(), "sweep: {status}\n{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("the JSON report on stdout");
    assert_eq!(report["totals"]["removed"], 2, "{report:#}");
    let gone: Vec<&Value> = report["entities"].as_array().expect("entities").iter().collect();
    assert_eq!(gone[0]["gone_ids"], json!([LINUS]), "{report:#}");
    assert_eq!(gone[1]["gone_ids"], json!([GIT]), "{report:#}");

    // The first request after the sweep, each: no wait, no retry, and no Airtable call.
    world.airtable.reset_calls();
    for path in &deleted {
        let answer = app.get(path).await;
        assert_eq!(answer.status, 404, "{path}: {answer:?}\n{}", app.stderr());
    }
    for path in &live {
        let answer = app.get(path).await;
        assert_eq!((answer.status, answer.x_cache.as_str()), (200, "HIT"), "{path}: {answer:?}");
    }
    assert_eq!(world.airtable.calls().total, 0, "tombstones and cached records: no Airtable call");
    // The response read by e-mail went with the record, and so did its index entry: the
    // lookup asks Airtable, which no longer has it.
    let gone = app.get(&by_email).await;
    assert_eq!((gone.status, gone.x_cache.as_str()), (404, "MISS"), "{by_email}: {gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_app_and_its_maintenance_cleanly() {
    let world = World::start("ctrl-c").await;
    let app = world.app().await;
    assert_eq!(app.get(&format!("/members/{ADA}")).await.status, 200);
    let stderr = app.stderr();
    let status = app.interrupt().await;
    assert!(status.success(), "the app exits 0 on Ctrl-C: {status}\n{stderr}");
}
