//! A proactive rolling-window rate limiter per credential.
//!
//! It allows `limit` requests in any `window` (like MKP's 60 per rolling minute), so a run may
//! spend a whole window's allowance at once and then one request per `window / limit`. After
//! each response it trusts the server's `X-RateLimit-Remaining` over its own count, so a run that
//! starts right after another one (another process, a cron job) does not trip a 429.
//!
//! The provider declares the rate (`PaymentSource::rate_limit`); a [`LimiterSnapshot`] carries
//! the window from one run to the next.
//!
//! A hand-written window rather than a GCRA crate such as `governor`: GCRA cannot be told "the
//! server says only N remain", which is what keeps back-to-back runs clear of 429s.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use payments_model::RateLimit;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// One request counted by [`Limiter::acquire`], to hand back with [`Limiter::answered`].
#[derive(Debug)]
#[must_use = "hand the ticket back with `Limiter::answered` once the answer arrives"]
pub struct Ticket {
    stamp: Instant,
    /// How long the limiter held the request back.
    pub waited: Duration,
}

/// A limiter's state in wall-clock time, so that the next run (another process, a cron job
/// right after) starts where this one left off: what the server last said remained, and when
/// this client's requests still in the window were answered. Checkpoints carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimiterSnapshot {
    /// The server's last `X-RateLimit-Remaining`.
    pub remaining: u32,
    /// When the server said so.
    pub at: DateTime<Utc>,
    /// When the requests still in the window were answered, oldest first, so the next run
    /// frees each slot when it really frees rather than all of them a window after `at`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<DateTime<Utc>>,
}

/// A rolling-window limiter shared by every request made with one credential.
#[derive(Debug)]
pub struct Limiter {
    rate: RateLimit,
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// When each request still inside the window was (or is counted as) made, oldest first.
    sent: VecDeque<Instant>,
    /// The server's last `X-RateLimit-Remaining`, and when it said so.
    remaining: Option<(u32, Instant)>,
}

impl Limiter {
    /// A limiter allowing `rate`.
    pub fn new(rate: RateLimit) -> Limiter {
        Limiter {
            rate,
            window: Mutex::new(Window::default()),
        }
    }

    /// The rate it enforces.
    pub fn rate(&self) -> RateLimit {
        self.rate
    }

    fn window(&self) -> MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until one more request fits in the window and counts it as made now. Hand the
    /// ticket back with [`Limiter::answered`] when the answer arrives.
    pub async fn acquire(&self) -> Ticket {
        let start = Instant::now();
        loop {
            let wait = {
                let mut window = self.window();
                let now = Instant::now();
                match self.wait_in(&mut window, now) {
                    Duration::ZERO => {
                        window.sent.push_back(now);
                        return Ticket {
                            stamp: now,
                            waited: start.elapsed(),
                        };
                    }
                    wait => wait,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// How long [`Limiter::acquire`] would wait now (zero when a request fits), so that a
    /// caller can say it is waiting while it waits.
    pub fn wait_ahead(&self) -> Duration {
        self.wait_in(&mut self.window(), Instant::now())
    }

    /// Until the oldest request in a full window leaves it; zero when the window has room.
    fn wait_in(&self, window: &mut Window, now: Instant) -> Duration {
        self.forget_expired(&mut window.sent, now);
        match window.sent.front() {
            Some(oldest) if window.sent.len() >= self.rate.limit as usize => {
                self.rate.window.saturating_sub(now.duration_since(*oldest))
            }
            _ => Duration::ZERO,
        }
    }

    /// Counts the request as made when its answer arrived. The server saw it no later than
    /// that, so this window never frees a slot before the server's does (counting from the
    /// moment of sending would, by the time the request took to arrive).
    pub fn answered(&self, ticket: Ticket) {
        let mut window = self.window();
        if let Some(index) = window.sent.iter().rposition(|at| *at == ticket.stamp) {
            window.sent.remove(index);
        }
        window.sent.push_back(Instant::now());
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

    /// Aligns the count with the server's `X-RateLimit-Remaining`: when the server says fewer
    /// requests remain than this limiter thinks, the difference is counted as made just now.
    pub fn observe_remaining(&self, remaining: u32) {
        let mut window = self.window();
        let now = Instant::now();
        self.forget_expired(&mut window.sent, now);
        let believed = (self.rate.limit as usize).saturating_sub(window.sent.len());
        for _ in remaining as usize..believed {
            window.sent.push_back(now);
        }
        window.remaining = Some((remaining, now));
    }

    /// The state to start the next run from, in wall-clock time (`now` is the wall-clock time
    /// of this instant); `None` until the server has said what remains.
    pub fn snapshot(&self, now: DateTime<Utc>) -> Option<LimiterSnapshot> {
        let mut window = self.window();
        let instant = Instant::now();
        self.forget_expired(&mut window.sent, instant);
        let wall = |at: Instant| now - to_chrono(instant.duration_since(at));
        let (remaining, at) = window.remaining?;
        Some(LimiterSnapshot {
            remaining,
            at: wall(at),
            requests: window.sent.iter().map(|at| wall(*at)).collect(),
        })
    }

    /// Starts from a previous run's [`LimiterSnapshot`] (`now` is the wall-clock time of this
    /// instant). Whatever else the server counted (another client of the same key) is counted
    /// as made when the server said what remained.
    pub fn restore(&self, snapshot: &LimiterSnapshot, now: DateTime<Utc>) {
        let age = |at: DateTime<Utc>| (now - at).to_std().unwrap_or_default();
        let instant = Instant::now();
        let ago = |age: Duration| instant.checked_sub(age).unwrap_or(instant);
        let mut window = self.window();
        let mut all: Vec<Instant> = window.sent.drain(..).collect();
        all.extend(
            snapshot
                .requests
                .iter()
                .map(|at| age(*at))
                .filter(|age| *age < self.rate.window)
                .map(ago),
        );
        let seen = age(snapshot.at);
        if seen < self.rate.window {
            let used = self.rate.limit.saturating_sub(snapshot.remaining) as usize;
            let counted = all.iter().filter(|at| **at <= ago(seen)).count();
            all.extend(std::iter::repeat_n(ago(seen), used.saturating_sub(counted)));
        }
        all.sort();
        window.sent.extend(all);
        window.remaining = Some((snapshot.remaining, ago(seen)));
        self.forget_expired(&mut window.sent, instant);
    }
}

fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}
