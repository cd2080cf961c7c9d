//! `payments status`: what the ledger holds and how the last runs went.

use chrono::{DateTime, SecondsFormat, Utc};
use payments_model::Source;
use payments_sqlite::SqliteStore;

use crate::DbArgs;
use crate::outcome::{CliError, Exit};
use crate::sync::summary_line;

/// Shows, per source, the payments by status, the last run and its outcome, the checkpoint
/// (whether a run is unfinished, when the last complete run and deep sweep ended) and the
/// quarantined records with their reasons.
///
/// Example: payments status --db ledger.db
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    db: DbArgs,
    /// How many quarantined records to list per source.
    #[arg(long, default_value_t = 10, value_name = "N")]
    quarantine_limit: usize,
}

pub(crate) fn run(args: StatusArgs) -> Result<Exit, CliError> {
    let store = args.db.open_existing()?;
    println!("database: {}", store.path().display());
    for source in Source::ALL {
        println!();
        print!("{}", describe(&store, source, args.quarantine_limit)?);
    }
    Ok(Exit::Done)
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn describe(
    store: &SqliteStore,
    source: Source,
    quarantine_limit: usize,
) -> Result<String, CliError> {
    let name = source.as_str();
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
            text.push_str(&format!("    {}\n", summary_line(&run.summary)));
            if let Some(error) = &run.error {
                text.push_str(&format!("    error: {error}\n"));
            }
        }
    }
    if let Some(checkpoint) = store.checkpoint(name)? {
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
    let quarantined = store.quarantine(name)?;
    text.push_str(&format!("  quarantined records: {}\n", quarantined.len()));
    for (source_id, reason, _) in quarantined.iter().take(quarantine_limit) {
        text.push_str(&format!(
            "    {}: {reason}\n",
            source_id.as_deref().unwrap_or("(no id)")
        ));
    }
    if quarantined.len() > quarantine_limit {
        text.push_str(&format!(
            "    … and {} more (--quarantine-limit shows more)\n",
            quarantined.len() - quarantine_limit
        ));
    }
    Ok(text)
}
