//! `cargo xtask <command>`: the project's tasks, in Rust so they run wherever cargo does.

mod gen;
mod test;

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
    /// Print a new webhook secret (`whsec_…`) and where to paste it.
    GenSecret,
    /// Write the Airtable automation script of every model (default: cache/generated/).
    GenScripts(gen::ScriptsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Test(args) => test::run(args),
        Command::GenSecret => gen::gen_secret(),
        Command::GenScripts(args) => gen::gen_scripts(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: {err}");
            ExitCode::FAILURE
        }
    }
}
