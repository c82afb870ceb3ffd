//! Access tokens, their scopes, and `GET /v0/meta/whoami`.
//!
//! Airtable's personal access tokens and OAuth tokens "can only access API endpoints covered by
//! the scopes granted to them" (<https://airtable.com/developers/web/api/scopes>); a call
//! outside them is refused 403 `INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`, the same answer as an
//! unknown base or table (<https://airtable.com/developers/web/api/errors>, "403 Forbidden").

use std::collections::BTreeSet;

use serde_json::{json, Value};

/// `data.records:read`: "See the data in records" (list and get records).
pub const RECORDS_READ: &str = "data.records:read";
/// `data.records:write`: "Create, edit, and delete records".
pub const RECORDS_WRITE: &str = "data.records:write";
/// `schema.bases:read`: "See the structure of a base, like table names or field types".
pub const SCHEMA_READ: &str = "schema.bases:read";
/// `webhook:manage`: "View, create, delete webhooks for a base, as well as fetch webhook
/// payloads".
pub const WEBHOOK_MANAGE: &str = "webhook:manage";
/// `user.email:read`: "See the user's email address" (`whoami` answers `email` with it).
pub const USER_EMAIL_READ: &str = "user.email:read";

/// Every basic scope Airtable grants (<https://airtable.com/developers/web/api/scopes>,
/// "Basic scopes"); a token may hold only these.
pub const ALL_SCOPES: [&str; 9] = [
    RECORDS_READ,
    RECORDS_WRITE,
    "data.recordComments:read",
    "data.recordComments:write",
    SCHEMA_READ,
    "schema.bases:write",
    WEBHOOK_MANAGE,
    "block:manage",
    USER_EMAIL_READ,
];

/// The user every token of the local server belongs to unless told otherwise (the same user the
/// webhook payloads name as the author of a change).
pub const DEFAULT_USER_ID: &str = "usrLOCALLOCAL0001";
/// That user's e-mail address.
pub const DEFAULT_USER_EMAIL: &str = "local@example.com";

/// An access token the server accepts: its key, its scopes and its owner.
///
/// ```
/// use podium_local::airtable::{Token, RECORDS_READ};
/// let token = Token::new("patReadOnly").scopes([RECORDS_READ]);
/// assert!(token.has_scope(RECORDS_READ));
/// assert!(!token.has_scope("data.records:write"));
/// assert!(Token::new("patAll").has_scope("webhook:manage"), "a new token has every scope");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    key: String,
    scopes: BTreeSet<String>,
    user_id: String,
    email: String,
    oauth: bool,
}

impl Token {
    /// A token with every scope of [`ALL_SCOPES`], owned by [`DEFAULT_USER_ID`], that `whoami`
    /// answers as an OAuth access token (with its `scopes`).
    pub fn new(key: impl Into<String>) -> Token {
        Token {
            key: key.into(),
            scopes: ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            user_id: DEFAULT_USER_ID.to_owned(),
            email: DEFAULT_USER_EMAIL.to_owned(),
            oauth: true,
        }
    }

    /// Exactly these scopes (names outside [`ALL_SCOPES`] make
    /// [`start`](super::AirtableServerBuilder::start) fail).
    pub fn scopes<I, S>(mut self, scopes: I) -> Token
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The owner's user id (`usr…`) and e-mail address.
    pub fn user(mut self, id: impl Into<String>, email: impl Into<String>) -> Token {
        self.user_id = id.into();
        self.email = email.into();
        self
    }

    /// Answers `whoami` as a personal access token: Airtable returns `scopes` "only if
    /// accessing via an OAuth access token"
    /// (<https://airtable.com/developers/web/api/get-user-id-scopes>).
    pub fn personal(mut self) -> Token {
        self.oauth = false;
        self
    }

    /// The key clients send as `Authorization: Bearer <key>`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the token holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// The scope names that are not Airtable scopes, if any.
    pub(crate) fn unknown_scopes(&self) -> Vec<&str> {
        self.scopes
            .iter()
            .map(String::as_str)
            .filter(|s| !ALL_SCOPES.contains(s))
            .collect()
    }

    /// The `GET /v0/meta/whoami` answer: `id` always, `email` only with `user.email:read`,
    /// `scopes` only for OAuth tokens (<https://airtable.com/developers/web/api/get-user-id-scopes>,
    /// "Response format"; pyairtable's `UserAndScopesDict` in `pyairtable/api/types.py` reads
    /// the same shape).
    pub(crate) fn whoami(&self) -> Value {
        let mut answer = json!({ "id": self.user_id });
        if self.has_scope(USER_EMAIL_READ) {
            answer["email"] = json!(self.email);
        }
        if self.oauth {
            answer["scopes"] = json!(self.scopes);
        }
        answer
    }
}
