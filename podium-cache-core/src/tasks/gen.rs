//! `gen-secret` and `gen-scripts`: the webhook secret and the Airtable automation scripts of
//! the runner's models.

use std::path::PathBuf;

use super::context::Ctx;
use crate::entity::EntityMeta;
use crate::scripts::{summary_table, write_scripts};
use crate::webhook::signature::WebhookSecret;

/// Options of `gen-scripts`.
#[derive(Clone, Debug, clap::Args)]
pub struct ScriptsArgs {
    /// Where to write `{entity}_automation.js` (default: `cache/generated/` in the working
    /// directory, or the runner's home).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Prints a new `whsec_` secret on stdout (alone, so `$(podium-tasks gen-secret)` captures it)
/// and where to paste it on stderr.
pub(super) fn gen_secret(ctx: &Ctx) -> Result<u8, String> {
    let secret = WebhookSecret::generate().expose();
    ctx.console.outln(&secret);
    ctx.console.errln(format!(
        "\nPaste this secret in two places (the same value in both):\n\
         \n  1. The app, in .secrets.toml beside it (keep that file out of version control):\n\
         \n         webhook_secret = \"{secret}\"\n\
         \n     or in its environment:  PODIUM_WEBHOOK_SECRET={secret}\n\
         \n  2. Airtable, in the table \"Invalidate Config\", the row\n\
         \n         key   = webhook_secret\n         value = {secret}\n\
         \n     (the other row there is key = webhook_url, value = https://<your app>/api/webhooks/airtable)\n"
    ));
    Ok(0)
}

/// Writes the automation script of every model and prints which table each belongs to.
pub(super) fn gen_scripts(ctx: &Ctx, args: ScriptsArgs) -> Result<u8, String> {
    let out = args
        .out
        .unwrap_or_else(|| ctx.home.join("cache").join("generated"));
    let metas: Vec<&'static EntityMeta> = ctx.models.iter().map(|m| m.meta).collect();
    let mut scripts = write_scripts(&out, &metas).map_err(|err| err.to_string())?;
    for script in &mut scripts {
        script.path = ctx.shorten(&script.path);
    }
    ctx.console
        .outln(format!("Wrote {} automation scripts:\n", scripts.len()));
    ctx.console.out(&summary_table(&scripts));
    ctx.console.outln(
        "\nFor each table: Airtable → Automations → \"When record is created or updated\" on the table\n\
         → \"Run a script\" with an input variable recordId = the trigger's Airtable record ID\n\
         → paste the file. Each file's header has the full steps.",
    );
    Ok(0)
}
