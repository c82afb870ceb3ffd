//! Settings: `.secrets.toml` plus `PODIUM_*` environment variables (the environment wins).
//!
//! | setting | environment | default |
//! |---|---|---|
//! | `redis_url` | `PODIUM_REDIS_URL` | none: the in-memory store |
//! | `redis_cluster_nodes` | `PODIUM_REDIS_CLUSTER_NODES` | none |
//! | `airtable_api_key` | `PODIUM_AIRTABLE_API_KEY` | none |
//! | `airtable_base_id` | `PODIUM_AIRTABLE_BASE_ID` | none |
//! | `airtable_api_url` | `PODIUM_AIRTABLE_API_URL` | `https://api.airtable.com` |
//! | `webhook_secret` | `PODIUM_WEBHOOK_SECRET` | none |
//! | `airtable_webhook_id` | `PODIUM_AIRTABLE_WEBHOOK_ID` | none: native webhooks off |
//! | `airtable_webhook_mac_secret` | `PODIUM_AIRTABLE_WEBHOOK_MAC_SECRET` | none |
//! | `allow_legacy_secret` | `PODIUM_ALLOW_LEGACY_SECRET` | `false` |
//! | `l1_capacity` | `PODIUM_L1_CAPACITY` | 0 (off) |
//! | `memory_capacity` | `PODIUM_MEMORY_CAPACITY` | 100000 entries |
//! | `prefix` | `PODIUM_PREFIX` | `podium` |
//! | `data_ttl_secs` | `PODIUM_DATA_TTL_SECS` | 28800 (8 h) |
//! | `tombstone_ttl_secs` | `PODIUM_TOMBSTONE_TTL_SECS` | 32400 (9 h) |
//! | `ttl_jitter` | `PODIUM_TTL_JITTER` | 0.05 |
//!
//! ```
//! use podium_cache_core::config::Settings;
//! let settings = Settings::from_sources(
//!     Some("prefix = \"demo\"\nairtable_base_id = \"appAAAAAAAAAAAAAA\""),
//!     [("PODIUM_PREFIX".to_string(), "fromenv".to_string())],
//! )?;
//! assert_eq!(settings.prefix, "fromenv");
//! assert_eq!(settings.airtable_base_id.as_deref(), Some("appAAAAAAAAAAAAAA"));
//! assert!(settings.redis_url.is_none());
//! # Ok::<(), podium_cache_core::config::ConfigError>(())
//! ```

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// A secret value (API key, webhook secret, a URL with a password): `Debug` and `Display`
/// print `[redacted]`; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: pass it to the one place that needs it, never to a log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A setting could not be read or does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `.secrets.toml` could not be read.
    #[error("could not read {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// `.secrets.toml` is not valid TOML or has a value of the wrong type.
    #[error("invalid .secrets.toml: {0}")]
    Toml(String),
    /// One setting has a value that cannot be used.
    #[error("invalid setting `{setting}` ({env}): {message}")]
    Invalid {
        /// The setting's name in `.secrets.toml`.
        setting: &'static str,
        /// Its environment variable.
        env: &'static str,
        /// Why the value is refused.
        message: String,
    },
}

/// Every setting the library and the example app read.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `redis://…` of a standalone Redis/Valkey; none means the in-memory store.
    pub redis_url: Option<Secret>,
    /// Seed nodes of a Redis Cluster (comma-separated in the environment).
    pub redis_cluster_nodes: Vec<String>,
    /// Airtable personal access token.
    pub airtable_api_key: Option<Secret>,
    /// Airtable base id (`app…`).
    pub airtable_base_id: Option<String>,
    /// Airtable API origin; the client adds `/v0/…` (a URL ending in `/v0` works too).
    pub airtable_api_url: String,
    /// `whsec_…` secret that signs webhook deliveries.
    pub webhook_secret: Option<Secret>,
    /// Accept the legacy plain `X-Airtable-Secret` header.
    pub allow_legacy_secret: bool,
    /// Id (`ach…`) of the Airtable native webhook this app receives notifications from
    /// (`cargo xtask webhooks create` prints it); none keeps native webhooks off.
    pub airtable_webhook_id: Option<String>,
    /// That webhook's `macSecretBase64`.
    pub airtable_webhook_mac_secret: Option<Secret>,
    /// Entries of the optional in-process tier in front of Redis (0 = off).
    pub l1_capacity: u64,
    /// Entries the in-memory store holds at most.
    pub memory_capacity: u64,
    /// First component of every key.
    pub prefix: String,
    /// Data TTL in seconds (8 h).
    pub data_ttl_secs: u64,
    /// Tombstone TTL in seconds (9 h, longer than the data TTL).
    pub tombstone_ttl_secs: u64,
    /// TTL jitter as a fraction (0.05 = ±5%).
    pub ttl_jitter: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_cluster_nodes: Vec::new(),
            airtable_api_key: None,
            airtable_base_id: None,
            airtable_api_url: "https://api.airtable.com".to_owned(),
            webhook_secret: None,
            allow_legacy_secret: false,
            airtable_webhook_id: None,
            airtable_webhook_mac_secret: None,
            l1_capacity: 0,
            memory_capacity: 100_000,
            prefix: "podium".to_owned(),
            data_ttl_secs: 8 * 3600,
            tombstone_ttl_secs: 9 * 3600,
            ttl_jitter: 0.05,
        }
    }
}

impl Settings {
    /// Reads `.secrets.toml` from `dir` (if present) and the process environment.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join(".secrets.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })
            }
        };
        Self::from_sources(text.as_deref(), std::env::vars())
    }

    /// Builds settings from a TOML text and environment pairs (what [`Settings::load`] uses).
    pub fn from_sources(
        toml_text: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut settings: Settings = match toml_text {
            Some(text) => toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?,
            None => Settings::default(),
        };
        for (name, value) in env {
            settings.apply_env(&name, value)?;
        }
        settings.validate()?;
        Ok(settings)
    }

    fn apply_env(&mut self, name: &str, value: String) -> Result<(), ConfigError> {
        let value_opt = || (!value.trim().is_empty()).then(|| value.trim().to_owned());
        match name {
            "PODIUM_REDIS_URL" => self.redis_url = value_opt().map(Secret),
            "PODIUM_REDIS_CLUSTER_NODES" => {
                self.redis_cluster_nodes = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            "PODIUM_AIRTABLE_API_KEY" => self.airtable_api_key = value_opt().map(Secret),
            "PODIUM_AIRTABLE_BASE_ID" => self.airtable_base_id = value_opt(),
            "PODIUM_AIRTABLE_API_URL" => {
                if let Some(v) = value_opt() {
                    self.airtable_api_url = v
                }
            }
            "PODIUM_WEBHOOK_SECRET" => self.webhook_secret = value_opt().map(Secret),
            "PODIUM_AIRTABLE_WEBHOOK_ID" => self.airtable_webhook_id = value_opt(),
            "PODIUM_AIRTABLE_WEBHOOK_MAC_SECRET" => {
                self.airtable_webhook_mac_secret = value_opt().map(Secret)
            }
            "PODIUM_ALLOW_LEGACY_SECRET" => {
                self.allow_legacy_secret =
                    parse("allow_legacy_secret", "PODIUM_ALLOW_LEGACY_SECRET", &value)?
            }
            "PODIUM_L1_CAPACITY" => {
                self.l1_capacity = parse("l1_capacity", "PODIUM_L1_CAPACITY", &value)?
            }
            "PODIUM_MEMORY_CAPACITY" => {
                self.memory_capacity = parse("memory_capacity", "PODIUM_MEMORY_CAPACITY", &value)?
            }
            "PODIUM_PREFIX" => {
                if let Some(v) = value_opt() {
                    self.prefix = v
                }
            }
            "PODIUM_DATA_TTL_SECS" => {
                self.data_ttl_secs = parse("data_ttl_secs", "PODIUM_DATA_TTL_SECS", &value)?
            }
            "PODIUM_TOMBSTONE_TTL_SECS" => {
                self.tombstone_ttl_secs =
                    parse("tombstone_ttl_secs", "PODIUM_TOMBSTONE_TTL_SECS", &value)?
            }
            "PODIUM_TTL_JITTER" => {
                self.ttl_jitter = parse("ttl_jitter", "PODIUM_TTL_JITTER", &value)?
            }
            _ => {}
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.redis_url {
            let ok = url.expose().starts_with("redis://")
                || url.expose().starts_with("rediss://")
                || url.expose().starts_with("valkey://");
            if !ok {
                return Err(ConfigError::Invalid {
                    setting: "redis_url",
                    env: "PODIUM_REDIS_URL",
                    message: "must start with redis:// (e.g. redis://127.0.0.1:6379/0)".into(),
                });
            }
        }
        if self.redis_url.is_some() && !self.redis_cluster_nodes.is_empty() {
            return Err(ConfigError::Invalid {
                setting: "redis_cluster_nodes",
                env: "PODIUM_REDIS_CLUSTER_NODES",
                message: "set either redis_url or redis_cluster_nodes, not both".into(),
            });
        }
        if self.airtable_webhook_id.is_some() != self.airtable_webhook_mac_secret.is_some() {
            return Err(ConfigError::Invalid {
                setting: "airtable_webhook_mac_secret",
                env: "PODIUM_AIRTABLE_WEBHOOK_MAC_SECRET",
                message: "set both airtable_webhook_id and airtable_webhook_mac_secret (cargo xtask webhooks create prints them), or neither".into(),
            });
        }
        let api = &self.airtable_api_url;
        if !(api.starts_with("http://") || api.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                setting: "airtable_api_url",
                env: "PODIUM_AIRTABLE_API_URL",
                message: format!("{api:?} is not an http(s) URL"),
            });
        }
        if self.prefix.is_empty() || self.prefix.contains([':', '{', '}', '*', ' ']) {
            return Err(ConfigError::Invalid {
                setting: "prefix",
                env: "PODIUM_PREFIX",
                message: "must be non-empty without ':', '{', '}', '*' or spaces".into(),
            });
        }
        if self.tombstone_ttl_secs <= self.data_ttl_secs {
            return Err(ConfigError::Invalid {
                setting: "tombstone_ttl_secs",
                env: "PODIUM_TOMBSTONE_TTL_SECS",
                message: "must be longer than data_ttl_secs".into(),
            });
        }
        if !(0.0..0.5).contains(&self.ttl_jitter) {
            return Err(ConfigError::Invalid {
                setting: "ttl_jitter",
                env: "PODIUM_TTL_JITTER",
                message: "must be a fraction in [0, 0.5)".into(),
            });
        }
        Ok(())
    }

    /// The data TTL.
    pub fn data_ttl(&self) -> Duration {
        Duration::from_secs(self.data_ttl_secs)
    }

    /// The tombstone TTL.
    pub fn tombstone_ttl(&self) -> Duration {
        Duration::from_secs(self.tombstone_ttl_secs)
    }
}

fn parse<T: std::str::FromStr>(
    setting: &'static str,
    env: &'static str,
    value: &str,
) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| ConfigError::Invalid {
            setting,
            env,
            message: format!("{value:?}: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_wins_over_the_file() {
        let s = Settings::from_sources(
            Some("redis_url = \"redis://file:1/\"\nprefix = \"file\""),
            env(&[("PODIUM_REDIS_URL", "redis://env:2/")]),
        )
        .unwrap();
        assert_eq!(s.redis_url.unwrap().expose(), "redis://env:2/");
        assert_eq!(s.prefix, "file");
    }

    #[test]
    fn malformed_redis_url_names_the_setting() {
        let err = Settings::from_sources(None, env(&[("PODIUM_REDIS_URL", "localhost:6379")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("redis_url") && err.contains("PODIUM_REDIS_URL"),
            "{err}"
        );
    }

    #[test]
    fn redis_url_and_cluster_nodes_together_are_refused() {
        let err = Settings::from_sources(
            None,
            env(&[
                ("PODIUM_REDIS_URL", "redis://a:1/"),
                ("PODIUM_REDIS_CLUSTER_NODES", "redis://b:1,redis://c:1"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not both"));
    }

    #[test]
    fn unknown_keys_and_bad_numbers_are_clear_errors() {
        assert!(Settings::from_sources(Some("redis_ulr = \"x\""), env(&[])).is_err());
        let err = Settings::from_sources(None, env(&[("PODIUM_L1_CAPACITY", "many")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("l1_capacity"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let s = Settings::from_sources(
            Some("airtable_api_key = \"patSECRET\"\nwebhook_secret = \"whsec_c2VjcmV0\""),
            env(&[]),
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("patSECRET") && !shown.contains("whsec_"),
            "{shown}"
        );
    }
}
