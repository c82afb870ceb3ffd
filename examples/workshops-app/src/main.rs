//! The workshops app: members and workshops read from Airtable through podium-cache.

use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::{http::StatusCode, routing::get, Json, Router};
use podium_cache_core::{config::Settings, maintenance::Maintenance, webhook::Models};
use podium_cache_core::{Cache, CacheError, Cacheable};
use podium_cache_tower::{webhook::WebhookRoutes, CacheLayer};
use workshops_app::{Member, Workshop};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let logs = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or("info".into());
    tracing_subscriber::fmt().with_env_filter(logs).init();
    // `.secrets.toml` in the working directory, then the PODIUM_* environment variables.
    let settings = Settings::load(".".as_ref())?;
    let cache = Cache::from_settings(&settings).await?;
    let models = Models::new().register::<Member>().register::<Workshop>();
    let webhooks = WebhookRoutes::from_settings(&cache, models, &settings)?;
    // The daily sweep and the native webhook's refresh, in the background, one instance at a time.
    let maintenance = Maintenance::new(&cache).model::<Member>().model::<Workshop>();
    let maintenance = maintenance.webhooks_from_settings(&settings)?.spawn();

    let app = Router::new()
        .route("/members/{id}", get(by_id::<Member>))
        .route("/members/by-email/{email}", get(member_by_email))
        .route("/workshops/{id}", get(by_id::<Workshop>))
        .layer(CacheLayer::new(&cache))
        .with_state(cache)
        .merge(webhooks.into_router());
    let bind = std::env::var("PODIUM_BIND").unwrap_or("127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(bind).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    // With the peer address: the cache queues and limits each client's misses on its own.
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.unwrap_or_default() })
        .await?;
    maintenance.shutdown().await;
    Ok(())
}

type Reply<T> = Result<Json<T>, StatusCode>;

async fn by_id<T: Cacheable>(State(cache): State<Cache>, Path(id): Path<String>) -> Reply<T> {
    reply(cache.get::<T>(&id).await)
}

async fn member_by_email(State(cache): State<Cache>, Path(email): Path<String>) -> Reply<Member> {
    reply(cache.get_by_index::<Member>("email", &email).await)
}

fn reply<T>(read: Result<Option<T>, CacheError>) -> Reply<T> {
    match read {
        Ok(Some(record)) => Ok(Json(record)),
        Ok(None) => Err(StatusCode::NOT_FOUND),
        Err(error) => {
            tracing::error!(%error, "read failed");
            Err(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}
