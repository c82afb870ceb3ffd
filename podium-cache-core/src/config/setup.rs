//! Building the engine's parts from [`Settings`]: the store (in memory, Redis, a Redis Cluster,
//! with or without the in-process tier), the Airtable source with its shared budget, and the
//! engine's [`CacheConfig`]. [`Cache::from_settings`](crate::cache::Cache::from_settings) and
//! [`Cache::stores_from_settings`](crate::cache::Cache::stores_from_settings) are the public face.

use std::sync::Arc;
use std::time::Duration;

use super::{ConfigError, Settings};
use crate::cache::CacheConfig;
use crate::key::Keys;
use crate::source::{AirtableSource, Source, SourceError};
#[cfg(feature = "cluster")]
use crate::store::RedisClusterStore;
use crate::store::{MemoryStore, Store, StoreError};
#[cfg(feature = "redis")]
use crate::store::{RedisCa, RedisStore, TieredStore};

/// Why [`Cache::from_settings`](crate::cache::Cache::from_settings) could not build a cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A setting is missing or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be set up.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The source could not be set up.
    #[error("airtable: {0}")]
    Source(#[from] SourceError),
    /// A setting asks for a part this build of podium-cache-core left out.
    #[error(
        "{setting} is set, but podium-cache-core was built without its `{feature}` feature: \
         enable it (podium-cache-core = {{ version = \"0.1\", features = [\"{feature}\"] }}) \
         or unset {setting}"
    )]
    FeatureDisabled {
        /// The setting that needs the feature.
        setting: &'static str,
        /// The cargo feature of podium-cache-core to enable.
        feature: &'static str,
    },
}

/// The store and source that `settings` describe (see
/// [`Cache::stores_from_settings`](crate::cache::Cache::stores_from_settings)).
pub(crate) async fn stores(
    settings: &Settings,
) -> Result<(Arc<dyn Store>, Arc<dyn Source>), SetupError> {
    if let Some(err) = missing_feature(settings, cfg!(feature = "redis"), cfg!(feature = "cluster"))
    {
        return Err(err);
    }
    #[cfg(feature = "redis")]
    let ca = redis_ca(settings)?;
    #[cfg(feature = "redis")]
    let store = store_from_settings(settings, &ca).await?;
    #[cfg(not(feature = "redis"))]
    let store = store_from_settings(settings)?;
    // The Airtable budget is shared through Redis itself (not the in-process tier).
    let shared = settings.redis_url.is_some() || !settings.redis_cluster_nodes.is_empty();
    let budget_store = shared.then(|| Arc::clone(&store));
    #[cfg(feature = "redis")]
    let store = with_tier(settings, store, ca).await?;
    let (key, base) = settings.airtable_key_and_base()?;
    let mut source = AirtableSource::builder(key.expose(), base)
        .api_url(settings.airtable_api_url.as_str())
        .local_rps(settings.local_airtable_rps());
    if let Some(budget_store) = budget_store {
        let budget_key = Keys::new(settings.prefix.as_str()).rate_limit(base);
        tracing::info!(
            key = budget_key,
            local_rps = settings.local_airtable_rps(),
            "airtable budget shared by every instance through the store"
        );
        source = source.shared_limit(budget_store, budget_key);
    }
    let source = source.build()?;
    Ok((store, Arc::new(source)))
}

/// The store `settings` describe (see [`stores`]).
#[cfg(feature = "redis")]
async fn store_from_settings(
    settings: &Settings,
    ca: &Option<RedisCa>,
) -> Result<Arc<dyn Store>, SetupError> {
    Ok(match &settings.redis_url {
        Some(url) => {
            let mut builder = RedisStore::builder(url.expose());
            if let Some(ca) = ca {
                builder = builder.ca(ca.clone());
            }
            Arc::new(builder.connect().await.map_err(|e| ConfigError::Invalid {
                setting: "redis_url",
                env: "PODIUM_REDIS_URL",
                message: e.to_string(),
            })?)
        }
        #[cfg(feature = "cluster")]
        None if !settings.redis_cluster_nodes.is_empty() => {
            let mut builder = RedisClusterStore::builder(
                settings
                    .redis_cluster_nodes
                    .iter()
                    .map(|n| n.expose().to_owned()),
            );
            if let Some(ca) = ca {
                builder = builder.ca(ca.clone());
            }
            Arc::new(builder.connect().await.map_err(|e| ConfigError::Invalid {
                setting: "redis_cluster_nodes",
                env: "PODIUM_REDIS_CLUSTER_NODES",
                message: e.to_string(),
            })?)
        }
        // Without `cluster`, cluster nodes were refused by `missing_feature`.
        _ => memory_store(settings),
    })
}

/// The store `settings` describe in a build without Redis: the in-memory store (Redis
/// settings were refused by [`missing_feature`]).
#[cfg(not(feature = "redis"))]
fn store_from_settings(settings: &Settings) -> Result<Arc<dyn Store>, SetupError> {
    if settings.l1_capacity > 0 {
        tracing::info!(
            "l1_capacity has no effect without redis: the in-memory store is in process already"
        );
    }
    Ok(memory_store(settings))
}

/// The in-memory store of `memory_capacity` entries (the embedded default), said in one
/// info line.
fn memory_store(settings: &Settings) -> Arc<dyn Store> {
    tracing::info!(
        capacity = settings.memory_capacity,
        "no redis_url configured: using the in-memory store"
    );
    Arc::new(MemoryStore::new(settings.memory_capacity))
}

/// `store` behind an in-process tier when `l1_capacity > 0` and the store is shared (Redis
/// or a cluster): a [`TieredStore`] whose invalidation link uses the same server(s) and
/// the channel `{prefix}:inval`.
#[cfg(feature = "redis")]
async fn with_tier(
    settings: &Settings,
    store: Arc<dyn Store>,
    ca: Option<RedisCa>,
) -> Result<Arc<dyn Store>, SetupError> {
    if settings.l1_capacity == 0 {
        return Ok(store);
    }
    let (urls, setting, env): (Vec<String>, _, _) = match &settings.redis_url {
        Some(url) => (
            vec![url.expose().to_owned()],
            "redis_url",
            "PODIUM_REDIS_URL",
        ),
        None if !settings.redis_cluster_nodes.is_empty() => (
            settings
                .redis_cluster_nodes
                .iter()
                .map(|node| node.expose().to_owned())
                .collect(),
            "redis_cluster_nodes",
            "PODIUM_REDIS_CLUSTER_NODES",
        ),
        None => {
            tracing::info!(
                "l1_capacity has no effect without redis: the in-memory store is in process already"
            );
            return Ok(store);
        }
    };
    let mut tiered = TieredStore::builder(store)
        .capacity(settings.l1_capacity)
        .prefix(&settings.prefix)
        .bus_urls(urls);
    if let Some(ca) = ca {
        tiered = tiered.ca(ca);
    }
    let tiered = tiered.connect().await.map_err(|e| ConfigError::Invalid {
        setting,
        env,
        message: e.to_string(),
    })?;
    tracing::info!(
        capacity = settings.l1_capacity,
        "in-process tier on, kept coherent over redis pub/sub"
    );
    Ok(Arc::new(tiered))
}

/// The engine's settings from `settings`: TTLs, negative cache, the client limit and the
/// Airtable budget.
pub(crate) fn cache_config(settings: &Settings) -> CacheConfig {
    CacheConfig {
        data_ttl: settings.data_ttl(),
        tombstone_ttl: settings.tombstone_ttl(),
        missing_ttl: settings.tombstone_ttl(),
        jitter: settings.ttl_jitter,
        query_ttl: settings.data_ttl(),
        stale_if_error: settings.stale_if_error(),
        xfetch_beta: settings.xfetch_beta,
        negative_ttl: Duration::from_secs(settings.negative_ttl_secs),
        negative_capacity: settings.negative_capacity,
        // The budget the Airtable client is built with.
        source_budget: Some(crate::source::airtable::RATE_LIMIT),
        max_client_misses: settings.max_client_misses,
        ..CacheConfig::default()
    }
}

/// The CA of `redis_ca_file`, read and checked, when it is set.
#[cfg(feature = "redis")]
fn redis_ca(settings: &Settings) -> Result<Option<RedisCa>, ConfigError> {
    let Some(pem) = settings.redis_ca_pem()? else {
        return Ok(None);
    };
    let path = settings
        .redis_ca_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    RedisCa::from_pem(pem)
        .map(Some)
        .map_err(|e| ConfigError::Invalid {
            setting: "redis_ca_file",
            env: "PODIUM_REDIS_CA_FILE",
            message: format!("{path}: {e}"),
        })
}

/// The error for a setting that needs a feature this build left out (`redis`, `cluster`: the
/// ones enabled are passed in), if `settings` has one.
fn missing_feature(settings: &Settings, redis: bool, cluster: bool) -> Option<SetupError> {
    let disabled = |setting, feature| Some(SetupError::FeatureDisabled { setting, feature });
    if settings.redis_url.is_some() && !redis {
        return disabled("redis_url", "redis");
    }
    if !settings.redis_cluster_nodes.is_empty() && !cluster {
        return disabled("redis_cluster_nodes", "cluster");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_setting_without_its_feature_names_the_feature() {
        use crate::config::Secret;
        let redis = "redis://127.0.0.1:1";
        let url = Settings {
            redis_url: Some(Secret::new(redis)),
            ..Settings::default()
        };
        let nodes = Settings {
            redis_cluster_nodes: vec![Secret::new(redis)],
            ..Settings::default()
        };
        let refused = [
            (&url, false, false, "redis_url", "redis"),
            (&nodes, false, false, "redis_cluster_nodes", "cluster"),
            (&nodes, true, false, "redis_cluster_nodes", "cluster"),
        ];
        for (settings, redis, cluster, named, needed) in refused {
            let err = missing_feature(settings, redis, cluster).expect("refused");
            assert!(
                matches!(err, SetupError::FeatureDisabled { setting, feature } if setting == named && feature == needed),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains(&format!("`{needed}` feature")) && text.contains(named),
                "{text}"
            );
        }
        assert!(missing_feature(&url, true, false).is_none());
        assert!(missing_feature(&nodes, true, true).is_none());
        assert!(missing_feature(&Settings::default(), false, false).is_none());
    }
}
