//! `cargo xtask <command>`: the project's tasks, in Rust so they run wherever cargo does.
//!
//! `test`, `layout`, `bench` and `fuzz` are the project's own; `gen-secret`, `gen-scripts`, `sweep`,
//! `webhooks` and `check` are the library's task runner (`podium_cache_core::tasks`) over the
//! example app's models, as a user's own binary would run them.

mod bench;
mod fuzz;
mod layout;
mod shell;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use podium_cache_core::tasks::{TaskCommand, Tasks};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "podium-cache project tasks"
)]
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
    /// Check the source layout: no file over 600 lines of code, no two files importing each
    /// other.
    Layout(layout::Args),
    /// Measure on this machine (release build) and print a table: `http` (the cache layer).
    Bench(bench::Args),
    #[command(flatten)]
    Tasks(TaskCommand),
}

fn main() -> ExitCode {
    forget_cargo_run_env();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Test(args) => test::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Fuzz(args) => fuzz::run(args),
        Command::Layout(args) => layout::run(args),
        Command::Tasks(command) => return example_tasks().execute(command),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The library's task runner over the example app's models (its one registry,
/// `podium_example::models::models`); settings and scripts at the workspace root.
fn example_tasks() -> Tasks {
    Tasks::new()
        .name("cargo xtask")
        .home(shell::workspace_root())
        .models(&podium_example::models::models())
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
