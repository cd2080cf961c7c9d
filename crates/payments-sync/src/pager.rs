//! The one paging loop: fetches a source's pages in order, with retries, rate limiting and the
//! guards against loops. Both the [`crate::Syncer`] and the stream API use it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use payments_model::{Cursor, Page, Payment, PaymentSource, SourceError};

use crate::limiter::Limiter;
use crate::{Event, Events, SyncError};

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

impl RetryPolicy {
    /// The backoff before retry number `attempt` (0-based): capped exponential, with the
    /// "equal jitter" of half its length so that parallel clients spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let full = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max_delay);
        full / 2 + full.mul_f64(fastrand::f64() / 2.0)
    }
}

/// How a [`Pager`] behaves.
#[derive(Clone, Default)]
pub struct PagerOptions {
    /// Retries.
    pub retry: RetryPolicy,
    /// The credential's limiter, when the provider has a rate limit.
    pub limiter: Option<Arc<Limiter>>,
    /// The most pages one run may read (a guard against a source that never ends).
    pub max_pages: Option<u64>,
    /// Progress events.
    pub events: Events,
}

/// Fetches the pages of one source in order, from a starting cursor.
///
/// Retries what is retryable (429 waits as told; 5xx, timeouts, resets and cut bodies back off
/// exponentially), within [`RetryPolicy`]'s budget; refuses to fetch the same cursor twice in a
/// run; waits for the rate limiter before every request.
pub struct Pager<'s> {
    source: &'s dyn PaymentSource,
    next: Option<Cursor>,
    started: bool,
    seen: HashSet<String>,
    options: PagerOptions,
    requests: u64,
    pages: u64,
    waited: Duration,
}

impl<'s> Pager<'s> {
    /// A pager over `source` from `start` (`None`: the first page).
    pub fn new(
        source: &'s dyn PaymentSource,
        start: Option<Cursor>,
        options: PagerOptions,
    ) -> Pager<'s> {
        Pager {
            source,
            next: start,
            started: false,
            seen: HashSet::new(),
            options,
            requests: 0,
            pages: 0,
            waited: Duration::ZERO,
        }
    }

    /// Where the next page will be fetched; `None` before the first page or after the last.
    pub fn cursor(&self) -> Option<&Cursor> {
        self.next.as_ref()
    }

    /// Changes where the next page is fetched: a policy may drop groups or stop (`None`).
    pub fn set_next(&mut self, next: Option<Cursor>) {
        self.next = next;
    }

    /// Requests made so far, retries included.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Time spent waiting for the limiter and for retries.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// The next page, or `None` when the walk is over. After an error, [`Pager::cursor`] still
    /// says where to resume.
    pub async fn next_page(&mut self) -> Option<Result<Page, SyncError>> {
        if self.started && self.next.is_none() {
            return None;
        }
        self.started = true;
        Some(self.fetch().await)
    }

    async fn fetch(&mut self) -> Result<Page, SyncError> {
        let name = self.source.name().to_owned();
        let at = self.next.clone();
        let key = at.as_ref().map_or_else(String::new, |c| {
            serde_json::to_string(c).unwrap_or_default()
        });
        if !self.seen.insert(key) {
            return Err(SyncError::RepeatingCursor {
                source_name: name,
                at,
            });
        }
        if let Some(max) = self.options.max_pages.filter(|max| self.pages >= *max) {
            return Err(SyncError::PageBudget {
                source_name: name,
                pages: max,
                at,
            });
        }
        let mut attempt = 0;
        loop {
            let ticket = match &self.options.limiter {
                Some(limiter) => Some(limiter.acquire().await),
                None => None,
            };
            if let Some(waited) = ticket.as_ref().map(|t| t.waited)
                && waited >= Duration::from_millis(50)
            {
                self.waited += waited;
                self.options.events.emit(Event::RateLimitWait {
                    source_name: name.clone(),
                    waited,
                });
            }
            self.requests += 1;
            let answer = self.source.page(at.as_ref()).await;
            if let (Some(limiter), Some(ticket)) = (&self.options.limiter, ticket) {
                limiter.answered(ticket).await;
            }
            let error = match answer {
                Ok(page) => {
                    if let (Some(limiter), Some(remaining)) =
                        (&self.options.limiter, page.rate_limit.remaining)
                    {
                        limiter.observe_remaining(remaining).await;
                    }
                    self.pages += 1;
                    self.next = page.next.clone();
                    return Ok(page);
                }
                Err(error) => error,
            };
            if let (Some(limiter), SourceError::RateLimited { rate_limit, .. }) =
                (&self.options.limiter, &error)
            {
                limiter
                    .observe_remaining(rate_limit.remaining.unwrap_or(0))
                    .await;
            }
            attempt += 1;
            if !error.is_retryable() {
                return Err(SyncError::Source {
                    source_name: name,
                    at,
                    error,
                });
            }
            let wait = error
                .retry_after()
                .unwrap_or_else(|| self.options.retry.backoff(attempt - 1));
            if attempt >= self.options.retry.max_attempts
                || self.waited + wait > self.options.retry.max_total_wait
            {
                return Err(SyncError::RetriesExhausted {
                    source_name: name,
                    at,
                    attempts: attempt,
                    last: error,
                });
            }
            tracing::warn!(source = %name, attempt, wait_ms = wait.as_millis() as u64, error = %error, "retrying");
            self.options.events.emit(Event::Retry {
                source_name: name.clone(),
                attempt,
                wait,
                error: error.to_string(),
            });
            tokio::time::sleep(wait).await;
            self.waited += wait;
        }
    }

    /// The pages as a stream. It ends after the last page, or after the first error (the
    /// error carries the cursor to resume from).
    pub fn into_stream(self) -> impl Stream<Item = Result<Page, SyncError>> + 's {
        futures::stream::unfold((self, false), |(mut pager, failed)| async move {
            if failed {
                return None;
            }
            let item = pager.next_page().await?;
            let failed = item.is_err();
            Some((item, (pager, failed)))
        })
    }
}

/// Every payment of `source`, as a stream, for library users who keep their own storage.
///
/// Records that cannot be mapped are skipped here (a [`crate::Syncer`] quarantines them); the
/// stream ends after the last page or the first error, which names the cursor to resume from.
pub fn payments<'s>(
    source: &'s dyn PaymentSource,
    start: Option<Cursor>,
    options: PagerOptions,
) -> impl Stream<Item = Result<Payment, SyncError>> + 's {
    use futures::StreamExt;
    Pager::new(source, start, options)
        .into_stream()
        .flat_map(|page| {
            let items: Vec<Result<Payment, SyncError>> = match page {
                Ok(page) => page.payments.into_iter().map(Ok).collect(),
                Err(error) => vec![Err(error)],
            };
            futures::stream::iter(items)
        })
}
