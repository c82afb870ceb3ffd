//! The Airtable token's scopes are known and checked at start-up: `whoami` against the local
//! Airtable server, each missing scope named with the feature that needs it, and the start-up
//! warning.

use std::io::Write;
use std::sync::{Arc, Mutex};

use podium_cache_core::config::{Secret, Settings};
use podium_cache_core::source::scopes::{
    ScopeNeeds, RECORDS_READ, RECORDS_WRITE, SCHEMA_READ, WEBHOOK_MANAGE,
};
use podium_cache_core::source::{check_token_scopes, AirtableSource, SourceError};
use podium_local::airtable::{AirtableServer, RunningAirtable, Token, DEFAULT_USER_ID};

const BASE: &str = "appTESTTESTTEST01";
/// Every scope but `webhook:manage`.
const NO_WEBHOOKS: &str = "patNoWebhooks";

async fn server() -> RunningAirtable {
    let airtable = AirtableServer::builder()
        .rate_limit(None)
        .token(Token::new(NO_WEBHOOKS).scopes([RECORDS_READ, RECORDS_WRITE, SCHEMA_READ]))
        .token(Token::new("patPersonal").personal())
        .start()
        .await
        .expect("local airtable");
    airtable.insert(BASE, "Events", serde_json::Map::new());
    airtable
}

fn source(airtable: &RunningAirtable, key: &str) -> AirtableSource {
    AirtableSource::builder(key, BASE)
        .api_url(airtable.url())
        .build()
        .expect("source")
}

/// Settings with a native webhook configured, for this token.
fn settings_with_native_webhook(airtable: &RunningAirtable, key: &str) -> Settings {
    let mut settings = Settings::default();
    settings.airtable_api_key = Some(Secret::new(key));
    settings.airtable_base_id = Some(BASE.to_owned());
    settings.airtable_api_url = airtable.url();
    settings.airtable_webhook_id = Some("achAAAAAAAAAAAAAA".to_owned());
    settings.airtable_webhook_mac_secret = Some(Secret::new("c2VjcmV0"));
    settings
}

#[tokio::test]
async fn whoami_answers_the_user_and_the_tokens_scopes() {
    let airtable = server().await;
    let info = source(&airtable, NO_WEBHOOKS)
        .whoami()
        .await
        .expect("whoami");
    assert_eq!(info.user_id, DEFAULT_USER_ID);
    assert_eq!(info.email, None, "no user.email:read");
    let mut scopes = info.scopes.expect("reported");
    scopes.sort();
    assert_eq!(scopes, [RECORDS_READ, RECORDS_WRITE, SCHEMA_READ]);
    let wrong = source(&airtable, "patWRONG").whoami().await;
    assert!(
        matches!(wrong, Err(SourceError::Unauthorized(_))),
        "{wrong:?}"
    );
}

#[tokio::test]
async fn a_token_lacking_webhook_manage_is_reported_when_a_native_webhook_is_configured() {
    let airtable = server().await;
    let settings = settings_with_native_webhook(&airtable, NO_WEBHOOKS);
    let needs = ScopeNeeds::from_settings(&settings);
    let report = source(&airtable, NO_WEBHOOKS)
        .check_scopes(&needs)
        .await
        .expect("checked");
    assert!(report.verified());
    let missing: Vec<_> = report.missing().iter().map(|m| m.scope).collect();
    assert_eq!(missing, [WEBHOOK_MANAGE]);
    assert!(report.missing()[0].feature.contains("native webhooks"));
    // Without the native webhook nothing is missing.
    let mut plain = settings;
    plain.airtable_webhook_id = None;
    let report = source(&airtable, NO_WEBHOOKS)
        .check_scopes(&ScopeNeeds::from_settings(&plain))
        .await
        .expect("checked");
    assert!(report.missing().is_empty(), "{:?}", report.missing());
}

#[tokio::test]
async fn schema_read_is_needed_by_native_webhooks_unless_table_ids_are_configured() {
    let airtable = server().await;
    airtable
        .add_token(Token::new("patNoSchema").scopes([RECORDS_READ, RECORDS_WRITE, WEBHOOK_MANAGE]))
        .expect("token");
    let source = source(&airtable, "patNoSchema");
    let needs = ScopeNeeds::records().native_webhooks(true);
    let report = source.check_scopes(&needs).await.expect("checked");
    let missing: Vec<_> = report.missing().iter().map(|m| m.scope).collect();
    assert_eq!(missing, [SCHEMA_READ]);
    let report = source
        .check_scopes(&needs.table_ids_known(true))
        .await
        .expect("checked");
    assert!(report.missing().is_empty());
}

#[tokio::test]
async fn a_personal_access_token_reports_no_scopes_and_nothing_is_claimed_missing() {
    let airtable = server().await;
    let report = source(&airtable, "patPersonal")
        .check_scopes(&ScopeNeeds::records().native_webhooks(true))
        .await
        .expect("checked");
    assert!(!report.verified());
    assert!(report.missing().is_empty());
}

/// Everything logged while it lives, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

#[tokio::test]
async fn start_up_check_warns_naming_the_missing_scope_and_the_feature() {
    let airtable = server().await;
    let settings = settings_with_native_webhook(&airtable, NO_WEBHOOKS);
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let report = check_token_scopes(&settings, &ScopeNeeds::from_settings(&settings))
        .await
        .expect("checked")
        .expect("airtable is configured");
    drop(guard);
    assert_eq!(report.missing().len(), 1);
    let text = log.text();
    let warning = text
        .lines()
        .find(|line| line.contains("WARN"))
        .unwrap_or_else(|| panic!("no warning logged: {text}"));
    assert!(warning.contains("webhook:manage"), "{warning}");
    assert!(warning.contains("native webhooks"), "{warning}");

    // Without Airtable settings there is nothing to check.
    let none = check_token_scopes(&Settings::default(), &ScopeNeeds::records()).await;
    assert!(matches!(none, Ok(None)), "{none:?}");
}
