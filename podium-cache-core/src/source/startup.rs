//! The start-up check of the Airtable token's scopes against the features in use.

use super::airtable::AirtableSource;
use super::scopes::{ScopeNeeds, ScopeReport};
use super::SourceError;
use crate::config::Settings;

/// Asks Airtable who the configured token is (`GET /v0/meta/whoami`), compares its scopes with
/// `needs` and logs each missing scope with the feature that needs it (`tracing::warn!`).
/// `Ok(None)` when no Airtable key or base is configured; an error when Airtable refused the
/// key (401) or could not be reached. Call it once at start-up, after the cache is built.
///
/// ```no_run
/// # async fn demo(settings: podium_cache_core::config::Settings) {
/// use podium_cache_core::source::{check_token_scopes, scopes::ScopeNeeds};
/// match check_token_scopes(&settings, &ScopeNeeds::from_settings(&settings)).await {
///     Ok(Some(report)) if !report.missing().is_empty() => { /* already logged */ }
///     Ok(_) => {}
///     Err(error) => tracing::warn!(%error, "could not check the Airtable token's scopes"),
/// }
/// # }
/// ```
pub async fn check_token_scopes(
    settings: &Settings,
    needs: &ScopeNeeds,
) -> Result<Option<ScopeReport>, SourceError> {
    let (Some(key), Some(base)) = (&settings.airtable_api_key, &settings.airtable_base_id) else {
        return Ok(None);
    };
    let source = AirtableSource::builder(key.expose(), base.as_str())
        .api_url(settings.airtable_api_url.as_str())
        .build()?;
    let report = source.check_scopes(needs).await?;
    report.warn();
    Ok(Some(report))
}
