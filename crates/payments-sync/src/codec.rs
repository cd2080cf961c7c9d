//! The stored form of what a store keeps, written once for every store: each value a store
//! writes becomes plain column values here, and each stored value reads back here, so that the
//! stores keep only their SQL.
//!
//! - A payment is a [`PaymentRow`] (its 21 columns); it reads back from its record
//!   ([`read_record`]).
//! - A run is a [`RunRow`] (its source, start and 14 columns of how it ended).
//! - A version of a payment reads back from a [`VersionRow`].
//! - A checkpoint and a group state are JSON text ([`encode_checkpoint`], [`encode_group`]);
//!   [`source_state`] reads them back with the one rule for each that does not read back.
//! - An instant is fixed-width UTC text ([`instant`]), so that text order is time order, in a
//!   store without a type for it.
//! - A webhook delivery in the inbox reads back from an [`InboxRow`]; its hints are JSON text
//!   ([`encode_hints`], [`read_hints`]).
//! - A kept book record and a book walk are JSON text ([`encode_kept`], [`read_kept`],
//!   [`encode_walk`], [`read_walk`]); an issued statement reads back from a [`StatementRow`].
//! - The ordering stamp, [`replaces`]: whether a commit replaces a stored payment, by when each
//!   was fetched.
//!
//! A stored value that does not read back is never replaced by a default: it is a
//! [`StoreError::Unreadable`] naming the table, the column, the row and the value, except where a
//! rule here says what it means instead (a checkpoint, a group state).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use payments_model::{Delivery, Hint, Payment};

use crate::inbox::Received;
use crate::store::{BookWalk, IssuedStatement, KeptRecord, StatementHead};
use crate::store::{
    Checkpoint, CommitCounts, GroupState, RunKind, RunRecord, SourceState, StoreError, Summary,
    Version,
};

/// The table of the current version of each payment.
pub const PAYMENTS: &str = "payments";
/// The table of the superseded versions of payments.
pub const VERSIONS: &str = "versions";
/// The table of how each run ended.
pub const RUNS: &str = "runs";
/// The table of each source's checkpoint.
pub const CHECKPOINTS: &str = "checkpoints";
/// The table of each group's state.
pub const GROUPS: &str = "groups";
/// The table of the status words outside the status table.
pub const UNKNOWN_WORDS: &str = "unknown_words";
/// The table of facts about the ledger itself (its schema version).
pub const META: &str = "meta";
/// The table of webhook deliveries (the ledger's inbox).
pub const INBOX: &str = "inbox";
/// The table of the current version of each record of a book listing.
pub const BOOK_RECORDS: &str = "book_records";
/// The table of the superseded versions of book records.
pub const BOOK_VERSIONS: &str = "book_versions";
/// The table of where each book listing's walk stands.
pub const BOOK_WALKS: &str = "book_walks";
/// The table of the statements issued.
pub const STATEMENTS: &str = "statements";
/// The table of the movements each issued statement books.
pub const STATEMENT_REFS: &str = "statement_refs";

/// One stored value: the table, the column and the row it is in, for naming it when it does
/// not read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell<'a> {
    /// The table, by its name in every store ([`PAYMENTS`], [`RUNS`], …).
    pub table: &'static str,
    /// The column.
    pub column: &'static str,
    /// Which row, in words: `payment paypro:PP1`, `the last run of paypro`.
    pub key: &'a str,
}

impl<'a> Cell<'a> {
    /// The cell `column` of the row `key` of `table`.
    pub fn new(table: &'static str, column: &'static str, key: &'a str) -> Cell<'a> {
        Cell { table, column, key }
    }

    /// The error for this cell holding `value`, which does not read back because of `detail`.
    pub fn unreadable(self, value: &str, detail: impl fmt::Display) -> StoreError {
        StoreError::Unreadable {
            table: self.table,
            column: self.column,
            key: self.key.to_owned(),
            value: escape(value),
            detail: detail.to_string(),
        }
    }
}

/// How many characters of a value that does not read back an error shows.
const SHOWN: usize = 200;

/// `value` for a message: control characters escaped (`\n`, `\u{1b}`), cut after 200
/// characters.
pub fn escape(value: &str) -> String {
    let mut out = String::new();
    for (count, c) in value.chars().enumerate() {
        if count == SHOWN {
            out.push_str(&format!("… ({} bytes in all)", value.len()));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// An instant as fixed-width UTC text (`2024-06-30T12:40:10.000000Z`): text order is time order.
pub fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Reads an instant written by [`instant`] (any RFC 3339 text reads).
pub fn read_instant(text: &str, cell: Cell<'_>) -> Result<DateTime<Utc>, StoreError> {
    text.parse::<DateTime<Utc>>()
        .map_err(|e| cell.unreadable(text, e))
}

/// Reads a stored count (never below zero).
pub fn read_count(n: i64, cell: Cell<'_>) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| cell.unreadable(&n.to_string(), "a count below zero"))
}

/// The key of a payment's row in messages.
fn payment_key(id: &str) -> String {
    format!("payment {id}")
}

fn encode_error(what: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |e| StoreError::backend(format!("cannot write {what}"), e)
}

/// A stored payment as the plain values of its 21 columns, in the order the stores declare
/// them. Only `record` is read back ([`read_record`]); the other columns are there to select,
/// sort and count by, and for people reading the ledger with SQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRow<'a> {
    /// The unified id: the row's key.
    pub id: &'a str,
    /// The name of the source that stored it (its checkpoint's key).
    pub source_name: &'a str,
    /// `mkp` or `paypro`.
    pub source: &'static str,
    /// The provider's id.
    pub source_id: &'a str,
    /// The unified status word.
    pub status: &'static str,
    /// The provider's word.
    pub provider_status: &'a str,
    /// The exact amount, `12.95`.
    pub amount: String,
    /// The ISO 4217 code.
    pub currency: &'static str,
    /// The exact refunded amount.
    pub refunded_amount: Option<String>,
    /// RFC 3339 with the provider's offset.
    pub created_at: String,
    /// `created_at` as an [`instant`], for sorting and filtering.
    pub created_at_utc: String,
    /// RFC 3339 with the provider's offset.
    pub paid_at: Option<String>,
    /// See [`Payment::payer_name`].
    pub payer_name: Option<&'a str>,
    /// See [`Payment::description`].
    pub description: Option<&'a str>,
    /// See [`Payment::method`].
    pub method: Option<&'a str>,
    /// See [`Payment::processor`].
    pub processor: &'a str,
    /// See [`Payment::processor_reference`].
    pub processor_reference: Option<&'a str>,
    /// See [`Payment::payment_link_id`].
    pub payment_link_id: Option<&'a str>,
    /// See [`Payment::customer_id`].
    pub customer_id: Option<&'a str>,
    /// See [`Payment::fail_reason`].
    pub fail_reason: Option<&'a str>,
    /// The whole payment as JSON (the export's record): what reads back.
    pub record: String,
}

impl<'a> PaymentRow<'a> {
    /// The row of `payment`, stored by the source `source_name`.
    pub fn encode(
        source_name: &'a str,
        payment: &'a Payment,
    ) -> Result<PaymentRow<'a>, StoreError> {
        Ok(PaymentRow {
            id: &payment.id,
            source_name,
            source: payment.source.as_str(),
            source_id: &payment.source_id,
            status: payment.status.as_str(),
            provider_status: &payment.provider_status,
            amount: payment.amount.amount_string(),
            currency: payment.currency().code(),
            refunded_amount: payment.refunded_amount.map(|m| m.amount_string()),
            created_at: payments_model::format_timestamp(&payment.created_at),
            created_at_utc: instant(payment.created_at.with_timezone(&Utc)),
            paid_at: payment
                .paid_at
                .as_ref()
                .map(payments_model::format_timestamp),
            payer_name: payment.payer_name.as_deref(),
            description: payment.description.as_deref(),
            method: payment.method.as_deref(),
            processor: &payment.processor,
            processor_reference: payment.processor_reference.as_deref(),
            payment_link_id: payment.payment_link_id.as_deref(),
            customer_id: payment.customer_id.as_deref(),
            fail_reason: payment.fail_reason.as_deref(),
            record: serde_json::to_string(payment).map_err(encode_error("a payment"))?,
        })
    }
}

/// Reads back the stored record of the payment `id` (in `table`: [`PAYMENTS`] or
/// [`VERSIONS`]).
pub fn read_record(record: &str, table: &'static str, id: &str) -> Result<Payment, StoreError> {
    serde_json::from_str(record)
        .map_err(|e| Cell::new(table, "record", &payment_key(id)).unreadable(record, e))
}

/// The ordering stamp: whether a commit of a page fetched at `observed_at` replaces the stored
/// current version of the payment `id`, which was fetched at `stored` (its `updated_at`, an
/// [`instant`]). It does unless the stored one was fetched later: a commit never replaces a
/// state fetched after its own. Both are compared as instants at the precision the stores keep
/// (microseconds; `observed_at` is cut to it as [`instant`] and a `timestamptz` cut it), so a
/// commit of the same instant as the stored one replaces it, as every commit did before.
pub fn replaces(stored: &str, id: &str, observed_at: DateTime<Utc>) -> Result<bool, StoreError> {
    use chrono::SubsecRound;
    let stored = read_instant(stored, Cell::new(PAYMENTS, "updated_at", &payment_key(id)))?;
    Ok(stored <= observed_at.trunc_subsecs(6))
}

/// Reads back the `created_at_utc` column of a payment (an [`instant`]), with the provider's
/// offset lost (UTC).
pub fn read_created_at_utc(text: &str, id: &str) -> Result<DateTime<FixedOffset>, StoreError> {
    read_instant(
        text,
        Cell::new(PAYMENTS, "created_at_utc", &payment_key(id)),
    )
    .map(|at| at.fixed_offset())
}

/// One version of a payment as stored: a superseded one (in [`VERSIONS`]) or the current one
/// (in [`PAYMENTS`], never superseded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRow {
    /// The table it is in.
    pub table: &'static str,
    /// The payment's record.
    pub record: String,
    /// When it was first observed (an [`instant`]).
    pub observed_at: String,
    /// When it was superseded (an [`instant`]).
    pub superseded_at: Option<String>,
    /// See [`Version::status_only`].
    pub status_only: bool,
}

impl VersionRow {
    /// Reads the version back.
    pub fn decode(&self, payment_id: &str) -> Result<Version, StoreError> {
        let key = payment_key(payment_id);
        let time = |text: &str, column| read_instant(text, Cell::new(self.table, column, &key));
        Ok(Version {
            payment: read_record(&self.record, self.table, payment_id)?,
            observed_at: time(
                &self.observed_at,
                if self.table == PAYMENTS {
                    "updated_at"
                } else {
                    "observed_at"
                },
            )?,
            superseded_at: self
                .superseded_at
                .as_deref()
                .map(|text| time(text, "superseded_at"))
                .transpose()?,
            status_only: self.status_only,
        })
    }
}

/// How one run ended, as stored: its source and start, then the 14 columns of how it ended, in
/// the order the stores declare them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRow {
    /// The source's name.
    pub source_name: String,
    /// When it started (an [`instant`]).
    pub started_at: String,
    /// When it ended (an [`instant`]).
    pub finished_at: String,
    /// [`RunKind::as_str`], `None` for a run that failed before it started.
    pub kind: Option<String>,
    /// Whether it resumed an interrupted run.
    pub resumed: bool,
    /// Pages committed.
    pub pages: i64,
    /// Requests made.
    pub requests: i64,
    /// New payments.
    pub new: i64,
    /// Changed payments.
    pub changed: i64,
    /// Unchanged payments.
    pub unchanged: i64,
    /// Backward status moves.
    pub backwards: i64,
    /// Records quarantined.
    pub quarantined: i64,
    /// Time spent waiting, in milliseconds.
    pub waited_ms: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// See [`Summary::feed_incomplete`].
    pub feed_incomplete: bool,
    /// See [`RunRecord::stopped`].
    pub stopped: bool,
}

impl RunRow {
    /// The row of `run`.
    pub fn encode(run: &RunRecord) -> RunRow {
        let summary = &run.summary;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        RunRow {
            source_name: summary.source_name.clone(),
            started_at: instant(run.started_at),
            finished_at: instant(run.finished_at),
            kind: summary.run.map(|kind| kind.as_str().to_owned()),
            resumed: summary.resumed,
            pages: count(summary.pages),
            requests: count(summary.requests),
            new: count(summary.counts.new),
            changed: count(summary.counts.changed),
            unchanged: count(summary.counts.unchanged),
            backwards: count(summary.counts.backwards),
            quarantined: count(summary.quarantined),
            waited_ms: i64::try_from(summary.waited.as_millis()).unwrap_or(i64::MAX),
            error: run.error.clone(),
            feed_incomplete: summary.feed_incomplete,
            stopped: run.stopped,
        }
    }

    /// Reads the run back. What a checkpoint keeps (the feed failing, payments to read) is not
    /// a run's column: `payments status` reads it from the checkpoint.
    pub fn decode(&self) -> Result<RunRecord, StoreError> {
        let key = format!("the last run of {}", self.source_name);
        let cell = |column| Cell::new(RUNS, column, &key);
        let count = |n: i64, column| read_count(n, cell(column));
        let run = self
            .kind
            .as_deref()
            .map(|word| {
                RunKind::parse(word).ok_or_else(|| {
                    cell("kind")
                        .unreadable(word, "not a kind of run (full, deep_sweep, incremental)")
                })
            })
            .transpose()?;
        Ok(RunRecord {
            started_at: read_instant(&self.started_at, cell("started_at"))?,
            finished_at: read_instant(&self.finished_at, cell("finished_at"))?,
            summary: Summary {
                source_name: self.source_name.clone(),
                run,
                resumed: self.resumed,
                pages: count(self.pages, "pages")?,
                requests: count(self.requests, "requests")?,
                counts: CommitCounts {
                    new: count(self.new, "new")?,
                    changed: count(self.changed, "changed")?,
                    unchanged: count(self.unchanged, "unchanged")?,
                    backwards: count(self.backwards, "backwards")?,
                },
                quarantined: count(self.quarantined, "quarantined")?,
                waited: Duration::from_millis(count(self.waited_ms, "waited_ms")?),
                feed_incomplete: self.feed_incomplete,
                ..Summary::default()
            },
            error: self.error.clone(),
            stopped: self.stopped,
        })
    }
}

/// A checkpoint as stored: JSON text.
pub fn encode_checkpoint(checkpoint: &Checkpoint) -> Result<String, StoreError> {
    serde_json::to_string(checkpoint).map_err(encode_error("a checkpoint"))
}

/// Reads back the stored checkpoint of `source_name`.
pub fn read_checkpoint(text: &str, source_name: &str) -> Result<Checkpoint, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| Cell::new(CHECKPOINTS, "checkpoint", source_name).unreadable(text, e))
}

/// The one rule for a checkpoint that does not read back: it is no checkpoint (the next run
/// resets it and reads everything, instead of failing run after run), and why it does not read
/// back is said (`payments status` shows it). Returns the checkpoint, or why it does not read
/// back; every other failure stays a failure.
pub fn tolerate_unreadable_checkpoint(
    read: Result<Option<Checkpoint>, StoreError>,
) -> Result<(Option<Checkpoint>, Option<String>), StoreError> {
    match read {
        Ok(checkpoint) => Ok((checkpoint, None)),
        Err(StoreError::Unreadable { table, detail, .. }) if table == CHECKPOINTS => {
            Ok((None, Some(detail)))
        }
        Err(error) => Err(error),
    }
}

/// A group's state as stored: JSON text.
pub fn encode_group(state: &GroupState) -> Result<String, StoreError> {
    serde_json::to_string(state).map_err(encode_error("a group's state"))
}

/// Reads back the stored state of the group `id` of `source_name`.
pub fn read_group(text: &str, source_name: &str, id: &str) -> Result<GroupState, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        Cell::new(GROUPS, "state", &format!("group {id} of {source_name}")).unreadable(text, e)
    })
}

/// What a store keeps of `source_name` between runs, from its stored checkpoint (if any), its
/// groups' states (by id) and the unknown status words it has seen.
///
/// The rules for what does not read back: a checkpoint, see
/// [`tolerate_unreadable_checkpoint`]; a group's state is left out (the engine then knows
/// nothing of the group and reads it again, which writes a good state).
pub fn source_state(
    source_name: &str,
    checkpoint: Option<&str>,
    groups: impl IntoIterator<Item = (String, String)>,
    unknown_words: HashSet<String>,
) -> Result<SourceState, StoreError> {
    let (checkpoint, unreadable_checkpoint) = tolerate_unreadable_checkpoint(
        checkpoint
            .map(|text| read_checkpoint(text, source_name))
            .transpose(),
    )?;
    let mut states = HashMap::new();
    for (id, text) in groups {
        match read_group(&text, source_name, &id) {
            Ok(state) => {
                states.insert(id, state);
            }
            Err(error) => tracing::warn!(%error, "the group is read again"),
        }
    }
    Ok(SourceState {
        checkpoint,
        groups: states,
        unreadable_checkpoint,
        unknown_words,
    })
}

/// Reads back when the status word `word` of `source_name` was first seen (an [`instant`]).
pub fn read_word_seen(
    text: &str,
    source_name: &str,
    word: &str,
) -> Result<DateTime<Utc>, StoreError> {
    read_instant(
        text,
        Cell::new(
            UNKNOWN_WORDS,
            "first_seen_at",
            &format!("the word {word:?} of {source_name}"),
        ),
    )
}

/// The hints of a delivery as stored: JSON text (`[{"read":"payment","id":"PP1"}]`).
pub fn encode_hints(hints: &[Hint]) -> Result<String, StoreError> {
    serde_json::to_string(hints).map_err(encode_error("a delivery's hints"))
}

/// The key of a delivery's row in messages.
fn delivery_key(source_name: &str, key: &str) -> String {
    format!("delivery {key} of {source_name}")
}

/// Reads back the stored hints of the delivery `key` of `source_name`.
pub fn read_hints(text: &str, source_name: &str, key: &str) -> Result<Vec<Hint>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| Cell::new(INBOX, "hints", &delivery_key(source_name, key)).unreadable(text, e))
}

/// A delivery as the inbox stores it, not yet processed: the columns [`InboxRow::decode`]
/// reads back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxRow {
    /// The inbox's own id for it.
    pub id: i64,
    /// The source it came for.
    pub source_name: String,
    /// The delivery's key (unique per source).
    pub key: String,
    /// The provider's word for what happened.
    pub kind: String,
    /// Its hints ([`encode_hints`]).
    pub hints: String,
    /// When it was received (an [`instant`]).
    pub received_at: String,
}

impl InboxRow {
    /// Reads the delivery back.
    pub fn decode(&self) -> Result<Received, StoreError> {
        let key = delivery_key(&self.source_name, &self.key);
        Ok(Received {
            id: self.id,
            source: self.source_name.clone(),
            delivery: Delivery {
                key: self.key.clone(),
                kind: self.kind.clone(),
                hints: read_hints(&self.hints, &self.source_name, &self.key)?,
            },
            received_at: read_instant(&self.received_at, Cell::new(INBOX, "received_at", &key))?,
        })
    }
}

/// Reads back the ledger's schema version (in [`META`]).
pub fn read_schema_version(text: &str) -> Result<i64, StoreError> {
    text.parse()
        .map_err(|e| Cell::new(META, "value", "schema_version").unreadable(text, e))
}

/// A stored value by where it is, for tests that write a raw value where a store keeps one (as
/// a ledger edited by hand or damaged would hold it) and check what reading it back does:
/// `MemoryStore::write_raw`, and the store suite's hook for each store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stored<'a> {
    /// The checkpoint of a source (JSON text).
    Checkpoint {
        /// The source's name.
        source: &'a str,
    },
    /// The state of a group of a source (JSON).
    GroupState {
        /// The source's name.
        source: &'a str,
        /// The group's id.
        id: &'a str,
    },
    /// When the last run of a source started (an instant).
    LastRunStartedAt {
        /// The source's name.
        source: &'a str,
    },
    /// The record of a stored payment (JSON).
    Record {
        /// The payment's unified id.
        id: &'a str,
    },
    /// The hints of a delivery in the inbox (JSON).
    Hints {
        /// The source it came for.
        source: &'a str,
        /// The delivery's key.
        key: &'a str,
    },
}

/// A kept book record as stored: JSON text.
pub fn encode_kept(kept: &KeptRecord) -> Result<String, StoreError> {
    serde_json::to_string(kept).map_err(encode_error("a book record"))
}

/// Reads back the stored book record `id`.
pub fn read_kept(text: &str, id: &str) -> Result<KeptRecord, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| Cell::new(BOOK_RECORDS, "record", &format!("record {id}")).unreadable(text, e))
}

/// A book walk's state as stored: JSON text.
pub fn encode_walk(walk: &BookWalk) -> Result<String, StoreError> {
    serde_json::to_string(walk).map_err(encode_error("a book walk"))
}

/// Reads back the stored walk of the `kind` listing of `source_name`. One that does not read
/// back is unreadable, never a fresh walk: a fresh walk would take the listing for complete.
pub fn read_walk(text: &str, source_name: &str, kind: &str) -> Result<BookWalk, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        Cell::new(
            BOOK_WALKS,
            "walk",
            &format!("the {kind} walk of {source_name}"),
        )
        .unreadable(text, e)
    })
}

/// An issued statement as stored: its columns but the body (written from
/// [`IssuedStatement::body`], read alone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementRow {
    /// The account.
    pub account: String,
    /// Its number.
    pub number: i64,
    /// Its day, `YYYY-MM-DD`.
    pub day: String,
    /// Its closing balance, exact.
    pub closing: String,
    /// SHA-256 of the body, lowercase hex.
    pub digest: String,
    /// When it was issued (an [`instant`]).
    pub issued_at: String,
}

impl StatementRow {
    /// The row of `statement`.
    pub fn encode(statement: &IssuedStatement) -> StatementRow {
        StatementRow {
            account: statement.account.clone(),
            number: i64::from(statement.number),
            day: statement.day.format("%Y-%m-%d").to_string(),
            closing: statement.closing.clone(),
            digest: statement.digest.clone(),
            issued_at: instant(statement.issued_at),
        }
    }

    /// Reads the statement's head back.
    pub fn decode(&self) -> Result<StatementHead, StoreError> {
        let key = format!("statement {} of {}", self.number, self.account);
        let cell = |column| Cell::new(STATEMENTS, column, &key);
        Ok(StatementHead {
            account: self.account.clone(),
            number: u32::try_from(self.number)
                .map_err(|e| cell("number").unreadable(&self.number.to_string(), e))?,
            day: chrono::NaiveDate::parse_from_str(&self.day, "%Y-%m-%d")
                .map_err(|e| cell("day").unreadable(&self.day, e))?,
            closing: self.closing.clone(),
            digest: self.digest.clone(),
            issued_at: read_instant(&self.issued_at, cell("issued_at"))?,
        })
    }
}

/// The stored text of what a booking booked: its kind and exact amount, as JSON.
pub fn encode_booking(booking: &crate::store::Booking) -> Option<String> {
    booking.booked.map(|(kind, amount)| {
        serde_json::json!({
            "kind": kind,
            "amount": amount.amount_string(),
            "currency": amount.currency().code(),
        })
        .to_string()
    })
}

/// Reads back what a booking of `reference` on a statement of `account` booked (`None` stored:
/// booked before the ledger kept that).
pub fn read_booking(
    account: &str,
    reference: String,
    text: Option<String>,
) -> Result<crate::store::Booking, StoreError> {
    let Some(text) = text else {
        return Ok(crate::store::Booking {
            reference,
            booked: None,
        });
    };
    let key = format!("booking {reference} of {account}");
    let unreadable =
        |detail: String| Cell::new(STATEMENT_REFS, "booking", &key).unreadable(&text, detail);
    #[derive(serde::Deserialize)]
    struct Stored {
        kind: payments_model::MovementKind,
        amount: String,
        currency: String,
    }
    let stored: Stored = serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
    let currency = payments_model::Currency::from_code(&stored.currency)
        .map_err(|e| unreadable(e.to_string()))?;
    let amount = payments_model::Money::parse(&stored.amount, currency)
        .map_err(|e| unreadable(e.to_string()))?;
    Ok(crate::store::Booking {
        reference,
        booked: Some((stored.kind, amount)),
    })
}

/// The conflict of issuing a statement whose number or day is already issued for its account.
pub fn already_issued(account: &str, number: u32, day: chrono::NaiveDate) -> StoreError {
    StoreError::Conflict {
        what: format!(
            "statement {number} ({day}) of account {account} was issued meanwhile by another run; ask again: issued statements are given as they were"
        ),
    }
}
