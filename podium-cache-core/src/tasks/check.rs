//! `check`: the settings as the app reads them, tried for real. The store answers a round
//! trip; Airtable says who the token belongs to (and, for OAuth tokens, its scopes); the token
//! can read every model's table; the configured native webhook exists. Every problem names
//! the setting or the token scope to fix; any problem exits 1.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use serde::Deserialize;

use super::context::{block_on, init_logs, ConfigArgs, Ctx};
use crate::cache::{Cache, SetupError};
use crate::config::{ConfigError, Secret, Settings};
use crate::source::WebhooksApi;
use crate::source::{AirtableSource, ListQuery, Source, SourceError};
use crate::sweep::SweepEntity;

/// Options of `check`.
#[derive(Clone, Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub config: ConfigArgs,
}

/// How one finding weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Problem,
}

/// One line of the check's answer: what was looked at (a setting, a scope, a table) and
/// what was found.
struct Finding {
    level: Level,
    subject: String,
    message: String,
}

#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, level: Level, subject: impl Into<String>, message: impl Into<String>) {
        self.0.push(Finding {
            level,
            subject: subject.into(),
            message: message.into(),
        });
    }

    fn problems(&self) -> usize {
        self.0.iter().filter(|f| f.level == Level::Problem).count()
    }
}

/// Runs every check and prints one line per finding.
pub(super) fn run(ctx: &Ctx, args: CheckArgs) -> Result<u8, String> {
    init_logs();
    let dir = args
        .config
        .config_dir
        .clone()
        .unwrap_or_else(|| ctx.home.clone());
    let mut findings = Findings::default();
    match Settings::load(&dir) {
        Ok(settings) => {
            findings.add(
                Level::Ok,
                "settings",
                format!(
                    "read {} and the PODIUM_* environment",
                    dir.join(".secrets.toml").display()
                ),
            );
            block_on(check(ctx, &settings, &mut findings))?;
        }
        Err(ConfigError::Invalid {
            setting,
            env,
            message,
        }) => findings.add(Level::Problem, setting, format!("{message} (or {env})")),
        Err(err) => findings.add(
            Level::Problem,
            ".secrets.toml",
            format!("{err} (in {})", dir.display()),
        ),
    }
    for finding in &findings.0 {
        let tag = match finding.level {
            Level::Ok => "ok     ",
            Level::Warn => "warning",
            Level::Problem => "PROBLEM",
        };
        ctx.console
            .outln(format!("{tag} {}: {}", finding.subject, finding.message));
    }
    let problems = findings.problems();
    if problems == 0 {
        ctx.console.outln("\nno problems found");
        Ok(0)
    } else {
        ctx.console.outln(format!(
            "\n{problems} problem{} found: fix each named setting or token scope, then run `{} check` again",
            if problems == 1 { "" } else { "s" },
            ctx.name
        ));
        Ok(1)
    }
}

async fn check(ctx: &Ctx, settings: &Settings, findings: &mut Findings) {
    check_store(settings, findings).await;
    let (Some(key), Some(base)) = (&settings.airtable_api_key, &settings.airtable_base_id) else {
        if settings.airtable_api_key.is_none() {
            findings.add(
                Level::Problem,
                "airtable_api_key",
                "is not set (a personal access token, pat…; or PODIUM_AIRTABLE_API_KEY)",
            );
        }
        if settings.airtable_base_id.is_none() {
            findings.add(
                Level::Problem,
                "airtable_base_id",
                "is not set (the base id, app…, from the base's URL; or PODIUM_AIRTABLE_BASE_ID)",
            );
        }
        return;
    };
    if !base.starts_with("app") {
        findings.add(
            Level::Warn,
            "airtable_base_id",
            format!("{base:?} does not look like a base id (they start with `app`)"),
        );
    }
    let source = match AirtableSource::builder(key.expose(), base.as_str())
        .api_url(settings.airtable_api_url.as_str())
        .local_rps(settings.local_airtable_rps())
        .retries(1, Duration::from_millis(200), Duration::from_secs(1))
        .build()
    {
        Ok(source) => source,
        Err(err) => {
            findings.add(Level::Problem, "airtable_api_url", err.to_string());
            return;
        }
    };
    let native = settings.airtable_webhook_id.is_some();
    if !check_token(&source, native, findings).await {
        return;
    }
    check_tables(&source, &ctx.models, findings).await;
    check_webhooks(ctx, settings, source, findings).await;
}

/// A round trip to the store the settings name, built as the app builds it (write, read
/// back, delete a key of its own).
async fn check_store(settings: &Settings, findings: &mut Findings) {
    let setting = if settings.redis_url.is_some() {
        "redis_url"
    } else if !settings.redis_cluster_nodes.is_empty() {
        "redis_cluster_nodes"
    } else {
        findings.add(
            Level::Warn,
            "redis_url",
            "is not set: the app keeps its cache in its own memory; several instances, the \
             sweep and maintenance across instances need redis_url (or redis_cluster_nodes)",
        );
        return;
    };
    // The store alone: Airtable's settings are checked on their own below.
    let mut app = settings.clone();
    app.airtable_api_key
        .get_or_insert_with(|| Secret::new("unused"));
    app.airtable_base_id
        .get_or_insert_with(|| "appUNUSEDUNUSED00".to_owned());
    let store = match Cache::stores_from_settings(&app).await {
        Ok((store, _)) => store,
        Err(SetupError::Config(ConfigError::Invalid {
            setting, message, ..
        })) => {
            findings.add(
                Level::Problem,
                setting,
                format!("cannot connect: {message}"),
            );
            return;
        }
        Err(err) => {
            findings.add(Level::Problem, setting, format!("cannot connect: {err}"));
            return;
        }
    };
    let key = format!("{}:check:{}", settings.prefix, std::process::id());
    let started = Instant::now();
    let round_trip = async {
        store
            .set(&key, Bytes::from_static(b"ok"), Duration::from_secs(30))
            .await?;
        let read = store.get(&key).await?;
        store.delete(std::slice::from_ref(&key)).await?;
        Ok::<_, crate::store::StoreError>(read)
    }
    .await;
    match round_trip {
        Ok(Some(value)) if value.as_ref() == b"ok" => findings.add(
            Level::Ok,
            setting,
            format!(
                "{} store answered a write, a read and a delete in {:.1} ms",
                store.name(),
                started.elapsed().as_secs_f64() * 1000.0
            ),
        ),
        Ok(_) => findings.add(
            Level::Problem,
            setting,
            "the store accepted a write but did not return it (a read-only replica? an eviction \
             policy that drops new keys?)",
        ),
        Err(err) => findings.add(Level::Problem, setting, format!("round trip failed: {err}")),
    }
}

/// `GET /v0/meta/whoami`: the token's user id, its email with the `user.email:read` scope,
/// and its scopes for OAuth tokens only; no scope is needed to call it
/// (<https://airtable.com/developers/web/api/get-user-id-scopes>; pyairtable's `Api.whoami`).
#[derive(Debug, Deserialize)]
struct WhoAmI {
    id: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

/// Who the token is. One small function, through [`AirtableSource::api_call`], so it can be
/// pointed at the client's own `whoami` once it has one.
async fn whoami(source: &AirtableSource) -> Result<WhoAmI, SourceError> {
    let bytes = source
        .api_call(Method::GET, &["meta", "whoami"], &[], None)
        .await?;
    serde_json::from_slice(&bytes).map_err(|e| SourceError::Decode(e.to_string()))
}

/// The scopes this library needs: `data.records:read` for every read; `webhook:manage` and
/// `schema.bases:read` (the pager names tables through the base schema) for native webhooks
/// (<https://airtable.com/developers/web/api/scopes>).
fn needed_scopes(native_webhooks: bool) -> Vec<(&'static str, &'static str)> {
    let mut scopes = vec![("data.records:read", "reading records")];
    if native_webhooks {
        scopes.push(("webhook:manage", "native webhooks (airtable_webhook_id)"));
        scopes.push((
            "schema.bases:read",
            "native webhook payloads (tables by id)",
        ));
    }
    scopes
}

/// Whether Airtable accepts the token (false stops the Airtable checks: each would fail alike).
/// `native`: native webhooks are configured (their scopes are needed too).
async fn check_token(source: &AirtableSource, native: bool, findings: &mut Findings) -> bool {
    match whoami(source).await {
        Ok(who) => {
            let email = who.email.map(|e| format!(" ({e})")).unwrap_or_default();
            findings.add(
                Level::Ok,
                "airtable_api_key",
                format!("Airtable accepts the token of user {}{email}", who.id),
            );
            if let Some(scopes) = who.scopes {
                // Scopes are only listed for OAuth tokens; a personal access token's are
                // proven by the table and webhook checks below.
                for (scope, why) in needed_scopes(native) {
                    if !scopes.iter().any(|s| s == scope) {
                        findings.add(
                            Level::Problem,
                            format!("scope {scope}"),
                            format!("the token lacks it; it is needed for {why}"),
                        );
                    }
                }
            }
            true
        }
        Err(SourceError::Unauthorized(body)) => {
            findings.add(
                Level::Problem,
                "airtable_api_key",
                format!(
                    "Airtable refused the token (401/403 {}): paste a valid personal access \
                     token (pat…) in airtable_api_key or PODIUM_AIRTABLE_API_KEY",
                    error_type(&body)
                ),
            );
            false
        }
        // Not every Airtable-compatible server has the endpoint: the table checks below still
        // prove the token.
        Err(SourceError::NotFound(_)) => {
            findings.add(
                Level::Warn,
                "airtable_api_url",
                format!(
                    "{} has no /v0/meta/whoami (is it Airtable's API?); the table checks below \
                     still test the token",
                    source.api_root()
                ),
            );
            true
        }
        Err(err) => {
            findings.add(
                Level::Problem,
                "airtable_api_url",
                format!(
                    "could not ask {} who the token is: {err}",
                    source.api_root()
                ),
            );
            false
        }
    }
}

/// Airtable's error type from an error body (`{"error": {"type": …}}` or `{"error": "…"}`,
/// <https://airtable.com/developers/web/api/errors>).
fn error_type(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let error = &value["error"];
    error["type"]
        .as_str()
        .or_else(|| error.as_str())
        .unwrap_or("")
        .to_owned()
}

/// One record of each model's table, one field: the base, the table and the field names
/// exist and the token may read them.
async fn check_tables(source: &AirtableSource, models: &[SweepEntity], findings: &mut Findings) {
    for model in models {
        let table = model.meta.table;
        let subject = format!("table {table:?}");
        let query = ListQuery {
            filter: None,
            fields: probe_field(model),
            max_records: Some(1),
        };
        match source.list(table, &query).await {
            Ok(_) => findings.add(
                Level::Ok,
                subject,
                format!("readable (model {})", model.meta.entity),
            ),
            Err(SourceError::Unauthorized(body))
                if error_type(&body) == "AUTHENTICATION_REQUIRED" =>
            {
                findings.add(
                    Level::Problem,
                    "airtable_api_key",
                    "Airtable refused the token (401 AUTHENTICATION_REQUIRED): paste a valid \
                     personal access token (pat…) in airtable_api_key or PODIUM_AIRTABLE_API_KEY",
                );
                return;
            }
            // 403 INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND: a missing scope, no access to the
            // base, or no such base or table (Airtable does not say which).
            Err(SourceError::Unauthorized(_))
            | Err(SourceError::NotFound(_))
            | Err(SourceError::Forbidden { .. }) => findings.add(
                Level::Problem,
                format!("scope data.records:read / airtable_base_id / {subject}"),
                format!(
                    "the token cannot read table {table:?} of base {}: give the token the \
                     data.records:read scope and access to this base, check airtable_base_id, \
                     and that the model {} names the table as Airtable does \
                     (#[cacheable(table = \"…\")])",
                    source.base_id(),
                    model.meta.entity
                ),
            ),
            Err(SourceError::InvalidRequest(message)) => findings.add(
                Level::Problem,
                format!("model {}", model.meta.entity),
                format!(
                    "Airtable refused a read of table {table:?} asking for the field {:?} \
                     ({message}): the model's field names must be the table's",
                    query.fields.first().map(String::as_str).unwrap_or("")
                ),
            ),
            Err(err) => findings.add(
                Level::Problem,
                "airtable_api_url",
                format!("reading table {table:?} failed: {err}"),
            ),
        }
    }
}

/// The first field of the model (what the sweep also asks for), or all fields when none.
fn probe_field(model: &SweepEntity) -> Vec<String> {
    model
        .meta
        .fields
        .first()
        .map(|f| vec![f.name.to_owned()])
        .unwrap_or_default()
}

/// The configured native webhook exists on the base, is enabled, and the token may manage it.
async fn check_webhooks(
    ctx: &Ctx,
    settings: &Settings,
    source: AirtableSource,
    findings: &mut Findings,
) {
    let Some(id) = &settings.airtable_webhook_id else {
        if settings.webhook_secret.is_none() {
            findings.add(
                Level::Warn,
                "webhook_secret",
                format!(
                    "is not set and no native webhook is configured (airtable_webhook_id): \
                     changes made in Airtable reach the cache only when entries expire \
                     (`{} gen-secret`, `{} webhooks create`)",
                    ctx.name, ctx.name
                ),
            );
        }
        return;
    };
    let api = WebhooksApi::new(source);
    match api.list().await {
        Ok(hooks) => {
            match hooks.iter().find(|h| &h.id == id) {
                Some(hook) if hook.is_hook_enabled => findings.add(
                    Level::Ok,
                    "airtable_webhook_id",
                    format!(
                        "webhook {id} is enabled; it expires {}",
                        hook.expiration_time.as_deref().unwrap_or("never")
                    ),
                ),
                Some(_) => findings.add(
                    Level::Problem,
                    "airtable_webhook_id",
                    format!(
                        "webhook {id} is disabled (it expired or failed too often): create a new \
                     one with `{} webhooks create --url …` and set its id and MAC secret",
                        ctx.name
                    ),
                ),
                None => findings.add(
                    Level::Problem,
                    "airtable_webhook_id",
                    format!(
                    "{id} is not a webhook of base {} (known: {}): create one with `{} webhooks \
                     create --url …`",
                    api.base_id(),
                    if hooks.is_empty() {
                        "none".to_owned()
                    } else {
                        hooks.iter().map(|h| h.id.as_str()).collect::<Vec<_>>().join(", ")
                    },
                    ctx.name
                ),
                ),
            }
        }
        Err(SourceError::Unauthorized(_)) | Err(SourceError::Forbidden { .. }) => findings.add(
            Level::Problem,
            "scope webhook:manage",
            format!(
                "the token may not list the webhooks of base {}: give it the webhook:manage \
                 scope (native webhooks are configured: airtable_webhook_id)",
                api.base_id()
            ),
        ),
        Err(err) => findings.add(
            Level::Problem,
            "airtable_webhook_id",
            format!("listing the base's webhooks failed: {err}"),
        ),
    }
}
