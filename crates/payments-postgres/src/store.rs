//! One account's ledger: [`PgStore`], a `Store` for a sync and a `Ledger` for reading back, with
//! exactly the SQLite store's semantics; every query is keyed by the account.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, Utc};
use futures::{StreamExt, TryStreamExt};
use payments_model::{Payment, Source};
use payments_sync::{
    Checkpoint, Commit, CommitCounts, Filter, GroupState, Ledger, PaymentStream, Quarantined,
    RunKind, RunRecord, SourceState, Store, StoreError, Summary, Version,
};
use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use crate::{Lease, PgLedger, pg_error};

/// One account's ledger in a [`PgLedger`].
#[derive(Clone, Debug)]
pub struct PgStore {
    ledger: PgLedger,
    account_id: i64,
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

fn read_record(value: serde_json::Value) -> Result<Payment, StoreError> {
    serde_json::from_value(value.clone()).map_err(|e| StoreError::Corrupt {
        what: "a stored payment".to_owned(),
        detail: format!("{e}: {value}"),
    })
}

fn json_error(context: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |err| StoreError::backend(context, err)
}

/// The columns of `ledger.payments` a commit writes, in the order of [`payment_params`].
const UPSERT: &str =
    "INSERT INTO ledger.payments (account_id, id, source_name, source, source_id, status,
        provider_status, amount, currency, refunded_amount, created_at, created_at_utc, paid_at,
        payer_name, description, method, processor, processor_reference, payment_link_id,
        customer_id, fail_reason, record, first_seen_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::numeric, $9, $10::text::numeric, $11, $12, $13,
        $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $23)
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
        updated_at = excluded.updated_at";

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

    async fn write_commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let context = "cannot commit the page";
        let mut client = self.ledger.client().await?;
        let transaction = client.transaction().await.map_err(pg_error(context))?;
        if let Some(fence) = &self.fence {
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
                return Err(StoreError::Locked {
                    ledger: format!(
                        "{} ({}: this worker's lease expired or was taken over, so nothing more was committed)",
                        self.name, fence.source_name
                    ),
                });
            }
        }
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
        for payment in &commit.payments {
            transaction
                .execute(&supersede, &[account, &payment.id, &observed])
                .await
                .map_err(pg_error(context))?;
            let record = serde_json::to_value(payment).map_err(json_error(context))?;
            let amount = payment.amount.amount_string();
            let refunded = payment.refunded_amount.map(|m| m.amount_string());
            let created_at = payments_model::format_timestamp(&payment.created_at);
            let created_at_utc = payment.created_at.with_timezone(&Utc);
            let paid_at = payment
                .paid_at
                .as_ref()
                .map(payments_model::format_timestamp);
            let params: [&(dyn ToSql + Sync); 23] = [
                account,
                &payment.id,
                &commit.source,
                &payment.source.as_str(),
                &payment.source_id,
                &payment.status.as_str(),
                &payment.provider_status,
                &amount,
                &payment.currency().code(),
                &refunded,
                &created_at,
                &created_at_utc,
                &paid_at,
                &payment.payer_name,
                &payment.description,
                &payment.method,
                &payment.processor,
                &payment.processor_reference,
                &payment.payment_link_id,
                &payment.customer_id,
                &payment.fail_reason,
                &record,
                &observed,
            ];
            transaction
                .execute(&upsert, &params)
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
            let state_json = serde_json::to_value(state).map_err(json_error(context))?;
            transaction
                .execute(
                    "INSERT INTO ledger.groups (account_id, source_name, id, status, state)
                     VALUES ($1, $2, $3, $4, $5)
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
        let checkpoint = serde_json::to_string(&commit.checkpoint).map_err(json_error(context))?;
        transaction
            .execute(
                "INSERT INTO ledger.checkpoints (account_id, source_name, checkpoint) VALUES ($1, $2, $3)
                 ON CONFLICT (account_id, source_name) DO UPDATE SET checkpoint = excluded.checkpoint",
                &[account, &commit.source, &checkpoint],
            )
            .await
            .map_err(pg_error(context))?;
        transaction.commit().await.map_err(pg_error(context))
    }
}

async fn read_checkpoint(
    client: &impl GenericClient,
    account_id: i64,
    source_name: &str,
) -> Result<Option<Checkpoint>, StoreError> {
    let row = client
        .query_opt(
            "SELECT checkpoint FROM ledger.checkpoints WHERE account_id = $1 AND source_name = $2",
            &[&account_id, &source_name],
        )
        .await
        .map_err(pg_error("cannot read the checkpoint"))?;
    row.map(|row| {
        let text: String = row.get(0);
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            what: format!("the checkpoint of {source_name}"),
            detail: e.to_string(),
        })
    })
    .transpose()
}

#[async_trait]
impl Store for PgStore {
    async fn source_state(&self, source: &str) -> Result<SourceState, StoreError> {
        let context = "cannot read the sync state";
        let client = self.ledger.client().await?;
        let (checkpoint, unreadable_checkpoint) =
            match read_checkpoint(&**client, self.account_id, source).await {
                Ok(checkpoint) => (checkpoint, None),
                Err(StoreError::Corrupt { detail, .. }) => (None, Some(detail)),
                Err(error) => return Err(error),
            };
        let mut groups = HashMap::new();
        for row in client
            .query(
                "SELECT id, state FROM ledger.groups WHERE account_id = $1 AND source_name = $2",
                &[&self.account_id, &source],
            )
            .await
            .map_err(pg_error(context))?
        {
            // A state that does not read back is left out: the engine then knows nothing of
            // the group and reads it again, which writes a good state.
            if let Ok(state) = serde_json::from_value::<GroupState>(row.get(1)) {
                groups.insert(row.get(0), state);
            }
        }
        let unknown_words = client
            .query(
                "SELECT word FROM ledger.unknown_words WHERE account_id = $1 AND source_name = $2",
                &[&self.account_id, &source],
            )
            .await
            .map_err(pg_error(context))?
            .into_iter()
            .map(|row| row.get(0))
            .collect();
        Ok(SourceState {
            checkpoint,
            groups,
            unreadable_checkpoint,
            unknown_words,
        })
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
                "SELECT min(created_at_utc) FROM ledger.payments
                 WHERE account_id = $1 AND source_name = $2 AND created_at_utc >= $3 AND status = ANY($4)",
                &[&self.account_id, &source, &since, &statuses],
            )
            .await
            .map_err(pg_error("cannot read the oldest payment"))?;
        Ok(row
            .and_then(|row| row.get::<_, Option<DateTime<Utc>>>(0))
            .map(|at| at.fixed_offset()))
    }

    async fn quarantined(&self, source: &str) -> Result<HashSet<String>, StoreError> {
        let client = self.ledger.client().await?;
        Ok(client
            .query(
                "SELECT DISTINCT source_id FROM ledger.quarantine
                 WHERE account_id = $1 AND source_name = $2 AND source_id IS NOT NULL",
                &[&self.account_id, &source],
            )
            .await
            .map_err(pg_error("cannot read the quarantine"))?
            .into_iter()
            .map(|row| row.get(0))
            .collect())
    }

    async fn stored(&self, ids: Vec<String>) -> Result<HashMap<String, Payment>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let client = self.ledger.client().await?;
        let mut stored = HashMap::new();
        for row in client
            .query(
                "SELECT id, record FROM ledger.payments WHERE account_id = $1 AND id = ANY($2)",
                &[&self.account_id, &ids],
            )
            .await
            .map_err(pg_error("cannot read stored payments"))?
        {
            stored.insert(row.get(0), read_record(row.get(1))?);
        }
        Ok(stored)
    }

    async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        self.write_commit(&commit).await
    }

    async fn record_run(&self, run: RunRecord) -> Result<(), StoreError> {
        let summary = &run.summary;
        let count = |n: u64| n as i64;
        let kind = summary.run.map(RunKind::as_str);
        let waited = summary.waited.as_millis() as i64;
        let (new, changed, unchanged, backwards) = (
            count(summary.counts.new),
            count(summary.counts.changed),
            count(summary.counts.unchanged),
            count(summary.counts.backwards),
        );
        let (pages, requests, quarantined) = (
            count(summary.pages),
            count(summary.requests),
            count(summary.quarantined),
        );
        let client = self.ledger.client().await?;
        let context = "cannot record the run";
        // How the run ended, the same columns whichever row they go to.
        let ended: [&(dyn ToSql + Sync); 13] = [
            &run.finished_at,
            &kind,
            &summary.resumed,
            &pages,
            &requests,
            &new,
            &changed,
            &unchanged,
            &backwards,
            &quarantined,
            &waited,
            &run.error,
            &summary.feed_incomplete,
        ];
        const ENDED: &str = "finished_at, kind, resumed, pages, requests, new, changed, unchanged,
            backwards, quarantined, waited_ms, error, feed_incomplete";
        let marks = |from: usize| {
            (from..from + ended.len())
                .map(|n| format!("${n}"))
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
                    [&self.account_id, &summary.source_name, &run.started_at];
                let params: Vec<&(dyn ToSql + Sync)> = head.into_iter().chain(ended).collect();
                client
                    .execute(
                        &format!(
                            "INSERT INTO ledger.runs (account_id, source_name, started_at, {ENDED})
                             VALUES ($1, $2, $3, {})",
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

#[async_trait]
impl Ledger for PgStore {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn payments(&self, filter: &Filter) -> Result<PaymentStream, StoreError> {
        let context = "cannot read payments";
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(self.account_id)];
        let mut sql = match filter.as_of {
            None => {
                String::from("SELECT record FROM ledger.payments AS ledger WHERE account_id = $1")
            }
            // The current rows observed by then, and the versions that were current then.
            Some(at) => {
                params.push(Box::new(at));
                String::from(
                    "SELECT record FROM (
                        SELECT record, source, status, created_at_utc, id FROM ledger.payments
                        WHERE account_id = $1 AND updated_at <= $2
                        UNION ALL
                        SELECT record, source, status, created_at_utc, payment_id FROM ledger.versions
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
            .and_then(|row| async move { read_record(row.get(0)) })
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
                "SELECT record, observed_at, superseded_at, status_only, seq AS position FROM ledger.versions
                 WHERE account_id = $1 AND payment_id = $2
                 UNION ALL
                 SELECT record, updated_at, NULL, false, 9223372036854775807 FROM ledger.payments
                 WHERE account_id = $1 AND id = $2
                 ORDER BY position",
                &[&self.account_id, &payment_id],
            )
            .await
            .map_err(pg_error("cannot read the versions of a payment"))?;
        rows.into_iter()
            .map(|row| {
                Ok(Version {
                    payment: read_record(row.get(0))?,
                    observed_at: row.get(1),
                    superseded_at: row.get(2),
                    status_only: row.get(3),
                })
            })
            .collect()
    }

    async fn reconstructed_at(&self, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let client = self.ledger.client().await?;
        Ok(client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM ledger.versions WHERE account_id = $1 AND status_only
                    AND observed_at <= $2 AND superseded_at > $2)",
                &[&self.account_id, &at],
            )
            .await
            .map_err(pg_error("cannot read the versions"))?
            .get(0))
    }

    async fn last_run(&self, source_name: &str) -> Result<Option<RunRecord>, StoreError> {
        let client = self.ledger.client().await?;
        // A run still going (or whose worker died) has no end yet: the last one that ended.
        let row = client
            .query_opt(
                "SELECT started_at, finished_at, kind, resumed, pages, requests, new, changed,
                        unchanged, backwards, quarantined, waited_ms, error, feed_incomplete
                 FROM ledger.runs
                 WHERE account_id = $1 AND source_name = $2 AND finished_at IS NOT NULL
                 ORDER BY seq DESC LIMIT 1",
                &[&self.account_id, &source_name],
            )
            .await
            .map_err(pg_error("cannot read the last run"))?;
        Ok(row.map(|row| {
            let count = |index: usize| row.get::<_, i64>(index).max(0) as u64;
            let kind: Option<String> = row.get(2);
            RunRecord {
                started_at: row.get(0),
                finished_at: row.get(1),
                summary: Summary {
                    source_name: source_name.to_owned(),
                    run: kind.as_deref().and_then(RunKind::parse),
                    resumed: row.get(3),
                    pages: count(4),
                    requests: count(5),
                    counts: CommitCounts {
                        new: count(6),
                        changed: count(7),
                        unchanged: count(8),
                        backwards: count(9),
                    },
                    quarantined: count(10),
                    waited: Duration::from_millis(count(11)),
                    feed_incomplete: row.get(13),
                    // What the checkpoint keeps (the feed failing, payments to read) is not
                    // a run's column: `payments status` reads it from the checkpoint.
                    ..Summary::default()
                },
                error: row.get(12),
            }
        }))
    }

    async fn checkpoint(&self, source_name: &str) -> Result<Option<Checkpoint>, StoreError> {
        let client = self.ledger.client().await?;
        read_checkpoint(&**client, self.account_id, source_name).await
    }

    async fn quarantine(&self, source_name: &str) -> Result<Vec<Quarantined>, StoreError> {
        let client = self.ledger.client().await?;
        Ok(client
            .query(
                "SELECT source_id, reason, raw FROM ledger.quarantine
                 WHERE account_id = $1 AND source_name = $2 ORDER BY first_seen_at, raw",
                &[&self.account_id, &source_name],
            )
            .await
            .map_err(pg_error("cannot read the quarantine"))?
            .into_iter()
            .map(|row| Quarantined {
                source_id: row.get(0),
                reason: row.get(1),
                raw: row.get(2),
            })
            .collect())
    }

    async fn unknown_words(
        &self,
        source_name: &str,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let client = self.ledger.client().await?;
        Ok(client
            .query(
                "SELECT word, first_seen_at FROM ledger.unknown_words
                 WHERE account_id = $1 AND source_name = $2 ORDER BY first_seen_at, word",
                &[&self.account_id, &source_name],
            )
            .await
            .map_err(pg_error("cannot read the unknown status words"))?
            .into_iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    async fn counts_by_status(&self, source: Source) -> Result<Vec<(String, u64)>, StoreError> {
        let client = self.ledger.client().await?;
        Ok(client
            .query(
                "SELECT status, COUNT(*) FROM ledger.payments WHERE account_id = $1 AND source = $2
                 GROUP BY status ORDER BY status",
                &[&self.account_id, &source.as_str()],
            )
            .await
            .map_err(pg_error("cannot count payments"))?
            .into_iter()
            .map(|row| (row.get(0), row.get::<_, i64>(1).max(0) as u64))
            .collect())
    }
}
