//! The schema: `schema-N.sql` brings version N−1 to N, applied in order by [`migrate`]; released
//! migrations never change, and a newer database is refused untouched.

use std::path::Path;

use payments_sync::StoreError;
use rusqlite::Connection;

use crate::store_error;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migration `n` brings a database from version `n` to `n + 1`; released ones never change.
const MIGRATIONS: [&str; 9] = [
    include_str!("schema-1.sql"),
    include_str!("schema-2.sql"),
    include_str!("schema-3.sql"),
    include_str!("schema-4.sql"),
    include_str!("schema-5.sql"),
    include_str!("schema-6.sql"),
    include_str!("schema-7.sql"),
    include_str!("schema-8.sql"),
    include_str!("schema-9.sql"),
];

/// SQLite's `application_id` of a payments ledger ("PAYL"), set by schema 5.
pub const APPLICATION_ID: i32 = 0x5041_594C;

/// Brings the database at `path` up to [`SCHEMA_VERSION`]; a database of another program, or of
/// a newer version, is refused untouched.
pub(crate) fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
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

/// Refuses, for reading, a file that is not a payments ledger, or a ledger of another schema
/// version than this build's (a sync upgrades an older one).
pub(crate) fn check_read_only(connection: &Connection, ledger: &str) -> Result<(), StoreError> {
    let ledger = ledger.to_owned();
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
    Ok(())
}
