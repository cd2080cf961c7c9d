//! The writer of statement files, one statement at a time (flat memory, whatever the range).

use std::io::{self, Write};

use crate::{Statement, camt053, mt940};

/// A statement file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// SWIFT MT940 as the Dutch banks deliver it: the SWIFT character set, CRLF line ends,
    /// `:86:` structured with `/EREF/`, `/NAME/`, `/IBAN/`, `/REMI/`.
    Mt940,
    /// ISO 20022 CAMT.053.001.02, valid against its XSD.
    Camt053,
}

impl Format {
    /// Both formats.
    pub const ALL: [Format; 2] = [Format::Mt940, Format::Camt053];

    /// `"mt940"` or `"camt053"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Mt940 => "mt940",
            Format::Camt053 => "camt053",
        }
    }

    /// Parses [`Format::as_str`]'s words (ASCII case ignored).
    ///
    /// ```
    /// use payments_books::Format;
    /// assert_eq!(Format::from_word("MT940"), Some(Format::Mt940));
    /// assert_eq!(Format::from_word("camt053"), Some(Format::Camt053));
    /// assert_eq!(Format::from_word("csv"), None);
    /// ```
    pub fn from_word(word: &str) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(word))
    }

    /// The file extension bookkeeping packages look for, without the dot: `sta` for MT940
    /// (the Dutch banks' downloads; `940` is also common), `xml` for CAMT.053.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Mt940 => "sta",
            Format::Camt053 => "xml",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes statements one at a time into `out`, holding none of them: memory stays flat
/// whatever the number of statements.
///
/// - MT940: one message per statement; a file with no statement is empty (no message).
/// - CAMT.053: the first [`write`](StatementWriter::write) opens the `Document` and writes its
///   group header, made from that statement alone (`MsgId` from its account and number,
///   `CreDtTm` its issue time), so the same statements always give the same bytes;
///   [`finish`](StatementWriter::finish) closes it. The schema requires at least one
///   statement, so `finish` with none refuses (an [`io::ErrorKind::InvalidInput`] error
///   saying so) and writes nothing.
///
/// A statement whose entries do not add up to its closing balance, or that mixes currencies,
/// is refused (an [`io::ErrorKind::InvalidInput`] error) before anything of it is written.
///
/// ```
/// use chrono::{DateTime, NaiveDate};
/// use payments_books::{Format, Statement, StatementWriter};
/// use payments_model::{Currency, Money};
///
/// let statement = Statement {
///     account: "PAYPRO-EUR".to_owned(),
///     number: 1,
///     day: NaiveDate::from_ymd_opt(2026, 10, 2).unwrap(),
///     currency: Currency::EUR,
///     opening: Money::from_minor(1000, Currency::EUR),
///     closing: Money::from_minor(1000, Currency::EUR),
///     issued_at: DateTime::parse_from_rfc3339("2026-10-03T06:00:00+02:00").unwrap(),
///     entries: Vec::new(),
/// };
/// let mut writer = StatementWriter::new(Format::Mt940, Vec::new());
/// writer.write(&statement).unwrap();
/// let file = String::from_utf8(writer.finish().unwrap()).unwrap();
/// assert!(file.starts_with(":20:26100200001\r\n:25:PAYPRO-EUR\r\n:28C:00001\r\n"));
/// assert!(file.ends_with(":62F:C261002EUR10,00\r\n-\r\n"));
/// ```
#[derive(Debug)]
pub struct StatementWriter<W: Write> {
    out: W,
    format: Format,
    written: u64,
}

impl<W: Write> StatementWriter<W> {
    /// A writer of `format` into `out`. Nothing is written before the first statement.
    pub fn new(format: Format, out: W) -> StatementWriter<W> {
        StatementWriter {
            out,
            format,
            written: 0,
        }
    }

    /// The format written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Writes one statement.
    pub fn write(&mut self, statement: &Statement) -> io::Result<()> {
        check(statement)?;
        match self.format {
            Format::Mt940 => mt940::write(&mut self.out, statement)?,
            Format::Camt053 => {
                if self.written == 0 {
                    camt053::header(&mut self.out, statement)?;
                }
                camt053::write(&mut self.out, statement)?;
            }
        }
        self.written += 1;
        Ok(())
    }

    /// How many statements were written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Ends the file, flushes and gives the output back.
    pub fn finish(mut self) -> io::Result<W> {
        if self.format == Format::Camt053 {
            if self.written == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "no statement to write: a CAMT.053 file holds at least one statement",
                ));
            }
            camt053::footer(&mut self.out)?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Refuses a statement that does not add up: every amount in its currency, and
/// `opening + Σ entries = closing`.
fn check(statement: &Statement) -> io::Result<()> {
    let refuse = |detail: String| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "statement {} of {} {detail}",
                statement.number, statement.account
            ),
        ))
    };
    let mut balance = statement.opening;
    for money in [statement.opening, statement.closing] {
        if money.currency() != statement.currency {
            return refuse(format!(
                "has a balance in {} but is in {}",
                money.currency().code(),
                statement.currency.code()
            ));
        }
    }
    for entry in &statement.entries {
        if entry.amount.currency() != statement.currency {
            return refuse(format!(
                "has entry {} in {} but is in {}",
                entry.reference,
                entry.amount.currency().code(),
                statement.currency.code()
            ));
        }
        match balance.checked_add(entry.amount) {
            Some(next) => balance = next,
            None => return refuse("overflows".to_owned()),
        }
    }
    if balance != statement.closing {
        return refuse(format!(
            "does not add up: it opens with {} and its entries make {}, not its closing {}",
            statement.opening.amount_string(),
            balance.amount_string(),
            statement.closing.amount_string()
        ));
    }
    Ok(())
}
