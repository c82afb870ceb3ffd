//! `webhooks create | list | refresh | delete`: the base's Airtable native webhooks.
//!
//! Reads `airtable_api_key`, `airtable_base_id` and `airtable_api_url` as the app does.
//! Airtable webhooks expire 7 days after they are created or refreshed: schedule
//! `webhooks refresh` (e.g. cron `0 3 * * *`), or let the app's
//! [`Maintenance`](crate::maintenance::Maintenance) refresh them.

use super::{block_on, ConfigArgs, Ctx};
use crate::config::Settings;
use crate::source::AirtableSource;
use crate::source::WebhooksApi;

/// Options of `webhooks`.
#[derive(Clone, Debug, clap::Args)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Clone, Debug, clap::Subcommand)]
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
pub(super) fn run(ctx: &Ctx, args: WebhooksArgs) -> Result<u8, String> {
    let settings = ctx.settings(args.config.config_dir.as_deref())?;
    let api = api(&settings)?;
    block_on(async {
        match args.command {
            Command::Create { url } => create(ctx, &api, &url).await,
            Command::List => list(ctx, &api).await,
            Command::Refresh { id } => refresh(ctx, &api, id.as_deref()).await,
            Command::Delete { id } => {
                api.delete(&id).await.map_err(|e| e.to_string())?;
                ctx.console.outln(format!("deleted {id}"));
                Ok(0)
            }
        }
    })?
}

/// The Webhooks API client of the configured base.
pub(crate) fn api(settings: &Settings) -> Result<WebhooksApi, String> {
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

async fn create(ctx: &Ctx, api: &WebhooksApi, url: &str) -> Result<u8, String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("--url {url:?} is not an http(s) URL"));
    }
    let created = api
        .create_table_data(url)
        .await
        .map_err(|e| e.to_string())?;
    let secret = created.mac_secret_base64.expose();
    ctx.console.outln(&created.id);
    ctx.console.outln(secret);
    ctx.console.errln(format!(
        "\nCreated webhook {id} on base {base}; it pings {url} on every record change\n\
         and expires {expires} unless refreshed (schedule `{name} webhooks refresh`, or run the\n\
         app's maintenance).\n\
         \nThe MAC secret is shown only now. Give both values to the app, in .secrets.toml beside\n\
         it (keep that file out of version control):\n\
         \n    airtable_webhook_id = \"{id}\"\n    airtable_webhook_mac_secret = \"{secret}\"\n\
         \nor in its environment:\n\
         \n    PODIUM_AIRTABLE_WEBHOOK_ID={id}\n    PODIUM_AIRTABLE_WEBHOOK_MAC_SECRET={secret}\n",
        id = created.id,
        base = api.base_id(),
        expires = created.expiration_time.as_deref().unwrap_or("never"),
        name = ctx.name,
    ));
    Ok(0)
}

async fn list(ctx: &Ctx, api: &WebhooksApi) -> Result<u8, String> {
    let hooks = api.list().await.map_err(|e| e.to_string())?;
    if hooks.is_empty() {
        ctx.console.outln(format!(
            "base {} has no webhooks (create one: {} webhooks create --url …)",
            api.base_id(),
            ctx.name
        ));
        return Ok(0);
    }
    ctx.console.outln(format!(
        "{:<18} {:<8} {:<6} {:>7}  {:<25} URL",
        "ID", "ENABLED", "PINGS", "CURSOR", "EXPIRES"
    ));
    for hook in hooks {
        ctx.console.outln(format!(
            "{:<18} {:<8} {:<6} {:>7}  {:<25} {}",
            hook.id,
            yes_no(hook.is_hook_enabled),
            yes_no(hook.are_notifications_enabled),
            hook.cursor_for_next_payload,
            hook.expiration_time.as_deref().unwrap_or("never"),
            hook.notification_url.as_deref().unwrap_or("-"),
        ));
    }
    Ok(0)
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

async fn refresh(ctx: &Ctx, api: &WebhooksApi, only: Option<&str>) -> Result<u8, String> {
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
        ctx.console
            .outln(format!("base {} has no webhooks to refresh", api.base_id()));
        return Ok(0);
    }
    let mut failed = 0usize;
    for id in &ids {
        match api.refresh(id).await {
            Ok(expires) => ctx.console.outln(format!(
                "refreshed {id}: expires {}",
                expires.as_deref().unwrap_or("never")
            )),
            Err(err) => {
                failed += 1;
                ctx.console
                    .errln(format!("{}: refreshing {id} failed: {err}", ctx.name));
            }
        }
    }
    if failed > 0 {
        ctx.console.errln(format!(
            "{}: {failed} of {} webhooks were not refreshed",
            ctx.name,
            ids.len()
        ));
        return Ok(1);
    }
    Ok(0)
}
