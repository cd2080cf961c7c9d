//! Drives sources into a store: one atomic commit per page, incremental by default.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use payments_model::{
    Change, Cursor, Hint, ListingOrder, Page, PaymentSource, RateLimit, Rejected, SourceError,
};
use tokio::time::Instant;

use crate::books::{self, BookWalker};
use crate::chargebacks::{self, ChargebackList, Checked};
use crate::feed::{self, FeedFacts, FeedRead};
use crate::hints::{HintReader, HintsRead};
use crate::limiter::{Limiter, LimiterSnapshot};
use crate::options::{SyncOptions, TimeBudget};
use crate::pager::{Pager, PagerOptions};
use crate::run::{AfterFailure, FeedPlan, Prepared, SourceRun, before, unsettled_words};
use crate::store::{CommitCounts, RunRecord, Store, StoreError, Summary};
use crate::to_read::{self, ReadAnswer, Taken};
use crate::{Event, Events, StopSignal, SyncError};

/// What a source runs with: the source, and the limiter pacing its credential, one for every
/// run and every read a webhook asks for, so that they share the credential's rate limit.
#[derive(Clone)]
struct SourceSetup {
    source: Arc<dyn PaymentSource>,
    limiter: Option<Arc<Limiter>>,
    /// Whether the limiter has been started from what the ledger kept of the last process's
    /// requests (once: after that, it knows better itself).
    restored: Arc<AtomicBool>,
    /// What another client of the same credential last saw of its rate limit (another
    /// account with the same key, on another worker), to start from when it is newer than
    /// what the ledger kept.
    seen_elsewhere: Option<LimiterSnapshot>,
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
        self.sources.push(SourceSetup {
            source,
            limiter: rate_limit.map(|rate| Arc::new(Limiter::new(rate))),
            restored: Arc::new(AtomicBool::new(false)),
            seen_elsewhere: None,
        });
        self
    }

    /// Adds a source paced by the rate limit it declares, its limiter started from `seen`
    /// (what another client of the same credential last saw: another account with the same
    /// key) when that is newer than what the ledger's checkpoint kept.
    pub fn add_source_seen(
        &mut self,
        source: Arc<dyn PaymentSource>,
        seen: Option<LimiterSnapshot>,
    ) -> &mut Self {
        self.add_source(source);
        if let Some(setup) = self.sources.last_mut() {
            setup.seen_elsewhere = seen;
        }
        self
    }

    /// What the source `name`'s limiter holds now, for the next client of its credential;
    /// `None` for a source without a rate limit, or before the server said what remains.
    pub fn rate_limit_seen(&self, name: &str) -> Option<LimiterSnapshot> {
        self.sources
            .iter()
            .find(|setup| setup.source.name() == name)
            .and_then(|setup| setup.limiter.as_ref())
            .and_then(|limiter| limiter.snapshot(Utc::now()))
    }

    /// Sends progress events to `events`.
    pub fn with_events(&mut self, events: Events) -> &mut Self {
        self.events = events;
        self
    }

    /// The store it writes into.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The signal that stops its runs.
    pub fn stop_signal(&self) -> &StopSignal {
        &self.stop
    }

    /// The names of the sources, in the order added.
    pub fn source_names(&self) -> Vec<String> {
        self.sources
            .iter()
            .map(|setup| setup.source.name().to_owned())
            .collect()
    }

    /// Runs every source once, each in a task of its own so that one source's paging or
    /// commits never hold up another's; one result per source, in the order added.
    pub async fn run(&self) -> Vec<Result<Summary, SyncError>> {
        let tasks: Vec<_> = self
            .sources
            .iter()
            .map(|setup| tokio::spawn(self.task(setup).run()))
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

    /// Runs the source named `source_name` once, as [`Syncer::run`] runs each; `None` when no
    /// source has that name.
    pub async fn run_source(&self, source_name: &str) -> Option<Result<Summary, SyncError>> {
        let setup = self.setup(source_name)?;
        Some(self.task(setup).run().await)
    }

    /// Reads again what `hints` name for the source `source_name` (webhooks said it changed)
    /// and commits what it reads, with versions: each distinct payment or group once, through
    /// the credential's limiter (shared with the source's runs), beside a run of the source
    /// if one is going (a read never moves the checkpoint, and the store keeps the newer of two
    /// states). `None` when no source has that name. A hint for the change feed
    /// ([`Hint::Feed`]) is not read here: [`HintsRead::feed`] says to run the source.
    pub async fn read_hints(
        &self,
        source_name: &str,
        hints: &[Hint],
    ) -> Option<Result<HintsRead, SyncError>> {
        let setup = self.setup(source_name)?;
        let mut pager = Pager::new(
            setup.source.as_ref(),
            PagerOptions {
                retry: self.options.retry,
                limiter: setup.limiter.clone(),
                max_pages: self.options.max_pages,
                events: self.events.clone(),
            },
        );
        let reader = HintReader {
            store: self.store.as_ref(),
            source: setup.source.as_ref(),
            options: &self.options,
            stop: &self.stop,
        };
        Some(reader.read(&mut pager, hints).await)
    }

    fn setup(&self, source_name: &str) -> Option<&SourceSetup> {
        self.sources
            .iter()
            .find(|setup| setup.source.name() == source_name)
    }

    fn task(&self, setup: &SourceSetup) -> SourceTask<S> {
        SourceTask {
            store: self.store.clone(),
            setup: setup.clone(),
            options: self.options.clone(),
            events: self.events.clone(),
            stop: self.stop.clone(),
            budget: TimeBudget::of(&self.options),
            started: Instant::now(),
        }
    }
}

/// One source's run, owned by its task.
struct SourceTask<S: Store> {
    store: Arc<S>,
    setup: SourceSetup,
    options: SyncOptions,
    events: Events,
    stop: StopSignal,
    /// The run's time budget and the change feed's share of it.
    budget: TimeBudget,
    /// When the run started, for its time budget.
    started: Instant,
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
            stopped: result.as_ref().err().is_some_and(SyncError::is_stop),
        };
        let error = record.error.clone();
        if let Err(error) = self.store.record_run(record).await {
            tracing::warn!(source = %name, %error, "the run could not be recorded");
        }
        self.events.emit(Event::Finished {
            summary: summary.clone(),
            error,
        });
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
        let limiter = self.setup.limiter.clone();
        let first_run = !self.setup.restored.swap(true, Ordering::SeqCst);
        let newest = [run.limiter_snapshot(), self.setup.seen_elsewhere.as_ref()]
            .into_iter()
            .flatten()
            .max_by_key(|snapshot| snapshot.at);
        if first_run && let (Some(limiter), Some(snapshot)) = (&limiter, newest) {
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
        // learns every chargeback from the provider's list (the walk stored their payments). A
        // ledger that has walked before (the first read did not fit after it) reads it first,
        // so that the walk cannot take the time it needs on every run.
        let feed_plan = run.plan_feed(source.has_change_feed());
        tracing::debug!(feed = ?feed_plan, "the change feed's part in this run");
        if matches!(feed_plan, FeedPlan::Follow | FeedPlan::FirstReadBeforeWalk) {
            let followed = async {
                if feed_plan == FeedPlan::Follow {
                    self.follow_feed(&mut pager, &mut run).await?;
                } else {
                    self.first_feed_read(&mut pager, &mut run, true).await?;
                }
                self.read_named(&mut pager, &mut run).await
            };
            if let Err(error) = followed.await {
                run.paged(pager.requests(), pager.waited());
                return (run.summary().clone(), Err(error));
            }
            pager.new_walk();
        }
        let mut fetched = self.fetch(&mut pager, run.cursor().cloned()).await;
        let result = loop {
            let page = match fetched {
                Ok(page) => page,
                Err(error) => {
                    let now = Utc::now();
                    match run.fetch_failed(&error, now) {
                        AfterFailure::RestartWalk => {
                            tracing::warn!(%error, "the provider refused the resume point; restarting this walk from the first page");
                            pager.new_walk();
                            fetched = self.fetch(&mut pager, None).await;
                            continue;
                        }
                        AfterFailure::EndWalkAfresh => {
                            tracing::warn!(%error, "the walk ends here; the next run starts it from the first page");
                            if let Err(store) = self.store.commit(run.checkpoint_only(now)).await {
                                tracing::warn!(%store, "the checkpoint could not be reset");
                            }
                            break Err(error);
                        }
                        AfterFailure::Fail => break Err(error),
                    }
                }
            };
            // The page's ordering stamp: when its request left (a slow answer shows a state
            // no newer than that).
            let observed_at = pager.sent_at().unwrap_or_else(Utc::now);
            let snapshot = limiter.as_ref().and_then(|l| l.snapshot(Utc::now()));
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
            Ok(()) if feed_plan == FeedPlan::FirstReadAfterWalk => {
                pager.new_walk();
                match self.first_feed_read(&mut pager, &mut run, false).await {
                    Ok(()) => self.read_named(&mut pager, &mut run).await,
                    Err(error) => Err(error),
                }
            }
            other => other,
        };
        // The book listings, once the payments they concern are in: walked until complete,
        // while failing, and at least every `WALK_BOOKS_EVERY`. What the change feed says of a
        // refund, chargeback or payout came with the feed, at no request more.
        let mut book_failures = Vec::new();
        let result = match result {
            Ok(()) => self
                .walk_books(&mut pager, &mut run)
                .await
                .map(|failures| book_failures = failures),
            other => other,
        };
        run.paged(pager.requests(), pager.waited());
        summary = run.summary().clone();
        // A run that did its walk still fails when something it could not do keeps failing:
        // the source is unhealthy until that heals, and `status` says so too.
        let mut failures = run.persistent_failures(Utc::now());
        failures.extend(book_failures);
        let result = match result {
            Ok(()) if !failures.is_empty() => Err(SyncError::Unhealthy {
                source_name: name.to_owned(),
                problem: failures.join("; "),
                summary: Box::new(summary.clone()),
            }),
            other => other,
        };
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

    /// Reads the change feed back to a little past the last change applied, and commits, in
    /// one transaction, its new position with every payment it names queued to be read by id
    /// (with what it said of their chargebacks) and the newest chargebacks applied to stored
    /// payments; [`SourceTask::read_named`] then reads the queue. A feed that no longer reaches
    /// that far makes this run re-verify the whole listing. A feed that cannot be read is a
    /// failed feed: its position stays, the failure is recorded (the source becomes unhealthy
    /// when it persists), and the newest chargebacks and the walk are read all the same.
    async fn follow_feed(
        &self,
        pager: &mut Pager<'_>,
        run: &mut SourceRun,
    ) -> Result<(), SyncError> {
        let now = Utc::now();
        // The feed's pages get the feed's share of the run, so that the walk always runs.
        let read = match self.within_feed_share(self.read_feed(pager, run)).await {
            Ok(read) => Some(read),
            Err(error) if error.is_stop() => {
                return Err(error);
            }
            Err(error) => {
                tracing::warn!(%error, "the change feed could not be read; the newest chargebacks and the walk are read all the same, and the next run reads the feed again");
                run.feed_trouble(error.to_string());
                None
            }
        };
        let gap = feed::shows_gap(read.as_ref());
        let mut read = read.unwrap_or_default();
        let mut position = read.position();
        if gap {
            let last = run.feed_position().cloned();
            let at = last.as_ref().map(|p| p.id.clone()).unwrap_or_default();
            tracing::warn!(last_applied = %at, "the change feed no longer reaches the last change applied; the whole listing is read again and the chargebacks since then instead");
            run.fall_back_to_a_whole_walk(now);
            // The listing does not show chargebacks: those of the gap come from their own list.
            let since = ChargebackList::since(last.map(|p| p.at));
            match self.read_chargebacks(pager, since).await {
                Ok((changes, mut rejected)) => {
                    read.rejected.append(&mut rejected);
                    read.take_gap(changes);
                }
                Err(error) if error.is_stop() => {
                    return Err(error);
                }
                Err(error) => {
                    // The position stays: the next run reads the gap's chargebacks again.
                    tracing::warn!(%error, "the chargebacks of the feed's gap could not be read; the feed's position stays, and the next run reads them again");
                    run.feed_trouble(format!(
                        "the chargebacks of a gap in it could not be read: {error}"
                    ));
                    position = None;
                }
            }
        }
        if read.ignored > 0 {
            tracing::debug!(ignored = read.ignored, "changes of other kinds ignored");
        }
        let newest = ChargebackList::newest(chargebacks::back_to(run.pending_chargebacks()));
        let newest = match self.read_chargebacks(pager, newest).await {
            Ok((changes, mut rejected)) => {
                read.rejected.append(&mut rejected);
                chargebacks::note_pending(run.pending_chargebacks(), &changes, now.fixed_offset());
                changes
            }
            Err(error) if error.is_stop() => {
                return Err(error);
            }
            Err(error) => {
                tracing::warn!(%error, "the newest chargebacks could not be read; the next run reads them again");
                run.feed_trouble(format!("the newest chargebacks could not be read: {error}"));
                Vec::new()
            }
        };
        self.commit_feed_records(std::mem::take(&mut read.records))
            .await?;
        let by_id = to_read::read_by_id(&read, run.queue());
        let checked = self.charge_back_stored(newest, &by_id).await?;
        let facts = to_read::enqueue_read(run.queue(), read, position, checked, now);
        run.settle_feed_health(now);
        self.commit_feed(run, facts, Utc::now()).await
    }

    /// Keeps the refunds, chargebacks and payouts a read of the change feed carried
    /// ([`books::from_feed`]), before the feed's new position is committed: a crash between
    /// the two reads them again.
    async fn commit_feed_records(
        &self,
        records: std::collections::HashMap<
            String,
            (payments_model::BookRecord, DateTime<chrono::FixedOffset>),
        >,
    ) -> Result<(), SyncError> {
        if records.is_empty() {
            return Ok(());
        }
        let name = self.setup.source.name();
        let ids: Vec<String> = records.keys().cloned().collect();
        let kept = self
            .store
            .kept_records(ids)
            .await
            .map_err(SyncError::Store)?;
        let kinds: HashSet<_> = records.values().map(|(record, _)| record.kind).collect();
        let mut walks = std::collections::HashMap::new();
        for kind in kinds {
            let walk = self
                .store
                .book_walk(name, kind)
                .await
                .map_err(SyncError::Store)?
                .unwrap_or_default();
            walks.insert(kind, walk);
        }
        let records = records
            .into_values()
            .map(|(record, at)| (record, at.to_utc()))
            .collect();
        for commit in books::from_feed(name, records, &kept, &walks, Utc::now()) {
            self.store
                .commit_records(commit)
                .await
                .map_err(SyncError::Store)?;
        }
        Ok(())
    }

    /// Runs `work` within the feed's share of the run's time; past it, a failure saying so.
    async fn within_feed_share<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, SyncError>>,
    ) -> Result<T, SyncError> {
        let Some(left) = self.budget.feed_left(self.started.elapsed()) else {
            return work.await;
        };
        match tokio::time::timeout(left, work).await {
            Ok(done) => done,
            Err(_) => {
                let share = self.budget.feed_share().unwrap_or_default();
                Err(SyncError::Source {
                    source_name: self.setup.source.name().to_owned(),
                    at: None,
                    error: SourceError::Transport {
                        provider: "the provider",
                        kind: payments_model::TransportKind::Timeout,
                        message: format!(
                            "the change feed was not read within its share of the run's time ({:.0} s); a run with a longer --max-duration reads a feed this far behind",
                            share.as_secs_f64()
                        ),
                    },
                })
            }
        }
    }

    /// Reads the provider's chargebacks (newest first) as far as `list` says, and returns them
    /// with the entries that could not be read (to quarantine). The newest chargebacks, read each
    /// run, are bounded like a read by id (a list that fails costs little).
    async fn read_chargebacks(
        &self,
        pager: &mut Pager<'_>,
        mut list: ChargebackList,
    ) -> Result<(Vec<Change>, Vec<Rejected>), SyncError> {
        let mut at: Option<Cursor> = None;
        loop {
            let page = match list.bounded() {
                true => {
                    let wait = self.options.read_by_id_wait();
                    self.guarded(pager.chargebacks_within(at.as_ref(), wait))
                        .await?
                }
                false => self.guarded(pager.chargebacks(at.as_ref())).await?,
            };
            match list.take_page(page) {
                Some(next) => at = Some(next),
                None => return Ok(list.finish()),
            }
        }
    }

    /// Reads the payments the change feed named (the queue in the checkpoint) by id, those due
    /// now, within the feed's share of the run's time, and commits them in batches with what is
    /// left of the queue. One whose read fails, or would wait longer than a small share of the
    /// run's time, is put off with backoff and named; the others and the walk go on.
    async fn read_named(
        &self,
        pager: &mut Pager<'_>,
        run: &mut SourceRun,
    ) -> Result<(), SyncError> {
        let due = to_read::due(run.queue(), Utc::now());
        if due.is_empty() {
            return Ok(());
        }
        let max_wait = self.options.read_by_id_wait();
        let cut_off = self.options.read_by_id_cut_off();
        let mut facts = FeedFacts::default();
        let mut in_batch = 0;
        // A batch's ordering stamp is its oldest read's: no read in it is older than that.
        let mut batch_sent: Option<DateTime<Utc>> = None;
        let mut stopped = None;
        for source_id in due {
            if self.budget.feed_share_spent(self.started.elapsed()) {
                tracing::info!(
                    left = run.queue().len(),
                    "the change feed's share of this run's time is spent; the next run reads the rest of the payments it named"
                );
                break;
            }
            let read = tokio::time::timeout(cut_off, pager.payment_within(&source_id, max_wait));
            let answer = match self.guarded(async { Ok(read.await) }).await {
                Ok(Ok(answer)) => ReadAnswer::of(answer.map(|answer| answer.payment)),
                Ok(Err(_elapsed)) => ReadAnswer::of(Err(SyncError::Source {
                    source_name: self.setup.source.name().to_owned(),
                    at: None,
                    error: SourceError::Transport {
                        provider: "the provider",
                        kind: payments_model::TransportKind::Timeout,
                        message: format!(
                            "no answer within {:.1} s, a read by id's share of the run",
                            cut_off.as_secs_f64()
                        ),
                    },
                })),
                Err(stop) => {
                    stopped = Some(stop);
                    break;
                }
            };
            let sent = pager.sent_at().unwrap_or_else(Utc::now);
            let taken =
                to_read::take_answer(run.queue(), &mut facts, &source_id, answer, Utc::now());
            if taken == Taken::NotQueued {
                continue;
            }
            batch_sent = Some(batch_sent.map_or(sent, |oldest| oldest.min(sent)));
            in_batch += 1;
            if in_batch == READ_BY_ID_BATCH {
                in_batch = 0;
                let stamp = batch_sent.take().unwrap_or_else(Utc::now);
                self.commit_feed(run, std::mem::take(&mut facts), stamp)
                    .await?;
            }
        }
        let stamp = batch_sent.unwrap_or_else(Utc::now);
        self.commit_feed(run, facts, stamp).await?;
        match stopped {
            Some(stop) => Err(stop),
            None => Ok(()),
        }
    }

    /// The first read of a source's feed, once a walk stored its payments (after that walk, or
    /// before the walk of a later run): notes where the feed stands, and applies the latest
    /// chargeback of every payment from the provider's list of chargebacks (none of them was
    /// announced to this ledger). A feed that cannot be read now is a failed feed (recorded;
    /// the next run reads it again).
    async fn first_feed_read(
        &self,
        pager: &mut Pager<'_>,
        run: &mut SourceRun,
        before_walk: bool,
    ) -> Result<(), SyncError> {
        let read = async {
            let read = self.read_feed(pager, run).await?;
            let chargebacks = self
                .read_chargebacks(pager, ChargebackList::since(None))
                .await?;
            Ok::<_, SyncError>((read, chargebacks))
        };
        // Before a walk, it gets the feed's share of the run, so that the walk always runs.
        let read = match before_walk {
            true => self.within_feed_share(read).await,
            false => read.await,
        };
        let (mut read, (chargebacks, mut rejected)) = match read {
            Ok(read) => read,
            Err(stop) if stop.is_stop() => {
                return Err(stop);
            }
            Err(error) => {
                tracing::warn!(%error, "the change feed and the provider's chargebacks could not be read for the first time; the next run reads them again");
                run.feed_trouble(error.to_string());
                run.settle_feed_health(Utc::now());
                return self
                    .commit_feed(run, FeedFacts::default(), Utc::now())
                    .await;
            }
        };
        let now = Utc::now();
        chargebacks::note_pending(run.pending_chargebacks(), &chargebacks, now.fixed_offset());
        let checked = self
            .charge_back_stored(chargebacks, &HashSet::new())
            .await?;
        let position = read.position();
        read.rejected.append(&mut rejected);
        let facts = to_read::enqueue_read(run.queue(), read, position, checked, now);
        run.settle_feed_health(now);
        self.commit_feed(run, facts, Utc::now()).await
    }

    /// Checks the stored payments against the latest chargeback of each in `chargebacks`
    /// (newest first), as [`chargebacks::check_stored`] says; a payment in `read_by_id`
    /// (provider ids) only gets the list's word, to apply with its read.
    async fn charge_back_stored(
        &self,
        chargebacks: Vec<Change>,
        read_by_id: &HashSet<String>,
    ) -> Result<Checked, SyncError> {
        let latest = chargebacks::latest_chargebacks(chargebacks);
        let stored = self
            .store
            .stored(latest.keys().cloned().collect())
            .await
            .map_err(SyncError::Store)?;
        Ok(chargebacks::check_stored(latest, stored, read_by_id))
    }

    /// The changes since the last one applied, and a little past it, page by page as
    /// [`FeedRead::take_page`] says (the first page only, on the first read, which notes where
    /// the feed stands).
    async fn read_feed(
        &self,
        pager: &mut Pager<'_>,
        run: &SourceRun,
    ) -> Result<FeedRead, SyncError> {
        let last = run.feed_position().cloned();
        let now = Utc::now().fixed_offset();
        let mut read = FeedRead::default();
        let mut at: Option<Cursor> = None;
        loop {
            let page = self.guarded(pager.changes(at.as_ref())).await?;
            match read.take_page(page, last.as_ref(), now, |created_at| {
                run.walk_reads(created_at)
            }) {
                Some(next) => at = Some(next),
                None => return Ok(read),
            }
        }
    }

    /// Walks each book listing of the source that is due ([`BookWalk::due`]), committing page
    /// by page with the walk's state. A listing that cannot be read keeps its place and its
    /// failure (said in the summary; returned once persistent, which makes the source
    /// unhealthy); the other listings are walked all the same. A stop or the time budget ends
    /// the run as it ends a walk.
    async fn walk_books(
        &self,
        pager: &mut Pager<'_>,
        run: &mut SourceRun,
    ) -> Result<Vec<String>, SyncError> {
        let source = self.setup.source.as_ref();
        let name = source.name();
        let mut persistent = Vec::new();
        for &kind in source.book_kinds() {
            let stored = self
                .store
                .book_walk(name, kind)
                .await
                .map_err(SyncError::Store)?
                .unwrap_or_default();
            if !stored.due(Utc::now()) {
                tracing::debug!(listing = %kind, "book listing not walked: complete, and walked within the hour");
                continue;
            }
            pager.new_walk();
            let walker = BookWalker::new(name, kind, stored);
            let mut at = walker.first();
            let mut changed = 0;
            let outcome = loop {
                let page = match self.guarded(pager.book_page(kind, at.as_ref())).await {
                    Ok(page) => page,
                    Err(error) => break Err(error),
                };
                let observed_at = pager.sent_at().unwrap_or_else(Utc::now);
                let kept = self
                    .store
                    .kept_records(books::ids(&page.records))
                    .await
                    .map_err(SyncError::Store)?;
                let walked =
                    walker.page(page.records, page.rejected, page.next, &kept, observed_at);
                changed += walked.changed;
                self.store
                    .commit_records(walked.commit)
                    .await
                    .map_err(SyncError::Store)?;
                match walked.next {
                    Some(next) => at = Some(next),
                    None => break Ok(()),
                }
            };
            run.paged(pager.requests(), pager.waited());
            match outcome {
                Ok(()) => {
                    tracing::info!(listing = %kind, changed, "book listing walked");
                }
                Err(error @ SyncError::OutOfTime { .. }) => {
                    // The walk keeps its place; the payments are in. Said, never success.
                    run.feed_trouble(format!("the {kind} listing was put off: {error}"));
                    break;
                }
                Err(error) if error.is_stop() => return Err(error),
                Err(error) => {
                    let now = Utc::now();
                    let current = self
                        .store
                        .book_walk(name, kind)
                        .await
                        .map_err(SyncError::Store)?
                        .unwrap_or_else(|| walker.start().clone());
                    let failed = current.failed(error.to_string(), now);
                    tracing::warn!(listing = %kind, %error, "a book listing could not be read; the next run goes on from where it stood");
                    run.feed_trouble(format!("the {kind} listing could not be read: {error}"));
                    persistent.extend(failed.persistent_failure(kind, now));
                    self.store
                        .commit_records(books::walk_only(name, kind, failed, now))
                        .await
                        .map_err(SyncError::Store)?;
                }
            }
        }
        Ok(persistent)
    }

    /// Runs `work` unless the run is asked to stop or runs out of time first.
    async fn guarded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, SyncError>>,
    ) -> Result<T, SyncError> {
        let name = self.setup.source.name().to_owned();
        let out_of_time = async {
            match self.budget.run_left(self.started.elapsed()) {
                Some(left) => tokio::time::sleep(left).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            reason = self.stop.raised() => Err(SyncError::Interrupted { source_name: name, reason }),
            () = out_of_time => Err(SyncError::OutOfTime {
                source_name: name,
                budget: self.budget.run().unwrap_or_default(),
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

    /// Commits what a read of the change feed (or of the payments it named) gives, with the
    /// run's checkpoint as it stands (its queue and feed health included), stamped
    /// `observed_at`.
    async fn commit_feed(
        &self,
        run: &mut SourceRun,
        facts: FeedFacts,
        observed_at: DateTime<Utc>,
    ) -> Result<(), SyncError> {
        let prepared = run.feed_read(facts, observed_at);
        let counts = self.commit(prepared).await.map_err(SyncError::Store)?;
        run.feed_committed(counts);
        Ok(())
    }

    /// Compares a prepared page with what is stored and commits its facts.
    async fn commit(&self, prepared: Prepared) -> Result<CommitCounts, StoreError> {
        let stored = self.store.stored(prepared.ids()).await?;
        let (commit, counts) = prepared.compare(&stored);
        self.store.commit(commit).await?;
        Ok(counts)
    }
}

/// How many payments read by id are committed together.
const READ_BY_ID_BATCH: usize = 20;
