//! The worker: rounds of leases, one run per lease with its lease renewed, and the release.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use payments_postgres::{KeyError, Lease, MasterKey, PgLedger, PgStore};
use payments_sources::PaymentSource;
use payments_sync::{
    RunRecord, StopReason, StopSignal, Store, StoreError, Summary, SyncError, SyncOptions, Syncer,
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
    master: MasterKey,
    options: WorkerOptions,
    stop: StopSignal,
    report: Box<Report>,
    /// Runs of this worker that failed.
    failed: AtomicUsize,
}

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
            master,
            options,
            stop,
            report: Box::new(|_| {}),
            failed: AtomicUsize::new(0),
        }
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

    /// Works until the worker is stopped and its runs are done, or, with
    /// [`WorkerOptions::until_idle`], until nothing is due and its runs are done. A run that
    /// panics resumes the panic here.
    pub async fn run(self: Arc<Self>) {
        let mut running = JoinSet::new();
        loop {
            self.round(&mut running).await;
            if self.stop.reason().is_some() && running.is_empty() {
                break;
            }
            if self.options.until_idle && running.is_empty() {
                // Nothing was leased: nothing is due that another worker does not hold.
                break;
            }
            let sleep = self.idle_sleep().await;
            tokio::select! {
                finished = running.join_next(), if !running.is_empty() => {
                    if let Some(Err(error)) = finished && error.is_panic() {
                        std::panic::resume_unwind(error.into_panic());
                    }
                }
                _ = tokio::time::sleep(sleep) => {}
                _ = self.stop.raised() => {}
            }
        }
    }

    /// One round: leases due account-sources until `running` holds [`WorkerOptions::concurrency`]
    /// runs, nothing is due, or the worker is stopped, and starts a run ([`Worker::sync`]) in
    /// `running` for each. Returns how many it leased.
    pub async fn round(self: &Arc<Self>, running: &mut JoinSet<()>) -> usize {
        let mut leased = 0;
        while running.len() < self.options.concurrency.max(1) && self.stop.reason().is_none() {
            match self
                .ledger
                .lease_due(&self.options.name, self.options.lease_ttl)
                .await
            {
                Ok(Some(lease)) => {
                    leased += 1;
                    let worker = self.clone();
                    running.spawn(async move {
                        let _ = worker.sync(lease).await;
                    });
                }
                Ok(None) => break,
                Err(error) => {
                    (self.report)(&Event::LeaseFailed { error: &error });
                    break;
                }
            }
        }
        leased
    }

    /// How long to wait before looking for due work again: until the next source is due, at
    /// most [`WorkerOptions::poll`].
    async fn idle_sleep(&self) -> Duration {
        let poll = self.options.poll;
        match self.ledger.next_due().await {
            Ok(Some(at)) => (at - Utc::now())
                .to_std()
                .unwrap_or_default()
                .clamp(Duration::from_millis(50).min(poll), poll),
            _ => poll,
        }
    }

    /// Syncs the leased source once, renewing the lease meanwhile, reports how the run ended,
    /// and releases the lease with the source's next due time ([`next_due`]).
    pub async fn sync(&self, lease: Lease) -> Result<(), RunError> {
        let store = Arc::new(self.ledger.leased_store(&lease));
        let started_at = Utc::now();
        let spec = match &lease.options {
            Ok(options) => spec_of(&lease.source_name, options),
            Err(unreadable) => Err(OptionsError::Unreadable(unreadable.clone())),
        };
        let every = spec.as_ref().map_or(Duration::ZERO, |spec| spec.every);
        let outcome = match self.source(&lease, spec) {
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
                };
                if let Err(store_error) = store.record_run(record).await {
                    tracing::warn!(
                        "{}/{}: the failed run was not recorded: {store_error}",
                        lease.account_name,
                        lease.source_name
                    );
                }
                Err(error)
            }
        };
        let end = match &outcome {
            Ok(_) => RunEnd::Completed,
            Err(_) => RunEnd::Failed,
        };
        let next = next_due(end, every, self.stop.reason().is_some());
        if end == RunEnd::Failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        (self.report)(&Event::RunEnded {
            lease: &lease,
            outcome: &outcome,
        });
        let next_run_at = Utc::now() + chrono::Duration::from_std(next).unwrap_or_default();
        if let Err(error) = self.ledger.release(&lease, next_run_at).await {
            (self.report)(&Event::ReleaseFailed {
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

    /// One run of the source, stopped at a page boundary when the worker stops or the lease is
    /// lost.
    async fn run_leased(
        &self,
        lease: &Lease,
        store: Arc<PgStore>,
        source: Arc<dyn PaymentSource>,
    ) -> Result<Summary, RunError> {
        let run_stop = StopSignal::new();
        let renewer = tokio::spawn(renew(
            self.ledger.clone(),
            lease.clone(),
            self.options.lease_ttl,
            self.stop.clone(),
            run_stop.clone(),
        ));
        let mut syncer = Syncer::new(store, self.options.sync.clone());
        syncer.add_source(source).with_stop(run_stop);
        let result = syncer.run().await.pop();
        renewer.abort();
        match result {
            Some(Ok(summary)) => Ok(summary),
            Some(Err(error)) => Err(error.into()),
            None => Err(RunError::NoResult),
        }
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
