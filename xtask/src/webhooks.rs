//! `cargo xtask webhooks create | list | refresh | delete`: the base's Airtable native webhooks.
//!
//! Reads `airtable_api_key`, `airtable_base_id` and `airtable_api_url` from `.secrets.toml` at
//! the workspace root or the `PODIUM_*` environment. Airtable webhooks expire 7 days after they
//! are created or refreshed: schedule `cargo xtask webhooks refresh` (e.g. cron `0 3 * * *`).

use std::process::ExitCode;

use podium_cache_core::config::Settings;
use podium_cache_core::source::AirtableSource;
use podium_cache_core::webhook::native::WebhooksApi;

use crate::test::workspace_root;

/// Options of `cargo xtask webhooks`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Create a webhook for every record change of the base, pinging `--url`.
    Create {
        /// The notification URL, e.g. https://<your app>/api/webhooks/airtable/notify.
        #[arg(long, value_name = "URL")]
        url: String,
    },
    /// List the base's webhooks.
    List,
    /// Refresh (7 more days) every webhook of the base, or only `--id`.
    Refresh {
        /// Only this webhook (`ach…`).
        #[arg(long, value_name = "ID")]
        id: Option<String>,
    },
    /// Delete one webhook.
    Delete {
        /// The webhook (`ach…`).
        #[arg(long, value_name = "ID")]
        id: String,
    },
}

/// Runs one `webhooks` subcommand.
pub fn run(args: Args) -> Result<ExitCode, String> {
    let settings = Settings::load(&workspace_root()).map_err(|e| e.to_string())?;
    let api = api(&settings)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not start the async runtime: {e}"))?;
    runtime.block_on(async {
        match args.command {
            Command::Create { url } => create(&api, &url).await,
            Command::List => list(&api).await,
            Command::Refresh { id } => refresh(&api, id.as_deref()).await,
            Command::Delete { id } => {
                api.delete(&id).await.map_err(|e| e.to_string())?;
                println!("deleted {id}");
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

fn api(settings: &Settings) -> Result<WebhooksApi, String> {
    let key = settings
        .airtable_api_key
        .as_ref()
        .ok_or("airtable_api_key is not set (in .secrets.toml or PODIUM_AIRTABLE_API_KEY)")?;
    let base = settings
        .airtable_base_id
        .as_deref()
        .ok_or("airtable_base_id is not set (in .secrets.toml or PODIUM_AIRTABLE_BASE_ID)")?;
    let source = AirtableSource::builder(key.expose(), base)
        .api_url(settings.airtable_api_url.as_str())
        .build()
        .map_err(|e| e.to_string())?;
    Ok(WebhooksApi::new(source))
}

async fn create(api: &WebhooksApi, url: &str) -> Result<ExitCode, String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("--url {url:?} is not an http(s) URL"));
    }
    let created = api
        .create_table_data(url)
        .await
        .map_err(|e| e.to_string())?;
    let secret = created.mac_secret_base64.expose();
    println!("{}", created.id);
    println!("{secret}");
    eprintln!(
        "\nCreated webhook {id} on base {base}; it pings {url} on every record change\n\
         and expires {expires} unless refreshed (schedule `cargo xtask webhooks refresh`).\n\
         \nThe MAC secret is shown only now. Give both values to the app, in .secrets.toml at the\n\
         workspace root (git-ignored):\n\
         \n    airtable_webhook_id = \"{id}\"\n    airtable_webhook_mac_secret = \"{secret}\"\n\
         \nor in its environment:\n\
         \n    PODIUM_AIRTABLE_WEBHOOK_ID={id}\n    PODIUM_AIRTABLE_WEBHOOK_MAC_SECRET={secret}\n",
        id = created.id,
        base = api.base_id(),
        expires = created.expiration_time.as_deref().unwrap_or("never"),
    );
    Ok(ExitCode::SUCCESS)
}

async fn list(api: &WebhooksApi) -> Result<ExitCode, String> {
    let hooks = api.list().await.map_err(|e| e.to_string())?;
    if hooks.is_empty() {
        println!(
            "base {} has no webhooks (create one: cargo xtask webhooks create --url …)",
            api.base_id()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<18} {:<8} {:<6} {:>7}  {:<25} URL",
        "ID", "ENABLED", "PINGS", "CURSOR", "EXPIRES"
    );
    for hook in hooks {
        println!(
            "{:<18} {:<8} {:<6} {:>7}  {:<25} {}",
            hook.id,
            yes_no(hook.is_hook_enabled),
            yes_no(hook.are_notifications_enabled),
            hook.cursor_for_next_payload,
            hook.expiration_time.as_deref().unwrap_or("never"),
            hook.notification_url.as_deref().unwrap_or("-"),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

async fn refresh(api: &WebhooksApi, only: Option<&str>) -> Result<ExitCode, String> {
    let ids: Vec<String> = match only {
        Some(id) => vec![id.to_owned()],
        None => api
            .list()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|h| h.id)
            .collect(),
    };
    if ids.is_empty() {
        println!("base {} has no webhooks to refresh", api.base_id());
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = 0usize;
    for id in &ids {
        match api.refresh(id).await {
            Ok(expires) => println!(
                "refreshed {id}: expires {}",
                expires.as_deref().unwrap_or("never")
            ),
            Err(err) => {
                failed += 1;
                eprintln!("xtask: refreshing {id} failed: {err}");
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "xtask: {failed} of {} webhooks were not refreshed",
            ids.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
