//! The workshops app: members and workshops read from Airtable through podium-cache.

use axum::{extract::Path, extract::State, routing::get, Router};
use podium_cache_core::{Cache, Cacheable, Maintenance, Models, Settings};
use podium_cache_tower::{webhook::WebhookRoutes, CacheLayer, Found};
use workshops_app::{Member, Workshop};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let logs = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or("info".into());
    tracing_subscriber::fmt().with_env_filter(logs).init();
    // `.secrets.toml` in the working directory, then the PODIUM_* environment variables.
    let settings = Settings::load(".".as_ref())?;
    let cache = Cache::from_settings(&settings).await?;
    let models = Models::new().register::<Member>().register::<Workshop>();
    // The daily sweep and the native webhook's refresh, in the background.
    let maintenance = Maintenance::from_settings(&cache, &models, &settings)?.spawn();
    let webhooks = WebhookRoutes::from_settings(&cache, models, &settings)?;

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
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let stop = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
    axum::serve(listener, app).with_graceful_shutdown(stop).await?;
    maintenance.shutdown().await;
    Ok(())
}

async fn by_id<T: Cacheable>(State(cache): State<Cache>, Path(id): Path<String>) -> Found<T> {
    cache.get::<T>(&id).await.into()
}

async fn member_by_email(State(cache): State<Cache>, Path(email): Path<String>) -> Found<Member> {
    cache.get_by_index("email", &email).await.into()
}
