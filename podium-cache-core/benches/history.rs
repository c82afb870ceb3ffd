//! The history check at scale: 1,000,000 operations (reads, webhook upserts, deletes and
//! invalidations on 50 records) from two engine instances with their in-process tiers over one
//! real redis-server and the local Airtable server, with injected delays (a random sleep after
//! some store reads and source fetches, and Airtable latency) so fills and tier inserts race
//! writes far more often than on a quiet loopback; and the invalidation links cut every 5 s for
//! 1.5 s (`CLIENT KILL TYPE pubsub`, link users switched off), so each tier flushes, is bypassed
//! and resubscribes while writes go on. Prints operations, violations (must be 0), the largest
//! cross-instance spread observed and throughput; the checker is `tests/history/mod.rs`, the
//! same one `cargo test --test history` runs. Exits 1 on a violation.
//!
//! `cargo bench -p podium-cache-core --bench history [-- --ops N] [--json PATH]`
#![allow(dead_code, unused_imports)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/history/mod.rs"]
mod history;

use std::time::Duration;

use history::{Delays, Plan};

/// The value after `flag` on the command line.
fn arg(flag: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != flag).nth(1)
}

fn main() {
    let json_path = arg("--json");
    let ops = arg("--ops")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let plan = Plan {
        ops,
        tasks_per_instance: 24,
        store_delays: Delays {
            chance: 0.1,
            max: Duration::from_millis(5),
        },
        source_delays: Delays {
            chance: 1.0,
            max: Duration::from_millis(5),
        },
        invalidations: 0.02,
        airtable_latency: Duration::from_millis(2),
        data_ttl: Duration::from_secs(1),
        deadline: Duration::from_secs(300),
        link_kills: Some(Duration::from_secs(5)),
        ..Plan::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let run = runtime.block_on(history::run(plan.clone()));
    println!(
        "## History check (two instances, {} records, {} tasks, injected delays)\n",
        plan.keys,
        plan.tasks_per_instance * 2
    );
    println!("{}", run.table());
    for violation in run.checked.violations.iter().take(5) {
        println!("violation: {violation:?}");
    }
    if let Some(path) = json_path {
        if let Some(parent) = std::path::Path::new(&path).parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        match serde_json::to_vec_pretty(&run.json(&plan)) {
            Ok(bytes) => {
                if let Err(err) = std::fs::write(&path, bytes) {
                    eprintln!("could not write {path}: {err}");
                }
            }
            Err(err) => eprintln!("could not encode the results: {err}"),
        }
    }
    if !run.checked.violations.is_empty() {
        std::process::exit(1);
    }
}
