//! `payments quarantine` lists the records set aside with their raw text, and `payments show`
//! shows one of them by its id.

use chrono::{DateTime, Utc};
use payments_sandbox::{Faults, Sandbox, SandboxConfig};
use serde_json::Value;

use crate::{payments, payments_for, run, text, unlimited};

/// A right-to-left override and an ESC: JSON carries the first as it is and writes the second
/// as `\u001b`, so the raw record holds a character that reorders a line.
const HOSTILE: &str = "invoice \u{202e}\u{1b}[2J 42";

/// A sandbox whose every 10th PayPro payment has an amount that is not whole cents.
fn spoiling() -> SandboxConfig {
    SandboxConfig {
        faults: Faults {
            bad_record_every: Some(10),
            ..Faults::default()
        },
        ..unlimited(41, 0, 40)
    }
}

/// Fails on a control character (but the newline) or a bidirectional control in `output`.
fn assert_inert(what: &str, output: &str) {
    for c in output.chars() {
        let obeyed = c.is_control() && c != '\n';
        let reorders = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        assert!(!obeyed && !reorders, "{what}: {c:?} in\n{output}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn quarantine_lists_each_record_with_its_reason_first_seen_and_raw_text_escaped() {
    let sandbox = Sandbox::start(spoiling()).await.unwrap();
    let spoiled = sandbox.spoiled().paypro_payments;
    assert_eq!(spoiled.len(), 4);
    sandbox.set_paypro_text(&spoiled[0], Some(HOSTILE), None);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let before = Utc::now();
    run(
        payments_for(&sandbox, &db).args(["sync", "--source", "paypro"]),
        3,
    );
    let after = Utc::now();

    let output = run(
        payments_for(&sandbox, &db).args(["quarantine", "--tz", "UTC"]),
        0,
    );
    let stdout = text(&output.stdout);
    assert_inert("quarantine", &stdout);
    assert!(
        stdout.starts_with(&format!("database: {}\n", db.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("\nmkp: 0 quarantined records\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\npaypro: 4 quarantined records (oldest first)\n"),
        "{stdout}"
    );
    for id in &spoiled {
        let at = stdout
            .find(&format!("\n  paypro:{id}\n    first seen  "))
            .unwrap_or_else(|| panic!("{id} is listed: {stdout}"));
        let record: Vec<&str> = stdout[at + 1..].lines().take(4).collect();
        assert!(record[1].ends_with('Z'), "in UTC: {record:?}");
        assert!(record[2].starts_with("    reason      "), "{record:?}");
        assert!(
            record[2].contains("12.951"),
            "the reason names the amount: {record:?}"
        );
        assert!(record[3].starts_with("    raw         {"), "{record:?}");
        assert!(record[3].contains(r#""amount":"12.951""#), "{record:?}");
    }
    // The raw text as it is but for what a terminal would obey or reorder.
    assert!(
        stdout.contains(r#""description":"invoice \u{202e}\u001b[2J 42""#),
        "{stdout}"
    );
    assert_eq!(output.stderr, b"");

    // --source picks one.
    let mkp = text(
        &run(
            payments_for(&sandbox, &db).args(["quarantine", "--source", "mkp"]),
            0,
        )
        .stdout,
    );
    assert!(mkp.ends_with("\nmkp: 0 quarantined records\n"), "{mkp}");
    assert!(!mkp.contains("paypro"), "{mkp}");

    // --json: the records as the provider sent them, for scripts.
    let output = run(
        payments_for(&sandbox, &db).args(["quarantine", "--json", "--source", "paypro"]),
        0,
    );
    assert_eq!(output.stdout.iter().filter(|b| **b == b'\n').count(), 1);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["database"], db.display().to_string());
    let records = report["records"].as_array().unwrap();
    assert_eq!(records.len(), 4);
    let mut ids: Vec<&str> = records
        .iter()
        .map(|r| r["source_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected: Vec<&str> = spoiled.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected);
    for record in records {
        assert_eq!(record["source"], "paypro");
        assert!(record["reason"].as_str().unwrap().contains("12.951"));
        let raw: Value = serde_json::from_str(record["raw"].as_str().unwrap()).unwrap();
        assert_eq!(raw["id"], record["source_id"]);
        assert_eq!(raw["amount"], "12.951");
        let seen: DateTime<Utc> = record["first_seen_at"].as_str().unwrap().parse().unwrap();
        assert!(
            before <= seen && seen <= after,
            "{seen} not in {before}..{after}"
        );
    }
    let hostile = records
        .iter()
        .find(|r| r["source_id"] == spoiled[0].as_str())
        .unwrap();
    let raw: Value = serde_json::from_str(hostile["raw"].as_str().unwrap()).unwrap();
    assert_eq!(raw["description"], HOSTILE, "JSON keeps the data as it is");
}

#[tokio::test(flavor = "multi_thread")]
async fn show_on_a_quarantined_id_shows_the_record_and_a_missing_id_exits_1() {
    let sandbox = Sandbox::start(spoiling()).await.unwrap();
    let spoiled = sandbox.spoiled().paypro_payments;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    run(
        payments_for(&sandbox, &db).args(["sync", "--source", "paypro"]),
        3,
    );

    let id = &spoiled[1];
    for asked in [format!("paypro:{id}"), id.clone()] {
        let output = run(payments_for(&sandbox, &db).args(["show", &asked]), 0);
        let stdout = text(&output.stdout);
        assert!(
            stdout.starts_with(&format!(
                "paypro:{id} is quarantined: the ledger holds no payment of it, because its record could not be read"
            )),
            "{asked}: {stdout}"
        );
        assert!(
            stdout.contains(&format!("\n  paypro:{id}\n    first seen  ")),
            "{stdout}"
        );
        assert!(stdout.contains("\n    reason      "), "{stdout}");
        assert!(stdout.contains(r#""amount":"12.951""#), "{stdout}");
        assert!(!stdout.contains("version"), "no versions: {stdout}");
    }
    let output = run(
        payments_for(&sandbox, &db).args(["show", &format!("paypro:{id}"), "--json"]),
        0,
    );
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["payment"], Value::Null);
    assert_eq!(shown["versions"], serde_json::json!([]));
    assert_eq!(shown["quarantined"][0]["source"], "paypro");
    assert_eq!(shown["quarantined"][0]["source_id"], id.as_str());
    assert!(
        shown["quarantined"][0]["raw"]
            .as_str()
            .unwrap()
            .contains("12.951")
    );

    // A payment that was read is shown as before, with an empty quarantine.
    let good = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| !spoiled.contains(&p.id))
        .unwrap();
    let output = run(
        payments_for(&sandbox, &db).args(["show", &format!("paypro:{}", good.id), "--json"]),
        0,
    );
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["payment"]["source_id"], good.id.as_str());
    assert_eq!(shown["quarantined"], serde_json::json!([]));
    let output = run(
        payments_for(&sandbox, &db).args(["show", &format!("paypro:{}", good.id)]),
        0,
    );
    assert!(
        !text(&output.stdout).contains("quarantined"),
        "{}",
        text(&output.stdout)
    );

    // Neither a payment nor a quarantined record: 1, not the usage code 2.
    let missing = run(
        payments_for(&sandbox, &db).args(["show", "paypro:PPnope"]),
        1,
    );
    let stderr = text(&missing.stderr);
    assert!(
        stderr.starts_with("error: the ledger holds no payment `paypro:PPnope` and no quarantined record of that id"),
        "{stderr}"
    );
    let missing = run(payments_for(&sandbox, &db).args(["show", "nope"]), 1);
    assert!(text(&missing.stderr).contains("no payment `nope`"));
}

#[tokio::test(flavor = "multi_thread")]
async fn show_lists_a_later_quarantined_record_after_the_versions_of_its_payment() {
    let sandbox = Sandbox::start(unlimited(42, 0, 40)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    run(
        payments_for(&sandbox, &db).args(["sync", "--source", "paypro"]),
        0,
    );
    // The provider now serves every 10th payment with an amount that cannot be read.
    sandbox.set_faults(spoiling().faults);
    let spoiled = sandbox.spoiled().paypro_payments;
    run(
        payments_for(&sandbox, &db).args(["sync", "--source", "paypro", "--full"]),
        3,
    );
    let id = &spoiled[0];
    let output = run(
        payments_for(&sandbox, &db).args(["show", &format!("paypro:{id}")]),
        0,
    );
    let stdout = text(&output.stdout);
    assert!(stdout.starts_with(&format!("paypro:{id}\n")), "{stdout}");
    let versions = stdout.find("\n1 version").expect("its versions");
    let quarantined = stdout
        .find("\n1 quarantined record of this id: a later record could not be read, and the payment keeps the last version read correctly\n")
        .expect("its quarantined record");
    assert!(versions < quarantined, "{stdout}");
    assert!(
        stdout[quarantined..].contains(r#""amount":"12.951""#),
        "{stdout}"
    );

    let output = run(
        payments_for(&sandbox, &db).args(["show", &format!("paypro:{id}"), "--json"]),
        0,
    );
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["payment"]["source_id"], id.as_str());
    assert_eq!(shown["quarantined"].as_array().unwrap().len(), 1);
}

#[test]
fn quarantine_needs_a_ledger_and_show_and_quarantine_document_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("none.db");
    let output = run(payments().args(["quarantine", "--db"]).arg(&db), 2);
    assert!(
        text(&output.stderr).contains("there is no database at"),
        "{}",
        text(&output.stderr)
    );
    assert!(!db.exists(), "no ledger is created");
    for (command, line) in [
        (
            "show",
            "Exit codes: 0 shown; 1 the ledger holds neither a payment nor a quarantined record of that",
        ),
        (
            "quarantine",
            "Exit codes: 0 listed (also when there are none); 1 the ledger could not be read; 2 a usage",
        ),
    ] {
        let help = text(
            &run(
                payments().args([command, "--help"]).env("COLUMNS", "100"),
                0,
            )
            .stdout,
        );
        let joined = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(joined.contains(&line), "{command} --help:\n{help}");
    }
}
