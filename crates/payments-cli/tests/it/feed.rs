//! What `sync` and `status` say when PayPro's change feed fails or a payment it names cannot be
//! read: put off is exit 3 (never 0), a failure that persists is exit 1 naming it, and both
//! heal by themselves.

use std::time::Duration;

use payments_sandbox::{Api, EndpointFault, FaultAnswer, Sandbox, SandboxConfig};

use crate::{payments_for, run, text, unlimited};

/// 400 PayPro payments eight hours apart, the newest made now.
async fn old_paypro() -> Sandbox {
    Sandbox::start(SandboxConfig {
        paypro_spacing: Duration::from_secs(8 * 3600),
        anchor: chrono::Utc::now(),
        ..unlimited(5, 0, 400)
    })
    .await
    .unwrap()
}

/// `payments sync --source paypro` into `db`.
fn sync_paypro(sandbox: &Sandbox, db: &std::path::Path) -> std::process::Command {
    let mut command = payments_for(sandbox, db);
    command.args(["sync", "--source", "paypro"]);
    command
}

fn forbidden(path: &str) -> EndpointFault {
    EndpointFault {
        api: Api::PayPro,
        path: path.into(),
        answer: FaultAnswer::Status {
            status: 403,
            retry_after: None,
            body: None,
        },
        times: None,
        latency: Duration::ZERO,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_feed_is_exit_3_then_exit_1_naming_it_and_both_heal_when_it_reads() {
    let sandbox = old_paypro().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let sync = || sync_paypro(&sandbox, &db);
    run(&mut sync(), 0);
    sandbox.add_endpoint_fault(forbidden("/events"));
    for _ in 1..payments_sync::PERSISTENT_RUNS {
        let output = run(&mut sync(), 3);
        let stdout = text(&output.stdout);
        assert!(stdout.contains("the change feed was not read"), "{stdout}");
        let status = run(payments_for(&sandbox, &db).arg("status"), 3);
        let report = text(&status.stdout);
        assert!(report.contains("put off: 1"), "{report}");
        assert!(
            report.contains("the change feed could not be read"),
            "{report}"
        );
    }
    let output = run(&mut sync(), 1);
    assert!(
        text(&output.stderr).contains("change feed"),
        "{}",
        text(&output.stderr)
    );
    assert!(
        text(&output.stdout).contains("paypro: incremental run"),
        "the walk was done and said: {}",
        text(&output.stdout)
    );
    let status = run(payments_for(&sandbox, &db).arg("status"), 1);
    let report = text(&status.stdout);
    assert!(report.contains("unhealthy: the change feed"), "{report}");
    let json = run(payments_for(&sandbox, &db).args(["status", "--json"]), 1);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let paypro = json["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "paypro")
        .unwrap();
    assert_eq!(paypro["health"], "failed", "{paypro}");
    assert_eq!(paypro["unhealthy"].as_array().unwrap().len(), 1, "{paypro}");

    sandbox.clear_endpoint_faults();
    run(&mut sync(), 0);
    let status = run(payments_for(&sandbox, &db).arg("status"), 0);
    let report = text(&status.stdout);
    assert!(!report.contains("put off"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_the_feed_names_that_cannot_be_read_is_exit_3_and_listed_by_status() {
    let sandbox = old_paypro().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let sync = || sync_paypro(&sandbox, &db);
    run(&mut sync(), 0);
    let old = sandbox
        .old_paid_paypro_payment(Duration::from_secs(30 * 86_400))
        .unwrap();
    sandbox.refund_paypro_payment(&old.id, 100).unwrap();
    sandbox.add_endpoint_fault(EndpointFault {
        api: Api::PayPro,
        path: format!("/payments/{}", old.id),
        answer: FaultAnswer::Status {
            status: 503,
            retry_after: Some(Duration::from_secs(60)),
            body: None,
        },
        times: None,
        latency: Duration::ZERO,
    });
    let output = run(&mut sync(), 3);
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("1 payments the change feed named are still to read"),
        "{stdout}"
    );
    let status = run(payments_for(&sandbox, &db).arg("status"), 3);
    let report = text(&status.stdout);
    assert!(
        report.contains(&format!("payment {} is to be read again", old.id)),
        "{report}"
    );
    assert!(report.contains("503"), "the reason: {report}");

    sandbox.clear_endpoint_faults();
    run(&mut sync(), 0);
    run(payments_for(&sandbox, &db).arg("status"), 0);
}
