//! `webhooks create | list | refresh | delete`: the base's Airtable native webhooks.
//!
//! Reads `airtable_api_key`, `airtable_base_id` and `airtable_api_url` as the app does.
//! Airtable webhooks expire 7 days after they are created or refreshed: schedule
//! `webhooks refresh` (e.g. cron `0 3 * * *`), or let the app's
//! [`Maintenance`](crate::maintenance::Maintenance) refresh them.

use super::context::{block_on, ConfigArgs, Ctx};
use crate::config::Settings;
use crate::source::webhooks_api::{WebhookDescription, MAX_WEBHOOKS_PER_BASE};
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
    /// Create a webhook for every record change of the base, pinging `--url` (not when an
    /// enabled one already pings it, nor past Airtable's 10 webhooks per base).
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
    let existing = api.list().await.map_err(|e| e.to_string())?;
    if let Some(refusal) = create_refusal(&existing, url, api.base_id(), &ctx.name) {
        return Err(refusal);
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

/// Why `webhooks create --url` must not create: an enabled webhook already pings `url` (its MAC
/// secret was shown only when it was created, so a second one would only add pings), or the
/// base has Airtable's 10 ("The number of webhooks per base is limited to 10",
/// <https://airtable.com/developers/web/api/create-a-webhook>).
fn create_refusal(
    existing: &[WebhookDescription],
    url: &str,
    base: &str,
    name: &str,
) -> Option<String> {
    if let Some(same) = existing
        .iter()
        .find(|h| h.is_hook_enabled && h.notification_url.as_deref() == Some(url))
    {
        return Some(format!(
            "webhook {id} already pings {url}; not creating a duplicate. Its MAC secret was shown              when it was created; to get a new one, `{name} webhooks delete --id {id}` then create again",
            id = same.id
        ));
    }
    (existing.len() >= MAX_WEBHOOKS_PER_BASE).then(|| {
        let ids: Vec<&str> = existing.iter().map(|h| h.id.as_str()).collect();
        format!(
            "base {base} already has {} webhooks, Airtable's limit of {MAX_WEBHOOKS_PER_BASE} per base              ({}); delete one first (`{name} webhooks delete --id …`; expired ones count until deleted)",
            existing.len(),
            ids.join(", ")
        )
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(id: &str, url: &str, enabled: bool) -> WebhookDescription {
        WebhookDescription {
            id: id.into(),
            notification_url: Some(url.into()),
            cursor_for_next_payload: 1,
            is_hook_enabled: enabled,
            are_notifications_enabled: true,
            expiration_time: None,
            specification: serde_json::Value::Null,
            last_successful_notification_time: None,
            last_notification_result: None,
        }
    }

    #[test]
    fn create_refuses_a_duplicate_and_an_eleventh_webhook() {
        let url = "https://app.example/notify";
        let one = [hook("achONE", url, true)];
        let refusal = create_refusal(&one, url, "appB", "tasks").unwrap_or_default();
        assert!(
            refusal.contains("achONE") && refusal.contains("duplicate"),
            "{refusal}"
        );
        let expired = [hook("achOLD", url, false)];
        assert_eq!(
            create_refusal(&expired, url, "appB", "tasks"),
            None,
            "an expired one is no duplicate"
        );
        let full: Vec<_> = (0..10)
            .map(|i| hook(&format!("ach{i}"), "https://other/", true))
            .collect();
        let refusal = create_refusal(&full, url, "appB", "tasks").unwrap_or_default();
        assert!(refusal.contains("limit of 10"), "{refusal}");
        assert_eq!(create_refusal(&full[..9], url, "appB", "tasks"), None);
    }
}
