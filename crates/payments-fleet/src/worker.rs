//! The worker: rounds of leases, one run per lease with its lease renewed, and the release.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use payments_postgres::{HintListener, HintsSeen, KeyError, Lease, MasterKey, PgLedger, PgStore};
use payments_serve::Metrics;
use payments_sources::PaymentSource;
use payments_sync::{
    Events, HintsRead, Inbox, InboxRead, LastReads, Ledger, RunRecord, StopReason, StopSignal,
    Store, StoreError, Summary, SyncError, SyncOptions, Syncer, read_inbox,
};
use tokio::task::JoinSet;

use crate::options::{OptionsError, spec_of};
use crate::schedule::{RunEnd, next_due};

/// How a worker works.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The worker's name in leases and runs, unique among live workers ([`worker_name`]).
    pub name: String,
    /// How many account-sources it syncs at once (at least 1).
    pub concurrency: usize,
    /// How long a lease holds unless renewed; it is renewed every quarter of it.
    pub lease_ttl: Duration,
    /// How long an idle worker sleeps at most before it looks for due work again.
    pub poll: Duration,
    /// Stop once nothing is due and this worker's runs are done (one round, from cron) instead
    /// of waiting for the next due time.
    pub until_idle: bool,
    /// The options of each run (its longest duration, its re-verification budget, …).
    pub sync: SyncOptions,
}

/// Why a run failed. The message is what `ledger.runs` records and `payments worker` prints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The stored options do not make a source: an unknown source, or a broken rule.
    #[error(transparent)]
    Options(#[from] OptionsError),
    /// The API key could not be opened with the master key.
    #[error("the API key cannot be opened: {0}")]
    Key(#[from] KeyError),
    /// The sync failed (boxed: a sync error is large).
    #[error(transparent)]
    Sync(Box<SyncError>),
    /// The engine returned no result for the source.
    #[error("the run produced no result")]
    NoResult,
}

impl From<SyncError> for RunError {
    fn from(error: SyncError) -> RunError {
        RunError::Sync(Box::new(error))
    }
}

/// What a worker reports as it works, for its caller to print or count.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A run ended (before its lease is released).
    RunEnded {
        /// The lease it ran under (`account_name`, `source_name`).
        lease: &'a Lease,
        /// Its summary, or why it failed.
        outcome: &'a Result<Summary, RunError>,
    },
    /// Due work could not be leased; the worker tries again after its idle sleep.
    LeaseFailed {
        /// Why.
        error: &'a StoreError,
    },
    /// Webhook hints of a leased account-source were read (before its run, if one is due).
    HintsRead {
        /// The lease (`account_name`, `source_name`).
        lease: &'a Lease,
        /// What the reads did.
        read: &'a HintsRead,
        /// For each delivery answered, from its receipt to the commit of its reads.
        latencies: &'a [Duration],
    },
    /// The hints of a leased account-source could not be read; its next lease tries again.
    HintsFailed {
        /// The lease.
        lease: &'a Lease,
        /// Why.
        error: &'a (dyn std::error::Error + Send + Sync),
    },
    /// The connection that listens for hints dropped, or could not be opened; the worker
    /// listens again with backoff (meanwhile a hinted account-source is leased at the next
    /// round anyway).
    ListenFailed {
        /// Why.
        error: Option<&'a StoreError>,
    },
    /// A lease was not released; it expires on its own, and the source is due again then.
    ReleaseFailed {
        /// The lease.
        lease: &'a Lease,
        /// Why.
        error: &'a StoreError,
    },
}

type Report = dyn Fn(&Event<'_>) + Send + Sync;

/// One worker of a fleet. See the crate docs.
pub struct Worker {
    ledger: PgLedger,
    master: Arc<MasterKey>,
    options: WorkerOptions,
    stop: StopSignal,
    report: Box<Report>,
    /// Runs of this worker that failed.
    failed: AtomicUsize,
    /// Attempts to lease due work that the database refused.
    lease_failures: AtomicUsize,
    /// Counted as runs and reads go, when given.
    metrics: Option<Arc<Metrics>>,
    /// When each payment or group of each account-source was last read by this worker, for
    /// the inbox's rule ([`read_inbox`]).
    last_reads: Mutex<HashMap<(i64, String), LastReads>>,
    last_round: LastRound,
}

/// When a worker last began a round, for its `/healthz`.
#[derive(Clone, Debug, Default)]
pub(crate) struct LastRound(Arc<Mutex<Option<std::time::Instant>>>);

impl LastRound {
    fn note(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
    }

    /// How long ago the last round began; `None` before the first.
    pub(crate) fn age(&self) -> Option<Duration> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|at| at.elapsed())
    }
}

/// How long a worker waits before it listens again after its listening connection dropped,
/// at first; doubled on each failure up to [`LISTEN_BACKOFF_MAX`].
const LISTEN_BACKOFF: Duration = Duration::from_millis(200);
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// How long deliveries whose read failed wait before their account-source is leased again.
const HINTS_RETRY: Duration = Duration::from_secs(1);

/// How many passes over one account-source's inbox a lease makes at most.
const INBOX_PASSES: usize = 8;

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("ledger", &self.ledger)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// `host:pid`, unique among live workers, and readable in `ledger.runs`.
pub fn worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

impl Worker {
    /// A worker on `ledger` whose account keys open with `master`; raising `stop` stops its
    /// runs at the next page boundary and releases their leases due at once.
    pub fn new(
        ledger: PgLedger,
        master: MasterKey,
        options: WorkerOptions,
        stop: StopSignal,
    ) -> Worker {
        Worker {
            ledger,
            master: Arc::new(master),
            options,
            stop,
            report: Box::new(|_| {}),
            failed: AtomicUsize::new(0),
            lease_failures: AtomicUsize::new(0),
            metrics: None,
            last_reads: Mutex::new(HashMap::new()),
            last_round: LastRound::default(),
        }
    }

    /// This worker, counting its runs, requests and hint reads in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Worker {
        self.metrics = Some(metrics);
        self
    }

    /// The inlet for `payments worker --listen`: webhooks for any account of this worker's
    /// ledger, verified with the secrets that open with its master key.
    pub fn inlet(&self) -> crate::FleetInlet {
        crate::FleetInlet::new(self.ledger.clone(), self.master.clone())
    }

    /// The fleet's gauges for `/metrics`, with the series of at most `per_account`
    /// account-sources.
    pub fn gauges(&self, per_account: usize) -> crate::FleetGauges {
        crate::FleetGauges::new(self.ledger.clone(), per_account)
    }

    /// The `/healthz` of this worker: its ledger answers, and it still looks for work.
    pub fn health(&self) -> crate::FleetHealth {
        crate::FleetHealth::of_worker(
            self.ledger.clone(),
            self.last_round.clone(),
            self.options.poll,
        )
    }

    /// This worker, reporting what it does to `report`.
    pub fn with_events(mut self, report: impl Fn(&Event<'_>) + Send + Sync + 'static) -> Worker {
        self.report = Box::new(report);
        self
    }

    /// The worker's options.
    pub fn options(&self) -> &WorkerOptions {
        &self.options
    }

    /// How many of this worker's runs failed so far.
    pub fn failed_runs(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    /// How many times the database refused to lease due work (a read-only server, lost
    /// rights): a round with any did not do what was due.
    pub fn lease_failures(&self) -> usize {
        self.lease_failures.load(Ordering::Relaxed)
    }

    /// Works until the worker is stopped and its runs are done, or, with
    /// [`WorkerOptions::until_idle`], until nothing is due and its runs are done. A run that
    /// panics resumes the panic here.
    pub async fn run(self: Arc<Self>) {
        let mut running = JoinSet::new();
        // Idle workers are woken by `NOTIFY payments_hints`; without the listening connection
        // they still find hinted account-sources at each round.
        let mut listener: Option<HintListener> = None;
        let mut backoff = LISTEN_BACKOFF;
        let mut listen_at = Some(tokio::time::Instant::now());
        loop {
            if listener.is_none()
                && !self.options.until_idle
                && listen_at.is_some_and(|at| at <= tokio::time::Instant::now())
            {
                match self.ledger.listen_hints().await {
                    Ok(listening) => {
                        listener = Some(listening);
                        listen_at = None;
                        backoff = LISTEN_BACKOFF;
                    }
                    Err(error) => {
                        self.tell(&Event::ListenFailed {
                            error: Some(&error),
                        });
                        listen_at = Some(tokio::time::Instant::now() + backoff);
                        backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
                    }
                }
            }
            self.round(&mut running).await;
            if self.stop.reason().is_some() && running.is_empty() {
                break;
            }
            if self.options.until_idle && running.is_empty() {
                // Nothing was leased: nothing is due that another worker does not hold.
                break;
            }
            // With every slot taken, the next chance to lease is a run's end, which wakes the
            // loop below: asking the database when work is due would only spin.
            let mut sleep = if running.len() >= self.options.concurrency.max(1) {
                self.options.poll
            } else {
                self.idle_sleep().await
            };
            if let Some(at) = listen_at {
                sleep = sleep.min(at.saturating_duration_since(tokio::time::Instant::now()));
            }
            tokio::select! {
                finished = running.join_next(), if !running.is_empty() => {
                    if let Some(Err(error)) = finished && error.is_panic() {
                        std::panic::resume_unwind(error.into_panic());
                    }
                }
                _ = tokio::time::sleep(sleep) => {}
                _ = self.stop.raised() => {}
                notified = async {
                    match listener.as_mut() {
                        Some(listening) => listening.next().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if notified.is_none() {
                        // Dropped: listen again after a backoff, and do a round meanwhile.
                        self.tell(&Event::ListenFailed { error: None });
                        listener = None;
                        listen_at = Some(tokio::time::Instant::now() + backoff);
                        backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
                    }
                }
            }
        }
    }

    /// One round: leases due account-sources until `running` holds [`WorkerOptions::concurrency`]
    /// runs, nothing is due, or the worker is stopped, and starts a run ([`Worker::sync`]) in
    /// `running` for each. Returns how many it leased.
    pub async fn round(self: &Arc<Self>, running: &mut JoinSet<()>) -> usize {
        let mut leased = 0;
        let mut answered = true;
        if let Some(metrics) = &self.metrics {
            metrics.round();
        }
        while running.len() < self.options.concurrency.max(1) && self.stop.reason().is_none() {
            match self
                .ledger
                .lease_due(&self.options.name, self.options.lease_ttl)
                .await
            {
                Ok(Some(lease)) => {
                    leased += 1;
                    if let Some(metrics) = &self.metrics {
                        metrics.leased(lease.due, lease.taken_over_from.is_some());
                    }
                    let worker = self.clone();
                    running.spawn(async move {
                        let _ = worker.sync(lease).await;
                    });
                }
                Ok(None) => break,
                Err(error) => {
                    answered = false;
                    self.lease_failures.fetch_add(1, Ordering::Relaxed);
                    self.tell(&Event::LeaseFailed { error: &error });
                    break;
                }
            }
        }
        // A round whose leasing failed (a read-only database, lost rights) is no sign of life:
        // `/healthz` turns unhealthy when such rounds go on.
        if answered {
            self.last_round.note();
        }
        leased
    }

    /// Reports `event` to the caller, counting the database's failures in the metrics.
    fn tell(&self, event: &Event<'_>) {
        if let Some(metrics) = &self.metrics {
            match event {
                Event::LeaseFailed { .. } => metrics.postgres_error("lease"),
                Event::ReleaseFailed { .. } => metrics.postgres_error("release"),
                Event::ListenFailed { .. } => metrics.postgres_error("listen"),
                _ => {}
            }
        }
        (self.report)(event);
    }

    /// How long to wait before looking for due work again: until the next source is due, at
    /// most [`WorkerOptions::poll`].
    async fn idle_sleep(&self) -> Duration {
        let poll = self.options.poll;
        match self.ledger.next_due().await {
            Ok(Some(due_in)) => due_in.clamp(Duration::from_millis(50).min(poll), poll),
            _ => poll,
        }
    }

    /// Works one lease: reads the account-source's pending webhook hints first, then syncs it
    /// once if its scheduled run is due ([`Lease::due`]; or a hint asked for the feed, or a
    /// read failed), renewing the lease meanwhile, reports how it went, and releases the lease:
    /// with the source's next due time ([`next_due`]) after a run, leaving the schedule as it
    /// was after hints alone.
    pub async fn sync(&self, lease: Lease) -> Result<(), RunError> {
        let store = Arc::new(self.ledger.leased_store(&lease));
        let started_at = Utc::now();
        let spec = match &lease.options {
            Ok(options) => spec_of(&lease.source_name, options),
            Err(unreadable) => Err(OptionsError::Unreadable(unreadable.clone())),
        };
        let every = spec.as_ref().map_or(Duration::ZERO, |spec| spec.every);
        let (outcome, seen) = match self.source(&lease, spec) {
            Ok(source) => self.run_leased(&lease, store.clone(), source).await,
            Err(error) => {
                let record = RunRecord {
                    started_at,
                    finished_at: Utc::now(),
                    summary: Summary {
                        source_name: lease.source_name.clone(),
                        ..Summary::default()
                    },
                    error: Some(error.to_string()),
                    stopped: false,
                };
                if let Err(store_error) = store.record_run(record).await {
                    tracing::warn!(
                        "{}/{}: the failed run was not recorded: {store_error}",
                        lease.account_name,
                        lease.source_name
                    );
                }
                // Its hints cannot be read either: the next run after the failure heals them.
                let pending = store
                    .pending(&lease.source_name)
                    .await
                    .map(|pending| pending.iter().map(|received| received.id).collect())
                    .unwrap_or_default();
                let seen = HintsSeen {
                    pending,
                    again_in: None,
                };
                (Some(Err(error)), seen)
            }
        };
        let Some(outcome) = outcome else {
            if let Err(error) = self.ledger.release_hinted(&lease, None, &seen).await {
                self.tell(&Event::ReleaseFailed {
                    lease: &lease,
                    error: &error,
                });
            }
            return Ok(());
        };
        let end = match &outcome {
            Ok(_) => RunEnd::Completed,
            Err(_) => RunEnd::Failed,
        };
        // The failures in a row before this run, for the backoff (this run is recorded already).
        let failed_before = match end {
            RunEnd::Failed => store
                .recent_runs(&lease.source_name, 17)
                .await
                .map(|runs| {
                    runs.iter()
                        .skip(1)
                        .take_while(|run| run.outcome() == "failed")
                        .count() as u32
                })
                .unwrap_or_default(),
            RunEnd::Completed => 0,
        };
        let next = next_due(end, every, self.stop.reason().is_some(), failed_before);
        if end == RunEnd::Failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(metrics) = &self.metrics {
            metrics.run_counted(&lease.source_name, run_outcome(&outcome));
        }
        self.tell(&Event::RunEnded {
            lease: &lease,
            outcome: &outcome,
        });
        if let Err(error) = self.ledger.release_hinted(&lease, Some(next), &seen).await {
            self.tell(&Event::ReleaseFailed {
                lease: &lease,
                error: &error,
            });
        }
        outcome.map(|_| ())
    }

    /// The leased source, with its key opened and its spec built.
    fn source(
        &self,
        lease: &Lease,
        spec: Result<payments_sources::SourceSpec, OptionsError>,
    ) -> Result<Arc<dyn PaymentSource>, RunError> {
        let key = lease.api_key(&self.master)?;
        Ok(spec?.build(&key).map_err(OptionsError::from)?)
    }

    /// The lease's work on the source: its pending hints ([`read_inbox`], a few passes), then
    /// a run when one is due, stopped at a page boundary when the worker stops or the lease is
    /// lost. `None` when no run was due; and what the hint reads saw, for the release.
    async fn run_leased(
        &self,
        lease: &Lease,
        store: Arc<PgStore>,
        source: Arc<dyn PaymentSource>,
    ) -> (Option<Result<Summary, RunError>>, HintsSeen) {
        let run_stop = StopSignal::new();
        let renewer = tokio::spawn(renew(
            self.ledger.clone(),
            lease.clone(),
            self.options.lease_ttl,
            self.stop.clone(),
            run_stop.clone(),
        ));
        let mut syncer = Syncer::new(store, self.options.sync.clone());
        if let Some(metrics) = &self.metrics {
            let counted = metrics.clone();
            syncer.with_events(Events::to(move |event| counted.on_sync(event)));
        }
        syncer
            .add_source_seen(source, lease.key_rate_limit.clone())
            .with_stop(run_stop);
        let (seen, hinted_run) = self.read_hints(lease, &syncer).await;
        let result = if lease.due || hinted_run {
            Some(match syncer.run().await.pop() {
                Some(Ok(summary)) => Ok(summary),
                Some(Err(error)) => Err(error.into()),
                None => Err(RunError::NoResult),
            })
        } else {
            None
        };
        // For the next run with this key, under whichever account and on whichever worker.
        if let Some(seen) = syncer.rate_limit_seen(&lease.source_name)
            && let Err(error) = self.ledger.note_rate_limit(lease, &seen).await
        {
            tracing::warn!("{}/{}: {error}", lease.account_name, lease.source_name);
            if let Some(metrics) = &self.metrics {
                metrics.postgres_error("rate_limit");
            }
        }
        renewer.abort();
        (result, seen)
    }

    /// Reads the pending hints of the leased source; says what was seen, and whether a run is
    /// wanted now (a hint asked for the feed, or a read failed: the run reads what it could not).
    async fn read_hints(&self, lease: &Lease, syncer: &Syncer<PgStore>) -> (HintsSeen, bool) {
        let key = (lease.account_id, lease.source_name.clone());
        let mut last_read = self
            .last_reads
            .lock()
            .map(|mut reads| reads.remove(&key).unwrap_or_default())
            .unwrap_or_default();
        let mut seen = HintsSeen::default();
        let mut run = false;
        let mut again_in: Option<Duration> = None;
        for _ in 0..INBOX_PASSES {
            match read_inbox(
                syncer,
                &lease.source_name,
                &mut last_read,
                &mut seen.pending,
            )
            .await
            {
                InboxRead::Empty | InboxRead::Stopped => break,
                InboxRead::Deferred(wait) => {
                    again_in = Some(wait);
                    break;
                }
                InboxRead::Read {
                    read,
                    latencies,
                    deferred,
                } => {
                    run |= read.feed || !read.failed.is_empty();
                    if let Some(metrics) = &self.metrics {
                        metrics.on_service(&payments_sync::ServiceEvent::HintsRead {
                            source_name: &lease.source_name,
                            read: &read,
                            latencies: &latencies,
                        });
                    }
                    self.tell(&Event::HintsRead {
                        lease,
                        read: &read,
                        latencies: &latencies,
                    });
                    if let Some(wait) = deferred {
                        again_in = Some(wait);
                        break;
                    }
                }
                InboxRead::Failed(error) => {
                    self.tell(&Event::HintsFailed {
                        lease,
                        error: error.as_ref(),
                    });
                    again_in = Some(HINTS_RETRY);
                    break;
                }
                _ => break,
            }
        }
        seen.again_in = again_in;
        if let Ok(mut reads) = self.last_reads.lock()
            && !last_read.is_empty()
        {
            reads.insert(key, last_read);
        }
        (seen, run)
    }
}

/// How a run ended, in the words of the metrics ([`payments_serve::metrics::run_outcome`]).
fn run_outcome(outcome: &Result<Summary, RunError>) -> &'static str {
    match outcome {
        Ok(summary) if summary.quarantined > 0 => "quarantined",
        Ok(_) => "ok",
        Err(RunError::Sync(error)) if error.is_stop() => "unfinished",
        Err(RunError::Sync(error)) if matches!(**error, SyncError::Unhealthy { .. }) => "unhealthy",
        Err(_) => "failed",
    }
}

/// Renews `lease` every quarter of `ttl` until aborted; stops the run (`run_stop`) when the
/// worker stops (with the worker's reason) or the lease is lost ([`StopReason::LeaseLost`]).
async fn renew(
    ledger: PgLedger,
    lease: Lease,
    ttl: Duration,
    stop: StopSignal,
    run_stop: StopSignal,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(ttl / 4) => {}
            reason = stop.raised() => {
                run_stop.stop(reason);
                return;
            }
        }
        match ledger.renew(&lease, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                run_stop.stop(StopReason::LeaseLost);
                return;
            }
            // The next renewal tries again; commits are fenced by the lease anyway.
            Err(error) => tracing::warn!("the lease was not renewed: {error}"),
        }
    }
}
