//! `payments show ID`: one payment and every version of it.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use payments_model::{PaymentRecord, Source};
use payments_sync::{Ledger, Version};
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
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// The payment: its unified id (paypro:…, mkp:…) or the provider's id.
    #[arg(value_name = "ID")]
    id: String,
    /// Print JSON: `{"payment": {...}, "versions": [{"observed_at", "superseded_at",
    /// "status_only", "record": {...}}]}`, times in UTC.
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
    let versions = find(&*store, &args.id).await?;
    let report = if args.json {
        json(&versions)?
    } else {
        human(&versions, args.tz)?
    };
    print_report(&report, "the payment")?;
    Ok(Exit::Done)
}

/// The versions of the payment `id` names: a unified id, or a provider id that only one source
/// holds.
async fn find(store: &dyn Ledger, id: &str) -> Result<Vec<Version>, CliError> {
    let versions = store.versions(id).await?;
    if !versions.is_empty() {
        return Ok(versions);
    }
    let mut found = Vec::new();
    for source in Source::ALL {
        let versions = store.versions(&source.payment_id(id)).await?;
        if !versions.is_empty() {
            found.push((source, versions));
        }
    }
    match found.len() {
        0 => Err(CliError::config(format!(
            "the ledger holds no payment `{}`; give its unified id (paypro:…, mkp:…) as `payments export` prints it",
            printable(id)
        ))),
        1 => Ok(found.remove(0).1),
        _ => Err(CliError::config(format!(
            "both sources have a payment `{id}`; say which: {}",
            found
                .iter()
                .map(|(source, _)| source.payment_id(&printable(id)))
                .collect::<Vec<_>>()
                .join(" or ")
        ))),
    }
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

fn json(versions: &[Version]) -> Result<String, CliError> {
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
    let report = serde_json::json!({ "payment": current, "versions": listed });
    Ok(format!("{report}\n"))
}
