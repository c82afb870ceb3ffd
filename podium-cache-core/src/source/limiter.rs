//! The client-side rate limiter: at most N requests in any window, per base, for the process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// A sliding-window limiter: never more than `max` acquisitions in any `window`. Waiters are
/// served first come, first served (tokio's mutex is fair). A pause (after a 429) holds
/// everyone until it ends.
///
/// A sliding window satisfies both readings of "5 requests a second": no more than 5 in any
/// one-second window, and so no more than 5 in any calendar second.
#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl RateLimiter {
    /// At most `max` requests in any `window`.
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window,
            state: Mutex::new(State::default()),
        }
    }

    /// The limiter shared by every client in this process that talks to `scope` (e.g. the API
    /// origin and base id), created with `max`/`window` on first use.
    pub fn shared(scope: &str, max: usize, window: Duration) -> Arc<Self> {
        static REGISTRY: OnceLock<parking_lot::Mutex<HashMap<String, Arc<RateLimiter>>>> =
            OnceLock::new();
        let registry = REGISTRY.get_or_init(Default::default);
        registry
            .lock()
            .entry(scope.to_owned())
            .or_insert_with(|| Arc::new(Self::new(max, window)))
            .clone()
    }

    /// Waits until one more request may be sent, and counts it.
    pub async fn acquire(&self) {
        let mut state = self.state.lock().await;
        loop {
            let now = Instant::now();
            if let Some(until) = state.paused_until {
                if until > now {
                    tokio::time::sleep_until(until).await;
                    continue;
                }
                state.paused_until = None;
            }
            while state
                .sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                state.sent.pop_front();
            }
            if state.sent.len() < self.max {
                state.sent.push_back(now);
                return;
            }
            if let Some(oldest) = state.sent.front().copied() {
                tokio::time::sleep_until(oldest + self.window).await;
            }
        }
    }

    /// Holds every caller for `duration` (the source answered 429).
    pub async fn pause(&self, duration: Duration) {
        let mut state = self.state.lock().await;
        let until = Instant::now() + duration;
        state.paused_until = Some(state.paused_until.map_or(until, |u| u.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_max_in_any_window() {
        let limiter = Arc::new(RateLimiter::new(5, Duration::from_secs(1)));
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..23 {
            let limiter = limiter.clone();
            handles.push(tokio::spawn(async move {
                limiter.acquire().await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for h in handles {
            times.push(h.await.unwrap());
        }
        times.sort();
        for (i, t) in times.iter().enumerate().skip(5) {
            assert!(t.duration_since(times[i - 5]) >= Duration::from_secs(1));
        }
        // 23 requests at 5 per second need four full windows.
        assert!(times[22].duration_since(start) >= Duration::from_secs(4));
        assert!(times[22].duration_since(start) < Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_caller() {
        let limiter = RateLimiter::new(5, Duration::from_secs(1));
        let start = Instant::now();
        limiter.pause(Duration::from_secs(30)).await;
        limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(30));
    }
}
