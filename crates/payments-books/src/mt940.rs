//! MT940 as the Dutch banks deliver it: one message per statement ended by a line `-`, CRLF
//! line ends, the SWIFT character set, and `:86:` in the structured form of the Dutch banks'
//! "MT940 structured" (keywords between slashes, as ABN AMRO and Rabobank write them):
//!
//! ```text
//! :20:26100200001
//! :25:PAYPRO-EUR
//! :28C:00001
//! :60F:C261002EUR10,00
//! :61:2610021002C12,95NTRFPPH25H07JYWLR7PA//0000100001
//! :86:/EREF/PPH25H07JYWLR7PA82/NAME/Omer Yilmaz/IBAN/NL91ABNA0417164300
//! /REMI/Order 1234
//! :62F:C261002EUR22,95
//! -
//! ```
//!
//! - `:20:` the statement's day and number (`YYMMDD` + five digits), `:25:` the account,
//!   `:28C:` the number (five digits, SWIFT's maximum: numbers from 100000 on wrap).
//! - `:60F:`/`:62F:` the opening and closing balance: `C` or `D`, the statement's day, the
//!   currency, the amount with a decimal comma.
//! - `:61:` per entry: the value date (`YYMMDD`), the booking day (`MMDD`), `C` or `D`, the
//!   amount, `N` + the transaction type (`TRF` a transfer, `CHG` a charge, `RTI` a returned
//!   item), the reference for the account owner (the entry's reference, its first 16
//!   characters), and after `//` the bank's reference (the statement's number and the entry's
//!   position, five digits each).
//! - `:86:` per entry, at most six lines of 65 characters: `/EREF/` the entry's full reference,
//!   `/NAME/` the counterparty, `/IBAN/` its account, `/REMI/` the payment's id (when it is
//!   not the entry's reference) and the description. Text is cut at the end, so the reference
//!   and the name survive a long description.

use std::io::{self, Write};

use payments_model::{Money, MovementKind};

use crate::text::{cut, swift};
use crate::{Entry, Statement};

/// `:86:` holds at most six lines of 65 characters.
const LINES_86: usize = 6;
const WIDTH_86: usize = 65;

/// An amount has at most 15 characters, its comma included.
const WIDTH_AMOUNT: usize = 15;

/// Writes `statement` as one MT940 message.
pub(crate) fn write(out: &mut dyn Write, statement: &Statement) -> io::Result<()> {
    let currency = statement.currency.code();
    let day = statement.day.format("%y%m%d");
    let number = statement.number % 100_000;
    let mut line = |text: &str| -> io::Result<()> {
        out.write_all(text.as_bytes())?;
        out.write_all(b"\r\n")
    };
    line(&format!(":20:{day}{number:05}"))?;
    let account = swift(&statement.account);
    let account = if account.is_empty() {
        "NOTPROVIDED"
    } else {
        cut(&account, 35)
    };
    line(&format!(":25:{account}"))?;
    line(&format!(":28C:{number:05}"))?;
    line(&format!(
        ":60F:{}{day}{currency}{}",
        mark(statement.opening),
        amount(statement.opening)?
    ))?;
    for (index, entry) in statement.entries.iter().enumerate() {
        line(&format!(
            ":61:{}{}{}{}N{}{}//{number:05}{:05}",
            entry.value_date.format("%y%m%d"),
            statement.day.format("%m%d"),
            mark(entry.amount),
            amount(entry.amount)?,
            type_code(entry.kind),
            owner_reference(&entry.reference),
            index + 1
        ))?;
        for (n, text) in information(entry).iter().enumerate() {
            if n == 0 {
                line(&format!(":86:{text}"))?;
            } else {
                line(text)?;
            }
        }
    }
    line(&format!(
        ":62F:{}{day}{currency}{}",
        mark(statement.closing),
        amount(statement.closing)?
    ))?;
    line("-")
}

/// `C` for a credit (or zero), `D` for a debit.
fn mark(money: Money) -> &'static str {
    if money.is_negative() { "D" } else { "C" }
}

/// The amount without its sign, with a decimal comma: `1234,56`; `1234,` in a currency
/// without decimals (the comma is mandatory).
fn amount(money: Money) -> io::Result<String> {
    let mut text = money.abs().amount_string().replace('.', ",");
    if !text.contains(',') {
        text.push(',');
    }
    if text.len() > WIDTH_AMOUNT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the amount {text} does not fit MT940's {WIDTH_AMOUNT} characters"),
        ));
    }
    Ok(text)
}

/// The transaction type after `N`: a transfer, a charge, or a returned item.
fn type_code(kind: MovementKind) -> &'static str {
    match kind {
        MovementKind::Payment | MovementKind::Refund | MovementKind::Payout => "TRF",
        MovementKind::PayoutFee | MovementKind::PayoutFeeVat => "CHG",
        MovementKind::Chargeback | MovementKind::PayoutReturned => "RTI",
    }
}

/// The reference for the account owner: the first 16 characters of the entry's reference in
/// the SWIFT set (which has no `/`, so never the `//` that ends it), `NONREF` when none is left.
fn owner_reference(reference: &str) -> String {
    let safe = swift(reference);
    if safe.is_empty() {
        "NONREF".to_owned()
    } else {
        cut(&safe, 16).trim_end().to_owned()
    }
}

/// The `:86:` lines of an entry (see the module's documentation).
fn information(entry: &Entry) -> Vec<String> {
    let reference = swift(&entry.reference);
    let mut text = format!(
        "/EREF/{}",
        if reference.is_empty() {
            "NOTPROVIDED"
        } else {
            &reference
        }
    );
    let present = |value: Option<&str>| value.map(swift).filter(|s| !s.is_empty());
    if let Some(name) = present(entry.counterparty.as_deref()) {
        text.push_str("/NAME/");
        text.push_str(&name);
    }
    if let Some(iban) = present(entry.counterparty_iban.as_deref()) {
        text.push_str("/IBAN/");
        text.push_str(&iban.replace(' ', ""));
    }
    let payment = present(entry.payment_reference.as_deref()).filter(|p| *p != reference);
    let description = present(entry.description.as_deref());
    let remittance: Vec<String> = payment.into_iter().chain(description).collect();
    if !remittance.is_empty() {
        text.push_str("/REMI/");
        text.push_str(&remittance.join(" "));
    }
    wrap(&text)
}

/// `text` (SWIFT characters, no line break) in at most six lines of 65 characters, the rest
/// cut. A line never starts with `-` (a message's end) nor a blank, nor ends with a blank: the
/// line before ends early instead, or, in a run of dashes and blanks longer than a line, they
/// are dropped.
/// (`:` cannot occur; [`swift`] writes it as `.`.)
fn wrap(text: &str) -> Vec<String> {
    let bad = |c: char| matches!(c, '-' | ' ');
    let chars: Vec<char> = text.chars().collect();
    let mut lines = Vec::with_capacity(LINES_86);
    let mut start = 0;
    while start < chars.len() && lines.len() < LINES_86 {
        let full = (start + WIDTH_86).min(chars.len());
        let mut end = full;
        // A good cut has neither a `-` nor a blank after it, nor a blank before it (a reader
        // that trims its lines would lose it).
        let good = |end: usize| end == chars.len() || !(bad(chars[end]) || chars[end - 1] == ' ');
        while !good(end) && end > start + 1 {
            end -= 1;
        }
        if !good(end) {
            end = full;
        }
        lines.push(chars[start..end].iter().collect::<String>());
        start = end;
        while start < chars.len() && bad(chars[start]) {
            start += 1;
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_line_of_86_starts_with_a_dash_or_a_blank() {
        let text = format!("/EREF/{}-- -x{}", "a".repeat(62), "b".repeat(400));
        let lines = wrap(&text);
        assert_eq!(lines.len(), 6);
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() <= 65 && !l.is_empty())
        );
        assert!(lines[1..].iter().all(|l| !l.starts_with(['-', ' '])));
        assert!(lines.iter().all(|l| !l.ends_with(' ')));
        assert_eq!(lines[..5].concat(), text[..lines[..5].concat().len()]);
        let dashes = format!("/EREF/x {}y", "- ".repeat(100));
        let lines = wrap(&dashes);
        assert!(
            lines[1..].iter().all(|l| !l.starts_with(['-', ' '])),
            "{lines:?}"
        );
        assert!(lines.last().unwrap().ends_with('y'));
    }

    #[test]
    fn amounts_have_a_decimal_comma() {
        let eur = payments_model::Currency::EUR;
        assert_eq!(amount(Money::from_minor(-123456, eur)).unwrap(), "1234,56");
        let jpy = payments_model::Currency::from_code("JPY").unwrap();
        assert_eq!(amount(Money::from_minor(1234, jpy)).unwrap(), "1234,");
        assert!(amount(Money::from_minor(i64::MAX, eur)).is_err());
    }
}
