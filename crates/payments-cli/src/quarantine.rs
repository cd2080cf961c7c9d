//! `payments quarantine`: the records set aside because they could not be read, with their
//! reasons and raw text.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use payments_model::Source;
use payments_sync::{Ledger, Quarantined};
use serde_json::{Value, json};

use crate::LedgerArgs;
use crate::export::{parse_source, parse_zone};
use crate::outcome::{CliError, Exit, print_report, printable};

/// Lists the quarantined records of the ledger, with their reasons and raw text.
///
/// A record that could not be read (a bad amount, a date in another form, bytes that are not
/// UTF-8, a chargeback that does not fit its payment) is quarantined whole, as the provider sent
/// it, and the rest of its page kept; a later run that reads it correctly resolves it. For each:
/// its source, the provider's id (when it could be read), why it was set aside, when it was
/// first seen and the raw text. Text from the provider is shown with its control characters
/// escaped. `payments show ID` shows one of them by its id.
///
/// Exit codes: 0 listed (also when there are none); 1 the ledger could not be read; 2 a usage
/// or configuration error (no ledger at --db, a file that is not a ledger).
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct QuarantineArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// Only these sources (mkp, paypro); repeatable.
    #[arg(long = "source", value_name = "SOURCE", value_parser = parse_source)]
    sources: Vec<Source>,
    /// Print one JSON object: `{"database", "records": [{"source", "source_id", "reason",
    /// "first_seen_at", "raw"}]}`, times in UTC, the text as the provider sent it.
    #[arg(long)]
    json: bool,
    /// The time zone for the times shown.
    #[arg(long, value_name = "ZONE", default_value = "Europe/Amsterdam", value_parser = parse_zone)]
    tz: Tz,
}

/// Printed after the options as written, line for line; each line fits in 80 columns.
const EXAMPLES: &str = r#"Examples:
  payments quarantine --db ledger.db
  payments quarantine --source paypro --tz UTC
  payments quarantine --json | jq -r '.records[].raw'"#;

pub(crate) async fn run(args: QuarantineArgs) -> Result<Exit, CliError> {
    let store = args.ledger.open_existing().await?;
    let sources: Vec<Source> = Source::ALL
        .into_iter()
        .filter(|source| args.sources.is_empty() || args.sources.contains(source))
        .collect();
    let mut listed = Vec::with_capacity(sources.len());
    for source in sources {
        listed.push((source, store.quarantine(source.as_str()).await?));
    }
    let report = if args.json {
        json_report(&*store, &listed)
    } else {
        human_report(&*store, &listed, args.tz)
    };
    print_report(&report, "the quarantine")?;
    Ok(Exit::Done)
}

/// The quarantined records of `source` whose provider id is `source_id`, oldest first.
pub(crate) async fn of_id(
    store: &dyn Ledger,
    source: Source,
    source_id: &str,
) -> Result<Vec<Quarantined>, CliError> {
    Ok(store
        .quarantine(source.as_str())
        .await?
        .into_iter()
        .filter(|record| record.source_id.as_deref() == Some(source_id))
        .collect())
}

fn human_report(store: &dyn Ledger, listed: &[(Source, Vec<Quarantined>)], tz: Tz) -> String {
    let mut out = format!("database: {}\n", printable(&store.describe()));
    for (source, records) in listed {
        let count = records.len();
        out.push_str(&format!(
            "\n{source}: {count} quarantined record{}{}\n",
            if count == 1 { "" } else { "s" },
            if count == 0 { "" } else { " (oldest first)" },
        ));
        for record in records {
            out.push_str(&human(*source, record, tz));
        }
    }
    out
}

/// One quarantined record of `source` for a person: every provider-supplied text escaped, each
/// field on a line of its own.
pub(crate) fn human(source: Source, record: &Quarantined, tz: Tz) -> String {
    format!(
        "  {}\n    first seen  {}\n    reason      {}\n    raw         {}\n",
        match &record.source_id {
            Some(id) => printable(&source.payment_id(id)).into_owned(),
            None => format!("{source}: (no id could be read)"),
        },
        in_zone(record.first_seen_at, tz),
        printable(&record.reason),
        printable(&record.raw),
    )
}

/// `at` in `tz`, to the second, with its offset.
fn in_zone(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One quarantined record of `source` as JSON: the text as the provider sent it, times in UTC.
pub(crate) fn json(source: Source, record: &Quarantined) -> Value {
    json!({
        "source": source.as_str(),
        "source_id": record.source_id,
        "reason": record.reason,
        "first_seen_at": record.first_seen_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "raw": record.raw,
    })
}

fn json_report(store: &dyn Ledger, listed: &[(Source, Vec<Quarantined>)]) -> String {
    let records: Vec<Value> = listed
        .iter()
        .flat_map(|(source, records)| records.iter().map(|record| json(*source, record)))
        .collect();
    format!(
        "{}\n",
        json!({ "database": store.describe(), "records": records })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_shown_with_every_provider_text_escaped() {
        let record = Quarantined {
            source_id: Some("PP\u{1b}[2J1".to_owned()),
            reason: "field `amount`: `12,5\u{202e}0` is not an amount".to_owned(),
            raw: "{\"id\": \"PP\\u001b[2J1\",\n \"amount\": \"12,5\u{202e}0\"}\r\n".to_owned(),
            first_seen_at: "2026-11-22T08:00:01.123456Z".parse().unwrap(),
        };
        let shown = human(Source::PayPro, &record, chrono_tz::Europe::Amsterdam);
        assert_eq!(
            shown,
            "  paypro:PP\\x1b[2J1\n\
             \x20   first seen  2026-11-22T09:00:01+01:00\n\
             \x20   reason      field `amount`: `12,5\\u{202e}0` is not an amount\n\
             \x20   raw         {\"id\": \"PP\\u001b[2J1\",\\n \"amount\": \"12,5\\u{202e}0\"}\\r\\n\n"
        );
        assert!(!shown.contains('\u{1b}') && !shown.contains('\u{202e}'));
        let nameless = Quarantined {
            source_id: None,
            ..record
        };
        assert!(
            human(Source::Mkp, &nameless, chrono_tz::UTC).starts_with(
                "  mkp: (no id could be read)\n    first seen  2026-11-22T08:00:01Z\n"
            )
        );
    }
}
