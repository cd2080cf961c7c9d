//! Where a sync writes: the [`Store`] trait, the plain facts it receives and answers with, and
//! [`MemoryStore`](crate::MemoryStore), an in-memory implementation.
//!
//! A store keeps what the engine tells it and answers plain questions. Every rule (what changed,
//! what "unsettled" means, which payments belong to which group) is decided by the engine
//! before a commit, so a second store is an addition, not a copy of the engine's rules.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use chrono::{DateTime, FixedOffset, Utc};
use payments_model::{
    BookKind, BookRecord, Cursor, Money, MovementKind, Payment, Rejected, Source,
};
use serde::{Deserialize, Serialize};

use crate::limiter::LimiterSnapshot;

/// What kind of run a checkpoint belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Everything, from the first page.
    Full,
    /// The last 90 days, daily, to catch late refunds and chargebacks. No longer planned:
    /// continuous re-verification replaced it; runs of older versions read back as this.
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
    /// Where the re-verification walk over the whole listing continues (newest-first sources;
    /// `None`: from the first page).
    #[serde(default)]
    pub reverify_cursor: Option<Cursor>,
    /// When the current re-verification walk started from the first page.
    #[serde(default)]
    pub reverify_started_at: Option<DateTime<Utc>>,
    /// Every payment the ledger holds was read again from the provider at or after this time:
    /// the start of the last complete full run or re-verification walk (newest-first sources),
    /// or the oldest verification of any group (MKP links). `None`: not yet.
    #[serde(default)]
    pub verified_through: Option<DateTime<Utc>>,
    /// The newest change of the source's change feed that was applied (`None`: the feed was
    /// never read). The next run reads the feed back to it.
    #[serde(default)]
    pub feed: Option<FeedPosition>,
    /// The rate limiter's state, so that the next run (another process, a cron job right
    /// after) starts its limiter from it.
    #[serde(default)]
    pub rate_limit_seen: Option<LimiterSnapshot>,
    /// Payments the change feed named that are still to be read by id, each with what the feed
    /// said of its chargeback: put off because the run's share of time for them was spent, or
    /// because their read failed (then with backoff). The feed's position moved past their
    /// changes only because they are kept here; later runs read them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_read: Vec<ToRead>,
    /// The change feed could not be read by the last runs (`None` once it reads again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed_failing: Option<Failing>,
    /// Chargebacks the provider showed as not completed yet: each run reads its list of
    /// chargebacks back to the oldest of them, so that one that completes without an event
    /// (PayPro announces only a chargeback's creation) is seen however many came after it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_chargebacks: Vec<PendingChargeback>,
}

/// A chargeback not completed yet, as last seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChargeback {
    /// The chargeback's provider id.
    pub id: String,
    /// Its payment's provider id.
    pub payment: String,
    /// When the provider made it (where it stands in its newest-first list).
    pub at: DateTime<FixedOffset>,
}

/// Where a reader of a change feed stands: the newest change it applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedPosition {
    /// The change's id (PayPro: its event id).
    pub id: String,
    /// When the provider recorded it.
    pub at: DateTime<FixedOffset>,
    /// The ids of the changes read near it (newest first): the next read goes on a little past
    /// the position, and takes only the changes it finds there that are not among these (those
    /// the provider inserted late, below changes already applied).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<String>,
}

/// A payment the change feed named, still to be read by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToRead {
    /// The payment's provider id.
    pub source_id: String,
    /// What the feed (or the provider's list of chargebacks) said of its latest chargeback,
    /// applied once the payment is read; `None` when it said nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chargeback: Option<StatedChargeback>,
    /// When the feed named it.
    pub queued_at: DateTime<Utc>,
    /// Failed reads so far (0: not tried yet).
    #[serde(default)]
    pub attempts: u32,
    /// When its first read failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    /// Why its last read failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Not read again before this (the backoff after a failed read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
}

/// A payment's latest chargeback, as the provider stated it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatedChargeback {
    /// The chargeback's provider id.
    pub id: String,
    /// Its amount when it is completed; `None` while it is not (or no longer) completed.
    pub completed_amount: Option<Money>,
    /// The chargeback as the provider described it, kept if it is quarantined.
    pub record: String,
}

/// Something a source could not do in its last runs, in a row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failing {
    /// When the first of these failures happened.
    pub since: DateTime<Utc>,
    /// How many runs in a row failed this way.
    pub runs: u32,
    /// Why the last one failed.
    pub error: String,
}

/// How many runs in a row, or how long, a failure that heals by itself may last before it makes
/// the source unhealthy (`sync` and `status` exit 1).
pub const PERSISTENT_RUNS: u32 = 3;

/// See [`PERSISTENT_RUNS`].
pub const PERSISTENT_FOR: Duration = Duration::from_secs(3600);

/// How long a payment the change feed named may wait to be read, failing or not, before the
/// source is unhealthy (its share of the runs' time cannot keep up).
pub const QUEUED_TOO_LONG: Duration = Duration::from_secs(24 * 3600);

/// Whether a failure seen `times` times since `since` has lasted long enough to be reported as
/// one: the one rule for the change feed and the payments it names.
pub(crate) fn persistent(times: u32, since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    times >= PERSISTENT_RUNS
        || (times > 0 && (now - since.min(now)).to_std().unwrap_or_default() >= PERSISTENT_FOR)
}

impl Checkpoint {
    /// The checkpoint of a `run` started at `at`, before its first page: no cursor, horizon or
    /// lookback, nothing completed or verified yet, no feed position, nothing queued. For a
    /// caller that seeds a ledger by [`Store::commit`] (a test, a benchmark, an import), with
    /// `..Checkpoint::started(run, at)` for the fields it does not set.
    pub fn started(run: RunKind, at: DateTime<Utc>) -> Checkpoint {
        Checkpoint {
            cursor: None,
            run,
            run_started_at: at,
            horizon: None,
            lookback_secs: 0,
            last_completed_at: None,
            reverify_cursor: None,
            reverify_started_at: None,
            verified_through: None,
            feed: None,
            rate_limit_seen: None,
            to_read: Vec::new(),
            feed_failing: None,
            pending_chargebacks: Vec::new(),
        }
    }

    /// Whether a run was interrupted (or failed) and resumes from `cursor`.
    pub fn in_progress(&self) -> bool {
        self.cursor.is_some()
    }

    /// What this source has put off or could not do, each in one sentence naming it: the
    /// change feed failing, payments still to be read by id. Empty when nothing is.
    pub fn set_aside(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(failing) = &self.feed_failing {
            out.push(format!(
                "the change feed could not be read in the last {} run(s), since {}: {}",
                failing.runs,
                failing
                    .since
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                failing.error
            ));
        }
        for entry in &self.to_read {
            out.push(entry.describe());
        }
        out
    }

    /// The failures that have lasted past [`PERSISTENT_RUNS`] or [`PERSISTENT_FOR`] at `now`,
    /// each in one sentence: a source with any is unhealthy.
    pub fn persistent_failures(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(failing) = &self.feed_failing
            && persistent(failing.runs, failing.since, now)
        {
            out.push(format!(
                "the change feed could not be read in {} runs in a row since {}, so late refunds and chargebacks may be missing: {}",
                failing.runs,
                failing.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                failing.error
            ));
        }
        let stuck: Vec<&ToRead> = self
            .to_read
            .iter()
            .filter(|entry| {
                entry
                    .failing_since
                    .is_some_and(|since| persistent(entry.attempts, since, now))
                    // Put off for time day after day: the feed's share cannot keep up.
                    || (now - entry.queued_at).to_std().unwrap_or_default() >= QUEUED_TOO_LONG
            })
            .collect();
        if let Some(first) = stuck.first() {
            out.push(format!(
                "{} payment(s) the change feed named could not be read for {} runs or an hour (`payments status` lists them); the first: {}",
                stuck.len(),
                PERSISTENT_RUNS,
                first.describe()
            ));
        }
        out
    }
}

impl ToRead {
    /// One sentence naming the payment and why it is still to be read.
    pub fn describe(&self) -> String {
        match &self.last_error {
            Some(error) => format!(
                "payment {} is to be read again ({} failed attempt(s) since {}): {error}",
                self.source_id,
                self.attempts,
                self.failing_since
                    .unwrap_or(self.queued_at)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => format!(
                "payment {} is still to be read (named by the change feed at {}; put off for time)",
                self.source_id,
                self.queued_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }
}

/// What the engine knows of one group (an MKP link) for its incremental decisions, folded by
/// the engine from the group's payments each time it reads them. A store keeps it as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// The group's status word when last listed.
    pub status: String,
    /// The newest `created_at` among its unsettled payments (open, pending, unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_unsettled_at: Option<DateTime<FixedOffset>>,
    /// The newest `created_at` among its payments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_payment_at: Option<DateTime<FixedOffset>>,
    /// The newest `created_at` among its paid or partially refunded payments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_paid_at: Option<DateTime<FixedOffset>>,
    /// Whether some of its records were quarantined when it was last read: it is read again by
    /// every run until they map (and their quarantine is resolved).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub holds_quarantined: bool,
    /// When its payments were last read to the end (`None`: never, or not since it was set
    /// aside). Re-verification reads the groups verified longest ago first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<DateTime<Utc>>,
    /// When it was last seen in the listing of groups: a group no longer listed is gone from
    /// the provider, and no longer counts for re-verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_at: Option<DateTime<Utc>>,
    /// How many pages of payments its last read took: what re-reading it will cost.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pages: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a store keeps of a source between runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceState {
    /// The source's checkpoint, if it ever synced.
    pub checkpoint: Option<Checkpoint>,
    /// Its groups (MKP links) by id, as last committed.
    pub groups: HashMap<String, GroupState>,
    /// Why the stored checkpoint does not read back, when it does not (`checkpoint` is then
    /// `None`, and the engine starts a full run instead of failing every run).
    pub unreadable_checkpoint: Option<String>,
    /// The provider's status words outside the status table that the ledger has already seen
    /// (and a run reported): each is reported once per ledger, not on every run.
    pub unknown_words: HashSet<String>,
}

/// One page's facts, committed atomically: everything lands, or nothing does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// The source's checkpoint key.
    pub source: String,
    /// When the page was fetched (the time of every change it shows): the stamp each of its
    /// payments is stored with. A commit does not replace a payment stored with a later stamp
    /// (see [`Store::commit`]).
    pub observed_at: DateTime<Utc>,
    /// New and changed payments, to store by `id`. A changed one supersedes the stored version,
    /// which the store keeps (see [`Version`]).
    pub payments: Vec<Payment>,
    /// Records that could not be mapped, to quarantine (once per raw record).
    pub rejected: Vec<Rejected>,
    /// Provider ids whose quarantined records are resolved: the record now maps, and its
    /// payment is among `payments` or already stored unchanged.
    pub resolved: Vec<String>,
    /// Groups and their new state, by id.
    pub groups: Vec<(String, GroupState)>,
    /// Status words outside the status table seen for the first time in this ledger, to keep
    /// (see [`SourceState::unknown_words`]).
    pub unknown_words: Vec<String>,
    /// The source's new checkpoint; `None` leaves the stored one as it is (a read a webhook
    /// asked for, which runs beside the source's run and must not move its checkpoint).
    pub checkpoint: Option<Checkpoint>,
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
    /// Status changes that went backwards (paid → pending), kept and flagged in the versions.
    pub backwards: u64,
}

impl CommitCounts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: CommitCounts) {
        self.new += other.new;
        self.changed += other.changed;
        self.unchanged += other.unchanged;
        self.backwards += other.backwards;
    }
}

/// One version of a stored payment, and when it was the ledger's knowledge. A store keeps every
/// version: committing a payment whose record differs from the stored one keeps the stored one
/// as a version superseded at the commit's `observed_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The payment as this version knew it.
    pub payment: Payment,
    /// When this version was first observed.
    pub observed_at: DateTime<Utc>,
    /// When a newer version replaced it; `None` for the current version.
    pub superseded_at: Option<DateTime<Utc>>,
    /// Only this version's status is known (`status` and `provider_status`); its other fields
    /// are copied from the version after it. Versions migrated from the status history of a
    /// ledger older than schema 6 are like this.
    pub status_only: bool,
}

impl Version {
    /// Whether this version was the ledger's knowledge at `at`.
    pub fn known_at(&self, at: DateTime<Utc>) -> bool {
        self.observed_at <= at && self.superseded_at.is_none_or(|superseded| at < superseded)
    }

    /// Whether the move from this version to `next` took the status backwards (paid → pending).
    pub fn backwards_to(&self, next: &Version) -> bool {
        self.payment.status.is_backwards_to(&next.payment.status)
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
    /// The change feed no longer reached the last change applied, so the run re-verified the
    /// whole listing instead.
    pub feed_incomplete: bool,
    /// Why this run could not read the change feed whole, when it could not: its pages, or the
    /// provider's list of chargebacks (what could be read was, and the walk was done; the next
    /// run reads the rest again).
    pub feed_error: Option<String>,
    /// Payments the change feed named that are still to be read by id after this run (put off
    /// for time or after a failed read; later runs read them).
    pub to_read: u64,
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
    /// Why it failed or stopped; `None` when it completed.
    pub error: Option<String>,
    /// Whether it was stopped before it finished (its time budget, a signal, a lost lease):
    /// `error` says why; the next run resumes where it stopped.
    pub stopped: bool,
}

/// How many runs stopped in a row, none of them making progress, make a source unhealthy.
pub const STALLED_RUNS: usize = 3;

impl RunRecord {
    /// `unfinished` (stopped before it finished; the next run resumes), `failed`,
    /// `quarantined` (completed, but some records could not be mapped) or `ok`.
    pub fn outcome(&self) -> &'static str {
        if self.error.is_some() && self.stopped {
            "unfinished"
        } else if self.error.is_some() {
            "failed"
        } else if self.summary.quarantined > 0 {
            "quarantined"
        } else {
            "ok"
        }
    }

    /// Whether it moved the ledger on: committed a page, or stored a new or changed payment.
    pub fn progressed(&self) -> bool {
        let summary = &self.summary;
        summary.pages > 0 || summary.counts.new > 0 || summary.counts.changed > 0
    }
}

/// Whether `runs` (newest first) are [`STALLED_RUNS`] runs in a row stopped without progress:
/// a source whose runs keep being stopped before they get anywhere.
pub fn stalled(runs: &[RunRecord]) -> bool {
    runs.len() >= STALLED_RUNS
        && runs[..STALLED_RUNS]
            .iter()
            .all(|run| run.outcome() == "unfinished" && !run.progressed())
}

/// Why a store failed. Callers match on the kind; the message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another sync holds the ledger's lock.
    #[error(
        "another sync is running on {ledger}; wait for it to finish (its lock is released when it exits)"
    )]
    Locked {
        /// The ledger (a path, a database name).
        ledger: String,
    },
    /// The file or database is not a payments ledger (another program's data, not a database).
    #[error("{ledger} is not a payments ledger: {detail}")]
    NotALedger {
        /// The ledger.
        ledger: String,
        /// What was found instead.
        detail: String,
    },
    /// The ledger was written by a newer version of this software.
    #[error(
        "the ledger {ledger} has schema version {found}, newer than this build's {supported}; use a newer version"
    )]
    NewerSchema {
        /// The ledger.
        ledger: String,
        /// Its schema version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The ledger cannot be written (a read-only file or directory, a read-only mount).
    #[error("the ledger {ledger} cannot be written: {detail}")]
    ReadOnly {
        /// The ledger.
        ledger: String,
        /// Why.
        detail: String,
    },
    /// The ledger's file was deleted or replaced while it was open: what would be committed now
    /// would be lost with the old file.
    #[error(
        "the ledger {ledger} was deleted or replaced while this run had it open; nothing more was committed to it"
    )]
    Gone {
        /// The ledger.
        ledger: String,
    },
    /// What was to be written conflicts with what the ledger already holds and may not change
    /// (a statement number or day issued already).
    #[error("{what}")]
    Conflict {
        /// What conflicts, and what to do.
        what: String,
    },
    /// Something stored no longer reads back.
    #[error("{what} does not read back: {detail}")]
    Corrupt {
        /// What (a checkpoint, a payment, a group state).
        what: String,
        /// Why.
        detail: String,
    },
    /// A stored value does not read back as what a store writes there (edited by hand, written
    /// by another program, damaged): named by its table, column and row, never replaced by a
    /// default.
    #[error(
        "the stored {column} of {key} (table {table}) does not read back ({detail}): `{value}`; correct or delete that row, or restore the ledger from a backup"
    )]
    Unreadable {
        /// The table, by its name in every store (`payments`, `runs`, …).
        table: &'static str,
        /// The column.
        column: &'static str,
        /// Which row, in words (`payment paypro:PP1`, `the last run of paypro`).
        key: String,
        /// The stored value, control characters escaped, cut when long.
        value: String,
        /// Why it does not read back.
        detail: String,
    },
    /// The storage backend failed (I/O, a full disk, a lost connection).
    #[error("{context}: {source}")]
    Backend {
        /// What was being done.
        context: String,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// A backend failure while doing `context`.
    pub fn backend(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError::Backend {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Where a sync writes. Each [`Store::commit`] is atomic: payments, their versions, quarantined
/// records, group states and the checkpoint all land, or none of them do.
#[async_trait]
pub trait Store: Books + Send + Sync + 'static {
    /// What the store keeps of `source` between runs: its checkpoint and its groups.
    async fn source_state(&self, source: &str) -> Result<SourceState, StoreError>;

    /// The `created_at` of the oldest payment of `source` created at or after `since` whose
    /// unified status is one of `statuses`.
    async fn oldest_created(
        &self,
        source: &str,
        since: DateTime<Utc>,
        statuses: &[&str],
    ) -> Result<Option<DateTime<FixedOffset>>, StoreError>;

    /// The provider ids of the quarantined records of `source` (those that have one).
    async fn quarantined(&self, source: &str) -> Result<HashSet<String>, StoreError>;

    /// The stored versions of the payments with these ids (those it has).
    async fn stored(&self, ids: Vec<String>) -> Result<HashMap<String, Payment>, StoreError>;

    /// Commits one page's facts atomically.
    ///
    /// **The ordering stamp.** Every committed state carries when its response was fetched
    /// ([`Commit::observed_at`], kept as the current version's `observed_at`), and a commit never
    /// replaces a state fetched later: for each payment of the commit, when the stored current
    /// version of the same id was observed strictly later than `commit.observed_at`, the commit
    /// leaves it current and records no version of its own for that payment. A payment not
    /// stored, or stored with an earlier or equal observed time, is written (the stored one kept
    /// as a version superseded at `observed_at`). Times are compared as instants at the
    /// precision the stores keep (microseconds), in the commit's own transaction
    /// ([`codec::replaces`](crate::codec::replaces)). The rest of the commit (quarantine, groups,
    /// unknown words, the checkpoint when it has one) lands as it is. So polls, feeds and reads
    /// a webhook asked for can commit in any order.
    async fn commit(&self, commit: Commit) -> Result<(), StoreError>;

    /// Records how a run of one source ended (for `payments status`).
    async fn record_run(&self, run: RunRecord) -> Result<(), StoreError>;
}

/// A record of a book listing as the ledger keeps it, with what the engine decided about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptRecord {
    /// The record as last read.
    pub record: BookRecord,
    /// When the ledger first saw it.
    pub first_seen_at: DateTime<Utc>,
    /// When an undone payout's money (rejected or failed) came back, as far as the ledger can
    /// tell: the provider sends no such time. A payout first seen already undone returns at
    /// its creation (its debit and its return fall on one day, as the provider's balance never
    /// showed it gone); one seen undone after it was seen made returns when first seen so.
    #[serde(
        default,
        alias = "undone_seen_at",
        skip_serializing_if = "Option::is_none"
    )]
    pub returned_at: Option<DateTime<Utc>>,
}

/// Where the walk of one book listing of one source stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookWalk {
    /// Where an unfinished walk resumes (`None`: at the newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Cursor>,
    /// Whether a walk has once reached the listing's end: from then on a walk stops at the
    /// first page that tells nothing new.
    #[serde(default)]
    pub complete: bool,
    /// When the last walk ended (reached its end or what it already knew).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walked_at: Option<DateTime<Utc>>,
    /// The listing could not be read by the last runs (`None` once it reads again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<Failing>,
}

/// How often a source's book listings are walked once complete: what the change feed says of
/// a record comes with it, the walk catches what the feed does not say.
pub const WALK_BOOKS_EVERY: Duration = Duration::from_secs(3600);

/// How long a record that is not yet final (a refund not carried out, a pending chargeback,
/// a payout not paid) keeps each walk going back to it.
pub const UNSETTLED_RECORDS_FOR: Duration = Duration::from_secs(120 * 24 * 3600);

/// One page of a book listing, committed atomically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordCommit {
    /// The source's name.
    pub source: String,
    /// When the page was fetched: a record is never replaced by one fetched earlier.
    pub observed_at: DateTime<Utc>,
    /// The listing.
    pub kind: BookKind,
    /// New and changed records (a changed one supersedes the stored one, which is kept as a
    /// version).
    pub records: Vec<KeptRecord>,
    /// Records that could not be mapped, to quarantine (once per raw record).
    pub rejected: Vec<Rejected>,
    /// The walk's new state.
    pub walk: BookWalk,
}

/// A statement as the ledger issued it: from then on it is written again from `body` alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedStatement {
    /// The account it is of.
    pub account: String,
    /// Sequential per account, from 1.
    pub number: u32,
    /// Its booking day.
    pub day: NaiveDate,
    /// Its closing balance, exact (`"1234.56"`).
    pub closing: String,
    /// The SHA-256 of `body`, lowercase hex.
    pub digest: String,
    /// The statement whole (JSON), as issued.
    pub body: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// The movements it books: its entries, and for an account's first statement also those
    /// its opening balance holds.
    pub bookings: Vec<Booking>,
}

/// A movement as a statement booked it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Booking {
    /// The movement's reference.
    pub reference: String,
    /// What it was and how much, as booked (`None` for one booked before the ledger kept
    /// that): a booked movement that changed since is corrected by the difference.
    pub booked: Option<(MovementKind, Money)>,
}

/// What the ledger keeps of an issued statement beside its body: enough to chain the next one
/// and to check the body when it is read ([`Books::statement_body`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementHead {
    /// The account it is of.
    pub account: String,
    /// Sequential per account, from 1.
    pub number: u32,
    /// Its booking day.
    pub day: NaiveDate,
    /// Its closing balance, exact (`"1234.56"`).
    pub closing: String,
    /// The SHA-256 of its body, lowercase hex.
    pub digest: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
}

/// The books part of a store: the records of book listings and the statements issued. Like
/// every part of a [`crate::Store`], it holds no rule: the engine decides, the store keeps.
#[async_trait]
pub trait Books: Send + Sync {
    /// Where the walk of `kind` of `source` stands; `None` before its first page.
    async fn book_walk(&self, source: &str, kind: BookKind)
    -> Result<Option<BookWalk>, StoreError>;

    /// The kept records with these unified ids (those it has).
    async fn kept_records(
        &self,
        ids: Vec<String>,
    ) -> Result<HashMap<String, KeptRecord>, StoreError>;

    /// Commits one page of a book listing: its records (the ordering stamp as for payments: a
    /// record stored from a later fetch stays), its quarantined records, the walk's state.
    async fn commit_records(&self, commit: RecordCommit) -> Result<(), StoreError>;

    /// Every kept record of `source`, sorted by `created_at` (as an instant) then id.
    async fn records(&self, source: Source) -> Result<Vec<KeptRecord>, StoreError>;

    /// The statements issued for `account`, by number, without their bodies (a year of them
    /// is the size of the year's statements).
    async fn issued(&self, account: &str) -> Result<Vec<StatementHead>, StoreError>;

    /// The body of statement `number` of `account` as issued; `None` when there is none.
    async fn statement_body(
        &self,
        account: &str,
        number: u32,
    ) -> Result<Option<String>, StoreError>;

    /// Every movement booked on a statement of `account` (or in its first opening balance).
    async fn booked(&self, account: &str) -> Result<Vec<Booking>, StoreError>;

    /// Records statements as issued, all or none: refused with [`StoreError::Conflict`] when
    /// a number or day of one of them is already issued for its account (another issue got
    /// there first), so an issued statement is never replaced.
    async fn issue(&self, statements: Vec<IssuedStatement>) -> Result<(), StoreError>;
}
