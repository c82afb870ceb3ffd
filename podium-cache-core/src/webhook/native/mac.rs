//! The MAC of Airtable's notification pings: "`X-Airtable-Content-MAC`: `hmac-sha256=` and the
//! hex HMAC-SHA256 of the request body under the webhook's `macSecretBase64`"
//! (<https://airtable.com/developers/web/api/webhooks-overview>, "Notification delivery";
//! pyairtable verifies it the same way in `WebhookNotification.from_request`), and the ping's
//! body.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The notification's MAC header (lower case, as header lookups take it).
pub const MAC_HEADER: &str = "x-airtable-content-mac";
/// The scheme prefix of the MAC header's value.
pub const MAC_PREFIX: &str = "hmac-sha256=";

type HmacSha256 = Hmac<Sha256>;

/// A webhook's MAC key, given by Airtable as `macSecretBase64` when the webhook is created.
/// `Debug` and `Display` print `[redacted]`.
///
/// ```
/// use podium_cache_core::webhook::native::MacSecret;
/// let secret: MacSecret = "c2VjcmV0".parse()?;
/// let mac = secret.sign(b"{}");
/// assert!(mac.starts_with("hmac-sha256="));
/// assert!(secret.verifies(&mac, b"{}"));
/// assert!(!secret.verifies(&mac, b"{ }"));
/// assert_eq!(format!("{secret:?}"), "MacSecret([redacted])");
/// # Ok::<(), podium_cache_core::webhook::native::MacSecretError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct MacSecret {
    key: Vec<u8>,
}

/// Why a text is not a [`MacSecret`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacSecretError {
    /// Not base64.
    #[error("macSecretBase64 is not base64: {0}")]
    NotBase64(String),
    /// Decodes to nothing.
    #[error("macSecretBase64 is empty")]
    Empty,
}

impl MacSecret {
    /// The key from Airtable's `macSecretBase64`.
    pub fn from_base64(text: &str) -> Result<Self, MacSecretError> {
        let key = STANDARD
            .decode(text.trim())
            .map_err(|e| MacSecretError::NotBase64(e.to_string()))?;
        if key.is_empty() {
            return Err(MacSecretError::Empty);
        }
        Ok(Self { key })
    }

    /// The `macSecretBase64` text, to write into a configuration.
    pub fn expose_base64(&self) -> String {
        STANDARD.encode(&self.key)
    }

    fn mac(&self) -> Option<HmacSha256> {
        HmacSha256::new_from_slice(&self.key).ok()
    }

    /// The header value Airtable sends for `body`: `hmac-sha256=<hex>`.
    pub fn sign(&self, body: &[u8]) -> String {
        match self.mac() {
            Some(mut mac) => {
                mac.update(body);
                format!("{MAC_PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
            }
            None => String::new(),
        }
    }

    /// Whether `header` (`hmac-sha256=<hex>`) is the MAC of `body` (constant-time compare).
    pub fn verifies(&self, header: &str, body: &[u8]) -> bool {
        match parse_mac_header(header) {
            Ok(given) => self.verifies_raw(&given, body),
            Err(_) => false,
        }
    }

    pub(crate) fn verifies_raw(&self, given: &[u8], body: &[u8]) -> bool {
        match self.mac() {
            Some(mut mac) => {
                mac.update(body);
                mac.verify_slice(given).is_ok()
            }
            None => false,
        }
    }
}

impl FromStr for MacSecret {
    type Err = MacSecretError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_base64(text)
    }
}

impl fmt::Debug for MacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacSecret([redacted])")
    }
}

impl fmt::Display for MacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The raw MAC bytes of a `hmac-sha256=<hex>` header value.
/// The raw MAC bytes of a `hmac-sha256=<hex>` header value.
pub(crate) fn parse_mac_header(header: &str) -> Result<Vec<u8>, String> {
    let header = header.trim();
    let prefix = header.get(..MAC_PREFIX.len()).unwrap_or_default();
    if !prefix.eq_ignore_ascii_case(MAC_PREFIX) {
        return Err(format!(
            "X-Airtable-Content-MAC must be `{MAC_PREFIX}<hex>`, got another scheme"
        ));
    }
    hex::decode(&header[MAC_PREFIX.len()..])
        .map_err(|e| format!("X-Airtable-Content-MAC is not hex: {e}"))
}

/// The notification body Airtable POSTs.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Notification {
    /// `{"id": "app…"}`.
    pub base: IdRef,
    /// `{"id": "ach…"}`.
    pub webhook: IdRef,
    /// When it was sent.
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// `{"id": "…"}`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct IdRef {
    /// The id.
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_header_parsing_accepts_only_hex_hmac_sha256() {
        assert_eq!(parse_mac_header("hmac-sha256=00ff"), Ok(vec![0, 255]));
        assert_eq!(parse_mac_header(" HMAC-SHA256=00ff "), Ok(vec![0, 255]));
        assert!(parse_mac_header("sha1=00ff").is_err());
        assert!(parse_mac_header("hmac-sha256=zz").is_err());
        assert!(parse_mac_header("").is_err());
    }

    #[test]
    fn secret_signs_what_airtable_signs() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let secret = MacSecret::from_base64(&STANDARD.encode(b"Jefe"));
        let secret = match secret {
            Ok(secret) => secret,
            Err(err) => panic!("valid base64 refused: {err}"),
        };
        let mac = secret.sign(b"what do ya want for nothing?");
        assert_eq!(
            mac,
            "hmac-sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(secret.verifies(&mac, b"what do ya want for nothing?"));
        assert!(!secret.verifies(&mac, b"what do ya want for nothing!"));
        assert!(MacSecret::from_base64("not base64!").is_err());
        assert_eq!(MacSecret::from_base64(""), Err(MacSecretError::Empty));
    }
}
