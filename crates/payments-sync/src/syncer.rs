//! Drives sources into a store: one atomic commit per page, incremental by default.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use payments_model::{Group, ListingOrder, Page, PaymentSource, PaymentStatus};

use crate::limiter::{Limiter, RateLimit};
use crate::pager::{Pager, PagerOptions, RetryPolicy};
use crate::store::{
    Checkpoint, CommitCounts, GroupState, PageCommit, RateLimitSeen, RunKind, RunRecord,
    SourceState, Store,
};
use crate::{Event, Events, SyncError};

/// How a run decides what to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncOptions {
    /// Re-read everything, whatever the checkpoints say.
    pub full: bool,
    /// The short lookback of incremental runs (a day by default).
    pub lookback: Duration,
    /// Unsettled payments created within this window (7 days) are re-read by every run, even
    /// past the lookback; older ones are left to the daily deep sweep, so that one abandoned
    /// `open` payment cannot make every run re-read months of pages.
    pub unsettled_window: Duration,
    /// A deep sweep runs when the last full run or deep sweep is older than this (a day).
    pub deep_sweep_after: Duration,
    /// How far back a deep sweep reads (90 days), to catch late refunds and chargebacks.
    pub deep_sweep_window: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// The most pages one run of one source may read.
    pub max_pages: Option<u64>,
}

impl Default for SyncOptions {
    fn default() -> SyncOptions {
        SyncOptions {
            full: false,
            lookback: Duration::from_secs(24 * 3600),
            unsettled_window: Duration::from_secs(7 * 24 * 3600),
            deep_sweep_after: Duration::from_secs(24 * 3600),
            deep_sweep_window: Duration::from_secs(90 * 24 * 3600),
            retry: RetryPolicy::default(),
            max_pages: None,
        }
    }
}

impl SyncOptions {
    /// The defaults, but re-reading everything (`payments sync --full`).
    pub fn full() -> SyncOptions {
        SyncOptions {
            full: true,
            ..SyncOptions::default()
        }
    }
}

/// What one run of one source did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The source's name.
    pub source_name: String,
    /// The kind of run (`None` only for a run that failed before it started).
    pub run: Option<RunKind>,
    /// Whether it resumed an interrupted run.
    pub resumed: bool,
    /// Pages committed.
    pub pages: u64,
    /// Requests made, retries included.
    pub requests: u64,
    /// New, changed and unchanged payments, and backward status moves.
    pub counts: CommitCounts,
    /// Records quarantined.
    pub quarantined: u64,
    /// Time spent waiting for the rate limiter and retries.
    pub waited: Duration,
}

struct SourceSetup {
    source: Arc<dyn PaymentSource>,
    limiter: Option<Arc<Limiter>>,
}

/// Drives one or more sources into a [`Store`]: sources concurrently, the pages of each source
/// in order, each page committed atomically with the source's new checkpoint.
pub struct Syncer<S: Store> {
    store: Arc<S>,
    sources: Vec<SourceSetup>,
    options: SyncOptions,
    events: Events,
}

impl<S: Store> Syncer<S> {
    /// A syncer writing into `store`.
    pub fn new(store: Arc<S>, options: SyncOptions) -> Syncer<S> {
        Syncer {
            store,
            sources: Vec::new(),
            options,
            events: Events::default(),
        }
    }

    /// Adds a source; `rate_limit` paces its requests (MKP: [`RateLimit::MKP`]).
    pub fn add_source(
        &mut self,
        source: Arc<dyn PaymentSource>,
        rate_limit: Option<RateLimit>,
    ) -> &mut Self {
        self.sources.push(SourceSetup {
            source,
            limiter: rate_limit.map(|rate| Arc::new(Limiter::new(rate))),
        });
        self
    }

    /// Sends progress events to `events`.
    pub fn with_events(&mut self, events: Events) -> &mut Self {
        self.events = events;
        self
    }

    /// Runs every source once, concurrently; one result per source, in the order added.
    pub async fn run(&self) -> Vec<Result<Summary, SyncError>> {
        futures::future::join_all(self.sources.iter().map(|setup| self.run_source(setup))).await
    }

    /// Runs one source and records the run (its outcome, even a failure) in the store.
    async fn run_source(&self, setup: &SourceSetup) -> Result<Summary, SyncError> {
        use tracing::Instrument;
        let name = setup.source.name().to_owned();
        let span = tracing::info_span!("sync", source = %name);
        let started_at = Utc::now();
        let mut summary = Summary {
            source_name: name.clone(),
            ..Summary::default()
        };
        let result = self
            .run_source_in_span(setup, &mut summary)
            .instrument(span)
            .await;
        let record = RunRecord {
            started_at,
            finished_at: Utc::now(),
            summary: summary.clone(),
            error: result.as_ref().err().map(ToString::to_string),
        };
        if let Err(error) = self.store.record_run(&record).await {
            tracing::warn!(source = %name, %error, "the run could not be recorded");
        }
        result.map(|()| summary)
    }

    async fn run_source_in_span(
        &self,
        setup: &SourceSetup,
        summary: &mut Summary,
    ) -> Result<(), SyncError> {
        let source = setup.source.as_ref();
        let name = source.name().to_owned();
        let now = Utc::now();
        let unsettled_since = now - to_chrono(self.options.unsettled_window);
        let state = self
            .store
            .source_state(&name, unsettled_since)
            .await
            .map_err(SyncError::Store)?;
        let (mut checkpoint, resumed) = self.plan(&state, now);
        summary.run = Some(checkpoint.run);
        summary.resumed = resumed;
        tracing::info!(run = checkpoint.run.as_str(), resumed, "start");
        let lookback_start =
            checkpoint.run_started_at - chrono::Duration::seconds(checkpoint.lookback_secs as i64);
        let deep_start = checkpoint.run_started_at - to_chrono(self.options.deep_sweep_window);
        let policy = Policy {
            run: checkpoint.run,
            order: source.order(),
            horizon: checkpoint.horizon,
            lookback_start,
            unsettled_since,
            deep_start,
            known: &state.groups,
        };
        let options = PagerOptions {
            retry: self.options.retry,
            limiter: setup.limiter.clone(),
            max_pages: self.options.max_pages,
            events: self.events.clone(),
        };
        if let (Some(limiter), Some(seen)) = (&setup.limiter, &checkpoint.rate_limit_seen) {
            let ago = |at: DateTime<Utc>| (now - at).to_std().unwrap_or_default();
            let requests: Vec<Duration> = seen.requests.iter().map(|at| ago(*at)).collect();
            limiter
                .preload(&requests, seen.remaining, ago(seen.at))
                .await;
        }
        let mut pager = Pager::new(source, checkpoint.cursor.clone(), options);
        let mut unknown_words = HashSet::new();
        // The next page is fetched while this one commits (its cursor is known before the
        // commit), so a page's store time hides behind the next request's latency. A crash
        // loses at most the page in flight, as before: only committed pages move the checkpoint.
        let mut fetched = pager.next_page().await;
        while let Some(page) = fetched {
            let page = match page {
                Ok(page) => page,
                Err(error) => {
                    summary.requests = pager.requests();
                    summary.waited = pager.waited();
                    return Err(error);
                }
            };
            warn_unknown_words(&name, &page, &mut unknown_words);
            let next = policy.next_cursor(&page);
            pager.set_next(next.clone());
            let observed_at = Utc::now();
            checkpoint.cursor = next;
            if let Some(remaining) = page.rate_limit.remaining {
                let requests = match &setup.limiter {
                    Some(limiter) => limiter
                        .recent()
                        .await
                        .into_iter()
                        .map(|age| observed_at - to_chrono(age))
                        .collect(),
                    None => Vec::new(),
                };
                checkpoint.rate_limit_seen = Some(RateLimitSeen {
                    remaining,
                    at: observed_at,
                    requests,
                });
            }
            if checkpoint.cursor.is_none() {
                checkpoint.last_completed_at = Some(observed_at);
                if checkpoint.run != RunKind::Incremental {
                    checkpoint.last_deep_at = Some(observed_at);
                }
            }
            // The fetch goes first so its request is on its way before the commit's work.
            let (following, committed) = futures::join!(
                pager.next_page(),
                self.store.commit(PageCommit {
                    source: &name,
                    payments: &page.payments,
                    rejected: &page.rejected,
                    groups: &page.groups,
                    checkpoint: &checkpoint,
                    observed_at,
                })
            );
            fetched = following;
            let committed = committed.map_err(SyncError::Store);
            summary.requests = pager.requests();
            summary.waited = pager.waited();
            let counts = committed?;
            summary.pages += 1;
            summary.counts.new += counts.new;
            summary.counts.changed += counts.changed;
            summary.counts.unchanged += counts.unchanged;
            summary.counts.backwards += counts.backwards;
            summary.quarantined += page.rejected.len() as u64;
            self.events.emit(Event::PageCommitted {
                source_name: name.clone(),
                payments: page.payments.len() as u64,
                counts,
            });
        }
        summary.requests = pager.requests();
        summary.waited = pager.waited();
        tracing::info!(
            pages = summary.pages,
            requests = summary.requests,
            new = summary.counts.new,
            changed = summary.counts.changed,
            "done"
        );
        Ok(())
    }

    /// Resumes an interrupted run, or plans a new one: full the first time (or when asked), a
    /// deep sweep when the last one is older than `deep_sweep_after`, incremental otherwise.
    fn plan(&self, state: &SourceState, now: DateTime<Utc>) -> (Checkpoint, bool) {
        if let Some(checkpoint) = state
            .checkpoint
            .as_ref()
            .filter(|c| c.in_progress() && !self.options.full)
        {
            return (checkpoint.clone(), true);
        }
        let previous = state.checkpoint.as_ref();
        let completed = previous.and_then(|c| c.last_completed_at);
        let last_deep = previous.and_then(|c| c.last_deep_at);
        let run = if self.options.full || completed.is_none() {
            RunKind::Full
        } else if last_deep.is_none_or(|at| now - at >= to_chrono(self.options.deep_sweep_after)) {
            RunKind::DeepSweep
        } else {
            RunKind::Incremental
        };
        let window = match run {
            RunKind::Full => None,
            RunKind::DeepSweep => Some(self.options.deep_sweep_window),
            RunKind::Incremental => Some(self.options.lookback),
        };
        let oldest_unsettled = state.oldest_unsettled.map(|t| t.with_timezone(&Utc));
        let horizon = window.map(|w| {
            let start = now - to_chrono(w);
            oldest_unsettled.map_or(start, |t| t.min(start))
        });
        let checkpoint = Checkpoint {
            cursor: None,
            run,
            run_started_at: now,
            horizon,
            lookback_secs: self.options.lookback.as_secs(),
            last_completed_at: completed,
            last_deep_at: last_deep,
            rate_limit_seen: previous.and_then(|c| c.rate_limit_seen.clone()),
        };
        (checkpoint, false)
    }
}

fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// Logs each unknown status word once per run.
fn warn_unknown_words(source: &str, page: &Page, seen: &mut HashSet<String>) {
    for payment in &page.payments {
        if let PaymentStatus::Unknown(word) = &payment.status
            && seen.insert(word.clone())
        {
            tracing::warn!(source, word = %word, "unknown status word; stored as `unknown` with the raw word in provider_status");
        }
    }
}

/// The incremental decisions of one run.
struct Policy<'a> {
    run: RunKind,
    order: ListingOrder,
    horizon: Option<DateTime<Utc>>,
    lookback_start: DateTime<Utc>,
    unsettled_since: DateTime<Utc>,
    deep_start: DateTime<Utc>,
    known: &'a HashMap<String, GroupState>,
}

impl Policy<'_> {
    /// Where to go after `page`: the source's next cursor, minus the groups this run need not
    /// read, or nowhere once a newest-first listing is past the horizon.
    fn next_cursor(&self, page: &Page) -> Option<payments_model::Cursor> {
        let mut next = page.next.clone()?;
        if self.order == ListingOrder::NewestFirst {
            let oldest = page.payments.iter().map(|p| p.created_at).min();
            if let (Some(horizon), Some(oldest)) = (self.horizon, oldest)
                && oldest.with_timezone(&Utc) < horizon
            {
                return None;
            }
        }
        if !page.groups.is_empty() && self.run != RunKind::Full {
            next.groups.retain(|group| {
                !page.groups.iter().any(|g| g.id == group.id) || self.must_read(group)
            });
        }
        (!next.is_exhausted()).then_some(next)
    }

    /// Whether a group's payments can have changed since the last run.
    fn must_read(&self, group: &Group) -> bool {
        let Some(known) = self.known.get(&group.id) else {
            return true;
        };
        let since = |at: Option<DateTime<FixedOffset>>, start: DateTime<Utc>| {
            at.is_some_and(|t| t.with_timezone(&Utc) >= start)
        };
        group.open
            || known.status != group.status
            || since(known.newest_unsettled_at, self.unsettled_since)
            || since(known.newest_payment_at, self.lookback_start)
            || (self.run == RunKind::DeepSweep && since(known.newest_paid_at, self.deep_start))
    }
}
