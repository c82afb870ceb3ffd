//! `cargo xtask <command>`: the project's tasks, in Rust so they run wherever cargo does.

mod bench;
mod fuzz;
mod gen;
mod sweep;
mod test;
mod webhooks;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "podium-cache project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what the tests need (redis-server), then fmt check, clippy -D warnings, every test.
    Test(test::Args),
    /// Run every fuzz target coverage-guided (libFuzzer) for `--seconds` each.
    Fuzz(fuzz::Args),
    /// Measure on this machine (release build) and print a table: `http` (the cache layer).
    Bench(bench::Args),
    /// Print a new webhook secret (`whsec_…`) and where to paste it.
    GenSecret,
    /// Write the Airtable automation script of every model (default: cache/generated/).
    GenScripts(gen::ScriptsArgs),
    /// Remove cached records deleted in Airtable behind the cache's back (cron: `0 2 * * *`).
    /// Exit status: 0 clean, 1 failed, 2 finished with ids Airtable could not confirm.
    Sweep(sweep::Args),
    /// Create, list, refresh (cron: `0 3 * * *`, they expire after 7 days) or delete the base's
    /// Airtable native webhooks.
    Webhooks(webhooks::Args),
}

fn main() -> ExitCode {
    forget_cargo_run_env();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Test(args) => test::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Fuzz(args) => fuzz::run(args),
        Command::GenSecret => gen::gen_secret(),
        Command::GenScripts(args) => gen::gen_scripts(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Webhooks(args) => webhooks::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Removes the variables `cargo run` set for xtask itself (`CARGO_PKG_NAME=xtask`,
/// `CARGO_MANIFEST_DIR=…/xtask`, …) before this process starts cargo again. Build scripts such
/// as ring's declare `rerun-if-env-changed` on several of them, and cargo compares those with
/// its own environment: inherited, they made every `cargo xtask bench` rebuild ring and all
/// that depends on it (the whole workspace) after a plain `cargo bench`, and the other way round.
fn forget_cargo_run_env() {
    let inherited: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| {
            name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_MANIFEST_")
                || matches!(
                    name.as_str(),
                    "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
                )
        })
        .collect();
    for name in inherited {
        std::env::remove_var(name);
    }
}
