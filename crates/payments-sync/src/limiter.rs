//! A proactive rolling-window rate limiter per credential.
//!
//! It allows `limit` requests in any `window` (like MKP's 60 per rolling minute), so a run may
//! spend a whole window's allowance at once and then one request per `window / limit`. After
//! each response it trusts the server's `X-RateLimit-Remaining` over its own count, so a run that
//! starts right after another one (another process, a cron job) does not trip a 429.
//!
//! A hand-written window rather than a GCRA crate such as `governor`: GCRA cannot be told "the
//! server says only N remain", which is what keeps back-to-back runs clear of 429s.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// `limit` requests per rolling `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in any window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
}

impl RateLimit {
    /// MKP's documented limit: 60 requests per rolling minute.
    pub const MKP: RateLimit = RateLimit {
        limit: 60,
        window: Duration::from_secs(60),
    };
}

/// One request counted by [`Limiter::acquire`], to hand back with [`Limiter::answered`].
#[derive(Debug)]
#[must_use = "hand the ticket back with `Limiter::answered` once the answer arrives"]
pub struct Ticket {
    stamp: Instant,
    /// How long the limiter held the request back.
    pub waited: Duration,
}

/// A rolling-window limiter shared by every request made with one credential.
#[derive(Debug)]
pub struct Limiter {
    rate: RateLimit,
    /// When each request still inside the window was (or is counted as) made, oldest first.
    sent: Mutex<VecDeque<Instant>>,
}

impl Limiter {
    /// A limiter allowing `rate`.
    pub fn new(rate: RateLimit) -> Limiter {
        Limiter {
            rate,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// The rate it enforces.
    pub fn rate(&self) -> RateLimit {
        self.rate
    }

    /// Waits until one more request fits in the window and counts it as made now. Hand the
    /// ticket back with [`Limiter::answered`] when the answer arrives.
    pub async fn acquire(&self) -> Ticket {
        let start = Instant::now();
        loop {
            let wait = {
                let mut sent = self.sent.lock().await;
                let now = Instant::now();
                self.forget_expired(&mut sent, now);
                if sent.len() < self.rate.limit as usize {
                    sent.push_back(now);
                    return Ticket {
                        stamp: now,
                        waited: start.elapsed(),
                    };
                }
                let oldest = *sent.front().expect("a full window has an oldest request");
                self.rate.window.saturating_sub(now.duration_since(oldest))
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Counts the request as made when its answer arrived. The server saw it no later than
    /// that, so this window never frees a slot before the server's does (counting from the
    /// moment of sending would, by the time the request took to arrive).
    pub async fn answered(&self, ticket: Ticket) {
        let mut sent = self.sent.lock().await;
        if let Some(index) = sent.iter().rposition(|at| *at == ticket.stamp) {
            sent.remove(index);
        }
        sent.push_back(Instant::now());
    }

    /// Drops the requests that have left the window by `now`.
    fn forget_expired(&self, sent: &mut VecDeque<Instant>, now: Instant) {
        while sent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= self.rate.window)
        {
            sent.pop_front();
        }
    }

    /// How long ago each request still in the window was counted, oldest first: what the
    /// next run needs to start where this one leaves off.
    pub async fn recent(&self) -> Vec<Duration> {
        let mut sent = self.sent.lock().await;
        let now = Instant::now();
        self.forget_expired(&mut sent, now);
        sent.iter().map(|at| now.duration_since(*at)).collect()
    }

    /// Starts from what a previous run saw: its requests answered `requests` ago, and
    /// `remaining` requests left `age` ago. Whatever else the server counted (another client of
    /// the same key) is counted as made `age` ago.
    pub async fn preload(&self, requests: &[Duration], remaining: u32, age: Duration) {
        let now = Instant::now();
        let mut sent = self.sent.lock().await;
        let mut all: Vec<Instant> = sent.drain(..).collect();
        let ago = |age: Duration| now.checked_sub(age).unwrap_or(now);
        all.extend(
            requests
                .iter()
                .filter(|age| **age < self.rate.window)
                .map(|age| ago(*age)),
        );
        if age < self.rate.window {
            let used = self.rate.limit.saturating_sub(remaining) as usize;
            let counted = all.iter().filter(|at| **at <= ago(age)).count();
            all.extend(std::iter::repeat_n(ago(age), used.saturating_sub(counted)));
        }
        all.sort();
        sent.extend(all);
        self.forget_expired(&mut sent, now);
    }

    /// Aligns the count with the server's `X-RateLimit-Remaining`: when the server says fewer
    /// requests remain than this limiter thinks, the difference is counted as made just now.
    pub async fn observe_remaining(&self, remaining: u32) {
        let mut sent = self.sent.lock().await;
        let now = Instant::now();
        self.forget_expired(&mut sent, now);
        let believed = (self.rate.limit as usize).saturating_sub(sent.len());
        for _ in remaining as usize..believed {
            sent.push_back(now);
        }
    }
}
