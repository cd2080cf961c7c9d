//! Drives sources into a store: one atomic commit per page, incremental by default.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use payments_model::{
    Change, Cursor, ListingOrder, Page, Payment, PaymentSource, RateLimit, Rejected, SourceError,
};
use tokio::time::Instant;

use crate::feed::{self, FeedRead, MAX_CHARGEBACK_PAGES, MAX_FEED_PAGES, Step};
use crate::limiter::Limiter;
use crate::options::{FEED_SHARE, SyncOptions};
use crate::pager::{Pager, PagerOptions};
use crate::run::{FeedFacts, Prepared, SourceRun, before, unsettled_words};
use crate::store::{CommitCounts, RunRecord, StatedChargeback, Store, StoreError, Summary, ToRead};
use crate::{Event, Events, StopSignal, SyncError};

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
                    feed_deadline: self
                        .options
                        .max_duration
                        .map(|d| Instant::now() + d.mul_f64(FEED_SHARE)),
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
    /// Past this, the payments the change feed named are left for the next run, so that the
    /// walk has its share of the run's time.
    feed_deadline: Option<Instant>,
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
        // learns every chargeback from the provider's list (the walk stored their payments). A
        // ledger that has walked before (the first read did not fit after it) reads it first,
        // so that the walk cannot take the time it needs on every run.
        let never_read = source.has_change_feed() && run.feed_position().is_none();
        let first_read_after_walk = never_read && !run.walked_before();
        if never_read {
            // Until the feed is read once, a run's time goes to that, not to re-verification.
            run.skip_re_verification();
        }
        if source.has_change_feed() && !first_read_after_walk {
            let followed = async {
                if never_read {
                    self.first_feed_read(&mut pager, &mut run, true).await?;
                } else {
                    self.follow_feed(&mut pager, &mut run).await?;
                }
                self.read_named(&mut pager, &mut run).await
            };
            if let Err(error) = followed.await {
                run.paged(pager.requests(), pager.waited());
                return (run.summary().clone(), Err(error));
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
            Ok(()) if first_read_after_walk => {
                pager.new_walk();
                match self.first_feed_read(&mut pager, &mut run, false).await {
                    Ok(()) => self.read_named(&mut pager, &mut run).await,
                    Err(error) => Err(error),
                }
            }
            other => other,
        };
        run.paged(pager.requests(), pager.waited());
        summary = run.summary().clone();
        // A run that did its walk still fails when something it could not do keeps failing:
        // the source is unhealthy until that heals, and `status` says so too.
        let failures = run.persistent_failures(Utc::now());
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
        let read = self.within_feed_share(self.read_feed(pager, run)).await;
        let mut read = match read {
            Ok(read) => read,
            Err(error) if error.is_stop() => {
                return Err(error);
            }
            Err(error) => {
                tracing::warn!(%error, "the change feed could not be read; the newest chargebacks and the walk are read all the same, and the next run reads the feed again");
                run.feed_trouble(error.to_string());
                FeedRead::default()
            }
        };
        let mut position = read.position();
        if run.summary().feed_error.is_none() && !read.reached {
            let last = run.feed_position().cloned();
            let at = last.as_ref().map(|p| p.id.clone()).unwrap_or_default();
            tracing::warn!(last_applied = %at, "the change feed no longer reaches the last change applied; the whole listing is read again and the chargebacks since then instead");
            run.fall_back_to_a_whole_walk(now);
            // The listing does not show chargebacks: those of the gap come from their own list.
            let gap = self
                .read_chargebacks(pager, last.map(|p| p.at), MAX_CHARGEBACK_PAGES)
                .await;
            match gap {
                Ok((changes, mut rejected)) => {
                    read.rejected.append(&mut rejected);
                    for change in changes {
                        read.take(change, |_| false);
                    }
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
        // The newest chargebacks as they stand now: one that completed (or was undone) since
        // its event said otherwise changes no event, so the list's first page is read each run.
        let back_to = run.pending_chargebacks().iter().map(|p| p.at).min();
        let newest = match self.newest_chargebacks(pager, back_to).await {
            Ok((changes, mut rejected)) => {
                read.rejected.append(&mut rejected);
                feed::note_pending(run.pending_chargebacks(), &changes, now.fixed_offset());
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
        // A payment read by id below gets the list's word with its read.
        let queued: HashSet<String> = read
            .to_read
            .iter()
            .cloned()
            .chain(run.queue().iter().map(|entry| entry.source_id.clone()))
            .collect();
        let mut checked = self.charge_back_stored(newest, &queued).await?;
        for (source_id, stated) in std::mem::take(&mut checked.to_read) {
            // The list's word is newer than the event's.
            read.chargebacks.insert(source_id.clone(), stated);
            read.to_read.insert(source_id);
        }
        let mut queued: Vec<String> = read.to_read.into_iter().collect();
        queued.sort();
        let named = queued.into_iter().map(|source_id| {
            let stated = read.chargebacks.remove(&source_id);
            (source_id, stated)
        });
        feed::enqueue(run.queue(), named, now);
        checked.facts.position = position;
        checked.facts.rejected.append(&mut read.rejected);
        run.settle_feed_health(now);
        self.commit_feed(run, checked.facts).await
    }

    /// Runs `work` within the feed's share of the run's time; past it, a failure saying so.
    async fn within_feed_share<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, SyncError>>,
    ) -> Result<T, SyncError> {
        let Some(end) = self.feed_deadline else {
            return work.await;
        };
        match tokio::time::timeout_at(end, work).await {
            Ok(done) => done,
            Err(_) => {
                let share = self
                    .options
                    .max_duration
                    .unwrap_or_default()
                    .mul_f64(FEED_SHARE);
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

    /// The first page of the provider's chargebacks (newest first), and the pages after it back
    /// to `back_to` (at most [`MAX_PENDING_PAGES`] more), each bounded like a read by id (a list
    /// that fails costs little); a page over the body cap is asked for again smaller.
    async fn newest_chargebacks(
        &self,
        pager: &mut Pager<'_>,
        back_to: Option<DateTime<FixedOffset>>,
    ) -> Result<(Vec<Change>, Vec<Rejected>), SyncError> {
        let mut at: Option<Cursor> = None;
        let (mut changes, mut rejected) = (Vec::new(), Vec::new());
        for _ in 0..MAX_SMALLER_PAGES + MAX_PENDING_PAGES {
            let page = self
                .guarded(pager.chargebacks_within(at.as_ref(), self.options.read_by_id_wait()))
                .await?;
            rejected.extend(page.rejected);
            let oldest = page.changes.last().map(|change| change.at);
            let empty = page.changes.is_empty();
            changes.extend(page.changes);
            match page.next {
                // A page with nothing on it and a next link: the same page asked for smaller.
                Some(next) if empty && changes.is_empty() => at = Some(next),
                // On, back to the oldest chargeback not completed when last seen.
                Some(next) if back_to.is_some_and(|to| oldest.is_some_and(|o| o >= to)) => {
                    at = Some(next);
                }
                _ => break,
            }
        }
        Ok((changes, rejected))
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
        let due = feed::due(run.queue(), Utc::now());
        if due.is_empty() {
            return Ok(());
        }
        let max_wait = self.options.read_by_id_wait();
        let mut facts = FeedFacts::default();
        let mut in_batch = 0;
        let mut stopped = None;
        for source_id in due {
            if self.feed_deadline.is_some_and(|end| Instant::now() >= end) {
                tracing::info!(
                    left = run.queue().len(),
                    "the change feed's share of this run's time is spent; the next run reads the rest of the payments it named"
                );
                break;
            }
            // A read that hangs is cut off like one that would wait too long.
            let limit = max_wait.max(Duration::from_secs(1));
            let read = tokio::time::timeout(limit, pager.payment_within(&source_id, max_wait));
            let answer = match self.guarded(async { Ok(read.await) }).await {
                Ok(Ok(Ok(answer))) => Ok(answer.payment),
                Ok(Ok(Err(error))) => Err(error),
                Ok(Err(_elapsed)) => Err(SyncError::Source {
                    source_name: self.setup.source.name().to_owned(),
                    at: None,
                    error: SourceError::Transport {
                        provider: "the provider",
                        kind: payments_model::TransportKind::Timeout,
                        message: format!(
                            "no answer within {:.1} s, a read by id's share of the run",
                            limit.as_secs_f64()
                        ),
                    },
                }),
                Err(stop) => {
                    stopped = Some(stop);
                    break;
                }
            };
            let queue = run.queue();
            let Some(at) = queue.iter().position(|e| e.source_id == source_id) else {
                continue;
            };
            let failure = match answer {
                Ok(Some(read)) => {
                    take_read(&mut facts, queue.remove(at), read);
                    None
                }
                Ok(None) => Some(
                    "the provider does not know this payment (404); it is asked for again in case that passes"
                        .to_owned(),
                ),
                Err(SyncError::Source {
                    error: error @ SourceError::Refused(_),
                    ..
                }) => {
                    // An id that cannot be asked for never will be: set aside at once, named.
                    let entry = queue.remove(at);
                    tracing::warn!(payment = %source_id, %error, "a payment the change feed names cannot be asked for; it is quarantined");
                    facts.rejected.extend(feed::give_up(entry, &error.to_string()));
                    None
                }
                Err(
                    SyncError::Source { error, .. } | SyncError::RetriesExhausted { last: error, .. },
                ) => Some(error.to_string()),
                Err(error) => Some(error.to_string()),
            };
            if let Some(error) = failure {
                let entry = &mut queue[at];
                feed::failed(entry, error.clone(), Utc::now());
                if entry.attempts >= feed::MAX_ATTEMPTS {
                    let entry = queue.remove(at);
                    tracing::warn!(payment = %source_id, attempts = entry.attempts, %error, "a payment the change feed names could not be read in all its attempts; it is quarantined with what the feed said of it");
                    facts.rejected.extend(feed::give_up(entry, &error));
                } else {
                    tracing::warn!(payment = %source_id, attempts = entry.attempts, %error, "a payment the change feed names could not be read; it is put off, and later runs read it again");
                }
            }
            in_batch += 1;
            if in_batch == READ_BY_ID_BATCH {
                in_batch = 0;
                self.commit_feed(run, std::mem::take(&mut facts)).await?;
            }
        }
        self.commit_feed(run, facts).await?;
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
                .read_chargebacks(pager, None, MAX_CHARGEBACK_PAGES)
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
                return self.commit_feed(run, FeedFacts::default()).await;
            }
        };
        feed::note_pending(
            run.pending_chargebacks(),
            &chargebacks,
            Utc::now().fixed_offset(),
        );
        let mut checked = self
            .charge_back_stored(chargebacks, &HashSet::new())
            .await?;
        let undone = std::mem::take(&mut checked.to_read);
        feed::enqueue(
            run.queue(),
            undone.into_iter().map(|(id, stated)| (id, Some(stated))),
            Utc::now(),
        );
        checked.facts.position = read.position();
        checked.facts.rejected.append(&mut read.rejected);
        checked.facts.rejected.append(&mut rejected);
        run.settle_feed_health(Utc::now());
        self.commit_feed(run, checked.facts).await
    }

    /// Checks the stored payments against the latest chargeback of each in `chargebacks`
    /// (newest first): one that completed with an amount the ledger does not have is applied
    /// (or, when it does not fit the payment, set aside with its reason); a payment whose known
    /// chargeback is no longer completed is to be read again to learn its status. A payment in
    /// `queued` (read by id anyway) only gets the list's word, to apply with its read.
    async fn charge_back_stored(
        &self,
        chargebacks: Vec<Change>,
        queued: &HashSet<String>,
    ) -> Result<Checked, SyncError> {
        let mut latest = feed::latest_chargebacks(chargebacks);
        let stored = self
            .store
            .stored(latest.keys().cloned().collect())
            .await
            .map_err(SyncError::Store)?;
        let mut checked = Checked::default();
        let mut stored: Vec<Payment> = stored.into_values().collect();
        stored.sort_by(|a, b| a.id.cmp(&b.id));
        for mut payment in stored {
            let Some((source_id, stated)) = latest.remove(&payment.id) else {
                continue;
            };
            if queued.contains(&source_id) {
                checked.to_read.push((source_id, stated));
                continue;
            }
            match stated.completed_amount {
                Some(amount) if payment.charged_back_amount != Some(amount) => {
                    match feed::apply(&mut payment, &stated) {
                        Ok(()) => {
                            checked.facts.readable.push(stated.id.clone());
                            checked.facts.stated.insert(payment.id.clone());
                            checked.facts.payments.push(payment);
                        }
                        Err(rejected) => {
                            tracing::warn!(chargeback = %stated.id, reason = %rejected.reason, "a chargeback that does not fit its payment is quarantined; the payment keeps its last good state");
                            checked.facts.rejected.push(rejected);
                        }
                    }
                }
                Some(_) => checked.facts.readable.push(stated.id.clone()),
                None if payment.charged_back_amount.is_some() => {
                    checked.to_read.push((source_id, stated));
                }
                None => {}
            }
        }
        Ok(checked)
    }

    /// The provider's chargebacks, newest first, back to `since` (all of them for `None`), at
    /// most `max_pages` pages, and the entries that could not be read (to quarantine).
    async fn read_chargebacks(
        &self,
        pager: &mut Pager<'_>,
        since: Option<DateTime<FixedOffset>>,
        max_pages: usize,
    ) -> Result<(Vec<Change>, Vec<Rejected>), SyncError> {
        let mut changes = Vec::new();
        let mut rejected = Vec::new();
        let mut at: Option<Cursor> = None;
        for _ in 0..max_pages {
            let page = self.guarded(pager.chargebacks(at.as_ref())).await?;
            rejected.extend(page.rejected);
            for change in page.changes {
                if since.is_some_and(|since| change.at < since) {
                    return Ok((changes, rejected));
                }
                changes.push(change);
            }
            match page.next {
                Some(next) => at = Some(next),
                None => break,
            }
        }
        Ok((changes, rejected))
    }

    /// The changes since the last one applied, and a little past it (see [`FeedRead::step`];
    /// the first page only, on the first read, which notes where the feed stands).
    async fn read_feed(
        &self,
        pager: &mut Pager<'_>,
        run: &SourceRun,
    ) -> Result<FeedRead, SyncError> {
        let last = run.feed_position().cloned();
        let now = Utc::now().fixed_offset();
        let mut read = FeedRead::default();
        let mut at: Option<Cursor> = None;
        'pages: for _ in 0..MAX_FEED_PAGES {
            let page = self.guarded(pager.changes(at.as_ref())).await?;
            read.rejected.extend(page.rejected);
            for change in page.changes {
                let step = read.step(change, last.as_ref(), now, |created_at| {
                    run.walk_reads(created_at)
                });
                if step == Step::Stop {
                    break 'pages;
                }
            }
            match page.next {
                Some(next) if read.next_page(last.is_none()) => at = Some(next),
                _ => break,
            }
        }
        // The first read reaches wherever it stands; a later one must have found the last
        // change applied (or passed its time).
        read.reached |= last.is_none();
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

    /// Commits what a read of the change feed (or of the payments it named) gives, with the
    /// run's checkpoint as it stands (its queue and feed health included).
    async fn commit_feed(&self, run: &mut SourceRun, facts: FeedFacts) -> Result<(), SyncError> {
        let prepared = run.feed_read(facts, Utc::now());
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

/// How many times a page is asked for again smaller (over the body cap) before it counts as
/// empty.
const MAX_SMALLER_PAGES: usize = 8;

/// The most pages of the provider's chargebacks a run reads, past the first, to reach back to
/// the oldest chargeback not completed when last seen.
const MAX_PENDING_PAGES: usize = 10;

/// How many payments read by id are committed together.
const READ_BY_ID_BATCH: usize = 20;

/// What checking stored payments against the provider's chargebacks gives.
#[derive(Default)]
struct Checked {
    /// The payments with a chargeback applied, chargebacks set aside, and those that read.
    facts: FeedFacts,
    /// Payments whose chargeback is no longer completed, to read again, with that word.
    to_read: Vec<(String, StatedChargeback)>,
}

/// Takes the answer to a read by id of a queued payment into `facts`: the payment read afresh,
/// with the chargeback the feed stated applied (or set aside when it does not fit: the payment
/// then keeps the chargeback the ledger knew); a record that cannot be mapped is quarantined,
/// and so is the chargeback the feed stated of it.
fn take_read(facts: &mut FeedFacts, entry: ToRead, answer: Result<Payment, Rejected>) {
    match answer {
        Ok(mut payment) => {
            facts.readable.push(payment.source_id.clone());
            if let Some(stated) = &entry.chargeback {
                match feed::apply(&mut payment, stated) {
                    Ok(()) => {
                        facts.readable.push(stated.id.clone());
                        facts.stated.insert(payment.id.clone());
                    }
                    Err(rejected) => {
                        tracing::warn!(chargeback = %stated.id, reason = %rejected.reason, "a chargeback that does not fit its payment is quarantined; the payment keeps its last good state");
                        facts.rejected.push(rejected);
                    }
                }
            }
            facts.payments.push(payment);
        }
        Err(record) => {
            let reason = record.reason.clone();
            facts.rejected.push(record);
            // The record is quarantined under the payment's id, which a later read that maps
            // resolves; what the feed said of its chargeback is kept under the chargeback's.
            if entry.chargeback.is_some() {
                facts.rejected.extend(feed::give_up(
                    entry,
                    &format!("its payment's record cannot be read: {reason}"),
                ));
            }
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
