//! Exports a bookkeeper can open safely: no formula runs, Dutch Excel reads the columns, a day
//! is a day in Amsterdam, and `--output` behaves with stdout, devices and directories.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use chrono_tz::Europe::Amsterdam;
use payments_model::{Currency, Money, Payment, PaymentStatus, Source, parse_timestamp};
use payments_sqlite::SqliteStore;
use payments_sync::{Checkpoint, Commit, RunKind, Store};

use crate::{parse_ndjson, payments, payments_for, run, text, unlimited};
use payments_sandbox::Sandbox;

/// A payment whose text fields a member of the public typed as formulas.
fn hostile(id: &str, created_at: &str) -> Payment {
    Payment {
        id: Source::Mkp.payment_id(id),
        source: Source::Mkp,
        source_id: id.into(),
        status: PaymentStatus::Paid,
        provider_status: "paid".into(),
        amount: Money::parse("-12.95".trim_start_matches('-'), Currency::EUR).unwrap(),
        refunded_amount: None,
        created_at: parse_timestamp(created_at).unwrap(),
        paid_at: None,
        payer_name: Some("=HYPERLINK(\"http://x\",\"y\")".into()),
        description: Some("+31 6 1234".into()),
        method: Some("@SUM(A1)".into()),
        processor: "-1+1".into(),
        processor_reference: Some("\tcmd".into()),
        payment_link_id: Some("\rplk".into()),
        customer_id: None,
        fail_reason: Some("=1+1".into()),
        charged_back_amount: None,
    }
}

async fn ledger_with(dir: &std::path::Path, payments: Vec<Payment>) -> std::path::PathBuf {
    let db = dir.join("ledger.db");
    let store = Arc::new(SqliteStore::open(&db).unwrap());
    store
        .commit(Commit {
            source: "mkp".into(),
            observed_at: Utc::now(),
            payments,
            rejected: Vec::new(),
            resolved: Vec::new(),
            groups: Vec::new(),
            unknown_words: Vec::new(),
            checkpoint: Some(Checkpoint {
                lookback_secs: 86_400,
                last_completed_at: Some(Utc::now()),
                ..Checkpoint::started(RunKind::Full, Utc::now())
            }),
        })
        .await
        .unwrap();
    db
}

#[tokio::test(flavor = "multi_thread")]
async fn no_csv_text_cell_starts_a_formula_and_dutch_excel_gets_its_dialect() {
    let dir = tempfile::tempdir().unwrap();
    let db = ledger_with(
        dir.path(),
        vec![hostile("plp_1", "2026-10-01T10:00:00+02:00")],
    )
    .await;
    let csv = run(payments().args(["export", "--db"]).arg(&db), 0).stdout;
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    let header = reader.headers().unwrap().clone();
    let row = reader.records().next().unwrap().unwrap();
    for (field, cell) in header.iter().zip(row.iter()) {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "{field} = {cell:?} would run as a formula"
        );
    }
    let cell = |name: &str| row[header.iter().position(|f| f == name).unwrap()].to_owned();
    assert_eq!(cell("payer_name"), "'=HYPERLINK(\"http://x\",\"y\")");
    assert_eq!(cell("amount"), "12.95", "amounts are never touched");
    // NDJSON keeps the data as it is.
    let ndjson = run(
        payments()
            .args(["export", "--format", "ndjson", "--db"])
            .arg(&db),
        0,
    );
    assert_eq!(
        parse_ndjson(&ndjson.stdout)[0].payer_name.as_deref(),
        Some("=HYPERLINK(\"http://x\",\"y\")")
    );

    let excel = run(
        payments()
            .args(["export", "--dialect", "excel-nl", "--db"])
            .arg(&db),
        0,
    )
    .stdout;
    assert!(
        excel.starts_with("\u{feff}id;source;".as_bytes()),
        "BOM, then `;`"
    );
    let excel = String::from_utf8(excel).unwrap();
    assert!(excel.contains("\r\n"), "CRLF");
    assert!(excel.contains(";12,95;EUR;"), "decimal comma: {excel}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_day_is_a_day_in_amsterdam_in_summer_and_in_winter() {
    let dir = tempfile::tempdir().unwrap();
    // Around midnight Amsterdam time, on both sides of 1 October (summer time, +02:00) and of
    // 1 February (winter time, +01:00).
    let times = [
        ("p1", "2026-09-30T23:59:00+02:00"),
        ("p2", "2026-10-01T00:24:00+02:00"),
        ("p3", "2026-10-31T23:50:00+01:00"),
        ("p4", "2026-11-01T00:05:00+01:00"),
        ("p5", "2027-01-31T23:30:00+01:00"),
        ("p6", "2027-02-01T00:10:00+01:00"),
        ("p7", "2027-02-28T23:59:59+01:00"),
        ("p8", "2027-03-01T00:00:00+01:00"),
    ];
    let db = ledger_with(
        dir.path(),
        times.iter().map(|(id, at)| hostile(id, at)).collect(),
    )
    .await;
    let ids = |args: &[&str]| -> Vec<String> {
        let output = run(
            payments()
                .args(["export", "--format", "ndjson", "--db"])
                .arg(&db)
                .args(args),
            0,
        );
        parse_ndjson(&output.stdout)
            .into_iter()
            .map(|p| p.source_id)
            .collect()
    };
    assert_eq!(
        ids(&["--since", "2026-10-01", "--until", "2026-10-31"]),
        ["p2", "p3"]
    );
    assert_eq!(
        ids(&["--since", "2027-02-01", "--until", "2027-02-28"]),
        ["p6", "p7"]
    );
    // In UTC the same days leave out 1 October 00:24 and take in 1 November 00:05, Amsterdam
    // time: what the export did before `--tz`.
    assert_eq!(
        ids(&[
            "--tz",
            "UTC",
            "--since",
            "2026-10-01",
            "--until",
            "2026-10-31"
        ]),
        ["p3", "p4"]
    );
    assert_eq!(
        Amsterdam
            .with_ymd_and_hms(2026, 10, 1, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
            .to_rfc3339(),
        "2026-09-30T22:00:00+00:00"
    );
    let empty = run(
        payments()
            .args([
                "export",
                "--since",
                "2026-10-31",
                "--until",
                "2026-10-01",
                "--db",
            ])
            .arg(&db),
        2,
    );
    assert!(
        text(&empty.stderr).contains("is not before --until"),
        "{}",
        text(&empty.stderr)
    );
    run(
        payments()
            .args(["export", "--tz", "Mars/Olympus", "--db"])
            .arg(&db),
        2,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn output_dash_is_stdout_devices_are_written_through_and_directories_refused() {
    let sandbox = Sandbox::start(unlimited(31, 2, 50)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    run(payments_for(&sandbox, &db).arg("sync"), 0);
    let dash = run(
        payments_for(&sandbox, &db).args(["export", "--output", "-"]),
        0,
    );
    assert!(text(&dash.stdout).starts_with("id,source,"));
    assert!(!dir.path().join("-").exists());

    run(
        payments_for(&sandbox, &db).args(["export", "--output", "/dev/null"]),
        0,
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device(),
        "/dev/null is still a device"
    );

    let refused = run(
        payments_for(&sandbox, &db)
            .args(["export", "--output"])
            .arg(dir.path()),
        2,
    );
    assert!(text(&refused.stderr).contains("is a directory"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let link = dir.path().join("link.csv");
    let target = dir.path().join("target.csv");
    std::fs::write(&target, "old").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    run(
        payments_for(&sandbox, &db)
            .args(["export", "--output"])
            .arg(&link),
        0,
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&target)
            .unwrap()
            .starts_with("id,source,")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_export_end_quietly_when_the_reader_goes_away() {
    let sandbox = Sandbox::start(unlimited(32, 3, 400)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    run(payments_for(&sandbox, &db).arg("sync"), 0);
    for command in ["status", "export"] {
        // The reader is gone before the command writes a byte (`payments status | head -0`).
        let mut child = payments_for(&sandbox, &db)
            .arg(command)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = text(&output.stderr);
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
        assert_eq!(output.status.code(), Some(0), "{command}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_control_characters_from_provider_data_instead_of_obeying_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = ledger_with(dir.path(), Vec::new()).await;
    let store = SqliteStore::open(&db).unwrap();
    let mut commit = store.source_state("mkp").await.unwrap();
    let checkpoint = commit.checkpoint.take().unwrap();
    store
        .commit(Commit {
            source: "mkp".into(),
            observed_at: Utc::now(),
            payments: Vec::new(),
            rejected: vec![payments_model::Rejected {
                source_id: Some("plp_\u{1b}]0;owned\u{7}".into()),
                reason: "record `plp_x`: field `amount`: \u{1b}[2J\u{1b}[31mcleared".into(),
                raw: "{}".into(),
            }],
            resolved: Vec::new(),
            groups: Vec::new(),
            unknown_words: Vec::new(),
            checkpoint: Some(checkpoint),
        })
        .await
        .unwrap();
    let status = run(payments().args(["status", "--db"]).arg(&db), 3);
    let stdout = text(&status.stdout);
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
        "{stdout:?}"
    );
    assert!(stdout.contains("\\x1b[2J\\x1b[31mcleared"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_show_and_export_refuse_a_database_that_is_not_a_ledger_and_leave_it_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("crm.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        .unwrap();
    let before = std::fs::read(&other).unwrap();
    for command in [&["status"][..], &["export"], &["show", "mkp:plp_1"]] {
        let output = run(payments().args(command).arg("--db").arg(&other), 2);
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("is not a payments ledger"),
            "{command:?}: {stderr}"
        );
    }
    assert_eq!(std::fs::read(&other).unwrap(), before, "not a byte changed");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["crm.db"], "no journal, no lock, no partial file");

    // A real ledger is read without being written either.
    let db = ledger_with(
        dir.path(),
        vec![hostile("plp_1", "2026-10-01T10:00:00+02:00")],
    )
    .await;
    let ledger_before = std::fs::read(&db).unwrap();
    run(payments().args(["status", "--db"]).arg(&db), 0);
    run(payments().args(["export", "--db"]).arg(&db), 0);
    let shown = run(payments().args(["show", "plp_1", "--db"]).arg(&db), 0);
    assert!(
        text(&shown.stdout).starts_with("mkp:plp_1\n"),
        "{}",
        text(&shown.stdout)
    );
    assert_eq!(std::fs::read(&db).unwrap(), ledger_before);
}

/// The export contract, byte for byte: the sandbox's data set (fixed seed, fixed anchor date)
/// synced and exported in every format and dialect gives exactly the committed files in
/// `tests/golden/`. A reshaping of the engine, the stores or the CLI that changes one byte of an
/// export fails here. `UPDATE_GOLDEN=1` rewrites the files, for a change of the contract that is
/// meant (and then said in the changelog).
#[tokio::test(flavor = "multi_thread")]
async fn exports_of_the_sandbox_data_set_are_byte_for_byte_the_committed_ones() {
    let sandbox = Sandbox::start(unlimited(7, 3, 120)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    run(payments_for(&sandbox, &db).arg("sync"), 0);
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for (file, args) in [
        ("sandbox.csv", &["--format", "csv"][..]),
        (
            "sandbox-excel-nl.csv",
            &["--format", "csv", "--dialect", "excel-nl"][..],
        ),
        ("sandbox.ndjson", &["--format", "ndjson"][..]),
        (
            "sandbox-paypro-paid.ndjson",
            &[
                "--format", "ndjson", "--source", "paypro", "--status", "paid",
            ][..],
        ),
    ] {
        let out = run(payments_for(&sandbox, &db).arg("export").args(args), 0);
        let path = golden.join(file);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&golden).unwrap();
            std::fs::write(&path, &out.stdout).unwrap();
            continue;
        }
        let expected = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with UPDATE_GOLDEN=1 to write it",
                path.display()
            )
        });
        assert!(
            out.stdout == expected,
            "`payments export {}` differs from {}",
            args.join(" "),
            path.display()
        );
    }
}
