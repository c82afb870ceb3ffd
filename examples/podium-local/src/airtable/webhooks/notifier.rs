//! The task that pings a webhook's notification URL, and the MAC it signs pings with.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::hook::{timestamp, NotificationResult, PingState};

/// How many times a failed ping is retried.
pub const PING_RETRIES: u32 = 5;
/// The delay before the first retry of a failed ping (doubled for each next one).
pub const PING_RETRY_DELAY: Duration = Duration::from_millis(200);
/// The header carrying the ping's MAC.
pub const CONTENT_MAC_HEADER: &str = "X-Airtable-Content-MAC";
type HmacSha256 = Hmac<Sha256>;

/// The task that pings one webhook's notification URL, one ping at a time.
pub(super) struct Notifier {
    pub(super) state: Arc<PingState>,
    pub(super) http: reqwest::Client,
    pub(super) url: String,
    pub(super) base: String,
    pub(super) webhook: String,
    pub(super) key: Vec<u8>,
}

impl Notifier {
    pub(super) async fn run(self) {
        loop {
            self.state.wake.notified().await;
            if self.state.closed.load(Ordering::SeqCst) {
                return;
            }
            let covered = self.state.status.borrow().requested;
            let mut delay = PING_RETRY_DELAY;
            for retry in 0..=PING_RETRIES {
                let mut result = self.ping().await;
                result.retry_number = retry;
                let closed = self.state.closed.load(Ordering::SeqCst);
                result.will_be_retried = !result.success && retry < PING_RETRIES && !closed;
                if !result.success {
                    tracing::warn!(
                        webhook = %self.webhook,
                        url = %self.url,
                        status = ?result.status,
                        error = ?result.error,
                        retry,
                        will_be_retried = result.will_be_retried,
                        "airtable-local webhook ping failed"
                    );
                }
                let last_attempt = !result.will_be_retried;
                self.state.status.send_modify(|s| {
                    if last_attempt {
                        s.delivered = s.delivered.max(covered);
                    }
                    s.pings += 1;
                    if result.success {
                        s.last_success = Some(result.completion_timestamp.clone());
                    }
                    s.last = Some(result);
                });
                if last_attempt {
                    break;
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }

    pub(super) async fn ping(&self) -> NotificationResult {
        let body = json!({
            "base": { "id": self.base },
            "webhook": { "id": self.webhook },
            "timestamp": timestamp(Utc::now()),
        })
        .to_string();
        let started = Instant::now();
        let answer = match content_mac(&self.key, body.as_bytes()) {
            Some(mac) => self
                .http
                .post(&self.url)
                .header("content-type", "application/json; charset=utf-8")
                .header(CONTENT_MAC_HEADER, mac)
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string()),
            None => Err("the MAC key is unusable".to_owned()),
        };
        let (status, error) = match answer {
            Ok(response) if response.status().is_success() => (Some(response.status()), None),
            Ok(response) => (
                Some(response.status()),
                Some(format!("the receiver answered {}", response.status())),
            ),
            Err(error) => (None, Some(error)),
        };
        NotificationResult {
            success: error.is_none(),
            completion_timestamp: timestamp(Utc::now()),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            status: status.map(|s| s.as_u16()),
            error,
            retry_number: 0,
            will_be_retried: false,
        }
    }
}

/// `hmac-sha256=<hex of HMAC-SHA256(key, body)>`, the `X-Airtable-Content-MAC` value.
pub fn content_mac(key: &[u8], body: &[u8]) -> Option<String> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(body);
    Some(format!(
        "hmac-sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_mac_matches_a_known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = content_mac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            mac.as_deref(),
            Some("hmac-sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }
}
