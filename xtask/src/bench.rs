//! `cargo xtask bench <section>`: performance figures measured on this machine, in release
//! builds. Each section prints a markdown table and writes its figures as JSON under
//! `target/bench/`.
//!
//! - `http`: a route served from the HTTP cache layer (memory and Redis stores) next to the
//!   same route answered by precomputed bytes without the layer (the ceiling); see
//!   `podium-cache-tower/benches/http.rs`.

use std::process::ExitCode;

use crate::test::{step, workspace_root};

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Which bench to run (`http`).
    pub section: String,
    /// Extra arguments for the bench itself (http: `--seconds 5 --connections 32 --warmup 1`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub bench_args: Vec<String>,
}

/// Runs one bench section.
pub fn run(args: Args) -> Result<ExitCode, String> {
    match args.section.as_str() {
        "http" => http(&args.bench_args),
        other => Err(format!("unknown bench section `{other}` (known: http)")),
    }
}

/// The HTTP layer bench: `cargo bench` (release profile) of `podium-cache-tower`'s `http`.
fn http(extra: &[String]) -> Result<ExitCode, String> {
    if !on_path("redis-server") {
        return Err(
            "the http bench starts a redis-server, which is not installed \
             (Debian/Ubuntu: `sudo apt-get install -y redis-server`)"
                .into(),
        );
    }
    let mut cargo_args = vec![
        "bench",
        "--quiet",
        "-p",
        "podium-cache-tower",
        "--bench",
        "http",
        "--",
    ];
    cargo_args.extend(extra.iter().map(String::as_str));
    step(&workspace_root(), "cargo", &cargo_args)?;
    Ok(ExitCode::SUCCESS)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}
