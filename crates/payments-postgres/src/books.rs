//! The account's books: `impl Books for PgStore`, keyed by the account; a store made from a
//! lease commits book pages only while its worker holds the lease, as it commits payments.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use payments_model::{BookKind, Source};
use payments_sync::codec::{self, Cell, StatementRow};
use payments_sync::{
    BookWalk, Booking, Books, IssuedStatement, KeptRecord, RecordCommit, StatementHead, StoreError,
};
use tokio_postgres::error::SqlState;

use crate::pg_error;
use crate::store::{PgStore, get, instant_required};

#[async_trait]
impl Books for PgStore {
    async fn book_walk(
        &self,
        source: &str,
        kind: BookKind,
    ) -> Result<Option<BookWalk>, StoreError> {
        let client = self.ledger.client().await?;
        let row = client
            .query_opt(
                "SELECT walk FROM ledger.book_walks WHERE account_id = $1 AND source_name = $2 AND kind = $3",
                &[&self.account_id, &source, &kind.as_str()],
            )
            .await
            .map_err(pg_error("cannot read where a book walk stands"))?;
        row.map(|row| {
            let key = format!("the {kind} walk of {source}");
            let text: String = get(&row, 0, Cell::new(codec::BOOK_WALKS, "walk", &key))?;
            codec::read_walk(&text, source, kind.as_str())
        })
        .transpose()
    }

    async fn kept_records(
        &self,
        ids: Vec<String>,
    ) -> Result<HashMap<String, KeptRecord>, StoreError> {
        let client = self.ledger.client().await?;
        client
            .query(
                "SELECT id, record::text FROM ledger.book_records WHERE account_id = $1 AND id = ANY($2)",
                &[&self.account_id, &ids],
            )
            .await
            .map_err(pg_error("cannot read the stored book records"))?
            .iter()
            .map(read_kept)
            .collect()
    }

    async fn commit_records(&self, commit: RecordCommit) -> Result<(), StoreError> {
        let context = "cannot commit the page of book records";
        let mut client = self.ledger.client().await?;
        let transaction = client.transaction().await.map_err(pg_error(context))?;
        self.check_fence(&transaction, context).await?;
        let account = &self.account_id;
        let observed = commit.observed_at;
        for kept in &commit.records {
            let id = &kept.record.id;
            let stamp = transaction
                .query_opt(
                    "SELECT updated_at FROM ledger.book_records WHERE account_id = $1 AND id = $2 FOR UPDATE",
                    &[account, id],
                )
                .await
                .map_err(pg_error(context))?;
            if let Some(row) = stamp {
                let at =
                    instant_required(&row, 0, Cell::new(codec::BOOK_RECORDS, "updated_at", id))?;
                if !codec::replaces(&at, id, observed)? {
                    continue;
                }
                transaction
                    .execute(
                        "INSERT INTO ledger.book_versions (account_id, record_id, record, observed_at, superseded_at)
                         SELECT account_id, id, record, updated_at, $3 FROM ledger.book_records
                         WHERE account_id = $1 AND id = $2",
                        &[account, id, &observed],
                    )
                    .await
                    .map_err(pg_error(context))?;
            }
            let created: DateTime<Utc> = kept.record.created_at.to_utc();
            transaction
                .execute(
                    "INSERT INTO ledger.book_records (account_id, id, source_name, source, kind, created_at_utc, record, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8)
                     ON CONFLICT (account_id, id) DO UPDATE SET source_name = excluded.source_name,
                        source = excluded.source, kind = excluded.kind, created_at_utc = excluded.created_at_utc,
                        record = excluded.record, updated_at = excluded.updated_at",
                    &[
                        account,
                        id,
                        &commit.source,
                        &kept.record.source.as_str(),
                        &kept.record.kind.as_str(),
                        &created,
                        &codec::encode_kept(kept)?,
                        &observed,
                    ],
                )
                .await
                .map_err(pg_error(context))?;
        }
        for rejected in &commit.rejected {
            transaction
                .execute(
                    "INSERT INTO ledger.quarantine (account_id, source_name, raw, source_id, reason, first_seen_at)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    &[
                        account,
                        &commit.source,
                        &rejected.raw,
                        &rejected.source_id,
                        &rejected.reason,
                        &observed,
                    ],
                )
                .await
                .map_err(pg_error(context))?;
        }
        transaction
            .execute(
                "INSERT INTO ledger.book_walks (account_id, source_name, kind, walk) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (account_id, source_name, kind) DO UPDATE SET walk = excluded.walk",
                &[
                    account,
                    &commit.source,
                    &commit.kind.as_str(),
                    &codec::encode_walk(&commit.walk)?,
                ],
            )
            .await
            .map_err(pg_error(context))?;
        transaction.commit().await.map_err(pg_error(context))
    }

    async fn records(&self, source: Source) -> Result<Vec<KeptRecord>, StoreError> {
        let client = self.ledger.client().await?;
        let rows = client
            .query(
                "SELECT id, record::text FROM ledger.book_records WHERE account_id = $1 AND source = $2
                 ORDER BY created_at_utc, id",
                &[&self.account_id, &source.as_str()],
            )
            .await
            .map_err(pg_error("cannot read the book records"))?;
        rows.iter()
            .map(|row| read_kept(row).map(|(_, kept)| kept))
            .collect()
    }

    async fn issued(&self, account: &str) -> Result<Vec<StatementHead>, StoreError> {
        let client = self.ledger.client().await?;
        let rows = client
            .query(
                "SELECT number, day, closing, digest, issued_at FROM ledger.statements
                 WHERE account_id = $1 AND account = $2 ORDER BY number",
                &[&self.account_id, &account],
            )
            .await
            .map_err(pg_error("cannot read the statements issued"))?;
        rows.iter()
            .map(|row| {
                let key = format!("a statement of {account}");
                let cell = |column| Cell::new(codec::STATEMENTS, column, &key);
                StatementRow {
                    account: account.to_owned(),
                    number: get(row, 0, cell("number"))?,
                    day: get(row, 1, cell("day"))?,
                    closing: get(row, 2, cell("closing"))?,
                    digest: get(row, 3, cell("digest"))?,
                    issued_at: instant_required(row, 4, cell("issued_at"))?,
                }
                .decode()
            })
            .collect()
    }

    async fn statement_body(
        &self,
        account: &str,
        number: u32,
    ) -> Result<Option<String>, StoreError> {
        let client = self.ledger.client().await?;
        let row = client
            .query_opt(
                "SELECT body FROM ledger.statements
                 WHERE account_id = $1 AND account = $2 AND number = $3",
                &[&self.account_id, &account, &i64::from(number)],
            )
            .await
            .map_err(pg_error("cannot read an issued statement"))?;
        let key = format!("statement {number} of {account}");
        row.map(|row| get(&row, 0, Cell::new(codec::STATEMENTS, "body", &key)))
            .transpose()
    }

    async fn booked(&self, account: &str) -> Result<Vec<Booking>, StoreError> {
        let client = self.ledger.client().await?;
        let rows = client
            .query(
                "SELECT reference, booking FROM ledger.statement_refs
                 WHERE account_id = $1 AND account = $2",
                &[&self.account_id, &account],
            )
            .await
            .map_err(pg_error("cannot read the movements booked"))?;
        rows.iter()
            .map(|row| {
                let reference: String = get(
                    row,
                    0,
                    Cell::new(codec::STATEMENT_REFS, "reference", account),
                )?;
                let text: Option<String> = get(
                    row,
                    1,
                    Cell::new(codec::STATEMENT_REFS, "booking", &reference),
                )?;
                codec::read_booking(account, reference, text)
            })
            .collect()
    }

    async fn issue(&self, statements: Vec<IssuedStatement>) -> Result<(), StoreError> {
        let context = "cannot record the statements issued";
        let mut client = self.ledger.client().await?;
        let transaction = client.transaction().await.map_err(pg_error(context))?;
        let account_id = &self.account_id;
        for statement in &statements {
            let row = StatementRow::encode(statement);
            let references: Vec<&str> = statement
                .bookings
                .iter()
                .map(|b| b.reference.as_str())
                .collect();
            let bookings: Vec<Option<String>> = statement
                .bookings
                .iter()
                .map(codec::encode_booking)
                .collect();
            let conflict = |error: tokio_postgres::Error| {
                if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                    codec::already_issued(&statement.account, statement.number, statement.day)
                } else {
                    pg_error(context)(error)
                }
            };
            transaction
                .execute(
                    "INSERT INTO ledger.statements (account_id, account, number, day, closing, digest, body, issued_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::timestamptz)",
                    &[
                        account_id,
                        &row.account,
                        &row.number,
                        &row.day,
                        &row.closing,
                        &row.digest,
                        &statement.body,
                        &row.issued_at,
                    ],
                )
                .await
                .map_err(conflict)?;
            transaction
                .execute(
                    "INSERT INTO ledger.statement_refs (account_id, account, reference, number, booking)
                     SELECT $1, $2, reference, $4, booking
                     FROM unnest($3::text[], $5::text[]) AS b (reference, booking)",
                    &[
                        account_id,
                        &row.account,
                        &references,
                        &row.number,
                        &bookings,
                    ],
                )
                .await
                .map_err(conflict)?;
        }
        transaction.commit().await.map_err(pg_error(context))
    }
}

/// The kept record of a row `(id, record::text)`.
fn read_kept(row: &tokio_postgres::Row) -> Result<(String, KeptRecord), StoreError> {
    let id: String = get(
        row,
        0,
        Cell::new(codec::BOOK_RECORDS, "id", "a book record"),
    )?;
    let text: String = get(
        row,
        1,
        Cell::new(codec::BOOK_RECORDS, "record", &format!("record {id}")),
    )?;
    let kept = codec::read_kept(&text, &id)?;
    Ok((id, kept))
}
