//! Webhook deliveries: Standard Webhooks signing and verification, replay guard, and Airtable native-webhook notifications.

pub mod signature;

pub use signature::{sign, verify, SignatureHeaders, VerifyError, WebhookSecret};
