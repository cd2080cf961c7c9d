//! The embedded [`Store`](payments_sync::Store) of `payments-sync`: one SQLite file (bundled SQLite, no system
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

mod books;
mod inbox;
mod ledger;
mod schema;
mod store;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use payments_sync::Filter;
use payments_sync::StoreError;
use rusqlite::{Connection, ErrorCode};

pub use schema::{APPLICATION_ID, SCHEMA_VERSION};

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
pub(crate) fn store_error(context: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
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

impl SqliteStore {
    /// Opens (creating when needed) the database at `path` and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let context = path.display().to_string();
        let mut connection = Connection::open(&path).map_err(store_error(&context))?;
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
            .map_err(store_error(&context))?;
        schema::migrate(&mut connection, &path)?;
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
        schema::check_read_only(&connection, &ledger)?;
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
}

fn lock(connection: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    connection.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The workspace README's examples, compiled and run as doctests so that they stay true. They run
/// here because this crate's dev-dependencies hold every crate they use.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
