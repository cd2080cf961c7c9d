//! The embedded [`Store`] of `payments-sync`: one SQLite file (bundled SQLite, no system
//! library needed), in WAL mode, with a versioned schema.
//!
//! Each page is one transaction: upserted payments (all unified fields plus the exact record),
//! status-history rows, quarantined records, group states and the checkpoint land together or
//! not at all, so a crash at any instant leaves the database at the last committed page.
//! [`SqliteStore::lock_for_sync`] keeps a second sync off the same database.
//!
//! # Examples
//!
//! ```
//! use payments_sqlite::{Filter, SqliteStore};
//!
//! let dir = tempfile::tempdir()?;
//! let store = SqliteStore::open(dir.path().join("payments.db"))?;
//! let _lock = store.lock_for_sync()?;
//! assert!(store.lock_for_sync().is_err(), "a second sync is refused");
//! let mut count = 0;
//! store.for_each_payment(&Filter::default(), |_| {
//!     count += 1;
//!     Ok::<(), payments_sync::StoreError>(())
//! })?;
//! assert_eq!(count, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use payments_model::{Payment, PaymentStatus, Source};
use payments_sync::{
    Change, Checkpoint, CommitCounts, GroupState, PageCommit, RunKind, RunRecord, SourceState,
    StatusChange, Store, StoreError, Summary, status_change,
};
use rusqlite::{Connection, OptionalExtension, params};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migration `n` brings a database from version `n` to `n + 1`; released ones never change.
const MIGRATIONS: [&str; 3] = [
    include_str!("schema-1.sql"),
    include_str!("schema-2.sql"),
    include_str!("schema-3.sql"),
];

/// The ledger in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    connection: Mutex<Connection>,
}

/// Held while a sync runs; dropping it (or the process ending, even by a crash) releases it.
#[derive(Debug)]
pub struct SyncLock {
    _file: File,
}

/// Which payments to read back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only these sources (empty: all).
    pub sources: Vec<Source>,
    /// Only these unified statuses, as words (empty: all).
    pub statuses: Vec<String>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
}

fn store_error(context: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |err| StoreError(format!("{context}: {err}"))
}

/// Fixed-width UTC text, so that text order is time order.
fn utc_key(at: &DateTime<FixedOffset>) -> String {
    at.with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn now_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl SqliteStore {
    /// Opens (creating when needed) the database at `path` and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let context = format!("cannot open the database {}", path.display());
        let mut connection = Connection::open(&path).map_err(store_error(&context))?;
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
            .map_err(store_error(&context))?;
        migrate(&mut connection, &path)?;
        Ok(SqliteStore {
            path,
            connection: Mutex::new(connection),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the sync lock (`<db>.lock` beside the database), or says that another sync holds it.
    pub fn lock_for_sync(&self) -> Result<SyncLock, StoreError> {
        let lock_path = PathBuf::from(format!("{}.lock", self.path.display()));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                StoreError(format!(
                    "cannot create the lock file {}: {e}",
                    lock_path.display()
                ))
            })?;
        match file.try_lock() {
            Ok(()) => Ok(SyncLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError(format!(
                "another sync is running on {}; wait for it to finish (its lock is released when it exits)",
                self.path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError(format!(
                "cannot lock {}: {e}",
                lock_path.display()
            ))),
        }
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Calls `each` for every payment matching `filter`, sorted by `created_at` (as an instant)
    /// then `id`, one row at a time (a million rows need not fit in memory). The first error
    /// `each` returns stops the walk and is returned.
    pub fn for_each_payment<E: From<StoreError>>(
        &self,
        filter: &Filter,
        mut each: impl FnMut(Payment) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut sql = String::from("SELECT record FROM payments WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        let any_of =
            |column: &str, values: Vec<String>, sql: &mut String, args: &mut Vec<String>| {
                if !values.is_empty() {
                    let marks = vec!["?"; values.len()].join(", ");
                    sql.push_str(&format!(" AND {column} IN ({marks})"));
                    args.extend(values);
                }
            };
        any_of(
            "source",
            filter
                .sources
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            &mut sql,
            &mut args,
        );
        any_of("status", filter.statuses.clone(), &mut sql, &mut args);
        if let Some(since) = filter.since {
            sql.push_str(" AND created_at_utc >= ?");
            args.push(now_text(since));
        }
        if let Some(until) = filter.until {
            sql.push_str(" AND created_at_utc < ?");
            args.push(now_text(until));
        }
        sql.push_str(" ORDER BY created_at_utc, id");
        let connection = self.connection();
        let mut statement = connection
            .prepare(&sql)
            .map_err(store_error("cannot read payments"))?;
        let mut rows = statement
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(store_error("cannot read payments"))?;
        while let Some(row) = rows.next().map_err(store_error("cannot read payments"))? {
            let record: String = row.get(0).map_err(store_error("cannot read payments"))?;
            let payment: Payment = serde_json::from_str(&record).map_err(|e| {
                StoreError(format!(
                    "a stored payment no longer reads back ({e}): {record}"
                ))
            })?;
            each(payment)?;
        }
        Ok(())
    }

    /// The last recorded run of a source.
    pub fn last_run(&self, source_name: &str) -> Result<Option<RunRecord>, StoreError> {
        let context = "cannot read the last run";
        self.connection()
            .query_row(
                "SELECT started_at, finished_at, kind, resumed, pages, requests, new, changed, unchanged,
                        backwards, quarantined, waited_ms, error
                 FROM runs WHERE source_name = ? ORDER BY seq DESC LIMIT 1",
                [source_name],
                |row| {
                    let time = |index: usize| -> rusqlite::Result<DateTime<Utc>> {
                        let text: String = row.get(index)?;
                        Ok(text.parse().unwrap_or_default())
                    };
                    let count = |index: usize| -> rusqlite::Result<u64> {
                        Ok(row.get::<_, i64>(index)? as u64)
                    };
                    let kind: Option<String> = row.get(2)?;
                    Ok(RunRecord {
                        started_at: time(0)?,
                        finished_at: time(1)?,
                        summary: Summary {
                            source_name: source_name.to_owned(),
                            run: kind.as_deref().and_then(RunKind::parse),
                            resumed: row.get(3)?,
                            pages: count(4)?,
                            requests: count(5)?,
                            counts: CommitCounts {
                                new: count(6)?,
                                changed: count(7)?,
                                unchanged: count(8)?,
                                backwards: count(9)?,
                            },
                            quarantined: count(10)?,
                            waited: Duration::from_millis(count(11)?),
                        },
                        error: row.get(12)?,
                    })
                },
            )
            .optional()
            .map_err(store_error(context))
    }

    /// The status history of one payment, oldest first.
    pub fn history(&self, payment_id: &str) -> Result<Vec<StatusChange>, StoreError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare("SELECT from_status, to_status, from_provider_status, to_provider_status, observed_at, backwards FROM status_history WHERE payment_id = ? ORDER BY seq")
            .map_err(store_error("cannot read the history"))?;
        let rows = statement
            .query_map([payment_id], |row| {
                let status = |word: String, raw: String| stored_status(&word, &raw);
                let observed: String = row.get(4)?;
                Ok(StatusChange {
                    id: payment_id.to_owned(),
                    from: status(row.get(0)?, row.get(2)?),
                    to: status(row.get(1)?, row.get(3)?),
                    observed_at: observed.parse().unwrap_or_default(),
                    backwards: row.get(5)?,
                })
            })
            .map_err(store_error("cannot read the history"))?;
        rows.collect::<Result<_, _>>()
            .map_err(store_error("cannot read the history"))
    }

    /// The quarantined records of a source: `(source_id, reason, raw)`.
    pub fn quarantine(
        &self,
        source_name: &str,
    ) -> Result<Vec<(Option<String>, String, String)>, StoreError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare("SELECT source_id, reason, raw FROM quarantine WHERE source_name = ? ORDER BY first_seen_at, raw")
            .map_err(store_error("cannot read the quarantine"))?;
        let rows = statement
            .query_map([source_name], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .map_err(store_error("cannot read the quarantine"))?;
        rows.collect::<Result<_, _>>()
            .map_err(store_error("cannot read the quarantine"))
    }

    /// Payments per unified status, for one source.
    pub fn counts_by_status(&self, source: Source) -> Result<Vec<(String, u64)>, StoreError> {
        let connection = self.connection();
        let mut statement = connection
            .prepare("SELECT status, COUNT(*) FROM payments WHERE source = ? GROUP BY status ORDER BY status")
            .map_err(store_error("cannot count payments"))?;
        let rows = statement
            .query_map([source.as_str()], |row| {
                Ok((row.get(0)?, row.get::<_, i64>(1)? as u64))
            })
            .map_err(store_error("cannot count payments"))?;
        rows.collect::<Result<_, _>>()
            .map_err(store_error("cannot count payments"))
    }

    /// A source's checkpoint.
    pub fn checkpoint(&self, source_name: &str) -> Result<Option<Checkpoint>, StoreError> {
        read_checkpoint(&self.connection(), source_name)
    }
}

fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let context = format!("cannot migrate the database {}", path.display());
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(store_error(&context))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError(format!(
            "the database {} has schema version {version}, newer than this build's {SCHEMA_VERSION}; use a newer `payments`",
            path.display()
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let transaction = connection.transaction().map_err(store_error(&context))?;
        transaction
            .execute_batch(migration)
            .map_err(store_error(&context))?;
        transaction
            .execute_batch(&format!("PRAGMA user_version = {}", index + 1))
            .map_err(store_error(&context))?;
        transaction.commit().map_err(store_error(&context))?;
    }
    Ok(())
}

fn read_checkpoint(
    connection: &Connection,
    source_name: &str,
) -> Result<Option<Checkpoint>, StoreError> {
    let text: Option<String> = connection
        .query_row(
            "SELECT checkpoint FROM checkpoints WHERE source_name = ?",
            [source_name],
            |row| row.get(0),
        )
        .optional()
        .map_err(store_error("cannot read the checkpoint"))?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            StoreError(format!("the checkpoint of {source_name} does not read back ({e}); run `payments sync --full` to start over"))
        })
    })
    .transpose()
}

/// A status as stored: its unified word, and the raw word that `unknown` stands for.
fn stored_status(word: &str, raw: &str) -> PaymentStatus {
    PaymentStatus::from_unified_and_raw(word, raw)
        .unwrap_or_else(|| PaymentStatus::Unknown(raw.to_owned()))
}

fn parse_utc(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text).ok()
}

#[async_trait]
impl Store for SqliteStore {
    async fn source_state(
        &self,
        source: &str,
        unsettled_since: DateTime<Utc>,
    ) -> Result<SourceState, StoreError> {
        let connection = self.connection();
        let context = "cannot read the sync state";
        let checkpoint = read_checkpoint(&connection, source)?;
        let oldest_unsettled: Option<String> = connection
            .query_row(
                "SELECT MIN(created_at_utc) FROM payments WHERE source_name = ?1 AND status IN ('open', 'pending', 'unknown') AND created_at_utc >= ?2",
                params![source, now_text(unsettled_since)],
                |row| row.get(0),
            )
            .map_err(store_error(context))?;
        let mut state = SourceState {
            checkpoint,
            oldest_unsettled: oldest_unsettled.as_deref().and_then(parse_utc),
            ..SourceState::default()
        };
        let mut groups = connection
            .prepare("SELECT id, status FROM groups WHERE source_name = ?")
            .map_err(store_error(context))?;
        let rows = groups
            .query_map([source], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(store_error(context))?;
        for row in rows {
            let (id, status) = row.map_err(store_error(context))?;
            state.groups.insert(
                id,
                GroupState {
                    status,
                    ..GroupState::default()
                },
            );
        }
        let mut aggregates = connection
            .prepare(
                "SELECT payment_link_id,
                        MAX(created_at_utc),
                        MAX(CASE WHEN status IN ('open', 'pending', 'unknown') THEN created_at_utc END),
                        MAX(CASE WHEN status IN ('paid', 'partially_refunded') THEN created_at_utc END)
                 FROM payments WHERE source_name = ? AND payment_link_id IS NOT NULL GROUP BY payment_link_id",
            )
            .map_err(store_error(context))?;
        let rows = aggregates
            .query_map([source], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(store_error(context))?;
        for row in rows {
            let (link, newest, unsettled, paid) = row.map_err(store_error(context))?;
            if let Some(group) = state.groups.get_mut(&link) {
                group.newest_payment_at = newest.as_deref().and_then(parse_utc);
                group.newest_unsettled_at = unsettled.as_deref().and_then(parse_utc);
                group.newest_paid_at = paid.as_deref().and_then(parse_utc);
            }
        }
        Ok(state)
    }

    async fn record_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let summary = &run.summary;
        let count = |n: u64| n as i64;
        self.connection()
            .execute(
                "INSERT INTO runs (source_name, started_at, finished_at, kind, resumed, pages, requests, new, changed,
                    unchanged, backwards, quarantined, waited_ms, error)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    summary.source_name,
                    now_text(run.started_at),
                    now_text(run.finished_at),
                    summary.run.map(RunKind::as_str),
                    summary.resumed,
                    count(summary.pages),
                    count(summary.requests),
                    count(summary.counts.new),
                    count(summary.counts.changed),
                    count(summary.counts.unchanged),
                    count(summary.counts.backwards),
                    count(summary.quarantined),
                    summary.waited.as_millis() as i64,
                    run.error,
                ],
            )
            .map_err(store_error("cannot record the run"))?;
        Ok(())
    }

    async fn commit(&self, commit: PageCommit<'_>) -> Result<CommitCounts, StoreError> {
        let context = "cannot commit the page";
        let mut connection = self.connection();
        let transaction = connection.transaction().map_err(store_error(context))?;
        let observed = now_text(commit.observed_at);
        let mut counts = CommitCounts::default();
        {
            let mut stored = transaction
                .prepare_cached("SELECT status, provider_status, record FROM payments WHERE id = ?")
                .map_err(store_error(context))?;
            // A new payment costs one statement; only a known one is read, compared and updated.
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO payments (id, source_name, source, source_id, status, provider_status, amount, currency,
                        refunded_amount, created_at, created_at_utc, paid_at, payer_name, description, method, processor,
                        processor_reference, payment_link_id, customer_id, fail_reason, record, first_seen_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?22)
                     ON CONFLICT (id) DO NOTHING",
                )
                .map_err(store_error(context))?;
            let mut update = transaction
                .prepare_cached(
                    "UPDATE payments SET source_name = ?2, source = ?3, source_id = ?4, status = ?5, provider_status = ?6,
                        amount = ?7, currency = ?8, refunded_amount = ?9, created_at = ?10, created_at_utc = ?11,
                        paid_at = ?12, payer_name = ?13, description = ?14, method = ?15, processor = ?16,
                        processor_reference = ?17, payment_link_id = ?18, customer_id = ?19, fail_reason = ?20,
                        record = ?21, updated_at = ?22
                     WHERE id = ?1",
                )
                .map_err(store_error(context))?;
            let mut history = transaction
                .prepare_cached(
                    "INSERT INTO status_history (payment_id, from_status, to_status, from_provider_status, to_provider_status, observed_at, backwards)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .map_err(store_error(context))?;
            for payment in commit.payments {
                let record = serde_json::to_string(payment)
                    .map_err(|e| StoreError(format!("{context}: {e}")))?;
                let refunded = payment.refunded_amount.map(|m| m.amount_string());
                let paid_at = payment
                    .paid_at
                    .as_ref()
                    .map(payments_model::format_timestamp);
                let values = params![
                    payment.id,
                    commit.source,
                    payment.source.as_str(),
                    payment.source_id,
                    payment.status.as_str(),
                    payment.provider_status,
                    payment.amount.amount_string(),
                    payment.currency().code(),
                    refunded,
                    payments_model::format_timestamp(&payment.created_at),
                    utc_key(&payment.created_at),
                    paid_at,
                    payment.payer_name,
                    payment.description,
                    payment.method,
                    payment.processor,
                    payment.processor_reference,
                    payment.payment_link_id,
                    payment.customer_id,
                    payment.fail_reason,
                    record,
                    observed,
                ];
                if insert.execute(values).map_err(store_error(context))? == 1 {
                    counts.count(Change::New, None);
                    continue;
                }
                let (word, raw_before, old_record): (String, String, String) = stored
                    .query_row([&payment.id], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })
                    .map_err(store_error(context))?;
                if old_record == record {
                    counts.count(Change::Unchanged, None);
                    continue;
                }
                let from = stored_status(&word, &raw_before);
                let moved = status_change(&payment.id, &from, &payment.status, commit.observed_at);
                counts.count(Change::Changed, moved.as_ref());
                update.execute(values).map_err(store_error(context))?;
                if let Some(moved) = moved {
                    history
                        .execute(params![
                            moved.id,
                            moved.from.as_str(),
                            moved.to.as_str(),
                            raw_before,
                            payment.provider_status,
                            observed,
                            moved.backwards
                        ])
                        .map_err(store_error(context))?;
                }
            }
            let mut quarantine = transaction
                .prepare_cached("INSERT OR IGNORE INTO quarantine (source_name, raw, source_id, reason, first_seen_at) VALUES (?, ?, ?, ?, ?)")
                .map_err(store_error(context))?;
            for rejected in commit.rejected {
                quarantine
                    .execute(params![
                        commit.source,
                        rejected.raw,
                        rejected.source_id,
                        rejected.reason,
                        observed
                    ])
                    .map_err(store_error(context))?;
            }
            let mut groups = transaction
                .prepare_cached("INSERT INTO groups (source_name, id, status) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET status = excluded.status")
                .map_err(store_error(context))?;
            for group in commit.groups {
                groups
                    .execute(params![commit.source, group.id, group.status])
                    .map_err(store_error(context))?;
            }
            let checkpoint = serde_json::to_string(commit.checkpoint)
                .map_err(|e| StoreError(format!("{context}: {e}")))?;
            transaction
                .execute(
                    "INSERT INTO checkpoints (source_name, checkpoint) VALUES (?, ?) ON CONFLICT DO UPDATE SET checkpoint = excluded.checkpoint",
                    params![commit.source, checkpoint],
                )
                .map_err(store_error(context))?;
        }
        transaction.commit().map_err(store_error(context))?;
        Ok(counts)
    }
}
