//! Where a sync writes: the [`Store`] trait, and [`MemoryStore`], an in-memory implementation.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, Utc};
use payments_model::{Cursor, Group, Payment, PaymentStatus, Rejected};
use serde::{Deserialize, Serialize};

use crate::Summary;

/// What kind of run a checkpoint belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Everything, from the first page.
    Full,
    /// The last weeks (the deep-sweep window), to catch late refunds and chargebacks.
    DeepSweep,
    /// Only what can have changed since the last run.
    Incremental,
}

impl RunKind {
    /// `full`, `deep_sweep` or `incremental`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Full => "full",
            RunKind::DeepSweep => "deep_sweep",
            RunKind::Incremental => "incremental",
        }
    }

    /// The kind named by [`RunKind::as_str`].
    pub fn parse(word: &str) -> Option<RunKind> {
        [RunKind::Full, RunKind::DeepSweep, RunKind::Incremental]
            .into_iter()
            .find(|kind| kind.as_str() == word)
    }
}

/// A source's progress, committed with every page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Where an unfinished run resumes; `None` once the run finished.
    pub cursor: Option<Cursor>,
    /// The kind of the current (or last) run.
    pub run: RunKind,
    /// When the current (or last) run started.
    pub run_started_at: DateTime<Utc>,
    /// Payments created before this need not be re-read by this run (newest-first sources).
    pub horizon: Option<DateTime<Utc>>,
    /// The lookback of this run, used for the per-group decisions when it resumes.
    pub lookback_secs: u64,
    /// When the last run finished.
    pub last_completed_at: Option<DateTime<Utc>>,
    /// When the last full run or deep sweep finished.
    pub last_deep_at: Option<DateTime<Utc>>,
    /// The last `X-RateLimit-Remaining` the provider sent, and when, so that the next run
    /// (another process, a cron job right after) starts its limiter from it.
    #[serde(default)]
    pub rate_limit_seen: Option<RateLimitSeen>,
}

/// A provider's `X-RateLimit-Remaining`, as last seen, and when this client's own requests in
/// that window were answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitSeen {
    /// Requests left in the window.
    pub remaining: u32,
    /// When the response said so.
    pub at: DateTime<Utc>,
    /// When this client's requests still in the window were answered, oldest first, so the next
    /// run frees each slot when it really frees rather than all of them a window after `at`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<DateTime<Utc>>,
}

impl Checkpoint {
    /// Whether a run was interrupted (or failed) and resumes from `cursor`.
    pub fn in_progress(&self) -> bool {
        self.cursor.is_some()
    }
}

/// What the store knows of one group (an MKP link) for the incremental decisions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupState {
    /// The group's status word when last listed.
    pub status: String,
    /// The newest `created_at` among its stored unsettled payments (open, pending, unknown).
    pub newest_unsettled_at: Option<DateTime<FixedOffset>>,
    /// The newest `created_at` among its stored payments.
    pub newest_payment_at: Option<DateTime<FixedOffset>>,
    /// The newest `created_at` among its stored paid or partially refunded payments.
    pub newest_paid_at: Option<DateTime<FixedOffset>>,
}

/// What a run needs to know about a source before it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceState {
    /// The source's checkpoint, if it ever synced.
    pub checkpoint: Option<Checkpoint>,
    /// The `created_at` of its oldest unsettled stored payment created since the time asked for.
    pub oldest_unsettled: Option<DateTime<FixedOffset>>,
    /// Its groups (MKP links), by id.
    pub groups: HashMap<String, GroupState>,
}

/// One page's worth of changes, committed atomically with the new checkpoint.
#[derive(Clone, Copy, Debug)]
pub struct PageCommit<'a> {
    /// The source's checkpoint key.
    pub source: &'a str,
    /// The page's payments, upserted by id.
    pub payments: &'a [Payment],
    /// The page's records that could not be mapped.
    pub rejected: &'a [Rejected],
    /// The groups the page listed.
    pub groups: &'a [Group],
    /// The source's new checkpoint.
    pub checkpoint: &'a Checkpoint,
    /// When the page was fetched (the time of any status change it shows).
    pub observed_at: DateTime<Utc>,
}

/// What a commit changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitCounts {
    /// Payments stored for the first time.
    pub new: u64,
    /// Stored payments whose record changed.
    pub changed: u64,
    /// Stored payments that came again unchanged.
    pub unchanged: u64,
    /// Status changes that went backwards (paid → pending), kept and flagged in the history.
    pub backwards: u64,
}

/// One row of status history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// The payment's unified id.
    pub id: String,
    /// The status before.
    pub from: PaymentStatus,
    /// The status after.
    pub to: PaymentStatus,
    /// When the change was observed.
    pub observed_at: DateTime<Utc>,
    /// Whether it went backwards.
    pub backwards: bool,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

/// Where a sync writes. Implementations commit each page atomically: payments, history rows,
/// quarantined records, group states and the checkpoint all land, or none of them do.
#[async_trait]
pub trait Store: Send + Sync {
    /// What a run needs before it starts; `oldest_unsettled` considers only payments created at
    /// or after `unsettled_since`.
    async fn source_state(
        &self,
        source: &str,
        unsettled_since: DateTime<Utc>,
    ) -> Result<SourceState, StoreError>;

    /// Commits one page atomically.
    async fn commit(&self, commit: PageCommit<'_>) -> Result<CommitCounts, StoreError>;

    /// Records how a run of one source ended (for `payments status`).
    async fn record_run(&self, run: &RunRecord) -> Result<(), StoreError>;
}

/// How one run of one source ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// What it did (up to the failure, when it failed).
    pub summary: Summary,
    /// Why it failed; `None` when it completed.
    pub error: Option<String>,
}

impl RunRecord {
    /// `failed`, `quarantined` (completed, but some records could not be mapped) or `ok`.
    pub fn outcome(&self) -> &'static str {
        if self.error.is_some() {
            "failed"
        } else if self.summary.quarantined > 0 {
            "quarantined"
        } else {
            "ok"
        }
    }
}

/// Compares a stored payment with a fetched one; writes the history row when the status moved.
/// Shared by every store so that "changed" and "backwards" mean the same everywhere.
pub fn compare(
    stored: Option<&Payment>,
    fetched: &Payment,
    observed_at: DateTime<Utc>,
) -> (Change, Option<StatusChange>) {
    match stored {
        None => (Change::New, None),
        Some(stored) if stored == fetched => (Change::Unchanged, None),
        Some(stored) => (
            Change::Changed,
            status_change(&fetched.id, &stored.status, &fetched.status, observed_at),
        ),
    }
}

/// The history row for a payment whose status went from `from` to `to`; `None` when it did not
/// move. Backward moves (paid → pending) are flagged, never hidden.
pub fn status_change(
    id: &str,
    from: &PaymentStatus,
    to: &PaymentStatus,
    observed_at: DateTime<Utc>,
) -> Option<StatusChange> {
    (from != to).then(|| StatusChange {
        id: id.to_owned(),
        from: from.clone(),
        to: to.clone(),
        observed_at,
        backwards: from.is_backwards_to(to),
    })
}

/// How a fetched payment relates to the stored one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Not stored before.
    New,
    /// Stored, and different now.
    Changed,
    /// Stored, and the same.
    Unchanged,
}

impl CommitCounts {
    /// Counts one comparison.
    pub fn count(&mut self, change: Change, history: Option<&StatusChange>) {
        match change {
            Change::New => self.new += 1,
            Change::Changed => self.changed += 1,
            Change::Unchanged => self.unchanged += 1,
        }
        if history.is_some_and(|h| h.backwards) {
            self.backwards += 1;
        }
    }
}

/// Folds a payment into its group's state.
pub fn fold_group_state(state: &mut GroupState, payment: &Payment) {
    if payment.status.is_unsettled() {
        state.newest_unsettled_at = state.newest_unsettled_at.max(Some(payment.created_at));
    }
    state.newest_payment_at = state.newest_payment_at.max(Some(payment.created_at));
    if matches!(
        payment.status,
        PaymentStatus::Paid | PaymentStatus::PartiallyRefunded
    ) {
        state.newest_paid_at = state.newest_paid_at.max(Some(payment.created_at));
    }
}

/// An in-memory [`Store`], for tests and for library users who keep their own storage.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    payments: HashMap<String, (String, Payment)>,
    history: Vec<StatusChange>,
    rejected: Vec<(String, Rejected)>,
    groups: HashMap<(String, String), String>,
    checkpoints: HashMap<String, Checkpoint>,
    runs: Vec<RunRecord>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Every stored payment, sorted by `created_at` then `id`.
    pub fn payments(&self) -> Vec<Payment> {
        let inner = self.inner.lock().expect("memory store lock");
        let mut payments: Vec<Payment> = inner.payments.values().map(|(_, p)| p.clone()).collect();
        payments.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        payments
    }

    /// The status history, in the order it was observed.
    pub fn history(&self) -> Vec<StatusChange> {
        self.inner
            .lock()
            .expect("memory store lock")
            .history
            .clone()
    }

    /// The quarantined records.
    pub fn rejected(&self) -> Vec<Rejected> {
        let inner = self.inner.lock().expect("memory store lock");
        inner.rejected.iter().map(|(_, r)| r.clone()).collect()
    }

    /// The recorded runs, oldest first.
    pub fn runs(&self) -> Vec<RunRecord> {
        self.inner.lock().expect("memory store lock").runs.clone()
    }

    /// A source's checkpoint.
    pub fn checkpoint(&self, source: &str) -> Option<Checkpoint> {
        self.inner
            .lock()
            .expect("memory store lock")
            .checkpoints
            .get(source)
            .cloned()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn source_state(
        &self,
        source: &str,
        unsettled_since: DateTime<Utc>,
    ) -> Result<SourceState, StoreError> {
        let inner = self.inner.lock().expect("memory store lock");
        let mut state = SourceState {
            checkpoint: inner.checkpoints.get(source).cloned(),
            ..SourceState::default()
        };
        for ((owner, id), status) in &inner.groups {
            if owner == source {
                state.groups.insert(
                    id.clone(),
                    GroupState {
                        status: status.clone(),
                        ..GroupState::default()
                    },
                );
            }
        }
        for (owner, payment) in inner.payments.values() {
            if owner != source {
                continue;
            }
            if payment.status.is_unsettled() && payment.created_at >= unsettled_since {
                state.oldest_unsettled = Some(
                    state
                        .oldest_unsettled
                        .map_or(payment.created_at, |t| t.min(payment.created_at)),
                );
            }
            if let Some(group) = payment
                .payment_link_id
                .as_ref()
                .and_then(|id| state.groups.get_mut(id))
            {
                fold_group_state(group, payment);
            }
        }
        Ok(state)
    }

    async fn record_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        self.inner
            .lock()
            .expect("memory store lock")
            .runs
            .push(run.clone());
        Ok(())
    }

    async fn commit(&self, commit: PageCommit<'_>) -> Result<CommitCounts, StoreError> {
        let mut inner = self.inner.lock().expect("memory store lock");
        let mut counts = CommitCounts::default();
        for payment in commit.payments {
            let (change, history) = compare(
                inner.payments.get(&payment.id).map(|(_, p)| p),
                payment,
                commit.observed_at,
            );
            counts.count(change, history.as_ref());
            if change != Change::Unchanged {
                inner.payments.insert(
                    payment.id.clone(),
                    (commit.source.to_owned(), payment.clone()),
                );
            }
            inner.history.extend(history);
        }
        for rejected in commit.rejected {
            let seen = inner
                .rejected
                .iter()
                .any(|(owner, r)| owner == commit.source && r.raw == rejected.raw);
            if !seen {
                inner
                    .rejected
                    .push((commit.source.to_owned(), rejected.clone()));
            }
        }
        for group in commit.groups {
            inner.groups.insert(
                (commit.source.to_owned(), group.id.clone()),
                group.status.clone(),
            );
        }
        inner
            .checkpoints
            .insert(commit.source.to_owned(), commit.checkpoint.clone());
        Ok(counts)
    }
}
