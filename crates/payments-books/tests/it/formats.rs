//! The statement files, checked by independent readers: every MT940 message is read back by
//! the `mt940` crate (balances, entries, amounts, dates, references), every CAMT.053 file is
//! validated against ISO 20022's XSD by `xmllint` and read back with its XPath. Hostile payer
//! names and descriptions, and random text, never break either format.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate};
use payments_books::{Entry, Format, Statement, StatementWriter};
use payments_model::rust_decimal::Decimal;
use payments_model::{Currency, Money, MovementKind};
use proptest::prelude::*;

fn eur(cents: i64) -> Money {
    Money::from_minor(cents, Currency::EUR)
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn entry(reference: &str, kind: MovementKind, value_date: NaiveDate, cents: i64) -> Entry {
    Entry {
        reference: reference.to_owned(),
        kind,
        value_date,
        amount: eur(cents),
        payment_reference: None,
        counterparty: None,
        counterparty_iban: None,
        description: None,
    }
}

/// A statement of `entries`, its closing balance their sum on `opening`.
fn statement(number: u32, day: NaiveDate, opening: i64, entries: Vec<Entry>) -> Statement {
    let closing = entries
        .iter()
        .fold(eur(opening), |b, e| b.checked_add(e.amount).unwrap());
    Statement {
        account: "PAYPRO-EUR".to_owned(),
        number,
        day,
        currency: Currency::EUR,
        opening: eur(opening),
        closing,
        issued_at: DateTime::parse_from_rfc3339(&format!(
            "{}T06:00:00+02:00",
            day.succ_opt().unwrap()
        ))
        .unwrap(),
        entries,
    }
}

/// Three days of a PayPro balance: payments from named payers, a refund, a late chargeback
/// (valued days before its booking), a payout with its fee and VAT, a day that closes in debit.
fn three_days() -> Vec<Statement> {
    let paid = |reference: &str, cents, name: &str, description: &str, day| Entry {
        payment_reference: Some(reference.to_owned()),
        counterparty: Some(name.to_owned()),
        counterparty_iban: Some("NL91 ABNA 0417 1643 00".to_owned()),
        description: Some(description.to_owned()),
        ..entry(reference, MovementKind::Payment, day, cents)
    };
    let first = statement(
        1,
        date(2026, 10, 1),
        10_000,
        vec![
            paid(
                "PPH25H07JYWLR7PA82",
                1295,
                "Jan Jansen",
                "Order 1001",
                date(2026, 10, 1),
            ),
            paid(
                "PPH25H07JYWLR7PA83",
                4_999,
                "Piet de Vries",
                "Order 1002",
                date(2026, 10, 1),
            ),
            Entry {
                payment_reference: Some("PPH25H07JYWLR7PA82".to_owned()),
                counterparty: Some("Jan Jansen".to_owned()),
                description: Some("Refund order 1001".to_owned()),
                ..entry("PRK7M2QX9", MovementKind::Refund, date(2026, 10, 1), -500)
            },
        ],
    );
    let second = statement(
        2,
        date(2026, 10, 2),
        first.closing.to_minor().unwrap(),
        vec![
            Entry {
                payment_reference: Some("PPH25H07JYWLR7PA83".to_owned()),
                description: Some("Chargeback".to_owned()),
                ..entry(
                    "PCQ4N8",
                    MovementKind::Chargeback,
                    date(2026, 9, 28),
                    -4_999,
                )
            },
            Entry {
                counterparty: Some("Webwinkel B.V.".to_owned()),
                counterparty_iban: Some("NL02RABO0123456789".to_owned()),
                description: Some("Payout".to_owned()),
                ..entry("PO77ZZ", MovementKind::Payout, date(2026, 10, 2), -15_000)
            },
            entry(
                "PO77ZZ/fee",
                MovementKind::PayoutFee,
                date(2026, 10, 2),
                -25,
            ),
            entry(
                "PO77ZZ/vat",
                MovementKind::PayoutFeeVat,
                date(2026, 10, 2),
                -5,
            ),
        ],
    );
    let third = statement(
        3,
        date(2026, 10, 3),
        second.closing.to_minor().unwrap(),
        vec![entry(
            "PO77ZZ/returned",
            MovementKind::PayoutReturned,
            date(2026, 10, 3),
            15_000,
        )],
    );
    vec![first, second, third]
}

fn write(format: Format, statements: &[Statement]) -> Vec<u8> {
    let mut writer = StatementWriter::new(format, Vec::new());
    for statement in statements {
        writer.write(statement).unwrap();
    }
    assert_eq!(writer.written(), statements.len() as u64);
    writer.finish().unwrap()
}

// ---- MT940, read by the `mt940` crate ----

/// The messages of an MT940 file as the `mt940` crate reads them, after checking the file's
/// frame: ASCII, CRLF line ends, every message ended by a line `-`. The crate's parser is
/// strict and takes messages without their terminators, so they go through its own
/// `strip_stuff_between_messages` first, which must remove exactly the `-` lines.
fn read_mt940(bytes: &[u8]) -> Vec<mt940::Message> {
    let text = std::str::from_utf8(bytes).expect("MT940 is ASCII");
    assert!(text.is_ascii(), "MT940 is ASCII");
    assert!(
        text.ends_with("\r\n-\r\n"),
        "the file ends with a message's end"
    );
    let lines: Vec<&str> = text.strip_suffix("\r\n").unwrap().split("\r\n").collect();
    assert!(
        lines.iter().all(|l| !l.contains(['\r', '\n'])),
        "every line ends with CRLF"
    );
    check_lines(&lines);
    let without_ends: Vec<&str> = lines.iter().copied().filter(|l| *l != "-").collect();
    assert_eq!(
        mt940::sanitizers::strip_stuff_between_messages(text),
        without_ends.join("\r\n") + "\r\n",
        "only the message ends are between the messages"
    );
    assert_eq!(
        lines.iter().filter(|l| **l == "-").count(),
        lines.iter().filter(|l| l.starts_with(":20:")).count(),
        "one end per message"
    );
    mt940::parse_mt940(&mt940::sanitizers::strip_stuff_between_messages(text))
        .unwrap_or_else(|e| panic!("MT940 does not parse: {e:?}\n{text}"))
}

/// The lines of an MT940 file: the SWIFT character set only, every line a tag of ours, a
/// message's end, or one of at most five continuations of an `:86:`, each of at most 65
/// characters, none starting with `-` or a blank.
fn check_lines(lines: &[&str]) {
    let mut in_86 = 0;
    for line in lines {
        assert!(
            line.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-:().,+ ".contains(c)),
            "only the SWIFT character set: {line:?}"
        );
        if let Some(rest) = line.strip_prefix(":86:") {
            in_86 = 1;
            assert!(rest.len() <= 65, "{line}");
        } else if *line == "-" {
            in_86 = 0;
        } else if let Some(rest) = line.strip_prefix(':') {
            in_86 = 0;
            let tag = rest.split(':').next().unwrap();
            assert!(
                ["20", "25", "28C", "60F", "61", "62F"].contains(&tag),
                "{line}"
            );
        } else {
            in_86 += 1;
            assert!(
                (2..=6).contains(&in_86),
                "a continuation belongs to :86: {line:?}"
            );
            assert!(
                line.len() <= 65 && !line.starts_with(['-', ' ']),
                "{line:?}"
            );
        }
    }
}

fn decimal(amount: &impl ToString) -> Decimal {
    Decimal::from_str(&amount.to_string()).unwrap()
}

fn balance(balance: &mt940::Balance) -> Decimal {
    match balance.debit_credit_indicator {
        mt940::DebitOrCredit::Credit => decimal(&balance.amount),
        mt940::DebitOrCredit::Debit => -decimal(&balance.amount),
    }
}

fn line_amount(line: &mt940::StatementLine) -> Decimal {
    match &line.ext_debit_credit_indicator {
        mt940::ExtDebitOrCredit::Credit => decimal(&line.amount),
        mt940::ExtDebitOrCredit::Debit => -decimal(&line.amount),
        other => panic!("a reversal mark {other:?}"),
    }
}

fn information(line: &mt940::StatementLine) -> String {
    match &line.information_to_account_owner {
        Some(mt940::InformationToAccountOwner::Plain(text)) => text.replace('\n', ""),
        other => panic!("the :86: is read as {other:?}"),
    }
}

/// The value of `/KEY/` in an `:86:` text, up to the next keyword.
fn subfield(information: &str, key: &str) -> Option<String> {
    let start = information.find(&format!("/{key}/"))? + key.len() + 2;
    let rest = &information[start..];
    let end = ["/EREF/", "/NAME/", "/IBAN/", "/REMI/"]
        .iter()
        .filter_map(|k| rest.find(k))
        .min()
        .unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

#[test]
fn mt940_reads_back_with_an_independent_parser() {
    let statements = three_days();
    let messages = read_mt940(&write(Format::Mt940, &statements));
    assert_eq!(messages.len(), 3);
    for (message, statement) in messages.iter().zip(&statements) {
        assert_eq!(message.account_id, "PAYPRO-EUR");
        assert_eq!(message.statement_no, format!("{:05}", statement.number));
        assert_eq!(
            message.transaction_ref_no,
            format!("{}{:05}", statement.day.format("%y%m%d"), statement.number)
        );
        for (read, written) in [
            (&message.opening_balance, statement.opening),
            (&message.closing_balance, statement.closing),
        ] {
            assert_eq!(balance(read), written.amount());
            assert_eq!(read.date, statement.day);
            assert_eq!(read.iso_currency_code, "EUR");
            assert!(!read.is_intermediate);
        }
        assert_eq!(message.statement_lines.len(), statement.entries.len());
        for (index, (line, entry)) in message
            .statement_lines
            .iter()
            .zip(&statement.entries)
            .enumerate()
        {
            assert_eq!(line_amount(line), entry.amount.amount(), "{entry:?}");
            assert_eq!(line.value_date, entry.value_date);
            assert_eq!(line.entry_date, Some(statement.day));
            let expected: String = entry.reference.replace('/', "-").chars().take(16).collect();
            assert_eq!(line.customer_ref, expected);
            assert_eq!(
                line.bank_ref.as_deref(),
                Some(format!("{:05}{:05}", statement.number, index + 1).as_str())
            );
            let info = information(line);
            assert_eq!(
                subfield(&info, "EREF").unwrap(),
                entry.reference.replace('/', "-"),
                "the full reference is in :86:"
            );
            assert_eq!(subfield(&info, "NAME"), entry.counterparty.clone());
            assert_eq!(
                subfield(&info, "IBAN"),
                entry.counterparty_iban.as_ref().map(|i| i.replace(' ', ""))
            );
            let remittance = subfield(&info, "REMI").unwrap_or_default();
            if let Some(description) = &entry.description {
                assert!(remittance.contains(description.as_str()), "{info}");
            }
            if let Some(payment) = entry
                .payment_reference
                .as_ref()
                .filter(|p| **p != entry.reference)
            {
                assert!(remittance.contains(payment.as_str()), "{info}");
            }
        }
    }
    use mt940::TransactionTypeIdentificationCode as Code;
    let codes: Vec<&Code> = messages
        .iter()
        .flat_map(|m| &m.statement_lines)
        .map(|l| &l.transaction_type_ident_code)
        .collect();
    assert_eq!(
        codes,
        [
            &Code::TRF,
            &Code::TRF,
            &Code::TRF,
            &Code::RTI,
            &Code::TRF,
            &Code::CHG,
            &Code::CHG,
            &Code::RTI
        ]
    );
    // The chain, as a bookkeeping package checks it.
    for pair in messages.windows(2) {
        assert_eq!(
            balance(&pair[1].opening_balance),
            balance(&pair[0].closing_balance)
        );
    }
    assert_eq!(
        balance(&messages[1].closing_balance),
        Decimal::new(-4_235, 2),
        "the second day closes in debit"
    );
}

#[test]
fn a_long_description_is_cut_to_six_lines_of_86() {
    let mut statements = three_days();
    statements[0].entries[0].description = Some("x".repeat(1_000));
    let bytes = write(Format::Mt940, &statements);
    let messages = read_mt940(&bytes);
    let info = information(&messages[0].statement_lines[0]);
    assert!(
        info.starts_with(
            "/EREF/PPH25H07JYWLR7PA82/NAME/Jan Jansen/IBAN/NL91ABNA0417164300/REMI/xxx"
        )
    );
    assert_eq!(info.len(), 6 * 65, "a long description is cut to six lines");
}

// ---- CAMT.053, validated by xmllint ----

fn xsd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/xsd/camt.053.001.02.xsd")
}

/// Whether xmllint can be run; without it, a test of CAMT.053 says it skipped the schema
/// check, unless `PAYMENTS_REQUIRE_XMLLINT=1`, then it fails.
fn xmllint() -> bool {
    match Command::new("xmllint").arg("--version").output() {
        Ok(_) => true,
        Err(_) if std::env::var("PAYMENTS_REQUIRE_XMLLINT").is_ok_and(|v| v == "1") => {
            panic!(
                "xmllint is required (PAYMENTS_REQUIRE_XMLLINT=1) but cannot be run; install Debian's libxml2-utils"
            )
        }
        Err(_) => {
            eprintln!("skipped: the CAMT.053 schema check needs xmllint (Debian's libxml2-utils)");
            false
        }
    }
}

/// A CAMT.053 file validated against the XSD, kept for XPath questions.
struct Camt {
    _dir: tempfile::TempDir,
    file: PathBuf,
}

impl Camt {
    /// `None` when xmllint is absent (and not required).
    fn validated(bytes: &[u8]) -> Option<Camt> {
        if !xmllint() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("statement.xml");
        std::fs::write(&file, bytes).unwrap();
        let output = Command::new("xmllint")
            .args(["--noout", "--nonet", "--schema"])
            .arg(xsd())
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "not valid CAMT.053.001.02: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(bytes)
        );
        Some(Camt { _dir: dir, file })
    }

    /// The string value of an XPath over the document's element names (`//Stmt[2]/Id`),
    /// evaluated by xmllint.
    fn get(&self, path: &str) -> String {
        self.eval(&format!("string({})", local_names(path)))
    }

    /// How many elements `path` finds.
    fn count(&self, path: &str) -> usize {
        let count = self.eval(&format!("count({})", local_names(path)));
        count
            .parse()
            .unwrap_or_else(|_| panic!("count {path}: {count}"))
    }

    fn eval(&self, xpath: &str) -> String {
        let output = Command::new("xmllint")
            .args(["--xpath", xpath])
            .arg(&self.file)
            .output()
            .unwrap();
        String::from_utf8(output.stdout)
            .unwrap()
            .trim_end_matches('\n')
            .to_owned()
    }
}

/// `//Stmt[2]/Id` with every name matched whatever its namespace.
fn local_names(path: &str) -> String {
    path.split('/')
        .map(|step| match step.split_once('[') {
            _ if step.is_empty() => String::new(),
            _ if step == "*" => step.to_owned(),
            Some((name, predicate)) => format!("*[local-name()='{name}'][{predicate}"),
            None => format!("*[local-name()='{step}']"),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn camt053_is_valid_against_the_iso_xsd_and_says_what_the_statements_say() {
    let statements = three_days();
    let Some(camt) = Camt::validated(&write(Format::Camt053, &statements)) else {
        return;
    };
    assert_eq!(camt.get("//GrpHdr/MsgId"), "PAYPRO-EUR-1");
    assert_eq!(camt.get("//GrpHdr/CreDtTm"), "2026-10-02T06:00:00+02:00");
    assert_eq!(camt.count("//Stmt"), 3);
    assert_eq!(camt.count("//Ntry"), 8);
    for (n, statement) in statements.iter().enumerate() {
        let s = format!("//Stmt[{}]", n + 1);
        assert_eq!(
            camt.get(&format!("{s}/ElctrncSeqNb")),
            statement.number.to_string()
        );
        assert_eq!(camt.get(&format!("{s}/Acct/Id/Othr/Id")), "PAYPRO-EUR");
        assert_eq!(camt.get(&format!("{s}/Bal[1]/Tp/CdOrPrtry/Cd")), "OPBD");
        assert_eq!(camt.get(&format!("{s}/Bal[2]/Tp/CdOrPrtry/Cd")), "CLBD");
        for (b, money) in [(1, statement.opening), (2, statement.closing)] {
            let signed = Decimal::from_str(&camt.get(&format!("{s}/Bal[{b}]/Amt"))).unwrap();
            let indicator = camt.get(&format!("{s}/Bal[{b}]/CdtDbtInd"));
            let signed = if indicator == "DBIT" { -signed } else { signed };
            assert_eq!(signed, money.amount());
            assert_eq!(
                camt.get(&format!("{s}/Bal[{b}]/Dt/Dt")),
                statement.day.to_string()
            );
        }
        for (e, entry) in statement.entries.iter().enumerate() {
            let ntry = format!("{s}/Ntry[{}]", e + 1);
            let amount = Decimal::from_str(&camt.get(&format!("{ntry}/Amt"))).unwrap();
            let credit = camt.get(&format!("{ntry}/CdtDbtInd")) == "CRDT";
            assert_eq!(if credit { amount } else { -amount }, entry.amount.amount());
            assert_eq!(camt.get(&format!("{ntry}/NtryRef")), entry.reference);
            assert_eq!(camt.get(&format!("{ntry}/AcctSvcrRef")), entry.reference);
            assert_eq!(camt.get(&format!("{ntry}/Sts")), "BOOK");
            assert_eq!(
                camt.get(&format!("{ntry}/BookgDt/Dt")),
                statement.day.to_string()
            );
            assert_eq!(
                camt.get(&format!("{ntry}/ValDt/Dt")),
                entry.value_date.to_string()
            );
            assert_eq!(
                camt.get(&format!("{ntry}/BkTxCd/Prtry/Cd")),
                entry.kind.as_str()
            );
            let tx = format!("{ntry}/NtryDtls/TxDtls");
            assert_eq!(
                camt.get(&format!("{tx}/Refs/EndToEndId")),
                entry
                    .payment_reference
                    .clone()
                    .unwrap_or(entry.reference.clone())
            );
            let party = if credit { "Dbtr" } else { "Cdtr" };
            assert_eq!(
                camt.get(&format!("{tx}/RltdPties/{party}/Nm")),
                entry.counterparty.clone().unwrap_or_default()
            );
            assert_eq!(
                camt.get(&format!("{tx}/RltdPties/{party}Acct/Id/IBAN")),
                entry
                    .counterparty_iban
                    .as_ref()
                    .map(|i| i.replace(' ', ""))
                    .unwrap_or_default()
            );
            assert_eq!(
                camt.get(&format!("{tx}/RmtInf/Ustrd")),
                entry.description.clone().unwrap_or_default()
            );
        }
    }
    let domain = |n: usize, e: usize| {
        let code = format!("//Stmt[{n}]/Ntry[{e}]/BkTxCd/Domn");
        [
            camt.get(&format!("{code}/Cd")),
            camt.get(&format!("{code}/Fmly/Cd")),
            camt.get(&format!("{code}/Fmly/SubFmlyCd")),
        ]
        .join("/")
    };
    assert_eq!(
        domain(1, 1),
        "PMNT/RCDT/ESCT",
        "a payment is a received transfer"
    );
    assert_eq!(domain(1, 3), "PMNT/ICDT/ESCT", "a refund an issued one");
    assert_eq!(
        domain(2, 1),
        "PMNT/RCDT/RRTN",
        "a chargeback a returned one"
    );
    assert_eq!(domain(2, 3), "ACMT/MDOP/CHRG", "a fee a charge");
    assert_eq!(camt.get("//Stmt[1]/TxsSummry/TtlCdtNtries/Sum"), "62.94");
    assert_eq!(camt.get("//Stmt[1]/TxsSummry/TtlDbtNtries/NbOfNtries"), "1");
}

#[test]
fn an_iban_account_is_written_as_an_iban() {
    let mut statements = three_days();
    for statement in &mut statements {
        statement.account = "NL02 RABO 0123 4567 89".to_owned();
    }
    let bytes = write(Format::Camt053, &statements);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains("<Acct><Id><IBAN>NL02RABO0123456789</IBAN></Id>"),
        "{text}"
    );
    Camt::validated(&bytes);
    let messages = read_mt940(&write(Format::Mt940, &statements));
    assert_eq!(messages[0].account_id, "NL02 RABO 0123 4567 89");
}

// ---- Hostile text ----

const HOSTILE: &[&str] = &[
    "Ömer Yılmaz",
    "Anne-Marie van 't Hof",
    "=cmd|' /c calc'!A1",
    "+31 6 12345678",
    "-1+1",
    "@SUM(A1:A2)",
    "  =HYPERLINK(\"http://x\")",
    "a\r\n:86:/NAME/forged\r\n-\r\n:20:X\r\n:62F:C000101EUR1,00",
    "-}\r\n{5:}",
    "<Nm>&amp;</Nm> ]]> <![CDATA[ x ]]> & < > \" '",
    "NUL\u{0}BEL\u{7}ESC\u{1b}DEL\u{7f}NEL\u{85}\u{FFFE}\u{FFFF}end",
    "emoji 😀👍🏽 ☃ € ™ — “quoted” Straße",
    "\u{200B}\u{FEFF}\u{2028}\u{2029}zero width",
    "",
    "   ",
    "//EREF//REMI/",
];

fn hostile_statements() -> Vec<Statement> {
    let long: String = "Lorem ipsum dolor sit amet, Ωμέγα 😀 "
        .chars()
        .cycle()
        .take(10_000)
        .collect();
    let mut entries = Vec::new();
    for (i, text) in HOSTILE.iter().chain([&long.as_str()]).enumerate() {
        let mut e = entry(
            &format!("PPHOSTILE{i:02}"),
            if i % 2 == 0 {
                MovementKind::Payment
            } else {
                MovementKind::Refund
            },
            date(2026, 10, 1),
            if i % 2 == 0 {
                1_000 + i as i64
            } else {
                -(i as i64)
            },
        );
        e.counterparty = Some((*text).to_owned());
        e.description = Some(format!("{text} {text}"));
        e.counterparty_iban = Some((*text).to_owned());
        entries.push(e);
    }
    vec![statement(1, date(2026, 10, 1), 0, entries)]
}

#[test]
fn hostile_names_and_descriptions_keep_mt940_parseable_and_are_kept_as_the_charset_allows() {
    let statements = hostile_statements();
    let messages = read_mt940(&write(Format::Mt940, &statements));
    assert_eq!(messages.len(), 1, "no forged message");
    let lines = &messages[0].statement_lines;
    assert_eq!(
        lines.len(),
        statements[0].entries.len(),
        "no forged or lost entry"
    );
    assert_eq!(
        balance(&messages[0].closing_balance),
        statements[0].closing.amount()
    );
    for (line, entry) in lines.iter().zip(&statements[0].entries) {
        assert_eq!(line_amount(line), entry.amount.amount());
        let info = information(line);
        assert_eq!(subfield(&info, "EREF").unwrap(), entry.reference);
        for key in ["NAME", "REMI"] {
            if let Some(value) = subfield(&info, key) {
                assert!(
                    !value.starts_with(['=', '+', '-', '@', ' ']),
                    "{key} {value:?}"
                );
                assert!(
                    !value.contains(['=', '@', '\'', '"', '<', '&', '{', '}']),
                    "{value:?}"
                );
            }
        }
    }
    let name = |i: usize| subfield(&information(&lines[i]), "NAME");
    assert_eq!(name(0).as_deref(), Some("Omer Yilmaz"));
    assert_eq!(name(1).as_deref(), Some("Anne-Marie van t Hof"));
    assert_eq!(name(2).as_deref(), Some("cmd -c calcA1"));
    assert_eq!(name(3).as_deref(), Some("31 6 12345678"));
    assert_eq!(
        name(7).as_deref(),
        Some("a .86.-NAME-forged - .20.X .62F.C000101EUR1,00")
    );
    assert_eq!(name(11).as_deref(), Some("emoji -- quoted Strasse"));
    assert_eq!(name(13), None, "an empty name is left out");
    assert_eq!(name(14), None, "a blank name is left out");
    assert!(information(lines.last().unwrap()).len() <= 6 * 65);
}

#[test]
fn hostile_names_and_descriptions_keep_camt053_valid_and_are_kept_as_xml_allows() {
    let statements = hostile_statements();
    let bytes = write(Format::Camt053, &statements);
    let text = String::from_utf8(bytes.clone()).expect("CAMT.053 is UTF-8");
    assert!(!text.contains(['\u{0}', '\u{7}', '\u{1b}', '\u{85}', '\u{FFFE}']));
    let Some(camt) = Camt::validated(&bytes) else {
        return;
    };
    let name = |e: usize| camt.get(&format!("//Ntry[{e}]/NtryDtls/TxDtls/RltdPties/*/Nm"));
    assert_eq!(name(1), "Ömer Yılmaz");
    assert_eq!(name(2), "Anne-Marie van 't Hof");
    assert_eq!(name(3), "'=cmd|' /c calc'!A1", "a formula is text");
    assert_eq!(name(4), "'+31 6 12345678");
    assert_eq!(name(5), "'-1+1");
    assert_eq!(name(6), "'@SUM(A1:A2)");
    assert_eq!(
        name(7),
        "'=HYPERLINK(\"http://x\")",
        "blanks before a formula are trimmed"
    );
    assert_eq!(
        name(8),
        "a  :86:/NAME/forged  -  :20:X  :62F:C000101EUR1,00"
    );
    assert_eq!(name(10), "<Nm>&amp;</Nm> ]]> <![CDATA[ x ]]> & < > \" '");
    assert_eq!(name(11), "NULBELESCDELNELend");
    assert_eq!(name(12), "emoji 😀👍🏽 ☃ € ™ — “quoted” Straße");
    assert_eq!(camt.count("//Ntry"), statements[0].entries.len());
    assert_eq!(
        camt.count("//Ntry[14]/NtryDtls/TxDtls/RltdPties"),
        0,
        "an empty name is left out"
    );
    let long = camt.get("//Ntry[17]/NtryDtls/TxDtls/RmtInf/Ustrd");
    assert_eq!(
        long.chars().count(),
        140,
        "a long description is cut to 140 characters"
    );
    for e in 1..=statements[0].entries.len() {
        let nm = name(e);
        assert!(!nm.starts_with(['=', '+', '-', '@']), "{nm:?}");
        let ustrd = camt.get(&format!("//Ntry[{e}]/NtryDtls/TxDtls/RmtInf/Ustrd"));
        assert!(!ustrd.starts_with(['=', '+', '-', '@']), "{ustrd:?}");
    }
}

// ---- Random text ----

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~\r\n\t]{0,200}",
        proptest::collection::vec(
            prop_oneof![
                Just(":86:".to_owned()),
                Just("\r\n-\r\n".to_owned()),
                Just("-}".to_owned()),
                Just("]]>".to_owned()),
                Just("/REMI/".to_owned()),
                Just("=".to_owned()),
                Just("Ömer".to_owned()),
                "[a-z ]{0,70}",
                "\\PC{0,5}",
                "[\u{0}-\u{1f}\u{7f}-\u{9f}\u{fffe}\u{ffff}]{1,3}",
                Just("\r\n:20:".to_owned()),
                Just(":::::".to_owned()),
                Just("- - - -".to_owned()),
            ],
            0..20
        )
        .prop_map(|parts| parts.concat()),
    ]
}

fn random_entry() -> impl Strategy<Value = Entry> {
    (
        any_text(),
        proptest::option::of(any_text()),
        proptest::option::of(any_text()),
        proptest::option::of(any_text()),
        -1_000_000i64..1_000_000,
        0u32..5,
    )
        .prop_map(
            |(reference, counterparty, description, iban, cents, back)| Entry {
                counterparty,
                description,
                counterparty_iban: iban,
                payment_reference: Some(reference.clone()),
                ..entry(
                    &reference,
                    MovementKind::Payment,
                    date(2026, 10, 20) - chrono::Days::new(back.into()),
                    cents,
                )
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_text_never_breaks_either_format(
        entries in proptest::collection::vec(random_entry(), 1..6),
        account in any_text(),
        opening in -1_000_000i64..1_000_000,
    ) {
        let mut statement = statement(7, date(2026, 10, 20), opening, entries);
        statement.account = account;
        let statements = [statement];
        let messages = read_mt940(&write(Format::Mt940, &statements));
        prop_assert_eq!(messages.len(), 1);
        prop_assert_eq!(messages[0].statement_lines.len(), statements[0].entries.len());
        prop_assert_eq!(balance(&messages[0].opening_balance), statements[0].opening.amount());
        prop_assert_eq!(balance(&messages[0].closing_balance), statements[0].closing.amount());
        for (line, entry) in messages[0].statement_lines.iter().zip(&statements[0].entries) {
            prop_assert_eq!(line_amount(line), entry.amount.amount());
            prop_assert_eq!(line.value_date, entry.value_date);
        }
        if let Some(camt) = Camt::validated(&write(Format::Camt053, &statements)) {
            prop_assert_eq!(camt.count("//Ntry"), statements[0].entries.len());
        }
    }
}

// ---- The file as a whole ----

#[test]
fn the_same_statements_give_the_same_bytes() {
    for format in Format::ALL {
        let first = write(format, &three_days());
        assert!(!first.is_empty());
        assert_eq!(write(format, &three_days()), first, "{format}");
        assert_eq!(
            write(format, &hostile_statements()),
            write(format, &hostile_statements())
        );
    }
}

#[test]
fn the_group_header_comes_from_the_first_statement_only() {
    let mut statements = three_days();
    let before = write(Format::Camt053, &statements);
    statements[2].issued_at = DateTime::parse_from_rfc3339("2030-01-01T00:00:00+01:00").unwrap();
    let after = String::from_utf8(write(Format::Camt053, &statements)).unwrap();
    let header = |text: &str| text.split("<Stmt>").next().unwrap().to_owned();
    assert_eq!(
        header(&after),
        header(std::str::from_utf8(&before).unwrap())
    );
    assert!(header(&after).contains(
        "<GrpHdr><MsgId>PAYPRO-EUR-1</MsgId><CreDtTm>2026-10-02T06:00:00+02:00</CreDtTm></GrpHdr>"
    ));
    statements[0].number = 41;
    let renumbered = String::from_utf8(write(Format::Camt053, &statements)).unwrap();
    assert!(header(&renumbered).contains("<MsgId>PAYPRO-EUR-41</MsgId>"));
}

#[test]
fn each_statement_is_written_when_it_is_given() {
    let statements = three_days();
    for format in Format::ALL {
        let mut out = Vec::new();
        {
            // Two statements given, the writer not finished: what reached `out` so far.
            let mut writer = StatementWriter::new(format, &mut out);
            writer.write(&statements[0]).unwrap();
            writer.write(&statements[1]).unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        match format {
            Format::Mt940 => assert_eq!(read_mt940(text.as_bytes()).len(), 2),
            Format::Camt053 => {
                assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document"));
                assert_eq!(text.matches("</Stmt>").count(), 2);
                assert!(!text.contains("</Document>"), "closed by finish only");
            }
        }
    }
}

#[test]
fn a_file_without_statements_is_empty_in_mt940_and_refused_in_camt053() {
    let empty = StatementWriter::new(Format::Mt940, Vec::new())
        .finish()
        .unwrap();
    assert!(empty.is_empty());
    let error = StatementWriter::new(Format::Camt053, Vec::new())
        .finish()
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(
        error.to_string(),
        "no statement to write: a CAMT.053 file holds at least one statement"
    );
}

#[test]
fn a_statement_that_does_not_add_up_is_refused_before_anything_is_written() {
    for format in Format::ALL {
        let mut statement = three_days().remove(0);
        statement.closing = eur(1);
        let mut out = Vec::new();
        let error = StatementWriter::new(format, &mut out)
            .write(&statement)
            .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        assert!(error.to_string().contains("does not add up"), "{error}");
        assert!(out.is_empty());
    }
}

#[test]
fn formats_have_words_and_extensions() {
    for format in Format::ALL {
        assert_eq!(Format::from_word(format.as_str()), Some(format));
        assert_eq!(format.to_string(), format.as_str());
    }
    assert_eq!(Format::from_word("MT940"), Some(Format::Mt940));
    assert_eq!(Format::from_word("camt.053"), None);
    assert_eq!(Format::Mt940.extension(), "sta");
    assert_eq!(Format::Camt053.extension(), "xml");
}

/// The statement of the formats' documentation.
fn documented() -> Vec<Statement> {
    vec![statement(
        1,
        date(2026, 10, 2),
        1_000,
        vec![Entry {
            payment_reference: Some("PPH25H07JYWLR7PA82".to_owned()),
            counterparty: Some("Ömer Yılmaz".to_owned()),
            counterparty_iban: Some("NL91ABNA0417164300".to_owned()),
            description: Some("Order 1234".to_owned()),
            ..entry(
                "PPH25H07JYWLR7PA82",
                MovementKind::Payment,
                date(2026, 10, 2),
                1_295,
            )
        }],
    )]
}

#[test]
fn the_documented_statement_is_written_byte_for_byte() {
    // An issued statement is given again byte for byte: a change of either layout shows here.
    let mt940 = concat!(
        ":20:26100200001\r\n",
        ":25:PAYPRO-EUR\r\n",
        ":28C:00001\r\n",
        ":60F:C261002EUR10,00\r\n",
        ":61:2610021002C12,95NTRFPPH25H07JYWLR7PA//0000100001\r\n",
        ":86:/EREF/PPH25H07JYWLR7PA82/NAME/Omer Yilmaz/IBAN/NL91ABNA0417164300\r\n",
        "/REMI/Order 1234\r\n",
        ":62F:C261002EUR22,95\r\n",
        "-\r\n",
    );
    assert_eq!(
        String::from_utf8(write(Format::Mt940, &documented())).unwrap(),
        mt940
    );
    let camt = concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n",
        "<BkToCstmrStmt>\n",
        "<GrpHdr><MsgId>PAYPRO-EUR-1</MsgId><CreDtTm>2026-10-03T06:00:00+02:00</CreDtTm></GrpHdr>\n",
        "<Stmt><Id>PAYPRO-EUR-00001</Id><ElctrncSeqNb>1</ElctrncSeqNb><CreDtTm>2026-10-03T06:00:00+02:00</CreDtTm><Acct><Id><Othr><Id>PAYPRO-EUR</Id></Othr></Id><Ccy>EUR</Ccy></Acct>\n",
        "<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"EUR\">10.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-10-02</Dt></Dt></Bal>\n",
        "<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"EUR\">22.95</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-10-02</Dt></Dt></Bal>\n",
        "<TxsSummry><TtlNtries><NbOfNtries>1</NbOfNtries><Sum>12.95</Sum><TtlNetNtryAmt>12.95</TtlNetNtryAmt><CdtDbtInd>CRDT</CdtDbtInd></TtlNtries><TtlCdtNtries><NbOfNtries>1</NbOfNtries><Sum>12.95</Sum></TtlCdtNtries><TtlDbtNtries><NbOfNtries>0</NbOfNtries><Sum>0</Sum></TtlDbtNtries></TxsSummry>\n",
        "<Ntry><NtryRef>PPH25H07JYWLR7PA82</NtryRef><Amt Ccy=\"EUR\">12.95</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>2026-10-02</Dt></BookgDt><ValDt><Dt>2026-10-02</Dt></ValDt><AcctSvcrRef>PPH25H07JYWLR7PA82</AcctSvcrRef><BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn><Prtry><Cd>payment</Cd></Prtry></BkTxCd><NtryDtls><TxDtls><Refs><AcctSvcrRef>PPH25H07JYWLR7PA82</AcctSvcrRef><EndToEndId>PPH25H07JYWLR7PA82</EndToEndId></Refs><RltdPties><Dbtr><Nm>Ömer Yılmaz</Nm></Dbtr><DbtrAcct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></DbtrAcct></RltdPties><RmtInf><Ustrd>Order 1234</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>\n",
        "</Stmt>\n",
        "</BkToCstmrStmt>\n",
        "</Document>\n",
    );
    let written = write(Format::Camt053, &documented());
    assert_eq!(String::from_utf8(written.clone()).unwrap(), camt);
    Camt::validated(&written);
}
