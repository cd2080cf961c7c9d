//! Drives sources into a store: one atomic commit per page, incremental by default.

use std::sync::Arc;
use std::time::Duration;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, FixedOffset, Utc};
use payments_model::{
    Change, ChangeKind, Cursor, ListingOrder, Money, Page, Payment, PaymentSource, RateLimit,
    Rejected, SourceError,
};
use tokio::time::Instant;

use crate::limiter::Limiter;
use crate::pager::{Pager, PagerOptions};
use crate::retry::RetryPolicy;
use crate::run::{Prepared, SourceRun, before, unsettled_words};
use crate::store::{CommitCounts, FeedPosition, RunKind, RunRecord, Store, StoreError, Summary};
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
        // A ledger that never read the feed first walks, then notes where the feed stands and
        // learns every chargeback from the provider's list (the walk stored their payments).
        let first_feed_read = source.has_change_feed() && run.feed_position().is_none();
        if first_feed_read {
            // Until the feed is read once, a run's time goes to that, not to re-verification.
            run.skip_re_verification();
        }
        if source.has_change_feed() && !first_feed_read {
            match self.follow_feed(&mut pager, &mut run).await {
                Ok(counts) => run.feed_committed(counts),
                Err(error) => {
                    run.paged(pager.requests(), pager.waited());
                    return (run.summary().clone(), Err(error));
                }
            }
            pager.new_walk();
        }
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
        let result = match result {
            Ok(()) if first_feed_read => {
                pager.new_walk();
                self.first_feed_read(&mut pager, &mut run).await
            }
            other => other,
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
        self.guarded(pager.fetch(at.as_ref())).await
    }

    /// Reads the change feed back to the last change applied and commits what it changed,
    /// before the walk (which then reads recent payments afresh). A feed that no longer reaches
    /// that far makes this run re-verify the whole listing; a feed that cannot be read now is
    /// left for the next run (its position stays), and the walk goes on.
    async fn follow_feed(
        &self,
        pager: &mut Pager<'_>,
        run: &mut SourceRun,
    ) -> Result<CommitCounts, SyncError> {
        let read = self.read_feed(pager, run).await;
        let Some(mut read) = or_next_run(
            read,
            "the change feed could not be read; the next run reads it again",
        )?
        else {
            return Ok(CommitCounts::default());
        };
        if !read.reached && run.summary().run == Some(RunKind::Incremental) {
            let last = run.feed_position().cloned();
            let position = last.as_ref().map(|p| p.id.clone()).unwrap_or_default();
            tracing::warn!(last_applied = %position, "the change feed no longer reaches the last change applied; this run re-verifies the whole listing and reads the chargebacks since then instead");
            run.fall_back_to_a_whole_walk(Utc::now());
            // The listing does not show chargebacks: those of the gap come from their own list.
            let gap = self
                .read_chargebacks(pager, last.map(|p| p.at), MAX_CHARGEBACK_PAGES)
                .await;
            for change in or_next_run(
                gap,
                "the chargebacks of the gap could not be read; some may be missed",
            )?
            .unwrap_or_default()
            {
                read.take(change, |_| false);
            }
        }
        if read.ignored > 0 {
            tracing::debug!(ignored = read.ignored, "changes of other kinds ignored");
        }
        // The newest chargebacks as they stand now: one that completed (or was undone) since
        // its event said otherwise changes no event, so the list's first page is read each run.
        let mut payments = Vec::new();
        let newest = self.read_chargebacks(pager, None, 1).await;
        let newest = or_next_run(
            newest,
            "the newest chargebacks could not be read; the next run reads them again",
        )?;
        let (charged, undone) = self.charge_back_stored(newest.unwrap_or_default()).await?;
        for payment in charged {
            if read.to_read.contains(&payment.source_id) {
                // Read again below: the list's word, newer than the event's, wins.
                read.chargebacks
                    .insert(payment.source_id.clone(), payment.charged_back_amount);
            } else {
                payments.push(payment);
            }
        }
        for source_id in undone {
            read.chargebacks.insert(source_id.clone(), None);
            read.to_read.insert(source_id);
        }
        let mut rejected = read.rejected;
        let mut ids: Vec<&String> = read.to_read.iter().collect();
        ids.sort();
        for source_id in ids {
            // One payment that cannot be read is named and left for re-verification; the rest
            // of the feed and the walk go on.
            let answer = self.guarded(pager.payment(source_id)).await;
            let what = format!(
                "the payment {source_id} the change feed names could not be read; re-verification reads it later"
            );
            let Some(answer) = or_next_run(answer, &what)? else {
                continue;
            };
            match answer.payment {
                Some(Ok(mut payment)) => {
                    if let Some(Some(amount)) = read.chargebacks.get(source_id)
                        && let Err(problem) = payment.charge_back(*amount)
                    {
                        tracing::warn!(%problem, "a chargeback is set aside");
                    }
                    payments.push(payment);
                }
                Some(Err(record)) => rejected.push(record),
                None => {
                    tracing::warn!(payment = %source_id, "the change feed names a payment the provider does not know")
                }
            }
        }
        let prepared = run.feed_read(payments, rejected, read.newest, Utc::now());
        self.commit(prepared).await.map_err(SyncError::Store)
    }

    /// The first read of a source's feed, after a walk that stored its payments: notes where the
    /// feed stands, and applies the latest chargeback of every payment from the provider's list
    /// of chargebacks (none of them was announced to this ledger). One that cannot be read now
    /// is tried again by the next run.
    async fn first_feed_read(
        &self,
        pager: &mut Pager<'_>,
        run: &mut SourceRun,
    ) -> Result<(), SyncError> {
        let read = async {
            let read = self.read_feed(pager, run).await?;
            let chargebacks = self
                .read_chargebacks(pager, None, MAX_CHARGEBACK_PAGES)
                .await?;
            Ok::<_, SyncError>((read, chargebacks))
        };
        let read = or_next_run(
            read.await,
            "the change feed could not be read; the next run reads it again",
        )?;
        let Some((read, chargebacks)) = read else {
            return Ok(());
        };
        let (payments, _) = self.charge_back_stored(chargebacks).await?;
        let prepared = run.feed_read(payments, read.rejected, read.newest, Utc::now());
        let counts = self.commit(prepared).await.map_err(SyncError::Store)?;
        run.feed_committed(counts);
        Ok(())
    }

    /// The stored payments whose latest chargeback (the first of each in `chargebacks`, newest
    /// first) completed with an amount the ledger does not have, with it applied; and the
    /// provider ids of stored payments whose known chargeback is no longer completed, which
    /// must be read again to learn their status.
    async fn charge_back_stored(
        &self,
        chargebacks: Vec<Change>,
    ) -> Result<(Vec<Payment>, Vec<String>), SyncError> {
        let mut latest: HashMap<String, Option<Money>> = HashMap::new();
        for change in chargebacks {
            if let ChangeKind::ChargedBack {
                payment_id,
                amount,
                completed,
                ..
            } = change.kind
            {
                latest
                    .entry(payment_id)
                    .or_insert(completed.then_some(amount));
            }
        }
        let stored = self
            .store
            .stored(latest.keys().cloned().collect())
            .await
            .map_err(SyncError::Store)?;
        let (mut charged, mut undone) = (Vec::new(), Vec::new());
        for mut payment in stored.into_values() {
            match latest.get(&payment.id).copied().flatten() {
                Some(amount) if payment.charged_back_amount != Some(amount) => {
                    match payment.charge_back(amount) {
                        Ok(()) => charged.push(payment),
                        Err(problem) => tracing::warn!(%problem, "a chargeback is set aside"),
                    }
                }
                None if payment.charged_back_amount.is_some() => undone.push(payment.source_id),
                _ => {}
            }
        }
        charged.sort_by(|a, b| a.id.cmp(&b.id));
        Ok((charged, undone))
    }

    /// The provider's chargebacks, newest first, back to `since` (all of them for `None`), at
    /// most `max_pages` pages.
    async fn read_chargebacks(
        &self,
        pager: &mut Pager<'_>,
        since: Option<DateTime<FixedOffset>>,
        max_pages: usize,
    ) -> Result<Vec<Change>, SyncError> {
        let mut changes = Vec::new();
        let mut at: Option<Cursor> = None;
        for _ in 0..max_pages {
            let page = self.guarded(pager.chargebacks(at.as_ref())).await?;
            for change in page.changes {
                if since.is_some_and(|since| change.at < since) {
                    return Ok(changes);
                }
                changes.push(change);
            }
            match page.next {
                Some(next) => at = Some(next),
                None => break,
            }
        }
        Ok(changes)
    }

    /// The changes since the last one applied (all of them on the first read, which only
    /// notes where the feed stands).
    async fn read_feed(
        &self,
        pager: &mut Pager<'_>,
        run: &SourceRun,
    ) -> Result<FeedRead, SyncError> {
        let last = run.feed_position().cloned();
        let now = Utc::now().fixed_offset();
        let mut read = FeedRead::default();
        let mut at: Option<Cursor> = None;
        for _ in 0..MAX_FEED_PAGES {
            let page = self.guarded(pager.changes(at.as_ref())).await?;
            read.rejected.extend(page.rejected);
            for change in page.changes {
                if read.newest.is_none() {
                    // A change stamped in the future stands at now, so that it cannot hide the
                    // changes after it.
                    read.newest = Some(FeedPosition {
                        id: change.id.clone(),
                        at: change.at.min(now),
                    });
                }
                let Some(last) = &last else {
                    // The first read: the walk reads everything; the feed starts here.
                    read.reached = true;
                    return Ok(read);
                };
                // The feed is read back to the last change applied. Its time only says where
                // that change was when its id is gone; clocks differ, so changes a little
                // older than it are taken again (reading a payment twice changes nothing).
                if change.id == last.id || change.at < last.at - FEED_CLOCK_SKEW {
                    read.reached = true;
                    return Ok(read);
                }
                read.take(change, |created_at| run.walk_reads(created_at));
            }
            match page.next {
                Some(next) => at = Some(next),
                None => break,
            }
        }
        // The feed ended (or the page budget did) before the last change applied.
        read.reached = last.is_none();
        Ok(read)
    }

    /// Runs `work` unless the run is asked to stop or runs out of time first.
    async fn guarded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, SyncError>>,
    ) -> Result<T, SyncError> {
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
            answer = work => answer,
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

/// `Some` of what `result` holds; `None`, after a warning that says `what`, for a failure the
/// next run may get past (the feed waits, the walk goes on); a stop (a signal, the run's time
/// budget) ends the run.
#[expect(
    clippy::result_large_err,
    reason = "SyncError is what every step of a run returns; boxing it here alone gains nothing"
)]
fn or_next_run<T>(result: Result<T, SyncError>, what: &str) -> Result<Option<T>, SyncError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error @ (SyncError::Interrupted { .. } | SyncError::OutOfTime { .. })) => Err(error),
        Err(error) => {
            tracing::warn!(%error, "{what}");
            Ok(None)
        }
    }
}

/// The most pages of a change feed one run reads; a feed further behind than that is treated
/// as one that lost its oldest changes.
const MAX_FEED_PAGES: usize = 50;

/// How much older than the last change applied a change may be stamped and still be newer
/// (the provider's clocks need not agree to the second).
const FEED_CLOCK_SKEW: chrono::Duration = chrono::Duration::hours(1);

/// The most pages of a provider's chargebacks one run reads (10,000 chargebacks).
const MAX_CHARGEBACK_PAGES: usize = 100;

/// What a run takes from a change feed.
#[derive(Default)]
struct FeedRead {
    /// The newest change seen: the feed's new position.
    newest: Option<FeedPosition>,
    /// Whether the feed reached the last change applied.
    reached: bool,
    /// Payments to read again by id.
    to_read: HashSet<String>,
    /// The chargeback amount of a payment when its latest chargeback is completed.
    chargebacks: HashMap<String, Option<Money>>,
    /// Entries that could not be read.
    rejected: Vec<Rejected>,
    /// Changes of other kinds.
    ignored: u64,
}

impl FeedRead {
    /// Takes one change (newest first). A payment a change carries is as it was then, which
    /// may be older than what the ledger holds: one the run's walk reads anyway is left to it,
    /// any other is read again by id (its current state, never a stale one).
    fn take(&mut self, change: Change, walk_reads: impl Fn(DateTime<FixedOffset>) -> bool) {
        match change.kind {
            ChangeKind::Payment(payment) => {
                if !walk_reads(payment.created_at) {
                    self.to_read.insert(payment.source_id);
                }
            }
            ChangeKind::Touched { source_id } => {
                self.to_read.insert(source_id);
            }
            ChangeKind::ChargedBack {
                source_id,
                amount,
                completed,
                ..
            } => {
                // Newest first: the first chargeback seen of a payment is its latest.
                self.chargebacks
                    .entry(source_id.clone())
                    .or_insert(completed.then_some(amount));
                self.to_read.insert(source_id);
            }
            ChangeKind::Other { .. } => self.ignored += 1,
        }
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
