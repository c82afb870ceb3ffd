//! The admin token: the bearer token every write of the app (`DELETE`, and any method that is
//! not safe) requires, so that not anyone who can reach the app can delete records in Airtable.
//!
//! It comes from the `admin_token` setting (`PODIUM_ADMIN_TOKEN`); with none configured the app
//! generates one at start-up and prints it once, with how to use it. A write without it, or with
//! another token, is answered `401` and changes nothing. The signed webhook routes are not
//! behind it: their deliveries carry their own signatures.
//!
//! ```
//! use axum::http::{HeaderMap, HeaderValue};
//! use podium_example::admin::AdminToken;
//!
//! let token = AdminToken::generate();
//! let mut headers = HeaderMap::new();
//! assert!(!token.accepts(&headers));
//! let bearer = format!("Bearer {}", token.expose());
//! headers.insert("authorization", HeaderValue::from_str(&bearer).unwrap());
//! assert!(token.accepts(&headers));
//! assert!(!AdminToken::generate().accepts(&headers));
//! ```

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use podium_cache_core::config::Secret;
use rand::RngCore;
use serde_json::json;
use subtle::ConstantTimeEq;

/// Random bytes in a generated token (hex-encoded: 64 characters).
const GENERATED_BYTES: usize = 32;
/// The shortest token accepted from the settings.
const MIN_LEN: usize = 16;

/// The configured `admin_token` is unusable.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `admin_token` (PODIUM_ADMIN_TOKEN): {0}")]
pub struct AdminTokenError(&'static str);

/// The bearer token the app's writes require. `Debug` never shows it.
#[derive(Clone)]
pub struct AdminToken {
    token: Arc<Secret>,
    generated: bool,
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminToken")
            .field("token", &"[redacted]")
            .field("generated", &self.generated)
            .finish()
    }
}

impl AdminToken {
    /// The configured token, or a generated one when none is configured.
    ///
    /// ```
    /// use podium_cache_core::config::Secret;
    /// use podium_example::admin::AdminToken;
    /// let configured = AdminToken::from_setting(Some(&Secret::new("an-admin-token-0123")))?;
    /// assert_eq!((configured.expose(), configured.generated()), ("an-admin-token-0123", false));
    /// assert!(AdminToken::from_setting(None)?.generated());
    /// assert!(AdminToken::from_setting(Some(&Secret::new("short"))).is_err());
    /// assert!(AdminToken::from_setting(Some(&Secret::new("with a space in it"))).is_err());
    /// # Ok::<(), podium_example::admin::AdminTokenError>(())
    /// ```
    pub fn from_setting(setting: Option<&Secret>) -> Result<Self, AdminTokenError> {
        let Some(secret) = setting else {
            return Ok(Self::generate());
        };
        let token = secret.expose();
        if token.len() < MIN_LEN {
            return Err(AdminTokenError("must be at least 16 characters"));
        }
        if !is_b64token(token) {
            return Err(AdminTokenError(
                "must be a bearer token: letters, digits and - . _ ~ + / (then = only)",
            ));
        }
        Ok(Self {
            token: Arc::new(secret.clone()),
            generated: false,
        })
    }

    /// A new token of 32 random bytes from the operating system's generator, hex-encoded.
    pub fn generate() -> Self {
        let mut bytes = [0u8; GENERATED_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            token: Arc::new(Secret::new(text)),
            generated: true,
        }
    }

    /// Whether it was generated at start-up (then it is printed once) rather than configured.
    pub fn generated(&self) -> bool {
        self.generated
    }

    /// The token itself: for the one start-up line that shows a generated one, never a log.
    pub fn expose(&self) -> &str {
        self.token.expose()
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`, compared in constant
    /// time. The scheme is case-insensitive (RFC 9110 §11.1; RFC 6750 §2.1 defines `Bearer`).
    pub fn accepts(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let Some((scheme, credentials)) = value.to_str().ok().and_then(|v| v.split_once(' '))
        else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer")
            && bool::from(
                credentials
                    .trim()
                    .as_bytes()
                    .ct_eq(self.token.expose().as_bytes()),
            )
    }
}

/// RFC 6750 §2.1's `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// Middleware: a request whose method is not safe (RFC 9110 §9.2.1: anything but `GET`,
/// `HEAD`, `OPTIONS`, `TRACE`) passes only with the admin token; without it the answer is
/// `401` with `WWW-Authenticate: Bearer` (RFC 6750 §3), and the route never runs.
pub async fn require_for_writes(
    State(token): State<AdminToken>,
    request: Request,
    next: Next,
) -> Response {
    if request.method().is_safe() || token.accepts(request.headers()) {
        return next.run(request).await;
    }
    let error = if request.headers().contains_key(AUTHORIZATION) {
        "invalid_token"
    } else {
        "missing admin token"
    };
    tracing::debug!(
        method = %request.method(),
        path = %request.uri().path(),
        error,
        "write refused: 401"
    );
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(json!({
            "error": "unauthorized",
            "detail": "writes need `Authorization: Bearer <admin token>` (PODIUM_ADMIN_TOKEN)",
        })),
    )
        .into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"podium-example\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_authorization(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let token = AdminToken::from_setting(Some(&Secret::new("admin-token-0123456789"))).unwrap();
        assert!(token.accepts(&with_authorization(&["Bearer admin-token-0123456789"])));
        assert!(token.accepts(&with_authorization(&["bearer admin-token-0123456789"])));
        for refused in [
            &["Bearer admin-token-012345678"][..],
            &["Bearer admin-token-01234567890"],
            &["Basic admin-token-0123456789"],
            &["Bearer"],
            &["Bearer "],
            &["admin-token-0123456789"],
            &[
                "Bearer admin-token-0123456789",
                "Bearer admin-token-0123456789",
            ],
        ] {
            assert!(!token.accepts(&with_authorization(refused)), "{refused:?}");
        }
        assert!(!token.accepts(&HeaderMap::new()));
    }

    #[test]
    fn generated_tokens_are_64_hex_characters_and_differ() {
        let (a, b) = (AdminToken::generate(), AdminToken::generate());
        assert_eq!(a.expose().len(), 64);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.expose(), b.expose());
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
