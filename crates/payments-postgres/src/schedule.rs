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
}

impl PgLedger {
    /// The schedule of every account-source, or of one account's, sorted by account and source.
    pub async fn schedule(&self, account: Option<&str>) -> Result<Vec<Scheduled>, StoreError> {
        let context = "cannot read the fleet's schedule";
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT a.name, a.disabled, s.source_name, s.next_run_at, s.leased_by,
                        s.lease_expires_at, last.finished_at, last.error,
                        coalesce(last.stopped, false)
                 FROM ledger.account_sources s
                 JOIN ledger.accounts a ON a.id = s.account_id
                 LEFT JOIN LATERAL (
                     SELECT finished_at, error, stopped FROM ledger.runs r
                     WHERE r.account_id = s.account_id AND r.source_name = s.source_name
                       AND r.finished_at IS NOT NULL
                     ORDER BY r.seq DESC LIMIT 1
                 ) last ON true
                 WHERE $1::text IS NULL OR a.name = $1
                 ORDER BY a.name, s.source_name",
                &[&account],
            )
            .await
            .map_err(pg_error(context))?;
        let now = Utc::now();
        Ok(rows
            .into_iter()
            .map(|row| {
                let leased_by: Option<String> = row.get(4);
                let lease_expires_at: Option<DateTime<Utc>> = row.get(5);
                let finished_at: Option<DateTime<Utc>> = row.get(6);
                Scheduled {
                    account: row.get(0),
                    disabled: row.get(1),
                    source_name: row.get(2),
                    next_run_at: row.get(3),
                    leased: leased_by
                        .zip(lease_expires_at)
                        .filter(|(_, until)| *until > now),
                    last_run: finished_at.map(|at| (at, row.get(7))),
                    last_run_stopped: row.get(8),
                }
            })
            .collect())
    }
}
