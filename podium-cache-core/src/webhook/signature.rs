//! [Standard Webhooks](https://www.standardwebhooks.com/) signing and verification.
//!
//! A delivery carries three headers:
//! - `webhook-id`: a unique message id (`msg_…`), the same for every retry of one message;
//! - `webhook-timestamp`: unix seconds when it was signed;
//! - `webhook-signature`: one or more space-separated `v1,<base64>` values, each
//!   `base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))`.
//!
//! The key is the base64-decoded part of a `whsec_…` secret ([`WebhookSecret`]), so any Standard
//! Webhooks library signs and verifies the same bytes as this module.
//!
//! ```
//! use std::time::Duration;
//! use podium_cache_core::webhook::signature::{sign, verify, SignatureHeaders, WebhookSecret};
//!
//! let secret: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
//! let body = br#"{"table":"Events","record_id":"rec1"}"#;
//! let signature = sign(&secret, "msg_1", 1_700_000_000, body);
//! let headers = SignatureHeaders::new("msg_1", "1700000000", signature);
//! verify(&[secret], &headers, body, 1_700_000_030, Duration::from_secs(300))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header carrying the message id.
pub const HEADER_ID: &str = "webhook-id";
/// The header carrying the signing time (unix seconds).
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The header carrying the `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// How far a delivery's timestamp may be from now (either way) by default: 5 minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The only signature scheme Standard Webhooks defines for symmetric keys.
const VERSION: &str = "v1";
/// A generated secret's key length.
const GENERATED_KEY_LEN: usize = 32;
/// The length of a base64 HMAC-SHA256 (32 bytes).
const SIGNATURE_B64_LEN: usize = 44;

type HmacSha256 = Hmac<Sha256>;

/// A Standard Webhooks signing key, written `whsec_<base64 key>`.
///
/// Only the `whsec_` form is accepted (a bare base64 string is refused so that a secret of another
/// kind, such as a legacy plain shared secret, is not silently read as a key). `Debug` and
/// `Display` never print the key: both show `[redacted]`; [`WebhookSecret::expose`] gives the
/// `whsec_…` text when it must be written somewhere.
///
/// ```
/// use podium_cache_core::webhook::signature::WebhookSecret;
///
/// let secret = WebhookSecret::generate();
/// let text = secret.expose();
/// assert!(text.starts_with("whsec_"));
/// assert_eq!(text.parse::<WebhookSecret>()?, secret);
/// assert_eq!(format!("{secret} {secret:?}"), "[redacted] WebhookSecret([redacted])");
/// assert!("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse::<WebhookSecret>().is_err());
/// # Ok::<(), podium_cache_core::webhook::signature::SecretError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

/// Why a text is not a [`WebhookSecret`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The text does not start with `whsec_`.
    #[error(
        "a webhook secret starts with `whsec_` followed by base64 (generate one with `cargo xtask gen-secret`)"
    )]
    MissingPrefix,
    /// The part after `whsec_` is not valid base64.
    #[error("the part of the webhook secret after `whsec_` is not valid base64: {0}")]
    InvalidBase64(String),
    /// The key is empty.
    #[error("the webhook secret's key is empty (generate one with `cargo xtask gen-secret`)")]
    Empty,
}

impl WebhookSecret {
    /// The text every secret starts with.
    pub const PREFIX: &'static str = "whsec_";

    /// A new secret of 32 random bytes from the operating system's generator.
    ///
    /// ```
    /// use podium_cache_core::webhook::signature::WebhookSecret;
    /// assert_ne!(WebhookSecret::generate(), WebhookSecret::generate());
    /// assert_eq!(WebhookSecret::generate().key().len(), 32);
    /// ```
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self { key }
    }

    /// A secret from raw key bytes.
    ///
    /// ```
    /// use podium_cache_core::webhook::signature::WebhookSecret;
    /// let secret = WebhookSecret::from_key(b"0123456789abcdef".to_vec())?;
    /// assert_eq!(secret.expose(), "whsec_MDEyMzQ1Njc4OWFiY2RlZg==");
    /// assert!(WebhookSecret::from_key(Vec::new()).is_err());
    /// # Ok::<(), podium_cache_core::webhook::signature::SecretError>(())
    /// ```
    pub fn from_key(key: Vec<u8>) -> Result<Self, SecretError> {
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self { key })
    }

    /// The raw HMAC key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The secret as `whsec_<base64>`, for writing into configuration.
    pub fn expose(&self) -> String {
        format!("{}{}", Self::PREFIX, STANDARD.encode(&self.key))
    }
}

impl FromStr for WebhookSecret {
    type Err = SecretError;

    /// Parses `whsec_<base64>` (surrounding whitespace is ignored).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let encoded = text
            .trim()
            .strip_prefix(Self::PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|err| SecretError::InvalidBase64(err.to_string()))?;
        Self::from_key(key)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl fmt::Display for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The three signature headers of a delivery, as received (`None` when a header is absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// `webhook-id`.
    pub id: Option<String>,
    /// `webhook-timestamp`.
    pub timestamp: Option<String>,
    /// `webhook-signature`.
    pub signature: Option<String>,
}

impl SignatureHeaders {
    /// Headers with all three values present.
    ///
    /// ```
    /// use podium_cache_core::webhook::signature::SignatureHeaders;
    /// let headers = SignatureHeaders::new("msg_1", "1700000000", "v1,abc=");
    /// assert_eq!(headers.id.as_deref(), Some("msg_1"));
    /// ```
    pub fn new(
        id: impl Into<String>,
        timestamp: impl Into<String>,
        signature: impl Into<String>,
    ) -> Self {
        Self {
            id: Some(id.into()),
            timestamp: Some(timestamp.into()),
            signature: Some(signature.into()),
        }
    }

    /// Reads the three headers through a lookup function (header names are passed lower-case),
    /// so any HTTP library's header map fits.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use podium_cache_core::webhook::signature::SignatureHeaders;
    /// let map = HashMap::from([("webhook-id", "msg_1"), ("webhook-timestamp", "1")]);
    /// let headers = SignatureHeaders::from_lookup(|name| map.get(name).map(|v| v.to_string()));
    /// assert_eq!(headers.signature, None);
    /// ```
    pub fn from_lookup(mut get: impl FnMut(&str) -> Option<String>) -> Self {
        Self {
            id: get(HEADER_ID),
            timestamp: get(HEADER_TIMESTAMP),
            signature: get(HEADER_SIGNATURE),
        }
    }
}

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A required header is absent or empty.
    #[error("the `{0}` header is missing (a Standard Webhooks delivery carries webhook-id, webhook-timestamp and webhook-signature)")]
    MissingHeader(&'static str),
    /// `webhook-id` is not printable ASCII without spaces or dots.
    #[error("the `webhook-id` header is malformed: expected printable ASCII without spaces")]
    MalformedId,
    /// `webhook-timestamp` is not a whole number of seconds.
    #[error("the `webhook-timestamp` header {0:?} is not unix seconds")]
    MalformedTimestamp(String),
    /// `webhook-signature` holds no `v1,<base64>` value.
    #[error("the `webhook-signature` header has no `v1,<base64 HMAC-SHA256>` value")]
    MalformedSignature,
    /// The timestamp is further from now than the tolerance.
    #[error(
        "the delivery's timestamp {timestamp} is {skew_secs} s from now ({now}), more than the {tolerance_secs} s allowed; check the sender's clock or replay"
    )]
    TimestampOutOfTolerance {
        /// The `webhook-timestamp` value.
        timestamp: i64,
        /// The verifier's clock.
        now: i64,
        /// `timestamp - now` (negative: in the past).
        skew_secs: i64,
        /// The allowed distance.
        tolerance_secs: u64,
    },
    /// No signature matches any secret.
    #[error("no `v1` signature matches the configured webhook secret(s): the sender's `whsec_` secret differs, or the body was changed on the way")]
    SignatureMismatch,
    /// No secret is configured to verify with.
    #[error("no webhook secret is configured, so no delivery can be verified")]
    NoSecret,
}

/// Signs a message: the `v1,<base64>` value for the `webhook-signature` header.
///
/// ```
/// use podium_cache_core::webhook::signature::{sign, WebhookSecret};
/// // The example from the Standard Webhooks reference implementations.
/// let secret: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
/// let signature = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
/// assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
/// # Ok::<(), podium_cache_core::webhook::signature::SecretError>(())
/// ```
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    match mac(secret, msg_id, &timestamp_secs.to_string(), body) {
        Some(tag) => format!("{VERSION},{}", STANDARD.encode(tag)),
        // Unreachable (HMAC takes keys of any length); an empty value never verifies.
        None => format!("{VERSION},"),
    }
}

fn mac(secret: &WebhookSecret, msg_id: &str, timestamp: &str, body: &[u8]) -> Option<[u8; 32]> {
    let mut mac = HmacSha256::new_from_slice(&secret.key).ok()?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac.finalize().into_bytes().into())
}

/// Verifies a delivery: headers present and well-formed, timestamp within `tolerance` of
/// `now_secs` (both directions), and at least one `v1` signature in the header matching
/// HMAC-SHA256 under at least one of `secrets` (several secrets allow rotating keys; several
/// signatures in the header allow the sender to rotate). Comparisons are constant-time.
///
/// ```
/// use std::time::Duration;
/// use podium_cache_core::webhook::signature::*;
///
/// let (old, new) = (WebhookSecret::generate(), WebhookSecret::generate());
/// let body = b"{}";
/// let headers = SignatureHeaders::new("msg_1", "1000", sign(&old, "msg_1", 1000, body));
/// // Still accepted while the old secret is configured next to the new one.
/// assert!(verify(&[new.clone(), old], &headers, body, 1000, DEFAULT_TOLERANCE).is_ok());
/// assert_eq!(verify(&[new], &headers, body, 1000, DEFAULT_TOLERANCE), Err(VerifyError::SignatureMismatch));
/// ```
pub fn verify(
    secrets: &[WebhookSecret],
    headers: &SignatureHeaders,
    body: &[u8],
    now_secs: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let id = present(&headers.id, HEADER_ID)?;
    let timestamp_text = present(&headers.timestamp, HEADER_TIMESTAMP)?;
    let signature = present(&headers.signature, HEADER_SIGNATURE)?;

    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(VerifyError::MalformedId);
    }
    let timestamp = parse_timestamp(timestamp_text)?;
    let candidates = signature
        .split(' ')
        .filter_map(|part| part.split_once(','))
        .filter(|(version, _)| *version == VERSION)
        .map(|(_, value)| value)
        .collect::<Vec<_>>();
    if candidates.is_empty() {
        return Err(VerifyError::MalformedSignature);
    }

    let tolerance_secs = tolerance.as_secs();
    let skew = i128::from(timestamp) - i128::from(now_secs);
    if skew.unsigned_abs() > u128::from(tolerance_secs) {
        return Err(VerifyError::TimestampOutOfTolerance {
            timestamp,
            now: now_secs,
            skew_secs: i64::try_from(skew).unwrap_or(if skew < 0 { i64::MIN } else { i64::MAX }),
            tolerance_secs,
        });
    }
    if secrets.is_empty() {
        return Err(VerifyError::NoSecret);
    }

    let mut matched = subtle::Choice::from(0u8);
    for secret in secrets {
        let Some(tag) = mac(secret, id, timestamp_text, body) else {
            continue;
        };
        let expected = STANDARD.encode(tag);
        for candidate in &candidates {
            // Lengths are public (always 44 for a valid signature); contents compare in constant time.
            if candidate.len() == SIGNATURE_B64_LEN {
                matched |= expected.as_bytes().ct_eq(candidate.as_bytes());
            }
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

fn present<'h>(value: &'h Option<String>, name: &'static str) -> Result<&'h str, VerifyError> {
    match value.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(VerifyError::MissingHeader(name)),
    }
}

fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    let malformed = || VerifyError::MalformedTimestamp(text.chars().take(32).collect());
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    text.parse::<i64>().map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn spec_secret() -> WebhookSecret {
        SPEC_SECRET.parse().expect("spec secret parses")
    }

    fn spec_headers(signature: &str) -> SignatureHeaders {
        SignatureHeaders::new(SPEC_ID, SPEC_TS.to_string(), signature)
    }

    #[test]
    fn sign_reproduces_the_standard_webhooks_test_vector() {
        assert_eq!(
            sign(&spec_secret(), SPEC_ID, SPEC_TS, SPEC_BODY),
            SPEC_SIGNATURE
        );
    }

    #[test]
    fn verify_accepts_the_standard_webhooks_test_vector() {
        let result = verify(
            &[spec_secret()],
            &spec_headers(SPEC_SIGNATURE),
            SPEC_BODY,
            SPEC_TS,
            DEFAULT_TOLERANCE,
        );
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn a_single_flipped_body_bit_is_a_mismatch() {
        for i in 0..SPEC_BODY.len() {
            let mut tampered = SPEC_BODY.to_vec();
            tampered[i] ^= 0x01;
            let result = verify(
                &[spec_secret()],
                &spec_headers(SPEC_SIGNATURE),
                &tampered,
                SPEC_TS,
                DEFAULT_TOLERANCE,
            );
            assert_eq!(result, Err(VerifyError::SignatureMismatch), "byte {i}");
        }
    }

    #[test]
    fn a_changed_id_or_timestamp_is_a_mismatch() {
        let other_id = SignatureHeaders::new("msg_other", SPEC_TS.to_string(), SPEC_SIGNATURE);
        assert_eq!(
            verify(
                &[spec_secret()],
                &other_id,
                SPEC_BODY,
                SPEC_TS,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::SignatureMismatch)
        );
        let other_ts = SignatureHeaders::new(SPEC_ID, (SPEC_TS + 1).to_string(), SPEC_SIGNATURE);
        assert_eq!(
            verify(
                &[spec_secret()],
                &other_ts,
                SPEC_BODY,
                SPEC_TS,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn any_of_several_signatures_in_the_header_may_match() {
        let header =
            format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v2,xyz {SPEC_SIGNATURE}");
        assert_eq!(
            verify(
                &[spec_secret()],
                &spec_headers(&header),
                SPEC_BODY,
                SPEC_TS,
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
    }

    #[test]
    fn any_of_several_secrets_may_match_for_rotation() {
        let new = WebhookSecret::generate();
        let secrets = [new.clone(), spec_secret()];
        let headers = spec_headers(SPEC_SIGNATURE);
        assert_eq!(
            verify(&secrets, &headers, SPEC_BODY, SPEC_TS, DEFAULT_TOLERANCE),
            Ok(())
        );
        assert_eq!(
            verify(&[new], &headers, SPEC_BODY, SPEC_TS, DEFAULT_TOLERANCE),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn timestamps_at_the_tolerance_pass_and_beyond_it_fail_in_both_directions() {
        let secrets = [spec_secret()];
        let headers = spec_headers(SPEC_SIGNATURE);
        let tolerance = Duration::from_secs(300);
        for now in [SPEC_TS - 300, SPEC_TS + 300] {
            assert_eq!(
                verify(&secrets, &headers, SPEC_BODY, now, tolerance),
                Ok(()),
                "now {now}"
            );
        }
        // The delivery is from the past.
        assert_eq!(
            verify(&secrets, &headers, SPEC_BODY, SPEC_TS + 301, tolerance),
            Err(VerifyError::TimestampOutOfTolerance {
                timestamp: SPEC_TS,
                now: SPEC_TS + 301,
                skew_secs: -301,
                tolerance_secs: 300
            })
        );
        // The delivery is from the future.
        assert_eq!(
            verify(&secrets, &headers, SPEC_BODY, SPEC_TS - 301, tolerance),
            Err(VerifyError::TimestampOutOfTolerance {
                timestamp: SPEC_TS,
                now: SPEC_TS - 301,
                skew_secs: 301,
                tolerance_secs: 300
            })
        );
    }

    #[test]
    fn each_missing_header_is_named() {
        let full = spec_headers(SPEC_SIGNATURE);
        let cases = [
            (
                SignatureHeaders {
                    id: None,
                    ..full.clone()
                },
                HEADER_ID,
            ),
            (
                SignatureHeaders {
                    timestamp: Some("  ".into()),
                    ..full.clone()
                },
                HEADER_TIMESTAMP,
            ),
            (
                SignatureHeaders {
                    signature: None,
                    ..full.clone()
                },
                HEADER_SIGNATURE,
            ),
        ];
        for (headers, name) in cases {
            let err = verify(
                &[spec_secret()],
                &headers,
                SPEC_BODY,
                SPEC_TS,
                DEFAULT_TOLERANCE,
            )
            .expect_err("missing header refused");
            assert_eq!(err, VerifyError::MissingHeader(name));
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn malformed_headers_are_reported_as_such() {
        let secrets = [spec_secret()];
        let bad_ts = SignatureHeaders::new(SPEC_ID, "16142e5", SPEC_SIGNATURE);
        assert_eq!(
            verify(&secrets, &bad_ts, SPEC_BODY, SPEC_TS, DEFAULT_TOLERANCE),
            Err(VerifyError::MalformedTimestamp("16142e5".into()))
        );
        let negative = SignatureHeaders::new(SPEC_ID, "-5", SPEC_SIGNATURE);
        assert!(matches!(
            verify(&secrets, &negative, SPEC_BODY, SPEC_TS, DEFAULT_TOLERANCE),
            Err(VerifyError::MalformedTimestamp(_))
        ));
        let no_v1 = spec_headers("v2,abc sig");
        assert_eq!(
            verify(&secrets, &no_v1, SPEC_BODY, SPEC_TS, DEFAULT_TOLERANCE),
            Err(VerifyError::MalformedSignature)
        );
        let bad_id = SignatureHeaders::new("msg 1", SPEC_TS.to_string(), SPEC_SIGNATURE);
        assert_eq!(
            verify(&secrets, &bad_id, SPEC_BODY, SPEC_TS, DEFAULT_TOLERANCE),
            Err(VerifyError::MalformedId)
        );
    }

    #[test]
    fn verify_without_secrets_says_none_is_configured() {
        assert_eq!(
            verify(
                &[],
                &spec_headers(SPEC_SIGNATURE),
                SPEC_BODY,
                SPEC_TS,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn secrets_parse_only_in_whsec_form_and_round_trip() {
        assert_eq!(
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse::<WebhookSecret>(),
            Err(SecretError::MissingPrefix)
        );
        assert!(matches!(
            "whsec_not base64!".parse::<WebhookSecret>(),
            Err(SecretError::InvalidBase64(_))
        ));
        assert_eq!("whsec_".parse::<WebhookSecret>(), Err(SecretError::Empty));
        assert_eq!(spec_secret().expose(), SPEC_SECRET);
        assert_eq!(
            format!(" {SPEC_SECRET}\n").parse::<WebhookSecret>(),
            Ok(spec_secret())
        );
    }

    #[test]
    fn generated_secrets_are_32_random_bytes_in_whsec_form() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert_eq!(a.key().len(), 32);
        assert_ne!(a, b);
        let text = a.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(text.parse::<WebhookSecret>(), Ok(a));
    }

    #[test]
    fn debug_and_display_never_show_the_key() {
        let secret = spec_secret();
        let shown = format!("{secret} {secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("MfKQ9r8"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(
            id in proptest::option::of(".{0,40}"),
            ts in proptest::option::of(".{0,24}"),
            sig in proptest::option::of(".{0,200}"),
            body in proptest::collection::vec(any::<u8>(), 0..256),
            now in any::<i64>(),
            tolerance in any::<u64>(),
        ) {
            let headers = SignatureHeaders { id, timestamp: ts, signature: sig };
            let _ = verify(&[spec_secret()], &headers, &body, now, Duration::from_secs(tolerance));
        }

        #[test]
        fn every_signed_body_verifies_and_any_change_of_it_does_not(
            body in proptest::collection::vec(any::<u8>(), 1..256),
            flip in any::<prop::sample::Index>(),
            ts in 0i64..4_000_000_000,
        ) {
            let secret = spec_secret();
            let headers = SignatureHeaders::new("msg_x", ts.to_string(), sign(&secret, "msg_x", ts, &body));
            prop_assert_eq!(verify(std::slice::from_ref(&secret), &headers, &body, ts, DEFAULT_TOLERANCE), Ok(()));
            let mut tampered = body.clone();
            tampered[flip.index(body.len())] ^= 0x80;
            prop_assert_eq!(verify(&[secret], &headers, &tampered, ts, DEFAULT_TOLERANCE), Err(VerifyError::SignatureMismatch));
        }

        #[test]
        fn any_secret_text_parses_or_errors_without_panicking(text in ".{0,80}") {
            let _ = text.parse::<WebhookSecret>();
        }
    }
}
