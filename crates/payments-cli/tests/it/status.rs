//! `payments status --json`: the shape README.md documents, for monitoring scripts.

use payments_sandbox::{Faults, Sandbox, SandboxConfig};
use serde_json::Value;

use crate::{payments, payments_for, run, text, unlimited};

fn status_json(command: &mut std::process::Command, expected: i32) -> Value {
    let output = run(command.args(["status", "--json"]), expected);
    assert_eq!(output.stdout.iter().filter(|b| **b == b'\n').count(), 1);
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

#[tokio::test(flavor = "multi_thread")]
async fn status_json_has_the_documented_shape_and_the_exit_code_monitoring_reads() {
    let sandbox = Sandbox::start(SandboxConfig {
        faults: Faults {
            bad_record_every: Some(50),
            ..Faults::default()
        },
        ..unlimited(27, 4, 300)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    run(
        payments_for(&sandbox, &db).args(["sync", "--source", "paypro"]),
        3,
    );

    let status = status_json(&mut payments_for(&sandbox, &db), 3);
    assert_eq!(status["exit_code"], 3);
    assert_eq!(status["database"], db.display().to_string());
    let sources = status["sources"].as_array().unwrap();
    let names: Vec<&str> = sources
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mkp", "paypro"]);
    let (mkp, paypro) = (&sources[0], &sources[1]);

    // A source that never synced is not an error.
    assert_eq!(mkp["health"], "ok");
    assert_eq!(mkp["last_run"], Value::Null);
    assert_eq!(mkp["checkpoint"], Value::Null);
    assert_eq!(mkp["payments"]["total"], 0);

    assert_eq!(paypro["health"], "quarantined");
    assert_eq!(paypro["quarantined"]["total"], 6);
    assert_eq!(
        paypro["quarantined"]["records"].as_array().unwrap().len(),
        6
    );
    assert!(paypro["quarantined"]["records"][0]["reason"].is_string());
    let by_status = paypro["payments"]["by_status"].as_object().unwrap();
    let counted: u64 = by_status.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(paypro["payments"]["total"], counted);
    assert_eq!(counted, 294);
    let last_run = &paypro["last_run"];
    assert_eq!(last_run["outcome"], "quarantined");
    assert_eq!(last_run["kind"], "full");
    assert_eq!(last_run["new"], 294);
    assert_eq!(last_run["quarantined"], 6);
    assert_eq!(last_run["error"], Value::Null);
    assert_eq!(paypro["checkpoint"]["unfinished_run"], Value::Null);
    assert!(paypro["checkpoint"]["last_completed_at"].is_string());
    assert_eq!(paypro["stale"], false);
    assert!(paypro["unknown_status_words"].is_array());

    // --quarantine-limit limits the list, not the count.
    let limited = run(
        payments_for(&sandbox, &db).args(["status", "--json", "--quarantine-limit", "2"]),
        3,
    );
    let limited: Value = serde_json::from_slice(&limited.stdout).unwrap();
    assert_eq!(limited["sources"][1]["quarantined"]["total"], 6);
    assert_eq!(
        limited["sources"][1]["quarantined"]["records"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A failed run: health failed, the error kept, exit 1.
    let failed = run(
        payments_for(&sandbox, &db)
            .env("PAYPRO_API_KEY", "pp_wrong")
            .args(["sync", "--source", "paypro"]),
        2,
    );
    assert!(!text(&failed.stderr).contains("pp_wrong"));
    let status = status_json(&mut payments_for(&sandbox, &db), 1);
    assert_eq!(status["exit_code"], 1);
    assert_eq!(status["sources"][1]["health"], "failed");
    assert_eq!(status["sources"][1]["last_run"]["outcome"], "failed");
    assert!(status["sources"][1]["last_run"]["error"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn status_lists_a_few_unknown_words_and_forgets_those_the_status_table_learned() {
    let sandbox = Sandbox::start(unlimited(28, 0, 100)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    run(
        payments_for(&sandbox, &db).args(["sync", "--source", "paypro"]),
        0,
    );
    {
        // Words a hostile provider made up, and one an older release did not know.
        let ledger = rusqlite::Connection::open(&db).unwrap();
        for n in 0..12 {
            ledger
                .execute(
                    "INSERT INTO unknown_words VALUES ('paypro', ?, '2026-01-01T00:00:00.000000Z')",
                    [format!("made_up_{n:02}")],
                )
                .unwrap();
        }
        ledger
            .execute(
                "INSERT INTO unknown_words VALUES ('paypro', 'paid', '2026-01-01T00:00:00.000000Z')",
                [],
            )
            .unwrap();
    }
    let status = text(&run(payments_for(&sandbox, &db).arg("status"), 0).stdout);
    let line = status
        .lines()
        .find(|l| l.contains("status words the status table does not know"))
        .unwrap();
    assert!(
        line.contains("made_up_00") && line.contains("more (--json lists them all)"),
        "{line}"
    );
    assert!(!line.contains("made_up_11"), "{line}");
    assert!(
        !line.contains("paid ("),
        "a word the table knows is not listed: {line}"
    );
    let json = status_json(&mut payments_for(&sandbox, &db), 0);
    let words: Vec<&str> = json["sources"][1]["unknown_status_words"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["word"].as_str().unwrap())
        .collect();
    assert!(words.contains(&"made_up_11"));
    assert!(!words.contains(&"paid"));
}

/// `payments sync --source paypro --max-duration 1s`, stopped by its budget (exit 1): what it
/// said on stderr.
fn stopped_sync(sandbox: &Sandbox, db: &std::path::Path) -> String {
    let output = run(
        payments_for(sandbox, db).args(["sync", "--source", "paypro", "--max-duration", "1s"]),
        1,
    );
    text(&output.stderr)
}

/// A run stopped by its time budget is unfinished, not failed: `status` is healthy (exit 0)
/// while the next run resumes; runs that keep being stopped before they get anywhere, or no
/// complete run within --max-age, make it unhealthy (exit 1).
#[tokio::test(flavor = "multi_thread")]
async fn a_run_stopped_by_its_budget_is_unfinished_and_only_runs_that_stall_are_unhealthy() {
    let sandbox = Sandbox::start(SandboxConfig {
        faults: Faults {
            latency: std::time::Duration::from_millis(150),
            ..Faults::default()
        },
        ..unlimited(28, 0, 2_000)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let said = stopped_sync(&sandbox, &db);
    assert!(
        said.contains("the next run resumes") && said.contains("--max-duration 0"),
        "{said}"
    );
    let status = status_json(&mut payments_for(&sandbox, &db), 0);
    let paypro = &status["sources"][1];
    assert_eq!(paypro["health"], "ok", "{paypro}");
    assert_eq!(paypro["last_run"]["outcome"], "unfinished");
    assert_eq!(paypro["stalled"], false);
    let human = text(&run(payments_for(&sandbox, &db).arg("status"), 0).stdout);
    assert!(
        human.contains("unfinished") && human.contains("stopped:"),
        "{human}"
    );
    assert!(
        human.contains("oldest verification: none yet"),
        "a verification not made is not 'never … at or after it': {human}"
    );
    assert_eq!(
        human.matches("--max-duration 0").count(),
        1,
        "said once: {human}"
    );
    // Times a person reads are on Amsterdam's clocks unless --tz says otherwise; JSON's are UTC.
    assert!(
        human.contains("+01:00") || human.contains("+02:00"),
        "{human}"
    );
    let utc = text(
        &run(
            payments_for(&sandbox, &db).args(["status", "--tz", "UTC"]),
            0,
        )
        .stdout,
    );
    assert!(!utc.contains("+01:00") && !utc.contains("+02:00"), "{utc}");
    assert!(
        paypro["last_run"]["finished_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // No run has completed: past --max-age that is unhealthy.
    run(
        payments_for(&sandbox, &db).args(["status", "--max-age", "1s"]),
        1,
    );

    // Three runs in a row stopped before a page could come back (each page takes longer
    // than the budget): unhealthy, and said why.
    let slower = Sandbox::start(SandboxConfig {
        faults: Faults {
            latency: std::time::Duration::from_millis(2_500),
            ..Faults::default()
        },
        ..unlimited(28, 0, 200)
    })
    .await
    .unwrap();
    let stalled_db = dir.path().join("stalled.db");
    for _ in 0..2 {
        stopped_sync(&slower, &stalled_db);
        status_json(&mut payments_for(&slower, &stalled_db), 0);
    }
    stopped_sync(&slower, &stalled_db);
    let status = status_json(&mut payments_for(&slower, &stalled_db), 1);
    assert_eq!(status["sources"][1]["stalled"], true, "{status}");
    let human = text(&run(payments_for(&slower, &stalled_db).arg("status"), 1).stdout);
    assert!(human.contains("the last 3 runs were stopped"), "{human}");
}

/// A flag beats a variable: `--db FILE` with PAYMENTS_POSTGRES set reads the file.
#[tokio::test(flavor = "multi_thread")]
async fn an_explicit_db_wins_over_payments_postgres() {
    let sandbox = Sandbox::start(unlimited(30, 0, 40)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    run(
        payments_for(&sandbox, &db).args(["sync", "--source", "paypro"]),
        0,
    );
    let unreachable = "postgresql://nobody@127.0.0.1:9/none";
    for args in [
        vec!["status", "--json", "--db"],
        vec!["export", "--format", "ndjson", "--db"],
    ] {
        let output = run(
            payments()
                .args(&args)
                .arg(&db)
                .env("PAYMENTS_POSTGRES", unreachable)
                .env_remove("PAYMENTS_DB"),
            0,
        );
        assert!(
            !output.stdout.is_empty(),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }
    // Without --db, the variable is the choice (and it cannot be reached here).
    let fleet = run(
        payments()
            .args(["status"])
            .current_dir(dir.path())
            .env("PAYMENTS_POSTGRES", unreachable),
        2,
    );
    assert!(
        text(&fleet.stderr).contains("PAYMENTS_POSTGRES"),
        "{}",
        text(&fleet.stderr)
    );
}
