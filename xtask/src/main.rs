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
