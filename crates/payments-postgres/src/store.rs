//! One account's ledger: [`PgStore`], a `Store` for a sync and a `Ledger` for reading back, with
//! exactly the SQLite store's semantics; every query is keyed by the account.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, Utc};
use futures::{StreamExt, TryStreamExt};
use payments_model::{Payment, Source};
use payments_sync::codec::{self, Cell, PaymentRow, RunRow, VersionRow};
use payments_sync::{
    Checkpoint, Commit, Filter, Ledger, PaymentStream, Quarantined, RunRecord, SourceState, Store,
    StoreError, Version,
};
use tokio_postgres::types::{FromSql, Timestamp, ToSql};
use tokio_postgres::{GenericClient, Row};

use crate::{Lease, PgLedger, pg_error};

/// One account's ledger in a [`PgLedger`].
#[derive(Clone, Debug)]
pub struct PgStore {
    pub(crate) ledger: PgLedger,
    pub(crate) account_id: i64,
    /// `postgresql://user@host:port/dbname account NAME`, for messages.
    name: String,
    /// Set for a store made from a lease: commits land only while it is held, and the run row
    /// the lease opened is the one completed.
    fence: Option<Fence>,
}

#[derive(Clone, Debug)]
struct Fence {
    source_name: String,
    worker: String,
    run_seq: i64,
}

impl PgLedger {
    /// The ledger of the account `account_id` (named `account_name`), for reading it back or for
    /// a sync that holds no lease (one process, no fleet).
    pub fn store(&self, account_id: i64, account_name: &str) -> PgStore {
        PgStore {
            ledger: self.clone(),
            account_id,
            name: format!("{} account {account_name}", self.name()),
            fence: None,
        }
    }

    /// The ledger of the leased account, for the lease's run: each commit lands only while the
    /// lease's worker still holds it, and the run's record completes the run row the lease
    /// opened.
    pub fn leased_store(&self, lease: &Lease) -> PgStore {
        PgStore {
            fence: Some(Fence {
                source_name: lease.source_name.clone(),
                worker: lease.worker.clone(),
                run_seq: lease.run_seq,
            }),
            ..self.store(lease.account_id, &lease.account_name)
        }
    }
}

/// The value of column `index` of `row`; one that does not read as a `T` is named by `cell`.
pub(crate) fn get<'a, T: FromSql<'a>>(
    row: &'a Row,
    index: usize,
    cell: Cell<'_>,
) -> Result<T, StoreError> {
    row.try_get(index).map_err(|e| {
        let found = row
            .columns()
            .get(index)
            .map_or_else(|| "no column".to_owned(), |c| c.type_().to_string());
        cell.unreadable(&format!("a value of type {found}"), e)
    })
}

/// The instant in column `index` of `row`, as the codec's text (`infinity` for one that is no
/// instant, which then does not read back).
pub(crate) fn instant(
    row: &Row,
    index: usize,
    cell: Cell<'_>,
) -> Result<Option<String>, StoreError> {
    Ok(
        match get::<Option<Timestamp<DateTime<Utc>>>>(row, index, cell)? {
            None => None,
            Some(Timestamp::Value(at)) => Some(codec::instant(at)),
            Some(Timestamp::PosInfinity) => Some("infinity".to_owned()),
            Some(Timestamp::NegInfinity) => Some("-infinity".to_owned()),
        },
    )
}

/// [`instant`] of a column that is never null.
pub(crate) fn instant_required(
    row: &Row,
    index: usize,
    cell: Cell<'_>,
) -> Result<String, StoreError> {
    instant(row, index, cell)?.ok_or_else(|| cell.unreadable("NULL", "no instant"))
}

/// The columns of `ledger.payments` a commit writes, in the order of its parameters.
macro_rules! insert_payment {
    () => {
        "INSERT INTO ledger.payments (account_id, id, source_name, source, source_id, status,
        provider_status, amount, currency, refunded_amount, created_at, created_at_utc, paid_at,
        payer_name, description, method, processor, processor_reference, payment_link_id,
        customer_id, fail_reason, record, first_seen_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::numeric, $9, $10::text::numeric, $11,
        $12::text::timestamptz, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22::text::jsonb, $23,
        $23)"
    };
}

/// A payment not stored yet, unless a commit beside this one stored it meanwhile.
const INSERT: &str = concat!(
    insert_payment!(),
    " ON CONFLICT (account_id, id) DO NOTHING"
);

/// A payment, replacing the stored one.
const UPSERT: &str = concat!(
    insert_payment!(),
    "
     ON CONFLICT (account_id, id) DO UPDATE SET source_name = excluded.source_name,
        source = excluded.source, source_id = excluded.source_id, status = excluded.status,
        provider_status = excluded.provider_status, amount = excluded.amount,
        currency = excluded.currency, refunded_amount = excluded.refunded_amount,
        created_at = excluded.created_at, created_at_utc = excluded.created_at_utc,
        paid_at = excluded.paid_at, payer_name = excluded.payer_name,
        description = excluded.description, method = excluded.method,
        processor = excluded.processor, processor_reference = excluded.processor_reference,
        payment_link_id = excluded.payment_link_id, customer_id = excluded.customer_id,
        fail_reason = excluded.fail_reason, record = excluded.record,
        updated_at = excluded.updated_at"
);

/// The ordering stamp of the stored payments of a commit: when each current version was
/// observed. Locked, in id order (two commits of the same payments wait for each other instead
/// of deadlocking), so that no commit beside this one replaces them before it ends.
const STAMPS: &str = "SELECT id, updated_at FROM ledger.payments
     WHERE account_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE";

/// A stored payment that a commit replaces is kept as a version first.
const SUPERSEDE: &str =
    "INSERT INTO ledger.versions (account_id, payment_id, source, status, created_at_utc, record,
        observed_at, superseded_at, status_only)
     SELECT account_id, id, source, status, created_at_utc, record, updated_at, $3, false
     FROM ledger.payments WHERE account_id = $1 AND id = $2";

impl PgStore {
    /// The account's id.
    pub fn account_id(&self) -> i64 {
        self.account_id
    }

    /// For a store made from a lease: refuses, in the commit's own transaction, unless this
    /// worker still holds the lease (the row stays locked until the transaction ends).
    pub(crate) async fn check_fence(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        context: &str,
    ) -> Result<(), StoreError> {
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        let held = transaction
            .query_opt(
                "SELECT 1 FROM ledger.account_sources
                 WHERE account_id = $1 AND source_name = $2 AND leased_by = $3
                   AND lease_expires_at > now()
                 FOR UPDATE",
                &[&self.account_id, &fence.source_name, &fence.worker],
            )
            .await
            .map_err(pg_error(context))?;
        if held.is_none() {
            // Its account removed while it ran: said as such, not as another sync.
            let exists = transaction
                .query_opt(
                    "SELECT 1 FROM ledger.account_sources WHERE account_id = $1 AND source_name = $2",
                    &[&self.account_id, &fence.source_name],
                )
                .await
                .map_err(pg_error(context))?;
            if exists.is_none() {
                return Err(StoreError::Conflict {
                    what: format!(
                        "{} ({}): the account or its source was removed while this run went on, so nothing more was committed",
                        self.name, fence.source_name
                    ),
                });
            }
            return Err(StoreError::Locked {
                ledger: format!(
                    "{} ({}: this worker's lease expired or was taken over, so nothing more was committed)",
                    self.name, fence.source_name
                ),
            });
        }
        Ok(())
    }

    async fn write_commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let context = "cannot commit the page";
        let mut client = self.ledger.client().await?;
        let transaction = client.transaction().await.map_err(pg_error(context))?;
        self.check_fence(&transaction, context).await?;
        let account = &self.account_id;
        let observed = commit.observed_at;
        let supersede = transaction
            .prepare(SUPERSEDE)
            .await
            .map_err(pg_error(context))?;
        let upsert = transaction
            .prepare(UPSERT)
            .await
            .map_err(pg_error(context))?;
        let insert = transaction
            .prepare(INSERT)
            .await
            .map_err(pg_error(context))?;
        let stamps = transaction
            .prepare(STAMPS)
            .await
            .map_err(pg_error(context))?;
        let ids: Vec<&str> = commit.payments.iter().map(|p| p.id.as_str()).collect();
        let mut stored = HashMap::new();
        for row in transaction
            .query(&stamps, &[account, &ids])
            .await
            .map_err(pg_error(context))?
        {
            let (id, at) = read_stamp(&row)?;
            stored.insert(id, at);
        }
        for payment in &commit.payments {
            let row = PaymentRow::encode(&commit.source, payment)?;
            let params: [&(dyn ToSql + Sync); 23] = [
                account,
                &row.id,
                &row.source_name,
                &row.source,
                &row.source_id,
                &row.status,
                &row.provider_status,
                &row.amount,
                &row.currency,
                &row.refunded_amount,
                &row.created_at,
                &row.created_at_utc,
                &row.paid_at,
                &row.payer_name,
                &row.description,
                &row.method,
                &row.processor,
                &row.processor_reference,
                &row.payment_link_id,
                &row.customer_id,
                &row.fail_reason,
                &row.record,
                &observed,
            ];
            let mut stamp = stored.remove(&payment.id);
            loop {
                match stamp {
                    Some(at) => {
                        if codec::replaces(&at, &payment.id, observed)? {
                            transaction
                                .execute(&supersede, &[account, &payment.id, &observed])
                                .await
                                .map_err(pg_error(context))?;
                            transaction
                                .execute(&upsert, &params)
                                .await
                                .map_err(pg_error(context))?;
                        }
                        // Otherwise stored from a later fetch: it stays current.
                        break;
                    }
                    None => {
                        let inserted = transaction
                            .execute(&insert, &params)
                            .await
                            .map_err(pg_error(context))?;
                        if inserted == 1 {
                            break;
                        }
                        // A commit beside this one stored it meanwhile: compare with that.
                        let row = transaction
                            .query_one(&stamps, &[account, &vec![payment.id.as_str()]])
                            .await
                            .map_err(pg_error(context))?;
                        stamp = Some(read_stamp(&row)?.1);
                    }
                }
            }
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
        if !commit.resolved.is_empty() {
            transaction
                .execute(
                    "DELETE FROM ledger.quarantine
                     WHERE account_id = $1 AND source_name = $2 AND source_id = ANY($3)",
                    &[account, &commit.source, &commit.resolved],
                )
                .await
                .map_err(pg_error(context))?;
        }
        for (id, state) in &commit.groups {
            let state_json = codec::encode_group(state)?;
            transaction
                .execute(
                    "INSERT INTO ledger.groups (account_id, source_name, id, status, state)
                     VALUES ($1, $2, $3, $4, $5::text::jsonb)
                     ON CONFLICT (account_id, source_name, id)
                     DO UPDATE SET status = excluded.status, state = excluded.state",
                    &[account, &commit.source, id, &state.status, &state_json],
                )
                .await
                .map_err(pg_error(context))?;
        }
        if !commit.unknown_words.is_empty() {
            transaction
                .execute(
                    "INSERT INTO ledger.unknown_words (account_id, source_name, word, first_seen_at)
                     SELECT $1, $2, word, $4 FROM unnest($3::text[]) AS word
                     ON CONFLICT DO NOTHING",
                    &[account, &commit.source, &commit.unknown_words, &observed],
                )
                .await
                .map_err(pg_error(context))?;
        }
        if let Some(checkpoint) = &commit.checkpoint {
            let checkpoint = codec::encode_checkpoint(checkpoint)?;
            transaction
                .execute(
                    "INSERT INTO ledger.checkpoints (account_id, source_name, checkpoint) VALUES ($1, $2, $3)
                     ON CONFLICT (account_id, source_name) DO UPDATE SET checkpoint = excluded.checkpoint",
                    &[account, &commit.source, &checkpoint],
                )
                .await
                .map_err(pg_error(context))?;
        }
        transaction.commit().await.map_err(pg_error(context))
    }
}

async fn read_checkpoint(
    client: &impl GenericClient,
    account_id: i64,
    source_name: &str,
) -> Result<Option<String>, StoreError> {
    let row = client
        .query_opt(
            "SELECT checkpoint FROM ledger.checkpoints WHERE account_id = $1 AND source_name = $2",
            &[&account_id, &source_name],
        )
        .await
        .map_err(pg_error("cannot read the checkpoint"))?;
    row.map(|row| {
        get(
            &row,
            0,
            Cell::new(codec::CHECKPOINTS, "checkpoint", source_name),
        )
    })
    .transpose()
}

#[async_trait]
impl Store for PgStore {
    async fn source_state(&self, source: &str) -> Result<SourceState, StoreError> {
        let context = "cannot read the sync state";
        let client = self.ledger.client().await?;
        let checkpoint = read_checkpoint(&**client, self.account_id, source).await?;
        let mut groups = Vec::new();
        for row in client
            .query(
                "SELECT id, state::text FROM ledger.groups WHERE account_id = $1 AND source_name = $2",
                &[&self.account_id, &source],
            )
            .await
            .map_err(pg_error(context))?
        {
            let id: String = get(&row, 0, Cell::new(codec::GROUPS, "id", source))?;
            let key = format!("group {id} of {source}");
            let state = get(&row, 1, Cell::new(codec::GROUPS, "state", &key))?;
            groups.push((id, state));
        }
        let unknown_words = client
            .query(
                "SELECT word FROM ledger.unknown_words WHERE account_id = $1 AND source_name = $2",
                &[&self.account_id, &source],
            )
            .await
            .map_err(pg_error(context))?
            .iter()
            .map(|row| get(row, 0, Cell::new(codec::UNKNOWN_WORDS, "word", source)))
            .collect::<Result<_, _>>()?;
        codec::source_state(source, checkpoint.as_deref(), groups, unknown_words)
    }

    async fn oldest_created(
        &self,
        source: &str,
        since: DateTime<Utc>,
        statuses: &[&str],
    ) -> Result<Option<DateTime<FixedOffset>>, StoreError> {
        let client = self.ledger.client().await?;
        let statuses: Vec<&str> = statuses.to_vec();
        let row = client
            .query_opt(
                "SELECT created_at_utc, id FROM ledger.payments
                 WHERE account_id = $1 AND source_name = $2 AND created_at_utc >= $3 AND status = ANY($4)
                 ORDER BY created_at_utc LIMIT 1",
                &[&self.account_id, &source, &since, &statuses],
            )
            .await
            .map_err(pg_error("cannot read the oldest payment"))?;
        let Some(row) = row else { return Ok(None) };
        let id: String = get(&row, 1, Cell::new(codec::PAYMENTS, "id", source))?;
        let key = format!("payment {id}");
        let at = instant_required(&row, 0, Cell::new(codec::PAYMENTS, "created_at_utc", &key))?;
        codec::read_created_at_utc(&at, &id).map(Some)
    }

    async fn quarantined(&self, source: &str) -> Result<HashSet<String>, StoreError> {
        let client = self.ledger.client().await?;
        client
            .query(
                "SELECT DISTINCT source_id FROM ledger.quarantine
                 WHERE account_id = $1 AND source_name = $2 AND source_id IS NOT NULL",
                &[&self.account_id, &source],
            )
            .await
            .map_err(pg_error("cannot read the quarantine"))?
            .iter()
            .map(|row| get(row, 0, Cell::new(QUARANTINE, "source_id", source)))
            .collect()
    }

    async fn stored(&self, ids: Vec<String>) -> Result<HashMap<String, Payment>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let client = self.ledger.client().await?;
        let mut stored = HashMap::new();
        for row in client
            .query(
                "SELECT id, record::text FROM ledger.payments WHERE account_id = $1 AND id = ANY($2)",
                &[&self.account_id, &ids],
            )
            .await
            .map_err(pg_error("cannot read stored payments"))?
        {
            let (id, payment) = read_payment(&row, codec::PAYMENTS)?;
            stored.insert(id, payment);
        }
        Ok(stored)
    }

    async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        self.write_commit(&commit).await
    }

    async fn record_run(&self, run: RunRecord) -> Result<(), StoreError> {
        let run = RunRow::encode(&run);
        let client = self.ledger.client().await?;
        let context = "cannot record the run";
        // How the run ended, the same columns whichever row they go to.
        let ended: [&(dyn ToSql + Sync); 14] = [
            &run.finished_at,
            &run.kind,
            &run.resumed,
            &run.pages,
            &run.requests,
            &run.new,
            &run.changed,
            &run.unchanged,
            &run.backwards,
            &run.quarantined,
            &run.waited_ms,
            &run.error,
            &run.feed_incomplete,
            &run.stopped,
        ];
        const ENDED: &str = "finished_at, kind, resumed, pages, requests, new, changed, unchanged,
            backwards, quarantined, waited_ms, error, feed_incomplete, stopped";
        // The instants are the codec's text: `finished_at` is the first of the ended columns.
        let marks = |from: usize| {
            (from..from + ended.len())
                .map(|n| match n - from {
                    0 => format!("${n}::text::timestamptz"),
                    _ => format!("${n}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.fence {
            // The run row the lease opened, whichever worker holds the lease now.
            Some(fence) => {
                let params: Vec<&(dyn ToSql + Sync)> =
                    std::iter::once(&fence.run_seq as &(dyn ToSql + Sync))
                        .chain(ended)
                        .collect();
                client
                    .execute(
                        &format!(
                            "UPDATE ledger.runs SET ({ENDED}) = ROW({}) WHERE seq = $1",
                            marks(2)
                        ),
                        &params,
                    )
                    .await
                    .map_err(pg_error(context))?
            }
            None => {
                let head: [&(dyn ToSql + Sync); 3] =
                    [&self.account_id, &run.source_name, &run.started_at];
                let params: Vec<&(dyn ToSql + Sync)> = head.into_iter().chain(ended).collect();
                client
                    .execute(
                        &format!(
                            "INSERT INTO ledger.runs (account_id, source_name, started_at, {ENDED})
                             VALUES ($1, $2, $3::text::timestamptz, {})",
                            marks(4)
                        ),
                        &params,
                    )
                    .await
                    .map_err(pg_error(context))?
            }
        };
        Ok(())
    }
}

/// The table of quarantined records.
const QUARANTINE: &str = "quarantine";

/// A row `(id, updated_at)` of [`STAMPS`]: the payment's id and when its current version was
/// observed, as the codec's instant.
fn read_stamp(row: &Row) -> Result<(String, String), StoreError> {
    let id: String = get(row, 0, Cell::new(codec::PAYMENTS, "id", "a payment"))?;
    let key = format!("payment {id}");
    let at = instant_required(row, 1, Cell::new(codec::PAYMENTS, "updated_at", &key))?;
    Ok((id, at))
}

/// The payment of a row `(id, record::text)` of `table`.
fn read_payment(row: &Row, table: &'static str) -> Result<(String, Payment), StoreError> {
    let id: String = get(row, 0, Cell::new(table, "id", "a payment"))?;
    let record: String = get(row, 1, Cell::new(table, "record", &format!("payment {id}")))?;
    let payment = codec::read_record(&record, table, &id)?;
    Ok((id, payment))
}

#[async_trait]
impl Ledger for PgStore {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn payments(&self, filter: &Filter) -> Result<PaymentStream, StoreError> {
        let context = "cannot read payments";
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(self.account_id)];
        let mut sql = match filter.as_of {
            None => String::from(
                "SELECT id, record::text, false FROM ledger.payments AS ledger WHERE account_id = $1",
            ),
            // The current rows observed by then, and the versions that were current then.
            Some(at) => {
                params.push(Box::new(at));
                String::from(
                    "SELECT id, record::text, versioned FROM (
                        SELECT record, source, status, created_at_utc, id, false AS versioned
                        FROM ledger.payments
                        WHERE account_id = $1 AND updated_at <= $2
                        UNION ALL
                        SELECT record, source, status, created_at_utc, payment_id, true
                        FROM ledger.versions
                        WHERE account_id = $1 AND observed_at <= $2 AND superseded_at > $2
                     ) AS ledger WHERE true",
                )
            }
        };
        if !filter.sources.is_empty() {
            let sources: Vec<String> = filter
                .sources
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect();
            params.push(Box::new(sources));
            sql.push_str(&format!(" AND source = ANY(${})", params.len()));
        }
        if !filter.statuses.is_empty() {
            params.push(Box::new(filter.statuses.clone()));
            sql.push_str(&format!(" AND status = ANY(${})", params.len()));
        }
        if let Some(since) = filter.since {
            params.push(Box::new(since));
            sql.push_str(&format!(" AND created_at_utc >= ${}", params.len()));
        }
        if let Some(until) = filter.until {
            params.push(Box::new(until));
            sql.push_str(&format!(" AND created_at_utc < ${}", params.len()));
        }
        sql.push_str(" ORDER BY created_at_utc, id");
        let client = self.ledger.client().await?;
        let rows = client
            .query_raw(&sql, params.iter().map(|p| &**p as &(dyn ToSql + Sync)))
            .await
            .map_err(pg_error(context))?;
        // The pooled connection goes back to the pool only once the stream is dropped.
        let stream = rows
            .map_err(pg_error(context))
            .and_then(|row| async move {
                let versioned: bool = get(&row, 2, Cell::new(codec::VERSIONS, "versioned", ""))?;
                let table = if versioned {
                    codec::VERSIONS
                } else {
                    codec::PAYMENTS
                };
                read_payment(&row, table).map(|(_, payment)| payment)
            })
            .map(move |item| {
                let _keep = &client;
                item
            });
        Ok(Box::pin(stream))
    }

    async fn versions(&self, payment_id: &str) -> Result<Vec<Version>, StoreError> {
        let client = self.ledger.client().await?;
        let rows = client
            .query(
                "SELECT record::text, observed_at, superseded_at, status_only, seq AS position FROM ledger.versions
                 WHERE account_id = $1 AND payment_id = $2
                 UNION ALL
                 SELECT record::text, updated_at, NULL, false, 9223372036854775807 FROM ledger.payments
                 WHERE account_id = $1 AND id = $2
                 ORDER BY position",
                &[&self.account_id, &payment_id],
            )
            .await
            .map_err(pg_error("cannot read the versions of a payment"))?;
        let key = format!("payment {payment_id}");
        rows.iter()
            .map(|row| {
                let superseded_at =
                    instant(row, 2, Cell::new(codec::VERSIONS, "superseded_at", &key))?;
                let table = if superseded_at.is_some() {
                    codec::VERSIONS
                } else {
                    codec::PAYMENTS
                };
                VersionRow {
                    table,
                    record: get(row, 0, Cell::new(table, "record", &key))?,
                    observed_at: instant_required(row, 1, Cell::new(table, "observed_at", &key))?,
                    superseded_at,
                    status_only: get(row, 3, Cell::new(table, "status_only", &key))?,
                }
                .decode(payment_id)
            })
            .collect()
    }

    async fn reconstructed_at(&self, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let client = self.ledger.client().await?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM ledger.versions WHERE account_id = $1 AND status_only
                    AND observed_at <= $2 AND superseded_at > $2)",
                &[&self.account_id, &at],
            )
            .await
            .map_err(pg_error("cannot read the versions"))?;
        get(
            &row,
            0,
            Cell::new(codec::VERSIONS, "status_only", "any version"),
        )
    }

    async fn recent_runs(
        &self,
        source_name: &str,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let client = self.ledger.client().await?;
        // A run still going (or whose worker died) has no end yet: the last ones that ended.
        let rows = client
            .query(
                "SELECT started_at, finished_at, kind, resumed, pages, requests, new, changed,
                        unchanged, backwards, quarantined, waited_ms, error, feed_incomplete,
                        stopped
                 FROM ledger.runs
                 WHERE account_id = $1 AND source_name = $2 AND finished_at IS NOT NULL
                 ORDER BY seq DESC LIMIT $3",
                &[
                    &self.account_id,
                    &source_name,
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(pg_error("cannot read the last runs"))?;
        let key = format!("the last runs of {source_name}");
        let cell = |column| Cell::new(codec::RUNS, column, &key);
        rows.iter()
            .map(|row| {
                RunRow {
                    source_name: source_name.to_owned(),
                    started_at: instant_required(row, 0, cell("started_at"))?,
                    finished_at: instant_required(row, 1, cell("finished_at"))?,
                    kind: get(row, 2, cell("kind"))?,
                    resumed: get(row, 3, cell("resumed"))?,
                    pages: get(row, 4, cell("pages"))?,
                    requests: get(row, 5, cell("requests"))?,
                    new: get(row, 6, cell("new"))?,
                    changed: get(row, 7, cell("changed"))?,
                    unchanged: get(row, 8, cell("unchanged"))?,
                    backwards: get(row, 9, cell("backwards"))?,
                    quarantined: get(row, 10, cell("quarantined"))?,
                    waited_ms: get(row, 11, cell("waited_ms"))?,
                    error: get(row, 12, cell("error"))?,
                    feed_incomplete: get(row, 13, cell("feed_incomplete"))?,
                    stopped: get(row, 14, cell("stopped"))?,
                }
                .decode()
            })
            .collect()
    }

    async fn checkpoint(&self, source_name: &str) -> Result<Option<Checkpoint>, StoreError> {
        let client = self.ledger.client().await?;
        read_checkpoint(&**client, self.account_id, source_name)
            .await?
            .map(|text| codec::read_checkpoint(&text, source_name))
            .transpose()
    }

    async fn quarantine(&self, source_name: &str) -> Result<Vec<Quarantined>, StoreError> {
        let client = self.ledger.client().await?;
        let cell = |column| Cell::new(QUARANTINE, column, source_name);
        client
            .query(
                "SELECT source_id, reason, raw, first_seen_at FROM ledger.quarantine
                 WHERE account_id = $1 AND source_name = $2 ORDER BY first_seen_at, raw",
                &[&self.account_id, &source_name],
            )
            .await
            .map_err(pg_error("cannot read the quarantine"))?
            .iter()
            .map(|row| {
                let seen = instant_required(row, 3, cell("first_seen_at"))?;
                Ok(Quarantined {
                    source_id: get(row, 0, cell("source_id"))?,
                    reason: get(row, 1, cell("reason"))?,
                    raw: get(row, 2, cell("raw"))?,
                    first_seen_at: codec::read_instant(&seen, cell("first_seen_at"))?,
                })
            })
            .collect()
    }

    async fn unknown_words(
        &self,
        source_name: &str,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let client = self.ledger.client().await?;
        client
            .query(
                "SELECT word, first_seen_at FROM ledger.unknown_words
                 WHERE account_id = $1 AND source_name = $2 ORDER BY first_seen_at, word",
                &[&self.account_id, &source_name],
            )
            .await
            .map_err(pg_error("cannot read the unknown status words"))?
            .iter()
            .map(|row| {
                let word: String =
                    get(row, 0, Cell::new(codec::UNKNOWN_WORDS, "word", source_name))?;
                let key = format!("the word {word:?} of {source_name}");
                let seen = instant_required(
                    row,
                    1,
                    Cell::new(codec::UNKNOWN_WORDS, "first_seen_at", &key),
                )?;
                let seen = codec::read_word_seen(&seen, source_name, &word)?;
                Ok((word, seen))
            })
            .collect()
    }

    async fn counts_by_status(&self, source: Source) -> Result<Vec<(String, u64)>, StoreError> {
        let client = self.ledger.client().await?;
        client
            .query(
                "SELECT status, COUNT(*) FROM ledger.payments WHERE account_id = $1 AND source = $2
                 GROUP BY status ORDER BY status",
                &[&self.account_id, &source.as_str()],
            )
            .await
            .map_err(pg_error("cannot count payments"))?
            .iter()
            .map(|row| {
                let key = format!("the payments of {source}");
                let status: String = get(row, 0, Cell::new(codec::PAYMENTS, "status", &key))?;
                let key = format!("the payments of {source} with status {status}");
                let cell = Cell::new(codec::PAYMENTS, "COUNT(*)", &key);
                Ok((status, codec::read_count(get(row, 1, cell)?, cell)?))
            })
            .collect()
    }
}
