//! The fleet's schedule as monitoring reads it: per account-source, when it is due, who holds it,
//! and how its last run ended.

use chrono::{DateTime, Utc};
use payments_sync::StoreError;

use crate::{PgLedger, pg_error};

/// One source of one account in the fleet's schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled {
    /// The account's name.
    pub account: String,
    /// Whether the account is disabled (no worker syncs it).
    pub disabled: bool,
    /// The source (`mkp`, `paypro`).
    pub source_name: String,
    /// When it is due next.
    pub next_run_at: DateTime<Utc>,
    /// The worker that holds it and until when, while one does.
    pub leased: Option<(String, DateTime<Utc>)>,
    /// When its last run that ended, ended, and its error if it failed or stopped.
    pub last_run: Option<(DateTime<Utc>, Option<String>)>,
    /// Whether that run was stopped before it finished (a signal, its time budget, a lost
    /// lease): unfinished, not failed; the next run resumes it.
    pub last_run_stopped: bool,
    /// When its last run that completed (without error) ended, within the runs kept.
    pub last_success: Option<DateTime<Utc>>,
}

/// The fleet's schedule, read in one query, with the database's clock at that moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The database's `now()`, which every schedule and lease time is set by.
    pub now: DateTime<Utc>,
    /// Every account-source asked for, sorted by account and source.
    pub sources: Vec<Scheduled>,
}

impl Scheduled {
    /// Whether its last run failed (an enabled source; an unfinished run is not a failure).
    pub fn failed(&self) -> bool {
        !self.disabled && !self.last_run_stopped && self.last_run_error().is_some()
    }

    fn last_run_error(&self) -> Option<&str> {
        self.last_run
            .as_ref()
            .and_then(|(_, error)| error.as_deref())
    }

    /// How long it has been due at `now` without a worker taking it: zero when it is not
    /// due, leased or disabled.
    pub fn overdue(&self, now: DateTime<Utc>) -> std::time::Duration {
        if self.disabled || self.leased.is_some() {
            return std::time::Duration::ZERO;
        }
        (now - self.next_run_at).to_std().unwrap_or_default()
    }

    /// Whether it is stale for `max_age` at `now`: enabled, not leased, and overdue by more
    /// than `max_age` (no worker took it), or its last run ended longer ago than that (its
    /// runs keep dying before they end).
    pub fn stale(&self, max_age: std::time::Duration, now: DateTime<Utc>) -> bool {
        let older = |at: DateTime<Utc>| (now - at).to_std().unwrap_or_default() > max_age;
        !self.disabled
            && self.leased.is_none()
            && (older(self.next_run_at) || self.last_run.as_ref().is_some_and(|(at, _)| older(*at)))
    }
}

impl PgLedger {
    /// The schedule of every account-source, or of one account's, sorted by account and source.
    pub async fn schedule(&self, account: Option<&str>) -> Result<Schedule, StoreError> {
        let context = "cannot read the fleet's schedule";
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT a.name, a.disabled, s.source_name, s.next_run_at, s.leased_by,
                        s.lease_expires_at, last.finished_at, last.error,
                        coalesce(last.stopped, false), ok.finished_at,
                        s.lease_expires_at > now()
                 FROM ledger.account_sources s
                 JOIN ledger.accounts a ON a.id = s.account_id
                 LEFT JOIN LATERAL (
                     SELECT finished_at, error, stopped FROM ledger.runs r
                     WHERE r.account_id = s.account_id AND r.source_name = s.source_name
                       AND r.finished_at IS NOT NULL
                     ORDER BY r.seq DESC LIMIT 1
                 ) last ON true
                 LEFT JOIN LATERAL (
                     SELECT finished_at FROM ledger.runs r
                     WHERE r.account_id = s.account_id AND r.source_name = s.source_name
                       AND r.finished_at IS NOT NULL AND r.error IS NULL
                       AND NOT coalesce(r.stopped, false)
                     ORDER BY r.seq DESC LIMIT 1
                 ) ok ON true
                 WHERE $1::text IS NULL OR a.name = $1
                 ORDER BY a.name, s.source_name",
                &[&account],
            )
            .await
            .map_err(pg_error(context))?;
        let now: DateTime<Utc> = client
            .query_one("SELECT now()", &[])
            .await
            .map_err(pg_error(context))?
            .get(0);
        let sources = rows
            .into_iter()
            .map(|row| {
                let leased_by: Option<String> = row.get(4);
                let lease_expires_at: Option<DateTime<Utc>> = row.get(5);
                let finished_at: Option<DateTime<Utc>> = row.get(6);
                let held: Option<bool> = row.get(10);
                Scheduled {
                    account: row.get(0),
                    disabled: row.get(1),
                    source_name: row.get(2),
                    next_run_at: row.get(3),
                    leased: leased_by
                        .zip(lease_expires_at)
                        .filter(|_| held == Some(true)),
                    last_run: finished_at.map(|at| (at, row.get(7))),
                    last_run_stopped: row.get(8),
                    last_success: row.get(9),
                }
            })
            .collect();
        Ok(Schedule { now, sources })
    }
}
