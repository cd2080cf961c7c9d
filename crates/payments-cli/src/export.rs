//! `payments export`: the ledger as CSV or NDJSON, streamed row by row.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{
    DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc,
};
use chrono_tz::Tz;
use clap::ValueEnum;
use clap::ValueHint;
use clap::builder::{PossibleValue, TypedValueParser};
use futures::StreamExt;
use payments_model::{Payment, PaymentRecord, PaymentStatus, Source};
use payments_sync::{Filter, PaymentStream};

use crate::LedgerArgs;
use crate::outcome::{CliError, Exit, printable};

/// Writes the ledger as CSV (with a header row) or NDJSON, sorted by created_at then id.
///
/// Field names are the unified record's: id, source, source_id, status, provider_status, amount,
/// currency, refunded_amount, created_at, paid_at, payer_name, description, method, processor,
/// processor_reference, payment_link_id, customer_id, fail_reason, charged_back_amount. Amounts
/// are exact strings ("12.95"); timestamps are RFC 3339 with the provider's offset.
///
/// A DATE is a day (2026-10-01: midnight in --tz, Europe/Amsterdam by default), a timestamp
/// without an offset (2026-12-02T08:37:12: a time on the clocks of --tz), or an RFC 3339
/// timestamp, taken exactly. --since includes its instant; --until given as a day includes that
/// whole day, given as a timestamp it excludes that instant.
///
/// In CSV, a text cell that a spreadsheet would run as a formula (it begins with =, +, -, @, a
/// tab or a carriage return) is written with a leading apostrophe; amounts are never changed.
/// --dialect excel-nl writes what Dutch Excel opens as columns and reads as numbers and dates:
/// `;` between cells, amounts with a decimal comma, times as dd-mm-yyyy hh:mm:ss on the clocks
/// of --tz, a UTF-8 byte order mark and CRLF line ends.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// The output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Only these sources (mkp, paypro); repeatable.
    #[arg(
        long = "source",
        value_name = "SOURCE",
        value_parser = Words::new(&Source::ALL.map(Source::as_str), parse_source),
        hide_possible_values = true
    )]
    sources: Vec<Source>,
    /// Only these unified statuses (open, pending, paid, partially_refunded, refunded,
    /// charged_back, failed, canceled, expired, unknown); repeatable.
    #[arg(
        long = "status",
        value_name = "STATUS",
        value_parser = Words::new(&PaymentStatus::WORDS, parse_status),
        hide_possible_values = true
    )]
    statuses: Vec<String>,
    /// Only payments created at or after DATE.
    #[arg(long, value_name = "DATE", value_parser = parse_date, value_hint = ValueHint::Other)]
    since: Option<DateArg>,
    /// Only payments created before DATE (a day counts whole).
    #[arg(long, value_name = "DATE", value_parser = parse_date, value_hint = ValueHint::Other)]
    until: Option<DateArg>,
    /// The ledger as it was known at WHEN: each payment as it was then, and only payments seen by
    /// then. A day means its start in --tz (2026-11-01: the ledger as it stood when October
    /// closed); a timestamp without an offset is a time on the clocks of --tz; one with an offset
    /// is taken exactly. An export of a closed month stays reproducible.
    #[arg(long, value_name = "WHEN", value_parser = parse_date, value_hint = ValueHint::Other)]
    as_of: Option<DateArg>,
    /// The time zone of the days and of the timestamps without an offset given to --since,
    /// --until or --as-of, and of the times excel-nl writes.
    #[arg(
        long,
        value_name = "ZONE",
        default_value = "Europe/Amsterdam",
        value_parser = parse_zone,
        value_hint = ValueHint::Other
    )]
    tz: Tz,
    /// The CSV dialect: standard, or excel-nl for Dutch Excel (CSV only).
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
    /// `;` between cells, a decimal comma, dd-mm-yyyy hh:mm:ss in --tz, a UTF-8 byte order
    /// mark, CRLF: Dutch Excel.
    ExcelNl,
}

/// A value parser for a closed set of words: `parse` reads them (with its own message for a
/// word outside the set), and completion scripts offer `words` instead of file names.
#[derive(Clone)]
struct Words<T> {
    words: Vec<&'static str>,
    parse: fn(&str) -> Result<T, String>,
}

impl<T> Words<T> {
    fn new(words: &[&'static str], parse: fn(&str) -> Result<T, String>) -> Words<T> {
        Words {
            words: words.to_vec(),
            parse,
        }
    }
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Words<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        // The function's own parser: the same error as `value_parser = parse_source` gives.
        self.parse.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(self.words.iter().map(|w| PossibleValue::new(*w))))
    }
}

/// A day or a time on the clocks, both resolved in the export's time zone, or an exact instant.
#[derive(Clone, Copy, Debug)]
enum DateArg {
    Day(NaiveDate),
    Local(NaiveDateTime),
    Instant(DateTime<Utc>),
}

impl DateArg {
    /// The instant it stands for: a day's start in `tz` (its end, when `whole_day`), or a time
    /// on the clocks of `tz`.
    fn resolve(self, tz: Tz, whole_day: bool) -> Result<DateTime<Utc>, CliError> {
        let day = match self {
            DateArg::Instant(at) => return Ok(at),
            DateArg::Local(time) => return local_instant(time, tz),
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

/// The instant that `time` on the clocks of `tz` stands for; a time the clocks skip (the hour
/// summer time begins) or show twice (the hour it ends) is refused, naming the offsets to write.
fn local_instant(time: NaiveDateTime, tz: Tz) -> Result<DateTime<Utc>, CliError> {
    let written = time.format("%Y-%m-%dT%H:%M:%S");
    match tz.from_local_datetime(&time) {
        LocalResult::Single(at) => Ok(at.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, second) => Err(CliError::config(format!(
            "{written} happens twice in {tz} (the clocks go back): write its offset, {} or {}",
            first.format("%Y-%m-%dT%H:%M:%S%:z"),
            second.format("%Y-%m-%dT%H:%M:%S%:z"),
        ))),
        LocalResult::None => Err(CliError::config(format!(
            "{written} does not happen in {tz} (the clocks skip it): write a time with its offset, like {}",
            Utc.from_utc_datetime(&time).format("%Y-%m-%dT%H:%M:%SZ")
        ))),
    }
}

/// An instant as a person reads it, on the clocks of `tz` with the offset, as `show` prints
/// times (and as --as-of takes them back): `2026-12-02T08:37:12+01:00 (Europe/Amsterdam)`.
fn for_a_person(at: DateTime<Utc>, tz: Tz) -> String {
    let local = at.with_timezone(&tz);
    format!(
        "{} ({tz})",
        local.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    )
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

/// A day (`2026-10-01`), a timestamp without an offset (`2026-12-02T08:37:12`, or with a space
/// for the `T`, with or without seconds), or an RFC 3339 timestamp.
fn parse_date(text: &str) -> Result<DateArg, String> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(DateArg::Day(day));
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(DateArg::Instant(at.with_timezone(&Utc)));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(DateArg::Local)
        .ok_or_else(|| {
            format!("`{text}` is not a date; write a day like 2026-10-01, a time in --tz like 2026-10-01T09:30:00, or a timestamp like 2026-10-01T00:00:00+02:00")
        })
}

pub(crate) async fn run(args: ExportArgs) -> Result<Exit, CliError> {
    if args.format == Format::Ndjson && args.dialect == Dialect::ExcelNl {
        return Err(CliError::config(
            "--dialect excel-nl is a CSV dialect and NDJSON has none: use --format csv with it, or leave --dialect out",
        ));
    }
    let tz = args.tz;
    let since = args.since.map(|d| d.resolve(tz, false)).transpose()?;
    let until = args.until.map(|d| d.resolve(tz, true)).transpose()?;
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        return Err(CliError::config(format!(
            "--since ({}) is not before --until ({}): the range holds no payment; check the dates (a day given to --until counts whole, in {tz})",
            for_a_person(since, tz),
            for_a_person(until, tz),
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
            "note: as of {}, some payments are known only by their status (their versions were recorded before every field was kept); their other fields are those of a later version",
            for_a_person(at, tz)
        );
    }
    let write = async |out: &mut dyn Write| -> Result<(), CliError> {
        let payments = store.payments(&filter).await?;
        let rows = match args.format {
            Format::Csv => write_csv(payments, args.dialect, tz, out).await?,
            Format::Ndjson => write_ndjson(payments, out).await?,
        };
        if rows == 0
            && let Some(at) = as_of
        {
            note_nothing_known(&*store, at, tz).await?;
        }
        Ok(())
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

/// Says on stderr why an export `--as-of` holds no payment, when the reason is that the ledger
/// had observed none by then (stdout keeps its format: a CSV header alone, or nothing).
async fn note_nothing_known(
    store: &dyn payments_sync::Ledger,
    at: DateTime<Utc>,
    tz: Tz,
) -> Result<(), CliError> {
    let known = |as_of| async move {
        let filter = Filter {
            as_of,
            ..Filter::default()
        };
        let mut payments = store.payments(&filter).await?;
        Ok::<_, CliError>(payments.next().await.transpose()?.is_some())
    };
    if known(Some(at)).await? {
        return Ok(());
    }
    let later = if known(None).await? {
        "its first payment was observed later"
    } else {
        "it holds no payment yet"
    };
    eprintln!(
        "note: as of {} the ledger had observed no payment ({later}), so the export holds none; give a later --as-of, or leave it out for the ledger as it is now",
        for_a_person(at, tz)
    );
    Ok(())
}

/// Writes the export to `path`. A regular file (or a new one) is written under a unique name in
/// the same directory and renamed over `path` only once complete, so a failed export never
/// replaces a good file; a device, FIFO or symlink is written through; a directory is refused.
/// A new file gets the mode the umask leaves of 0666, as `>` in a shell gives it; a replaced
/// file keeps its mode, its owner and its group (a user who may not give the file away is told
/// when the owner changes).
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
    let replaced = match std::fs::symlink_metadata(path) {
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
        Ok(meta) => Some(meta),
        Err(_) => None,
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".payments-export-").suffix(".partial");
    #[cfg(unix)]
    if replaced.is_none() {
        // Created as `open(…, 0666)` is, so the umask (and a default ACL) decide the mode. A
        // file to replace is written at tempfile's 0600 and given the old mode once complete.
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let partial = builder.tempfile_in(dir).map_err(unwritable)?;
    let mut out = BufWriter::new(partial);
    write(&mut out).await?;
    let partial = out.into_inner().map_err(|e| write_error(e.into_error()))?;
    if let Some(old) = &replaced {
        keep_mode_and_owner(partial.as_file(), old, path)?;
    }
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

/// Gives `file`, which replaces the regular file `old` described, that file's owner, group and
/// mode (in that order: a change of owner clears the set-id bits). Without the privilege to give
/// a file away, the group is kept when it can be and a note says whose the file now is.
#[cfg(unix)]
fn keep_mode_and_owner(
    file: &std::fs::File,
    old: &std::fs::Metadata,
    path: &Path,
) -> Result<(), CliError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, fchown};
    let failed = |e: io::Error| {
        CliError::failed(format!(
            "cannot give the new {} the mode of the old one ({e})",
            path.display()
        ))
    };
    let new = file.metadata().map_err(failed)?;
    if (new.uid(), new.gid()) != (old.uid(), old.gid())
        && fchown(file, Some(old.uid()), Some(old.gid())).is_err()
    {
        let group = fchown(file, None, Some(old.gid())).is_ok();
        eprintln!(
            "note: {} belonged to user {} and group {}; only they or root can give the new file that owner, so it is now yours{}",
            printable(&path.display().to_string()),
            old.uid(),
            old.gid(),
            if group {
                " (its group and mode are kept)"
            } else {
                ", with your group (its mode is kept)"
            }
        );
    }
    file.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777))
        .map_err(failed)
}

#[cfg(not(unix))]
fn keep_mode_and_owner(
    file: &std::fs::File,
    old: &std::fs::Metadata,
    path: &Path,
) -> Result<(), CliError> {
    file.set_permissions(old.permissions()).map_err(|e| {
        CliError::failed(format!(
            "cannot give the new {} the permissions of the old one ({e})",
            path.display()
        ))
    })
}

pub(crate) fn write_error(error: io::Error) -> CliError {
    if error.kind() == io::ErrorKind::BrokenPipe {
        // The reader went away (`payments export | head`); nothing is wrong with the ledger.
        std::process::exit(0);
    }
    CliError::failed(format!("cannot write the output: {error}"))
}

/// Writes the CSV and says how many rows it wrote.
async fn write_csv(
    mut payments: PaymentStream,
    dialect: Dialect,
    tz: Tz,
    out: &mut dyn Write,
) -> Result<u64, CliError> {
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
    let mut rows = 0;
    while let Some(payment) = payments.next().await {
        csv.write_record(csv_cells(&payment?, dialect, tz)?)
            .map_err(csv_error)?;
        rows += 1;
    }
    csv.flush().map_err(write_error)?;
    Ok(rows)
}

/// The fields that hold an exact amount.
const AMOUNTS: [&str; 3] = ["amount", "refunded_amount", "charged_back_amount"];

/// How Dutch Excel reads a time (`dd-mm-jjjj uu:mm:ss`), on the clocks of `tz`.
fn excel_nl_time(at: &DateTime<FixedOffset>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .format("%d-%m-%Y %H:%M:%S")
        .to_string()
}

/// The cells of one CSV row, in `PaymentRecord::FIELDS` order: amounts as exact strings (with a
/// decimal comma for Dutch Excel, which also gets its times in `tz`), every other text cell
/// neutralised against formula injection.
fn csv_cells(payment: &Payment, dialect: Dialect, tz: Tz) -> Result<Vec<String>, CliError> {
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
            if dialect == Dialect::ExcelNl {
                match *field {
                    "created_at" => return excel_nl_time(&payment.created_at, tz),
                    "paid_at" => {
                        return payment
                            .paid_at
                            .map(|at| excel_nl_time(&at, tz))
                            .unwrap_or_default();
                    }
                    _ => {}
                }
            }
            let text = match record.get(*field) {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            if AMOUNTS.contains(field) {
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

/// Writes one JSON object per line and says how many it wrote.
async fn write_ndjson(mut payments: PaymentStream, out: &mut dyn Write) -> Result<u64, CliError> {
    let mut rows = 0;
    while let Some(payment) = payments.next().await {
        serde_json::to_writer(&mut *out, &payment?).map_err(|e| write_error(e.into()))?;
        out.write_all(b"\n").map_err(write_error)?;
        rows += 1;
    }
    Ok(rows)
}
