//! `cargo xtask sweep`: removes cached records that were deleted in Airtable behind the cache's
//! back (automations do not fire on delete). Meant for a scheduler, e.g. cron `0 2 * * *`.
//!
//! Reads the app's configuration (`.secrets.toml` in the workspace root, or `--config-dir`, plus
//! `PODIUM_*` variables), sweeps the five example models, prints a table (or `--json`), and
//! exits 0 when clean, 1 when it failed (or was stopped), 2 when some ids could not be confirmed
//! (Airtable rate-limited or down) and were left alone. See `podium_cache_core::sweep`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use podium_cache_core::config::Settings;
use podium_cache_core::sweep::{Progress, Strategy, Sweep, DEFAULT_MAX_GONE_SHARE};
use podium_cache_core::Cache;
use podium_example::models::{Event, Project, Referral, User, Vote};
use tokio::sync::{mpsc, watch};

use crate::test::workspace_root;

/// Options of `cargo xtask sweep`.
#[derive(clap::Args)]
pub struct Args {
    /// `full`: every cached id, by listing the table or checking ids, whichever is cheaper;
    /// `references`: only ids no other cached record references (misses referenced deletions).
    #[arg(long, default_value = "full", value_parser = parse_strategy)]
    pub strategy: Strategy,
    /// Verify and report, but remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only this entity (entity or table name, e.g. `events` or `Events`); repeatable.
    #[arg(long = "entity", value_name = "NAME")]
    pub entities: Vec<String>,
    /// Print the report as JSON on stdout (for schedulers); no progress bar.
    #[arg(long)]
    pub json: bool,
    /// Where `.secrets.toml` is (default: the workspace root).
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// The largest share of an entity's cached records one run may remove (guards against a
    /// wrong base id); 1.0 turns the guard off.
    #[arg(long, default_value_t = DEFAULT_MAX_GONE_SHARE, value_name = "SHARE")]
    pub max_gone_share: f64,
}

fn parse_strategy(value: &str) -> Result<Strategy, String> {
    value
        .parse()
        .map_err(|e: podium_cache_core::sweep::SweepError| e.to_string())
}

/// Runs the sweep; the exit code says how it ended.
pub fn run(args: Args) -> Result<ExitCode, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the async runtime: {e}"))?;
    runtime.block_on(sweep(args))
}

async fn sweep(args: Args) -> Result<ExitCode, String> {
    init_logs();
    let dir = args.config_dir.clone().unwrap_or_else(workspace_root);
    let settings = Settings::load(&dir).map_err(|e| e.to_string())?;
    if settings.redis_url.is_none() && settings.redis_cluster_nodes.is_empty() {
        return fail(
            args.json,
            "the sweep needs the store the app uses: set redis_url (or redis_cluster_nodes) in \
             .secrets.toml or PODIUM_REDIS_URL (without it this process would sweep an empty \
             in-memory store)"
                .to_owned(),
        );
    }
    let cache = match Cache::from_settings(&settings).await {
        Ok(cache) => cache,
        Err(err) => return fail(args.json, err.to_string()),
    };

    let (cancel, cancelled) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nstopping after the current batch (Ctrl-C again to quit at once)");
            cancel.send_replace(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });

    let (progress, events) = mpsc::channel(64);
    let show_bar = !args.json && std::io::stderr().is_terminal();
    let bar = tokio::spawn(show_progress(events, show_bar));
    let sweep = Sweep::new(&cache)
        .entity::<User>()
        .entity::<Event>()
        .entity::<Project>()
        .entity::<Vote>()
        .entity::<Referral>()
        .only(args.entities.clone())
        .strategy(args.strategy)
        .dry_run(args.dry_run)
        .max_gone_share(args.max_gone_share)
        .progress(progress)
        .cancel_on(cancelled);
    let result = sweep.run().await;
    drop(sweep);
    let _ = bar.await;

    match result {
        Ok(report) => {
            if args.json {
                let json = serde_json::to_string_pretty(&report)
                    .map_err(|e| format!("could not write the report: {e}"))?;
                println!("{json}");
            } else {
                print!("{report}");
            }
            Ok(ExitCode::from(report.outcome().exit_code()))
        }
        Err(err) => fail(args.json, err.to_string()),
    }
}

/// Reports a failure (as JSON too with `--json`) and exits 1.
fn fail(json: bool, message: String) -> Result<ExitCode, String> {
    if json {
        println!(
            "{}",
            serde_json::json!({ "outcome": "failed", "error": message })
        );
    }
    eprintln!("xtask sweep: {message}");
    Ok(ExitCode::from(1))
}

/// Logs to stderr, `RUST_LOG` or warnings and errors only.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Draws the sweep's progress on stderr (a bar on a terminal, nothing otherwise).
async fn show_progress(mut events: mpsc::Receiver<Progress>, visible: bool) {
    let bar = ProgressBar::with_draw_target(
        None,
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    while let Some(event) = events.recv().await {
        match event {
            Progress::Locked => bar.set_message("scanning the cache"),
            Progress::Scanned { entity, cached } => {
                bar.set_message(format!("scanned {entity}: {cached} cached"))
            }
            Progress::Planned { ids } => {
                bar.set_length(ids);
                bar.set_position(0);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {msg:<12} [{bar:32}] {pos}/{len} ids ({eta} left)",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
            }
            Progress::Advanced { entity, ids } => {
                bar.set_message(entity);
                bar.inc(ids);
            }
            Progress::Finished {
                entity,
                gone,
                calls,
            } => bar.println(format!("{entity}: {gone} gone, {calls} Airtable calls")),
        }
    }
    bar.finish_and_clear();
}
