//! `payments status`: what the ledger holds and how the last runs went.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use payments_model::Source;
use payments_postgres::{PgLedger, Schedule, Scheduled};
use payments_sync::{Checkpoint, Ledger, RunRecord};
use serde_json::{Value, json};

use crate::LedgerArgs;
use crate::duration::parse_duration;
use crate::outcome::{CliError, Exit, print_report, printable};
use crate::sync::summary_line;

/// Shows what the ledger holds and how the last runs went.
///
/// Per source: the payments by status, the last run and its outcome, the checkpoint (whether a
/// run is unfinished, when the last complete run ended, since when every payment was verified)
/// and the quarantined
/// records with their reasons.
///
/// For monitoring, it exits 1 when a source's last run failed, when its last 3 runs were all
/// stopped (by --max-duration or a signal) before they made progress, or, with --max-age, when
/// a source that has synced has no complete run that recent; 3 when records are quarantined;
/// and 0 otherwise. A run stopped by its time budget or a signal is `unfinished`, not failed:
/// the next run resumes it. A source that never synced is not an error.
///
/// --json prints the same facts as one JSON object whose shape is stable (fields may be added,
/// never renamed or removed); README.md documents it.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// How many quarantined records to list per source.
    #[arg(long, default_value_t = 10, value_name = "N")]
    quarantine_limit: usize,
    /// Exit 1 when a source that has synced completed no run within this long (90s, 30m, 2h, 1d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    max_age: Option<Duration>,
    /// Print one JSON object (a stable shape, documented in README.md) instead of text.
    #[arg(long)]
    json: bool,
    /// The time zone of the times in the text (the JSON's are UTC).
    #[arg(long, value_name = "ZONE", default_value = "Europe/Amsterdam", value_parser = crate::export::parse_zone)]
    tz: Tz,
}

/// Printed after the options as written, line for line; each line fits in 80 columns.
const EXAMPLES: &str = r#"Examples:
  payments status --db ledger.db
  payments status --db ledger.db --max-age 1h --quarantine-limit 50
  payments status --db ledger.db --json

In a crontab, every 15 minutes, with notify-ops standing for your alert:
  PAYMENTS_DB=/var/lib/payments/ledger.db
  */15 * * * *  payments status --max-age 1h >/dev/null || notify-ops"#;

pub(crate) async fn run(args: StatusArgs) -> Result<Exit, CliError> {
    // A PostgreSQL ledger: the fleet's schedule, of one account or of all of them.
    let schedule = match args.ledger.postgres() {
        Some(url) => {
            let ledger = PgLedger::open_existing(url).await.map_err(|e| {
                CliError::config(format!("{e}; check --postgres (or PAYMENTS_POSTGRES)"))
            })?;
            let schedule = ledger.schedule(args.ledger.account.as_deref()).await?;
            if args.ledger.account.is_none() {
                return fleet(ledger.name(), &schedule, args.json, args.tz, args.max_age);
            }
            schedule.sources
        }
        None => Vec::new(),
    };
    let store = args.ledger.open_existing().await?;
    let (reports, exit) = gather(&*store, args.max_age, &schedule).await?;
    let report = if args.json {
        format!(
            "{}\n",
            json_report(&*store, &reports, exit, args.quarantine_limit)
        )
    } else {
        let mut text = format!("database: {}\n", printable(&store.describe()));
        for source in &reports {
            text.push('\n');
            text.push_str(&source.human(args.quarantine_limit, args.tz));
        }
        text
    };
    print_report(&report, "the status")?;
    Ok(exit)
}

/// Each source's report, and what they mean together for monitoring (the exit code).
async fn gather(
    store: &dyn Ledger,
    max_age: Option<Duration>,
    schedule: &[Scheduled],
) -> Result<(Vec<SourceReport>, Exit), CliError> {
    let mut reports = Vec::new();
    for source in Source::ALL {
        let mut report = SourceReport::gather(store, source, max_age).await?;
        report.scheduled = schedule
            .iter()
            .find(|s| s.source_name == source.as_str())
            .cloned();
        reports.push(report);
    }
    let exit = reports
        .iter()
        .map(SourceReport::health)
        .fold(Exit::Done, |worst, health| match (worst, health) {
            (Exit::Failed, _) | (_, Exit::Failed) => Exit::Failed,
            (Exit::Quarantined, _) | (_, Exit::Quarantined) => Exit::Quarantined,
            _ => Exit::Done,
        });
    Ok((reports, exit))
}

/// The object `status --json` prints.
fn json_report(
    store: &dyn Ledger,
    reports: &[SourceReport],
    exit: Exit,
    quarantine_limit: usize,
) -> Value {
    let sources: Vec<Value> = reports.iter().map(|r| r.json(quarantine_limit)).collect();
    json!({
        "database": store.describe(),
        "exit_code": exit as u8,
        "sources": sources,
    })
}

/// What `payments serve` answers at `/healthz`: the facts of `status --json` (ten quarantined
/// records a source), and whether no source is failing, with `max_age` as `status --max-age`.
pub(crate) async fn health(
    store: &dyn Ledger,
    max_age: Duration,
) -> Result<(bool, Value), CliError> {
    let (reports, exit) = gather(store, Some(max_age), &[]).await?;
    Ok((exit != Exit::Failed, json_report(store, &reports, exit, 10)))
}

/// `payments status --postgres URL` without --account: a line per account-source, and exit 1
/// when the last run of an enabled one failed, or one is stale for `--max-age` (by the
/// database's clock).
fn fleet(
    database: &str,
    schedule: &Schedule,
    json: bool,
    tz: Tz,
    max_age: Option<Duration>,
) -> Result<Exit, CliError> {
    let now = schedule.now;
    let is_stale = |s: &Scheduled| max_age.is_some_and(|max_age| s.stale(max_age, now));
    let schedule = &schedule.sources;
    let failed = schedule.iter().filter(|s| s.failed()).count();
    let exit = if failed > 0 || schedule.iter().any(is_stale) {
        Exit::Failed
    } else {
        Exit::Done
    };
    let report = if json {
        let report = json!({
            "database": database,
            "exit_code": exit as u8,
            "accounts": schedule.iter().map(|s| {
                let mut entry = schedule_json(s);
                entry["account"] = json!(s.account);
                entry["source"] = json!(s.source_name);
                entry["stale"] = json!(is_stale(s));
                entry
            }).collect::<Vec<_>>(),
        });
        format!("{report}\n")
    } else {
        let mut text = format!("database: {}\n", printable(database));
        let accounts: std::collections::BTreeSet<&str> =
            schedule.iter().map(|s| s.account.as_str()).collect();
        text.push_str(&format!(
            "{} accounts, {} account-sources, {failed} of which failed their last run\n\n",
            accounts.len(),
            schedule.len()
        ));
        for s in schedule {
            text.push_str(&format!(
                "{} {}: {}{}\n",
                printable(&s.account),
                s.source_name,
                schedule_line(s, tz),
                if is_stale(s) {
                    format!(
                        "; stale: nothing ended within {} s (--max-age): is a worker running?",
                        max_age.unwrap_or_default().as_secs()
                    )
                } else {
                    String::new()
                }
            ));
        }
        text
    };
    print_report(&report, "the status")?;
    Ok(exit)
}

/// `running on host:123 (lease until …)`, `disabled`, or `next run due …`, with the last run.
fn schedule_line(s: &Scheduled, tz: Tz) -> String {
    let time = |at: DateTime<Utc>| shown(at, tz);
    let now = match &s.leased {
        _ if s.disabled => "disabled".to_owned(),
        Some((worker, until)) => format!(
            "running on {} (lease until {})",
            printable(worker),
            time(*until)
        ),
        None => format!("next run due {}", time(s.next_run_at)),
    };
    let last = match &s.last_run {
        None => "no run ended yet".to_owned(),
        Some((at, None)) => format!("last run ok at {}", time(*at)),
        Some((at, Some(why))) if s.last_run_stopped => format!(
            "last run unfinished at {} (the next run resumes it): {}",
            time(*at),
            printable(why)
        ),
        Some((at, Some(error))) => {
            format!("last run failed at {}: {}", time(*at), printable(error))
        }
    };
    format!("{now}; {last}")
}

/// The schedule's part of the JSON report.
fn schedule_json(s: &Scheduled) -> Value {
    json!({
        "disabled": s.disabled,
        "next_run_at": time(s.next_run_at),
        "leased_by": s.leased.as_ref().map(|(worker, _)| worker),
        "lease_expires_at": s.leased.as_ref().map(|(_, until)| time(*until)),
        "last_finished_at": s.last_run.as_ref().map(|(at, _)| time(*at)),
        "last_error": s.last_run.as_ref().and_then(|(_, error)| error.clone()),
        "last_run_unfinished": s.last_run_stopped,
    })
}

/// An instant for programs (JSON): RFC 3339 in UTC.
fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An instant for a person: RFC 3339 on the clocks of `tz`, with its offset (the one rule for
/// times a person reads, as `show`, `quarantine` and `export`'s notes).
fn shown(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How many unknown status words the text report lists per source.
const WORDS_LISTED: usize = 10;

/// What the ledger knows of one source.
struct SourceReport {
    source: Source,
    /// Payments per unified status.
    counts: Vec<(String, u64)>,
    last_run: Option<RunRecord>,
    /// Whether its last runs were all stopped before they made progress.
    stalled: bool,
    checkpoint: Option<Checkpoint>,
    /// Why the stored checkpoint does not read back, when it does not.
    unreadable_checkpoint: Option<String>,
    /// With --max-age: whether a source that has synced has no complete run that recent.
    stale: Option<Duration>,
    unknown_words: Vec<(String, DateTime<Utc>)>,
    /// `(source_id, reason)` of each quarantined record.
    quarantined: Vec<(Option<String>, String)>,
    /// In a PostgreSQL ledger: when the source is due and which worker holds it.
    scheduled: Option<Scheduled>,
}

impl SourceReport {
    async fn gather(
        store: &dyn Ledger,
        source: Source,
        max_age: Option<Duration>,
    ) -> Result<SourceReport, CliError> {
        let name = source.as_str();
        let (checkpoint, unreadable_checkpoint) =
            payments_sync::codec::tolerate_unreadable_checkpoint(store.checkpoint(name).await)?;
        // A source that has synced but completed no run within --max-age.
        let stale = max_age.filter(|max_age| {
            checkpoint.as_ref().is_some_and(|checkpoint| {
                checkpoint
                    .last_completed_at
                    .is_none_or(|at| (Utc::now() - at).to_std().unwrap_or_default() > *max_age)
            })
        });
        let recent = store.recent_runs(name, payments_sync::STALLED_RUNS).await?;
        Ok(SourceReport {
            source,
            counts: store.counts_by_status(source).await?,
            last_run: recent.first().cloned(),
            stalled: payments_sync::stalled(&recent),
            checkpoint,
            unreadable_checkpoint,
            stale,
            unknown_words: store
                .unknown_words(name)
                .await?
                .into_iter()
                // Those this build's status table still does not know (a later release may).
                .filter(|(word, _)| !payments_model::knows_status_word(source, word))
                .collect(),
            quarantined: store
                .quarantine(name)
                .await?
                .into_iter()
                .map(|record| (record.source_id, record.reason))
                .collect(),
            scheduled: None,
        })
    }

    /// What it means for monitoring: `Failed` when the last run failed, the last runs were all
    /// stopped before they made progress, or the last complete run is older than --max-age;
    /// `Quarantined` when records are set aside; `Done` otherwise (a last run stopped by its
    /// time budget or a signal is unfinished: the next one resumes it).
    fn health(&self) -> Exit {
        let failed = self
            .last_run
            .as_ref()
            .is_some_and(|run| run.outcome() == "failed");
        if failed || self.stalled || self.stale.is_some() || !self.persistent_failures().is_empty()
        {
            Exit::Failed
        } else if !self.quarantined.is_empty() || !self.set_aside().is_empty() {
            Exit::Quarantined
        } else {
            Exit::Done
        }
    }

    /// What the source put off or could not do (the change feed, payments still to read).
    fn set_aside(&self) -> Vec<String> {
        self.checkpoint
            .as_ref()
            .map(Checkpoint::set_aside)
            .unwrap_or_default()
    }

    /// Those of its failures that have lasted long enough to make it unhealthy.
    fn persistent_failures(&self) -> Vec<String> {
        self.checkpoint
            .as_ref()
            .map(|checkpoint| checkpoint.persistent_failures(Utc::now()))
            .unwrap_or_default()
    }

    fn human(&self, quarantine_limit: usize, tz: Tz) -> String {
        let time = |at: DateTime<Utc>| shown(at, tz);
        let mut text = format!("{}\n", self.source.as_str());
        let total: u64 = self.counts.iter().map(|(_, n)| n).sum();
        text.push_str(&format!("  payments: {total}"));
        if !self.counts.is_empty() {
            let by_status: Vec<String> = self
                .counts
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect();
            text.push_str(&format!(" ({})", by_status.join(", ")));
        }
        text.push('\n');
        match &self.last_run {
            None => text.push_str("  last run: never\n"),
            Some(run) => {
                text.push_str(&format!(
                    "  last run: {} to {}, {}\n",
                    time(run.started_at),
                    time(run.finished_at),
                    run.outcome()
                ));
                text.push_str(&format!("    {}\n", printable(&summary_line(&run.summary))));
                match &run.error {
                    Some(why) if run.stopped => {
                        // A stop by the time budget says how to let a run finish; a signal's
                        // does not.
                        let more = if why.contains("the next run resumes") {
                            ""
                        } else {
                            " (the next run resumes it)"
                        };
                        text.push_str(&format!("    stopped: {}{more}\n", printable(why)));
                    }
                    Some(error) => text.push_str(&format!("    error: {}\n", printable(error))),
                    None => {}
                }
                if self.stalled {
                    text.push_str(&format!(
                        "  unhealthy: the last {} runs were stopped before they made progress; give a run more time (--max-duration) or look at why it stops\n",
                        payments_sync::STALLED_RUNS
                    ));
                }
            }
        }
        if let Some(scheduled) = &self.scheduled {
            text.push_str(&format!("  {}\n", schedule_line(scheduled, tz)));
        }
        if let Some(detail) = &self.unreadable_checkpoint {
            text.push_str(&format!(
                "  checkpoint: does not read back ({}); the next sync resets it and reads everything\n",
                printable(detail)
            ));
        }
        if let Some(max_age) = self.stale {
            text.push_str(&format!(
                "  no complete run within {} s (--max-age)\n",
                max_age.as_secs()
            ));
        }
        if let Some(checkpoint) = &self.checkpoint {
            let state = if checkpoint.in_progress() {
                format!(
                    "a {} run is unfinished; the next sync resumes it",
                    checkpoint.run.as_str()
                )
            } else {
                "idle".to_owned()
            };
            let at = |t: Option<DateTime<Utc>>| t.map_or_else(|| "never".to_owned(), &time);
            text.push_str(&format!(
                "  checkpoint: {state}; last complete run {}\n",
                at(checkpoint.last_completed_at),
            ));
            text.push_str(&match checkpoint.verified_through {
                Some(through) => format!(
                    "  oldest verification: {} (every payment was read again at or after it)\n",
                    time(through)
                ),
                None => "  oldest verification: none yet (a later run reads every payment again)\n"
                    .to_owned(),
            });
        }
        if !self.unknown_words.is_empty() {
            let mut listed: Vec<String> = self
                .unknown_words
                .iter()
                .take(WORDS_LISTED)
                .map(|(word, at)| format!("{} (since {})", printable(word), time(*at)))
                .collect();
            if self.unknown_words.len() > WORDS_LISTED {
                listed.push(format!(
                    "… and {} more (--json lists them all)",
                    self.unknown_words.len() - WORDS_LISTED
                ));
            }
            text.push_str(&format!(
                "  status words the status table does not know: {}; their payments have status `unknown`, the word is in provider_status\n",
                listed.join(", ")
            ));
        }
        for failure in self.persistent_failures() {
            text.push_str(&format!("  unhealthy: {}\n", printable(&failure)));
        }
        let set_aside = self.set_aside();
        if !set_aside.is_empty() {
            text.push_str(&format!(
                "  put off: {} (later runs do them; they heal by themselves, and make this source unhealthy if they last {} runs or an hour)\n",
                set_aside.len(),
                payments_sync::PERSISTENT_RUNS
            ));
            for line in set_aside.iter().take(quarantine_limit) {
                text.push_str(&format!("    {}\n", printable(line)));
            }
            if set_aside.len() > quarantine_limit {
                text.push_str(&format!(
                    "    … and {} more (--quarantine-limit shows more)\n",
                    set_aside.len() - quarantine_limit
                ));
            }
        }
        text.push_str(&format!(
            "  quarantined records: {}\n",
            self.quarantined.len()
        ));
        for (source_id, reason) in self.quarantined.iter().take(quarantine_limit) {
            text.push_str(&format!(
                "    {}: {}\n",
                printable(source_id.as_deref().unwrap_or("(no id)")),
                printable(reason)
            ));
        }
        if self.quarantined.len() > quarantine_limit {
            text.push_str(&format!(
                "    … and {} more (--quarantine-limit shows more)\n",
                self.quarantined.len() - quarantine_limit
            ));
        }
        text
    }

    /// The stable JSON shape README.md documents.
    fn json(&self, quarantine_limit: usize) -> Value {
        let at = |t: Option<DateTime<Utc>>| t.map(time);
        let by_status: serde_json::Map<String, Value> = self
            .counts
            .iter()
            .map(|(status, n)| (status.clone(), json!(n)))
            .collect();
        let last_run = self.last_run.as_ref().map(|run| {
            let summary = &run.summary;
            json!({
                "started_at": time(run.started_at),
                "finished_at": time(run.finished_at),
                "outcome": run.outcome(),
                "kind": summary.run.map(|kind| kind.as_str()),
                "resumed": summary.resumed,
                "pages": summary.pages,
                "requests": summary.requests,
                "new": summary.counts.new,
                "changed": summary.counts.changed,
                "unchanged": summary.counts.unchanged,
                "backwards": summary.counts.backwards,
                "quarantined": summary.quarantined,
                "waited_ms": summary.waited.as_millis() as u64,
                "error": run.error,
                "outcome": run.outcome(),
            })
        });
        let checkpoint = self.checkpoint.as_ref().map(|checkpoint| {
            json!({
                "unfinished_run": checkpoint.in_progress().then(|| checkpoint.run.as_str()),
                "last_completed_at": at(checkpoint.last_completed_at),
                "verified_through": at(checkpoint.verified_through),
            })
        });
        json!({
            "source": self.source.as_str(),
            "health": match self.health() {
                Exit::Failed => "failed",
                Exit::Quarantined => "quarantined",
                _ => "ok",
            },
            "payments": {
                "total": self.counts.iter().map(|(_, n)| n).sum::<u64>(),
                "by_status": by_status,
            },
            "last_run": last_run,
            "schedule": self.scheduled.as_ref().map(schedule_json),
            "checkpoint": checkpoint,
            "checkpoint_unreadable": self.unreadable_checkpoint,
            "unhealthy": self.persistent_failures(),
            "put_off": self.set_aside(),
            "stale": self.stale.is_some(),
            "stalled": self.stalled,
            "unknown_status_words": self.unknown_words.iter().map(|(word, first_seen)| json!({
                "word": word,
                "first_seen_at": time(*first_seen),
            })).collect::<Vec<_>>(),
            "quarantined": {
                "total": self.quarantined.len(),
                "records": self.quarantined.iter().take(quarantine_limit).map(|(id, reason)| json!({
                    "source_id": id,
                    "reason": reason,
                })).collect::<Vec<_>>(),
            },
        })
    }
}
