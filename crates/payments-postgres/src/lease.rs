//! Leases: a worker's hold on one source of one account while it syncs it. PostgreSQL is the
//! queue: a due row is taken with `FOR UPDATE SKIP LOCKED`, so workers never wait on each other
//! and never take the same row.

use std::time::Duration;

use chrono::{DateTime, Utc};
use payments_sync::{LimiterSnapshot, StoreError};
use secrecy::SecretString;

use crate::accounts::read_options;
use crate::{HintsSeen, KeyError, MasterKey, PgLedger, SourceOptions, pg_error};

/// One source of one account, held by one worker until the lease expires (renewed while it
/// works). Its store commits only while the lease is held.
#[derive(Clone, Debug)]
pub struct Lease {
    /// The account's id.
    pub account_id: i64,
    /// The account's name.
    pub account_name: String,
    /// The source (its `PaymentSource::name`).
    pub source_name: String,
    /// The worker that holds it.
    pub worker: String,
    /// The run row this lease's run completes.
    pub run_seq: i64,
    /// How the source is synced, or why its stored options do not read back (the run then
    /// fails, naming them, and the source stays due like any failed run).
    pub options: Result<SourceOptions, String>,
    /// Whether its scheduled run was due when it was leased (`next_run_at` passed); when not,
    /// it was leased for its webhook hints alone, and its worker only reads those.
    pub due: bool,
    /// The worker whose lease on it had expired unreleased when this one was taken (it died,
    /// froze or lost the database), if any.
    pub taken_over_from: Option<String>,
    /// What the provider last said of this key's rate limit, to any run with the key (under
    /// any account, on any worker): start its limiter from it ([`PgLedger::note_rate_limit`]).
    /// `None` when nothing was noted, or what was does not read (it is advice, never an error).
    /// Its times are on this machine's clock: they were kept on the database's.
    pub key_rate_limit: Option<LimiterSnapshot>,
    /// The sealed API key.
    sealed_key: Vec<u8>,
    /// The key's fingerprint when it was leased: what the run learns of the key's rate limit
    /// is noted under it, even when the key was replaced meanwhile.
    key_fingerprint: Option<String>,
    /// The source's due time when it was leased: a change of it meanwhile (`accounts update`
    /// asking for a sooner run) is seen at the release, which then keeps the sooner time.
    leased_next_run_at: DateTime<Utc>,
}

/// `seen` with its times moved by `shift`: from one clock to another (this machine's and the
/// database's), so that what one worker saw reads alike on every other.
fn on_clock(seen: LimiterSnapshot, shift: chrono::TimeDelta) -> LimiterSnapshot {
    LimiterSnapshot {
        at: seen.at + shift,
        requests: seen.requests.into_iter().map(|at| at + shift).collect(),
        ..seen
    }
}

impl Lease {
    /// The source's API key, opened with the master key.
    pub fn api_key(&self, master: &MasterKey) -> Result<SecretString, KeyError> {
        master.open_api_key(&self.sealed_key, &self.account_name, &self.source_name)
    }
}

/// How long the runs of an account-source are kept after they ended, in days.
pub const RUNS_KEPT_DAYS: i32 = 30;

fn interval(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

/// The advisory lock under which leases are taken ("LEAS").
const LEASE_LOCK: i64 = 0x4C45_4153;

impl PgLedger {
    /// Leases one due account-source (enabled, due or hinted, and not held by a live lease) to
    /// `worker` for `ttl`, and opens its run row; `None` when nothing is due. A hinted one
    /// (a webhook delivery waits in its inbox, [`PgLedger::receive_delivery`]) is leased as a
    /// due one is; [`Lease::due`] says whether its scheduled run is due too.
    pub async fn lease_due(
        &self,
        worker: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let context = "cannot lease a due account";
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error(context))?;
        // Leases are taken one at a time across the fleet, so that the check below (no other
        // source with the same key is leased) sees every lease taken before.
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&LEASE_LOCK])
            .await
            .map_err(pg_error(context))?;
        let row = transaction
            .query_opt(
                "UPDATE ledger.account_sources s
                 SET leased_by = $1, lease_expires_at = now() + make_interval(secs => $2)
                 FROM (
                     SELECT s2.account_id, s2.source_name, s2.leased_by AS previous
                     FROM ledger.account_sources s2
                     JOIN ledger.accounts a ON a.id = s2.account_id
                     WHERE NOT a.disabled
                       -- Due or hinted (LEAST passes over a NULL hinted_at), in the order of
                       -- the account_sources_queue index, which the walk stops early in.
                       AND LEAST(s2.next_run_at, s2.hinted_at) <= now()
                       AND (s2.lease_expires_at IS NULL OR s2.lease_expires_at <= now())
                       -- One key, one lease: not while a source with the same key is leased.
                       AND NOT EXISTS (
                           SELECT 1 FROM ledger.account_sources k
                           WHERE k.key_fingerprint = s2.key_fingerprint
                             AND (k.account_id, k.source_name) <> (s2.account_id, s2.source_name)
                             AND k.lease_expires_at > now()
                       )
                     ORDER BY LEAST(s2.next_run_at, s2.hinted_at)
                     LIMIT 1
                     FOR UPDATE OF s2 SKIP LOCKED
                 ) due, ledger.accounts a
                 WHERE s.account_id = due.account_id AND s.source_name = due.source_name
                   AND a.id = s.account_id
                 RETURNING s.account_id, a.name, s.source_name, s.options, s.sealed_key,
                           s.lease_expires_at, s.next_run_at <= now(), due.previous,
                           (SELECT kl.seen FROM ledger.key_limits kl
                            WHERE kl.key_fingerprint = s.key_fingerprint),
                           s.key_fingerprint, now(), s.next_run_at",
                &[&worker, &interval(ttl)],
            )
            .await
            .map_err(pg_error(context))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let account_id: i64 = row.get(0);
        let source_name: String = row.get(2);
        let expires: DateTime<Utc> = row.get(5);
        let run_seq: i64 = transaction
            .query_one(
                "INSERT INTO ledger.runs (account_id, source_name, worker, started_at, lease_expires_at)
                 VALUES ($1, $2, $3, now(), $4) RETURNING seq",
                &[&account_id, &source_name, &worker, &expires],
            )
            .await
            .map_err(pg_error(context))?
            .get(0);
        transaction.commit().await.map_err(pg_error(context))?;
        let options = read_options(&source_name, row.get(3)).map_err(|e| e.to_string());
        Ok(Some(Lease {
            account_id,
            account_name: row.get(1),
            options,
            source_name,
            worker: worker.to_owned(),
            run_seq,
            due: row.get(6),
            taken_over_from: row.get(7),
            key_rate_limit: row
                .get::<_, Option<serde_json::Value>>(8)
                .and_then(|seen| serde_json::from_value(seen).ok())
                .map(|seen| on_clock(seen, Utc::now() - row.get::<_, DateTime<Utc>>(10))),
            sealed_key: row.get(4),
            key_fingerprint: row.get(9),
            leased_next_run_at: row.get(11),
        }))
    }

    /// Notes what the provider last said of the leased source's key's rate limit, for the next
    /// run with that key ([`Lease::key_rate_limit`]).
    pub async fn note_rate_limit(
        &self,
        lease: &Lease,
        seen: &LimiterSnapshot,
    ) -> Result<(), StoreError> {
        let context = "cannot note the key's rate limit";
        let Some(fingerprint) = &lease.key_fingerprint else {
            return Ok(());
        };
        let client = self.client().await?;
        // Kept on the database's clock, so that workers whose clocks differ read it alike.
        let database_now: DateTime<Utc> = client
            .query_one("SELECT now()", &[])
            .await
            .map_err(pg_error(context))?
            .get(0);
        let seen = on_clock(seen.clone(), database_now - Utc::now());
        let at = seen.at;
        let seen =
            serde_json::to_value(seen).map_err(|error| StoreError::backend(context, error))?;
        // The newer word wins: a run that ends later but saw the key earlier (a frozen worker
        // whose lease was taken over) does not overwrite what the later run saw. A fingerprint
        // no source has any more (a rotation gave its key a new one while the run went on; the
        // key was replaced everywhere) is not noted: nothing would read it.
        client
            .execute(
                "INSERT INTO ledger.key_limits (key_fingerprint, seen, seen_at)
                 SELECT $1, $2, $3
                 WHERE EXISTS (SELECT 1 FROM ledger.account_sources WHERE key_fingerprint = $1)
                 ON CONFLICT (key_fingerprint) DO UPDATE
                 SET seen = EXCLUDED.seen, seen_at = EXCLUDED.seen_at, noted_at = now()
                 WHERE ledger.key_limits.seen_at <= EXCLUDED.seen_at",
                &[fingerprint, &seen, &at],
            )
            .await
            .map_err(pg_error(context))?;
        Ok(())
    }

    /// Extends the lease by `ttl` from now, while its worker still holds it; false when the
    /// lease was lost (expired, or taken over by another worker).
    pub async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        let context = "cannot renew the lease";
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error(context))?;
        let row = transaction
            .query_opt(
                "UPDATE ledger.account_sources
                 SET lease_expires_at = now() + make_interval(secs => $4)
                 WHERE account_id = $1 AND source_name = $2 AND leased_by = $3
                   AND lease_expires_at > now()
                 RETURNING lease_expires_at",
                &[
                    &lease.account_id,
                    &lease.source_name,
                    &lease.worker,
                    &interval(ttl),
                ],
            )
            .await
            .map_err(pg_error(context))?;
        let Some(row) = row else {
            return Ok(false);
        };
        let expires: DateTime<Utc> = row.get(0);
        transaction
            .execute(
                "UPDATE ledger.runs SET lease_expires_at = $2 WHERE seq = $1",
                &[&lease.run_seq, &expires],
            )
            .await
            .map_err(pg_error(context))?;
        transaction.commit().await.map_err(pg_error(context))?;
        Ok(true)
    }

    /// Ends the lease (when its worker still holds it) and sets when the source is due next.
    /// Its hints are settled as [`PgLedger::release_hinted`] settles them, with none seen.
    pub async fn release(&self, lease: &Lease, next_in: Duration) -> Result<(), StoreError> {
        self.release_hinted(lease, Some(next_in), &HintsSeen::default())
            .await
    }

    /// Ends the lease (when its worker still holds it). `next_in` is how long after now, by
    /// the database's clock (never a worker's), the source is due next after a scheduled run;
    /// `None` when the worker only read hints, which leaves the
    /// schedule as it was (a storm of webhooks never postpones the poll), and the run row the
    /// lease opened is removed (no run happened). `hinted_at` is cleared only when every
    /// pending delivery of the account-source was seen by the worker's read (`seen`); a
    /// delivery that came meanwhile keeps it hinted, and deliveries the read deferred make it
    /// hinted again `seen.again_in` after now.
    pub async fn release_hinted(
        &self,
        lease: &Lease,
        next_in: Option<Duration>,
        seen: &HintsSeen,
    ) -> Result<(), StoreError> {
        let next_secs: Option<f64> = next_in.map(|next| next.as_secs_f64());
        let context = "cannot release the lease";
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error(context))?;
        // The row first: a delivery being received holds it until it commits, and the next
        // statement's snapshot then sees that delivery.
        let held = transaction
            .query_opt(
                "SELECT 1 FROM ledger.account_sources
                 WHERE account_id = $1 AND source_name = $2 AND leased_by = $3
                 FOR UPDATE",
                &[&lease.account_id, &lease.source_name, &lease.worker],
            )
            .await
            .map_err(pg_error(context))?;
        if held.is_none() {
            return transaction.commit().await.map_err(pg_error(context));
        }
        let unseen: i64 = transaction
            .query_one(
                "SELECT count(*) FROM ledger.inbox
                 WHERE account_id = $1 AND source_name = $2 AND processed_at IS NULL
                   AND id <> ALL($3)",
                &[&lease.account_id, &lease.source_name, &seen.pending],
            )
            .await
            .map_err(pg_error(context))?
            .get(0);
        transaction
            .execute(
                // A source whose due time a change moved while it ran (a new key, base URL or
                // a shorter schedule, PgLedger::update_source) keeps that time when it is
                // sooner: its next run, which reads the change, is not put off.
                "UPDATE ledger.account_sources
                 SET leased_by = NULL, lease_expires_at = NULL,
                     next_run_at = CASE
                         WHEN next_run_at IS DISTINCT FROM $6
                         THEN LEAST(now() + make_interval(secs => $3), next_run_at)
                         ELSE COALESCE(now() + make_interval(secs => $3), next_run_at) END,
                     hinted_at = CASE WHEN $4 THEN hinted_at
                                      ELSE now() + make_interval(secs => $5) END
                 WHERE account_id = $1 AND source_name = $2",
                &[
                    &lease.account_id,
                    &lease.source_name,
                    &next_secs,
                    &(unseen > 0),
                    &seen.again_in.map(|again| again.as_secs_f64()),
                    &lease.leased_next_run_at,
                ],
            )
            .await
            .map_err(pg_error(context))?;
        if next_in.is_none() {
            transaction
                .execute(
                    "DELETE FROM ledger.runs WHERE seq = $1 AND finished_at IS NULL",
                    &[&lease.run_seq],
                )
                .await
                .map_err(pg_error(context))?;
        } else {
            // The run's lease ended now: the run row says so, for whoever checks overlaps.
            transaction
                .execute(
                    "UPDATE ledger.runs SET lease_expires_at = LEAST(lease_expires_at, now()) WHERE seq = $1",
                    &[&lease.run_seq],
                )
                .await
                .map_err(pg_error(context))?;
        }
        // Runs are kept for a while, not forever: a source run every five minutes would
        // add over 100,000 rows a year per account-source.
        transaction
            .execute(
                "DELETE FROM ledger.runs WHERE account_id = $1 AND source_name = $2
                   AND finished_at < now() - make_interval(days => $3)",
                &[&lease.account_id, &lease.source_name, &RUNS_KEPT_DAYS],
            )
            .await
            .map_err(pg_error(context))?;
        transaction.commit().await.map_err(pg_error(context))
    }

    /// How long until the next enabled account-source that no live lease holds is due, by the
    /// database's clock (zero when one is due now; `None`: there is none), so that an idle
    /// worker knows how long it may sleep. One whose key another source's lease holds is due
    /// when that lease expires, at the latest.
    pub async fn next_due(&self) -> Result<Option<Duration>, StoreError> {
        let client = self.client().await?;
        let seconds: Option<f64> = client
            .query_one(
                // A source whose key another source's live lease holds is due no sooner than
                // that lease ends (one key, one lease), or idle workers would ask again and
                // again for what they cannot lease.
                // The earliest of the sources no lease holds the key of (walked in the queue's
                // index order: the first found is it) and of those whose key a lease holds
                // (due when that lease ends, at the latest; a few rows).
                "WITH held AS (
                     SELECT key_fingerprint, max(lease_expires_at) AS until
                     FROM ledger.account_sources
                     WHERE lease_expires_at > now() AND key_fingerprint IS NOT NULL
                     GROUP BY key_fingerprint
                 ),
                 free AS (
                     SELECT LEAST(s.next_run_at, s.hinted_at) AS at
                     FROM ledger.account_sources s
                     JOIN ledger.accounts a ON a.id = s.account_id
                     WHERE NOT a.disabled
                       AND (s.lease_expires_at IS NULL OR s.lease_expires_at <= now())
                       AND NOT EXISTS (SELECT 1 FROM held WHERE held.key_fingerprint = s.key_fingerprint)
                     ORDER BY LEAST(s.next_run_at, s.hinted_at)
                     LIMIT 1
                 ),
                 blocked AS (
                     SELECT min(GREATEST(LEAST(s.next_run_at, s.hinted_at), held.until)) AS at
                     FROM held
                     JOIN ledger.account_sources s ON s.key_fingerprint = held.key_fingerprint
                     JOIN ledger.accounts a ON a.id = s.account_id
                     WHERE NOT a.disabled
                       AND (s.lease_expires_at IS NULL OR s.lease_expires_at <= now())
                 )
                 SELECT extract(epoch FROM LEAST((SELECT at FROM free), (SELECT at FROM blocked)) - now())::float8",
                &[],
            )
            .await
            .map_err(pg_error("cannot read when work is due"))?
            .get(0);
        // NULL when nothing is due ever (no source, all leased or disabled); past due is now.
        Ok(seconds
            .map(|seconds| Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX)))
    }
}
