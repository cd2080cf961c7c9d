//! Turns any [`payments_model::PaymentSource`] into a complete, exact, up-to-date ledger.
//!
//! - [`Pager`] is the one paging loop: it fetches the page at a cursor, retries as
//!   [`RetryPolicy::decide`] says (capped jittered backoff within a budget, 429s waited out as
//!   told), paces requests with a [`Limiter`] for the rate limit the source declares, and
//!   refuses a repeating cursor. [`pages`], [`payments`] and [`changes`] turn it into a stream.
//! - [`Syncer`] drives several sources, each in a task of its own, into a [`Store`], committing
//!   each page atomically with the source's checkpoint, so a crash loses at most the page in
//!   flight. Runs are incremental by default: a newest-first source stops past its horizon,
//!   and groups whose payments cannot have changed are skipped. A source's change feed brings
//!   late refunds and chargebacks of any age, and every run re-verifies, within a budget, what
//!   was read longest ago.
//! - [`Store`] is the storage boundary: it receives plain facts ([`Commit`]) and answers plain
//!   questions ([`MemoryStore`] here; SQLite in `payments-sqlite`, PostgreSQL in
//!   `payments-postgres`). [`Ledger`] is its read side, what a ledger's readers ask.
//!
//! This crate knows no provider: a source declares what the engine needs (its rate limit, its
//! listing order, its groups), and the clients appear only in its tests.
//!
//! # Examples
//!
//! Keep a ledger of two sources; each is paced by the rate limit it declares:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use mkp_api::{MkpClient, MkpSource};
//! # use payments_sync::{MemoryStore, SyncOptions, Syncer};
//! # use paypro_api::{PayProClient, PayProSource};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(MemoryStore::new());
//! let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
//! syncer
//!     .add_source(Arc::new(MkpSource::new(MkpClient::new(std::env::var("MKP_API_KEY")?)?)))
//!     .add_source(Arc::new(PayProSource::new(PayProClient::new(std::env::var("PAYPRO_API_KEY")?)?)));
//! for result in syncer.run().await {
//!     match result {
//!         Ok(summary) => println!("{}: {} new, {} changed, {} requests",
//!             summary.source_name, summary.counts.new, summary.counts.changed, summary.requests),
//!         Err(error) => eprintln!("{error}"),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod books;
mod chargebacks;
pub mod codec;
mod feed;
mod hints;
mod inbox;
mod ledger;
mod limiter;
mod memory;
mod options;
mod pager;
mod retry;
mod run;
mod service;
mod store;
mod syncer;
#[cfg(test)]
mod test_data;
mod to_read;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use payments_model::{Cursor, SourceError};

pub use feed::{FEED_OVERLAP, FEED_OVERLAP_PAGES};
pub use hints::HintsRead;
pub use inbox::{Inbox, KEEP_DELIVERIES, Receipt, Received};
pub use ledger::{Filter, Ledger, PaymentStream, Quarantined};
pub use limiter::{Limiter, LimiterSnapshot, Ticket};
pub use memory::MemoryStore;
pub use options::{
    DEFAULT_REVERIFY_BUDGET, FEED_SHARE, MAX_READ_BY_ID_WAIT, READ_BY_ID_SHARE, SyncOptions,
};
pub use pager::{Pager, PagerOptions, changes, pages, payments};
pub use payments_model::RateLimit;
pub use retry::{RetryDecision, RetryPolicy};
pub use service::{
    HintError, InboxRead, LastReads, REREAD_AT_MOST_EVERY, RUN_AGAIN_AFTER_FAILURE, Service,
    ServiceEvent, read_inbox,
};
pub use store::{
    BookWalk, Booking, Books, Checkpoint, Commit, CommitCounts, Failing, FeedPosition, GroupState,
    IssuedStatement, KeptRecord, PERSISTENT_FOR, PERSISTENT_RUNS, PendingChargeback,
    QUEUED_TOO_LONG, RecordCommit, RunKind, RunRecord, STALLED_RUNS, SourceState, StatedChargeback,
    StatementHead, Store, StoreError, Summary, ToRead, UNSETTLED_RECORDS_FOR, Version,
    WALK_BOOKS_EVERY, stalled,
};
pub use syncer::Syncer;

/// Why a source's run stopped. The checkpoint keeps the last committed page, so the next run
/// resumes where this one stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The source failed in a way retrying cannot fix (a bad key, a refused link, …).
    #[error("{source_name}: {error}")]
    Source {
        /// The source.
        source_name: String,
        /// Where the failed page was.
        at: Option<Cursor>,
        /// What failed.
        error: SourceError,
    },
    /// Retrying did not help within the retry budget.
    #[error(
        "{source_name}: gave up after {attempts} attempts: {last}; the next run resumes from the last committed page"
    )]
    RetriesExhausted {
        /// The source.
        source_name: String,
        /// Where the failed page was.
        at: Option<Cursor>,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: SourceError,
    },
    /// The source pointed at a page already read in this run, which would loop forever.
    #[error(
        "{source_name}: the provider sent the same next page twice; stopped instead of looping (the next run resumes from the last committed page)"
    )]
    RepeatingCursor {
        /// The source.
        source_name: String,
        /// The repeated cursor.
        at: Option<Cursor>,
    },
    /// The run read as many pages as allowed.
    #[error("{source_name}: stopped after {pages} pages, the page budget of one run")]
    PageBudget {
        /// The source.
        source_name: String,
        /// The budget.
        pages: u64,
        /// Where the next page would have been.
        at: Option<Cursor>,
    },
    /// The run did its walk, but something it could not do has kept failing past
    /// [`PERSISTENT_RUNS`] runs or [`PERSISTENT_FOR`] (the change feed, a payment the feed
    /// names): the source is unhealthy until that heals. What the run did is in `summary`.
    #[error("{source_name}: {problem}")]
    Unhealthy {
        /// The source.
        source_name: String,
        /// What keeps failing, and why.
        problem: String,
        /// What the run did.
        summary: Box<Summary>,
    },
    /// The store failed; nothing of the page in flight was committed.
    #[error(transparent)]
    Store(StoreError),
    /// The run was asked to stop ([`StopSignal::stop`]) and stopped at a page boundary.
    #[error(
        "{source_name}: interrupted ({reason}); the next run resumes from the last committed page"
    )]
    Interrupted {
        /// The source.
        source_name: String,
        /// Why it was asked to stop.
        reason: StopReason,
    },
    /// The run reached its time budget ([`SyncOptions::max_duration`]) and stopped at a page
    /// boundary, so that it does not overlap the next scheduled run.
    #[error(
        "{source_name}: stopped after {:.0} s, the time budget of one run (--max-duration); the next run resumes from the last committed page, and `--max-duration 0` lets a run take as long as it needs",
        budget.as_secs_f64()
    )]
    OutOfTime {
        /// The source.
        source_name: String,
        /// The budget.
        budget: Duration,
    },
}

impl SyncError {
    /// Whether the run was asked to stop (a signal) or ran out of time: the run ends there,
    /// whatever step it was in, and the next run resumes.
    pub fn is_stop(&self) -> bool {
        matches!(
            self,
            SyncError::Interrupted { .. } | SyncError::OutOfTime { .. }
        )
    }
}

/// Why a run was asked to stop. Its `Display` is what a person reads (`SIGINT`, `the lease was
/// lost`), and what a run record keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// An interrupt (SIGINT, Ctrl-C): the person at the terminal asked.
    Interrupt,
    /// A request to terminate (SIGTERM): the service manager asked.
    Terminate,
    /// The fleet worker lost its lease on the source; another worker may hold it now.
    LeaseLost,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Interrupt => "SIGINT",
            StopReason::Terminate => "SIGTERM",
            StopReason::LeaseLost => "the lease was lost",
        })
    }
}

/// Asks running syncs to stop at the next page boundary: the page in flight is dropped, the
/// page being committed is committed, and the run is recorded as interrupted. Clones share one
/// signal; the first reason given is kept.
#[derive(Clone, Debug)]
pub struct StopSignal(Arc<tokio::sync::watch::Sender<Option<StopReason>>>);

impl Default for StopSignal {
    fn default() -> StopSignal {
        StopSignal(Arc::new(tokio::sync::watch::Sender::new(None)))
    }
}

impl StopSignal {
    /// A signal nobody has raised yet.
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    /// Asks every run watching this signal to stop, saying why. A signal already raised keeps
    /// its first reason.
    pub fn stop(&self, reason: StopReason) {
        self.0.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        });
    }

    /// Why it was raised, once it was.
    pub fn reason(&self) -> Option<StopReason> {
        *self.0.borrow()
    }

    /// Resolves once the signal is raised, with the reason.
    pub async fn raised(&self) -> StopReason {
        let mut receiver = self.0.subscribe();
        loop {
            if let Some(reason) = *receiver.borrow_and_update() {
                return reason;
            }
            if receiver.changed().await.is_err() {
                // The sender lives as long as `self`, so this cannot happen while we wait.
                return std::future::pending().await;
            }
        }
    }
}

#[cfg(test)]
mod stop_tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_is_kept_and_raised_resolves_with_it() {
        let stop = StopSignal::new();
        assert_eq!(stop.reason(), None);
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { stop.raised().await }
        });
        stop.stop(StopReason::Terminate);
        stop.stop(StopReason::Interrupt);
        assert_eq!(stop.reason(), Some(StopReason::Terminate));
        assert_eq!(waiter.await.unwrap(), StopReason::Terminate);
        assert_eq!(StopReason::Interrupt.to_string(), "SIGINT");
    }
}

/// The log target of the warning a retried request logs (its [`Event::Retry`] says the same):
/// a progress display that counts retries in its line can leave these lines out.
pub const RETRY_TARGET: &str = "payments_sync::retry";

/// Progress of a sync, for a progress display.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A page was committed.
    PageCommitted {
        /// The source.
        source_name: String,
        /// Payments on the page.
        payments: u64,
        /// What the commit changed.
        counts: CommitCounts,
    },
    /// The rate limiter holds a request back for about `wait` (sent before the wait, so that a
    /// display can say it is waiting while it lasts).
    RateLimitWaiting {
        /// The source.
        source_name: String,
        /// How long the wait is expected to last.
        wait: Duration,
    },
    /// The rate limiter held a request back.
    RateLimitWait {
        /// The source.
        source_name: String,
        /// How long.
        waited: Duration,
    },
    /// A request is sent to the provider (retries included).
    Request {
        /// The source.
        source_name: String,
    },
    /// A request failed and will be retried.
    Retry {
        /// The source.
        source_name: String,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// The wait before the next attempt.
        wait: Duration,
        /// What failed.
        error: String,
    },
    /// A source's run ended (and was recorded): a display can show its summary at once.
    Finished {
        /// What the run did.
        summary: Summary,
        /// Why it failed or stopped; `None` when it completed.
        error: Option<String>,
    },
}

/// Where progress events go: a callback, or nowhere.
#[derive(Clone, Default)]
pub struct Events(Option<Arc<EventCallback>>);

/// A progress callback.
type EventCallback = dyn Fn(&Event) + Send + Sync;

impl Events {
    /// Events go to `callback`.
    pub fn to(callback: impl Fn(&Event) + Send + Sync + 'static) -> Events {
        Events(Some(Arc::new(callback)))
    }

    pub(crate) fn emit(&self, event: Event) {
        if let Some(callback) = &self.0 {
            callback(&event);
        }
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Events(callback)"
        } else {
            "Events(none)"
        })
    }
}
