//! The limiter's window, on Tokio's paused clock (no real waiting).

use std::time::Duration;

use payments_sync::{Limiter, RateLimit};
use tokio::time::Instant;

const RATE: RateLimit = RateLimit {
    limit: 4,
    window: Duration::from_secs(10),
};

async fn send(limiter: &Limiter) -> Duration {
    let started = Instant::now();
    let ticket = limiter.acquire().await;
    limiter.answered(ticket).await;
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
    let requests = [9, 8, 2].map(Duration::from_secs);
    limiter.preload(&requests, 1, Duration::from_secs(2)).await;
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
    limiter
        .preload(&[Duration::from_secs(9)], 0, Duration::from_secs(2))
        .await;
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
    limiter.observe_remaining(0).await;
    assert_eq!(send(&limiter).await, Duration::from_secs(10));
}
