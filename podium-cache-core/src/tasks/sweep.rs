//! `sweep`: removes cached records that were deleted in Airtable behind the cache's back
//! (automations do not fire on delete). Meant for a scheduler, e.g. cron `0 2 * * *`.
//!
//! Reads the app's settings, sweeps the runner's models, prints a table (or `--json`), and
//! exits 0 when clean, 1 when it failed (or was stopped), 2 when some ids could not be confirmed
//! (Airtable rate-limited or down) and were left alone. See [`crate::sweep`].

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{mpsc, watch};

use super::context::{block_on, init_logs, ConfigArgs, Ctx};
use crate::cache::Cache;
use crate::sweep::{select, Progress, Strategy, Sweep, SweepError, DEFAULT_MAX_GONE_SHARE};

/// Options of `sweep`.
#[derive(Clone, Debug, clap::Args)]
pub struct SweepArgs {
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
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArgs,
    /// The largest share of an entity's cached records one run may remove (guards against a
    /// wrong base id); 1.0 turns the guard off.
    #[arg(long, default_value_t = DEFAULT_MAX_GONE_SHARE, value_name = "SHARE")]
    pub max_gone_share: f64,
}

fn parse_strategy(value: &str) -> Result<Strategy, String> {
    value.parse().map_err(|e: SweepError| e.to_string())
}

/// Runs the sweep; the exit code says how it ended.
pub(super) fn run(ctx: &Ctx, args: SweepArgs) -> Result<u8, String> {
    // A wrong `--entity` is refused before anything is read or connected.
    if let Err(err) = select(&ctx.models, &args.entities) {
        return Ok(fail(ctx, args.json, &err.to_string()));
    }
    block_on(sweep(ctx, args))?
}

async fn sweep(ctx: &Ctx, args: SweepArgs) -> Result<u8, String> {
    init_logs();
    let settings = match ctx.settings(args.config.config_dir.as_deref()) {
        Ok(settings) => settings,
        Err(message) => return Ok(fail(ctx, args.json, &message)),
    };
    if settings.redis_url.is_none() && settings.redis_cluster_nodes.is_empty() {
        return Ok(fail(
            ctx,
            args.json,
            "the sweep needs the store the app uses: set redis_url (or redis_cluster_nodes) in \
             .secrets.toml or PODIUM_REDIS_URL (without it this process would sweep an empty \
             in-memory store of its own)",
        ));
    }
    let cache = match Cache::from_settings(&settings).await {
        Ok(cache) => cache,
        Err(err) => return Ok(fail(ctx, args.json, &err.to_string())),
    };

    let (cancel, cancelled) = watch::channel(false);
    let console = ctx.console.clone();
    let interrupts = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            console.errln("\nstopping after the current batch (Ctrl-C again to quit at once)");
            cancel.send_replace(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });

    let (progress, events) = mpsc::channel(64);
    let show_bar = !args.json && ctx.console.stderr_is_terminal();
    let bar = tokio::spawn(show_progress(events, show_bar));
    let sweep = Sweep::new(&cache)
        .entities(ctx.models.iter().map(|m| (m.meta, m.schema_hash)))
        .only(args.entities.clone())
        .strategy(args.strategy)
        .dry_run(args.dry_run)
        .max_gone_share(args.max_gone_share)
        .progress(progress)
        .cancel_on(cancelled);
    let result = sweep.run().await;
    drop(sweep);
    let _ = bar.await;
    interrupts.abort();

    let report = match result {
        Ok(report) => report,
        Err(err) => return Ok(fail(ctx, args.json, &err.to_string())),
    };
    if args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| format!("could not write the report: {e}"))?;
        ctx.console.outln(json);
    } else {
        ctx.console.out(&report.to_string());
    }
    if report.totals.cached == 0 {
        let checked: Vec<String> = report
            .entities
            .iter()
            .map(|e| format!("{} ({})", e.entity, e.table))
            .collect();
        ctx.console.errln(format!(
            "{}: nothing to sweep: no cached record of {} under the key prefix `{}` in the \
             store. If the app does cache them, give this runner the app's redis_url and prefix.",
            ctx.name,
            checked.join(", "),
            settings.prefix
        ));
    }
    Ok(report.outcome().exit_code())
}

/// Reports a failure (as JSON too with `--json`); the exit code 1.
fn fail(ctx: &Ctx, json: bool, message: &str) -> u8 {
    if json {
        ctx.console
            .outln(serde_json::json!({ "outcome": "failed", "error": message }));
    }
    ctx.console.errln(format!("{} sweep: {message}", ctx.name));
    1
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
