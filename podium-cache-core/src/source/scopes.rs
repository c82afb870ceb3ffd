//! Airtable token scopes: which scope each feature needs, what `GET /v0/meta/whoami` says the
//! token has, and the report of what is missing.
//!
//! A token "can only access API endpoints covered by the scopes granted to [it]"
//! (<https://airtable.com/developers/web/api/scopes>); a call outside them is answered 403
//! `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`, exactly as an unknown base or table is
//! (<https://airtable.com/developers/web/api/errors>). Checking the scopes at start-up names the
//! missing scope and the feature that needs it before the first refused call does.
//!
//! ```
//! use podium_cache_core::source::scopes::{ScopeNeeds, ScopeReport, TokenInfo, WEBHOOK_MANAGE};
//! let needs = ScopeNeeds::records().native_webhooks(true);
//! let token = TokenInfo {
//!     user_id: "usrXXXXXXXXXXXXXX".into(),
//!     scopes: Some(vec!["data.records:read".into(), "data.records:write".into()]),
//!     email: None,
//! };
//! let report = ScopeReport::new(token, &needs);
//! assert!(report.missing().iter().any(|m| m.scope == WEBHOOK_MANAGE));
//! assert!(report.warnings()[0].contains("webhook:manage"));
//! ```

use serde::Deserialize;

use crate::config::Settings;

/// `data.records:read`: "See the data in records"; get and list records
/// (<https://airtable.com/developers/web/api/get-record>, "Requirements").
pub const RECORDS_READ: &str = "data.records:read";
/// `data.records:write`: "Create, edit, and delete records"
/// (<https://airtable.com/developers/web/api/delete-multiple-records>, "Requirements").
pub const RECORDS_WRITE: &str = "data.records:write";
/// `schema.bases:read`: "See the structure of a base"; the base schema
/// (<https://airtable.com/developers/web/api/get-base-schema>, "Requirements").
pub const SCHEMA_READ: &str = "schema.bases:read";
/// `webhook:manage`: "always required for all webhooks API endpoints"
/// (<https://airtable.com/developers/web/api/webhooks-overview>).
pub const WEBHOOK_MANAGE: &str = "webhook:manage";

/// What `GET /v0/meta/whoami` says about the token
/// (<https://airtable.com/developers/web/api/get-user-id-scopes>).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct TokenInfo {
    /// The token owner's user id (`usr…`).
    #[serde(rename = "id")]
    pub user_id: String,
    /// The token's scopes; Airtable reports them "only if accessing via an OAuth access token",
    /// so `None` for a personal access token.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// The owner's e-mail address, only with the `user.email:read` scope.
    #[serde(default)]
    pub email: Option<String>,
}

/// A scope one feature needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScopeNeed {
    /// The scope, e.g. [`RECORDS_READ`].
    pub scope: &'static str,
    /// The feature that needs it, in words.
    pub feature: &'static str,
}

/// The scopes the features in use need.
///
/// ```
/// use podium_cache_core::source::scopes::{ScopeNeeds, SCHEMA_READ};
/// let needs = ScopeNeeds::records().native_webhooks(true);
/// assert!(needs.needs().iter().any(|n| n.scope == SCHEMA_READ));
/// let needs = needs.table_ids_known(true);
/// assert!(!needs.needs().iter().any(|n| n.scope == SCHEMA_READ), "table ids need no schema");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeNeeds {
    deletes: bool,
    native_webhooks: bool,
    table_ids_known: bool,
}

impl ScopeNeeds {
    /// Reading records (always) and deleting through the cache; no native webhooks.
    pub fn records() -> ScopeNeeds {
        ScopeNeeds {
            deletes: true,
            native_webhooks: false,
            table_ids_known: false,
        }
    }

    /// What `settings` turn on: reading and deleting records, and native webhooks when
    /// `airtable_webhook_id` is set (their table ids are looked up in the base schema unless
    /// `airtable_table_ids` lists them).
    pub fn from_settings(settings: &Settings) -> ScopeNeeds {
        ScopeNeeds::records()
            .native_webhooks(settings.airtable_webhook_id.is_some())
            .table_ids_known(!settings.airtable_table_ids.is_empty())
    }

    /// Whether the app deletes records through the cache (`Cache::delete`; default yes).
    pub fn deletes(mut self, on: bool) -> ScopeNeeds {
        self.deletes = on;
        self
    }

    /// Whether native webhooks are in use.
    pub fn native_webhooks(mut self, on: bool) -> ScopeNeeds {
        self.native_webhooks = on;
        self
    }

    /// Whether every model table's id is configured
    /// (`NativeWebhooksBuilder::table`), so the native webhooks never read the base schema.
    pub fn table_ids_known(mut self, known: bool) -> ScopeNeeds {
        self.table_ids_known = known;
        self
    }

    /// Each scope with the feature that needs it, in the order they are checked.
    pub fn needs(&self) -> Vec<ScopeNeed> {
        let mut needs = vec![ScopeNeed {
            scope: RECORDS_READ,
            feature: "reading records (every cache miss)",
        }];
        if self.deletes {
            needs.push(ScopeNeed {
                scope: RECORDS_WRITE,
                feature: "deleting records through the cache (Cache::delete)",
            });
        }
        if self.native_webhooks {
            needs.push(ScopeNeed {
                scope: WEBHOOK_MANAGE,
                feature: "native webhooks (listing payloads, refreshing the webhook)",
            });
            // Creating the webhook and listing its payloads also need the scope of its data
            // type: "data.records:read is required for tableData"
            // (https://airtable.com/developers/web/api/webhooks-overview).
            needs.push(ScopeNeed {
                scope: RECORDS_READ,
                feature: "native webhooks (tableData payloads)",
            });
            if !self.table_ids_known {
                needs.push(ScopeNeed {
                    scope: SCHEMA_READ,
                    feature: "native webhooks (mapping payload table ids to models through the base schema)",
                });
            }
        }
        needs
    }
}

/// What the token has against what the features need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeReport {
    token: TokenInfo,
    missing: Vec<ScopeNeed>,
}

impl ScopeReport {
    /// Compares the token's scopes with the needs (nothing is missing when the token does not
    /// report its scopes: see [`verified`](Self::verified)).
    pub fn new(token: TokenInfo, needs: &ScopeNeeds) -> ScopeReport {
        let missing = match &token.scopes {
            Some(scopes) => needs
                .needs()
                .into_iter()
                .filter(|need| !scopes.iter().any(|s| s == need.scope))
                .collect(),
            None => Vec::new(),
        };
        ScopeReport { token, missing }
    }

    /// What `whoami` said.
    pub fn token(&self) -> &TokenInfo {
        &self.token
    }

    /// Whether the token reported its scopes (OAuth tokens do; personal access tokens do not,
    /// and then a missing scope shows only as a 403 on the first call that needs it).
    pub fn verified(&self) -> bool {
        self.token.scopes.is_some()
    }

    /// Each missing scope with the feature that needs it (one entry per feature).
    pub fn missing(&self) -> &[ScopeNeed] {
        &self.missing
    }

    /// One line per missing scope and feature, as [`warn`](Self::warn) logs them.
    pub fn warnings(&self) -> Vec<String> {
        self.missing
            .iter()
            .map(|need| {
                format!(
                    "the Airtable token lacks the scope {} needed for {}; add it at https://airtable.com/create/tokens",
                    need.scope, need.feature
                )
            })
            .collect()
    }

    /// Logs every missing scope (`warn`), or that the scopes could not be listed (`info`).
    pub fn warn(&self) {
        if !self.verified() {
            tracing::info!(
                user = %self.token.user_id,
                "the Airtable token does not report its scopes (a personal access token); a missing scope shows as a 403 on the first call that needs it"
            );
        }
        for (need, line) in self.missing.iter().zip(self.warnings()) {
            tracing::warn!(scope = need.scope, feature = need.feature, "{line}");
        }
    }
}
