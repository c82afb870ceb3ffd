//! The task runner as a user's own binary runs it: `Tasks::new().model::<Member>()
//! .model::<Workshop>()` over models of this test (not the example's), against a real
//! redis-server and the local Airtable server; settings through a temporary `--config-dir`.
#![cfg(feature = "tasks")]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use common::workshops::{declare_tables, Member, Workshop};
use podium_cache_core::cache::Cache;
use podium_cache_core::source::AirtableSource;
use podium_cache_core::store::RedisStore;
use podium_cache_core::tasks::{TaskRun, Tasks};
use podium_local::airtable::{AirtableServer, RunningAirtable};
use podium_local::redis::RedisServer;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

const BASE: &str = "appTASKSTASKS0001";

/// The whole task runner of a user with two models.
fn tasks() -> Tasks {
    Tasks::new().model::<Member>().model::<Workshop>()
}

fn run(args: &[&str]) -> TaskRun {
    let mut all = vec!["podium-tasks"];
    all.extend_from_slice(args);
    let run = tasks().run_captured(all);
    println!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        run.code, run.stdout, run.stderr
    );
    run
}

/// A fresh empty directory under the system's temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "podium-tasks-{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A runtime that keeps the local servers running while a test calls the (blocking) runner.
struct World {
    runtime: tokio::runtime::Runtime,
    airtable: RunningAirtable,
    redis: RedisServer,
}

impl World {
    fn start() -> World {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let airtable = runtime
            .block_on(AirtableServer::builder().rate_limit(None).start())
            .expect("local airtable");
        declare_tables(&airtable, BASE);
        let redis = RedisServer::start().expect("redis-server");
        World {
            runtime,
            airtable,
            redis,
        }
    }

    /// A config dir whose `.secrets.toml` names this world (with `api_key` as the token).
    fn config_dir(&self, api_key: &str) -> PathBuf {
        let dir = temp_dir("config");
        let toml = format!(
            "redis_url = \"{}\"\nairtable_api_key = \"{api_key}\"\nairtable_base_id = \"{BASE}\"\n\
             airtable_api_url = \"{}\"\n",
            self.redis.url(),
            self.airtable.url()
        );
        std::fs::write(dir.join(".secrets.toml"), toml).expect("write .secrets.toml");
        dir
    }

    /// A cache over the same store and Airtable, as the app would have.
    fn cache(&self) -> Cache {
        self.runtime.block_on(async {
            let store = RedisStore::builder(self.redis.url())
                .call_timeout(Duration::from_secs(2))
                .connect()
                .await
                .expect("redis store");
            let source = AirtableSource::builder(self.airtable.api_key(), BASE)
                .api_url(self.airtable.url())
                .build()
                .expect("source");
            Cache::builder(Arc::new(store), Arc::new(source)).build()
        })
    }
}

#[test]
fn gen_scripts_writes_exactly_one_script_per_model_of_the_runner() {
    let out = temp_dir("scripts");
    let run = run(&["gen-scripts", "--out", out.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, 0);
    let written: BTreeSet<String> = std::fs::read_dir(&out)
        .expect("out dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        written,
        BTreeSet::from([
            "members_automation.js".to_owned(),
            "workshops_automation.js".to_owned()
        ])
    );
    assert!(run.stdout.contains("Members"), "the table of each script");
    let script = std::fs::read_to_string(out.join("members_automation.js")).expect("script");
    assert!(script.contains("\"Members\""), "the script names its table");
    std::fs::remove_dir_all(&out).expect("cleanup");
}

#[test]
fn sweep_of_an_unknown_entity_fails_listing_the_known_ones() {
    let run = run(&["sweep", "--entity", "nope"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("unknown entity `nope` (known: members, workshops)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_runner_without_models_refuses_every_command() {
    assert_ne!(Tasks::new().run_from(["x", "sweep"]), ExitCode::SUCCESS);
    let run = Tasks::new().run_captured(["my-tasks", "gen-scripts"]);
    assert_eq!(run.code, 1);
    assert!(run
        .stderr
        .starts_with("my-tasks: this task runner has no model"));
    assert!(run.stderr.contains(".model::<YourModel>()"));
}

#[test]
fn help_and_hints_name_the_runner_binary_never_cargo_xtask() {
    let run = run(&["sweep", "--help"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("Usage: podium-tasks sweep"),
        "{}",
        run.stdout
    );
    let run = run_without_args();
    assert_eq!(run.code, 1, "no command is an error");
    assert!(!run.stderr.contains("xtask"));
    assert!(run.stderr.contains("podium-tasks"));
}

fn run_without_args() -> TaskRun {
    tasks().run_captured(["/usr/local/bin/podium-tasks"])
}

#[test]
fn sweep_removes_a_record_deleted_in_airtable_and_prints_the_json_report() {
    let world = World::start();
    let workshop = world
        .airtable
        .insert(BASE, "Workshops", fields(json!({"title": "Rust"})));
    let members: Vec<String> = (0..3)
        .map(|i| {
            world.airtable.insert(
                BASE,
                "Members",
                fields(json!({"name": format!("M{i}"), "workshops": [workshop]})),
            )
        })
        .collect();
    let cache = world.cache();
    world.runtime.block_on(async {
        for id in &members {
            assert!(cache.get::<Member>(id).await.expect("read").is_some());
        }
        assert!(cache
            .get::<Workshop>(&workshop)
            .await
            .expect("read")
            .is_some());
    });
    assert!(world.airtable.remove(BASE, "Members", &members[1]));
    let config = world.config_dir(&world.airtable.api_key());

    let run = run(&[
        "sweep",
        "--json",
        "--config-dir",
        config.to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code, 0, "clean");
    let report: Value = serde_json::from_str(&run.stdout).expect("the JSON report on stdout");
    assert_eq!(report["totals"]["cached"], 4);
    assert_eq!(report["totals"]["removed"], 1);
    let entities = report["entities"].as_array().expect("entities");
    assert_eq!(entities.len(), 2);
    assert_eq!(entities[0]["entity"], "members");
    assert_eq!(entities[0]["gone_ids"], json!([members[1]]));
    assert_eq!(entities[1]["gone"], 0);

    world.runtime.block_on(async {
        let calls = world.airtable.calls().total;
        assert_eq!(cache.get::<Member>(&members[1]).await.expect("read"), None);
        assert!(cache
            .get::<Member>(&members[0])
            .await
            .expect("read")
            .is_some());
        assert_eq!(
            world.airtable.calls().total,
            calls,
            "the removed record is tombstoned, the others still cached"
        );
    });
    std::fs::remove_dir_all(&config).expect("cleanup");
}

#[test]
fn a_sweep_with_nothing_cached_says_which_models_it_checked() {
    let world = World::start();
    let config = world.config_dir(&world.airtable.api_key());
    let run = run(&["sweep", "--config-dir", config.to_str().expect("utf-8")]);
    assert_eq!(run.code, 0);
    assert!(
        run.stderr
            .contains("no cached record of members (Members), workshops (Workshops)"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("members") && run.stdout.contains("workshops"));
    std::fs::remove_dir_all(&config).expect("cleanup");
}

#[test]
fn check_passes_with_the_app_settings() {
    let world = World::start();
    let config = world.config_dir(&world.airtable.api_key());
    let run = run(&["check", "--config-dir", config.to_str().expect("utf-8")]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("ok      redis_url"), "{}", run.stdout);
    assert!(run.stdout.contains("ok      table \"Members\""));
    assert!(run.stdout.contains("ok      table \"Workshops\""));
    assert!(!run.stdout.contains("PROBLEM"));
    std::fs::remove_dir_all(&config).expect("cleanup");
}

#[test]
fn check_with_a_wrong_airtable_key_and_no_redis_lists_both_problems_and_fails() {
    let world = World::start();
    let config = world.config_dir("patWRONGWRONGWRONG");
    let free = podium_local::redis::free_port().expect("a free port");
    let toml = std::fs::read_to_string(config.join(".secrets.toml"))
        .expect("read")
        .replace(&world.redis.url(), &format!("redis://127.0.0.1:{free}"));
    std::fs::write(config.join(".secrets.toml"), toml).expect("write");

    let run = run(&["check", "--config-dir", config.to_str().expect("utf-8")]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains("PROBLEM airtable_api_key: Airtable refused the token"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("PROBLEM redis_url"), "{}", run.stdout);
    assert!(run.stdout.contains("2 problems found"));
    assert!(run.stdout.contains("run `podium-tasks check` again"));
    std::fs::remove_dir_all(&config).expect("cleanup");
}

#[test]
fn check_names_a_table_the_base_does_not_have() {
    let world = World::start();
    // Only the members table exists in this base.
    world
        .airtable
        .insert(BASE, "Members", fields(json!({"name": "M"})));
    let config = world.config_dir(&world.airtable.api_key());
    let run = tasks().model::<Missing>().run_captured([
        "t",
        "check",
        "--config-dir",
        config.to_str().expect("utf-8"),
    ]);
    println!("{}", run.stdout);
    assert_eq!(run.code, 1);
    assert!(run
        .stdout
        .contains("the token cannot read table \"Nowhere\" of base"));
    std::fs::remove_dir_all(&config).expect("cleanup");
}

#[derive(
    Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, podium_cache_core::Cacheable,
)]
#[cacheable(table = "Nowhere")]
struct Missing {
    id: String,
    name: String,
}
