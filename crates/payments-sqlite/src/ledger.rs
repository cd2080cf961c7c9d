//! The read side: `impl Ledger for SqliteStore` and [`SqliteStore::for_each_payment`]. Every
//! stored value reads back through `payments_sync::codec`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use payments_model::{Payment, Source};
use payments_sync::codec::{self, RunRow, VersionRow};
use payments_sync::{
    Checkpoint, Filter, Ledger, PaymentStream, Quarantined, RunRecord, StoreError, Version,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{SqliteStore, store_error};

impl SqliteStore {
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
            None => String::from("SELECT id, record FROM payments AS ledger WHERE 1 = 1"),
            // The current rows observed by then, and the versions that were current then.
            Some(at) => {
                let at = codec::instant(at);
                args.extend([at.clone(), at.clone(), at]);
                String::from(
                    "SELECT id, record, versioned FROM (
                        SELECT record, source, status, created_at_utc, id, 0 AS versioned FROM payments WHERE updated_at <= ?
                        UNION ALL
                        SELECT record, source, status, created_at_utc, payment_id, 1 FROM versions
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
            args.push(codec::instant(since));
        }
        if let Some(until) = filter.until {
            sql.push_str(" AND created_at_utc < ?");
            args.push(codec::instant(until));
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
            let context = "cannot read payments";
            let id: String = row.get(0).map_err(store_error(context))?;
            let record: String = row.get(1).map_err(store_error(context))?;
            let table = match filter.as_of {
                Some(_) if row.get::<_, bool>(2).map_err(store_error(context))? => codec::VERSIONS,
                _ => codec::PAYMENTS,
            };
            let payment = codec::read_record(&record, table, &id)?;
            each(payment)?;
        }
        Ok(())
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

    async fn recent_runs(
        &self,
        source_name: &str,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let name = source_name.to_owned();
        self.blocking(move |connection| recent_runs(connection, &name, limit))
            .await
    }

    async fn checkpoint(&self, source_name: &str) -> Result<Option<Checkpoint>, StoreError> {
        let name = source_name.to_owned();
        self.blocking(move |connection| {
            let text: Option<String> = connection
                .query_row(
                    "SELECT checkpoint FROM checkpoints WHERE source_name = ?",
                    [&name],
                    |row| row.get(0),
                )
                .optional()
                .map_err(store_error("cannot read the checkpoint"))?;
            text.map(|text| codec::read_checkpoint(&text, &name))
                .transpose()
        })
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

/// The last `limit` recorded runs of a source, newest first.
fn recent_runs(
    connection: &Connection,
    source_name: &str,
    limit: usize,
) -> Result<Vec<RunRecord>, StoreError> {
    let context = "cannot read the last runs";
    let mut select = connection
        .prepare_cached(
            "SELECT started_at, finished_at, kind, resumed, pages, requests, new, changed, unchanged,
                    backwards, quarantined, waited_ms, error, feed_incomplete, stopped
             FROM runs WHERE source_name = ? ORDER BY seq DESC LIMIT ?",
        )
        .map_err(store_error(context))?;
    let rows = select
        .query_map(
            params![source_name, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| {
                Ok(RunRow {
                    source_name: source_name.to_owned(),
                    started_at: row.get(0)?,
                    finished_at: row.get(1)?,
                    kind: row.get(2)?,
                    resumed: row.get(3)?,
                    pages: row.get(4)?,
                    requests: row.get(5)?,
                    new: row.get(6)?,
                    changed: row.get(7)?,
                    unchanged: row.get(8)?,
                    backwards: row.get(9)?,
                    quarantined: row.get(10)?,
                    waited_ms: row.get(11)?,
                    error: row.get(12)?,
                    feed_incomplete: row.get(13)?,
                    stopped: row.get(14)?,
                })
            },
        )
        .map_err(store_error(context))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(store_error(context))?;
    rows.iter().map(RunRow::decode).collect()
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
            let superseded_at: Option<String> = row.get(2)?;
            Ok(VersionRow {
                table: if superseded_at.is_some() {
                    codec::VERSIONS
                } else {
                    codec::PAYMENTS
                },
                record: row.get(0)?,
                observed_at: row.get(1)?,
                superseded_at,
                status_only: row.get(3)?,
            })
        })
        .map_err(store_error(context))?;
    let mut versions = Vec::new();
    for row in rows {
        versions.push(row.map_err(store_error(context))?.decode(payment_id)?);
    }
    Ok(versions)
}

/// The quarantined records of a source, oldest first.
fn quarantine(connection: &Connection, source_name: &str) -> Result<Vec<Quarantined>, StoreError> {
    let context = "cannot read the quarantine";
    let mut statement = connection
        .prepare("SELECT source_id, reason, raw, first_seen_at FROM quarantine WHERE source_name = ? ORDER BY first_seen_at, raw")
        .map_err(store_error(context))?;
    let rows = statement
        .query_map([source_name], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .map_err(store_error(context))?;
    rows.map(|row| {
        let (source_id, reason, raw, seen) = row.map_err(store_error(context))?;
        Ok(Quarantined {
            source_id,
            reason,
            raw,
            first_seen_at: codec::read_instant(
                &seen,
                codec::Cell::new("quarantine", "first_seen_at", source_name),
            )?,
        })
    })
    .collect()
}

/// Whether the ledger as known at `at` holds a version of which only the status is known
/// (migrated from a ledger older than schema 6): its other fields are those of a later
/// version, so an export as of `at` shows combinations that may never have existed.
fn reconstructed_at(connection: &Connection, at: DateTime<Utc>) -> Result<bool, StoreError> {
    connection
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM versions WHERE status_only = 1 AND observed_at <= ?1 AND superseded_at > ?1)",
            [codec::instant(at)],
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
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(store_error(context))?;
    let mut words = Vec::new();
    for row in rows {
        let (word, seen) = row.map_err(store_error(context))?;
        let seen = codec::read_word_seen(&seen, source_name, &word)?;
        words.push((word, seen));
    }
    Ok(words)
}

/// Payments per unified status, for one source.
fn counts_by_status(
    connection: &Connection,
    source: Source,
) -> Result<Vec<(String, u64)>, StoreError> {
    let context = "cannot count payments";
    let mut statement = connection
        .prepare("SELECT status, COUNT(*) FROM payments WHERE source = ? GROUP BY status ORDER BY status")
        .map_err(store_error(context))?;
    let rows = statement
        .query_map([source.as_str()], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .map_err(store_error(context))?;
    let mut counts = Vec::new();
    for row in rows {
        let (status, n) = row.map_err(store_error(context))?;
        let key = format!("the payments of {source} with status {status}");
        counts.push((
            status,
            codec::read_count(n, codec::Cell::new(codec::PAYMENTS, "COUNT(*)", &key))?,
        ));
    }
    Ok(counts)
}
