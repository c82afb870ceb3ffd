//! `cargo xtask test`: the README's test command.

use std::process::{Command, ExitCode};

use crate::shell::{on_path, step, workspace_root};

/// Options of `cargo xtask test`.
#[derive(clap::Args)]
pub struct Args {
    /// Skip `cargo fmt --check`, clippy, the feature builds and `cargo package` (only run the
    /// tests).
    #[arg(long)]
    pub no_lint: bool,
    /// Extra arguments passed to `cargo test` (after `--workspace`).
    #[arg(trailing_var_arg = true)]
    pub cargo_args: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    let root = workspace_root();
    layout(&root)?;
    ensure_redis_server()?;
    if !args.no_lint {
        step(&root, "cargo", &["fmt", "--all", "--", "--check"])?;
        step(
            &root,
            "cargo",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        )?;
        feature_builds(&root)?;
        package(&root)?;
    }
    let mut test_args = vec!["test", "--workspace"];
    test_args.extend(args.cargo_args.iter().map(String::as_str));
    step(&root, "cargo", &test_args)?;
    crate::fuzz::short_pass(&root, !args.no_lint)?;
    Ok(ExitCode::SUCCESS)
}

/// `cargo xtask layout` first: a file too long or an import loop fails before anything is
/// built. `PODIUM_SKIP_LAYOUT=1` skips it (while a branch is mid-way through a split).
fn layout(root: &std::path::Path) -> Result<(), String> {
    if std::env::var_os("PODIUM_SKIP_LAYOUT").is_some_and(|v| v == "1") {
        println!("xtask: layout check skipped (PODIUM_SKIP_LAYOUT=1)");
        return Ok(());
    }
    println!("xtask: layout check");
    let findings = crate::layout::check_workspace(root)?;
    print!("{findings}");
    if findings.is_clean() {
        Ok(())
    } else {
        Err("the layout check failed (see above; `cargo xtask layout` runs it alone)".into())
    }
}

/// The library crates, each built with no default features and with all of them (`cargo
/// check`, lib only, in the shared target dir: about a minute once dependencies are built).
const LIBRARY_CRATES: [&str; 3] = [
    "podium-cache-core",
    "podium-cache-macros",
    "podium-cache-tower",
];

/// `cargo check` of every library crate with `--no-default-features` and `--all-features`:
/// a feature gate that leaves an item out without its callers fails here.
fn feature_builds(root: &std::path::Path) -> Result<(), String> {
    for krate in LIBRARY_CRATES {
        for features in ["--no-default-features", "--all-features"] {
            step(root, "cargo", &["check", "-p", krate, features])?;
        }
    }
    Ok(())
}

/// The published crates packaged together: cargo resolves their dependencies on each other
/// (versioned path dependencies) from the packages being made, so this works before any of
/// them is on crates.io, and checks each manifest (metadata, versions, the files it ships).
/// `--no-verify`: building each `.crate` again compiles every dependency once more outside the
/// workspace's profile (8.5 minutes on 2 cores, more than half the suite), while
/// [`feature_builds`] already compiles the same sources with no default and with all features
/// (`PODIUM_PACKAGE_VERIFY=1` verifies too).
/// `--allow-dirty` so it runs on a working copy too.
fn package(root: &std::path::Path) -> Result<(), String> {
    let verify = std::env::var_os("PODIUM_PACKAGE_VERIFY").is_some();
    let mut args = vec!["package", "--allow-dirty"];
    if !verify {
        args.push("--no-verify");
    }
    args.extend([
        "-p",
        "podium-cache-macros",
        "-p",
        "podium-cache-core",
        "-p",
        "podium-cache-tower",
        "-p",
        "podium-local",
    ]);
    step(root, "cargo", &args)
}

/// Makes sure `redis-server` and `redis-cli` are on PATH, installing them with apt-get as root.
fn ensure_redis_server() -> Result<(), String> {
    if on_path("redis-server") && on_path("redis-cli") {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !is_root {
        return Err(
            "redis-server is not installed; install it (Debian/Ubuntu: `sudo apt-get install -y redis-server`) and run again".into(),
        );
    }
    println!("xtask: installing redis-server (apt-get)");
    let root = workspace_root();
    step(&root, "apt-get", &["update", "-qq"])?;
    step(&root, "apt-get", &["install", "-y", "-qq", "redis-server"])?;
    if on_path("redis-server") {
        Ok(())
    } else {
        Err("apt-get finished but redis-server is still not on PATH".into())
    }
}
