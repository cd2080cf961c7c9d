//! CAMT.053.001.02 (ISO 20022 BankToCustomerStatement), valid against its XSD: one `Document`
//! per file, its group header made from the first statement, one `Stmt` per statement.
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02" …>
//! <BkToCstmrStmt>
//! <GrpHdr><MsgId>PAYPRO-EUR-1</MsgId><CreDtTm>2026-10-03T06:00:00+02:00</CreDtTm></GrpHdr>
//! <Stmt><Id>PAYPRO-EUR-00001</Id><ElctrncSeqNb>1</ElctrncSeqNb><CreDtTm>…</CreDtTm>
//!   <Acct><Id><Othr><Id>PAYPRO-EUR</Id></Othr></Id><Ccy>EUR</Ccy></Acct>
//!   <Bal>… OPBD …</Bal><Bal>… CLBD …</Bal><TxsSummry>…</TxsSummry>
//!   <Ntry><NtryRef>PP…</NtryRef><Amt Ccy="EUR">12.95</Amt><CdtDbtInd>CRDT</CdtDbtInd>
//!     <Sts>BOOK</Sts><BookgDt>…</BookgDt><ValDt>…</ValDt><AcctSvcrRef>PP…</AcctSvcrRef>
//!     <BkTxCd><Domn>PMNT/RCDT/ESCT</Domn><Prtry><Cd>payment</Cd></Prtry></BkTxCd>
//!     <NtryDtls><TxDtls><Refs><AcctSvcrRef>PP…</AcctSvcrRef><EndToEndId>PP…</EndToEndId></Refs>
//!       <RltdPties><Dbtr><Nm>Ömer Yılmaz</Nm></Dbtr><DbtrAcct><Id><IBAN>NL…</IBAN></Id></DbtrAcct></RltdPties>
//!       <RmtInf><Ustrd>Order 1234</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>
//! </Stmt>
//! </BkToCstmrStmt>
//! </Document>
//! ```
//!
//! The payer is the debtor of a credit, the payee (a refund's or payout's receiver) the
//! creditor of a debit. Texts are cut to the schema's lengths on character boundaries.

use std::io::{self, Write};

use payments_model::rust_decimal::Decimal;
use payments_model::{Money, MovementKind};

use crate::text::{cut, escape, xml, xml_char};
use crate::{Entry, Statement};

/// The XML declaration, the document's opening and its group header, from the first
/// statement only: the same statements always give the same bytes.
pub(crate) fn header(out: &mut dyn Write, first: &Statement) -> io::Result<()> {
    write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n\
         <BkToCstmrStmt>\n\
         <GrpHdr><MsgId>{}</MsgId><CreDtTm>{}</CreDtTm></GrpHdr>\n",
        identification(&first.account, &first.number.to_string()),
        created(first)
    )
}

/// The document's end.
pub(crate) fn footer(out: &mut dyn Write) -> io::Result<()> {
    out.write_all(b"</BkToCstmrStmt>\n</Document>\n")
}

/// `{account}-{suffix}` as a `Max35Text`: the account is cut, never the suffix.
fn identification(account: &str, suffix: &str) -> String {
    let clean: String = account
        .chars()
        .filter_map(xml_char)
        .filter(|c| !c.is_whitespace())
        .collect();
    let room = 35 - suffix.chars().count().min(34) - 1;
    let account = cut(&clean, room);
    if account.is_empty() {
        escape(suffix)
    } else {
        escape(&format!("{account}-{suffix}"))
    }
}

fn created(statement: &Statement) -> String {
    statement
        .issued_at
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Writes one `Stmt`.
pub(crate) fn write(out: &mut dyn Write, statement: &Statement) -> io::Result<()> {
    let currency = statement.currency.code();
    let day = statement.day.format("%Y-%m-%d");
    writeln!(
        out,
        "<Stmt><Id>{}</Id><ElctrncSeqNb>{}</ElctrncSeqNb><CreDtTm>{}</CreDtTm>{}",
        identification(&statement.account, &format!("{:05}", statement.number)),
        statement.number,
        created(statement),
        account(&statement.account, currency)
    )?;
    for (code, balance) in [("OPBD", statement.opening), ("CLBD", statement.closing)] {
        writeln!(
            out,
            "<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy=\"{currency}\">{}</Amt>\
             <CdtDbtInd>{}</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>",
            balance.abs().amount_string(),
            indicator(balance)
        )?;
    }
    summary(out, statement)?;
    for (index, entry) in statement.entries.iter().enumerate() {
        entry_xml(out, statement, index, entry)?;
    }
    writeln!(out, "</Stmt>")
}

/// `TxsSummry`: the number and sum of all entries, of the credits and of the debits.
fn summary(out: &mut dyn Write, statement: &Statement) -> io::Result<()> {
    let (mut credits, mut debits) = ((0usize, Decimal::ZERO), (0usize, Decimal::ZERO));
    for entry in &statement.entries {
        let side = if entry.amount.is_negative() {
            &mut debits
        } else {
            &mut credits
        };
        side.0 += 1;
        side.1 += entry.amount.abs().amount();
    }
    let net = credits.1 - debits.1;
    writeln!(
        out,
        "<TxsSummry><TtlNtries><NbOfNtries>{}</NbOfNtries><Sum>{}</Sum><TtlNetNtryAmt>{}</TtlNetNtryAmt>\
         <CdtDbtInd>{}</CdtDbtInd></TtlNtries>\
         <TtlCdtNtries><NbOfNtries>{}</NbOfNtries><Sum>{}</Sum></TtlCdtNtries>\
         <TtlDbtNtries><NbOfNtries>{}</NbOfNtries><Sum>{}</Sum></TtlDbtNtries></TxsSummry>",
        credits.0 + debits.0,
        credits.1 + debits.1,
        net.abs(),
        if net < Decimal::ZERO { "DBIT" } else { "CRDT" },
        credits.0,
        credits.1,
        debits.0,
        debits.1,
    )
}

/// The account: its IBAN when the identification is one, else as another identification.
fn account(identification: &str, currency: &str) -> String {
    format!(
        "<Acct><Id>{}</Id><Ccy>{currency}</Ccy></Acct>",
        account_id(identification)
    )
}

/// An `AccountIdentification4Choice`: `IBAN` or `Othr/Id` (`Max34Text`).
fn account_id(identification: &str) -> String {
    match iban(identification) {
        Some(iban) => format!("<IBAN>{iban}</IBAN>"),
        None => format!(
            "<Othr><Id>{}</Id></Othr>",
            xml(identification, 34).unwrap_or_else(|| "NOTPROVIDED".to_owned())
        ),
    }
}

/// `text` as an IBAN when it has the IBAN's shape (two letters, two digits, up to 30 letters
/// and digits; spaces ignored, letters upper-cased): the schema's pattern, not a checksum.
fn iban(text: &str) -> Option<String> {
    let compact: String = text
        .chars()
        .filter(|c| *c != ' ')
        .collect::<String>()
        .to_ascii_uppercase();
    let bytes = compact.as_bytes();
    let shaped = (5..=34).contains(&bytes.len())
        && bytes[..2].iter().all(u8::is_ascii_uppercase)
        && bytes[2..4].iter().all(u8::is_ascii_digit)
        && bytes[4..].iter().all(u8::is_ascii_alphanumeric);
    shaped.then_some(compact)
}

fn indicator(money: Money) -> &'static str {
    if money.is_negative() { "DBIT" } else { "CRDT" }
}

/// The bank transaction code (domain, family, sub-family) of a movement, from ISO 20022's
/// external code list.
fn code(kind: MovementKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        // A received SEPA credit transfer.
        MovementKind::Payment => ("PMNT", "RCDT", "ESCT"),
        // An issued SEPA credit transfer: to the payer, or to the merchant's bank account.
        MovementKind::Refund | MovementKind::Payout => ("PMNT", "ICDT", "ESCT"),
        // A received payment reversed (returned to the payer).
        MovementKind::Chargeback => ("PMNT", "RCDT", "RRTN"),
        // An issued transfer that came back.
        MovementKind::PayoutReturned => ("PMNT", "ICDT", "RRTN"),
        // Account management: charges, and the tax on them.
        MovementKind::PayoutFee => ("ACMT", "MDOP", "CHRG"),
        MovementKind::PayoutFeeVat => ("ACMT", "MDOP", "TAXE"),
    }
}

fn entry_xml(
    out: &mut dyn Write,
    statement: &Statement,
    index: usize,
    entry: &Entry,
) -> io::Result<()> {
    let currency = statement.currency.code();
    let reference = xml(&entry.reference, 35)
        .unwrap_or_else(|| format!("{:05}-{}", statement.number, index + 1));
    let (domain, family, sub) = code(entry.kind);
    let end_to_end = entry
        .payment_reference
        .as_deref()
        .and_then(|r| xml(r, 35))
        .unwrap_or_else(|| reference.clone());
    let (party, party_account) = if entry.amount.is_negative() {
        ("Cdtr", "CdtrAcct")
    } else {
        ("Dbtr", "DbtrAcct")
    };
    let mut parties = String::new();
    if let Some(name) = entry.counterparty.as_deref().and_then(|n| xml(n, 140)) {
        parties.push_str(&format!("<{party}><Nm>{name}</Nm></{party}>"));
    }
    if let Some(id) = entry.counterparty_iban.as_deref().and_then(|text| {
        iban(text)
            .map(|iban| format!("<IBAN>{iban}</IBAN>"))
            .or_else(|| xml(text, 34).map(|id| format!("<Othr><Id>{id}</Id></Othr>")))
    }) {
        parties.push_str(&format!("<{party_account}><Id>{id}</Id></{party_account}>"));
    }
    if !parties.is_empty() {
        parties = format!("<RltdPties>{parties}</RltdPties>");
    }
    let remittance = entry
        .description
        .as_deref()
        .and_then(|d| xml(d, 140))
        .map(|d| format!("<RmtInf><Ustrd>{d}</Ustrd></RmtInf>"))
        .unwrap_or_default();
    writeln!(
        out,
        "<Ntry><NtryRef>{reference}</NtryRef><Amt Ccy=\"{currency}\">{}</Amt><CdtDbtInd>{}</CdtDbtInd><Sts>BOOK</Sts>\
         <BookgDt><Dt>{}</Dt></BookgDt><ValDt><Dt>{}</Dt></ValDt><AcctSvcrRef>{reference}</AcctSvcrRef>\
         <BkTxCd><Domn><Cd>{domain}</Cd><Fmly><Cd>{family}</Cd><SubFmlyCd>{sub}</SubFmlyCd></Fmly></Domn>\
         <Prtry><Cd>{}</Cd></Prtry></BkTxCd>\
         <NtryDtls><TxDtls><Refs><AcctSvcrRef>{reference}</AcctSvcrRef><EndToEndId>{end_to_end}</EndToEndId></Refs>\
         {parties}{remittance}</TxDtls></NtryDtls></Ntry>",
        entry.amount.abs().amount_string(),
        indicator(entry.amount),
        statement.day.format("%Y-%m-%d"),
        entry.value_date.format("%Y-%m-%d"),
        escape(entry.kind.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifications_keep_their_suffix() {
        let long = "A".repeat(60);
        let id = identification(&long, "00012");
        assert_eq!(id.chars().count(), 35);
        assert!(id.ends_with("-00012"));
        assert_eq!(identification("PAYPRO-EUR", "1"), "PAYPRO-EUR-1");
        assert_eq!(identification("\u{1} \n\u{FFFF}", "7"), "7");
        assert_eq!(identification("A<B", "7"), "A&lt;B-7");
    }

    #[test]
    fn only_the_ibans_shape_is_an_iban() {
        assert_eq!(
            iban("nl91 abna 0417 1643 00").unwrap(),
            "NL91ABNA0417164300"
        );
        assert_eq!(iban("PAYPRO-EUR"), None);
        assert_eq!(iban("NLXX1234"), None);
    }
}
