//! The CLI under the local faults a cron job meets: signals, unwritable or vanishing ledgers,
//! unreadable checkpoints, absurd arguments, and monitoring through `status`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use payments_sandbox::{Api, Faults, Sandbox, SandboxConfig};

use crate::{payments, payments_for, run, text, unlimited};

/// A PayPro-only sandbox slow enough (`latency` per answer) that a test can act mid-run.
async fn slow_paypro(payments: usize, latency_ms: u64) -> Sandbox {
    Sandbox::start(SandboxConfig {
        faults: Faults {
            latency: Duration::from_millis(latency_ms),
            ..Faults::default()
        },
        ..unlimited(21, 0, payments)
    })
    .await
    .unwrap()
}

/// Starts `payments sync --source paypro` in the background.
fn spawn_sync(sandbox: &Sandbox, db: &Path) -> Child {
    payments_for(sandbox, db)
        .args(["sync", "--source", "paypro"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the sandbox has answered `n` PayPro pages.
async fn pages_answered(sandbox: &Sandbox, n: usize) {
    while sandbox.count_status(Api::PayPro, 200) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_at_a_page_records_the_run_and_the_next_run_resumes() {
    let sandbox = slow_paypro(3000, 40).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let child = spawn_sync(&sandbox, &db);
    pages_answered(&sandbox, 4).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    assert_eq!(stderr.matches("SIGTERM").count(), 1, "said once: {stderr}");

    // Stopped, not failed: healthy while the next run resumes.
    let status = text(&run(payments_for(&sandbox, &db).arg("status"), 0).stdout);
    assert!(status.contains("interrupted (SIGTERM)"), "{status}");
    assert!(status.contains("unfinished"), "{status}");
    let resumed = text(
        &run(
            payments_for(&sandbox, &db).args(["sync", "--source", "paypro"]),
            0,
        )
        .stdout,
    );
    assert!(resumed.contains("(resumed)"), "{resumed}");
    let export = run(
        payments_for(&sandbox, &db).args(["export", "--format", "ndjson"]),
        0,
    );
    assert_eq!(crate::parse_ndjson(&export.stdout).len(), 3000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_deleted_during_the_run_fails_the_run_instead_of_reporting_success() {
    let sandbox = slow_paypro(3000, 40).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let child = spawn_sync(&sandbox, &db);
    pages_answered(&sandbox, 3).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("deleted or replaced"), "{stderr}");
    assert!(!text(&output.stdout).contains("3000 new"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_checkpoint_is_reset_and_the_run_reads_everything() {
    let sandbox = Sandbox::start(unlimited(22, 4, 250)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    run(payments_for(&sandbox, &db).arg("sync"), 0);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE checkpoints SET checkpoint = '{\"cursor\": 12' WHERE source_name = 'paypro'",
            [],
        )
        .unwrap();
    let status = text(&run(payments_for(&sandbox, &db).arg("status"), 0).stdout);
    assert!(status.contains("does not read back"), "{status}");
    // Before, every run failed here, `--full` included.
    let output = run(payments_for(&sandbox, &db).arg("sync"), 0);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("paypro: full run"), "{stdout}");
    assert!(text(&output.stderr).contains("does not read back"));
    run(payments_for(&sandbox, &db).arg("sync"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_ledger_is_refused_before_any_request() {
    let sandbox = Sandbox::start(unlimited(23, 2, 120)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    run(payments_for(&sandbox, &db).arg("sync"), 0);
    let Some(_guard) = ReadOnly::make(&db) else {
        eprintln!(
            "skipped: this user can write any file (root without chattr), so no file is read-only"
        );
        return;
    };
    let before = sandbox.requests().len();
    let output = run(payments_for(&sandbox, &db).args(["sync", "--full"]), 2);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("cannot be written"), "{stderr}");
    assert_eq!(sandbox.requests().len(), before, "no request was made");
}

/// Makes a file read-only for this user (chmod, and `chattr +i` for root); undone on drop.
struct ReadOnly<'a>(&'a Path);

impl<'a> ReadOnly<'a> {
    fn make(path: &'a Path) -> Option<ReadOnly<'a>> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).ok()?;
        let _ = Command::new("chattr")
            .arg("+i")
            .arg(path)
            .stderr(Stdio::null())
            .status();
        let guard = ReadOnly(path);
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .is_err()
            .then_some(guard)
    }
}

impl Drop for ReadOnly<'_> {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = Command::new("chattr")
            .arg("-i")
            .arg(self.0)
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::set_permissions(self.0, std::fs::Permissions::from_mode(0o644));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn absurd_arguments_are_usage_errors_not_panics() {
    for args in [
        ["sync", "--lookback", "4294967295"],
        ["sync", "--lookback", "0"],
        ["sync", "--max-duration", "5 minutes"],
    ] {
        let output = run(payments().args(args), 2);
        let stderr = text(&output.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains("error:"), "{stderr}");
    }
    let sandbox = Sandbox::start(unlimited(24, 2, 120)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    run(
        payments_for(&sandbox, &db).args(["sync", "--lookback", "3650"]),
        0,
    );
    run(
        payments_for(&sandbox, &db).args(["sync", "--lookback", "3650"]),
        0,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_tells_monitoring_when_the_ledger_is_stale() {
    let sandbox = Sandbox::start(unlimited(25, 2, 120)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    run(payments_for(&sandbox, &db).arg("sync"), 0);
    run(
        payments_for(&sandbox, &db).args(["status", "--max-age", "1h"]),
        0,
    );
    let stale = text(
        &run(
            payments_for(&sandbox, &db).args(["status", "--max-age", "0"]),
            1,
        )
        .stdout,
    );
    assert!(stale.contains("no complete run within 0 s"), "{stale}");
}

#[tokio::test(flavor = "multi_thread")]
async fn quarantine_stays_visible_to_monitoring_until_the_records_map_again() {
    let sandbox = Sandbox::start(SandboxConfig {
        faults: Faults {
            bad_record_every: Some(50),
            ..Faults::default()
        },
        ..unlimited(26, 0, 300)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    run(
        payments_for(&sandbox, &db).args(["sync", "--source", "paypro"]),
        3,
    );
    // `status` keeps saying so, whatever later runs read, until the records are resolved.
    let status = text(&run(payments_for(&sandbox, &db).arg("status"), 3).stdout);
    assert!(status.contains("quarantined records: 6"), "{status}");

    // The provider corrects the records: the next run that reads them resolves the quarantine.
    sandbox.set_faults(Faults::default());
    run(
        payments_for(&sandbox, &db).args(["sync", "--source", "paypro", "--full"]),
        0,
    );
    let status = text(&run(payments_for(&sandbox, &db).arg("status"), 0).stdout);
    assert!(status.contains("quarantined records: 0"), "{status}");
    let export = run(
        payments_for(&sandbox, &db).args(["export", "--format", "ndjson"]),
        0,
    );
    assert_eq!(crate::parse_ndjson(&export.stdout).len(), 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn in_a_log_each_retry_is_one_line_and_each_summary_line_says_when() {
    let sandbox = Sandbox::start(SandboxConfig {
        faults: Faults {
            server_error_rate: 0.3,
            ..Faults::default()
        },
        ..unlimited(27, 0, 600)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let output = run(
        payments_for(&sandbox, &db).args(["sync", "--source", "paypro"]),
        0,
    );
    let failures = sandbox.count_status(Api::PayPro, 500)
        + sandbox.count_status(Api::PayPro, 502)
        + sandbox.count_status(Api::PayPro, 503);
    assert!(failures > 0, "the fault fired");
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr.lines().filter(|l| l.contains("retrying")).count(),
        failures,
        "{stderr}"
    );
    let stdout = text(&output.stdout);
    let line = stdout.lines().next().unwrap();
    let (stamp, rest) = line.split_once(' ').unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
        "{line}"
    );
    assert!(rest.starts_with("paypro: full run"), "{line}");
}
