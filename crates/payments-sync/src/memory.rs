//! [`MemoryStore`]: a [`Store`] and [`Ledger`] in memory, keeping each value in the stored form
//! of [`crate::codec`], as the other stores do, so that it reads back through the same rules.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, Utc};
use payments_model::{BookKind, Delivery, Payment, Rejected, Source};

use crate::codec::{self, InboxRow, PaymentRow, RunRow, StatementRow, Stored, VersionRow};
use crate::inbox::{Inbox, Receipt, Received};
use crate::ledger::{Filter, Ledger, PaymentStream, Quarantined};
use crate::store::{
    BookWalk, Booking, Books, IssuedStatement, KeptRecord, RecordCommit, StatementHead,
};
use crate::store::{Checkpoint, Commit, RunRecord, SourceState, Store, StoreError, Version};

/// An in-memory [`Store`] and [`Ledger`], for tests and for library users who keep their own
/// storage. It keeps every value as the stored form of [`crate::codec`] (records and
/// checkpoints as JSON text, instants as text), so it reads back as the other stores do, and
/// [`MemoryStore::write_raw`] can put a value there that does not read back.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Rows>,
}

/// The rows, as a database would hold them.
#[derive(Debug, Default)]
struct Rows {
    /// The current version of each payment, by id.
    payments: HashMap<String, PaymentRecordRow>,
    /// The superseded versions, oldest first.
    versions: Vec<SupersededRow>,
    quarantine: Vec<QuarantineRow>,
    /// Each group's state, by source and id.
    groups: HashMap<(String, String), String>,
    /// Each unknown word of each source, with when it was first seen.
    unknown_words: BTreeMap<(String, String), String>,
    checkpoints: HashMap<String, String>,
    runs: Vec<RunRow>,
    /// The webhook deliveries, in the order received.
    inbox: Vec<InboxEntry>,
    /// The id of the last delivery received (ids are never reused).
    inbox_last_id: i64,
    /// The current version of each book record, by id.
    book_records: HashMap<String, BookRecordRow>,
    /// Superseded versions of book records: id, record, observed, superseded.
    book_versions: Vec<(String, String, String, String)>,
    /// Each book walk, by source and kind.
    book_walks: HashMap<(String, String), String>,
    /// The statements issued, in the order issued.
    statements: Vec<(StatementRow, String)>,
    /// The references booked, by account.
    /// By account and reference: the stored text of what it booked.
    statement_refs: HashMap<(String, String), Option<String>>,
}

/// A book record's columns and its record.
#[derive(Debug)]
struct BookRecordRow {
    source: &'static str,
    created_at_utc: String,
    record: String,
    updated_at: String,
}

/// A delivery in the inbox, and when it was processed (an instant).
#[derive(Debug)]
struct InboxEntry {
    row: InboxRow,
    processed_at: Option<String>,
}

/// The columns of a payment this store selects, sorts and counts by, and its record.
#[derive(Debug)]
struct PaymentRecordRow {
    source_name: String,
    source: &'static str,
    status: &'static str,
    created_at_utc: String,
    record: String,
    updated_at: String,
}

/// A superseded version, with the columns of its payment then.
#[derive(Debug)]
struct SupersededRow {
    payment_id: String,
    source: &'static str,
    status: &'static str,
    created_at_utc: String,
    version: VersionRow,
}

#[derive(Debug)]
struct QuarantineRow {
    source_name: String,
    rejected: Rejected,
    first_seen_at: String,
}

/// Unwraps what only [`MemoryStore::write_raw`] can make fail.
fn readable<T>(read: Result<T, StoreError>) -> T {
    read.unwrap_or_else(|error| panic!("{error}"))
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn inner(&self) -> MutexGuard<'_, Rows> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every stored payment, sorted by `created_at` then `id`. Panics when a record does not
    /// read back (only [`MemoryStore::write_raw`] makes one).
    pub fn payments(&self) -> Vec<Payment> {
        let mut payments: Vec<Payment> = self
            .inner()
            .payments
            .iter()
            .map(|(id, row)| readable(codec::read_record(&row.record, codec::PAYMENTS, id)))
            .collect();
        payments.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        payments
    }

    /// Every version of a payment, oldest first (the last is the current one). Panics when one
    /// does not read back.
    pub fn versions(&self, id: &str) -> Vec<Version> {
        readable(self.inner().versions_of(id))
    }

    /// The quarantined records.
    pub fn rejected(&self) -> Vec<Rejected> {
        self.inner()
            .quarantine
            .iter()
            .map(|row| row.rejected.clone())
            .collect()
    }

    /// The recorded runs, oldest first. Panics when one does not read back.
    pub fn runs(&self) -> Vec<RunRecord> {
        self.inner()
            .runs
            .iter()
            .map(|row| readable(row.decode()))
            .collect()
    }

    /// A source's checkpoint. Panics when it does not read back.
    pub fn checkpoint(&self, source: &str) -> Option<Checkpoint> {
        self.inner()
            .checkpoints
            .get(source)
            .map(|text| readable(codec::read_checkpoint(text, source)))
    }

    /// Writes `value` raw where the store keeps `place`, as a ledger edited by hand or damaged
    /// would hold it: for tests of what reading it back does. Returns whether there was such a
    /// value (nothing is written when there is none yet).
    pub fn write_raw(&self, place: Stored<'_>, value: &str) -> bool {
        let mut inner = self.inner();
        let slot = match place {
            Stored::Checkpoint { source } => inner.checkpoints.get_mut(source),
            Stored::GroupState { source, id } => {
                inner.groups.get_mut(&(source.to_owned(), id.to_owned()))
            }
            Stored::LastRunStartedAt { source } => inner
                .runs
                .iter_mut()
                .rev()
                .find(|run| run.source_name == source)
                .map(|run| &mut run.started_at),
            Stored::Record { id } => inner.payments.get_mut(id).map(|row| &mut row.record),
            Stored::Hints { source, key } => inner
                .inbox
                .iter_mut()
                .find(|entry| entry.row.source_name == source && entry.row.key == key)
                .map(|entry| &mut entry.row.hints),
        };
        match slot {
            Some(slot) => {
                *slot = value.to_owned();
                true
            }
            None => false,
        }
    }
}

impl Rows {
    fn versions_of(&self, id: &str) -> Result<Vec<Version>, StoreError> {
        let current = self.payments.get(id).map(|row| VersionRow {
            table: codec::PAYMENTS,
            record: row.record.clone(),
            observed_at: row.updated_at.clone(),
            superseded_at: None,
            status_only: false,
        });
        self.versions
            .iter()
            .filter(|row| row.payment_id == id)
            .map(|row| &row.version)
            .chain(current.as_ref())
            .map(|row| row.decode(id))
            .collect()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn source_state(&self, source: &str) -> Result<SourceState, StoreError> {
        let inner = self.inner();
        codec::source_state(
            source,
            inner.checkpoints.get(source).map(String::as_str),
            inner
                .groups
                .iter()
                .filter(|((owner, _), _)| owner == source)
                .map(|((_, id), state)| (id.clone(), state.clone())),
            inner
                .unknown_words
                .keys()
                .filter(|(owner, _)| owner == source)
                .map(|(_, word)| word.clone())
                .collect(),
        )
    }

    async fn oldest_created(
        &self,
        source: &str,
        since: DateTime<Utc>,
        statuses: &[&str],
    ) -> Result<Option<DateTime<FixedOffset>>, StoreError> {
        let since = codec::instant(since);
        self.inner()
            .payments
            .iter()
            .filter(|(_, row)| {
                row.source_name == source
                    && row.created_at_utc >= since
                    && statuses.contains(&row.status)
            })
            .min_by(|(_, a), (_, b)| a.created_at_utc.cmp(&b.created_at_utc))
            .map(|(id, row)| codec::read_created_at_utc(&row.created_at_utc, id))
            .transpose()
    }

    async fn quarantined(&self, source: &str) -> Result<HashSet<String>, StoreError> {
        Ok(self
            .inner()
            .quarantine
            .iter()
            .filter(|row| row.source_name == source)
            .filter_map(|row| row.rejected.source_id.clone())
            .collect())
    }

    async fn stored(&self, ids: Vec<String>) -> Result<HashMap<String, Payment>, StoreError> {
        let inner = self.inner();
        ids.into_iter()
            .filter_map(|id| {
                let row = inner.payments.get(&id)?;
                Some(codec::read_record(&row.record, codec::PAYMENTS, &id).map(|p| (id, p)))
            })
            .collect()
    }

    async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        let observed = codec::instant(commit.observed_at);
        let mut rows = Vec::with_capacity(commit.payments.len());
        for payment in &commit.payments {
            let row = PaymentRow::encode(&commit.source, payment)?;
            rows.push((
                payment.id.clone(),
                PaymentRecordRow {
                    source_name: row.source_name.to_owned(),
                    source: row.source,
                    status: row.status,
                    created_at_utc: row.created_at_utc,
                    record: row.record,
                    updated_at: observed.clone(),
                },
            ));
        }
        let groups = commit
            .groups
            .iter()
            .map(|(id, state)| {
                Ok((
                    (commit.source.clone(), id.clone()),
                    codec::encode_group(state)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let checkpoint = commit
            .checkpoint
            .as_ref()
            .map(codec::encode_checkpoint)
            .transpose()?;

        let mut inner = self.inner();
        for (id, row) in rows {
            // The ordering stamp: a payment stored from a later fetch stays current.
            if let Some(stored) = inner.payments.get(&id)
                && !codec::replaces(&stored.updated_at, &id, commit.observed_at)?
            {
                continue;
            }
            // A stored payment that the commit replaces is kept as a version first.
            if let Some(stored) = inner.payments.insert(id.clone(), row) {
                inner.versions.push(SupersededRow {
                    payment_id: id,
                    source: stored.source,
                    status: stored.status,
                    created_at_utc: stored.created_at_utc,
                    version: VersionRow {
                        table: codec::VERSIONS,
                        record: stored.record,
                        observed_at: stored.updated_at,
                        superseded_at: Some(observed.clone()),
                        status_only: false,
                    },
                });
            }
        }
        inner.quarantine.retain(|row| {
            row.source_name != commit.source
                || row
                    .rejected
                    .source_id
                    .as_ref()
                    .is_none_or(|id| !commit.resolved.contains(id))
        });
        for rejected in commit.rejected {
            let seen = inner
                .quarantine
                .iter()
                .any(|row| row.source_name == commit.source && row.rejected.raw == rejected.raw);
            if !seen {
                inner.quarantine.push(QuarantineRow {
                    source_name: commit.source.clone(),
                    rejected,
                    first_seen_at: observed.clone(),
                });
            }
        }
        inner.groups.extend(groups);
        for word in commit.unknown_words {
            inner
                .unknown_words
                .entry((commit.source.clone(), word))
                .or_insert_with(|| observed.clone());
        }
        if let Some(checkpoint) = checkpoint {
            inner.checkpoints.insert(commit.source, checkpoint);
        }
        Ok(())
    }

    async fn record_run(&self, run: RunRecord) -> Result<(), StoreError> {
        self.inner().runs.push(RunRow::encode(&run));
        Ok(())
    }
}

#[async_trait]
impl Inbox for MemoryStore {
    async fn receive(
        &self,
        source: &str,
        delivery: &Delivery,
        at: DateTime<Utc>,
    ) -> Result<Receipt, StoreError> {
        let hints = codec::encode_hints(&delivery.hints)?;
        let mut inner = self.inner();
        if inner
            .inbox
            .iter()
            .any(|entry| entry.row.source_name == source && entry.row.key == delivery.key)
        {
            return Ok(Receipt::Duplicate);
        }
        inner.inbox_last_id += 1;
        let id = inner.inbox_last_id;
        inner.inbox.push(InboxEntry {
            row: InboxRow {
                id,
                source_name: source.to_owned(),
                key: delivery.key.clone(),
                kind: delivery.kind.clone(),
                hints,
                received_at: codec::instant(at),
            },
            processed_at: None,
        });
        Ok(Receipt::New)
    }

    async fn pending(&self, source: &str) -> Result<Vec<Received>, StoreError> {
        let inner = self.inner();
        let mut rows: Vec<&InboxRow> = inner
            .inbox
            .iter()
            .filter(|entry| entry.row.source_name == source && entry.processed_at.is_none())
            .map(|entry| &entry.row)
            .collect();
        rows.sort_by(|a, b| (&a.received_at, a.id).cmp(&(&b.received_at, b.id)));
        rows.into_iter().map(InboxRow::decode).collect()
    }

    async fn processed(&self, ids: &[i64], at: DateTime<Utc>) -> Result<(), StoreError> {
        let at = codec::instant(at);
        for entry in self.inner().inbox.iter_mut() {
            if ids.contains(&entry.row.id) && entry.processed_at.is_none() {
                entry.processed_at = Some(at.clone());
            }
        }
        Ok(())
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = codec::instant(before);
        let mut inner = self.inner();
        let count = inner.inbox.len();
        inner.inbox.retain(|entry| {
            entry
                .processed_at
                .as_ref()
                .is_none_or(|processed| *processed >= before)
        });
        Ok((count - inner.inbox.len()) as u64)
    }
}

#[async_trait]
impl Ledger for MemoryStore {
    fn describe(&self) -> String {
        "the in-memory ledger".to_owned()
    }

    async fn payments(&self, filter: &Filter) -> Result<PaymentStream, StoreError> {
        let inner = self.inner();
        let as_of = filter.as_of.map(codec::instant);
        let since = filter.since.map(codec::instant);
        let until = filter.until.map(codec::instant);
        // (created_at_utc, id, source, status, table, record) of each payment as known then.
        let current = inner
            .payments
            .iter()
            .filter(|(_, row)| as_of.as_ref().is_none_or(|at| row.updated_at <= *at))
            .map(|(id, row)| {
                (
                    &row.created_at_utc,
                    id,
                    row.source,
                    row.status,
                    codec::PAYMENTS,
                    &row.record,
                )
            });
        let superseded = inner
            .versions
            .iter()
            .filter(|row| {
                as_of.as_ref().is_some_and(|at| {
                    row.version.observed_at <= *at
                        && row.version.superseded_at.as_ref().is_some_and(|s| s > at)
                })
            })
            .map(|row| {
                (
                    &row.created_at_utc,
                    &row.payment_id,
                    row.source,
                    row.status,
                    codec::VERSIONS,
                    &row.version.record,
                )
            });
        let mut selected: Vec<_> = current
            .chain(superseded)
            .filter(|(created, _, source, status, _, _)| {
                (filter.sources.is_empty() || filter.sources.iter().any(|s| s.as_str() == *source))
                    && (filter.statuses.is_empty() || filter.statuses.iter().any(|s| s == status))
                    && since.as_ref().is_none_or(|since| *created >= since)
                    && until.as_ref().is_none_or(|until| *created < until)
            })
            .collect();
        selected.sort_by(|a, b| a.0.cmp(b.0).then_with(|| a.1.cmp(b.1)));
        let payments: Vec<Result<Payment, StoreError>> = selected
            .into_iter()
            .map(|(_, id, _, _, table, record)| codec::read_record(record, table, id))
            .collect();
        Ok(Box::pin(futures::stream::iter(payments)))
    }

    async fn versions(&self, payment_id: &str) -> Result<Vec<Version>, StoreError> {
        self.inner().versions_of(payment_id)
    }

    async fn reconstructed_at(&self, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let at = codec::instant(at);
        Ok(self.inner().versions.iter().any(|row| {
            let version = &row.version;
            version.status_only
                && version.observed_at <= at
                && version.superseded_at.as_ref().is_some_and(|s| *s > at)
        }))
    }

    async fn recent_runs(
        &self,
        source_name: &str,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.inner()
            .runs
            .iter()
            .rev()
            .filter(|run| run.source_name == source_name)
            .take(limit)
            .map(RunRow::decode)
            .collect()
    }

    async fn checkpoint(&self, source_name: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.inner()
            .checkpoints
            .get(source_name)
            .map(|text| codec::read_checkpoint(text, source_name))
            .transpose()
    }

    async fn quarantine(&self, source_name: &str) -> Result<Vec<Quarantined>, StoreError> {
        let inner = self.inner();
        let mut rows: Vec<&QuarantineRow> = inner
            .quarantine
            .iter()
            .filter(|row| row.source_name == source_name)
            .collect();
        rows.sort_by(|a, b| {
            (&a.first_seen_at, &a.rejected.raw).cmp(&(&b.first_seen_at, &b.rejected.raw))
        });
        rows.into_iter()
            .map(|row| {
                Ok(Quarantined {
                    source_id: row.rejected.source_id.clone(),
                    reason: row.rejected.reason.clone(),
                    raw: row.rejected.raw.clone(),
                    first_seen_at: codec::read_instant(
                        &row.first_seen_at,
                        codec::Cell::new("quarantine", "first_seen_at", source_name),
                    )?,
                })
            })
            .collect()
    }

    async fn unknown_words(
        &self,
        source_name: &str,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let inner = self.inner();
        let mut words: Vec<(&String, &String)> = inner
            .unknown_words
            .iter()
            .filter(|((owner, _), _)| owner == source_name)
            .map(|((_, word), seen)| (seen, word))
            .collect();
        words.sort();
        words
            .into_iter()
            .map(|(seen, word)| {
                Ok((
                    word.clone(),
                    codec::read_word_seen(seen, source_name, word)?,
                ))
            })
            .collect()
    }

    async fn counts_by_status(&self, source: Source) -> Result<Vec<(String, u64)>, StoreError> {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for row in self.inner().payments.values() {
            if row.source == source.as_str() {
                *counts.entry(row.status).or_default() += 1;
            }
        }
        Ok(counts
            .into_iter()
            .map(|(status, n)| (status.to_owned(), n))
            .collect())
    }
}

#[async_trait]
impl Books for MemoryStore {
    async fn book_walk(
        &self,
        source: &str,
        kind: BookKind,
    ) -> Result<Option<BookWalk>, StoreError> {
        let inner = self.inner();
        inner
            .book_walks
            .get(&(source.to_owned(), kind.as_str().to_owned()))
            .map(|text| codec::read_walk(text, source, kind.as_str()))
            .transpose()
    }

    async fn kept_records(
        &self,
        ids: Vec<String>,
    ) -> Result<HashMap<String, KeptRecord>, StoreError> {
        let inner = self.inner();
        ids.into_iter()
            .filter_map(|id| {
                let row = inner.book_records.get(&id)?;
                Some(codec::read_kept(&row.record, &id).map(|kept| (id, kept)))
            })
            .collect()
    }

    async fn commit_records(&self, commit: RecordCommit) -> Result<(), StoreError> {
        let observed = codec::instant(commit.observed_at);
        let mut rows = Vec::with_capacity(commit.records.len());
        for kept in &commit.records {
            rows.push((
                kept.record.id.clone(),
                BookRecordRow {
                    source: kept.record.source.as_str(),
                    created_at_utc: codec::instant(kept.record.created_at.to_utc()),
                    record: codec::encode_kept(kept)?,
                    updated_at: observed.clone(),
                },
            ));
        }
        let walk = codec::encode_walk(&commit.walk)?;
        let mut inner = self.inner();
        for (id, row) in rows {
            if let Some(stored) = inner.book_records.get(&id) {
                if !codec::replaces(&stored.updated_at, &id, commit.observed_at)? {
                    continue;
                }
                let version = (
                    id.clone(),
                    stored.record.clone(),
                    stored.updated_at.clone(),
                    observed.clone(),
                );
                inner.book_versions.push(version);
            }
            inner.book_records.insert(id, row);
        }
        for rejected in commit.rejected {
            let known = inner
                .quarantine
                .iter()
                .any(|row| row.source_name == commit.source && row.rejected.raw == rejected.raw);
            if !known {
                inner.quarantine.push(QuarantineRow {
                    source_name: commit.source.clone(),
                    rejected,
                    first_seen_at: observed.clone(),
                });
            }
        }
        inner
            .book_walks
            .insert((commit.source, commit.kind.as_str().to_owned()), walk);
        Ok(())
    }

    async fn records(&self, source: Source) -> Result<Vec<KeptRecord>, StoreError> {
        let inner = self.inner();
        let mut rows: Vec<(&String, &BookRecordRow)> = inner
            .book_records
            .iter()
            .filter(|(_, row)| row.source == source.as_str())
            .collect();
        rows.sort_by(|a, b| (&a.1.created_at_utc, a.0).cmp(&(&b.1.created_at_utc, b.0)));
        rows.into_iter()
            .map(|(id, row)| codec::read_kept(&row.record, id))
            .collect()
    }

    async fn issued(&self, account: &str) -> Result<Vec<StatementHead>, StoreError> {
        let inner = self.inner();
        let mut rows: Vec<&StatementRow> = inner
            .statements
            .iter()
            .map(|(row, _)| row)
            .filter(|row| row.account == account)
            .collect();
        rows.sort_by_key(|row| row.number);
        rows.into_iter().map(StatementRow::decode).collect()
    }

    async fn statement_body(
        &self,
        account: &str,
        number: u32,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .inner()
            .statements
            .iter()
            .find(|(row, _)| row.account == account && row.number == i64::from(number))
            .map(|(_, body)| body.clone()))
    }

    async fn booked(&self, account: &str) -> Result<Vec<Booking>, StoreError> {
        self.inner()
            .statement_refs
            .iter()
            .filter(|((a, _), _)| a == account)
            .map(|((_, reference), text)| {
                codec::read_booking(account, reference.clone(), text.clone())
            })
            .collect()
    }

    async fn issue(&self, statements: Vec<IssuedStatement>) -> Result<(), StoreError> {
        let mut inner = self.inner();
        for statement in &statements {
            let row = StatementRow::encode(statement);
            let taken = inner.statements.iter().any(|(issued, _)| {
                issued.account == row.account
                    && (issued.number == row.number || issued.day == row.day)
            });
            // A movement books once, as the databases' keys on (account, reference) say.
            let booked = statement.bookings.iter().any(|booking| {
                inner
                    .statement_refs
                    .contains_key(&(statement.account.clone(), booking.reference.clone()))
            });
            if taken || booked {
                return Err(codec::already_issued(
                    &statement.account,
                    statement.number,
                    statement.day,
                ));
            }
        }
        for statement in statements {
            inner
                .statements
                .push((StatementRow::encode(&statement), statement.body.clone()));
            for booking in &statement.bookings {
                inner.statement_refs.insert(
                    (statement.account.clone(), booking.reference.clone()),
                    codec::encode_booking(booking),
                );
            }
        }
        Ok(())
    }
}
