//! `cargo xtask test`: the README's test command.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

/// Options of `cargo xtask test`.
#[derive(clap::Args)]
pub struct Args {
    /// Skip `cargo fmt --check` and clippy (only run the tests).
    #[arg(long)]
    pub no_lint: bool,
    /// Extra arguments passed to `cargo test` (after `--workspace`).
    #[arg(trailing_var_arg = true)]
    pub cargo_args: Vec<String>,
}

pub fn run(args: Args) -> Result<ExitCode, String> {
    ensure_redis_server()?;
    let root = workspace_root();
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
    }
    let mut test_args = vec!["test", "--workspace"];
    test_args.extend(args.cargo_args.iter().map(String::as_str));
    step(&root, "cargo", &test_args)?;
    crate::fuzz::short_pass(&root, !args.no_lint)?;
    Ok(ExitCode::SUCCESS)
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

/// Whether `program` is an executable file on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Runs one command in `dir`, echoing it; an error names the command that failed.
pub fn step(dir: &std::path::Path, program: &str, args: &[&str]) -> Result<(), String> {
    println!("xtask: $ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .map_err(|e| format!("could not start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}
