//! `payments statement`: day statements of a source's balance as MT940 or CAMT.053.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Utc};
use clap::ValueEnum;
use payments_books::{Format, Request, StatementWriter, default_account};
use payments_model::{Currency, Money, Source};

use crate::outcome::{CliError, Exit, printable};
use crate::{BooksLedgerArgs, export};

/// Writes one bank statement per Amsterdam day with movements of a source's balance, for
/// bookkeeping packages (SnelStart, Exact Online, Twinfield, AFAS, e-Boekhouden import them).
///
/// A paid payment credits the balance; a refund, a completed chargeback, a payout and its fee
/// and VAT debit it, each on its own value date. Balances chain: each statement opens with the
/// previous one's closing. A statement, once issued, never changes: asking for its day again
/// gives the same bytes, and a movement learned after its day was issued is booked on the next
/// statement not yet issued, with its own value date. Days from today on are not issued yet.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct StatementArgs {
    #[command(flatten)]
    ledger: BooksLedgerArgs,
    /// The source whose balance it is (paypro: MKP's money sits at its processors).
    #[arg(long, value_name = "SOURCE", default_value_t = Source::PayPro, value_parser = parse_source)]
    source: Source,
    /// The file format.
    #[arg(long, value_enum)]
    format: StatementFormat,
    /// The first day (Amsterdam), 2026-10-01.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    since: NaiveDate,
    /// The last day (Amsterdam), included.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    until: NaiveDate,
    /// The account identification written into the statements (default: PAYPRO-EUR).
    #[arg(long = "account-id", value_name = "ID")]
    account_id: Option<String>,
    /// The balance before every movement the ledger holds, for a ledger that starts after the
    /// account did (used by the first statement only).
    #[arg(long, value_name = "AMOUNT", default_value = "0.00", value_parser = parse_opening_balance)]
    opening_balance: Money,
    /// Write to FILE instead of stdout (`-` is stdout), replaced only once complete.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

const EXAMPLES: &str = r#"Examples:
  payments statement --format mt940 --since 2026-10-01 --until 2026-10-31 \
      --output oktober.940
  payments statement --format camt053 --since 2026-11-01 --until 2026-11-01 \
      --output 2026-11-01.xml
  payments statement --format mt940 --since 2026-10-01 --until 2026-10-31 \
      --opening-balance 1520.35 --account-id PAYPRO-EUR"#;

/// The file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StatementFormat {
    /// SWIFT MT940, as the Dutch banks deliver it.
    Mt940,
    /// ISO 20022 CAMT.053.001.02.
    Camt053,
}

fn parse_source(word: &str) -> Result<Source, String> {
    match Source::from_word(word) {
        Some(Source::PayPro) => Ok(Source::PayPro),
        Some(Source::Mkp) => Err(
            "MKP's money sits at its processors, not in an MKP balance: statements are of paypro; `payments report` shows MKP per processor".to_owned(),
        ),
        None => Err(format!("`{word}` is not a source; use paypro")),
    }
}

pub(crate) fn parse_day(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a day; write it like 2026-10-01"))
}

/// `--opening-balance` of `statement` and `report`: an exact amount in EUR.
pub(crate) fn parse_opening_balance(text: &str) -> Result<Money, String> {
    Money::parse(text.trim(), Currency::EUR).map_err(|e| {
        format!(
            "`{}` is not an amount in EUR ({e}); write it like 1520.35",
            printable(text)
        )
    })
}

pub(crate) async fn run(args: StatementArgs) -> Result<Exit, CliError> {
    let opening_balance = args.opening_balance;
    let ledger = args.ledger.open().await?;
    let request = Request {
        source: args.source,
        account: args
            .account_id
            .clone()
            .unwrap_or_else(|| default_account(args.source)),
        since: args.since,
        until: args.until,
        opening_balance,
        now: Utc::now(),
    };
    let format = match args.format {
        StatementFormat::Mt940 => Format::Mt940,
        StatementFormat::Camt053 => Format::Camt053,
    };
    let write = async |out: &mut dyn Write| -> Result<(), CliError> {
        let mut writer = StatementWriter::new(format, out);
        let issued = payments_books::issue(ledger.as_ref(), &request, |statement| {
            writer.write(statement)
        })
        .await
        .map_err(books_error)?;
        let quiet = crate::output::quiet();
        if issued.other_currency > 0 && !quiet {
            eprintln!(
                "{} movement(s) in another currency than {} are of another balance, not on these statements",
                issued.other_currency,
                request.opening_balance.currency().code()
            );
        }
        if writer.written() == 0 {
            // A CAMT.053 document must hold a statement; an empty range writes nothing.
            if !quiet {
                eprintln!(
                    "no day from {} to {} has movements to state (days from today on are issued later)",
                    request.since, request.until
                );
            }
            return Ok(());
        }
        writer.finish().map_err(export::write_error)?;
        if quiet {
            return Ok(());
        }
        eprintln!(
            "{} statement(s): {} issued now ({} entries), {} as issued before{}",
            issued.again + issued.new,
            issued.new,
            issued.entries,
            issued.again,
            issued
                .closing
                .map(|c| format!("; closing balance {c}"))
                .unwrap_or_default()
        );
        Ok(())
    };
    match args.output.as_deref().filter(|p| *p != Path::new("-")) {
        None => {
            let stdout = io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            write(&mut out).await?;
            out.flush().map_err(export::write_error)?;
        }
        Some(path) => export::write_file(path, write).await?,
    }
    Ok(Exit::Done)
}

fn books_error(error: payments_books::BooksError) -> CliError {
    match error {
        payments_books::BooksError::Range(_) | payments_books::BooksError::Currency { .. } => {
            CliError::config(error.to_string())
        }
        payments_books::BooksError::Store(store) => store.into(),
        other => CliError::failed(other.to_string()),
    }
}
