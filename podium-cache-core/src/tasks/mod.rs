//! The task runner a user's own binary calls (feature `tasks`): `gen-secret`, `gen-scripts`,
//! `sweep`, `webhooks` and `check` over the user's own models.
//!
//! A whole task runner (e.g. `src/bin/podium-tasks.rs`):
//!
//! ```no_run
//! #[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema, podium_cache_core::Cacheable)]
//! #[cacheable(table = "Members")]
//! struct Member { id: String, name: String }
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema, podium_cache_core::Cacheable)]
//! #[cacheable(table = "Workshops")]
//! struct Workshop { id: String, title: String }
//!
//! fn main() -> std::process::ExitCode {
//!     podium_cache_core::tasks::Tasks::new().model::<Member>().model::<Workshop>().run()
//! }
//! ```
//!
//! Then `podium-tasks check`, `podium-tasks gen-scripts`, `podium-tasks sweep` (cron
//! `0 2 * * *`), `podium-tasks webhooks refresh` (cron `0 3 * * *`). Every command reads the
//! settings as the app does ([`Settings::load`](crate::config::Settings::load)): `.secrets.toml`
//! in the working directory (or `--config-dir DIR`) and the `PODIUM_*` environment.
//!
//! Exit status: 0 when the command did what it was asked; 1 when it failed (a wrong command
//! line too); the sweep exits 2 when it finished but some ids could not be confirmed.
//! A runner without any model refuses every command.

mod check;
mod console;
mod context;
mod gen;
mod sweep;
mod webhooks;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

pub use check::CheckArgs;
pub use context::ConfigArgs;
pub use gen::ScriptsArgs;
pub use sweep::SweepArgs;
pub use webhooks::WebhooksArgs;

use crate::entity::Cacheable;
use crate::sweep::SweepEntity;
use crate::webhook::Models;
use console::Console;
use context::Ctx;

/// The commands of the task runner. A project with tasks of its own can flatten them into its
/// own command line (`#[command(flatten)] Tasks(TaskCommand)`) and hand them to
/// [`Tasks::execute`].
#[derive(Debug, clap::Subcommand)]
#[non_exhaustive]
pub enum TaskCommand {
    /// Print a new webhook secret (`whsec_…`) and where to paste it.
    GenSecret,
    /// Write the Airtable automation script of every model (default: cache/generated/).
    GenScripts(ScriptsArgs),
    /// Remove cached records deleted in Airtable behind the cache's back (cron: `0 2 * * *`).
    /// Exit status: 0 clean, 1 failed or stopped, 2 finished with ids Airtable could not confirm.
    Sweep(SweepArgs),
    /// Create, list, refresh (cron: `0 3 * * *`, they expire after 7 days) or delete the base's
    /// Airtable native webhooks.
    Webhooks(WebhooksArgs),
    /// Check the settings: the store answers, Airtable accepts the token, the token reaches
    /// every model's table, the native webhook exists; lists every problem with what to fix.
    Check(CheckArgs),
}

/// The command line of a runner of its own.
#[derive(clap::Parser)]
#[command(about = "podium-cache tasks: automation scripts, the sweep, Airtable webhooks, checks")]
struct Cli {
    #[command(subcommand)]
    command: TaskCommand,
}

/// A task runner over a set of models. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Tasks {
    models: Vec<SweepEntity>,
    name: Option<String>,
    home: PathBuf,
}

impl Default for Tasks {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`Tasks::run_captured`] wrote and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRun {
    /// The exit status (0 success, 1 failure, 2 a sweep with unconfirmed ids).
    pub code: u8,
    /// Everything written to stdout (reports, JSON, secrets).
    pub stdout: String,
    /// Everything written to stderr (hints, errors).
    pub stderr: String,
}

impl Tasks {
    /// A runner with no model yet; settings and output paths relative to the working directory.
    pub fn new() -> Self {
        Self {
            models: Vec::new(),
            name: None,
            home: PathBuf::from("."),
        }
    }

    /// Adds the model `T` (its table, fields and schema hash). Adding a model twice keeps one.
    pub fn model<T: Cacheable>(mut self) -> Self {
        SweepEntity::of::<T>().add_to(&mut self.models);
        self
    }

    /// The name used in help and hints (default: the file name of the program, the first
    /// argument).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The directory `.secrets.toml` is read from and `cache/generated/` written to unless the
    /// command line says otherwise (default: the working directory).
    pub fn home(mut self, dir: impl Into<PathBuf>) -> Self {
        self.home = dir.into();
        self
    }

    /// Adds every model of `models` (the registry the app's webhook routes and maintenance
    /// take), so an app lists its models once. Adding a model twice keeps one.
    ///
    /// ```
    /// # #[derive(Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema, podium_cache_core::Cacheable)]
    /// # #[cacheable(table = "Members")]
    /// # struct Member { id: String }
    /// use podium_cache_core::{tasks::Tasks, Models};
    /// let models = Models::new().register::<Member>();
    /// let tasks = Tasks::new().models(&models).model::<Member>();
    /// assert_eq!(tasks.covered().len(), 1);
    /// ```
    pub fn models(mut self, models: &Models) -> Self {
        for entity in SweepEntity::all_of(models) {
            entity.add_to(&mut self.models);
        }
        self
    }

    /// The models, in the order they were added.
    pub fn covered(&self) -> &[SweepEntity] {
        &self.models
    }

    /// Parses the process's arguments and runs the command.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// Parses `args` (the first one is the program) and runs the command, writing to the
    /// process's stdout and stderr.
    ///
    /// ```
    /// use std::process::ExitCode;
    /// let code = podium_cache_core::tasks::Tasks::new().run_from(["podium-tasks", "sweep"]);
    /// assert_eq!(code, ExitCode::FAILURE); // no model: nothing to do is an error
    /// ```
    pub fn run_from<I, S>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString> + Clone,
    {
        ExitCode::from(self.run_with(args, &Console::process()))
    }

    /// [`Tasks::run_from`], writing into buffers instead: for tests and for embedding.
    pub fn run_captured<I, S>(self, args: I) -> TaskRun
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString> + Clone,
    {
        let console = Console::captured();
        let code = self.run_with(args, &console);
        let (stdout, stderr) = console.take();
        TaskRun {
            code,
            stdout,
            stderr,
        }
    }

    /// Runs a command parsed elsewhere (a project's own command line that flattens
    /// [`TaskCommand`]).
    pub fn execute(self, command: TaskCommand) -> ExitCode {
        let name = self.name.clone().unwrap_or_else(|| program_name(None));
        ExitCode::from(self.execute_with(command, &name, &Console::process()))
    }

    fn run_with<I, S>(self, args: I, console: &Console) -> u8
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| program_name(args.first().map(OsString::as_os_str)));
        if self.models.is_empty() {
            console.errln(no_models(&name));
            return 1;
        }
        let parsed = Cli::command()
            .bin_name(name.clone())
            .try_get_matches_from(args)
            .and_then(|matches| Cli::from_arg_matches(&matches));
        match parsed {
            Ok(cli) => self.execute_with(cli.command, &name, console),
            Err(err) => {
                // Help goes to stdout and exits 0; a wrong command line exits 1 (2 is the
                // sweep's "unconfirmed").
                console.clap_message(&err);
                u8::from(err.use_stderr())
            }
        }
    }

    fn execute_with(self, command: TaskCommand, name: &str, console: &Console) -> u8 {
        if self.models.is_empty() {
            console.errln(no_models(name));
            return 1;
        }
        let ctx = Ctx {
            console: console.clone(),
            name: name.to_owned(),
            home: self.home,
            models: self.models,
        };
        let result = match command {
            TaskCommand::GenSecret => gen::gen_secret(&ctx),
            TaskCommand::GenScripts(args) => gen::gen_scripts(&ctx, args),
            TaskCommand::Sweep(args) => sweep::run(&ctx, args),
            TaskCommand::Webhooks(args) => webhooks::run(&ctx, args),
            TaskCommand::Check(args) => check::run(&ctx, args),
        };
        match result {
            Ok(code) => code,
            Err(message) => {
                ctx.console.errln(format!("{name}: {message}"));
                1
            }
        }
    }
}

fn no_models(name: &str) -> String {
    format!(
        "{name}: this task runner has no model: build it with \
         podium_cache_core::tasks::Tasks::new().model::<YourModel>()… (one .model::<T>() per \
         #[derive(Cacheable)] type the app caches)"
    )
}

/// The file name of `program` (or of this process's first argument).
fn program_name(program: Option<&std::ffi::OsStr>) -> String {
    let first = program
        .map(OsString::from)
        .or_else(|| std::env::args_os().next());
    first
        .as_deref()
        .map(Path::new)
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "podium-tasks".to_owned())
}
