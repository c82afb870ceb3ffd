//! Airtable's per-base rate limit (a sliding one-second window) and the call counters.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The window the limit applies to.
const WINDOW: Duration = Duration::from_secs(1);

/// Sliding-window limiter: at most `limit` accepted requests per base in any one second.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    accepted: HashMap<String, VecDeque<Instant>>,
}

impl RateLimiter {
    /// Accepts the request (recording it in the window) or refuses it (recording nothing).
    pub(crate) fn try_acquire(&mut self, base: &str, limit: u32, now: Instant) -> bool {
        let window = self.accepted.entry(base.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            return false;
        }
        window.push_back(now);
        true
    }

    /// Forgets every accepted request.
    pub(crate) fn clear(&mut self) {
        self.accepted.clear();
    }
}

/// What kind of API request a call was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    Get,
    List,
    /// `POST …/listRecords` (counted in `list` and `list_post`).
    ListPost,
    Create,
    Update,
    Delete,
}

/// Counters of API requests (direct data access through
/// [`RunningAirtable`](super::RunningAirtable) is not counted).
///
/// `total` counts every request under `/v0/{base}/…`. The per-kind counters count
/// authenticated requests of that kind, whatever they were answered (a refused one is counted
/// in `rate_limited` or `errors_injected` as well).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CallStats {
    /// Every API request.
    pub total: u64,
    /// `GET /v0/{base}/{table}/{id}`.
    pub get: u64,
    /// `GET /v0/{base}/{table}` and `POST …/listRecords` (each page is one call).
    pub list: u64,
    /// The `POST …/listRecords` calls among `list` (so `list - list_post` were sent as GET).
    pub list_post: u64,
    /// `POST /v0/{base}/{table}`.
    pub create: u64,
    /// `PATCH`/`PUT` of one or many records.
    pub update: u64,
    /// `DELETE` of one or many records.
    pub delete: u64,
    /// Requests answered 429 by the rate limit.
    pub rate_limited: u64,
    /// Requests answered with an injected fault (`fail_next`, `fail_ratio`).
    pub errors_injected: u64,
    /// Requests answered 401 (missing or wrong API key).
    pub unauthorized: u64,
    /// Requests answered 403 because the token lacks a scope the call needs (an unknown base
    /// or table is answered 403 as well, but counted by its kind only).
    pub forbidden: u64,
}

impl CallStats {
    pub(crate) fn count_kind(&mut self, kind: CallKind) {
        match kind {
            CallKind::Get => self.get += 1,
            CallKind::List => self.list += 1,
            CallKind::ListPost => {
                self.list += 1;
                self.list_post += 1;
            }
            CallKind::Create => self.create += 1,
            CallKind::Update => self.update += 1,
            CallKind::Delete => self.delete += 1,
        }
    }

    /// Requests that were answered by the data (not refused by auth, a missing scope, the
    /// limit or a fault).
    pub fn served(&self) -> u64 {
        self.total.saturating_sub(
            self.rate_limited + self.errors_injected + self.unauthorized + self.forbidden,
        )
    }
}

/// Counters overall and per base.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) all: CallStats,
    pub(crate) per_base: HashMap<String, CallStats>,
}

impl Stats {
    /// Applies `f` to the overall and the base's counters.
    pub(crate) fn count(&mut self, base: &str, f: impl Fn(&mut CallStats)) {
        f(&mut self.all);
        f(self.per_base.entry(base.to_owned()).or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_admits_limit_per_sliding_second_per_base() {
        let mut limiter = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.try_acquire("appA", 5, t0));
        }
        assert!(!limiter.try_acquire("appA", 5, t0 + Duration::from_millis(999)));
        assert!(
            limiter.try_acquire("appB", 5, t0),
            "other bases have their own window"
        );
        assert!(limiter.try_acquire("appA", 5, t0 + WINDOW));
    }

    #[test]
    fn refused_requests_do_not_consume_the_window() {
        let mut limiter = RateLimiter::default();
        let t0 = Instant::now();
        assert!(limiter.try_acquire("appA", 1, t0));
        for i in 1..10 {
            assert!(!limiter.try_acquire("appA", 1, t0 + Duration::from_millis(i * 50)));
        }
        assert!(limiter.try_acquire("appA", 1, t0 + WINDOW));
    }
}
