//! `cargo xtask fuzz`: the coverage-guided fuzz targets of podium-cache-core
//! (`podium-cache-core/fuzz/`, a cargo-fuzz project outside the workspace), under libFuzzer.
//!
//! No cargo-fuzz and no nightly toolchain are needed: the targets are built with the flags
//! cargo-fuzz uses (SanitizerCoverage through `-Cpasses=sancov-module`, `--cfg fuzzing`), all
//! stable. `--asan` adds AddressSanitizer, which is a nightly flag (`RUSTC_BOOTSTRAP=1` is set
//! for that build). Each target runs for `--seconds` on its corpus (`fuzz/corpus/<target>/`,
//! kept between runs, not committed), its seeds and its saved regressions; a crash is saved
//! under `fuzz/artifacts/<target>/`, and `--replay` runs such inputs again without fuzzing.
//! A crash that is fixed becomes a regression: copy the input to `fuzz/regressions/<target>/`.
//!
//! [`short_pass`] is the test run's share: the same checks on seeds, regressions and a few
//! thousand mutated inputs, as an ordinary `cargo test` of the fuzz crate (no instrumented
//! build, so it costs seconds; see that crate's `tests/short_pass.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use crate::shell::{step, workspace_root};

/// Options of `cargo xtask fuzz`.
#[derive(clap::Args)]
pub struct Args {
    /// Seconds of fuzzing per target.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Parallel libFuzzer jobs per target (`-fork`); 1 fuzzes in-process.
    #[arg(long, default_value_t = 1)]
    pub jobs: u32,
    /// Build with AddressSanitizer (a nightly flag: sets `RUSTC_BOOTSTRAP=1` for the build).
    #[arg(long)]
    pub asan: bool,
    /// Only replay each target's saved inputs (corpus, artifacts, regressions); no fuzzing.
    #[arg(long)]
    pub replay: bool,
    /// Targets to run (default: all of `fuzz/fuzz_targets/`).
    pub targets: Vec<String>,
}

fn fuzz_dir(root: &Path) -> PathBuf {
    root.join("podium-cache-core").join("fuzz")
}

/// The targets: the file stems of `fuzz/fuzz_targets/*.rs`, sorted.
fn all_targets(fuzz: &Path) -> Result<Vec<String>, String> {
    let dir = fuzz.join("fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let path = e.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    Ok(names)
}

fn host_triple() -> Result<String, String> {
    let output = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("could not run rustc: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "rustc -vV names no host".into())
}

/// cargo-fuzz's instrumentation flags (its `cargo fuzz build -O -a` on stable).
fn rustflags(asan: bool) -> String {
    let mut flags = vec![
        "-Cpasses=sancov-module",
        "-Cllvm-args=-sanitizer-coverage-level=4",
        "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
        "-Cllvm-args=-sanitizer-coverage-pc-table",
        "-Cllvm-args=-sanitizer-coverage-trace-compares",
        "-Cllvm-args=-sanitizer-coverage-stack-depth",
        "-Cllvm-args=-simplifycfg-branch-fold-threshold=0",
        "--cfg",
        "fuzzing",
        "-Cdebug-assertions",
    ];
    if asan {
        flags.push("-Zsanitizer=address");
    }
    let mut out = flags.join(" ");
    if let Ok(extra) = std::env::var("RUSTFLAGS") {
        out.push(' ');
        out.push_str(&extra);
    }
    out
}

/// Starts the fuzz crate's lock file (not committed) from the workspace's whenever that one
/// changed since the last start (a stamp in `target/` remembers it), so both resolve the same
/// versions and the fuzz crate reuses the workspace's builds of every registry crate.
fn sync_lock(root: &Path) -> Result<(), String> {
    use std::hash::{Hash, Hasher};
    let workspace_lock = root.join("Cargo.lock");
    let fuzz_lock = fuzz_dir(root).join("Cargo.lock");
    let Ok(text) = std::fs::read(&workspace_lock) else {
        return Ok(());
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    let stamp = format!("{:016x}", hasher.finish());
    let stamp_path = root.join("target").join("fuzz-lock-stamp");
    let current = std::fs::read_to_string(&stamp_path).unwrap_or_default();
    if current.trim() == stamp && fuzz_lock.exists() {
        return Ok(());
    }
    std::fs::write(&fuzz_lock, &text)
        .map_err(|e| format!("writing {}: {e}", fuzz_lock.display()))?;
    let _ = std::fs::create_dir_all(root.join("target"));
    let _ = std::fs::write(&stamp_path, stamp);
    Ok(())
}

/// Builds every target with libFuzzer; the folder holding the binaries.
fn build(root: &Path, asan: bool) -> Result<PathBuf, String> {
    sync_lock(root)?;
    let fuzz = fuzz_dir(root);
    let triple = host_triple()?;
    let target_dir = root.join("target").join("fuzz");
    let manifest = fuzz.join("Cargo.toml");
    let manifest = manifest.to_string_lossy();
    let target_dir_text = target_dir.to_string_lossy();
    let args = [
        "build",
        "--release",
        "--bins",
        "--manifest-path",
        &manifest,
        "--target",
        &triple,
        "--target-dir",
        &target_dir_text,
    ];
    println!("xtask: $ cargo {}", args.join(" "));
    let started = Instant::now();
    let mut command = Command::new("cargo");
    command
        .args(args)
        .env("RUSTFLAGS", rustflags(asan))
        .env("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only")
        .current_dir(&fuzz);
    if asan {
        command
            .env("RUSTC_BOOTSTRAP", "1")
            .env("ASAN_OPTIONS", "detect_odr_violation=0");
    }
    let status = command
        .status()
        .map_err(|e| format!("could not start cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building the fuzz targets failed ({status})"));
    }
    println!(
        "xtask: fuzz targets built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(target_dir.join(triple).join("release"))
}

/// What one target's run found.
struct Outcome {
    target: String,
    ok: bool,
    summary: String,
}

fn fuzz_one(fuzz: &Path, bin: &Path, target: &str, args: &Args) -> Result<Outcome, String> {
    let corpus = fuzz.join("corpus").join(target);
    let artifacts = fuzz.join("artifacts").join(target);
    let regressions = fuzz.join("regressions").join(target);
    let seeds = workspace_root()
        .join("target")
        .join("fuzz")
        .join("seeds")
        .join(target);
    for dir in [&corpus, &artifacts, &regressions, &seeds] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut command = Command::new(bin);
    // The target writes its seeds here before libFuzzer reads its corpus folders.
    command.env("PODIUM_FUZZ_SEEDS_DIR", &seeds);
    command.arg(format!("-artifact_prefix={}/", artifacts.display()));
    if args.replay {
        // Every saved input once; libFuzzer exits non-zero on the first failure.
        command.arg("-runs=0");
        for dir in [&corpus, &seeds, &regressions, &artifacts] {
            command.arg(dir);
        }
    } else {
        command
            .arg(format!("-max_total_time={}", args.seconds))
            .arg("-max_len=4096")
            .arg("-timeout=10")
            .arg("-rss_limit_mb=4096")
            .arg("-print_final_stats=1");
        if args.jobs > 1 {
            command
                .arg(format!("-fork={}", args.jobs))
                .arg("-ignore_crashes=0");
        }
        command.arg(&corpus).arg(&seeds).arg(&regressions);
    }
    println!(
        "xtask: fuzzing {target}{}",
        if args.replay { " (replay)" } else { "" }
    );
    let started = Instant::now();
    let output = command
        .output()
        .map_err(|e| format!("could not start {}: {e}", bin.display()))?;
    let log = String::from_utf8_lossy(&output.stderr);
    let log_path = fuzz.join("artifacts").join(format!("{target}.log"));
    let _ = std::fs::write(&log_path, log.as_bytes());
    let stat = |name: &str| {
        log.lines()
            .rev()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    let crashes: Vec<String> = log
        .lines()
        .filter(|l| l.contains("Test unit written to"))
        .map(|l| l.trim().to_owned())
        .collect();
    let corpus_size = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
    let ok = output.status.success() && crashes.is_empty();
    let summary = format!(
        "{target}: {} in {:.0} s, {} runs ({}/s), coverage {} edges, corpus {corpus_size}{}",
        if ok { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64(),
        stat("number_of_executed_units"),
        stat("average_exec_per_sec"),
        log.lines()
            .rev()
            .find_map(|l| l.split("cov: ").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("?"),
        if ok {
            String::new()
        } else {
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            format!(
                "\n  {}\n  log: {}\n  ...{}",
                crashes.join("\n  "),
                log_path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n  ")
            )
        }
    );
    Ok(Outcome {
        target: target.to_owned(),
        ok,
        summary,
    })
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    let root = workspace_root();
    let fuzz = fuzz_dir(&root);
    let known = all_targets(&fuzz)?;
    let targets = if args.targets.is_empty() {
        known.clone()
    } else {
        for t in &args.targets {
            if !known.contains(t) {
                return Err(format!(
                    "no fuzz target {t:?}; there are: {}",
                    known.join(", ")
                ));
            }
        }
        args.targets.clone()
    };
    let bins = build(&root, args.asan)?;
    let mut outcomes = Vec::new();
    for target in &targets {
        let outcome = fuzz_one(&fuzz, &bins.join(target), target, &args)?;
        println!("xtask: {}", outcome.summary);
        outcomes.push(outcome);
    }
    println!("\nxtask: fuzz summary");
    for outcome in &outcomes {
        println!("  {}", outcome.summary.lines().next().unwrap_or_default());
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| o.target.as_str())
        .collect();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "xtask: {} found a failing input (see podium-cache-core/fuzz/artifacts/); replay it with `cargo xtask fuzz --replay {}`, fix it, then move it to fuzz/regressions/<target>/",
            failed.join(", "),
            failed.join(" ")
        );
        Ok(ExitCode::FAILURE)
    }
}

/// The test run's short pass: lint the fuzz crate (it is outside the workspace, so the
/// workspace's fmt and clippy do not see it), then run its checks on seeds, regressions and
/// mutated inputs. Shares the workspace's target folder, so only the fuzz crate is compiled.
pub fn short_pass(root: &Path, lint: bool) -> Result<(), String> {
    sync_lock(root)?;
    let fuzz = fuzz_dir(root);
    let manifest = fuzz.join("Cargo.toml");
    let manifest = manifest.to_string_lossy();
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let target_dir = target_dir.to_string_lossy();
    let with = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--manifest-path", &manifest, "--target-dir", &target_dir]);
        all.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    if lint {
        step(
            root,
            "cargo",
            &["fmt", "--manifest-path", &manifest, "--", "--check"],
        )?;
        let clippy = with(&["clippy", "--all-targets"]);
        let mut clippy: Vec<&str> = clippy.iter().map(String::as_str).collect();
        clippy.extend(["--", "-D", "warnings"]);
        step(root, "cargo", &clippy)?;
    }
    let test = with(&["test"]);
    let test: Vec<&str> = test.iter().map(String::as_str).collect();
    step(root, "cargo", &test)
}
