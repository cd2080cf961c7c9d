//! `payments statement` and `payments report` over 60 days of sandbox data, as a bookkeeper
//! runs them: every MT940 statement read back by an independent parser, every CAMT.053 file
//! validated against ISO 20022's XSD with `xmllint`, balances chained to the sandbox's own
//! balance, an issued day given again byte for byte after a late refund, and a ledger that
//! lost a payment named by the report.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{Days, Utc};
use payments_model::rust_decimal::Decimal;
use payments_sandbox::{Sandbox, SandboxConfig};

use crate::{payments_for, run, text, unlimited};

/// 600 PayPro payments over the 60 days before four days ago, with payouts every five days.
async fn sixty_days() -> Sandbox {
    Sandbox::start(
        SandboxConfig {
            anchor: Utc::now() - chrono::Duration::days(4),
            paypro_payout_spacing: Some(Duration::from_secs(5 * 86_400)),
            ..unlimited(21, 0, 600)
        }
        .with_paypro_span(Duration::from_secs(60 * 86_400)),
    )
    .await
    .unwrap()
}

fn amsterdam_today() -> chrono::NaiveDate {
    payments_books::amsterdam_day(&Utc::now())
}

fn day(days_ago: u64) -> String {
    (amsterdam_today() - Days::new(days_ago)).to_string()
}

/// The statements of `mt940`, parsed by the `mt940` crate.
fn parse(mt940: &[u8]) -> Vec<mt940::Message> {
    let text = std::str::from_utf8(mt940).expect("MT940 is ASCII");
    mt940::parse_mt940(&mt940::sanitizers::strip_stuff_between_messages(text))
        .unwrap_or_else(|e| panic!("MT940 does not parse: {e:?}\n{text}"))
}

fn signed(balance: &mt940::Balance) -> Decimal {
    let amount = Decimal::from_str(&balance.amount.to_string()).unwrap();
    match balance.debit_credit_indicator {
        mt940::DebitOrCredit::Credit => amount,
        mt940::DebitOrCredit::Debit => -amount,
    }
}

fn line_amount(line: &mt940::StatementLine) -> Decimal {
    let amount = Decimal::from_str(&line.amount.to_string()).unwrap();
    match line.ext_debit_credit_indicator {
        mt940::ExtDebitOrCredit::Credit | mt940::ExtDebitOrCredit::ReverseDebit => amount,
        mt940::ExtDebitOrCredit::Debit | mt940::ExtDebitOrCredit::ReverseCredit => -amount,
    }
}

/// Checks the chain of `messages` and returns the last closing balance.
fn chained(messages: &[mt940::Message]) -> Decimal {
    assert!(!messages.is_empty());
    for pair in messages.windows(2) {
        assert_eq!(
            signed(&pair[1].opening_balance),
            signed(&pair[0].closing_balance)
        );
    }
    for message in messages {
        let sum: Decimal = message.statement_lines.iter().map(line_amount).sum();
        assert_eq!(
            signed(&message.opening_balance) + sum,
            signed(&message.closing_balance),
            "statement {}: Σ entries = closing − opening",
            message.statement_no
        );
    }
    signed(&messages.last().unwrap().closing_balance)
}

fn xsd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../payments-books/tests/xsd/camt.053.001.02.xsd")
}

/// Validates `file` against the CAMT.053.001.02 XSD; skipped without xmllint unless
/// `PAYMENTS_REQUIRE_XMLLINT=1`.
fn validate_camt(file: &Path) {
    let output = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(xsd())
        .arg(file)
        .output();
    match output {
        Ok(output) => assert!(
            output.status.success(),
            "{} is not valid CAMT.053: {}",
            file.display(),
            text(&output.stderr)
        ),
        Err(_) if std::env::var("PAYMENTS_REQUIRE_XMLLINT").is_ok_and(|v| v == "1") => {
            panic!("xmllint is required (PAYMENTS_REQUIRE_XMLLINT=1) but cannot be run")
        }
        Err(_) => eprintln!("skipped: xmllint is not installed (Debian's libxml2-utils)"),
    }
}

fn statement(sandbox: &Sandbox, db: &Path, format: &str, since: &str, until: &str, out: &Path) {
    run(
        payments_for(sandbox, db)
            .args([
                "statement",
                "--format",
                format,
                "--since",
                since,
                "--until",
                until,
            ])
            .arg("--output")
            .arg(out),
        0,
    );
}

fn sync(sandbox: &Sandbox, db: &Path) {
    let output = payments_for(sandbox, db)
        .args(["sync", "--source", "paypro"])
        .output()
        .unwrap();
    assert!(
        matches!(output.status.code(), Some(0 | 3)),
        "{}",
        text(&output.stderr)
    );
}

fn cents(amount: i64) -> Decimal {
    Decimal::new(amount, 2)
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_days_of_statements_chain_to_the_balance_and_an_issued_day_never_changes() {
    let sandbox = sixty_days().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    sync(&sandbox, &db);
    assert!(
        !sandbox.paypro_payouts().is_empty(),
        "the data set has payouts"
    );

    let (since, until) = (day(70), day(3));
    let first = dir.path().join("first.940");
    statement(&sandbox, &db, "mt940", &since, &until, &first);
    let first_bytes = std::fs::read(&first).unwrap();
    let messages = parse(&first_bytes);
    assert!(
        messages.len() >= 55,
        "a statement a day: {}",
        messages.len()
    );
    let numbers: Vec<String> = messages.iter().map(|m| m.statement_no.clone()).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    assert_eq!(
        chained(&messages),
        cents(sandbox.paypro_balance().amount),
        "the last closing is the sandbox's balance"
    );
    let report = run(
        payments_for(&sandbox, &db).args(["report", "--month", &day(3)[..7], "--json"]),
        0,
    );
    let json: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(
        json["paypro"]["reconciliation"]["state"], "reconciled",
        "{json}"
    );

    // The same days as CAMT.053: the statements as issued, valid against the XSD.
    let camt = dir.path().join("first.xml");
    statement(&sandbox, &db, "camt053", &since, &until, &camt);
    validate_camt(&camt);

    // A late refund on a payment of a day issued long ago.
    let old = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| {
            p.state == "paid"
                && p.refunded_amount == 0
                && p.paid_at.as_deref().is_some_and(|at| {
                    chrono::DateTime::parse_from_rfc3339(at)
                        .is_ok_and(|at| at.to_utc() < Utc::now() - chrono::Duration::days(30))
                })
        })
        .expect("a payment paid a month ago");
    let paid_at = chrono::DateTime::parse_from_rfc3339(old.paid_at.as_deref().unwrap())
        .unwrap()
        .to_utc();
    let refund_at = paid_at + chrono::Duration::hours(1);
    let refund = sandbox
        .refund_paypro_payment_at(&old.id, 100, refund_at)
        .expect("the refund is made");
    // Stamped a month back, its event is below what the change feed reads again: the hourly
    // walk of the book listings finds it. An hour later, then.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE book_walks SET walk = json_set(walk, '$.walked_at', '2000-01-01T00:00:00Z')",
            [],
        )
        .unwrap();
    sync(&sandbox, &db);
    // Asked again with the days since: every statement issued is given byte for byte, and
    // the refund is on the next one, the first not issued yet, with its own value date.
    let again = dir.path().join("again.940");
    statement(&sandbox, &db, "mt940", &since, &day(1), &again);
    let again_bytes = std::fs::read(&again).unwrap();
    assert!(
        again_bytes.starts_with(&first_bytes),
        "an issued statement never changes"
    );
    let late_messages = parse(&again_bytes[first_bytes.len()..]);
    assert_eq!(
        signed(&late_messages[0].opening_balance),
        signed(&messages.last().unwrap().closing_balance),
        "the chain goes on"
    );
    let line = late_messages
        .iter()
        .flat_map(|m| &m.statement_lines)
        .find(|l| {
            l.customer_ref.contains(&refund[..refund.len().min(16)])
                || format!("{:?}", l.information_to_account_owner).contains(&refund)
        })
        .unwrap_or_else(|| panic!("the refund {refund} is on the next statement"));
    let late_value = line.value_date;
    let late_amount = line_amount(line);
    let mut all = messages;
    all.extend(late_messages);
    assert_eq!(chained(&all), cents(sandbox.paypro_balance().amount));
    assert_eq!(late_value, payments_books::amsterdam_day(&refund_at));
    assert_eq!(late_amount, cents(-100));
    let late_camt = dir.path().join("late.xml");
    statement(&sandbox, &db, "camt053", &since, &day(1), &late_camt);
    validate_camt(&late_camt);

    // A payment lost from the ledger: the report names the difference and exits 1.
    let lost = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.state == "paid" && p.refunded_amount == 0 && p.id != old.id)
        .unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM payments WHERE source_id = ?", [&lost.id])
        .unwrap();
    let report = run(
        payments_for(&sandbox, &db).args(["report", "--month", &day(3)[..7]]),
        1,
    );
    let said = text(&report.stdout);
    let amount = cents(lost.amount).to_string();
    assert!(
        said.contains("unexplained") && said.contains(&format!("-{amount}")),
        "{said}"
    );
}
