//! The books: `impl Books for SqliteStore`, each method one transaction on the store's one
//! connection, values as `payments_sync::codec` encodes them.

use std::collections::HashMap;

use async_trait::async_trait;
use payments_model::{BookKind, Source};
use payments_sync::codec::{self, StatementRow};
use payments_sync::{
    BookWalk, Booking, Books, IssuedStatement, KeptRecord, RecordCommit, StatementHead, StoreError,
};
use rusqlite::{ErrorCode, OptionalExtension, params};

use crate::{SqliteStore, store_error};

#[async_trait]
impl Books for SqliteStore {
    async fn book_walk(
        &self,
        source: &str,
        kind: BookKind,
    ) -> Result<Option<BookWalk>, StoreError> {
        let source = source.to_owned();
        self.blocking(move |connection| {
            let text: Option<String> = connection
                .query_row(
                    "SELECT walk FROM book_walks WHERE source_name = ? AND kind = ?",
                    params![source, kind.as_str()],
                    |row| row.get(0),
                )
                .optional()
                .map_err(store_error("cannot read where a book walk stands"))?;
            text.map(|text| codec::read_walk(&text, &source, kind.as_str()))
                .transpose()
        })
        .await
    }

    async fn kept_records(
        &self,
        ids: Vec<String>,
    ) -> Result<HashMap<String, KeptRecord>, StoreError> {
        self.blocking(move |connection| {
            let context = "cannot read the stored book records";
            let mut select = connection
                .prepare_cached("SELECT record FROM book_records WHERE id = ?")
                .map_err(store_error(context))?;
            let mut out = HashMap::new();
            for id in ids {
                let text: Option<String> = select
                    .query_row([&id], |row| row.get(0))
                    .optional()
                    .map_err(store_error(context))?;
                if let Some(text) = text {
                    let kept = codec::read_kept(&text, &id)?;
                    out.insert(id, kept);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn commit_records(&self, commit: RecordCommit) -> Result<(), StoreError> {
        let file = self.file.clone();
        self.blocking(move |connection| {
            let context = "cannot commit the page of book records";
            file.check()?;
            let transaction = connection.transaction().map_err(store_error(context))?;
            let observed = codec::instant(commit.observed_at);
            {
                let mut stamp = transaction
                    .prepare_cached("SELECT updated_at FROM book_records WHERE id = ?")
                    .map_err(store_error(context))?;
                let mut supersede = transaction
                    .prepare_cached(
                        "INSERT INTO book_versions (record_id, record, observed_at, superseded_at)
                         SELECT id, record, updated_at, ?2 FROM book_records WHERE id = ?1",
                    )
                    .map_err(store_error(context))?;
                let mut upsert = transaction
                    .prepare_cached(
                        "INSERT INTO book_records (id, source_name, source, kind, created_at_utc, record, updated_at)
                         VALUES (?, ?, ?, ?, ?, ?, ?)
                         ON CONFLICT (id) DO UPDATE SET source_name = excluded.source_name, source = excluded.source,
                            kind = excluded.kind, created_at_utc = excluded.created_at_utc,
                            record = excluded.record, updated_at = excluded.updated_at",
                    )
                    .map_err(store_error(context))?;
                for kept in &commit.records {
                    let id = &kept.record.id;
                    let stored: Option<String> = stamp
                        .query_row([id], |row| row.get(0))
                        .optional()
                        .map_err(store_error(context))?;
                    if let Some(stored) = stored {
                        if !codec::replaces(&stored, id, commit.observed_at)? {
                            continue;
                        }
                        supersede
                            .execute(params![id, observed])
                            .map_err(store_error(context))?;
                    }
                    upsert
                        .execute(params![
                            id,
                            commit.source,
                            kept.record.source.as_str(),
                            kept.record.kind.as_str(),
                            codec::instant(kept.record.created_at.to_utc()),
                            codec::encode_kept(kept)?,
                            observed,
                        ])
                        .map_err(store_error(context))?;
                }
                crate::store::quarantine(
                    &transaction,
                    &commit.source,
                    &commit.rejected,
                    &observed,
                    context,
                )?;
                transaction
                    .execute(
                        "INSERT INTO book_walks (source_name, kind, walk) VALUES (?, ?, ?)
                         ON CONFLICT DO UPDATE SET walk = excluded.walk",
                        params![
                            commit.source,
                            commit.kind.as_str(),
                            codec::encode_walk(&commit.walk)?
                        ],
                    )
                    .map_err(store_error(context))?;
            }
            transaction.commit().map_err(store_error(context))
        })
        .await
    }

    async fn records(&self, source: Source) -> Result<Vec<KeptRecord>, StoreError> {
        self.blocking(move |connection| {
            let context = "cannot read the book records";
            let mut select = connection
                .prepare_cached(
                    "SELECT id, record FROM book_records WHERE source = ? ORDER BY created_at_utc, id",
                )
                .map_err(store_error(context))?;
            let rows = select
                .query_map([source.as_str()], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(store_error(context))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(store_error(context))?;
            rows.iter()
                .map(|(id, text)| codec::read_kept(text, id))
                .collect()
        })
        .await
    }

    async fn issued(&self, account: &str) -> Result<Vec<StatementHead>, StoreError> {
        let account = account.to_owned();
        self.blocking(move |connection| {
            let context = "cannot read the statements issued";
            let mut select = connection
                .prepare_cached(
                    "SELECT number, day, closing, digest, issued_at FROM statements
                     WHERE account = ? ORDER BY number",
                )
                .map_err(store_error(context))?;
            let rows = select
                .query_map([&account], |row| {
                    Ok(StatementRow {
                        account: account.clone(),
                        number: row.get(0)?,
                        day: row.get(1)?,
                        closing: row.get(2)?,
                        digest: row.get(3)?,
                        issued_at: row.get(4)?,
                    })
                })
                .map_err(store_error(context))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(store_error(context))?;
            rows.iter().map(StatementRow::decode).collect()
        })
        .await
    }

    async fn statement_body(
        &self,
        account: &str,
        number: u32,
    ) -> Result<Option<String>, StoreError> {
        let account = account.to_owned();
        self.blocking(move |connection| {
            connection
                .prepare_cached("SELECT body FROM statements WHERE account = ? AND number = ?")
                .and_then(|mut select| {
                    select
                        .query_row(params![account, number], |row| row.get(0))
                        .optional()
                })
                .map_err(store_error("cannot read an issued statement"))
        })
        .await
    }

    async fn booked(&self, account: &str) -> Result<Vec<Booking>, StoreError> {
        let account = account.to_owned();
        self.blocking(move |connection| {
            let context = "cannot read the movements booked";
            let mut select = connection
                .prepare_cached("SELECT reference, booking FROM statement_refs WHERE account = ?")
                .map_err(store_error(context))?;
            let rows = select
                .query_map([&account], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
                })
                .map_err(store_error(context))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(store_error(context))?;
            rows.into_iter()
                .map(|(reference, text)| codec::read_booking(&account, reference, text))
                .collect()
        })
        .await
    }

    async fn issue(&self, statements: Vec<IssuedStatement>) -> Result<(), StoreError> {
        let file = self.file.clone();
        self.blocking(move |connection| {
            let context = "cannot record the statements issued";
            file.check()?;
            let transaction = connection.transaction().map_err(store_error(context))?;
            {
                let mut insert = transaction
                    .prepare_cached(
                        "INSERT INTO statements (account, number, day, closing, digest, body, issued_at)
                         VALUES (?, ?, ?, ?, ?, ?, ?)",
                    )
                    .map_err(store_error(context))?;
                let mut book = transaction
                    .prepare_cached(
                        "INSERT INTO statement_refs (account, reference, number, booking) VALUES (?, ?, ?, ?)",
                    )
                    .map_err(store_error(context))?;
                for statement in &statements {
                    let row = StatementRow::encode(statement);
                    let conflict = || {
                        codec::already_issued(&statement.account, statement.number, statement.day)
                    };
                    insert
                        .execute(params![
                            row.account,
                            row.number,
                            row.day,
                            row.closing,
                            row.digest,
                            statement.body,
                            row.issued_at
                        ])
                        .map_err(|error| match error.sqlite_error_code() {
                            Some(ErrorCode::ConstraintViolation) => conflict(),
                            _ => store_error(context)(error),
                        })?;
                    for booking in &statement.bookings {
                        let booked = codec::encode_booking(booking);
                        book.execute(params![row.account, booking.reference, row.number, booked])
                            .map_err(|error| match error.sqlite_error_code() {
                                Some(ErrorCode::ConstraintViolation) => conflict(),
                                _ => store_error(context)(error),
                            })?;
                    }
                }
            }
            transaction.commit().map_err(store_error(context))
        })
        .await
    }
}
