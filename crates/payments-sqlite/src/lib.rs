//! The embedded [`Store`] of `payments-sync`: one SQLite file (bundled SQLite, no system
//! library needed), in WAL mode, with a versioned schema.
//!
//! Each page is one transaction: upserted payments (all unified fields plus the exact record),
//! the versions they supersede, quarantined records, group states and the checkpoint land together or
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

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use payments_model::{Payment, Source};
pub use payments_sync::Filter;
use payments_sync::{
    Checkpoint, Commit, CommitCounts, GroupState, Ledger, PaymentStream, Quarantined, RunKind,
    RunRecord, SourceState, Store, StoreError, Summary, Version,
};
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migration `n` brings a database from version `n` to `n + 1`; released ones never change.
const MIGRATIONS: [&str; 6] = [
    include_str!("schema-1.sql"),
    include_str!("schema-2.sql"),
    include_str!("schema-3.sql"),
    include_str!("schema-4.sql"),
    include_str!("schema-5.sql"),
    include_str!("schema-6.sql"),
];

/// SQLite's `application_id` of a payments ledger ("PAYL"), set by schema 5.
pub const APPLICATION_ID: i32 = 0x5041_594C;

/// The ledger in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    /// Shared with the blocking tasks that run the [`Store`] methods off the async threads.
    connection: Arc<Mutex<Connection>>,
    /// Which file `path` named when it was opened, so that a commit can tell it is still there.
    file: Arc<FileIdentity>,
}

/// The identity of the database file as opened: its path, and (on Unix) its device and inode.
#[derive(Debug)]
struct FileIdentity {
    path: PathBuf,
    #[cfg(unix)]
    inode: Option<(u64, u64)>,
}

impl FileIdentity {
    fn of(path: &Path) -> FileIdentity {
        FileIdentity {
            path: path.to_path_buf(),
            #[cfg(unix)]
            inode: std::fs::metadata(path).ok().map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino())
            }),
        }
    }

    /// Fails when the path no longer names the file that was opened (deleted, or replaced by
    /// another file), so a commit never lands in a file nobody will read again.
    fn check(&self) -> Result<(), StoreError> {
        let gone = || StoreError::Gone {
            ledger: self.path.display().to_string(),
        };
        let metadata = std::fs::metadata(&self.path).map_err(|_| gone())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if self
                .inode
                .is_some_and(|inode| inode != (metadata.dev(), metadata.ino()))
            {
                return Err(gone());
            }
        }
        let _ = metadata;
        Ok(())
    }
}

/// Held while a sync runs; dropping it (or the process ending, even by a crash) releases it.
#[derive(Debug)]
pub struct SyncLock {
    _file: File,
}

/// Classifies a SQLite failure: a file that is not a database is not a ledger, a damaged one is
/// corrupt, and anything else (I/O, a full disk, a read-only file) is a backend failure.
fn store_error(context: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |err| match err.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StoreError::NotALedger {
            ledger: context.to_owned(),
            detail: err.to_string(),
        },
        Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            what: context.to_owned(),
            detail: err.to_string(),
        },
        _ => StoreError::backend(context, err),
    }
}

fn json_error(context: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |err| StoreError::backend(context, err)
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
        let context = path.display().to_string();
        let mut connection = Connection::open(&path).map_err(store_error(&context))?;
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
            .map_err(store_error(&context))?;
        migrate(&mut connection, &path)?;
        Ok(SqliteStore {
            file: Arc::new(FileIdentity::of(&path)),
            path,
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Opens an existing ledger read-only, for reading it back (`status`, `export`): nothing is
    /// created, migrated or written. A file that is not a payments ledger (another program's
    /// database, not a database at all) is refused, and so is a ledger that needs an upgrade
    /// first (a sync does that).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        use rusqlite::OpenFlags;
        let path = path.as_ref().to_path_buf();
        let ledger = path.display().to_string();
        let connection = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(store_error(&ledger))?;
        let pragma = |name: &str| -> Result<i64, StoreError> {
            connection
                .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
                .map_err(store_error(&ledger))
        };
        let (application_id, version) = (pragma("application_id")?, pragma("user_version")?);
        if application_id != i64::from(APPLICATION_ID) && !(1..5).contains(&version) {
            return Err(StoreError::NotALedger {
                ledger,
                detail: format!(
                    "its SQLite application_id is {application_id} and its user_version {version}, not those of a payments ledger"
                ),
            });
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                ledger,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            return Err(StoreError::NotALedger {
                ledger,
                detail: format!(
                    "it has schema version {version} of an older release; run `payments sync` once to upgrade it to {SCHEMA_VERSION}"
                ),
            });
        }
        Ok(SqliteStore {
            file: Arc::new(FileIdentity::of(&path)),
            path,
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fails with [`StoreError::ReadOnly`] when the ledger cannot be written (a read-only file,
    /// directory or mount), so a sync can say so before it makes any request.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        let ledger = self.path.display().to_string();
        let read_only = |detail: String| StoreError::ReadOnly {
            ledger: ledger.clone(),
            detail,
        };
        let connection = self.connection();
        if connection
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(store_error(&ledger))?
        {
            return Err(read_only("the file is read-only for this user".to_owned()));
        }
        connection
            .execute_batch("BEGIN IMMEDIATE; PRAGMA user_version = user_version; ROLLBACK;")
            .map_err(|e| match e.sqlite_error_code() {
                Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
                    read_only(e.to_string())
                }
                _ => store_error(&ledger)(e),
            })
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
                StoreError::backend(
                    format!("cannot create the lock file {}", lock_path.display()),
                    e,
                )
            })?;
        match file.try_lock() {
            Ok(()) => Ok(SyncLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
                ledger: self.path.display().to_string(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::backend(
                format!("cannot lock {}", lock_path.display()),
                e,
            )),
        }
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        lock(&self.connection)
    }

    /// Runs `work` on the connection in a blocking task, off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || work(&mut lock(&connection)))
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
    }

    /// Calls `each` for every payment matching `filter`, sorted by `created_at` (as an instant)
    /// then `id`, one row at a time (a million rows need not fit in memory). The first error
    /// `each` returns stops the walk and is returned.
    pub fn for_each_payment<E: From<StoreError>>(
        &self,
        filter: &Filter,
        mut each: impl FnMut(Payment) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut args: Vec<String> = Vec::new();
        let mut sql = match filter.as_of {
            None => String::from("SELECT record FROM payments AS ledger WHERE 1 = 1"),
            // The current rows observed by then, and the versions that were current then.
            Some(at) => {
                let at = now_text(at);
                args.extend([at.clone(), at.clone(), at]);
                String::from(
                    "SELECT record FROM (
                        SELECT record, source, status, created_at_utc, id FROM payments WHERE updated_at <= ?
                        UNION ALL
                        SELECT record, source, status, created_at_utc, payment_id FROM versions
                        WHERE observed_at <= ? AND superseded_at > ?
                     ) AS ledger WHERE 1 = 1",
                )
            }
        };
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
            let payment = read_record(&record)?;
            each(payment)?;
        }
        Ok(())
    }
}

/// The last recorded run of a source.
fn last_run(connection: &Connection, source_name: &str) -> Result<Option<RunRecord>, StoreError> {
    let context = "cannot read the last run";
    connection
        .query_row(
            "SELECT started_at, finished_at, kind, resumed, pages, requests, new, changed, unchanged,
                    backwards, quarantined, waited_ms, error, feed_incomplete
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
                        feed_incomplete: row.get(13)?,
                        // What the checkpoint keeps (the feed failing, payments to read) is not
                        // a run's column: `payments status` reads it from the checkpoint.
                        ..Summary::default()
                    },
                    error: row.get(12)?,
                })
            },
        )
        .optional()
        .map_err(store_error(context))
}

/// Every version of one payment, oldest first; the last is the current one. Empty when
/// the ledger holds no payment with this unified id (`paypro:…`, `mkp:…`).
fn versions(connection: &Connection, payment_id: &str) -> Result<Vec<Version>, StoreError> {
    let context = "cannot read the versions of a payment";
    let mut statement = connection
        .prepare(
            "SELECT record, observed_at, superseded_at, status_only, seq AS position FROM versions WHERE payment_id = ?1
             UNION ALL
             SELECT record, updated_at, NULL, 0, 9223372036854775807 FROM payments WHERE id = ?1
             ORDER BY position",
        )
        .map_err(store_error(context))?;
    let rows = statement
        .query_map([payment_id], |row| {
            let (record, observed, superseded): (String, String, Option<String>) =
                (row.get(0)?, row.get(1)?, row.get(2)?);
            Ok((record, observed, superseded, row.get::<_, bool>(3)?))
        })
        .map_err(store_error(context))?;
    let mut versions = Vec::new();
    for row in rows {
        let (record, observed, superseded, status_only) = row.map_err(store_error(context))?;
        let time = |text: &str| {
            text.parse::<DateTime<Utc>>()
                .map_err(|e| StoreError::Corrupt {
                    what: format!("a version of {payment_id}"),
                    detail: format!("{e}: {text}"),
                })
        };
        versions.push(Version {
            payment: read_record(&record)?,
            observed_at: time(&observed)?,
            superseded_at: superseded.as_deref().map(time).transpose()?,
            status_only,
        });
    }
    Ok(versions)
}

/// The quarantined records of a source, oldest first.
fn quarantine(connection: &Connection, source_name: &str) -> Result<Vec<Quarantined>, StoreError> {
    let context = "cannot read the quarantine";
    let mut statement = connection
        .prepare("SELECT source_id, reason, raw FROM quarantine WHERE source_name = ? ORDER BY first_seen_at, raw")
        .map_err(store_error(context))?;
    let rows = statement
        .query_map([source_name], |row| {
            Ok(Quarantined {
                source_id: row.get(0)?,
                reason: row.get(1)?,
                raw: row.get(2)?,
            })
        })
        .map_err(store_error(context))?;
    rows.collect::<Result<_, _>>().map_err(store_error(context))
}

/// Whether the ledger as known at `at` holds a version of which only the status is known
/// (migrated from a ledger older than schema 6): its other fields are those of a later
/// version, so an export as of `at` shows combinations that may never have existed.
fn reconstructed_at(connection: &Connection, at: DateTime<Utc>) -> Result<bool, StoreError> {
    let at = now_text(at);
    connection
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM versions WHERE status_only = 1 AND observed_at <= ?1 AND superseded_at > ?1)",
            [at],
            |row| row.get(0),
        )
        .map_err(store_error("cannot read the versions"))
}

/// The status words outside the status table that a source's provider has sent, with when
/// each was first seen, oldest first. Their payments are stored as `unknown`.
fn unknown_words(
    connection: &Connection,
    source_name: &str,
) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
    let context = "cannot read the unknown status words";
    let mut statement = connection
        .prepare("SELECT word, first_seen_at FROM unknown_words WHERE source_name = ? ORDER BY first_seen_at, word")
        .map_err(store_error(context))?;
    let rows = statement
        .query_map([source_name], |row| {
            let at: String = row.get(1)?;
            Ok((row.get(0)?, at.parse().unwrap_or_default()))
        })
        .map_err(store_error(context))?;
    rows.collect::<Result<_, _>>().map_err(store_error(context))
}

/// Payments per unified status, for one source.
fn counts_by_status(
    connection: &Connection,
    source: Source,
) -> Result<Vec<(String, u64)>, StoreError> {
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

fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let ledger = path.display().to_string();
    let context = format!("cannot migrate the database {ledger}");
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(store_error(&ledger))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            ledger,
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 {
        // A new ledger starts from an empty file; a database with tables of its own belongs
        // to another program and is left untouched.
        let tables: i64 = connection
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
                [],
                |row| row.get(0),
            )
            .map_err(store_error(&ledger))?;
        if tables > 0 {
            return Err(StoreError::NotALedger {
                ledger,
                detail: format!(
                    "a SQLite database with {tables} tables or indexes of another program"
                ),
            });
        }
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
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt {
            what: format!("the checkpoint of {source_name}"),
            detail: e.to_string(),
        })
    })
    .transpose()
}

fn read_record(record: &str) -> Result<Payment, StoreError> {
    serde_json::from_str(record).map_err(|e| StoreError::Corrupt {
        what: "a stored payment".to_owned(),
        detail: format!("{e}: {record}"),
    })
}

fn lock(connection: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    connection.lock().unwrap_or_else(PoisonError::into_inner)
}

fn parse_utc(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text).ok()
}

#[async_trait]
impl Store for SqliteStore {
    async fn source_state(&self, source: &str) -> Result<SourceState, StoreError> {
        let source = source.to_owned();
        self.blocking(move |connection| {
            let context = "cannot read the sync state";
            let (checkpoint, unreadable_checkpoint) = match read_checkpoint(connection, &source) {
                Ok(checkpoint) => (checkpoint, None),
                Err(StoreError::Corrupt { detail, .. }) => (None, Some(detail)),
                Err(error) => return Err(error),
            };
            let mut groups = connection
                .prepare("SELECT id, state FROM groups WHERE source_name = ? AND state IS NOT NULL")
                .map_err(store_error(context))?;
            let rows = groups
                .query_map([&source], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(store_error(context))?;
            let mut words = connection
                .prepare("SELECT word FROM unknown_words WHERE source_name = ?")
                .map_err(store_error(context))?;
            let unknown_words = words
                .query_map([&source], |row| row.get::<_, String>(0))
                .map_err(store_error(context))?
                .collect::<Result<HashSet<String>, _>>()
                .map_err(store_error(context))?;
            let mut state = SourceState {
                checkpoint,
                groups: HashMap::new(),
                unreadable_checkpoint,
                unknown_words,
            };
            for row in rows {
                let (id, text) = row.map_err(store_error(context))?;
                // A state that does not read back is left out: the engine then knows nothing
                // of the group and reads it again, which writes a good state.
                if let Ok(group) = serde_json::from_str::<GroupState>(&text) {
                    state.groups.insert(id, group);
                }
            }
            Ok(state)
        })
        .await
    }

    async fn oldest_created(
        &self,
        source: &str,
        since: DateTime<Utc>,
        statuses: &[&str],
    ) -> Result<Option<DateTime<FixedOffset>>, StoreError> {
        let mut args = vec![source.to_owned(), now_text(since)];
        args.extend(statuses.iter().map(|s| (*s).to_owned()));
        let marks = vec!["?"; statuses.len()].join(", ");
        self.blocking(move |connection| {
            let oldest: Option<String> = connection
                .query_row(
                    &format!("SELECT MIN(created_at_utc) FROM payments WHERE source_name = ? AND created_at_utc >= ? AND status IN ({marks})"),
                    rusqlite::params_from_iter(args.iter()),
                    |row| row.get(0),
                )
                .map_err(store_error("cannot read the oldest payment"))?;
            Ok(oldest.as_deref().and_then(parse_utc))
        })
        .await
    }

    async fn quarantined(&self, source: &str) -> Result<HashSet<String>, StoreError> {
        let source = source.to_owned();
        self.blocking(move |connection| {
            let context = "cannot read the quarantine";
            let mut statement = connection
                .prepare("SELECT DISTINCT source_id FROM quarantine WHERE source_name = ? AND source_id IS NOT NULL")
                .map_err(store_error(context))?;
            let rows = statement
                .query_map([&source], |row| row.get::<_, String>(0))
                .map_err(store_error(context))?;
            rows.collect::<Result<_, _>>().map_err(store_error(context))
        })
        .await
    }

    async fn stored(&self, ids: Vec<String>) -> Result<HashMap<String, Payment>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        self.blocking(move |connection| {
            let context = "cannot read stored payments";
            let marks = vec!["?"; ids.len()].join(", ");
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT id, record FROM payments WHERE id IN ({marks})"
                ))
                .map_err(store_error(context))?;
            let mut rows = statement
                .query(rusqlite::params_from_iter(ids.iter()))
                .map_err(store_error(context))?;
            let mut stored = HashMap::new();
            while let Some(row) = rows.next().map_err(store_error(context))? {
                let id: String = row.get(0).map_err(store_error(context))?;
                let record: String = row.get(1).map_err(store_error(context))?;
                stored.insert(id, read_record(&record)?);
            }
            Ok(stored)
        })
        .await
    }

    async fn record_run(&self, run: RunRecord) -> Result<(), StoreError> {
        self.blocking(move |connection| {
            let summary = &run.summary;
            let count = |n: u64| n as i64;
            connection
                .execute(
                    "INSERT INTO runs (source_name, started_at, finished_at, kind, resumed, pages, requests, new, changed,
                        unchanged, backwards, quarantined, waited_ms, error, feed_incomplete)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                        summary.feed_incomplete,
                    ],
                )
                .map_err(store_error("cannot record the run"))?;
            Ok(())
        })
        .await
    }

    async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        let file = self.file.clone();
        self.blocking(move |connection| {
            file.check()?;
            write_commit(connection, &commit)
        })
        .await
    }
}

#[async_trait]
impl Ledger for SqliteStore {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    async fn payments(&self, filter: &Filter) -> Result<PaymentStream, StoreError> {
        // The rows are read on a blocking thread and handed over one by one (a few ahead).
        let (sender, receiver) = futures::channel::mpsc::channel(64);
        let store = SqliteStore {
            path: self.path.clone(),
            connection: self.connection.clone(),
            file: self.file.clone(),
        };
        let filter = filter.clone();
        tokio::task::spawn_blocking(move || {
            let mut sender = sender;
            let sent = store.for_each_payment(&filter, |payment| {
                futures::executor::block_on(futures::SinkExt::send(&mut sender, Ok(payment)))
                    // The reader went away: stop reading.
                    .map_err(|_| {
                        StoreError::backend("the reader of the payments went away", "stopped")
                    })
            });
            if let Err(error) = sent {
                let _ =
                    futures::executor::block_on(futures::SinkExt::send(&mut sender, Err(error)));
            }
        });
        Ok(Box::pin(receiver))
    }

    async fn versions(&self, payment_id: &str) -> Result<Vec<Version>, StoreError> {
        let id = payment_id.to_owned();
        self.blocking(move |connection| versions(connection, &id))
            .await
    }

    async fn reconstructed_at(&self, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.blocking(move |connection| reconstructed_at(connection, at))
            .await
    }

    async fn last_run(&self, source_name: &str) -> Result<Option<RunRecord>, StoreError> {
        let name = source_name.to_owned();
        self.blocking(move |connection| last_run(connection, &name))
            .await
    }

    async fn checkpoint(&self, source_name: &str) -> Result<Option<Checkpoint>, StoreError> {
        let name = source_name.to_owned();
        self.blocking(move |connection| read_checkpoint(connection, &name))
            .await
    }

    async fn quarantine(&self, source_name: &str) -> Result<Vec<Quarantined>, StoreError> {
        let name = source_name.to_owned();
        self.blocking(move |connection| quarantine(connection, &name))
            .await
    }

    async fn unknown_words(
        &self,
        source_name: &str,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let name = source_name.to_owned();
        self.blocking(move |connection| unknown_words(connection, &name))
            .await
    }

    async fn counts_by_status(&self, source: Source) -> Result<Vec<(String, u64)>, StoreError> {
        self.blocking(move |connection| counts_by_status(connection, source))
            .await
    }
}

/// Writes one page's facts in one transaction.
fn write_commit(connection: &mut Connection, commit: &Commit) -> Result<(), StoreError> {
    let context = "cannot commit the page";
    let transaction = connection.transaction().map_err(store_error(context))?;
    let observed = now_text(commit.observed_at);
    {
        // A stored payment that the commit replaces is kept as a version first.
        let mut supersede = transaction
            .prepare_cached(
                "INSERT INTO versions (payment_id, source, status, created_at_utc, record, observed_at, superseded_at, status_only)
                 SELECT id, source, status, created_at_utc, record, updated_at, ?2, 0 FROM payments WHERE id = ?1",
            )
            .map_err(store_error(context))?;
        let mut upsert = transaction
            .prepare_cached(
                "INSERT INTO payments (id, source_name, source, source_id, status, provider_status, amount, currency,
                    refunded_amount, created_at, created_at_utc, paid_at, payer_name, description, method, processor,
                    processor_reference, payment_link_id, customer_id, fail_reason, record, first_seen_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?22)
                 ON CONFLICT (id) DO UPDATE SET source_name = excluded.source_name, source = excluded.source,
                    source_id = excluded.source_id, status = excluded.status, provider_status = excluded.provider_status,
                    amount = excluded.amount, currency = excluded.currency, refunded_amount = excluded.refunded_amount,
                    created_at = excluded.created_at, created_at_utc = excluded.created_at_utc, paid_at = excluded.paid_at,
                    payer_name = excluded.payer_name, description = excluded.description, method = excluded.method,
                    processor = excluded.processor, processor_reference = excluded.processor_reference,
                    payment_link_id = excluded.payment_link_id, customer_id = excluded.customer_id,
                    fail_reason = excluded.fail_reason, record = excluded.record, updated_at = excluded.updated_at",
            )
            .map_err(store_error(context))?;
        for payment in &commit.payments {
            supersede
                .execute(params![payment.id, observed])
                .map_err(store_error(context))?;
            let record = serde_json::to_string(payment).map_err(json_error(context))?;
            let refunded = payment.refunded_amount.map(|m| m.amount_string());
            let paid_at = payment
                .paid_at
                .as_ref()
                .map(payments_model::format_timestamp);
            upsert
                .execute(params![
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
                ])
                .map_err(store_error(context))?;
        }
        let mut quarantine = transaction
            .prepare_cached("INSERT OR IGNORE INTO quarantine (source_name, raw, source_id, reason, first_seen_at) VALUES (?, ?, ?, ?, ?)")
            .map_err(store_error(context))?;
        for rejected in &commit.rejected {
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
        let mut resolve = transaction
            .prepare_cached("DELETE FROM quarantine WHERE source_name = ? AND source_id = ?")
            .map_err(store_error(context))?;
        for source_id in &commit.resolved {
            resolve
                .execute(params![commit.source, source_id])
                .map_err(store_error(context))?;
        }
        let mut groups = transaction
            .prepare_cached("INSERT INTO groups (source_name, id, status, state) VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET status = excluded.status, state = excluded.state")
            .map_err(store_error(context))?;
        for (id, state) in &commit.groups {
            let text = serde_json::to_string(state).map_err(json_error(context))?;
            groups
                .execute(params![commit.source, id, state.status, text])
                .map_err(store_error(context))?;
        }
        let mut words = transaction
            .prepare_cached("INSERT OR IGNORE INTO unknown_words (source_name, word, first_seen_at) VALUES (?, ?, ?)")
            .map_err(store_error(context))?;
        for word in &commit.unknown_words {
            words
                .execute(params![commit.source, word, observed])
                .map_err(store_error(context))?;
        }
        let checkpoint = serde_json::to_string(&commit.checkpoint).map_err(json_error(context))?;
        transaction
            .execute(
                "INSERT INTO checkpoints (source_name, checkpoint) VALUES (?, ?) ON CONFLICT DO UPDATE SET checkpoint = excluded.checkpoint",
                params![commit.source, checkpoint],
            )
            .map_err(store_error(context))?;
    }
    transaction.commit().map_err(store_error(context))?;
    Ok(())
}

/// The workspace README's examples, compiled and run as doctests so that they stay true. They run
/// here because this crate's dev-dependencies hold every crate they use.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
