//! The write side: `impl Store for SqliteStore`, one transaction per page. Values go in as
//! `payments_sync::codec` encodes them and read back through it.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, Utc};
use payments_model::Payment;
use payments_sync::codec::{self, PaymentRow, RunRow};
use payments_sync::{Commit, RunRecord, SourceState, Store, StoreError};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{SqliteStore, store_error};

#[async_trait]
impl Store for SqliteStore {
    async fn source_state(&self, source: &str) -> Result<SourceState, StoreError> {
        let source = source.to_owned();
        self.blocking(move |connection| {
            let context = "cannot read the sync state";
            let checkpoint: Option<String> = connection
                .query_row(
                    "SELECT checkpoint FROM checkpoints WHERE source_name = ?",
                    [&source],
                    |row| row.get(0),
                )
                .optional()
                .map_err(store_error("cannot read the checkpoint"))?;
            // Groups from before schema 4 have no state: the engine reads each of them again.
            let mut groups = connection
                .prepare("SELECT id, state FROM groups WHERE source_name = ? AND state IS NOT NULL")
                .map_err(store_error(context))?;
            let groups = groups
                .query_map([&source], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(store_error(context))?
                .collect::<Result<Vec<(String, String)>, _>>()
                .map_err(store_error(context))?;
            let mut words = connection
                .prepare("SELECT word FROM unknown_words WHERE source_name = ?")
                .map_err(store_error(context))?;
            let unknown_words = words
                .query_map([&source], |row| row.get::<_, String>(0))
                .map_err(store_error(context))?
                .collect::<Result<HashSet<String>, _>>()
                .map_err(store_error(context))?;
            codec::source_state(&source, checkpoint.as_deref(), groups, unknown_words)
        })
        .await
    }

    async fn oldest_created(
        &self,
        source: &str,
        since: DateTime<Utc>,
        statuses: &[&str],
    ) -> Result<Option<DateTime<FixedOffset>>, StoreError> {
        let mut args = vec![source.to_owned(), codec::instant(since)];
        args.extend(statuses.iter().map(|s| (*s).to_owned()));
        let marks = vec!["?"; statuses.len()].join(", ");
        self.blocking(move |connection| {
            let oldest: Option<(String, String)> = connection
                .query_row(
                    &format!("SELECT created_at_utc, id FROM payments WHERE source_name = ? AND created_at_utc >= ? AND status IN ({marks}) ORDER BY created_at_utc LIMIT 1"),
                    rusqlite::params_from_iter(args.iter()),
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(store_error("cannot read the oldest payment"))?;
            oldest
                .map(|(at, id)| codec::read_created_at_utc(&at, &id))
                .transpose()
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
                let payment = codec::read_record(&record, codec::PAYMENTS, &id)?;
                stored.insert(id, payment);
            }
            Ok(stored)
        })
        .await
    }

    async fn record_run(&self, run: RunRecord) -> Result<(), StoreError> {
        self.blocking(move |connection| {
            let run = RunRow::encode(&run);
            connection
                .execute(
                    "INSERT INTO runs (source_name, started_at, finished_at, kind, resumed, pages, requests, new, changed,
                        unchanged, backwards, quarantined, waited_ms, error, feed_incomplete, stopped)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    params![
                        run.source_name,
                        run.started_at,
                        run.finished_at,
                        run.kind,
                        run.resumed,
                        run.pages,
                        run.requests,
                        run.new,
                        run.changed,
                        run.unchanged,
                        run.backwards,
                        run.quarantined,
                        run.waited_ms,
                        run.error,
                        run.feed_incomplete,
                        run.stopped,
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

/// Writes one page's facts in one transaction.
fn write_commit(connection: &mut Connection, commit: &Commit) -> Result<(), StoreError> {
    let context = "cannot commit the page";
    let transaction = connection.transaction().map_err(store_error(context))?;
    let observed = codec::instant(commit.observed_at);
    {
        // The ordering stamp: when the stored current version was first observed.
        let mut stamp = transaction
            .prepare_cached("SELECT updated_at FROM payments WHERE id = ?")
            .map_err(store_error(context))?;
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
            let stored: Option<String> = stamp
                .query_row([&payment.id], |row| row.get(0))
                .optional()
                .map_err(store_error(context))?;
            if let Some(stored) = stored {
                if !codec::replaces(&stored, &payment.id, commit.observed_at)? {
                    // Stored from a later fetch: it stays current.
                    continue;
                }
                supersede
                    .execute(params![payment.id, observed])
                    .map_err(store_error(context))?;
            }
            let row = PaymentRow::encode(&commit.source, payment)?;
            upsert
                .execute(params![
                    row.id,
                    row.source_name,
                    row.source,
                    row.source_id,
                    row.status,
                    row.provider_status,
                    row.amount,
                    row.currency,
                    row.refunded_amount,
                    row.created_at,
                    row.created_at_utc,
                    row.paid_at,
                    row.payer_name,
                    row.description,
                    row.method,
                    row.processor,
                    row.processor_reference,
                    row.payment_link_id,
                    row.customer_id,
                    row.fail_reason,
                    row.record,
                    observed,
                ])
                .map_err(store_error(context))?;
        }
        quarantine(
            &transaction,
            &commit.source,
            &commit.rejected,
            &observed,
            context,
        )?;
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
            groups
                .execute(params![
                    commit.source,
                    id,
                    state.status,
                    codec::encode_group(state)?
                ])
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
        if let Some(checkpoint) = &commit.checkpoint {
            transaction
                .execute(
                    "INSERT INTO checkpoints (source_name, checkpoint) VALUES (?, ?) ON CONFLICT DO UPDATE SET checkpoint = excluded.checkpoint",
                    params![commit.source, codec::encode_checkpoint(checkpoint)?],
                )
                .map_err(store_error(context))?;
        }
    }
    transaction.commit().map_err(store_error(context))?;
    Ok(())
}

/// Quarantines `rejected` records of `source`, once per raw record, first seen at `observed`
/// (an instant), in `transaction`: for pages of payments and of book records alike.
pub(crate) fn quarantine(
    transaction: &rusqlite::Transaction<'_>,
    source: &str,
    rejected: &[payments_model::Rejected],
    observed: &str,
    context: &str,
) -> Result<(), StoreError> {
    let mut insert = transaction
        .prepare_cached("INSERT OR IGNORE INTO quarantine (source_name, raw, source_id, reason, first_seen_at) VALUES (?, ?, ?, ?, ?)")
        .map_err(store_error(context))?;
    for rejected in rejected {
        insert
            .execute(params![
                source,
                rejected.raw,
                rejected.source_id,
                rejected.reason,
                observed
            ])
            .map_err(store_error(context))?;
    }
    Ok(())
}
