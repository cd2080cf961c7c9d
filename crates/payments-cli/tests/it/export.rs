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

/// `command` run by `sh` with the umask set first, as a shell user's `umask 022; payments …`.
fn with_umask(umask: &str, command: &std::process::Command) -> std::process::Command {
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(format!("umask {umask} && exec \"$@\""))
        .arg("sh")
        .arg(command.get_program())
        .args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => sh.env(name, value),
            None => sh.env_remove(name),
        };
    }
    sh
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_output_file_gets_the_umask_mode_and_a_replaced_one_keeps_its_mode_and_owner() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let db = ledger_with(
        dir.path(),
        vec![hostile("plp_1", "2026-10-01T10:00:00+02:00")],
    )
    .await;
    let export_to = |path: &std::path::Path| {
        let mut command = payments();
        command
            .args(["export", "--db"])
            .arg(&db)
            .arg("--output")
            .arg(path);
        command
    };

    // `umask 022; payments export -o x.csv` gives 0644, as `> x.csv` would; 027 gives 0640.
    for (umask, expected) in [("022", 0o644), ("027", 0o640), ("077", 0o600)] {
        let path = dir.path().join(format!("new-{umask}.csv"));
        run(&mut with_umask(umask, &export_to(&path)), 0);
        assert_eq!(mode(&path), expected, "umask {umask}");
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("id,source,")
        );
    }

    // An existing 0640 file stays 0640 (a umask of 022 would make a new one 0644), with its
    // owner and group; when the tests run as root, it belongs to someone else (nobody).
    let existing = dir.path().join("books.csv");
    std::fs::write(&existing, "old export\n").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o640)).unwrap();
    let root = std::fs::metadata(&existing).unwrap().uid() == 0;
    if root {
        std::os::unix::fs::chown(&existing, Some(65534), Some(65534)).unwrap();
    }
    let before = std::fs::metadata(&existing).unwrap();
    let replaced = run(&mut with_umask("022", &export_to(&existing)), 0);
    let after = std::fs::metadata(&existing).unwrap();
    assert!(
        std::fs::read_to_string(&existing)
            .unwrap()
            .starts_with("id,source,"),
        "replaced"
    );
    assert_ne!(
        after.ino(),
        before.ino(),
        "replaced by a rename, not rewritten in place"
    );
    assert_eq!(mode(&existing), 0o640);
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    assert!(replaced.stderr.is_empty(), "{}", text(&replaced.stderr));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A payment with plain text fields, for the exact bytes of a dialect.
fn plain(id: &str, created_at: &str, paid_at: Option<&str>, amounts: [Option<&str>; 3]) -> Payment {
    let money = |text: Option<&str>| text.map(|t| Money::parse(t, Currency::EUR).unwrap());
    Payment {
        id: Source::PayPro.payment_id(id),
        source: Source::PayPro,
        source_id: id.into(),
        status: PaymentStatus::Paid,
        provider_status: "completed".into(),
        amount: money(amounts[0]).unwrap(),
        refunded_amount: money(amounts[1]),
        created_at: parse_timestamp(created_at).unwrap(),
        paid_at: paid_at.map(|t| parse_timestamp(t).unwrap()),
        payer_name: Some("Jan Jansen".into()),
        description: Some("Order #1".into()),
        method: Some("ideal".into()),
        processor: "paypro".into(),
        processor_reference: None,
        payment_link_id: None,
        customer_id: None,
        fail_reason: None,
        charged_back_amount: money(amounts[2]),
    }
}

/// The excel-nl export of [`dutch_ledger`], byte for byte: times on Amsterdam's clocks (summer
/// and winter time, whatever offset the provider wrote), amounts with a decimal comma.
const EXCEL_NL: &str = "\u{feff}id;source;source_id;status;provider_status;amount;currency;refunded_amount;created_at;paid_at;payer_name;description;method;processor;processor_reference;payment_link_id;customer_id;fail_reason;charged_back_amount\r\n\
paypro:PP1;paypro;PP1;paid;completed;1234,50;EUR;0,50;01-10-2026 00:24:00;01-10-2026 00:25:30;Jan Jansen;Order #1;ideal;paypro;;;;;12,95\r\n\
paypro:PP2;paypro;PP2;paid;completed;2408,06;EUR;;23-10-2026 10:14:10;;Jan Jansen;Order #1;ideal;paypro;;;;;\r\n\
paypro:PP3;paypro;PP3;paid;completed;0,99;EUR;;01-11-2026 01:52:34;03-11-2026 09:05:00;Jan Jansen;Order #1;ideal;paypro;;;;;\r\n";

async fn dutch_ledger(dir: &std::path::Path) -> std::path::PathBuf {
    ledger_with(
        dir,
        vec![
            // 30 September 22:24 UTC is 1 October 00:24 in Amsterdam (summer time).
            plain(
                "PP1",
                "2026-09-30T22:24:00Z",
                Some("2026-10-01T00:25:30+02:00"),
                [Some("1234.50"), Some("0.50"), Some("12.95")],
            ),
            plain(
                "PP2",
                "2026-10-23T10:14:10+02:00",
                None,
                [Some("2408.06"), None, None],
            ),
            // Winter time: +01:00.
            plain(
                "PP3",
                "2026-11-01T00:52:34Z",
                Some("2026-11-03T08:05:00Z"),
                [Some("0.99"), None, None],
            ),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn excel_nl_writes_times_as_dutch_excel_reads_them_on_the_clocks_of_tz() {
    let dir = tempfile::tempdir().unwrap();
    let db = dutch_ledger(dir.path()).await;
    let excel = |extra: &[&str]| {
        let out = run(
            payments()
                .args(["export", "--dialect", "excel-nl", "--db"])
                .arg(&db)
                .args(extra),
            0,
        );
        text(&out.stdout)
    };
    assert_eq!(excel(&[]), EXCEL_NL);
    // --tz says whose clocks: in UTC the same payments read as the provider's UTC times.
    let utc = excel(&["--tz", "UTC"]);
    assert!(
        utc.contains(";30-09-2026 22:24:00;30-09-2026 22:25:30;"),
        "{utc}"
    );
    // The standard dialect and NDJSON keep RFC 3339 with the provider's offset.
    let standard = text(&run(payments().args(["export", "--db"]).arg(&db), 0).stdout);
    assert!(
        standard.contains(",1234.50,EUR,0.50,2026-09-30T22:24:00Z,2026-10-01T00:25:30+02:00,"),
        "{standard}"
    );
    assert!(standard.contains(",12.95\n"), "{standard}");
}

/// Where LibreOffice is installed, it opens the excel-nl export as Dutch Excel does (`;`,
/// Dutch number and date conventions) and writes back what it read, in American conventions: a
/// cell read as text would come back unchanged, a date-time comes back as `mm/dd/yyyy` and an
/// amount with a decimal point. Gnumeric's `ssconvert` cannot be told to split on `;`.
#[tokio::test(flavor = "multi_thread")]
async fn a_real_spreadsheet_reads_excel_nl_times_as_date_times_and_amounts_as_numbers() {
    let Some(soffice) = ["soffice", "libreoffice"].into_iter().find(|program| {
        std::process::Command::new("which")
            .arg(program)
            .output()
            .is_ok_and(|out| out.status.success())
    }) else {
        eprintln!(
            "note: LibreOffice (soffice) is not installed, so no spreadsheet opens the excel-nl export here; its bytes are checked against the fixture by excel_nl_writes_times_as_dutch_excel_reads_them_on_the_clocks_of_tz"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dutch_ledger(dir.path()).await;
    let csv = dir.path().join("oktober.csv");
    run(
        payments()
            .args(["export", "--dialect", "excel-nl", "--db"])
            .arg(&db)
            .arg("--output")
            .arg(&csv),
        0,
    );
    let out = dir.path().join("read");
    let profile = dir.path().join("profile");
    // Import: `;`, `"`, UTF-8, from line 1, standard cells, Dutch (1043). Export: `,`, `"`,
    // UTF-8, American English (1033), values rather than cells as shown (a date-time whole, in
    // the locale's standard format).
    let converted = std::process::Command::new(soffice)
        .env("HOME", dir.path())
        .arg(format!(
            "-env:UserInstallation=file://{}",
            profile.display()
        ))
        .args([
            "--headless",
            "--infilter=CSV:59,34,76,1,,1043",
            "--convert-to",
            "csv:Text - txt - csv (StarCalc):44,34,76,1,,1033,false,true,false,false",
            "--outdir",
        ])
        .arg(&out)
        .arg(&csv)
        .output()
        .unwrap();
    let read = std::fs::read(out.join("oktober.csv")).unwrap_or_else(|e| {
        panic!(
            "{soffice} wrote nothing ({e}):\n{}{}",
            text(&converted.stdout),
            text(&converted.stderr)
        )
    });
    let mut reader = csv::Reader::from_reader(read.as_slice());
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let cell = |row: usize, name: &str| {
        rows[row][header.iter().position(|f| f == name).unwrap()].to_owned()
    };
    assert_eq!(rows.len(), 3, "{}", text(&read));
    // 1 October, not 10 January: the day comes first, as in Dutch.
    assert_eq!(cell(0, "created_at"), "10/01/2026 00:24:00");
    assert_eq!(cell(0, "paid_at"), "10/01/2026 00:25:30");
    assert_eq!(cell(1, "created_at"), "10/23/2026 10:14:10");
    assert_eq!(cell(2, "created_at"), "11/01/2026 01:52:34");
    assert_eq!(cell(0, "amount"), "1234.5");
    assert_eq!(cell(0, "refunded_amount"), "0.5");
    assert_eq!(cell(0, "charged_back_amount"), "12.95");
    assert_eq!(cell(1, "amount"), "2408.06");
    assert_eq!(cell(2, "amount"), "0.99");
    assert_eq!(cell(0, "payer_name"), "Jan Jansen", "text stays text");
}

#[tokio::test(flavor = "multi_thread")]
async fn excel_nl_with_ndjson_is_a_usage_error_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dutch_ledger(dir.path()).await;
    let refused = run(
        payments()
            .args([
                "export",
                "--dialect",
                "excel-nl",
                "--format",
                "ndjson",
                "--db",
            ])
            .arg(&db),
        2,
    );
    assert!(refused.stdout.is_empty(), "{}", text(&refused.stdout));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("--dialect excel-nl is a CSV dialect") && stderr.contains("--format csv"),
        "{stderr}"
    );
}

/// `export --help` names every field the export writes, in the order it writes them.
#[test]
fn export_help_lists_every_field_of_the_export() {
    let help = text(&run(payments().args(["export", "--help"]), 0).stdout);
    let joined = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let list = joined
        .split_once("Field names are the unified record's: ")
        .and_then(|(_, rest)| rest.split_once(". "))
        .map(|(list, _)| list.to_owned())
        .unwrap_or_else(|| panic!("no field list in:\n{help}"));
    let listed: Vec<&str> = list.split(", ").collect();
    assert_eq!(listed, payments_model::PaymentRecord::FIELDS, "{help}");
}

/// A ledger whose every payment was observed at `observed_at`.
async fn observed_at(
    dir: &std::path::Path,
    observed_at: &str,
    payments: Vec<Payment>,
) -> std::path::PathBuf {
    let db = dir.join("ledger.db");
    let at = observed_at.parse().unwrap();
    let store = Arc::new(SqliteStore::open(&db).unwrap());
    store
        .commit(Commit {
            source: "paypro".into(),
            observed_at: at,
            payments,
            rejected: Vec::new(),
            resolved: Vec::new(),
            groups: Vec::new(),
            unknown_words: Vec::new(),
            checkpoint: Some(Checkpoint {
                lookback_secs: 86_400,
                last_completed_at: Some(at),
                ..Checkpoint::started(RunKind::Full, at)
            }),
        })
        .await
        .unwrap();
    db
}

#[tokio::test(flavor = "multi_thread")]
async fn as_of_without_an_offset_is_a_time_in_tz_and_before_any_observation_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // Observed at 08:37:30 in Amsterdam (winter time, 07:37:30 UTC).
    let db = observed_at(
        dir.path(),
        "2026-12-02T07:37:30Z",
        vec![plain(
            "PP1",
            "2026-12-01T12:00:00Z",
            None,
            [Some("10.00"), None, None],
        )],
    )
    .await;
    let export = |args: &[&str]| {
        run(
            payments()
                .args(["export", "--format", "ndjson", "--db"])
                .arg(&db)
                .args(args),
            0,
        )
    };
    let ids = |args: &[&str]| -> Vec<String> {
        parse_ndjson(&export(args).stdout)
            .into_iter()
            .map(|p| p.source_id)
            .collect()
    };
    assert_eq!(ids(&["--as-of", "2026-12-02T08:37:40"]), ["PP1"]);
    assert_eq!(ids(&["--as-of", "2026-12-02 08:38"]), ["PP1"]);
    // 08:37:12 in UTC is after the observation; in Amsterdam it is before.
    assert_eq!(
        ids(&["--as-of", "2026-12-02T08:37:12", "--tz", "UTC"]),
        ["PP1"]
    );
    assert_eq!(
        ids(&["--as-of", "2026-12-02T07:37:12Z"]),
        Vec::<String>::new()
    );

    // Before any observation: stdout keeps its format (a header alone, in CSV), and stderr
    // says why it holds no payment.
    let before = run(
        payments()
            .args(["export", "--as-of", "2026-12-02T08:37:12", "--db"])
            .arg(&db),
        0,
    );
    assert_eq!(
        text(&before.stdout),
        format!("{}\n", payments_model::PaymentRecord::FIELDS.join(","))
    );
    let note = text(&before.stderr);
    assert!(
        note.contains(
            "as of 2026-12-02T08:37:12+01:00 (Europe/Amsterdam) the ledger had observed no payment"
        ) && note.contains("its first payment was observed later"),
        "{note}"
    );
    // A filter that leaves nothing out of a ledger that knew payments is no such case.
    let filtered = export(&["--as-of", "2026-12-03", "--status", "refunded"]);
    assert!(
        filtered.stdout.is_empty() && filtered.stderr.is_empty(),
        "{}",
        text(&filtered.stderr)
    );

    // A time the clocks show twice, or skip, needs its offset.
    for (time, words) in [
        ("2026-10-25T02:30:00", "happens twice in Europe/Amsterdam"),
        ("2026-03-29T02:30:00", "does not happen in Europe/Amsterdam"),
    ] {
        let refused = run(
            payments()
                .args(["export", "--as-of", time, "--db"])
                .arg(&db),
            2,
        );
        assert!(
            text(&refused.stderr).contains(words),
            "{}",
            text(&refused.stderr)
        );
    }
    let twice = run(
        payments()
            .args(["export", "--as-of", "2026-10-25T02:30:00", "--db"])
            .arg(&db),
        2,
    );
    assert!(
        text(&twice.stderr).contains("2026-10-25T02:30:00+02:00 or 2026-10-25T02:30:00+01:00"),
        "{}",
        text(&twice.stderr)
    );
}

/// The completion scripts offer the words `--source` and `--status` take, not file names; nor
/// file names for a date or a time zone.
#[test]
fn completions_offer_sources_and_statuses_not_file_names() {
    let bash = text(&run(payments().args(["completions", "bash"]), 0).stdout);
    let export = bash
        .split("payments__subcmd__export)")
        .nth(1)
        .and_then(|rest| rest.split("\n            ;;").next())
        .expect("the export section of the bash script");
    let completes = |option: &str| {
        export
            .split(&format!("{option})"))
            .nth(1)
            .and_then(|rest| rest.split(";;").next())
            .unwrap_or_else(|| panic!("no {option} in:\n{export}"))
            .to_owned()
    };
    assert!(
        completes("--source").contains("compgen -W \"mkp paypro\""),
        "{export}"
    );
    assert!(
        completes("--status").contains(&format!(
            "compgen -W \"{}\"",
            PaymentStatus::WORDS.join(" ")
        )),
        "{export}"
    );
    for option in [
        "--source", "--status", "--since", "--until", "--as-of", "--tz",
    ] {
        assert!(
            !completes(option).contains("compgen -f"),
            "{option}: {export}"
        );
    }
    assert!(
        completes("--output").contains("compgen -f"),
        "a file: {export}"
    );

    let zsh = text(&run(payments().args(["completions", "zsh"]), 0).stdout);
    assert!(zsh.contains(":SOURCE:(mkp paypro)'"), "zsh");
    let fish = text(&run(payments().args(["completions", "fish"]), 0).stdout);
    let source = fish
        .lines()
        .find(|l| l.contains("using_subcommand export\" -l source"))
        .expect("fish completes export --source");
    assert!(
        source.contains("-r -f -a \"mkp") && source.contains("paypro"),
        "{source}"
    );
}
