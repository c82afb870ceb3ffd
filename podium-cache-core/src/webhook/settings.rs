//! The webhook receivers as [`Settings`] describe them, so an app does not apply each webhook
//! setting by hand: [`secrets_from_settings`], [`Receiver::from_settings`] and
//! [`NativeWebhooks::from_settings`].
//!
//! | setting | applied as |
//! |---|---|
//! | `webhook_secret`, `webhook_secrets` | every one verifies deliveries (rotation) |
//! | `allow_legacy_secret` | the first of them is also accepted as `X-Airtable-Secret` |
//! | `trust_delivery_fields` | deliveries' fields are stored as they came, not re-read from Airtable |
//! | `airtable_webhook_id`, `airtable_webhook_mac_secret` | native notifications of that webhook |
//! | `airtable_api_key`, `airtable_base_id`, `airtable_api_url` | where native payloads are paged from |

use super::native::{MacSecret, NativeWebhooks};
use super::receiver::Receiver;
use super::registry::Models;
use super::signature::WebhookSecret;
use crate::cache::{Cache, SetupError};
use crate::config::{ConfigError, Settings};
use crate::source::{AirtableSource, WebhooksApi};

/// Every configured webhook secret, parsed: `webhook_secret` first, then `webhook_secrets`,
/// each once. A malformed one is an error naming its setting; none at all is an empty list.
///
/// ```
/// use podium_cache_core::config::Settings;
/// use podium_cache_core::webhook::{secrets_from_settings, WebhookSecret};
/// let (old, new) = (WebhookSecret::generate(), WebhookSecret::generate());
/// let settings = Settings::from_sources(None, [
///     ("PODIUM_WEBHOOK_SECRET".to_string(), old.expose()),
///     ("PODIUM_WEBHOOK_SECRETS".to_string(), format!("{},{}", new.expose(), old.expose())),
/// ])?;
/// assert_eq!(secrets_from_settings(&settings)?, vec![old, new]);
///
/// let bad = Settings::from_sources(None, [
///     ("PODIUM_WEBHOOK_SECRETS".to_string(), "not-a-secret".to_string()),
/// ])?;
/// assert!(secrets_from_settings(&bad).unwrap_err().to_string().contains("webhook_secrets"));
/// # Ok::<(), podium_cache_core::config::ConfigError>(())
/// ```
pub fn secrets_from_settings(settings: &Settings) -> Result<Vec<WebhookSecret>, ConfigError> {
    let single = settings
        .webhook_secret
        .iter()
        .map(|s| ("webhook_secret", "PODIUM_WEBHOOK_SECRET", s));
    let several = settings
        .webhook_secrets
        .iter()
        .map(|s| ("webhook_secrets", "PODIUM_WEBHOOK_SECRETS", s));
    let mut secrets: Vec<WebhookSecret> = Vec::new();
    for (setting, env, text) in single.chain(several) {
        let secret = text
            .expose()
            .parse::<WebhookSecret>()
            .map_err(|e| ConfigError::Invalid {
                setting,
                env,
                message: e.to_string(),
            })?;
        if !secrets.contains(&secret) {
            secrets.push(secret);
        }
    }
    Ok(secrets)
}

impl Receiver {
    /// A receiver verifying with every configured webhook secret (`webhook_secret` and
    /// `webhook_secrets`, so a secret can be rotated without a failed delivery), also accepting
    /// the legacy `X-Airtable-Secret` header with the first of them when
    /// `allow_legacy_secret` is on. No secret at all is an error: no delivery could be
    /// verified.
    ///
    /// ```
    /// use podium_cache_core::config::Settings;
    /// use podium_cache_core::webhook::{Models, Receiver};
    /// # fn demo(cache: podium_cache_core::Cache) -> Result<(), podium_cache_core::config::ConfigError> {
    /// let settings = Settings::load(std::path::Path::new("."))?;
    /// let receiver = Receiver::from_settings(cache, Models::new(), &settings)?;
    /// # Ok(()) }
    /// ```
    pub fn from_settings(
        cache: Cache,
        models: Models,
        settings: &Settings,
    ) -> Result<Self, ConfigError> {
        let secrets = secrets_from_settings(settings)?;
        if secrets.is_empty() {
            return Err(ConfigError::Invalid {
                setting: "webhook_secret",
                env: "PODIUM_WEBHOOK_SECRET",
                message: "is not set (nor webhook_secrets): no delivery could be verified".into(),
            });
        }
        let legacy = settings
            .allow_legacy_secret
            .then(|| settings.all_webhook_secrets().first().map(|s| (*s).clone()))
            .flatten();
        let receiver = Receiver::new(cache, models, secrets)
            .trust_delivery_fields(settings.trust_delivery_fields);
        Ok(match legacy {
            Some(secret) => receiver.allow_legacy_secret(secret),
            None => receiver,
        })
    }
}

impl NativeWebhooks {
    /// Native-webhook notifications of `airtable_webhook_id`, verified with
    /// `airtable_webhook_mac_secret` and paged from the Airtable base of the settings; `None`
    /// when no native webhook is configured ([`Settings`] refuses one of the two without the
    /// other).
    ///
    /// ```
    /// use podium_cache_core::config::Settings;
    /// use podium_cache_core::webhook::{Models, NativeWebhooks};
    /// # fn demo(cache: podium_cache_core::Cache) -> Result<(), podium_cache_core::cache::SetupError> {
    /// let settings = Settings::from_sources(None, [])?;
    /// assert!(NativeWebhooks::from_settings(cache, Models::new(), &settings)?.is_none());
    /// # Ok(()) }
    /// ```
    pub fn from_settings(
        cache: Cache,
        models: Models,
        settings: &Settings,
    ) -> Result<Option<Self>, SetupError> {
        let (Some(id), Some(mac)) = (
            &settings.airtable_webhook_id,
            &settings.airtable_webhook_mac_secret,
        ) else {
            return Ok(None);
        };
        let mac = MacSecret::from_base64(mac.expose()).map_err(|e| ConfigError::Invalid {
            setting: "airtable_webhook_mac_secret",
            env: "PODIUM_AIRTABLE_WEBHOOK_MAC_SECRET",
            message: e.to_string(),
        })?;
        // Native webhooks page their payloads from Airtable.
        let (key, base) = settings.airtable_key_and_base()?;
        let source = AirtableSource::builder(key.expose(), base)
            .api_url(settings.airtable_api_url.as_str())
            .build()?;
        let mut builder = NativeWebhooks::builder(cache, models, WebhooksApi::new(source))
            .webhook(id.as_str(), mac);
        for (name, table_id) in &settings.airtable_table_ids {
            builder = builder.table(table_id.as_str(), name.as_str());
        }
        Ok(Some(builder.build()))
    }
}
