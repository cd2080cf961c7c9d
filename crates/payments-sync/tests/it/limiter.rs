//! The limiter's window, on Tokio's paused clock (no real waiting).

use std::time::Duration;

use chrono::{DateTime, Utc};
use payments_sync::{Limiter, LimiterSnapshot, RateLimit};
use tokio::time::Instant;

/// The wall-clock time the tests call now.
fn now() -> DateTime<Utc> {
    "2026-11-22T12:00:00Z".parse().unwrap()
}

/// `now` minus `seconds`.
fn ago(seconds: i64) -> DateTime<Utc> {
    now() - chrono::Duration::seconds(seconds)
}

const RATE: RateLimit = RateLimit {
    limit: 4,
    window: Duration::from_secs(10),
};

async fn send(limiter: &Limiter) -> Duration {
    let started = Instant::now();
    let ticket = limiter.acquire().await;
    limiter.answered(ticket);
    started.elapsed()
}

#[tokio::test(start_paused = true)]
async fn a_whole_window_may_be_spent_at_once_then_each_slot_frees_a_window_later() {
    let limiter = Limiter::new(RATE);
    for _ in 0..4 {
        assert_eq!(send(&limiter).await, Duration::ZERO);
    }
    assert_eq!(send(&limiter).await, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_run_preloaded_with_the_last_runs_requests_frees_each_slot_when_it_really_frees() {
    let limiter = Limiter::new(RATE);
    // The last run's requests were answered 9, 8 and 2 seconds ago; the server said 1 remained
    // when the last of them was answered.
    let snapshot = LimiterSnapshot {
        remaining: 1,
        at: ago(2),
        requests: vec![ago(9), ago(8), ago(2)],
    };
    limiter.restore(&snapshot, now());
    assert_eq!(
        send(&limiter).await,
        Duration::ZERO,
        "the one remaining slot"
    );
    assert_eq!(
        send(&limiter).await,
        Duration::from_secs(1),
        "the 9 s old request leaves"
    );
    assert_eq!(
        send(&limiter).await,
        Duration::from_secs(1),
        "then the 8 s old one"
    );
}

#[tokio::test(start_paused = true)]
async fn requests_the_server_counted_but_this_client_did_not_make_are_counted_at_the_observation() {
    let limiter = Limiter::new(RATE);
    // Another client of the key used 3 slots: the server said 0 remained 2 seconds ago, and
    // this client's only request was answered 9 seconds ago.
    let snapshot = LimiterSnapshot {
        remaining: 0,
        at: ago(2),
        requests: vec![ago(9)],
    };
    limiter.restore(&snapshot, now());
    let start = Instant::now();
    assert_eq!(
        send(&limiter).await,
        Duration::from_secs(1),
        "this client's own request leaves"
    );
    send(&limiter).await;
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(8),
        "the others leave a window after the observation"
    );
}

#[tokio::test(start_paused = true)]
async fn the_servers_remaining_count_aligns_the_window_down() {
    let limiter = Limiter::new(RATE);
    assert_eq!(send(&limiter).await, Duration::ZERO);
    limiter.observe_remaining(0);
    assert_eq!(send(&limiter).await, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_restored_by_the_next_run_keeps_the_window_where_it_was() {
    let first = Limiter::new(RATE);
    for _ in 0..3 {
        send(&first).await;
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    first.observe_remaining(1);
    let snapshot = first
        .snapshot(now())
        .expect("the server said what remained");
    assert_eq!(snapshot.requests, vec![ago(3), ago(2), ago(1)]);
    assert_eq!((snapshot.remaining, snapshot.at), (1, now()));

    let next = Limiter::new(RATE);
    next.restore(&snapshot, now());
    assert_eq!(send(&next).await, Duration::ZERO, "the one remaining slot");
    assert_eq!(
        send(&next).await,
        Duration::from_secs(7),
        "the first run's oldest request leaves the window 10 s after it was answered"
    );
}
