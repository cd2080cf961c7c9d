//! Target 10: a year of 100,000 PayPro payments becomes daily statements with flat memory.
//!
//! Builds a SQLite ledger of a year of payments (and a refund for every fiftieth), then runs
//! `payments statement` over the year as a child process, reading its peak resident set from
//! `/proc`. Flat memory is judged by the growth from 10,000 to 100,000 payments.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use payments_testkit::peak;

use payments_model::{
    BookKind, BookRecord, Currency, Money, Payment, PaymentStatus, Source, chrono,
};
use payments_sqlite::SqliteStore;
use payments_sync::{BookWalk, Books, Commit, KeptRecord, RecordCommit, Store};

fn main() {
    if !peak::available() {
        println!("target 10: skipped (reading a process's peak memory needs Linux's /proc)");
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    // Peak per (format, run) at each count: the first issue, then the same year given again.
    let mut peaks: Vec<Vec<u64>> = Vec::new();
    for count in [10_000, 100_000] {
        let mut at_count = Vec::new();
        for format in ["mt940", "camt053"] {
            let db = dir.path().join(format!("statements-{count}-{format}.db"));
            runtime.block_on(ledger(&db, count));
            for run in ["first issue", "given again"] {
                let out = dir.path().join(format!("year-{count}.{format}"));
                let (elapsed, peak_kib) = statements(&db, format, &out);
                let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
                println!(
                    "target 10: {format} statements of a year of {count} payments ({run}): {:.2} s, peak {:.1} MB, file {:.1} MB",
                    elapsed.as_secs_f64(),
                    peak_kib as f64 / 1024.0,
                    size as f64 / 1e6
                );
                at_count.push(peak_kib);
            }
        }
        peaks.push(at_count);
    }
    // Flat: ten times the payments may not cost half as much memory again, in any run.
    let growth = peaks[1]
        .iter()
        .zip(&peaks[0])
        .map(|(large, small)| *large as f64 / (*small).max(1) as f64)
        .fold(0.0, f64::max);
    println!(
        "target 10: the largest growth of a peak from 10,000 to 100,000 payments: {growth:.2}× (flat is 1); bound ≤ 1.5×: ratio to bound {:.3} ({})",
        growth / 1.5,
        if growth <= 1.5 { "met" } else { "NOT met" }
    );
}

/// Runs `payments statement` over 2025 on `db` into `out`: its time and peak resident set (KiB).
fn statements(db: &Path, format: &str, out: &Path) -> (Duration, u64) {
    let child = Command::new(env!("CARGO_BIN_EXE_payments"))
        .args(["statement", "--format", format, "--since", "2025-01-01"])
        .args(["--until", "2025-12-31", "--db"])
        .arg(db)
        .arg("--output")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the payments binary starts");
    let (status, elapsed, peak_kib) = peak::wait(child, Duration::from_millis(10));
    assert!(status.success(), "the statement benchmark's command failed");
    (elapsed, peak_kib)
}

/// A ledger of `count` PayPro payments paid over 2025, a refund for every fiftieth.
async fn ledger(db: &Path, count: usize) {
    let store = SqliteStore::open(db).expect("the ledger opens");
    let start = chrono::DateTime::parse_from_rfc3339("2025-01-01T08:00:00+00:00").unwrap();
    let step = chrono::Duration::seconds(365 * 24 * 3600 / count as i64);
    let eur = |cents| Money::from_minor(cents, Currency::EUR);
    let mut refunds = Vec::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(1_000) {
        let payments = chunk
            .iter()
            .map(|&i| {
                let created = start + step * i as i32;
                let id = format!("PP{i:08}");
                if i % 50 == 0 {
                    refunds.push(BookRecord {
                        kind: BookKind::Refund,
                        id: Source::PayPro.payment_id(&format!("PR{i:08}")),
                        source: Source::PayPro,
                        source_id: format!("PR{i:08}"),
                        payment_id: Some(Source::PayPro.payment_id(&id)),
                        state: "refunded".to_owned(),
                        amount: eur(500),
                        fee: None,
                        fee_vat: None,
                        created_at: created + chrono::Duration::days(3),
                        settled_at: None,
                        description: Some("Retour".to_owned()),
                        reason: None,
                        bank_account: None,
                    });
                }
                Payment {
                    id: Source::PayPro.payment_id(&id),
                    source: Source::PayPro,
                    source_id: id,
                    status: PaymentStatus::Paid,
                    provider_status: "paid".to_owned(),
                    amount: eur(1_000 + (i % 5_000) as i64),
                    refunded_amount: None,
                    created_at: created,
                    paid_at: Some(created + chrono::Duration::minutes(3)),
                    payer_name: Some(format!("Klant {i}")),
                    description: Some(format!("Bestelling {i}")),
                    method: Some("ideal".to_owned()),
                    processor: "paypro".to_owned(),
                    processor_reference: None,
                    payment_link_id: None,
                    customer_id: None,
                    fail_reason: None,
                    charged_back_amount: None,
                }
            })
            .collect();
        store
            .commit(Commit {
                source: "paypro".to_owned(),
                observed_at: chrono::Utc::now(),
                payments,
                rejected: Vec::new(),
                resolved: Vec::new(),
                groups: Vec::new(),
                unknown_words: Vec::new(),
                checkpoint: None,
            })
            .await
            .expect("the payments commit");
    }
    store
        .commit_records(RecordCommit {
            source: "paypro".to_owned(),
            observed_at: chrono::Utc::now(),
            kind: BookKind::Refund,
            records: refunds
                .into_iter()
                .map(|record| KeptRecord {
                    record,
                    first_seen_at: chrono::Utc::now(),
                    returned_at: None,
                })
                .collect(),
            rejected: Vec::new(),
            walk: BookWalk::default(),
        })
        .await
        .expect("the refunds commit");
}
