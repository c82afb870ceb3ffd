//! Settings: `.secrets.toml` plus `PODIUM_*` environment variables (the environment wins).
//!
//! The library reads its settings from the file's `[podium]` table when it has one (every other
//! key then belongs to the app and is left alone), else from its top level, where keys that are
//! not settings are left to the app too, unless they are one or two edits away from a setting:
//! those are refused as typos, with "did you mean". Inside `[podium]` every unknown key is
//! refused. A `PODIUM_*` environment variable near a setting's name is refused the same way;
//! one far from every name is logged as a warning.
//!
//! | setting | environment | default |
//! |---|---|---|
//! | `redis_url` | `PODIUM_REDIS_URL` | none: the in-memory store |
//! | `redis_cluster_nodes` | `PODIUM_REDIS_CLUSTER_NODES` | none |
//! | `redis_ca_file` | `PODIUM_REDIS_CA_FILE` | none: `rediss://` trusts the public roots |
//! | `airtable_api_key` | `PODIUM_AIRTABLE_API_KEY` | none |
//! | `airtable_base_id` | `PODIUM_AIRTABLE_BASE_ID` | none |
//! | `airtable_api_url` | `PODIUM_AIRTABLE_API_URL` | `https://api.airtable.com` |
//! | `webhook_secret` | `PODIUM_WEBHOOK_SECRET` | none |
//! | `webhook_secrets` | `PODIUM_WEBHOOK_SECRETS` (comma-separated) | none; with `webhook_secret`, all are accepted |
//! | `airtable_webhook_id` | `PODIUM_AIRTABLE_WEBHOOK_ID` | none: native webhooks off |
//! | `airtable_webhook_mac_secret` | `PODIUM_AIRTABLE_WEBHOOK_MAC_SECRET` | none |
//! | `allow_legacy_secret` | `PODIUM_ALLOW_LEGACY_SECRET` | `false` |
//! | `l1_capacity` | `PODIUM_L1_CAPACITY` | 0 (off) |
//! | `memory_capacity` | `PODIUM_MEMORY_CAPACITY` | 100000 entries |
//! | `prefix` | `PODIUM_PREFIX` | `podium` |
//! | `data_ttl_secs` | `PODIUM_DATA_TTL_SECS` | 28800 (8 h) |
//! | `tombstone_ttl_secs` | `PODIUM_TOMBSTONE_TTL_SECS` | 32400 (9 h) |
//! | `ttl_jitter` | `PODIUM_TTL_JITTER` | 0.05 |
//! | `stale_if_error_secs` | `PODIUM_STALE_IF_ERROR_SECS` | 0 (off) |
//! | `xfetch_beta` | `PODIUM_XFETCH_BETA` | 1.0 (0 turns early refresh off) |
//! | `expected_instances` | `PODIUM_EXPECTED_INSTANCES` | 1 |
//! | `airtable_local_rps` | `PODIUM_AIRTABLE_LOCAL_RPS` | 5 / `expected_instances` |
//! | `trusted_client_header` | `PODIUM_TRUSTED_CLIENT_HEADER` | none: the peer address |
//! | `max_client_misses` | `PODIUM_MAX_CLIENT_MISSES` | 128 (0: no limit) |
//! | `negative_ttl_secs` | `PODIUM_NEGATIVE_TTL_SECS` | 300 (5 min) |
//! | `negative_capacity` | `PODIUM_NEGATIVE_CAPACITY` | 100000 ids |
//! | `airtable_table_ids` | `PODIUM_AIRTABLE_TABLE_IDS` | none: looked up in the base schema (needs `schema.bases:read`) |
//! | `trust_delivery_fields` | `PODIUM_TRUST_DELIVERY_FIELDS` | `false`: a delivery is a signal, the record is re-read from Airtable |
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
//!
//! // The app keeps its own settings in the same file; the library reads `[podium]`.
//! let text = "listen = \"0.0.0.0:80\"\n[podium]\nprefix = \"shop\"\n";
//! assert_eq!(Settings::from_sources(Some(text), [])?.prefix, "shop");
//!
//! // A typo is refused with the setting it was probably meant to be.
//! let err = Settings::from_sources(Some("redis_ulr = \"redis://127.0.0.1/\""), []).unwrap_err();
//! assert!(err.to_string().contains("did you mean `redis_url`"));
//! # Ok::<(), podium_cache_core::config::ConfigError>(())
//! ```

pub(crate) mod setup;

pub use self::setup::SetupError;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde::de::IgnoredAny;
use serde::Deserialize;
use toml::Spanned;

/// Airtable's request budget per base, requests per second.
const AIRTABLE_RPS: f64 = 5.0;

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
#[non_exhaustive]
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
    /// A key or `PODIUM_*` variable that is no setting: a typo of one (`suggestion`), or any
    /// unknown key inside the file's `[podium]` table.
    #[error(
        "invalid {location}: `{name}` is not a setting{}",
        did_you_mean(suggestion)
    )]
    Unknown {
        /// The key or variable as written.
        name: String,
        /// Where: `.secrets.toml at line …, column …`, `.secrets.toml [podium] table at …` or
        /// `environment`.
        location: String,
        /// The setting (or variable) it is one or two edits away from.
        suggestion: Option<String>,
    },
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

/// Every setting the library and the example app read.
///
/// Deserializing it ignores keys it does not know; [`Settings::from_sources`] is the reader
/// that refuses typos (see the [module documentation](self)).
///
/// More settings will come, so it cannot be written as a struct literal outside this crate:
/// start from [`Settings::default`] (or [`Settings::from_sources`]) and set fields.
///
/// ```
/// use podium_cache_core::config::Settings;
/// let mut settings = Settings::default();
/// settings.prefix = "shop".into();
/// settings.l1_capacity = 10_000;
/// assert!(settings.redis_url.is_none(), "the in-memory store unless redis_url is set");
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Settings {
    /// `redis://…` of a standalone Redis/Valkey (`rediss://…` over TLS); none means the
    /// in-memory store.
    pub redis_url: Option<Secret>,
    /// Seed nodes of a Redis Cluster (comma-separated in the environment); secrets, as their
    /// URLs may carry a password.
    pub redis_cluster_nodes: Vec<Secret>,
    /// A PEM file of the private certificate authority that signed the `rediss://` server's
    /// certificate (standalone or cluster); it replaces the public roots. Only with `rediss://`.
    pub redis_ca_file: Option<PathBuf>,
    /// Airtable personal access token.
    pub airtable_api_key: Option<Secret>,
    /// Airtable base id (`app…`).
    pub airtable_base_id: Option<String>,
    /// Airtable API origin; the client adds `/v0/…` (a URL ending in `/v0` works too).
    pub airtable_api_url: String,
    /// `whsec_…` secret that signs webhook deliveries.
    pub webhook_secret: Option<Secret>,
    /// More `whsec_…` secrets accepted beside `webhook_secret` (comma-separated in the
    /// environment), so a secret can be rotated without a failed delivery: add the new one,
    /// move the senders over, then remove the old one.
    pub webhook_secrets: Vec<Secret>,
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
    /// How long past its expiry a record may still be served while the source fails (5xx,
    /// rate limit exhausted); 0 (the default) turns stale-if-error off.
    pub stale_if_error_secs: u64,
    /// XFetch β of the probabilistic early refresh: higher refreshes earlier; 0 turns it off.
    pub xfetch_beta: f64,
    /// How many app instances share the Airtable base (sizes the default `airtable_local_rps`).
    pub expected_instances: u32,
    /// Requests per second one instance allows itself while the store holding the shared
    /// Airtable budget is unreachable; none means 5 / `expected_instances`.
    pub airtable_local_rps: Option<f64>,
    /// The request header naming the client when a trusted proxy sets it (e.g.
    /// `x-forwarded-for`, whose first hop is taken); none means the peer address. Misses are
    /// queued and limited per client. Set it only behind a proxy that overwrites the header:
    /// anyone can send it.
    pub trusted_client_header: Option<String>,
    /// The most misses one client may have outstanding before it is answered 429 (0: no limit).
    pub max_client_misses: usize,
    /// How long "the source does not have it" is believed for an id the cache never saw, in
    /// seconds (kept in process only, never in the store).
    pub negative_ttl_secs: u64,
    /// The most never-seen ids the in-process negative cache holds.
    pub negative_capacity: u64,
    /// The bearer token the example app's writes (`DELETE`) require; none: it generates one at
    /// start-up and prints it once.
    pub admin_token: Option<Secret>,
    /// Store the fields an automation delivery carries as they came (the seed's behaviour),
    /// instead of re-reading the record from Airtable. Only for bases whose webhook secret no
    /// untrusted reader can see: whoever holds it can then make the cache serve any value.
    pub trust_delivery_fields: bool,
    /// Airtable table ids by table name (`Events = "tblXXXXXXXXXXXXXX"`; in the environment
    /// `Events=tbl…,Users=tbl…`): native webhook payloads name tables by id, and with every
    /// model's table listed here the token needs no `schema.bases:read` to map them.
    pub airtable_table_ids: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_cluster_nodes: Vec::new(),
            redis_ca_file: None,
            airtable_api_key: None,
            airtable_base_id: None,
            airtable_api_url: "https://api.airtable.com".to_owned(),
            webhook_secret: None,
            webhook_secrets: Vec::new(),
            allow_legacy_secret: false,
            airtable_webhook_id: None,
            airtable_webhook_mac_secret: None,
            l1_capacity: 0,
            memory_capacity: 100_000,
            prefix: "podium".to_owned(),
            data_ttl_secs: 8 * 3600,
            tombstone_ttl_secs: 9 * 3600,
            ttl_jitter: 0.05,
            stale_if_error_secs: 0,
            xfetch_beta: 1.0,
            expected_instances: 1,
            airtable_local_rps: None,
            trusted_client_header: None,
            max_client_misses: 128,
            negative_ttl_secs: 300,
            negative_capacity: 100_000,
            admin_token: None,
            trust_delivery_fields: false,
            airtable_table_ids: BTreeMap::new(),
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
            Some(text) => from_toml(text)?,
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
            "PODIUM_REDIS_CLUSTER_NODES" => self.redis_cluster_nodes = comma_separated(&value),
            "PODIUM_REDIS_CA_FILE" => self.redis_ca_file = value_opt().map(PathBuf::from),
            "PODIUM_AIRTABLE_API_KEY" => self.airtable_api_key = value_opt().map(Secret),
            "PODIUM_AIRTABLE_BASE_ID" => self.airtable_base_id = value_opt(),
            "PODIUM_AIRTABLE_API_URL" => {
                if let Some(v) = value_opt() {
                    self.airtable_api_url = v
                }
            }
            "PODIUM_WEBHOOK_SECRET" => self.webhook_secret = value_opt().map(Secret),
            "PODIUM_WEBHOOK_SECRETS" => self.webhook_secrets = comma_separated(&value),
            "PODIUM_AIRTABLE_WEBHOOK_ID" => self.airtable_webhook_id = value_opt(),
            "PODIUM_AIRTABLE_WEBHOOK_MAC_SECRET" => {
                self.airtable_webhook_mac_secret = value_opt().map(Secret)
            }
            "PODIUM_AIRTABLE_TABLE_IDS" => {
                let mut ids = BTreeMap::new();
                for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let Some((name, id)) = pair.split_once('=') else {
                        return Err(ConfigError::Invalid {
                            setting: "airtable_table_ids",
                            env: "PODIUM_AIRTABLE_TABLE_IDS",
                            message: format!("`{pair}` is not `Table Name=tblXXXXXXXXXXXXXX`"),
                        });
                    };
                    ids.insert(name.trim().to_owned(), id.trim().to_owned());
                }
                self.airtable_table_ids = ids;
            }
            "PODIUM_TRUST_DELIVERY_FIELDS" => {
                self.trust_delivery_fields = parse(
                    "trust_delivery_fields",
                    "PODIUM_TRUST_DELIVERY_FIELDS",
                    &value,
                )?
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
            "PODIUM_STALE_IF_ERROR_SECS" => {
                self.stale_if_error_secs =
                    parse("stale_if_error_secs", "PODIUM_STALE_IF_ERROR_SECS", &value)?
            }
            "PODIUM_XFETCH_BETA" => {
                self.xfetch_beta = parse("xfetch_beta", "PODIUM_XFETCH_BETA", &value)?
            }
            "PODIUM_EXPECTED_INSTANCES" => {
                self.expected_instances =
                    parse("expected_instances", "PODIUM_EXPECTED_INSTANCES", &value)?
            }
            "PODIUM_AIRTABLE_LOCAL_RPS" => {
                self.airtable_local_rps = match value_opt() {
                    Some(v) => Some(parse(
                        "airtable_local_rps",
                        "PODIUM_AIRTABLE_LOCAL_RPS",
                        &v,
                    )?),
                    None => None,
                }
            }
            "PODIUM_TRUSTED_CLIENT_HEADER" => {
                self.trusted_client_header = value_opt().map(|v| v.to_ascii_lowercase())
            }
            "PODIUM_MAX_CLIENT_MISSES" => {
                self.max_client_misses =
                    parse("max_client_misses", "PODIUM_MAX_CLIENT_MISSES", &value)?
            }
            "PODIUM_NEGATIVE_TTL_SECS" => {
                self.negative_ttl_secs =
                    parse("negative_ttl_secs", "PODIUM_NEGATIVE_TTL_SECS", &value)?
            }
            "PODIUM_NEGATIVE_CAPACITY" => {
                self.negative_capacity =
                    parse("negative_capacity", "PODIUM_NEGATIVE_CAPACITY", &value)?
            }
            "PODIUM_ADMIN_TOKEN" => self.admin_token = value_opt().map(Secret),
            other => return unknown_env(other),
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(header) = &self.trusted_client_header {
            let token = !header.is_empty()
                && header
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
            if !token {
                return Err(ConfigError::Invalid {
                    setting: "trusted_client_header",
                    env: "PODIUM_TRUSTED_CLIENT_HEADER",
                    message: format!(
                        "{header:?} is not an HTTP header name (e.g. x-forwarded-for)"
                    ),
                });
            }
        }
        if self.negative_ttl_secs >= self.tombstone_ttl_secs {
            return Err(ConfigError::Invalid {
                setting: "negative_ttl_secs",
                env: "PODIUM_NEGATIVE_TTL_SECS",
                message:
                    "must be shorter than tombstone_ttl_secs (it bounds answers for ids never seen)"
                        .into(),
            });
        }
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
        if self.redis_ca_file.is_some() {
            let urls: Vec<&Secret> = self
                .redis_url
                .iter()
                .chain(&self.redis_cluster_nodes)
                .collect();
            if urls.is_empty() || !urls.iter().all(|u| u.expose().starts_with("rediss://")) {
                return Err(ConfigError::Invalid {
                    setting: "redis_ca_file",
                    env: "PODIUM_REDIS_CA_FILE",
                    message: "applies to TLS connections only: redis_url (or every node of redis_cluster_nodes) must start with rediss://".into(),
                });
            }
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
        // Every key and SCAN pattern starts with the prefix: no separator, hash tag, glob
        // character, space or control character in it.
        let unfit = |c: char| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, ':' | '{' | '}' | '*' | '?' | '[' | ']' | '\\')
        };
        if self.prefix.is_empty() || self.prefix.contains(unfit) {
            return Err(ConfigError::Invalid {
                setting: "prefix",
                env: "PODIUM_PREFIX",
                message: "must be non-empty without ':', '{', '}', '*', '?', '[', ']', '\\', spaces or control characters".into(),
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
        if !(self.xfetch_beta.is_finite() && self.xfetch_beta >= 0.0) {
            return Err(ConfigError::Invalid {
                setting: "xfetch_beta",
                env: "PODIUM_XFETCH_BETA",
                message: "must be a number >= 0 (1.0 is the usual value, 0 turns it off)".into(),
            });
        }
        if self.expected_instances == 0 {
            return Err(ConfigError::Invalid {
                setting: "expected_instances",
                env: "PODIUM_EXPECTED_INSTANCES",
                message: "must be at least 1".into(),
            });
        }
        if let Some(rps) = self.airtable_local_rps {
            if !(rps.is_finite() && rps > 0.0) {
                return Err(ConfigError::Invalid {
                    setting: "airtable_local_rps",
                    env: "PODIUM_AIRTABLE_LOCAL_RPS",
                    message: "must be a number of requests per second > 0".into(),
                });
            }
        }
        Ok(())
    }

    /// The contents of `redis_ca_file` (PEM), when it is set; a file that cannot be read is an
    /// error naming the setting.
    ///
    /// ```
    /// use podium_cache_core::config::Settings;
    /// let settings = Settings::from_sources(None, [
    ///     ("PODIUM_REDIS_URL".to_string(), "rediss://127.0.0.1:6380/".to_string()),
    ///     ("PODIUM_REDIS_CA_FILE".to_string(), "/nonexistent/ca.pem".to_string()),
    /// ])?;
    /// let err = settings.redis_ca_pem().unwrap_err().to_string();
    /// assert!(err.contains("redis_ca_file") && err.contains("/nonexistent/ca.pem"), "{err}");
    /// # Ok::<(), podium_cache_core::config::ConfigError>(())
    /// ```
    pub fn redis_ca_pem(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let Some(path) = &self.redis_ca_file else {
            return Ok(None);
        };
        std::fs::read(path)
            .map(Some)
            .map_err(|e| ConfigError::Invalid {
                setting: "redis_ca_file",
                env: "PODIUM_REDIS_CA_FILE",
                message: format!("cannot read {}: {e}", path.display()),
            })
    }

    /// The Airtable key and base id, each an error naming its setting when it is not set.
    ///
    /// ```
    /// use podium_cache_core::config::Settings;
    /// let err = Settings::default().airtable_key_and_base().unwrap_err().to_string();
    /// assert!(err.contains("airtable_api_key") && err.contains("is not set"), "{err}");
    /// ```
    pub fn airtable_key_and_base(&self) -> Result<(&Secret, &str), ConfigError> {
        let unset = |setting, env| ConfigError::Invalid {
            setting,
            env,
            message: "is not set".into(),
        };
        let key = self
            .airtable_api_key
            .as_ref()
            .ok_or_else(|| unset("airtable_api_key", "PODIUM_AIRTABLE_API_KEY"))?;
        let base = self
            .airtable_base_id
            .as_deref()
            .ok_or_else(|| unset("airtable_base_id", "PODIUM_AIRTABLE_BASE_ID"))?;
        Ok((key, base))
    }

    /// Every configured webhook secret: `webhook_secret` first, then `webhook_secrets`, each
    /// once.
    ///
    /// ```
    /// use podium_cache_core::config::Settings;
    /// let settings = Settings::from_sources(
    ///     Some("webhook_secret = \"whsec_b2xk\"\nwebhook_secrets = [\"whsec_bmV3\", \"whsec_b2xk\"]"),
    ///     [],
    /// )?;
    /// let secrets: Vec<&str> = settings.all_webhook_secrets().iter().map(|s| s.expose()).collect();
    /// assert_eq!(secrets, ["whsec_b2xk", "whsec_bmV3"]);
    /// # Ok::<(), podium_cache_core::config::ConfigError>(())
    /// ```
    pub fn all_webhook_secrets(&self) -> Vec<&Secret> {
        let mut all: Vec<&Secret> = Vec::new();
        for secret in self.webhook_secret.iter().chain(&self.webhook_secrets) {
            if !all.contains(&secret) {
                all.push(secret);
            }
        }
        all
    }

    /// The data TTL.
    pub fn data_ttl(&self) -> Duration {
        Duration::from_secs(self.data_ttl_secs)
    }

    /// The tombstone TTL.
    pub fn tombstone_ttl(&self) -> Duration {
        Duration::from_secs(self.tombstone_ttl_secs)
    }

    /// How long past expiry a record may be served while the source fails (0: never).
    pub fn stale_if_error(&self) -> Duration {
        Duration::from_secs(self.stale_if_error_secs)
    }

    /// The requests per second one instance allows itself while the shared Airtable budget's
    /// store is unreachable: `airtable_local_rps`, else Airtable's 5 divided by
    /// `expected_instances`.
    ///
    /// ```
    /// use podium_cache_core::config::Settings;
    /// let settings = Settings::from_sources(None, [("PODIUM_EXPECTED_INSTANCES".to_string(), "2".to_string())])?;
    /// assert_eq!(settings.local_airtable_rps(), 2.5);
    /// # Ok::<(), podium_cache_core::config::ConfigError>(())
    /// ```
    pub fn local_airtable_rps(&self) -> f64 {
        self.airtable_local_rps
            .unwrap_or(AIRTABLE_RPS / f64::from(self.expected_instances.max(1)))
    }
}

/// Environment variables named `PODIUM_*` that are not settings but are read elsewhere (the
/// example app's listening address), so they are neither typos nor worth a warning.
const OTHER_PODIUM_VARIABLES: [&str; 1] = ["PODIUM_BIND"];

/// How many single-character edits away from a setting's name a key may be to count as a typo
/// of it; farther keys belong to the app.
const TYPO_DISTANCE: usize = 2;

/// The settings' names as in `.secrets.toml`: the fields serde derives for [`Settings`], so
/// the list cannot drift from the struct.
fn setting_names() -> &'static [&'static str] {
    static NAMES: OnceLock<&'static [&'static str]> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: &'static [&'static str] = &[];
        // Fails by design once the names are read: only `deserialize_struct` is of interest.
        let _ = Settings::deserialize(FieldNames(&mut names));
        names
    })
}

/// A deserializer that answers nothing and records the field names a struct asks for.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("only field names are read"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom("only field names are read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// A setting's environment variable: `PODIUM_` and its name in capitals.
fn env_name(setting: &str) -> String {
    format!("PODIUM_{}", setting.to_ascii_uppercase())
}

/// The candidate `name` is a typo of (one or two edits away, case aside), if any.
fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(&name, &c.to_ascii_lowercase()), c))
        .filter(|(distance, _)| *distance <= TYPO_DISTANCE)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// An environment variable no setting reads: an error when it is a typo of a `PODIUM_*`
/// setting's, a warning when it merely starts with `PODIUM_`, nothing otherwise.
fn unknown_env(name: &str) -> Result<(), ConfigError> {
    if !name.starts_with("PODIUM_") || OTHER_PODIUM_VARIABLES.contains(&name) {
        return Ok(());
    }
    let known: Vec<String> = setting_names().iter().map(|s| env_name(s)).collect();
    if let Some(suggestion) = nearest(name, known.iter().map(String::as_str)) {
        return Err(ConfigError::Unknown {
            name: name.to_owned(),
            location: "environment".into(),
            suggestion: Some(suggestion.to_owned()),
        });
    }
    tracing::warn!(
        variable = name,
        "environment variable is not a podium setting: ignored"
    );
    Ok(())
}

/// A comma-separated list, blanks dropped.
fn comma_separated(value: &str) -> Vec<Secret> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .collect()
}

/// Keys of one TOML table, with where each stands in the text.
type SpannedKeys = BTreeMap<Spanned<String>, IgnoredAny>;

/// The settings in a `.secrets.toml` text: its `[podium]` table when it has one, else its top
/// level (see the [module documentation](self) for which unknown keys are refused).
fn from_toml(text: &str) -> Result<Settings, ConfigError> {
    let parse_error = |e: toml::de::Error| toml_error(&e, text);
    let top: SpannedKeys = toml::from_str(text).map_err(parse_error)?;
    let has_table = top.keys().any(|k| k.get_ref() == "podium");
    if has_table {
        #[derive(Deserialize)]
        struct Keys {
            podium: SpannedKeys,
        }
        #[derive(Deserialize)]
        struct Table {
            podium: Settings,
        }
        let keys = toml::from_str::<Keys>(text).map_err(parse_error)?.podium;
        check_keys(&keys, text, true)?;
        for key in top
            .keys()
            .filter(|k| setting_names().contains(&k.get_ref().as_str()))
        {
            tracing::warn!(
                key = key.get_ref().as_str(),
                "a setting's name outside the [podium] table of .secrets.toml: left to the app, not read as a setting"
            );
        }
        Ok(toml::from_str::<Table>(text).map_err(parse_error)?.podium)
    } else {
        check_keys(&top, text, false)?;
        toml::from_str(text).map_err(parse_error)
    }
}

/// Refuses a key that is a typo of a setting's name and, inside `[podium]` (`strict`), any key
/// that is not a setting.
fn check_keys(keys: &SpannedKeys, text: &str, strict: bool) -> Result<(), ConfigError> {
    for key in keys.keys() {
        let name = key.get_ref().as_str();
        if setting_names().contains(&name) {
            continue;
        }
        let suggestion = nearest(name, setting_names().iter().copied());
        if strict || suggestion.is_some() {
            let table = if strict { " [podium] table" } else { "" };
            return Err(ConfigError::Unknown {
                name: name.to_owned(),
                location: format!(".secrets.toml{table}{}", position(text, key.span().start)),
                suggestion: suggestion.map(str::to_owned),
            });
        }
        tracing::debug!(key = name, "not a podium setting: left to the app");
    }
    Ok(())
}

/// ` at line L, column C` of byte `offset` in `text` (empty if it is out of range).
fn position(text: &str, offset: usize) -> String {
    text.get(..offset)
        .map(|before| {
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!(" at line {line}, column {column}")
        })
        .unwrap_or_default()
}

/// A `.secrets.toml` error as its position and message only: toml's own rendering quotes the
/// offending line, and serde quotes a mistyped string, either of which can be a secret.
fn toml_error(err: &toml::de::Error, text: &str) -> ConfigError {
    let mut message = err.message().trim().to_owned();
    if let Some(start) = message.find("string \"") {
        let end = message[start..]
            .find(", expected")
            .map_or(message.len(), |i| start + i);
        message.replace_range(start..end, "a string");
    }
    let position = err
        .span()
        .map(|span| position(text, span.start))
        .unwrap_or_default();
    ConfigError::Toml(format!("{message}{position}"))
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
    fn hot_key_and_shared_budget_settings_have_defaults_and_environment_names() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert_eq!(s.stale_if_error(), Duration::ZERO);
        assert_eq!(s.xfetch_beta, 1.0);
        assert_eq!(s.local_airtable_rps(), 5.0);
        let s = Settings::from_sources(
            Some("expected_instances = 4\nstale_if_error_secs = 3600"),
            env(&[("PODIUM_XFETCH_BETA", "2.5")]),
        )
        .unwrap();
        assert_eq!(s.local_airtable_rps(), 1.25);
        assert_eq!(s.stale_if_error(), Duration::from_secs(3600));
        assert_eq!(s.xfetch_beta, 2.5);
        let s = Settings::from_sources(
            Some("expected_instances = 4"),
            env(&[
                ("PODIUM_AIRTABLE_LOCAL_RPS", "3"),
                ("PODIUM_STALE_IF_ERROR_SECS", "60"),
            ]),
        )
        .unwrap();
        assert_eq!(s.local_airtable_rps(), 3.0, "an explicit rate wins");
        assert_eq!(s.stale_if_error(), Duration::from_secs(60));
    }

    #[test]
    fn nonsensical_hot_key_and_budget_settings_are_refused() {
        for (name, value, setting) in [
            ("PODIUM_EXPECTED_INSTANCES", "0", "expected_instances"),
            ("PODIUM_AIRTABLE_LOCAL_RPS", "0", "airtable_local_rps"),
            ("PODIUM_AIRTABLE_LOCAL_RPS", "-1", "airtable_local_rps"),
            ("PODIUM_XFETCH_BETA", "-0.5", "xfetch_beta"),
            ("PODIUM_XFETCH_BETA", "NaN", "xfetch_beta"),
            ("PODIUM_STALE_IF_ERROR_SECS", "1h", "stale_if_error_secs"),
        ] {
            let err = Settings::from_sources(None, env(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(setting), "{name}={value}: {err}");
        }
    }

    #[test]
    fn client_and_negative_cache_settings_have_defaults_and_environment_names() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert_eq!(s.trusted_client_header, None);
        assert_eq!((s.max_client_misses, s.negative_ttl_secs), (128, 300));
        let s = Settings::from_sources(
            Some("negative_capacity = 500"),
            env(&[
                ("PODIUM_TRUSTED_CLIENT_HEADER", "X-Forwarded-For"),
                ("PODIUM_MAX_CLIENT_MISSES", "16"),
                ("PODIUM_NEGATIVE_TTL_SECS", "60"),
            ]),
        )
        .unwrap();
        assert_eq!(s.trusted_client_header.as_deref(), Some("x-forwarded-for"));
        assert_eq!((s.max_client_misses, s.negative_ttl_secs), (16, 60));
        assert_eq!(s.negative_capacity, 500);
        for (name, value, setting) in [
            (
                "PODIUM_TRUSTED_CLIENT_HEADER",
                "x forwarded",
                "trusted_client_header",
            ),
            ("PODIUM_NEGATIVE_TTL_SECS", "40000", "negative_ttl_secs"),
            ("PODIUM_MAX_CLIENT_MISSES", "-1", "max_client_misses"),
        ] {
            let err = Settings::from_sources(None, env(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(setting), "{name}={value}: {err}");
        }
    }

    /// Found by the `config` fuzz target: toml's error quoted the line, so a misspelled or
    /// broken secret line printed the secret.
    #[test]
    fn toml_errors_quote_neither_the_line_nor_a_string_value() {
        for text in [
            "airtable_api_kye = \"patSECRET\"\n",
            "airtable_api_key = \"patSECRET\n",
            "webhook_secret = \"patSECRET\" x\n",
            "l1_capacity = \"patSECRET\"\n",
            "prefix = \"p\"\nl1_capacity = \"\"\"\nairtable_api_key = \"patSECRET\"\n\"\"\"\n",
        ] {
            let err = Settings::from_sources(Some(text), env(&[]))
                .unwrap_err()
                .to_string();
            assert!(!err.contains("patSECRET"), "{err}");
            assert!(err.contains("line "), "{err}");
        }
        let err =
            Settings::from_sources(Some("prefix = \"p\"\nairtable_api_kye = \"x\""), env(&[]))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("at line 2, column 1") && err.contains("airtable_api_kye"),
            "{err}"
        );
    }

    /// Found by the `keys` fuzz target: a prefix with a control or glob character was
    /// accepted, and every key and `SCAN` pattern carried it.
    #[test]
    fn a_prefix_with_a_glob_space_or_control_character_is_refused() {
        for prefix in ["a?b", "a[b]", "a\\b", "a\u{0}b", "a\nb", "a\u{2003}b"] {
            let err = Settings::from_sources(None, env(&[("PODIUM_PREFIX", prefix)])).unwrap_err();
            assert!(err.to_string().contains("prefix"), "{prefix:?}: {err}");
        }
        let s = Settings::from_sources(None, env(&[("PODIUM_PREFIX", "tenant-a.v2")])).unwrap();
        assert_eq!(s.prefix, "tenant-a.v2");
    }

    #[test]
    fn cluster_node_urls_are_redacted_in_debug_output() {
        let s = Settings::from_sources(
            None,
            env(&[(
                "PODIUM_REDIS_CLUSTER_NODES",
                "redis://:pw1@a:1, redis://:pw2@b:2",
            )]),
        )
        .unwrap();
        assert_eq!(s.redis_cluster_nodes[1].expose(), "redis://:pw2@b:2");
        assert!(!format!("{s:?}").contains("pw"), "{s:?}");
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

    #[test]
    fn a_typo_at_top_level_is_refused_with_the_setting_it_was_meant_to_be() {
        for (text, typo, meant, at) in [
            (
                "prefix = \"p\"\nredis_ulr = \"redis://a:1/\"",
                "redis_ulr",
                "redis_url",
                "line 2, column 1",
            ),
            (
                "REDIS_URL = \"redis://a:1/\"",
                "REDIS_URL",
                "redis_url",
                "line 1, column 1",
            ),
            (
                "webhook-secret = \"whsec_x\"",
                "webhook-secret",
                "webhook_secret",
                "line 1",
            ),
            (
                "webhook_secret = \"whsec_x\"\nwebhook_secretz = []",
                "webhook_secretz",
                "webhook_secret",
                "line 2",
            ),
        ] {
            let err = Settings::from_sources(Some(text), env(&[])).unwrap_err();
            assert!(
                matches!(err, ConfigError::Unknown { .. }),
                "{text}: {err:?}"
            );
            let err = err.to_string();
            assert!(err.starts_with("invalid .secrets.toml at "), "{err}");
            assert!(err.contains(&format!("`{typo}`")), "{err}");
            assert!(err.contains(&format!("did you mean `{meant}`?")), "{err}");
            assert!(err.contains(at), "{err}");
        }
    }

    #[test]
    fn top_level_keys_far_from_every_setting_belong_to_the_app() {
        let text = "listen = \"0.0.0.0:80\"\nsmtp_password = \"x\"\nprefix = \"shop\"\n[mailer]\nretries = 3\n";
        let s = Settings::from_sources(Some(text), env(&[])).unwrap();
        assert_eq!(s.prefix, "shop");
    }

    #[test]
    fn the_podium_table_holds_the_settings_and_the_rest_belongs_to_the_app() {
        let text = "prefix = \"the-apps-own\"\nredis_ulr = 1\n[podium]\nprefix = \"shop\"\nl1_capacity = 10\n[app]\nname = \"x\"\n";
        let s = Settings::from_sources(Some(text), env(&[])).unwrap();
        assert_eq!((s.prefix.as_str(), s.l1_capacity), ("shop", 10));
        let s = Settings::from_sources(Some(text), env(&[("PODIUM_PREFIX", "env")])).unwrap();
        assert_eq!(s.prefix, "env", "the environment still wins");
    }

    #[test]
    fn every_unknown_key_inside_the_podium_table_is_refused() {
        let err = Settings::from_sources(Some("[podium]\nprefix = \"p\"\nprefx = \"q\""), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid .secrets.toml [podium] table at line 3, column 1: `prefx`")
                && err.contains("did you mean `prefix`?"),
            "{err}"
        );
        let err = Settings::from_sources(Some("[podium]\nlisten = \"0.0.0.0:80\""), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`listen` is not a setting"), "{err}");
        assert!(!err.contains("did you mean"), "{err}");
    }

    #[test]
    fn a_typo_in_a_podium_variable_is_refused_with_the_variable_it_was_meant_to_be() {
        for (name, meant) in [
            ("PODIUM_REDIS_ULR", "PODIUM_REDIS_URL"),
            ("PODIUM_WEBHOOK_SECRETZ", "PODIUM_WEBHOOK_SECRET"),
            ("PODIUM_L1_CAPACTY", "PODIUM_L1_CAPACITY"),
            ("PODIUM_redis_url", "PODIUM_REDIS_URL"),
        ] {
            let err = Settings::from_sources(None, env(&[(name, "1")])).unwrap_err();
            assert!(
                matches!(err, ConfigError::Unknown { .. }),
                "{name}: {err:?}"
            );
            let err = err.to_string();
            assert!(
                err.contains(&format!(
                    "invalid environment: `{name}` is not a setting; did you mean `{meant}`?"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn podium_variables_far_from_every_setting_and_other_variables_are_not_errors() {
        let s = Settings::from_sources(
            None,
            env(&[
                ("PODIUM_BIND", "127.0.0.1:8000"),
                ("PODIUM_SOMETHING_ELSE", "x"),
                ("REDIS_ULR", "x"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn every_setting_has_its_environment_variable() {
        let names = setting_names();
        assert!(
            names.contains(&"redis_url") && names.contains(&"webhook_secrets"),
            "{names:?}"
        );
        for name in setting_names() {
            let result = Settings::from_sources(None, vec![(env_name(name), String::new())]);
            assert!(
                !matches!(result, Err(ConfigError::Unknown { .. })),
                "{name} has no environment variable: {result:?}"
            );
        }
    }

    #[test]
    fn webhook_secrets_are_a_list_in_the_file_and_comma_separated_in_the_environment() {
        let s = Settings::from_sources(
            Some("webhook_secret = \"whsec_a\"\nwebhook_secrets = [\"whsec_b\"]"),
            env(&[]),
        )
        .unwrap();
        let all: Vec<&str> = s.all_webhook_secrets().iter().map(|s| s.expose()).collect();
        assert_eq!(all, ["whsec_a", "whsec_b"]);
        let s = Settings::from_sources(
            Some("webhook_secrets = [\"whsec_b\"]"),
            env(&[("PODIUM_WEBHOOK_SECRETS", " whsec_c, ,whsec_d ")]),
        )
        .unwrap();
        let all: Vec<&str> = s.all_webhook_secrets().iter().map(|s| s.expose()).collect();
        assert_eq!(all, ["whsec_c", "whsec_d"], "the environment wins");
        assert!(!format!("{s:?}").contains("whsec_"), "{s:?}");
    }

    #[test]
    fn redis_ca_file_is_refused_without_a_tls_url() {
        for pairs in [
            vec![("PODIUM_REDIS_CA_FILE", "/ca.pem")],
            vec![
                ("PODIUM_REDIS_CA_FILE", "/ca.pem"),
                ("PODIUM_REDIS_URL", "redis://127.0.0.1:6380/"),
            ],
            vec![
                ("PODIUM_REDIS_CA_FILE", "/ca.pem"),
                (
                    "PODIUM_REDIS_CLUSTER_NODES",
                    "rediss://127.0.0.1:7000,redis://127.0.0.1:7001",
                ),
            ],
        ] {
            let err = Settings::from_sources(None, env(&pairs))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("redis_ca_file") && err.contains("rediss://"),
                "{pairs:?}: {err}"
            );
        }
        let s = Settings::from_sources(
            Some("redis_ca_file = \"/etc/ca.pem\""),
            env(&[("PODIUM_REDIS_CLUSTER_NODES", "rediss://a:1,rediss://b:2")]),
        )
        .unwrap();
        assert_eq!(s.redis_ca_file, Some(PathBuf::from("/etc/ca.pem")));
    }
}
