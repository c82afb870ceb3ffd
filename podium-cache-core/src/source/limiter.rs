//! The client-side rate limiter: at most N requests in any window, per base, for the process.
//!
//! A request holds its slot from the moment it is sent until its answer has arrived, and the
//! slot is free again one window after that. The server sees a request arrive somewhere between
//! its sending and its answer, so two requests that used the same slot reach the server at
//! least one window apart, whatever the network and the scheduler did in between: the limit
//! holds at the server, not only at the client. (A limiter that counts send times only keeps
//! the limit if every request takes the same time to arrive; on a loaded machine they do not.)
//!
//! Several instances calling one base share one budget through the store instead: see
//! [`shared_limiter`](super::shared_limiter), which keeps this same property across them and
//! falls back to this limiter while the store is unreachable.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A sliding-window limiter: never more than `max` requests in any `window` as the server sees
/// them. A pause (after a 429) holds everyone until it ends.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// use podium_cache_core::source::limiter::RateLimiter;
/// let limiter = RateLimiter::new(5, Duration::from_secs(1));
/// let permit = limiter.acquire().await;
/// // … send the request, read the answer …
/// drop(permit); // the slot is free again one window from now
/// # }
/// ```
#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    in_flight: usize,
    finished: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

/// One request's slot; dropping it (after the answer arrived) starts the slot's window.
#[derive(Debug)]
pub struct Permit<'a> {
    limiter: &'a RateLimiter,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        {
            let mut state = self.limiter.state.lock();
            state.in_flight = state.in_flight.saturating_sub(1);
            state.finished.push_back(Instant::now());
        }
        self.limiter.changed.notify_waiters();
    }
}

impl RateLimiter {
    /// At most `max` requests in any `window`.
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window,
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        }
    }

    /// The limiter shared by every client in this process that talks to `scope` (e.g. the API
    /// origin and base id), created with `max`/`window` on first use.
    pub fn shared(scope: &str, max: usize, window: Duration) -> Arc<Self> {
        static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<RateLimiter>>>> = OnceLock::new();
        let registry = REGISTRY.get_or_init(Default::default);
        registry
            .lock()
            .entry(scope.to_owned())
            .or_insert_with(|| Arc::new(Self::new(max, window)))
            .clone()
    }

    /// A limiter for `rps` requests per second (see [`window_for_rate`]).
    ///
    /// ```
    /// use podium_cache_core::source::limiter::RateLimiter;
    /// use std::time::Duration;
    /// let limiter = RateLimiter::per_second(2.5);
    /// assert_eq!((limiter.max(), limiter.window()), (2, Duration::from_secs(1)));
    /// ```
    pub fn per_second(rps: f64) -> Self {
        let (max, window) = window_for_rate(rps);
        Self::new(max, window)
    }

    /// Requests allowed in one window.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Waits until one more request may be sent; hold the permit until its answer arrived.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake_at = {
                let mut state = self.state.lock();
                let now = Instant::now();
                match state.paused_until {
                    Some(until) if until > now => Some(until),
                    _ => {
                        state.paused_until = None;
                        while state
                            .finished
                            .front()
                            .is_some_and(|t| now.duration_since(*t) >= self.window)
                        {
                            state.finished.pop_front();
                        }
                        if state.in_flight + state.finished.len() < self.max {
                            state.in_flight += 1;
                            return Permit { limiter: self };
                        }
                        // Full: the oldest finished slot frees first; if every slot is in
                        // flight, an answer (a notification) is what frees one.
                        state.finished.front().map(|t| *t + self.window)
                    }
                }
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Holds every caller for `duration` (the source answered 429).
    pub fn pause(&self, duration: Duration) {
        let mut state = self.state.lock();
        let until = Instant::now() + duration;
        state.paused_until = Some(state.paused_until.map_or(until, |u| u.max(until)));
    }
}

/// `(max, window)` that keeps to `rps` requests per second in any one-second window: the whole
/// requests per second when `rps` is at least 1 (2.5 → 2 per second: rounding down keeps N
/// instances' sum under the shared limit), else one request per `1 / rps` seconds. A rate that
/// is not a positive number is taken as 1.
///
/// ```
/// use podium_cache_core::source::limiter::window_for_rate;
/// use std::time::Duration;
/// assert_eq!(window_for_rate(5.0), (5, Duration::from_secs(1)));
/// assert_eq!(window_for_rate(1.7), (1, Duration::from_secs(1)));
/// assert_eq!(window_for_rate(0.5), (1, Duration::from_secs(2)));
/// ```
pub fn window_for_rate(rps: f64) -> (usize, Duration) {
    let rps = if rps.is_finite() && rps > 0.0 {
        rps
    } else {
        1.0
    };
    if rps >= 1.0 {
        // Saturating float-to-int conversion: an absurd rate is simply "no practical limit".
        (rps.floor() as usize, Duration::from_secs(1))
    } else {
        (1, Duration::from_secs_f64(1.0 / rps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `n` requests that each take `latency` between send and answer; returns
    /// (send, answer) instants.
    async fn run(
        limiter: Arc<RateLimiter>,
        n: usize,
        latency: Duration,
    ) -> Vec<(Instant, Instant)> {
        let mut handles = Vec::new();
        for _ in 0..n {
            let limiter = limiter.clone();
            handles.push(tokio::spawn(async move {
                let permit = limiter.acquire().await;
                let sent = Instant::now();
                tokio::time::sleep(latency).await;
                let answered = Instant::now();
                drop(permit);
                (sent, answered)
            }));
        }
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out.sort();
        out
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_max_in_any_window_as_the_server_sees_them() {
        let limiter = Arc::new(RateLimiter::new(5, Duration::from_secs(1)));
        let start = Instant::now();
        let times = run(limiter, 23, Duration::from_millis(200)).await;
        // The server sees a request at any instant between send and answer: the worst case
        // is the earlier one arriving at its answer and the later one at its send.
        for i in 5..times.len() {
            assert!(times[i].0.duration_since(times[i - 5].1) >= Duration::from_secs(1));
        }
        // 23 requests at 5 per (1 s + 200 ms) need four full rounds.
        let last = times[22].1.duration_since(start);
        assert!(last >= Duration::from_millis(4 * 1200), "{last:?}");
        assert!(last < Duration::from_secs(6), "{last:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_caller() {
        let limiter = RateLimiter::new(5, Duration::from_secs(1));
        let start = Instant::now();
        limiter.pause(Duration::from_secs(30));
        let _permit = limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(30));
    }
}
