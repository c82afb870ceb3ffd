//! What every command of the runner shares: its context, the settings options, a runtime and
//! the log output.

use std::path::{Path, PathBuf};

use super::console::Console;
use crate::config::Settings;
use crate::sweep::SweepEntity;

/// What every command gets: where to write, the runner's name, its home and models.
pub(crate) struct Ctx {
    pub(crate) console: Console,
    pub(crate) name: String,
    pub(crate) home: PathBuf,
    pub(crate) models: Vec<SweepEntity>,
}

impl Ctx {
    /// The settings as the app reads them, from `config_dir` or the runner's home.
    pub(crate) fn settings(&self, config_dir: Option<&Path>) -> Result<Settings, String> {
        let dir = config_dir.unwrap_or(&self.home);
        Settings::load(dir).map_err(|e| format!("{e} (settings read from {})", dir.display()))
    }

    /// `path` relative to the home when it lies inside it (shorter output).
    pub(crate) fn shorten(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.home)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Options shared by the commands that read the settings.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ConfigArgs {
    /// Directory of `.secrets.toml` (default: the working directory, or the runner's home).
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
}

/// Runs `future` on a runtime of its own (the runner is a plain `main`).
pub(crate) fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the async runtime: {e}"))?;
    Ok(runtime.block_on(future))
}

/// Logs to stderr: `RUST_LOG`, or warnings and errors only.
pub(crate) fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
