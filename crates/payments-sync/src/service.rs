//! [`Service`]: the long-running form of a sync for one ledger. It runs each source on a
//! schedule, and reads what webhooks name as soon as they are in the ledger's [`Inbox`]: the
//! webhook's receiver calls [`Service::hint`] (verified, before answering 2xx), and the source's
//! reader takes every pending delivery, reads each payment or group they name once, and marks
//! them processed. A delivery whose read fails is healed by the source's next run, which is
//! then started at once; a lost webhook is healed by the next scheduled run.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use payments_model::{Delivery, Hint};
use tokio::sync::Notify;

use crate::inbox::{Inbox, KEEP_DELIVERIES, Receipt, Received};
use crate::store::{Store, StoreError, Summary};
use crate::{HintsRead, SyncError, Syncer};

/// How soon a source whose run failed is run again (unless its schedule is sooner).
pub const RUN_AGAIN_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// How long the reader of a source waits after its inbox could not be read or a read failed
/// in the store, before it tries again.
const INBOX_RETRY: Duration = Duration::from_secs(1);

/// How often processed deliveries older than [`KEEP_DELIVERIES`] are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// A payment or group is read again at most this often: the webhooks for it that arrive in
/// between wait for the next read, which answers them all (the first is read at once). A storm
/// of webhooks for a few things costs a read of each a second, not one per webhook.
pub const REREAD_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// How long the reader remembers when it last read a payment or group: a delivery received
/// before that read started is answered by it, and is not read again.
const REMEMBER_READS: Duration = Duration::from_secs(600);

/// What a [`Service`] reports, for logs and metrics.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServiceEvent<'a> {
    /// A run of a source ended.
    RunEnded {
        /// The source.
        source_name: &'a str,
        /// How it ended.
        result: &'a Result<Summary, SyncError>,
    },
    /// Pending deliveries of a source were read and marked processed.
    HintsRead {
        /// The source.
        source_name: &'a str,
        /// What the reads did.
        read: &'a HintsRead,
        /// For each delivery, how long from its receipt to the commit of its reads.
        latencies: &'a [Duration],
    },
    /// The inbox of a source could not be read, or its reads could not be committed; it is
    /// tried again shortly.
    InboxFailed {
        /// The source.
        source_name: &'a str,
        /// Why.
        error: &'a (dyn std::error::Error + Send + Sync),
    },
}

type Report = dyn Fn(&ServiceEvent<'_>) + Send + Sync;

/// Why [`Service::hint`] did not take a delivery.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HintError {
    /// No source of this service has that name.
    #[error("no source named {0:?} is synced here")]
    UnknownSource(String),
    /// The inbox could not be written: the delivery is not taken (answer the provider with a
    /// 5xx, so that it delivers again).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What wakes one source's tasks.
#[derive(Default)]
struct Wake {
    /// A delivery is in the inbox.
    hints: Notify,
    /// Run the source now (a hint for the feed, or a read that failed).
    run: Notify,
}

/// Runs the sources of a [`Syncer`] on a schedule and reads webhook deliveries from the
/// ledger's inbox, until its stop signal is raised.
pub struct Service<S: Store + Inbox> {
    syncer: Arc<Syncer<S>>,
    every: Duration,
    wake: HashMap<String, Arc<Wake>>,
    report: Arc<Report>,
}

impl<S: Store + Inbox> fmt::Debug for Service<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("sources", &self.syncer.source_names())
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl<S: Store + Inbox> Service<S> {
    /// A service running each source of `syncer` every `every` (the first run at once), and
    /// reading deliveries as [`Service::hint`] stores them. The syncer's stop signal stops it.
    pub fn new(syncer: Syncer<S>, every: Duration) -> Service<S> {
        let wake = syncer
            .source_names()
            .into_iter()
            .map(|name| (name, Arc::new(Wake::default())))
            .collect();
        Service {
            syncer: Arc::new(syncer),
            every,
            wake,
            report: Arc::new(|_: &ServiceEvent<'_>| {}),
        }
    }

    /// Sends what the service does to `report` (runs ended, deliveries read, inbox failures).
    pub fn with_report(
        mut self,
        report: impl Fn(&ServiceEvent<'_>) + Send + Sync + 'static,
    ) -> Service<S> {
        self.report = Arc::new(report);
        self
    }

    /// The names of its sources.
    pub fn source_names(&self) -> Vec<String> {
        self.syncer.source_names()
    }

    /// Takes a verified webhook delivery for `source`: stores it in the ledger's inbox (one
    /// transaction) and wakes the source's reader. Answer the provider 2xx only once this
    /// returns `Ok`: a crash after that loses nothing, as the reader starts from the inbox. A
    /// redelivery (same source and key) is [`Receipt::Duplicate`] and causes no read.
    pub async fn hint(&self, source: &str, delivery: &Delivery) -> Result<Receipt, HintError> {
        let wake = self
            .wake
            .get(source)
            .ok_or_else(|| HintError::UnknownSource(source.to_owned()))?;
        let receipt = self
            .syncer
            .store()
            .receive(source, delivery, Utc::now())
            .await?;
        if receipt == Receipt::New {
            wake.hints.notify_one();
        }
        Ok(receipt)
    }

    /// Runs until the syncer's stop signal is raised: for each source, its runs on the
    /// schedule and the reader of its deliveries (those pending from before a restart first).
    /// A run or read in flight when the signal is raised stops as `sync` stops (the page in
    /// flight is dropped, nothing half-committed).
    pub async fn run(&self) {
        let mut tasks = Vec::new();
        for (name, wake) in &self.wake {
            tasks.push(tokio::spawn(runs(
                self.syncer.clone(),
                name.clone(),
                wake.clone(),
                self.every,
                self.report.clone(),
            )));
            tasks.push(tokio::spawn(reads(
                self.syncer.clone(),
                name.clone(),
                wake.clone(),
                self.report.clone(),
            )));
        }
        for task in futures::future::join_all(tasks).await {
            if let Err(error) = task
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
        }
    }
}

/// Runs `name` every `every` (sooner after a failure, at once when woken), until stopped. The
/// first run is due `every` after the last run the ledger completed (at once when it has none,
/// or an unfinished one), so that a restart does not poll what was just polled.
async fn runs<S: Store + Inbox>(
    syncer: Arc<Syncer<S>>,
    name: String,
    wake: Arc<Wake>,
    every: Duration,
    report: Arc<Report>,
) {
    let stop = syncer.stop_signal().clone();
    let first = first_run_in(syncer.store().as_ref(), &name, every).await;
    if !first.is_zero() {
        tokio::select! {
            _ = stop.raised() => return,
            () = tokio::time::sleep(first) => {}
            () = wake.run.notified() => {}
        }
    }
    while stop.reason().is_none() {
        let Some(result) = syncer.run_source(&name).await else {
            return;
        };
        report(&ServiceEvent::RunEnded {
            source_name: &name,
            result: &result,
        });
        if matches!(&result, Err(error) if error.is_stop()) && stop.reason().is_some() {
            return;
        }
        let next = match &result {
            Ok(_) => every,
            Err(_) => every.min(RUN_AGAIN_AFTER_FAILURE),
        };
        tokio::select! {
            _ = stop.raised() => return,
            () = tokio::time::sleep(next) => {}
            () = wake.run.notified() => {}
        }
    }
}

/// How long until the first run of `name` is due: `every` after the ledger's last completed run,
/// or now when it has none, has an unfinished one or cannot say.
async fn first_run_in<S: Store>(store: &S, name: &str, every: Duration) -> Duration {
    let Ok(state) = store.source_state(name).await else {
        return Duration::ZERO;
    };
    match state.checkpoint {
        Some(checkpoint) if !checkpoint.in_progress() => checkpoint
            .last_completed_at
            .and_then(|at| (Utc::now() - at).to_std().ok())
            .map_or(Duration::ZERO, |ago| every.saturating_sub(ago)),
        _ => Duration::ZERO,
    }
}

/// Reads the deliveries of `name` as they arrive (those pending at the start first), until
/// stopped.
async fn reads<S: Store + Inbox>(
    syncer: Arc<Syncer<S>>,
    name: String,
    wake: Arc<Wake>,
    report: Arc<Report>,
) {
    let stop = syncer.stop_signal().clone();
    let store = syncer.store().clone();
    let mut pruned_at: Option<tokio::time::Instant> = None;
    let mut last_read: LastReads = HashMap::new();
    while stop.reason().is_none() {
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(tokio::time::Instant::now());
            let before =
                Utc::now() - chrono::Duration::from_std(KEEP_DELIVERIES).unwrap_or_default();
            if let Err(error) = store.prune(before).await {
                tracing::warn!(source = %name, %error, "processed webhook deliveries could not be pruned; tried again in an hour");
            }
        }
        let outcome = read_pending(&syncer, &name, &wake, report.as_ref(), &mut last_read).await;
        let wait = match outcome {
            Pending::Stopped => return,
            Pending::Read => continue,
            Pending::Empty => None,
            Pending::Deferred(until) => Some(until),
            Pending::Failed => Some(INBOX_RETRY),
        };
        tokio::select! {
            _ = stop.raised() => return,
            () = wake.hints.notified() => {}
            () = async {
                match wait {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}

enum Pending {
    /// Deliveries were read: look again at once (more may have come meanwhile).
    Read,
    /// None pending.
    Empty,
    /// Those pending wait for their payment or group to be read again (in this long).
    Deferred(Duration),
    /// The inbox or the store failed: try again shortly.
    Failed,
    /// The service is stopping.
    Stopped,
}

/// What [`read_inbox`] did with the pending deliveries of a source.
#[derive(Debug)]
#[non_exhaustive]
pub enum InboxRead {
    /// None was pending.
    Empty,
    /// Those pending wait for their payment or group to be read again (in this long).
    Deferred(Duration),
    /// Deliveries were read and marked processed (more may have come meanwhile).
    Read {
        /// What the reads did.
        read: HintsRead,
        /// For each delivery answered, how long from its receipt to the commit of its reads.
        latencies: Vec<Duration>,
        /// When some pending deliveries were deferred, how long until they may be read.
        deferred: Option<Duration>,
    },
    /// The inbox could not be read, or the reads not committed: try again shortly.
    Failed(Box<dyn std::error::Error + Send + Sync>),
    /// The syncer is stopping (or has no such source).
    Stopped,
}

/// When each payment or group was last read, for [`read_inbox`]'s rule: kept by its caller
/// between passes over one source's inbox.
pub type LastReads = HashMap<Hint, DateTime<Utc>>;

/// Reads the pending deliveries of the source `name` once, by the one rule of the inbox: each
/// distinct hint they name is read once ([`Syncer::read_hints`]); a hint whose last read
/// (`last_read`) started after its delivery was received is answered by that read; one read less
/// than [`REREAD_AT_MOST_EVERY`] ago waits for the next read. Answered deliveries are marked
/// processed. `seen` receives the id of every pending delivery looked at (answered or
/// deferred). Used by [`Service`] and by the fleet's worker.
pub async fn read_inbox<S: Store + Inbox>(
    syncer: &Syncer<S>,
    name: &str,
    last_read: &mut LastReads,
    seen: &mut Vec<i64>,
) -> InboxRead {
    let store = syncer.store();
    let pending = match store.pending(name).await {
        Ok(pending) if pending.is_empty() => return InboxRead::Empty,
        Ok(pending) => pending,
        Err(error) => return InboxRead::Failed(Box::new(error)),
    };
    seen.extend(pending.iter().map(|received| received.id));
    let started = Utc::now();
    let reread_every = chrono::Duration::from_std(REREAD_AT_MOST_EVERY).unwrap_or_default();
    let mut hints: BTreeSet<Hint> = BTreeSet::new();
    let mut answered: Vec<&Received> = Vec::new();
    let mut deferred: Option<DateTime<Utc>> = None;
    for received in &pending {
        let mut waits = false;
        for hint in &received.delivery.hints {
            match last_read.get(hint) {
                Some(at) if *at > received.received_at => {}
                Some(at) if started - *at < reread_every => {
                    waits = true;
                    let due = *at + reread_every;
                    deferred = Some(deferred.map_or(due, |d| d.min(due)));
                }
                _ => {
                    hints.insert(hint.clone());
                }
            }
        }
        if !waits {
            answered.push(received);
        }
    }
    let deferred = deferred.map(|due| (due - started).to_std().unwrap_or_default());
    if answered.is_empty() {
        return InboxRead::Deferred(deferred.unwrap_or_default());
    }
    let hints: Vec<Hint> = hints.into_iter().collect();
    let read = match syncer.read_hints(name, &hints).await {
        None => return InboxRead::Stopped,
        Some(Ok(read)) => read,
        Some(Err(error)) if error.is_stop() => return InboxRead::Stopped,
        Some(Err(error)) => return InboxRead::Failed(Box::new(error)),
    };
    let ids: Vec<i64> = answered.iter().map(|received| received.id).collect();
    let now = Utc::now();
    if let Err(error) = store.processed(&ids, now).await {
        // Read and committed, but still pending: the next pass reads them again (a read too
        // many, nothing lost).
        return InboxRead::Failed(Box::new(error));
    }
    let forget = started - chrono::Duration::from_std(REMEMBER_READS).unwrap_or_default();
    last_read.retain(|_, at| *at > forget);
    for hint in hints {
        if !read.failed.iter().any(|(failed, _)| *failed == hint) && hint != Hint::Feed {
            last_read.insert(hint, started);
        }
    }
    let latencies: Vec<Duration> = answered
        .iter()
        .map(|received| (now - received.received_at).to_std().unwrap_or_default())
        .collect();
    InboxRead::Read {
        read,
        latencies,
        deferred,
    }
}

/// Reads the pending deliveries of `name` once ([`read_inbox`]); wakes the source's runs when
/// a hint asks for the feed or a read failed (the run reads what the read could not).
async fn read_pending<S: Store + Inbox>(
    syncer: &Syncer<S>,
    name: &str,
    wake: &Wake,
    report: &Report,
    last_read: &mut LastReads,
) -> Pending {
    match read_inbox(syncer, name, last_read, &mut Vec::new()).await {
        InboxRead::Empty => Pending::Empty,
        InboxRead::Deferred(until) => Pending::Deferred(until),
        InboxRead::Stopped => Pending::Stopped,
        InboxRead::Failed(error) => {
            tracing::warn!(source = %name, %error, "webhook deliveries could not be read; tried again shortly");
            report(&ServiceEvent::InboxFailed {
                source_name: name,
                error: error.as_ref(),
            });
            Pending::Failed
        }
        InboxRead::Read {
            read, latencies, ..
        } => {
            if read.feed || !read.failed.is_empty() {
                wake.run.notify_one();
            }
            report(&ServiceEvent::HintsRead {
                source_name: name,
                read: &read,
                latencies: &latencies,
            });
            Pending::Read
        }
    }
}
