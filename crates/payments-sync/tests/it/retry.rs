//! The retry decision, row by row: what is retried, after how long, and when the run gives up.

use std::time::Duration;

use payments_model::{RateLimitHeaders, SourceError, TransportKind};
use payments_sync::{RetryDecision, RetryPolicy};

const POLICY: RetryPolicy = RetryPolicy {
    base_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(2),
    max_attempts: 4,
    max_total_wait: Duration::from_secs(10),
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn server() -> SourceError {
    SourceError::Server {
        provider: "P",
        status: 503,
        retry_after: None,
        excerpt: String::new(),
    }
}

fn rate_limited(retry_after: Option<Duration>) -> SourceError {
    SourceError::RateLimited {
        provider: "P",
        retry_after,
        rate_limit: RateLimitHeaders::default(),
    }
}

#[test]
fn the_retry_decision_table() {
    let timeout = SourceError::Transport {
        provider: "P",
        kind: TransportKind::Timeout,
        message: String::new(),
    };
    let auth = SourceError::Auth {
        provider: "P",
        status: 401,
        advice: String::new(),
    };
    let invalid = SourceError::Invalid {
        provider: "P",
        status: 422,
        message: String::new(),
    };
    let refused = SourceError::Refused("a foreign next link".into());
    // (error, attempts made, already waited, jitter) → decision
    let rows: Vec<(SourceError, u32, Duration, f64, RetryDecision)> = vec![
        // Backoff: half the exponential step plus up to half again of jitter.
        (server(), 1, ms(0), 0.0, RetryDecision::Retry(ms(50))),
        (server(), 1, ms(0), 0.5, RetryDecision::Retry(ms(75))),
        (server(), 2, ms(0), 0.0, RetryDecision::Retry(ms(100))),
        (
            timeout.clone(),
            3,
            ms(0),
            0.0,
            RetryDecision::Retry(ms(200)),
        ),
        // The provider's Retry-After wins over the backoff.
        (
            rate_limited(Some(ms(1500))),
            1,
            ms(0),
            0.0,
            RetryDecision::Retry(ms(1500)),
        ),
        (
            rate_limited(None),
            1,
            ms(0),
            0.0,
            RetryDecision::Retry(ms(50)),
        ),
        // Out of attempts, or the wait would break the run's budget: give up.
        (server(), 4, ms(0), 0.0, RetryDecision::GiveUp),
        (
            rate_limited(Some(Duration::from_secs(3))),
            1,
            Duration::from_secs(8),
            0.0,
            RetryDecision::GiveUp,
        ),
        (
            rate_limited(Some(Duration::from_secs(2))),
            1,
            Duration::from_secs(8),
            0.0,
            RetryDecision::Retry(Duration::from_secs(2)),
        ),
        // What retrying cannot fix fails at once, whatever the budget.
        (auth.clone(), 1, ms(0), 0.0, RetryDecision::Fail),
        (invalid.clone(), 1, ms(0), 0.0, RetryDecision::Fail),
        (refused.clone(), 1, ms(0), 0.0, RetryDecision::Fail),
    ];
    for (error, attempts, waited, jitter, expected) in rows {
        assert_eq!(
            POLICY.decide(&error, attempts, waited, jitter),
            expected,
            "{error} after attempt {attempts}, {waited:?} waited"
        );
    }
    let patient = RetryPolicy {
        max_attempts: 20,
        max_total_wait: Duration::from_secs(60),
        ..POLICY
    };
    assert_eq!(
        patient.decide(&server(), 12, ms(0), 0.0),
        RetryDecision::Retry(ms(1000)),
        "the step is capped at max_delay (2 s), of which half is the least wait"
    );
}
