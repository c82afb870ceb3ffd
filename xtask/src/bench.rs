//! `cargo xtask bench [section]`: performance figures measured on this machine, in release
//! builds, each beside a baseline measured in the same run. Each section prints a markdown table
//! and writes its figures as JSON under `target/bench/`; `cargo xtask bench` runs every section
//! and also writes `target/bench/results.json` with the machine's cores and the git revision.
//!
//! | section | bench target | what it measures |
//! |---|---|---|
//! | `read` | `podium-cache-core/benches/read_path.rs` | `Cache::get` hits (memory, Redis) beside a raw redis `GET`; misses; the limiter |
//! | `http` | `podium-cache-tower/benches/http.rs` | layer hits (memory, Redis) beside precomputed bytes with no layer |
//! | `webhooks` | `examples/podium-example/benches/webhooks.rs` | verification cost beside bare HMAC; deliveries/s of the endpoint |
//! | `offload` | `examples/podium-example/benches/offload.rs` | the example app under a Zipf read load with updates and deletes, beside the cache bypassed |
//! | `sweep` | `podium-cache-core/benches/sweep.rs` | the 10,000-record sweep: calls beside the batched by-id check (every cached id, 100 a call), run in the same bench |
//! | `scale` | `podium-cache-core/benches/scale_l1.rs`, `podium-cache-core/benches/history.rs` | the in-process tier beside bare moka; invalidation spread between instances; two instances on a 3-master Redis Cluster beside one standalone Redis; four cold instances sharing one Airtable budget; the 1,000,000-operation history check with injected delays |
//!
//! Every run names the packages of every section, so cargo resolves one feature set and a
//! section run alone reuses the release build of a full run (and the other way round).

use std::path::Path;
use std::process::ExitCode;

use crate::shell::{on_path, step, workspace_root};

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Which bench to run (`read`, `http`, `webhooks`, `offload`, `sweep`, `scale`); all when
    /// omitted.
    pub section: Option<String>,
    /// Extra arguments for the bench itself (e.g. offload: `--seconds 30`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub bench_args: Vec<String>,
}

/// A section: its name, package and bench targets (run in this order; the first writes
/// `{name}.json`, any other `{name}-{target}.json`).
struct Section {
    name: &'static str,
    package: &'static str,
    targets: &'static [&'static str],
}

const SECTIONS: &[Section] = &[
    Section {
        name: "read",
        package: "podium-cache-core",
        targets: &["read_path"],
    },
    Section {
        name: "http",
        package: "podium-cache-tower",
        targets: &["http"],
    },
    Section {
        name: "webhooks",
        package: "podium-example",
        targets: &["webhooks"],
    },
    Section {
        name: "offload",
        package: "podium-example",
        targets: &["offload"],
    },
    Section {
        name: "sweep",
        package: "podium-cache-core",
        targets: &["sweep"],
    },
    Section {
        name: "scale",
        package: "podium-cache-core",
        targets: &["scale_l1", "history"],
    },
];

/// Runs one bench section, or all of them.
pub fn run(args: Args) -> Result<ExitCode, String> {
    if !on_path("redis-server") {
        return Err("the benches start redis-server, which is not installed \
             (Debian/Ubuntu: `sudo apt-get install -y redis-server`)"
            .into());
    }
    let root = workspace_root();
    let out = root.join("target").join("bench");
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let chosen: Vec<&Section> = match &args.section {
        Some(name) => vec![SECTIONS.iter().find(|s| s.name == name).ok_or_else(|| {
            let known: Vec<&str> = SECTIONS.iter().map(|s| s.name).collect();
            format!(
                "unknown bench section `{name}` (known: {})",
                known.join(", ")
            )
        })?],
        None => SECTIONS.iter().collect(),
    };
    // Every cargo call names the same packages (those of every section, whichever are
    // chosen), so cargo resolves the same features each time and builds the release artifacts
    // once (naming one package per call would rebuild shared dependencies with other features).
    let mut packages: Vec<&str> = Vec::new();
    for section in SECTIONS {
        if !packages.contains(&section.package) {
            packages.push(section.package);
        }
    }
    let package_args: Vec<&str> = packages.iter().flat_map(|p| ["-p", *p]).collect();
    // Build every chosen bench once, in release, before any is timed.
    let mut build = vec!["bench", "--quiet", "--no-run"];
    build.extend(package_args.iter().copied());
    for section in &chosen {
        for target in section.targets {
            build.extend(["--bench", *target]);
        }
    }
    step(&root, "cargo", &build)?;
    let started = std::time::Instant::now();
    let mut results = serde_json::Map::new();
    for section in &chosen {
        let section_started = std::time::Instant::now();
        for (i, target) in section.targets.iter().enumerate() {
            let key = if i == 0 {
                section.name.to_owned()
            } else {
                format!("{}-{target}", section.name)
            };
            let json = out.join(format!("{key}.json"));
            let json_arg = json.display().to_string();
            let mut cargo_args = vec!["bench", "--quiet"];
            cargo_args.extend(package_args.iter().copied());
            cargo_args.extend(["--bench", *target, "--", "--json", &json_arg]);
            cargo_args.extend(args.bench_args.iter().map(String::as_str));
            step(&root, "cargo", &cargo_args)?;
            let figures = std::fs::read(&json)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .unwrap_or(serde_json::Value::Null);
            results.insert(key, figures);
        }
        println!(
            "({} section: {:.0} s)\n",
            section.name,
            section_started.elapsed().as_secs_f64()
        );
    }
    if args.section.is_none() {
        let summary = serde_json::json!({
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "git_revision": git_revision(&root),
            "seconds": started.elapsed().as_secs_f64(),
            "sections": results,
        });
        let path = out.join("results.json");
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&summary).unwrap_or_default(),
        )
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
        println!(
            "machine: {} cores · revision {} · all sections in {:.0} s · figures in {}",
            summary["cores"],
            summary["git_revision"].as_str().unwrap_or("?"),
            started.elapsed().as_secs_f64(),
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn git_revision(root: &Path) -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}
