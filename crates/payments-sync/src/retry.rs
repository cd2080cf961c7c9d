//! When a failed request is tried again, and after how long: a pure decision, table-tested.

use std::time::Duration;

use payments_model::SourceError;

/// How failed requests are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first backoff; each retry doubles it, up to `max_delay`, with jitter.
    pub base_delay: Duration,
    /// The longest single backoff.
    pub max_delay: Duration,
    /// Attempts per page, the first included.
    pub max_attempts: u32,
    /// The most a run may spend waiting on retries (429 waits included).
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            max_attempts: 8,
            max_total_wait: Duration::from_secs(600),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then try again.
    Retry(Duration),
    /// Retrying could help, but the attempts or the run's wait budget are spent.
    GiveUp,
    /// Retrying cannot help (a bad key, a refused link, a response that is not the API's).
    Fail,
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (0-based): capped exponential, with the "equal
    /// jitter" of half its length so that parallel clients spread out. `jitter` is in `[0, 1)`.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let full = self
            .base_delay
            .saturating_mul(1u32 << retry.min(20))
            .min(self.max_delay);
        full / 2 + full.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }

    /// What to do after attempt number `attempts` (1-based) failed with `error`, when the run
    /// has already waited `waited` on retries: retry after what the provider asked
    /// (`Retry-After`) or after the backoff, give up when the budget would be exceeded, or
    /// fail at once when retrying cannot help.
    pub fn decide(
        &self,
        error: &SourceError,
        attempts: u32,
        waited: Duration,
        jitter: f64,
    ) -> RetryDecision {
        if !error.is_retryable() {
            return RetryDecision::Fail;
        }
        let wait = error
            .retry_after()
            .unwrap_or_else(|| self.backoff(attempts.saturating_sub(1), jitter));
        if attempts >= self.max_attempts || waited + wait > self.max_total_wait {
            RetryDecision::GiveUp
        } else {
            RetryDecision::Retry(wait)
        }
    }
}
