//! `payments export`: the ledger as CSV or NDJSON, streamed row by row.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use clap::ValueEnum;
use payments_model::{Payment, PaymentRecord, PaymentStatus, Source};
use payments_sqlite::Filter;

use crate::DbArgs;
use crate::outcome::{CliError, Exit};

/// Writes the ledger as CSV (with a header row) or NDJSON, sorted by created_at then id.
///
/// Field names are the unified record's: id, source, source_id, status, provider_status, amount,
/// currency, refunded_amount, created_at, paid_at, payer_name, description, method, processor,
/// processor_reference, payment_link_id, customer_id, fail_reason. Amounts are exact strings
/// ("12.95"); timestamps are RFC 3339 with the provider's offset.
///
/// A DATE is a day (2026-10-01, midnight UTC) or an RFC 3339 timestamp. --since includes its
/// instant; --until given as a day includes that whole day, given as a timestamp it excludes
/// that instant.
///
/// Example: payments export --format csv --status paid --since 2026-10-01 --until 2026-10-31 --output october.csv
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    db: DbArgs,
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
    #[arg(long, value_name = "DATE", value_parser = parse_since)]
    since: Option<DateTime<Utc>>,
    /// Only payments created before DATE (a day counts whole).
    #[arg(long, value_name = "DATE", value_parser = parse_until)]
    until: Option<DateTime<Utc>>,
    /// Write to FILE instead of stdout; it is replaced only once the export is complete.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Comma-separated, with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

fn parse_source(word: &str) -> Result<Source, String> {
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

/// A day (midnight UTC) or an RFC 3339 timestamp; `whole_day` moves a day to its end.
fn parse_date(text: &str, whole_day: bool) -> Result<DateTime<Utc>, String> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if whole_day { day.succ_opt() } else { Some(day) };
        return day
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
            .ok_or_else(|| format!("`{text}` is out of range"));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!("`{text}` is not a date; write a day like 2026-10-01 or a timestamp like 2026-10-01T00:00:00+02:00")
        })
}

fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    parse_date(text, false)
}

fn parse_until(text: &str) -> Result<DateTime<Utc>, String> {
    parse_date(text, true)
}

pub(crate) fn run(args: ExportArgs) -> Result<Exit, CliError> {
    let store = args.db.open_existing()?;
    let filter = Filter {
        sources: args.sources.clone(),
        statuses: args.statuses.clone(),
        since: args.since,
        until: args.until,
    };
    let write = |out: &mut dyn Write| -> Result<(), CliError> {
        match args.format {
            Format::Csv => write_csv(&store, &filter, out),
            Format::Ndjson => write_ndjson(&store, &filter, out),
        }
    };
    match &args.output {
        None => {
            let stdout = io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            write(&mut out)?;
            out.flush().map_err(write_error)?;
        }
        Some(path) => write_file(path, write)?,
    }
    Ok(Exit::Done)
}

/// Writes beside `path` and renames at the end, so a failed export never replaces a good file.
fn write_file(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let partial = PathBuf::from(format!("{}.partial", path.display()));
    let file = File::create(&partial).map_err(|e| {
        CliError::config(format!(
            "cannot write {} ({e}); choose an --output in a directory you can write",
            partial.display()
        ))
    })?;
    let mut out = BufWriter::new(file);
    let written = write(&mut out).and_then(|()| {
        out.into_inner()
            .map_err(|e| write_error(e.into_error()))?
            .sync_all()
            .map_err(write_error)
    });
    match written {
        Ok(()) => std::fs::rename(&partial, path).map_err(|e| {
            CliError::failed(format!(
                "cannot move the export into place at {} ({e}); it is complete at {}",
                path.display(),
                partial.display()
            ))
        }),
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            Err(error)
        }
    }
}

fn write_error(error: io::Error) -> CliError {
    if error.kind() == io::ErrorKind::BrokenPipe {
        // The reader went away (`payments export | head`); nothing is wrong with the ledger.
        std::process::exit(0);
    }
    CliError::failed(format!("cannot write the export: {error}"))
}

fn write_csv(
    store: &payments_sqlite::SqliteStore,
    filter: &Filter,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut csv = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    let csv_error = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(io) => write_error(io),
        other => CliError::failed(format!("cannot write a CSV row: {other:?}")),
    };
    csv.write_record(PaymentRecord::FIELDS).map_err(csv_error)?;
    store.for_each_payment(filter, |payment: Payment| {
        csv.serialize(PaymentRecord::from(&payment))
            .map_err(csv_error)
    })?;
    csv.flush().map_err(write_error)
}

fn write_ndjson(
    store: &payments_sqlite::SqliteStore,
    filter: &Filter,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    store.for_each_payment(filter, |payment: Payment| {
        serde_json::to_writer(&mut *out, &payment).map_err(|e| write_error(e.into()))?;
        out.write_all(b"\n").map_err(write_error)
    })
}
