//! The sweep of the sweep issue, measured: 10,000 cached records over five tables, 3% deleted
//! in Airtable behind the cache's back (some still referenced), at Airtable's real 5 requests/s.
//! Runs the default strategy and `references` on the same data, and beside them, in the same
//! run, the plain batched check they are measured against: every cached id asked of Airtable
//! by id, 100 a call. Reports Airtable calls, removals (or, for the check, ids found gone) and
//! seconds.
//!
//! `cargo bench -p podium-cache-core --bench sweep [-- --json PATH]`
#![allow(dead_code, unused_imports)]

include!("../tests/sweep_fixture/fixture.rs");

use std::time::Instant;

/// One sweep over a fresh 10,000-record fixture at Airtable's real limit.
async fn run(strategy: Strategy) -> serde_json::Value {
    let setup = Instant::now();
    let fx = Fixture::start(1, REAL, every_33rd).await;
    let setup_seconds = setup.elapsed().as_secs_f64();
    eprintln!("sweep bench: {strategy:?} fixture ready in {setup_seconds:.1} s");
    let before = fx.calls();
    let started = Instant::now();
    let report = fx.sweep().strategy(strategy).run().await.expect("sweep");
    let seconds = started.elapsed().as_secs_f64();
    let calls = fx.calls() - before;
    eprintln!("sweep bench: {strategy:?} sweep done in {seconds:.1} s");
    println!("{report}");
    serde_json::json!({
        "strategy": format!("{strategy:?}"),
        "cached": report.totals.cached,
        "deleted_in_airtable": fx.all_deleted().len(),
        "removed": report.totals.removed,
        "gone_referenced": report.totals.gone_referenced,
        "unconfirmed": report.totals.unconfirmed,
        "airtable_calls": calls,
        "baseline_calls": report.totals.baseline_calls,
        "savings_percent": report.totals.savings_percent,
        "seconds": seconds,
        "setup_seconds": setup_seconds,
        "airtable_429": fx.airtable.calls().rate_limited,
    })
}

/// The baseline, measured: every cached id of every table asked of Airtable by id, 100 a call
/// (`OR(RECORD_ID()=…)`), on a fresh fixture at Airtable's real limit; what it finds gone is
/// what a sweep must remove.
async fn run_batched_check() -> serde_json::Value {
    let setup = Instant::now();
    let fx = Fixture::start(1, REAL, every_33rd).await;
    let setup_seconds = setup.elapsed().as_secs_f64();
    let before = fx.calls();
    let started = Instant::now();
    let source = fx.cache.source();
    let (mut cached, mut gone) = (0u64, 0u64);
    for entity in ENTITIES {
        let ids = fx.data.ids(entity);
        cached += ids.len() as u64;
        for chunk in ids.chunks(100) {
            let found = source
                .get_many(table(entity), chunk)
                .await
                .expect("batched check");
            gone += (chunk.len() - found.len()) as u64;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    serde_json::json!({
        "strategy": "batched by-id check (baseline)",
        "cached": cached,
        "deleted_in_airtable": fx.all_deleted().len(),
        "removed": gone,
        "airtable_calls": fx.calls() - before,
        "baseline_calls": fx.calls() - before,
        "savings_percent": 0.0,
        "seconds": seconds,
        "setup_seconds": setup_seconds,
        "airtable_429": fx.airtable.calls().rate_limited,
    })
}

fn main() {
    let process = Instant::now();
    let json_path = std::env::args().skip_while(|a| a != "--json").nth(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Both strategies at once, each on its own Airtable server and redis-server (the client's
    // limiter is per server and base, so each keeps to its own 5 requests/s).
    let results = runtime.block_on(async {
        let (baseline, references, full) = tokio::join!(
            run_batched_check(),
            run(Strategy::References),
            run(Strategy::Full)
        );
        vec![baseline, references, full]
    });
    eprintln!(
        "sweep bench: both runs done {:.1} s after the start (fixtures dropped)",
        process.elapsed().as_secs_f64()
    );
    println!("## Sweep (10,000 cached records, 3% deleted in Airtable, 5 requests/s)\n");
    println!("| strategy | Airtable calls | batched check's calls | savings | removed (found gone) of deleted | 429s | seconds | fixture setup (s) |");
    println!("|---|---|---|---|---|---|---|---|");
    for row in &results {
        println!(
            "| {} | {} | {} | {:.1}% | {} of {} | {} | {:.1} | {:.1} |",
            row["strategy"].as_str().unwrap_or("?"),
            row["airtable_calls"],
            row["baseline_calls"],
            row["savings_percent"].as_f64().unwrap_or(f64::NAN),
            row["removed"],
            row["deleted_in_airtable"],
            row["airtable_429"],
            row["seconds"].as_f64().unwrap_or(f64::NAN),
            row["setup_seconds"].as_f64().unwrap_or(f64::NAN),
        );
    }
    if let Some(path) = json_path {
        if let Some(parent) = std::path::Path::new(&path).parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(
            &path,
            serde_json::to_vec_pretty(&results).unwrap_or_default(),
        );
    }
}
