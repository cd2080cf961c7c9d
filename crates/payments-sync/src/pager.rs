//! The one paging loop: fetches the page at a cursor, with retries, rate limiting and the
//! guards against loops. Both the [`crate::Syncer`] and the stream API use it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::Stream;
use futures::future::BoxFuture;
use payments_model::{
    BookKind, BookPage, Change, ChangePage, Cursor, OneGroup, OnePayment, Page, Payment,
    PaymentSource, RateLimitHeaders, SourceError,
};

use crate::limiter::Limiter;
use crate::retry::{RetryDecision, RetryPolicy};
use crate::{Event, Events, SyncError};

/// An answer from a source, which says what remains of the rate limit.
trait Answer {
    fn rate_limit(&self) -> &RateLimitHeaders;
}

impl Answer for Page {
    fn rate_limit(&self) -> &RateLimitHeaders {
        &self.rate_limit
    }
}

impl Answer for ChangePage {
    fn rate_limit(&self) -> &RateLimitHeaders {
        &self.rate_limit
    }
}

impl Answer for OnePayment {
    fn rate_limit(&self) -> &RateLimitHeaders {
        &self.rate_limit
    }
}

impl Answer for BookPage {
    fn rate_limit(&self) -> &RateLimitHeaders {
        &self.rate_limit
    }
}

impl Answer for OneGroup {
    fn rate_limit(&self) -> &RateLimitHeaders {
        &self.rate_limit
    }
}

/// How a [`Pager`] behaves.
#[derive(Clone, Default)]
pub struct PagerOptions {
    /// Retries.
    pub retry: RetryPolicy,
    /// The credential's limiter; `None` paces requests by the source's declared
    /// [`PaymentSource::rate_limit`] (if it has one) with a limiter of the pager's own.
    pub limiter: Option<Arc<Limiter>>,
    /// The most pages one run may read (a guard against a source that never ends).
    pub max_pages: Option<u64>,
    /// Progress events.
    pub events: Events,
}

/// Fetches pages of one source at the cursors it is given.
///
/// Retries what is retryable (429 waits as told; 5xx, timeouts, resets and cut bodies back off
/// exponentially), as [`RetryPolicy::decide`] says; refuses to fetch the same cursor twice;
/// waits for the rate limiter before every request.
pub struct Pager<'s> {
    source: &'s dyn PaymentSource,
    limiter: Option<Arc<Limiter>>,
    seen: HashSet<String>,
    options: PagerOptions,
    requests: u64,
    pages: u64,
    waited: Duration,
    sent_at: Option<DateTime<Utc>>,
}

impl<'s> Pager<'s> {
    /// A pager over `source`.
    pub fn new(source: &'s dyn PaymentSource, options: PagerOptions) -> Pager<'s> {
        let limiter = options
            .limiter
            .clone()
            .or_else(|| source.rate_limit().map(|rate| Arc::new(Limiter::new(rate))));
        Pager {
            source,
            limiter,
            seen: HashSet::new(),
            options,
            requests: 0,
            pages: 0,
            waited: Duration::ZERO,
            sent_at: None,
        }
    }

    /// Starts a new walk: the cursors fetched so far no longer count as repeats (a walk that
    /// restarts from the top fetches its first page again).
    pub fn new_walk(&mut self) {
        self.seen.clear();
    }

    /// Requests made so far, retries included.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Time spent waiting for the limiter and for retries.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// When the last request left (after its wait for the limiter): the state an answer shows
    /// is at least this recent, so it is the answer's ordering stamp ([`crate::Commit`]'s
    /// `observed_at`). `None` before the first request.
    pub fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.sent_at
    }

    /// Fetches the page at `at` (`None`: the first page), retrying what can be retried. A
    /// cursor already fetched by this pager is refused, and so is a page past `max_pages`.
    pub async fn fetch(&mut self, at: Option<&Cursor>) -> Result<Page, SyncError> {
        let name = self.source.name();
        let failed_at = || at.cloned();
        let key = at.map_or_else(String::new, |c| {
            serde_json::to_string(c).unwrap_or_default()
        });
        if !self.seen.insert(key) {
            return Err(SyncError::RepeatingCursor {
                source_name: name.to_owned(),
                at: failed_at(),
            });
        }
        if let Some(max) = self.options.max_pages.filter(|max| self.pages >= *max) {
            return Err(SyncError::PageBudget {
                source_name: name.to_owned(),
                pages: max,
                at: failed_at(),
            });
        }
        let page = self
            .call(at, None, |source| Box::pin(source.page(at)))
            .await?;
        self.pages += 1;
        Ok(page)
    }

    /// Fetches the page of the source's change feed at `at` (`None`: the newest changes), with
    /// the same retries, pacing and guards as [`Pager::fetch`] (a feed cursor is a walk of its
    /// own: call [`Pager::new_walk`] between walks that meet the same cursors).
    pub async fn changes(&mut self, at: Option<&Cursor>) -> Result<ChangePage, SyncError> {
        let key = format!(
            "changes:{}",
            at.map_or_else(String::new, |c| serde_json::to_string(c)
                .unwrap_or_default())
        );
        if !self.seen.insert(key) {
            return Err(SyncError::RepeatingCursor {
                source_name: self.source.name().to_owned(),
                at: at.cloned(),
            });
        }
        self.call(at, None, |source| Box::pin(source.changes(at)))
            .await
    }

    /// Fetches the page of the source's chargebacks at `at`, with the same retries and pacing.
    pub async fn chargebacks(&mut self, at: Option<&Cursor>) -> Result<ChangePage, SyncError> {
        self.call(at, None, |source| Box::pin(source.chargebacks(at)))
            .await
    }

    /// Fetches the page of the source's chargebacks at `at` like [`Pager::chargebacks`], but
    /// gives up once its retries would have waited more than `max_wait` in all.
    pub async fn chargebacks_within(
        &mut self,
        at: Option<&Cursor>,
        max_wait: Duration,
    ) -> Result<ChangePage, SyncError> {
        self.call(at, Some(max_wait), |source| {
            Box::pin(source.chargebacks(at))
        })
        .await
    }

    /// Fetches the page of the source's listing of `kind` at `at` (`None`: the newest), with
    /// the same retries, pacing and guards as [`Pager::fetch`].
    pub async fn book_page(
        &mut self,
        kind: BookKind,
        at: Option<&Cursor>,
    ) -> Result<BookPage, SyncError> {
        let key = format!(
            "{kind}:{}",
            at.map_or_else(String::new, |c| serde_json::to_string(c)
                .unwrap_or_default())
        );
        if !self.seen.insert(key) {
            return Err(SyncError::RepeatingCursor {
                source_name: self.source.name().to_owned(),
                at: at.cloned(),
            });
        }
        self.call(at, None, |source| Box::pin(source.book_page(kind, at)))
            .await
    }

    /// Fetches one payment by the provider's id, with the same retries and pacing.
    pub async fn payment(&mut self, source_id: &str) -> Result<OnePayment, SyncError> {
        self.call(None, None, |source| Box::pin(source.payment(source_id)))
            .await
    }

    /// Fetches one payment by the provider's id like [`Pager::payment`], but gives up once
    /// its retries would have waited more than `max_wait` in all (a `Retry-After` longer than
    /// that gives up at once), so that one payment cannot hold a run.
    pub async fn payment_within(
        &mut self,
        source_id: &str,
        max_wait: Duration,
    ) -> Result<OnePayment, SyncError> {
        self.call(None, Some(max_wait), |source| {
            Box::pin(source.payment(source_id))
        })
        .await
    }

    /// Fetches one group (an MKP link) by the provider's id, with the same retries and pacing,
    /// giving up once its retries would have waited more than `max_wait` in all.
    pub async fn group_within(
        &mut self,
        group_id: &str,
        max_wait: Duration,
    ) -> Result<OneGroup, SyncError> {
        self.call(None, Some(max_wait), |source| {
            Box::pin(source.group(group_id))
        })
        .await
    }

    /// Makes `request` until it answers or retrying stops, as [`RetryPolicy::decide`] says
    /// (within the run's wait budget, or `max_wait` for this request alone when given); a
    /// failure names `at`, where the walk can resume.
    async fn call<'a, T: Answer>(
        &mut self,
        at: Option<&Cursor>,
        max_wait: Option<Duration>,
        request: impl Fn(&'a dyn PaymentSource) -> BoxFuture<'a, Result<T, SourceError>>,
    ) -> Result<T, SyncError>
    where
        's: 'a,
    {
        let name = self.source.name();
        let failed_at = || at.cloned();
        let (policy, waited_before) = match max_wait {
            Some(max_wait) => (
                RetryPolicy {
                    max_total_wait: max_wait.min(self.options.retry.max_total_wait),
                    ..self.options.retry
                },
                self.waited,
            ),
            None => (self.options.retry, Duration::ZERO),
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let error = match self.attempt(&request).await {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            let waited = self.waited.saturating_sub(waited_before);
            let wait = match policy.decide(&error, attempts, waited, fastrand::f64()) {
                RetryDecision::Retry(wait) => wait,
                RetryDecision::Fail => {
                    return Err(SyncError::Source {
                        source_name: name.to_owned(),
                        at: failed_at(),
                        error,
                    });
                }
                RetryDecision::GiveUp => {
                    return Err(SyncError::RetriesExhausted {
                        source_name: name.to_owned(),
                        at: failed_at(),
                        attempts,
                        last: error,
                    });
                }
            };
            tracing::warn!(target: crate::RETRY_TARGET, source = %name, attempt = attempts, wait_ms = wait.as_millis() as u64, error = %error, "retrying");
            self.options.events.emit(Event::Retry {
                source_name: name.to_owned(),
                attempt: attempts,
                wait,
                error: error.to_string(),
            });
            tokio::time::sleep(wait).await;
            self.waited += wait;
        }
    }

    /// One request, paced by the limiter, which learns from the answer what remains.
    async fn attempt<'a, T: Answer>(
        &mut self,
        request: &impl Fn(&'a dyn PaymentSource) -> BoxFuture<'a, Result<T, SourceError>>,
    ) -> Result<T, SourceError>
    where
        's: 'a,
    {
        let source: &'a dyn PaymentSource = self.source;
        let Some(limiter) = self.limiter.clone() else {
            self.requests += 1;
            self.sent_at = Some(Utc::now());
            self.options.events.emit(Event::Request {
                source_name: self.source.name().to_owned(),
            });
            return request(source).await;
        };
        let ahead = limiter.wait_ahead();
        if ahead >= Duration::from_millis(50) {
            self.options.events.emit(Event::RateLimitWaiting {
                source_name: self.source.name().to_owned(),
                wait: ahead,
            });
        }
        let ticket = limiter.acquire().await;
        if ticket.waited >= Duration::from_millis(50) {
            self.waited += ticket.waited;
            self.options.events.emit(Event::RateLimitWait {
                source_name: self.source.name().to_owned(),
                waited: ticket.waited,
            });
        }
        self.requests += 1;
        self.sent_at = Some(Utc::now());
        self.options.events.emit(Event::Request {
            source_name: self.source.name().to_owned(),
        });
        let answer = request(source).await;
        limiter.answered(ticket);
        let remaining = match &answer {
            Ok(answer) => answer.rate_limit().remaining,
            // A 429 that says how long to wait is answered by waiting that long (the retry), not
            // by a whole window; without a wait, trust what it says remains; only a 429 that
            // says nothing at all means the window is full.
            Err(SourceError::RateLimited {
                rate_limit,
                retry_after,
                ..
            }) => match (retry_after, rate_limit.remaining) {
                (Some(_), _) => None,
                (None, Some(remaining)) => Some(remaining),
                (None, None) => Some(0),
            },
            Err(_) => None,
        };
        if let Some(remaining) = remaining {
            limiter.observe_remaining(remaining);
        }
        answer
    }
}

/// The pages of `source` from `start` (`None`: the first page), as a stream. It ends after the
/// last page, or after the first error (which carries the cursor to resume from).
pub fn pages<'s>(
    source: &'s dyn PaymentSource,
    start: Option<Cursor>,
    options: PagerOptions,
) -> impl Stream<Item = Result<Page, SyncError>> + 's {
    let pager = Pager::new(source, options);
    futures::stream::unfold((pager, Some(start)), |(mut pager, next)| async move {
        let at = next?;
        match pager.fetch(at.as_ref()).await {
            Ok(page) => {
                let next = page.next.clone().map(Some);
                Some((Ok(page), (pager, next)))
            }
            Err(error) => Some((Err(error), (pager, None))),
        }
    })
}

/// The changes of `source`'s change feed from `start` (`None`: the newest), newest first, as a
/// stream, for library users who keep their own storage (stop reading at the last change you
/// applied). Entries that cannot be read are skipped; the stream ends after the feed's last
/// page or the first error, which names the cursor to resume from. A source without a feed
/// gives an empty stream.
pub fn changes<'s>(
    source: &'s dyn PaymentSource,
    start: Option<Cursor>,
    options: PagerOptions,
) -> impl Stream<Item = Result<Change, SyncError>> + 's {
    use futures::StreamExt;
    let pager = Pager::new(source, options);
    futures::stream::unfold((pager, Some(start)), |(mut pager, next)| async move {
        let at = next?;
        match pager.changes(at.as_ref()).await {
            Ok(page) => {
                let next = page.next.clone().map(Some);
                let items: Vec<Result<Change, SyncError>> =
                    page.changes.into_iter().map(Ok).collect();
                Some((items, (pager, next)))
            }
            Err(error) => Some((vec![Err(error)], (pager, None))),
        }
    })
    .flat_map(futures::stream::iter)
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
    pages(source, start, options).flat_map(|page| {
        let items: Vec<Result<Payment, SyncError>> = match page {
            Ok(page) => page.payments.into_iter().map(Ok).collect(),
            Err(error) => vec![Err(error)],
        };
        futures::stream::iter(items)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use payments_model::ListingOrder;

    use super::*;
    use crate::test_data::{listing, page, payment};

    /// A source that lists literal pages, each at its cursor's `listing` (`None`: the first).
    struct Literal(HashMap<Option<String>, Page>);

    #[async_trait::async_trait]
    impl PaymentSource for Literal {
        fn name(&self) -> &str {
            "literal pages"
        }

        fn order(&self) -> ListingOrder {
            ListingOrder::NewestFirst
        }

        async fn page(&self, cursor: Option<&Cursor>) -> Result<Page, SourceError> {
            let at = cursor.and_then(|c| c.listing.clone());
            Ok(self.0.get(&at).cloned().unwrap_or_default())
        }
    }

    /// Three pages: the first, then `p2`, then `p3`.
    fn three_pages() -> Literal {
        Literal(HashMap::from([
            (
                None,
                page(
                    vec![payment("P3", "2026-12-02T11:00:00Z")],
                    Some(listing("p2")),
                ),
            ),
            (
                Some("p2".into()),
                page(
                    vec![payment("P2", "2026-12-02T10:00:00Z")],
                    Some(listing("p3")),
                ),
            ),
            (
                Some("p3".into()),
                page(vec![payment("P1", "2026-12-02T09:00:00Z")], None),
            ),
        ]))
    }

    #[tokio::test]
    async fn a_cursor_fetched_twice_in_a_walk_is_refused_until_a_new_walk() {
        let source = three_pages();
        let mut pager = Pager::new(&source, PagerOptions::default());
        pager.fetch(None).await.unwrap();
        pager.fetch(Some(&listing("p2"))).await.unwrap();
        match pager.fetch(Some(&listing("p2"))).await {
            Err(SyncError::RepeatingCursor { at, .. }) => assert_eq!(at, Some(listing("p2"))),
            other => panic!("a repeated cursor was fetched: {other:?}"),
        }
        assert!(
            matches!(
                pager.fetch(None).await,
                Err(SyncError::RepeatingCursor { at: None, .. })
            ),
            "the first page repeats too"
        );
        assert_eq!(pager.requests(), 2, "a repeat sends nothing");
        pager.new_walk();
        let again = pager.fetch(Some(&listing("p2"))).await.unwrap();
        assert_eq!(again.payments[0].source_id, "P2");
    }

    #[tokio::test]
    async fn the_page_budget_stops_a_run_at_its_limit_across_walks() {
        let source = three_pages();
        let options = PagerOptions {
            max_pages: Some(2),
            ..PagerOptions::default()
        };
        let mut pager = Pager::new(&source, options);
        pager.fetch(None).await.unwrap();
        pager.new_walk();
        pager.fetch(Some(&listing("p2"))).await.unwrap();
        match pager.fetch(Some(&listing("p3"))).await {
            Err(SyncError::PageBudget { pages, at, .. }) => {
                assert_eq!((pages, at), (2, Some(listing("p3"))));
            }
            other => panic!("a page past the budget was fetched: {other:?}"),
        }
        assert_eq!(pager.requests(), 2);
    }
}
