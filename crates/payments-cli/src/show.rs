//! `payments show ID`: one payment and every version of it, or the quarantined record of that
//! id.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use payments_model::{PaymentRecord, Source};
use payments_sync::{Ledger, Quarantined, Version};
use serde_json::{Map, Value};

use crate::LedgerArgs;
use crate::outcome::{CliError, Exit, print_report, printable};

/// Shows one payment and every version of it.
///
/// The payment as the ledger holds it now, then every version of it, oldest first: when each was
/// observed and which fields changed. A status that moved backwards (paid → pending) is flagged.
///
/// ID is the unified id (paypro:PP123, mkp:4711) or the provider's own id when only one source
/// has it. Times are shown in --tz to the microsecond, so that one can be given to
/// `payments export --as-of` to see the ledger as it was when that version was current.
///
/// A record of that id that could not be read is quarantined (`payments quarantine` lists them
/// all): it is shown with its reason, when it was first seen and its raw text, after the
/// payment's versions when the ledger holds an earlier, good version of it, or alone.
///
/// Exit codes: 0 shown; 1 the ledger holds neither a payment nor a quarantined record of that
/// id (or cannot be read); 2 a usage or configuration error (an id both sources have, no ledger
/// at --db).
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// The payment: its unified id (paypro:…, mkp:…) or the provider's id.
    #[arg(value_name = "ID")]
    id: String,
    /// Print JSON: `{"payment": {...}, "versions": [{"observed_at", "superseded_at",
    /// "status_only", "record": {...}}], "quarantined": [{"source", "source_id", "reason",
    /// "first_seen_at", "raw"}]}`, times in UTC (`payment` null when only quarantined).
    #[arg(long)]
    json: bool,
    /// The time zone for the observation times.
    #[arg(long, value_name = "ZONE", default_value = "Europe/Amsterdam", value_parser = crate::export::parse_zone)]
    tz: Tz,
}

/// Printed after the options as written, line for line; each line fits in 80 columns.
const EXAMPLES: &str = r#"Examples:
  payments show paypro:PP123 --db ledger.db
  payments show PP123 --tz UTC
  payments show mkp:4711 --json"#;

pub(crate) async fn run(args: ShowArgs) -> Result<Exit, CliError> {
    let store = args.ledger.open_existing().await?;
    let found = find(&*store, &args.id).await?;
    let report = if args.json {
        json(&found)?
    } else {
        let mut report = human(&found.versions, args.tz)?;
        report.push_str(&human_quarantined(&found, args.tz));
        report
    };
    print_report(&report, "the payment")?;
    Ok(Exit::Done)
}

/// What `show` found of an id: the payment's versions (none when the ledger holds no payment of
/// it) and the quarantined records of that id.
struct Found {
    versions: Vec<Version>,
    quarantined: Vec<(Source, Quarantined)>,
}

/// What `id` names: a unified id (`paypro:PP123`) is the provider id of its source; any other
/// id is a provider id of either source.
fn candidates(id: &str) -> Vec<(Source, &str)> {
    let unified = Source::ALL.into_iter().find_map(|source| {
        id.strip_prefix(source.as_str())
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|source_id| (source, source_id))
    });
    match unified {
        Some(named) => vec![named],
        None => Source::ALL.into_iter().map(|source| (source, id)).collect(),
    }
}

/// The payment `id` names, a unified id or a provider id that only one source holds, with the
/// quarantined records of it; or the quarantined records of that id alone.
async fn find(store: &dyn Ledger, id: &str) -> Result<Found, CliError> {
    let mut payments = Vec::new();
    let mut quarantined = Vec::new();
    for (source, source_id) in candidates(id) {
        let versions = store.versions(&source.payment_id(source_id)).await?;
        let records = crate::quarantine::of_id(store, source, source_id).await?;
        if !versions.is_empty() {
            payments.push((source, versions, records));
        } else {
            quarantined.extend(records.into_iter().map(|record| (source, record)));
        }
    }
    match payments.len() {
        0 if quarantined.is_empty() => Err(CliError::failed(format!(
            "the ledger holds no payment `{}` and no quarantined record of that id; give its unified id (paypro:…, mkp:…) as `payments export` prints it, or see `payments quarantine`",
            printable(id)
        ))),
        0 => Ok(Found {
            versions: Vec::new(),
            quarantined,
        }),
        1 => {
            let (source, versions, records) = payments.remove(0);
            Ok(Found {
                versions,
                quarantined: records.into_iter().map(|record| (source, record)).collect(),
            })
        }
        _ => Err(CliError::config(format!(
            "both sources have a payment `{}`; say which: {}",
            printable(id),
            payments
                .iter()
                .map(|(source, ..)| source.payment_id(&printable(id)))
                .collect::<Vec<_>>()
                .join(" or ")
        ))),
    }
}

/// The quarantined records of what was found, after its versions or alone.
fn human_quarantined(found: &Found, tz: Tz) -> String {
    let Some((source, first)) = found.quarantined.first() else {
        return String::new();
    };
    let id = first
        .source_id
        .as_deref()
        .map(|id| printable(&source.payment_id(id)).into_owned())
        .unwrap_or_default();
    let count = found.quarantined.len();
    let mut out = if found.versions.is_empty() {
        format!(
            "{id} is quarantined: the ledger holds no payment of it, because its record could not be read (`payments quarantine` lists every such record)\n"
        )
    } else {
        format!(
            "\n{count} quarantined record{} of this id: a later record could not be read, and the payment keeps the last version read correctly\n",
            if count == 1 { "" } else { "s" }
        )
    };
    for (source, record) in &found.quarantined {
        out.push_str(&crate::quarantine::human(*source, record, tz));
    }
    out
}

/// A version's fields as the export writes them, by name.
fn fields(version: &Version) -> Result<Map<String, Value>, CliError> {
    match serde_json::to_value(PaymentRecord::from(&version.payment)) {
        Ok(Value::Object(fields)) => Ok(fields),
        _ => Err(CliError::failed(format!(
            "cannot show a version of {}",
            printable(&version.payment.id)
        ))),
    }
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "–".to_owned(),
        Some(Value::String(text)) => printable(text).into_owned(),
        Some(other) => printable(&other.to_string()).into_owned(),
    }
}

fn instant(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn human(versions: &[Version], tz: Tz) -> Result<String, CliError> {
    let Some(current) = versions.last() else {
        return Ok(String::new());
    };
    let now = fields(current)?;
    let width = PaymentRecord::FIELDS
        .iter()
        .map(|f| f.len())
        .max()
        .unwrap_or(0);
    let mut out = format!("{}\n", printable(&current.payment.id));
    for name in PaymentRecord::FIELDS {
        out.push_str(&format!("  {name:width$}  {}\n", cell(now.get(name))));
    }
    let count = versions.len();
    out.push_str(&format!(
        "\n{count} version{} (oldest first; times in {tz}):\n",
        if count == 1 { "" } else { "s" }
    ));
    let mut before: Option<(&Version, Map<String, Value>)> = None;
    for (number, version) in versions.iter().enumerate() {
        let this = fields(version)?;
        let until = match version.superseded_at {
            Some(at) => format!("until {}", instant(at, tz)),
            None => "current".to_owned(),
        };
        out.push_str(&format!(
            "  {}. observed {}, {until}\n",
            number + 1,
            instant(version.observed_at, tz)
        ));
        match &before {
            None => out.push_str(&format!(
                "       first seen as {} {} {}\n",
                cell(this.get("status")),
                cell(this.get("amount")),
                cell(this.get("currency"))
            )),
            Some((previous, was)) => {
                if previous.backwards_to(version) {
                    out.push_str(
                        "       ! the status moved backwards; kept as the provider reported it\n",
                    );
                }
                for name in PaymentRecord::FIELDS {
                    if was.get(name) != this.get(name) {
                        out.push_str(&format!(
                            "       {name:width$}  {} → {}\n",
                            cell(was.get(name)),
                            cell(this.get(name))
                        ));
                    }
                }
            }
        }
        if version.status_only {
            out.push_str("       (only the status of this version is known: it was recorded before every field was kept)\n");
        }
        before = Some((version, this));
    }
    Ok(out)
}

fn json(found: &Found) -> Result<String, CliError> {
    let versions = &found.versions;
    let time = |at: DateTime<Utc>| Value::String(at.to_rfc3339_opts(SecondsFormat::Micros, true));
    let mut listed = Vec::with_capacity(versions.len());
    for version in versions {
        listed.push(serde_json::json!({
            "observed_at": time(version.observed_at),
            "superseded_at": version.superseded_at.map_or(Value::Null, time),
            "status_only": version.status_only,
            "record": fields(version)?,
        }));
    }
    let current = versions.last().map(fields).transpose()?;
    let quarantined: Vec<Value> = found
        .quarantined
        .iter()
        .map(|(source, record)| crate::quarantine::json(*source, record))
        .collect();
    let report =
        serde_json::json!({ "payment": current, "versions": listed, "quarantined": quarantined });
    Ok(format!("{report}\n"))
}
