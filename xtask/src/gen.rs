//! `cargo xtask gen-secret` and `cargo xtask gen-scripts`: the webhook secret and the Airtable
//! automation scripts of the example app's models.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use podium_cache_core::scripts::{summary_table, write_scripts};
use podium_cache_core::webhook::signature::WebhookSecret;

use crate::test::workspace_root;

/// Options of `cargo xtask gen-scripts`.
#[derive(clap::Args)]
pub struct ScriptsArgs {
    /// Where to write `{entity}_automation.js` (default: `cache/generated/` in the workspace).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Prints a new `whsec_` secret on stdout (alone, so `$(cargo xtask gen-secret)` captures it) and
/// where to paste it on stderr.
pub fn gen_secret() -> Result<ExitCode, String> {
    let secret = WebhookSecret::generate().expose();
    println!("{secret}");
    eprintln!(
        "\nPaste this secret in two places (the same value in both):\n\
         \n  1. The app, in .secrets.toml at the workspace root (git-ignored):\n\
         \n         webhook_secret = \"{secret}\"\n\
         \n     or in its environment:  PODIUM_WEBHOOK_SECRET={secret}\n\
         \n  2. Airtable, in the table \"Invalidate Config\", the row\n\
         \n         key   = webhook_secret\n         value = {secret}\n\
         \n     (the other row there is key = webhook_url, value = https://<your app>/api/webhooks/airtable)\n"
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the automation script of every example model and prints which table each belongs to.
pub fn gen_scripts(args: ScriptsArgs) -> Result<ExitCode, String> {
    let root = workspace_root();
    let out = args
        .out
        .unwrap_or_else(|| root.join("cache").join("generated"));
    let mut scripts = write_scripts(&out, &podium_example::models::all_models())
        .map_err(|err| err.to_string())?;
    for script in &mut scripts {
        script.path = shorten(&script.path, &root);
    }
    println!("Wrote {} automation scripts:\n", scripts.len());
    print!("{}", summary_table(&scripts));
    println!(
        "\nFor each table: Airtable → Automations → \"When record is created or updated\" on the table\n\
         → \"Run a script\" with an input variable recordId = the trigger's Airtable record ID\n\
         → paste the file. Each file's header has the full steps."
    );
    Ok(ExitCode::SUCCESS)
}

/// `path` relative to `root` when it lies inside it (for a shorter table).
fn shorten(path: &Path, root: &Path) -> PathBuf {
    path.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}
