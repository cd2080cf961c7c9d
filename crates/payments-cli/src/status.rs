//! `payments status`: what the ledger holds and how the last runs went.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use payments_model::Source;
use payments_sqlite::SqliteStore;

use crate::DbArgs;
use crate::duration::parse_duration;
use crate::outcome::{CliError, Exit, print_report, printable};
use crate::sync::summary_line;

/// Shows, per source, the payments by status, the last run and its outcome, the checkpoint
/// (whether a run is unfinished, when the last complete run and deep sweep ended) and the
/// quarantined records with their reasons.
///
/// For monitoring, it exits 1 when a source's last run failed (or, with --max-age, when a source
/// that has synced has no complete run that recent), 3 when records are quarantined, and 0
/// otherwise. A source that never synced is not an error.
///
/// Example: payments status --db ledger.db --max-age 1h
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    db: DbArgs,
    /// How many quarantined records to list per source.
    #[arg(long, default_value_t = 10, value_name = "N")]
    quarantine_limit: usize,
    /// Exit 1 when a source that has synced completed no run within this long (90s, 30m, 2h, 1d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    max_age: Option<Duration>,
}

pub(crate) fn run(args: StatusArgs) -> Result<Exit, CliError> {
    let store = args.db.open_existing()?;
    let mut report = format!("database: {}\n", store.path().display());
    let mut exit = Exit::Done;
    for source in Source::ALL {
        let (text, health) = describe(&store, source, args.quarantine_limit, args.max_age)?;
        report.push('\n');
        report.push_str(&text);
        exit = match (exit, health) {
            (Exit::Failed, _) | (_, Exit::Failed) => Exit::Failed,
            (Exit::Quarantined, _) | (_, Exit::Quarantined) => Exit::Quarantined,
            _ => Exit::Done,
        };
    }
    print_report(&report, "the status")?;
    Ok(exit)
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One source's part of the report, and what it means for monitoring: `Failed` when its last
/// run failed or its last complete run is older than `max_age`, `Quarantined` when records are
/// set aside, `Done` otherwise.
fn describe(
    store: &SqliteStore,
    source: Source,
    quarantine_limit: usize,
    max_age: Option<Duration>,
) -> Result<(String, Exit), CliError> {
    let name = source.as_str();
    let mut health = Exit::Done;
    let mut text = format!("{name}\n");
    let counts = store.counts_by_status(source)?;
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let by_status: Vec<String> = counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
    text.push_str(&format!("  payments: {total}"));
    if !by_status.is_empty() {
        text.push_str(&format!(" ({})", by_status.join(", ")));
    }
    text.push('\n');
    match store.last_run(name)? {
        None => text.push_str("  last run: never\n"),
        Some(run) => {
            text.push_str(&format!(
                "  last run: {} to {}, {}\n",
                time(run.started_at),
                time(run.finished_at),
                run.outcome()
            ));
            text.push_str(&format!("    {}\n", printable(&summary_line(&run.summary))));
            if let Some(error) = &run.error {
                text.push_str(&format!("    error: {}\n", printable(error)));
                health = Exit::Failed;
            }
        }
    }
    let checkpoint = match store.checkpoint(name) {
        Ok(checkpoint) => checkpoint,
        Err(payments_sync::StoreError::Corrupt { detail, .. }) => {
            text.push_str(&format!(
                "  checkpoint: does not read back ({}); the next sync resets it and reads everything\n",
                printable(&detail)
            ));
            None
        }
        Err(error) => return Err(error.into()),
    };
    if let Some(max_age) = max_age
        && let Some(checkpoint) = &checkpoint
    {
        let recent = checkpoint
            .last_completed_at
            .is_some_and(|at| (Utc::now() - at).to_std().unwrap_or_default() <= max_age);
        if !recent {
            text.push_str(&format!(
                "  no complete run within {} s (--max-age)\n",
                max_age.as_secs()
            ));
            health = Exit::Failed;
        }
    }
    if let Some(checkpoint) = checkpoint {
        let state = if checkpoint.in_progress() {
            format!(
                "a {} run is unfinished; the next sync resumes it",
                checkpoint.run.as_str()
            )
        } else {
            "idle".to_owned()
        };
        let at = |t: Option<DateTime<Utc>>| t.map_or_else(|| "never".to_owned(), time);
        text.push_str(&format!(
            "  checkpoint: {state}; last complete run {}; last deep sweep {}\n",
            at(checkpoint.last_completed_at),
            at(checkpoint.last_deep_at)
        ));
    }
    let words = store.unknown_words(name)?;
    if !words.is_empty() {
        let listed: Vec<String> = words
            .iter()
            .map(|(word, at)| format!("{} (since {})", printable(word), time(*at)))
            .collect();
        text.push_str(&format!(
            "  status words the status table does not know: {}; their payments have status `unknown`, the word is in provider_status\n",
            listed.join(", ")
        ));
    }
    let quarantined = store.quarantine(name)?;
    text.push_str(&format!("  quarantined records: {}\n", quarantined.len()));
    if !quarantined.is_empty() && health == Exit::Done {
        health = Exit::Quarantined;
    }
    for (source_id, reason, _) in quarantined.iter().take(quarantine_limit) {
        text.push_str(&format!(
            "    {}: {}\n",
            printable(source_id.as_deref().unwrap_or("(no id)")),
            printable(reason)
        ));
    }
    if quarantined.len() > quarantine_limit {
        text.push_str(&format!(
            "    … and {} more (--quarantine-limit shows more)\n",
            quarantined.len() - quarantine_limit
        ));
    }
    Ok((text, health))
}
