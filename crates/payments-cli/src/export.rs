//! `payments export`: the ledger as CSV or NDJSON, streamed row by row.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use clap::ValueEnum;
use futures::StreamExt;
use payments_model::{Payment, PaymentRecord, PaymentStatus, Source};
use payments_sync::{Filter, PaymentStream};

use crate::LedgerArgs;
use crate::outcome::{CliError, Exit, printable};

/// Writes the ledger as CSV (with a header row) or NDJSON, sorted by created_at then id.
///
/// Field names are the unified record's: id, source, source_id, status, provider_status, amount,
/// currency, refunded_amount, created_at, paid_at, payer_name, description, method, processor,
/// processor_reference, payment_link_id, customer_id, fail_reason. Amounts are exact strings
/// ("12.95"); timestamps are RFC 3339 with the provider's offset.
///
/// A DATE is a day (2026-10-01: midnight in --tz, Europe/Amsterdam by default) or an RFC 3339
/// timestamp, taken exactly. --since includes its instant; --until given as a day includes that
/// whole day, given as a timestamp it excludes that instant.
///
/// In CSV, a text cell that a spreadsheet would run as a formula (it begins with =, +, -, @, a
/// tab or a carriage return) is written with a leading apostrophe; amounts are never changed.
/// --dialect excel-nl writes what Dutch Excel opens as columns: `;` between cells, a decimal
/// comma, a UTF-8 byte order mark and CRLF line ends.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// The output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Only these sources (mkp, paypro); repeatable.
    #[arg(long = "source", value_name = "SOURCE", value_parser = parse_source)]
    sources: Vec<Source>,
    /// Only these unified statuses (open, pending, paid, partially_refunded, refunded,
    /// charged_back, failed, canceled, expired, unknown); repeatable.
    #[arg(long = "status", value_name = "STATUS", value_parser = parse_status)]
    statuses: Vec<String>,
    /// Only payments created at or after DATE.
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    since: Option<DateArg>,
    /// Only payments created before DATE (a day counts whole).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    until: Option<DateArg>,
    /// The ledger as it was known at WHEN: each payment as it was then, and only payments seen by
    /// then. A day means its start in --tz (2026-11-01: the ledger as it stood when October
    /// closed); a timestamp is taken exactly. An export of a closed month stays reproducible.
    #[arg(long, value_name = "WHEN", value_parser = parse_date)]
    as_of: Option<DateArg>,
    /// The time zone that says when a day given to --since, --until or --as-of begins and ends.
    #[arg(long, value_name = "ZONE", default_value = "Europe/Amsterdam", value_parser = parse_zone)]
    tz: Tz,
    /// The CSV dialect: standard, or excel-nl for Dutch Excel.
    #[arg(long, value_enum, default_value_t = Dialect::Standard)]
    dialect: Dialect,
    /// Write to FILE instead of stdout (`-` is stdout). A regular file is replaced only once the
    /// export is complete; a device, FIFO or symlink is written through.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Printed after the options as written, line for line; each line fits in 80 columns.
const EXAMPLES: &str = r#"Examples:
  payments export --format csv --output ledger.csv
  payments export --format ndjson --source paypro --status paid
  payments export --format csv --status paid --since 2026-10-01 \
      --until 2026-10-31 --output october.csv
  payments export --dialect excel-nl --since 2026-10-01 --until 2026-10-31 \
      --output oktober.csv
  payments export --as-of 2026-11-01 --since 2026-10-01 --until 2026-10-31 \
      --output october-as-closed.csv
  payments export --format ndjson --since 2026-10-01T00:00:00+02:00 | head"#;

/// How the CSV is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Dialect {
    /// `,` between cells, a decimal point, LF line ends.
    Standard,
    /// `;` between cells, a decimal comma, a UTF-8 byte order mark, CRLF: Dutch Excel.
    ExcelNl,
}

/// A day, resolved in the export's time zone, or an exact instant.
#[derive(Clone, Copy, Debug)]
enum DateArg {
    Day(NaiveDate),
    Instant(DateTime<Utc>),
}

impl DateArg {
    /// The instant it stands for: a day's start in `tz` (its end, when `whole_day`).
    fn resolve(self, tz: Tz, whole_day: bool) -> Result<DateTime<Utc>, CliError> {
        let day = match self {
            DateArg::Instant(at) => return Ok(at),
            DateArg::Day(day) => day,
        };
        let start = if whole_day { day.succ_opt() } else { Some(day) };
        start
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .and_then(|midnight| tz.from_local_datetime(&midnight).earliest())
            .map(|at| at.with_timezone(&Utc))
            .ok_or_else(|| CliError::config(format!("the day {day} is out of range in {tz}")))
    }
}

pub(crate) fn parse_zone(text: &str) -> Result<Tz, String> {
    text.parse().map_err(|_| {
        format!("`{text}` is not a time zone; use a name like Europe/Amsterdam or UTC")
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Comma-separated, with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

pub(crate) fn parse_source(word: &str) -> Result<Source, String> {
    Source::from_word(word).ok_or_else(|| format!("`{word}` is not a source; use mkp or paypro"))
}

fn parse_status(word: &str) -> Result<String, String> {
    if PaymentStatus::WORDS.contains(&word) {
        Ok(word.to_owned())
    } else {
        Err(format!(
            "`{word}` is not a unified status; use one of {}",
            PaymentStatus::WORDS.join(", ")
        ))
    }
}

/// A day (`2026-10-01`) or an RFC 3339 timestamp.
fn parse_date(text: &str) -> Result<DateArg, String> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(DateArg::Day(day));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| DateArg::Instant(t.with_timezone(&Utc)))
        .map_err(|_| {
            format!("`{text}` is not a date; write a day like 2026-10-01 or a timestamp like 2026-10-01T00:00:00+02:00")
        })
}

pub(crate) async fn run(args: ExportArgs) -> Result<Exit, CliError> {
    let since = args.since.map(|d| d.resolve(args.tz, false)).transpose()?;
    let until = args.until.map(|d| d.resolve(args.tz, true)).transpose()?;
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        return Err(CliError::config(format!(
            "--since ({since}) is not before --until ({until}): the range holds no payment; check the dates (a day given to --until counts whole, in {})",
            args.tz
        )));
    }
    let as_of = args.as_of.map(|d| d.resolve(args.tz, false)).transpose()?;
    let store = args.ledger.open_existing().await?;
    let filter = Filter {
        sources: args.sources.clone(),
        statuses: args.statuses.clone(),
        since,
        until,
        as_of,
    };
    if let Some(at) = as_of
        && store.reconstructed_at(at).await?
    {
        eprintln!(
            "note: as of {at}, some payments are known only by their status (their versions were recorded before every field was kept); their other fields are those of a later version"
        );
    }
    let write = async |out: &mut dyn Write| -> Result<(), CliError> {
        let payments = store.payments(&filter).await?;
        match args.format {
            Format::Csv => write_csv(payments, args.dialect, out).await,
            Format::Ndjson => write_ndjson(payments, out).await,
        }
    };
    match args
        .output
        .as_deref()
        .filter(|path| *path != Path::new("-"))
    {
        None => {
            let stdout = io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            write(&mut out).await?;
            out.flush().map_err(write_error)?;
        }
        Some(path) => write_file(path, write).await?,
    }
    Ok(Exit::Done)
}

/// Writes the export to `path`. A regular file (or a new one) is written under a unique name in
/// the same directory and renamed over `path` only once complete, so a failed export never
/// replaces a good file; a device, FIFO or symlink is written through; a directory is refused.
pub(crate) async fn write_file(
    path: &Path,
    write: impl AsyncFnOnce(&mut dyn Write) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let unwritable = |e: io::Error| {
        CliError::config(format!(
            "cannot write {} ({e}); choose an --output you can write",
            path.display()
        ))
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(CliError::config(format!(
                "--output {} is a directory; name a file in it",
                path.display()
            )));
        }
        Ok(meta) if !meta.is_file() => {
            // A device, a FIFO or a symlink: written through, never replaced.
            let file = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(path)
                .map_err(unwritable)?;
            let mut out = BufWriter::new(file);
            write(&mut out).await?;
            return out.flush().map_err(write_error);
        }
        _ => {}
    }
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let partial = tempfile::Builder::new()
        .prefix(".payments-export-")
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(unwritable)?;
    let mut out = BufWriter::new(partial);
    write(&mut out).await?;
    let partial = out.into_inner().map_err(|e| write_error(e.into_error()))?;
    partial.as_file().sync_all().map_err(write_error)?;
    partial.persist(path).map_err(|e| {
        CliError::failed(format!(
            "cannot move the output into place at {} ({})",
            path.display(),
            e.error
        ))
    })?;
    Ok(())
}

pub(crate) fn write_error(error: io::Error) -> CliError {
    if error.kind() == io::ErrorKind::BrokenPipe {
        // The reader went away (`payments export | head`); nothing is wrong with the ledger.
        std::process::exit(0);
    }
    CliError::failed(format!("cannot write the output: {error}"))
}

async fn write_csv(
    mut payments: PaymentStream,
    dialect: Dialect,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut builder = csv::WriterBuilder::new();
    builder.has_headers(false);
    if dialect == Dialect::ExcelNl {
        out.write_all("\u{feff}".as_bytes()).map_err(write_error)?;
        builder.delimiter(b';').terminator(csv::Terminator::CRLF);
    }
    let mut csv = builder.from_writer(out);
    let csv_error = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(io) => write_error(io),
        other => CliError::failed(format!("cannot write a CSV row: {other:?}")),
    };
    csv.write_record(PaymentRecord::FIELDS).map_err(csv_error)?;
    while let Some(payment) = payments.next().await {
        csv.write_record(csv_cells(&payment?, dialect)?)
            .map_err(csv_error)?;
    }
    csv.flush().map_err(write_error)
}

/// The cells of one CSV row, in `PaymentRecord::FIELDS` order: amounts as exact strings (with a
/// decimal comma for Dutch Excel), every other text cell neutralised against formula injection.
fn csv_cells(payment: &Payment, dialect: Dialect) -> Result<Vec<String>, CliError> {
    let Ok(serde_json::Value::Object(record)) = serde_json::to_value(PaymentRecord::from(payment))
    else {
        return Err(CliError::failed(format!(
            "payment {} does not serialize as a record",
            printable(&payment.id)
        )));
    };
    Ok(PaymentRecord::FIELDS
        .iter()
        .map(|field| {
            let text = match record.get(*field) {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            if matches!(*field, "amount" | "refunded_amount") {
                match dialect {
                    Dialect::Standard => text,
                    Dialect::ExcelNl => text.replace('.', ","),
                }
            } else {
                neutralised(text)
            }
        })
        .collect())
}

/// A text cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return
/// first), with a leading apostrophe so that it shows as text (OWASP's advice).
fn neutralised(text: String) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    }
}

async fn write_ndjson(mut payments: PaymentStream, out: &mut dyn Write) -> Result<(), CliError> {
    while let Some(payment) = payments.next().await {
        serde_json::to_writer(&mut *out, &payment?).map_err(|e| write_error(e.into()))?;
        out.write_all(b"\n").map_err(write_error)?;
    }
    Ok(())
}
