//! What every route of the server shares: its settings, the record store, the rate limiter
//! and call counters, and the gate each call passes (authentication, scopes, rate limit,
//! latency and injected faults).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use parking_lot::{Mutex, RwLock};
use rand::Rng;

use super::api_error::ApiError;
use super::list::{Iterators, ListParams};
use super::ratelimit::{CallKind, CallStats, RateLimiter, Stats};
use super::store::Store;
use super::tokens::{Token, RECORDS_READ, RECORDS_WRITE};

/// How many list formulas are remembered.
const FORMULA_LOG_CAPACITY: usize = 256;

/// Runtime knobs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The tokens accepted; the first is the default one ([`RunningAirtable::api_key`]).
    ///
    /// [`RunningAirtable::api_key`]: super::RunningAirtable::api_key
    pub(crate) tokens: Vec<Token>,
    pub(crate) latency: (Duration, Duration),
    pub(crate) rate_limit: Option<u32>,
    pub(crate) fail_next: usize,
    pub(crate) fail_next_status: u16,
    pub(crate) fail_ratio: f64,
    pub(crate) fail_ratio_status: u16,
}

impl Settings {
    pub(crate) fn new(
        tokens: Vec<Token>,
        latency: (Duration, Duration),
        rate_limit: Option<u32>,
    ) -> Self {
        Settings {
            tokens,
            latency,
            rate_limit,
            fail_next: 0,
            fail_next_status: 503,
            fail_ratio: 0.0,
            fail_ratio_status: 503,
        }
    }

    fn sample_latency(&self) -> Duration {
        let (min, max) = self.latency;
        if max <= min {
            min
        } else {
            rand::thread_rng().gen_range(min..=max)
        }
    }

    /// Decides whether this request gets an injected fault.
    fn take_fault(&mut self) -> Option<u16> {
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Some(self.fail_next_status);
        }
        if self.fail_ratio > 0.0 && rand::thread_rng().gen_bool(self.fail_ratio.min(1.0)) {
            return Some(self.fail_ratio_status);
        }
        None
    }
}

/// Everything the handlers and the [`RunningAirtable`](super::RunningAirtable) handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: RwLock<Store>,
    pub(crate) settings: Mutex<Settings>,
    pub(crate) limiter: Mutex<RateLimiter>,
    pub(crate) stats: Mutex<Stats>,
    pub(crate) formulas: Mutex<VecDeque<String>>,
    pub(crate) iterators: Mutex<Iterators>,
}

impl Shared {
    pub(crate) fn new(settings: Settings, store: Store) -> Shared {
        Shared {
            store: RwLock::new(store),
            settings: Mutex::new(settings),
            limiter: Mutex::new(RateLimiter::default()),
            stats: Mutex::new(Stats::default()),
            formulas: Mutex::new(VecDeque::new()),
            iterators: Mutex::new(Iterators::default()),
        }
    }

    /// What every records API request passes first: counting, authentication, the scope its
    /// kind needs, the rate limit (checked on arrival), the latency sleep and fault injection.
    pub(crate) async fn gate(
        &self,
        base: &str,
        kind: CallKind,
        headers: &HeaderMap,
    ) -> Result<(), ApiError> {
        // "List records" and "Get record" need data.records:read; create, update and delete
        // need data.records:write (the "Scope" line of each endpoint's "Requirements", e.g.
        // https://airtable.com/developers/web/api/get-record and
        // https://airtable.com/developers/web/api/delete-multiple-records).
        let scope = match kind {
            CallKind::Get | CallKind::List | CallKind::ListPost => RECORDS_READ,
            CallKind::Create | CallKind::Update | CallKind::Delete => RECORDS_WRITE,
        };
        self.gate_with(base, |s| s.count_kind(kind), &[scope], headers)
            .await
            .map(drop)
    }

    /// The token a request authenticates with (not counted).
    pub(crate) fn token(&self, headers: &HeaderMap) -> Option<Token> {
        let key = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))?
            .trim();
        let settings = self.settings.lock();
        settings.tokens.iter().find(|t| t.key() == key).cloned()
    }

    /// Authenticates a request addressed to no base (counted in the overall `total` and
    /// `unauthorized` only): 401 without a known token.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<Token, ApiError> {
        self.stats.lock().all.total += 1;
        self.token(headers).ok_or_else(|| {
            self.stats.lock().all.unauthorized += 1;
            ApiError::Unauthorized
        })
    }

    /// [`Shared::gate`] with the per-kind count given as `count_kind` (applied once the request
    /// is authenticated; a no-op for calls outside the records API's kinds) and the scopes the
    /// call needs (missing one: 403, counted in `forbidden`). Answers the token, for scopes
    /// that depend on the request's content.
    pub(crate) async fn gate_with(
        &self,
        base: &str,
        count_kind: impl Fn(&mut CallStats),
        scopes: &[&str],
        headers: &HeaderMap,
    ) -> Result<Token, ApiError> {
        self.stats.lock().count(base, |s| s.total += 1);
        let Some(token) = self.token(headers) else {
            self.stats.lock().count(base, |s| s.unauthorized += 1);
            return Err(ApiError::Unauthorized);
        };
        self.stats.lock().count(base, &count_kind);
        self.require(base, &token, scopes)?;
        let rate_limit = self.settings.lock().rate_limit;
        if let Some(limit) = rate_limit {
            if !self.limiter.lock().try_acquire(base, limit, Instant::now()) {
                self.stats.lock().count(base, |s| s.rate_limited += 1);
                return Err(ApiError::RateLimited);
            }
        }
        let (latency, fault) = {
            let mut settings = self.settings.lock();
            (settings.sample_latency(), settings.take_fault())
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Some(status) = fault {
            self.stats.lock().count(base, |s| s.errors_injected += 1);
            return Err(ApiError::Injected(status));
        }
        Ok(token)
    }

    /// 403 (counted in `forbidden`) unless `token` holds every one of `scopes`: Airtable's
    /// tokens "can only access API endpoints covered by the scopes granted to them"
    /// (<https://airtable.com/developers/web/api/scopes>).
    pub(crate) fn require(
        &self,
        base: &str,
        token: &Token,
        scopes: &[&str],
    ) -> Result<(), ApiError> {
        if scopes.iter().all(|s| token.has_scope(s)) {
            return Ok(());
        }
        self.stats.lock().count(base, |s| s.forbidden += 1);
        Err(ApiError::Forbidden)
    }

    pub(crate) fn log_formula(&self, params: &ListParams) {
        let mut log = self.formulas.lock();
        if log.len() >= FORMULA_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(params.filter_by_formula.clone().unwrap_or_default());
    }
}
