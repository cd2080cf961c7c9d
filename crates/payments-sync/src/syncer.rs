//! Drives sources into a store: one atomic commit per page, incremental by default.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use payments_model::{Cursor, ListingOrder, Page, PaymentSource, RateLimit, SourceError};
use tokio::time::Instant;

use crate::limiter::Limiter;
use crate::pager::{Pager, PagerOptions};
use crate::retry::RetryPolicy;
use crate::run::{Prepared, SourceRun, before, unsettled_words};
use crate::store::{CommitCounts, RunRecord, Store, StoreError, Summary};
use crate::{Event, Events, StopSignal, SyncError};

/// How a run decides what to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncOptions {
    /// Re-read everything, whatever the checkpoints say.
    pub full: bool,
    /// The short lookback of incremental runs (a day by default).
    pub lookback: Duration,
    /// Unsettled payments created within this window (7 days) are re-read by every run, even
    /// past the lookback; older ones are left to re-verification, so that one abandoned `open`
    /// payment cannot make every run re-read months of pages.
    pub unsettled_window: Duration,
    /// Continuous re-verification: what every incremental run reads beyond what can have
    /// changed, so that every payment ever seen is read again within a bounded time, smoothly,
    /// without a daily spike. For a newest-first source (PayPro) it is pages of a walk over the
    /// whole listing that resumes where the last run left it; for a source of groups (MKP) it
    /// is the groups verified longest ago, as many as fit (each costs the pages its last read
    /// took; one group is read even when it alone costs more). 0 turns it off.
    pub reverify_budget: u32,
    /// Retries.
    pub retry: RetryPolicy,
    /// The most pages one run of one source may read.
    pub max_pages: Option<u64>,
    /// The longest one run may take: past it, the run stops at the next page boundary with its
    /// checkpoint ([`SyncError::OutOfTime`]), so a scheduled run never overlaps the next one.
    pub max_duration: Option<Duration>,
}

/// The default [`SyncOptions::reverify_budget`]: 10 requests a run. From cron every five
/// minutes that re-reads 2,880 MKP links or 288,000 PayPro payments a day, and keeps an
/// incremental MKP run of a thousand links (67 pages of links) within MKP's 60 a minute plus
/// one window's wait.
pub const DEFAULT_REVERIFY_BUDGET: u32 = 10;

impl Default for SyncOptions {
    fn default() -> SyncOptions {
        SyncOptions {
            full: false,
            lookback: Duration::from_secs(24 * 3600),
            unsettled_window: Duration::from_secs(7 * 24 * 3600),
            reverify_budget: DEFAULT_REVERIFY_BUDGET,
            retry: RetryPolicy::default(),
            max_pages: None,
            max_duration: None,
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

/// What a source runs with: the source, and the limiter pacing its credential.
#[derive(Clone)]
struct SourceSetup {
    source: Arc<dyn PaymentSource>,
    rate_limit: Option<RateLimit>,
}

/// Drives one or more sources into a [`Store`]: each source in a task of its own, the pages of
/// each source in order, each page committed atomically with the source's new checkpoint.
pub struct Syncer<S: Store> {
    store: Arc<S>,
    sources: Vec<SourceSetup>,
    options: SyncOptions,
    events: Events,
    stop: StopSignal,
}

impl<S: Store> Syncer<S> {
    /// A syncer writing into `store`.
    pub fn new(store: Arc<S>, options: SyncOptions) -> Syncer<S> {
        Syncer {
            store,
            sources: Vec::new(),
            options,
            events: Events::default(),
            stop: StopSignal::new(),
        }
    }

    /// Stops the runs at the next page boundary once `stop` is raised (on SIGTERM, say).
    pub fn with_stop(&mut self, stop: StopSignal) -> &mut Self {
        self.stop = stop;
        self
    }

    /// Adds a source, paced by the rate limit it declares ([`PaymentSource::rate_limit`]).
    pub fn add_source(&mut self, source: Arc<dyn PaymentSource>) -> &mut Self {
        let rate_limit = source.rate_limit();
        self.add_source_with_rate_limit(source, rate_limit)
    }

    /// Adds a source paced by `rate_limit` instead of the limit it declares (a key with
    /// another contract, a test server); `None` sends its requests unpaced.
    pub fn add_source_with_rate_limit(
        &mut self,
        source: Arc<dyn PaymentSource>,
        rate_limit: Option<RateLimit>,
    ) -> &mut Self {
        self.sources.push(SourceSetup { source, rate_limit });
        self
    }

    /// Sends progress events to `events`.
    pub fn with_events(&mut self, events: Events) -> &mut Self {
        self.events = events;
        self
    }

    /// Runs every source once, each in a task of its own so that one source's paging or
    /// commits never hold up another's; one result per source, in the order added.
    pub async fn run(&self) -> Vec<Result<Summary, SyncError>> {
        let tasks: Vec<_> = self
            .sources
            .iter()
            .map(|setup| {
                let run = SourceTask {
                    store: self.store.clone(),
                    setup: setup.clone(),
                    options: self.options.clone(),
                    events: self.events.clone(),
                    stop: self.stop.clone(),
                    deadline: self.options.max_duration.map(|d| Instant::now() + d),
                };
                tokio::spawn(run.run())
            })
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for task in futures::future::join_all(tasks).await {
            match task {
                Ok(result) => results.push(result),
                Err(error) => std::panic::resume_unwind(error.into_panic()),
            }
        }
        results
    }
}

/// One source's run, owned by its task.
struct SourceTask<S: Store> {
    store: Arc<S>,
    setup: SourceSetup,
    options: SyncOptions,
    events: Events,
    stop: StopSignal,
    deadline: Option<Instant>,
}

impl<S: Store> SourceTask<S> {
    /// Runs the source and records the run (its outcome, even a failure) in the store.
    async fn run(self) -> Result<Summary, SyncError> {
        use tracing::Instrument;
        let name = self.setup.source.name().to_owned();
        let span = tracing::info_span!("sync", source = %name);
        let started_at = Utc::now();
        let (summary, result) = self.sync().instrument(span).await;
        let record = RunRecord {
            started_at,
            finished_at: Utc::now(),
            summary: summary.clone(),
            error: result.as_ref().err().map(ToString::to_string),
        };
        if let Err(error) = self.store.record_run(record).await {
            tracing::warn!(source = %name, %error, "the run could not be recorded");
        }
        result.map(|()| summary)
    }

    /// Plans the run, then pages and commits until the walk is over. The next page is fetched
    /// while this one commits (its cursor is known before the commit), so a page's store time
    /// hides behind the next request's latency; a crash still loses at most the page in
    /// flight, as only committed pages move the checkpoint.
    async fn sync(&self) -> (Summary, Result<(), SyncError>) {
        let source = self.setup.source.as_ref();
        let name = source.name();
        let mut summary = Summary {
            source_name: name.to_owned(),
            ..Summary::default()
        };
        let mut run = match self.plan().await {
            Ok(run) => run,
            Err(error) => return (summary, Err(error)),
        };
        tracing::info!(run = ?run.summary().run, resumed = run.summary().resumed, "start");
        let limiter = self
            .setup
            .rate_limit
            .map(|rate| Arc::new(Limiter::new(rate)));
        if let (Some(limiter), Some(snapshot)) = (&limiter, run.limiter_snapshot()) {
            limiter.restore(snapshot, Utc::now());
        }
        let mut pager = Pager::new(
            source,
            PagerOptions {
                retry: self.options.retry,
                limiter: limiter.clone(),
                max_pages: self.options.max_pages,
                events: self.events.clone(),
            },
        );
        let mut restarted = false;
        let mut fetched = self.fetch(&mut pager, run.cursor().cloned()).await;
        let result = loop {
            let page = match fetched {
                Ok(page) => page,
                Err(error) if !restarted && refuses_resume_point(&error) => {
                    // An expired cursor or a vanished page: every later run would fail here
                    // too, so this walk starts again from the top (once per run).
                    tracing::warn!(%error, "the provider refused the resume point; restarting this walk from the first page");
                    restarted = true;
                    run.restart();
                    pager.new_walk();
                    fetched = self.fetch(&mut pager, None).await;
                    continue;
                }
                Err(error @ SyncError::RepeatingCursor { .. }) => {
                    // Resuming at this cursor would meet the same loop on every later run: what
                    // was read is kept, and the next run starts this walk afresh.
                    tracing::warn!(%error, "the walk ends here; the next run starts it from the first page");
                    run.restart();
                    if let Err(store) = self.store.commit(run.checkpoint_only(Utc::now())).await {
                        tracing::warn!(%store, "the checkpoint could not be reset");
                    }
                    break Err(error);
                }
                Err(error) => break Err(error),
            };
            let observed_at = Utc::now();
            let snapshot = limiter.as_ref().and_then(|l| l.snapshot(observed_at));
            let prepared = run.advance(page, snapshot, observed_at);
            let payments = prepared.payments as u64;
            let next = run.cursor().cloned();
            let finished = run.is_finished();
            if run.take_new_walk() {
                pager.new_walk();
            }
            // The fetch goes first so its request is on its way before the commit's work.
            let (following, committed) = futures::join!(
                async {
                    match finished {
                        true => None,
                        false => Some(self.fetch(&mut pager, next).await),
                    }
                },
                self.commit(prepared)
            );
            run.paged(pager.requests(), pager.waited());
            let counts = match committed {
                Ok(counts) => counts,
                Err(error) => break Err(SyncError::Store(error)),
            };
            run.committed(counts);
            self.events.emit(Event::PageCommitted {
                source_name: name.to_owned(),
                payments,
                counts,
            });
            match following {
                Some(page) => fetched = page,
                None => break Ok(()),
            }
        };
        run.paged(pager.requests(), pager.waited());
        summary = run.summary().clone();
        if result.is_ok() {
            tracing::info!(
                pages = summary.pages,
                requests = summary.requests,
                new = summary.counts.new,
                changed = summary.counts.changed,
                "done"
            );
        }
        (summary, result)
    }

    /// Fetches the page at `at`, unless the run is asked to stop or runs out of time first: the
    /// page in flight is then dropped (nothing of it was committed).
    async fn fetch(&self, pager: &mut Pager<'_>, at: Option<Cursor>) -> Result<Page, SyncError> {
        let name = self.setup.source.name().to_owned();
        let out_of_time = async {
            match self.deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            reason = self.stop.raised() => Err(SyncError::Interrupted { source_name: name, reason }),
            () = out_of_time => Err(SyncError::OutOfTime {
                source_name: name,
                budget: self.options.max_duration.unwrap_or_default(),
            }),
            page = pager.fetch(at.as_ref()) => page,
        }
    }

    /// Reads what the store keeps of the source and plans the run.
    async fn plan(&self) -> Result<SourceRun, SyncError> {
        let source = self.setup.source.as_ref();
        let name = source.name();
        let now = Utc::now();
        let state = self
            .store
            .source_state(name)
            .await
            .map_err(SyncError::Store)?;
        let quarantined = self
            .store
            .quarantined(name)
            .await
            .map_err(SyncError::Store)?;
        let oldest_unsettled = match source.order() {
            ListingOrder::NewestFirst => self
                .store
                .oldest_created(
                    name,
                    before(now, self.options.unsettled_window),
                    &unsettled_words(),
                )
                .await
                .map_err(SyncError::Store)?,
            ListingOrder::Groups => None,
        };
        Ok(SourceRun::plan(
            name,
            source.order(),
            state,
            quarantined,
            oldest_unsettled,
            &self.options,
            now,
        ))
    }

    /// Compares a prepared page with what is stored and commits its facts.
    async fn commit(&self, prepared: Prepared) -> Result<CommitCounts, StoreError> {
        let stored = self.store.stored(prepared.ids()).await?;
        let (commit, counts) = prepared.compare(&stored);
        self.store.commit(commit).await?;
        Ok(counts)
    }
}

/// Whether `error` says the provider no longer accepts a resume point (an expired cursor, a page
/// that is gone): the walk can start again from the top.
fn refuses_resume_point(error: &SyncError) -> bool {
    matches!(
        error,
        SyncError::Source {
            at: Some(_),
            error: SourceError::Invalid { .. }
                | SourceError::NotFound { .. }
                | SourceError::BadCursor(_),
            ..
        }
    )
}
