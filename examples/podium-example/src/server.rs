//! Starting the app: configuration, the local Airtable server for the demo, the cache, the
//! router, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use podium_cache_core::config::{ConfigError, Secret, Settings};
use podium_cache_core::maintenance::{Maintenance, MaintenanceHandle};
use podium_cache_core::source::scopes::ScopeNeeds;
use podium_cache_core::source::{check_token_scopes, AirtableSource, SourceError};
use podium_cache_core::webhook::{secrets_from_settings, WebhookSecret, WebhooksApi};
use podium_cache_core::Cache;
use podium_cache_tower::webhook::WebhookRoutes;
use podium_local::airtable::{AirtableServer, RunningAirtable};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::admin::{AdminToken, AdminTokenError};
use crate::app::{self, AppState, WebhookCounters};
use crate::demo;

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting is missing or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The cache could not be set up.
    #[error(transparent)]
    Setup(#[from] podium_cache_core::cache::SetupError),
    /// The local Airtable server could not start.
    #[error("local Airtable server: {0}")]
    Local(String),
    /// The listening socket.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The native webhook could not be set up.
    #[error("native webhook: {0}")]
    Native(String),
    /// Serving failed.
    #[error("server: {0}")]
    Serve(std::io::Error),
    /// The configured admin token is unusable.
    #[error(transparent)]
    AdminToken(#[from] AdminTokenError),
    /// The in-app maintenance could not be set up (its Airtable client for the webhook
    /// refresh).
    #[error("maintenance: {0}")]
    Maintenance(#[from] SourceError),
}

/// How to start the app.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Listening address.
    pub bind: SocketAddr,
    /// Where `.secrets.toml` is looked for.
    pub config_dir: PathBuf,
    /// Use these settings instead of reading `.secrets.toml` and the environment.
    pub settings: Option<Settings>,
    /// Latency of the demo Airtable server (default 100-500 ms, like Airtable).
    pub demo_latency: (Duration, Duration),
    /// Rate limit of the demo Airtable server (default 5 requests/s per base).
    pub demo_rate_limit: Option<u32>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            config_dir: PathBuf::from("."),
            settings: None,
            demo_latency: (Duration::from_millis(100), Duration::from_millis(500)),
            demo_rate_limit: Some(5),
        }
    }
}

/// A started app.
pub struct RunningApp {
    /// The address it serves.
    pub addr: SocketAddr,
    /// Its cache.
    pub cache: Cache,
    /// The local Airtable server, when the demo runs on it.
    pub airtable: Option<RunningAirtable>,
    /// The webhook secret deliveries must be signed with.
    pub webhook_secret: WebhookSecret,
    /// The bearer token the app's writes require.
    pub admin_token: AdminToken,
    /// The background sweep and native-webhook refresh ([`maintenance`]).
    pub maintenance: Option<MaintenanceHandle>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningApp {
    /// Stops accepting, finishes requests in flight, stops the maintenance (a sweep in
    /// progress ends after its batch and releases its lock), and waits.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = match self.task.await {
            Ok(result) => result.map_err(ServerError::Serve),
            Err(err) => Err(ServerError::Serve(std::io::Error::other(err))),
        };
        if let Some(maintenance) = self.maintenance.take() {
            maintenance.shutdown().await;
        }
        served
    }
}

pub use crate::models::models;

/// The in-app maintenance over every model: the daily sweep, one instance at a time, and the
/// daily refresh of the native webhook the settings name (`airtable_webhook_id`), if any.
/// Not started yet: [`Maintenance::spawn`].
pub fn maintenance(cache: &Cache, settings: &Settings) -> Result<Maintenance, SourceError> {
    Maintenance::new(cache)
        .models(&models())
        .webhooks_from_settings(settings)
}

/// Starts the app in the background and returns once it listens.
pub async fn start(options: RunOptions) -> Result<RunningApp, ServerError> {
    let mut settings = match options.settings {
        Some(settings) => settings,
        None => Settings::load(&options.config_dir)?,
    };
    let airtable = if settings.airtable_api_key.is_none() {
        let server = AirtableServer::builder()
            .latency(options.demo_latency.0, options.demo_latency.1)
            .rate_limit(options.demo_rate_limit)
            .seed_json(&demo::seed(demo::DEMO_BASE, &models()))
            .start()
            .await
            .map_err(|e| ServerError::Local(e.to_string()))?;
        tracing::info!(url = %server.url(), "no airtable_api_key configured: serving demo data from the local Airtable server");
        settings.airtable_api_key = Some(Secret::new(server.api_key()));
        settings.airtable_base_id = Some(demo::DEMO_BASE.to_owned());
        settings.airtable_api_url = server.url();
        Some(server)
    } else {
        None
    };
    // The first secret is the one the app's own tests and demo sign deliveries with.
    let webhook_secret = match secrets_from_settings(&settings)?.into_iter().next() {
        Some(secret) => secret,
        None => {
            tracing::warn!("no webhook_secret configured: generated one for this run only (`cargo xtask gen-secret` makes a lasting one)");
            let secret = WebhookSecret::generate();
            settings.webhook_secret = Some(Secret::new(secret.expose()));
            secret
        }
    };
    let admin_token = AdminToken::from_setting(settings.admin_token.as_ref())?;
    let cache = Cache::from_settings(&settings).await?;
    // Names each scope the token lacks, with the feature that needs it (the demo creates a
    // native webhook on the local server).
    let needs = ScopeNeeds::from_settings(&settings)
        .native_webhooks(airtable.is_some() || settings.airtable_webhook_id.is_some());
    if let Err(error) = check_token_scopes(&settings, &needs).await {
        tracing::warn!(%error, "could not check the Airtable token's scopes");
    }
    let listener = TcpListener::bind(options.bind)
        .await
        .map_err(|source| ServerError::Bind {
            addr: options.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: options.bind,
        source,
    })?;
    if airtable.is_some() && settings.airtable_webhook_id.is_none() {
        demo_native_webhook(&mut settings, addr).await?;
    }
    let webhooks = WebhookRoutes::from_settings(&cache, models(), &settings)?;
    let maintenance = maintenance(&cache, &settings)?.spawn();
    let state = AppState {
        cache: cache.clone(),
        webhooks: Arc::new(WebhookCounters::default()),
        trusted_client_header: settings.trusted_client_header.clone(),
        admin: admin_token.clone(),
    };
    let router = router(state, webhooks);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // With the peer address, so misses are queued and limited per client.
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        })
        .await
    });
    Ok(RunningApp {
        addr,
        cache,
        airtable,
        webhook_secret,
        admin_token,
        maintenance: Some(maintenance),
        stop: Some(stop),
        task,
    })
}

/// In the demo, a native webhook on the local Airtable server that notifies this app, so a
/// change made there reaches the cache as it would from Airtable; its id and MAC secret go into
/// `settings`, from which the webhook routes are built.
async fn demo_native_webhook(settings: &mut Settings, addr: SocketAddr) -> Result<(), ServerError> {
    let (Some(key), Some(base)) = (&settings.airtable_api_key, &settings.airtable_base_id) else {
        return Ok(());
    };
    let source = AirtableSource::builder(key.expose(), base.as_str())
        .api_url(settings.airtable_api_url.as_str())
        .build()
        .map_err(|e| ServerError::Native(e.to_string()))?;
    let url = format!("http://{addr}/api/webhooks/airtable/notify");
    let created = WebhooksApi::new(source)
        .create_table_data(&url)
        .await
        .map_err(|e| ServerError::Native(e.to_string()))?;
    tracing::info!(
        webhook = created.id,
        "demo: the local Airtable server notifies this app of every change"
    );
    settings.airtable_webhook_id = Some(created.id);
    settings.airtable_webhook_mac_secret = Some(created.mac_secret_base64);
    Ok(())
}

/// The whole router: read routes, webhook routes (counted for `/metrics`).
pub fn router(state: AppState, routes: WebhookRoutes) -> Router {
    let counters = Arc::clone(&state.webhooks);
    let webhooks =
        routes
            .into_router()
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                let counters = Arc::clone(&counters);
                async move {
                    let response: Response = next.run(request).await;
                    counters.count(response.status().as_u16());
                    response
                }
            }));
    app::routes(state).merge(webhooks)
}

/// Starts the app, prints how to try it, and serves until `signal` resolves.
pub async fn run(options: RunOptions, signal: impl Future<Output = ()>) -> Result<(), ServerError> {
    let app = start(options).await?;
    print_try_this(&app);
    signal.await;
    app.shutdown().await
}

fn print_try_this(app: &RunningApp) {
    let base = format!("http://{}", app.addr);
    println!("podium-example listening on {base}");
    println!();
    println!("Try this:");
    println!(
        "  curl -si {base}/events/{} | grep -i x-cache     # MISS: read from Airtable",
        demo::FIRST_EVENT
    );
    println!(
        "  curl -si {base}/events/{} | grep -i x-cache     # HIT: from the cache",
        demo::FIRST_EVENT
    );
    if let Some(airtable) = &app.airtable {
        println!(
            "  curl -s -X PATCH {}/v0/{}/Events/{} -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' -d '{{\"fields\":{{\"name\":\"Renamed\"}}}}'",
            airtable.url(),
            demo::DEMO_BASE,
            demo::FIRST_EVENT,
            airtable.api_key()
        );
        println!(
            "  curl -s {base}/events/{}                        # the new name",
            demo::FIRST_EVENT
        );
    }
    println!("  curl -s {base}/users/by-email/ada@example.com");
    print_admin_try_this(app, &base);
    println!("  curl -s {base}/metrics");
}

/// The write line: a delete with the admin token. A generated token is shown here, once (the
/// only place it is ever printed); a configured one is named, not shown.
fn print_admin_try_this(app: &RunningApp, base: &str) {
    let bearer = if app.admin_token.generated() {
        println!("  # writes need the admin token, generated for this run (set PODIUM_ADMIN_TOKEN or admin_token in .secrets.toml to keep one):");
        format!("'Authorization: Bearer {}'", app.admin_token.expose())
    } else {
        "\"Authorization: Bearer $PODIUM_ADMIN_TOKEN\"".to_owned()
    };
    println!(
        "  curl -si -X DELETE {base}/votes/{} -H {bearer}   # 204; without the token: 401",
        demo::FIRST_VOTE
    );
}
