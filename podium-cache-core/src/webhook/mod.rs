//! Webhook deliveries: Standard Webhooks signing and verification, replay guard, and Airtable native-webhook notifications.

pub mod native;
mod receive_error;
pub mod receiver;
pub mod registry;
mod settings;
pub mod signature;

pub use native::{
    MacSecret, NativeError, NativeErrorKind, NativeStats, NativeWebhooks, SyncOutcome, WebhooksApi,
};
pub use receiver::{Delivery, Receipt, ReceiptStatus, ReceiveError, ReceiveErrorKind, Receiver};
pub use registry::{FitError, ModelOps, Models};
pub use settings::secrets_from_settings;
pub use signature::{sign, verify, SignatureHeaders, VerifyError, WebhookSecret};
