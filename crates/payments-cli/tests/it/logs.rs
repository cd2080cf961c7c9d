//! What `payments` says while it works, and what it says only once.

use payments_sandbox::Sandbox;

use crate::{payments_for, run, text, unlimited};

const UNKNOWN_WORD: &str = "a status word the status table does not know";

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_status_word_is_reported_once_per_ledger_and_listed_by_status() {
    let sandbox = Sandbox::start(unlimited(5, 10, 400)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let unknown: Vec<String> = payments_testkit::data_set(&sandbox)
        .into_iter()
        .filter(|p| p.status.as_str() == "unknown")
        .map(|p| p.provider_status)
        .collect();
    assert!(!unknown.is_empty(), "the sandbox sends unknown words");

    let first = text(&run(payments_for(&sandbox, &db).arg("sync"), 0).stderr);
    assert!(first.contains(UNKNOWN_WORD), "{first}");
    for word in &unknown {
        assert!(first.contains(word.as_str()), "{word} is named: {first}");
    }
    // Later runs, incremental or full, stay quiet about words the ledger has seen.
    for args in [&["sync"][..], &["sync", "--full"]] {
        let later = text(&run(payments_for(&sandbox, &db).args(args), 0).stderr);
        assert!(!later.contains(UNKNOWN_WORD), "{args:?}: {later}");
    }
    // A new word is reported, once.
    let paid = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.state == "paid")
        .unwrap();
    sandbox.set_paypro_state(&paid.id, "in_review", 0);
    let next = text(&run(payments_for(&sandbox, &db).args(["sync", "--full"]), 0).stderr);
    assert!(next.contains("in_review"), "{next}");
    assert_eq!(next.matches(UNKNOWN_WORD).count(), 1, "{next}");

    let status = text(&run(payments_for(&sandbox, &db).arg("status"), 0).stdout);
    assert!(status.contains("in_review (since "), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_feed_that_lost_events_is_said_and_made_up_for() {
    let sandbox = Sandbox::start(payments_sandbox::SandboxConfig {
        paypro_spacing: std::time::Duration::from_secs(8 * 3600),
        ..unlimited(6, 0, 600)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let sync = || {
        payments_for(&sandbox, &db)
            .args(["sync", "--reverify-budget", "1"])
            .output()
    };
    assert_eq!(sync().unwrap().status.code(), Some(0));
    let old = sandbox
        .old_paid_paypro_payment(std::time::Duration::from_secs(150 * 86_400))
        .unwrap();
    sandbox.refund_paypro_payment(&old.id, old.amount);
    for _ in 0..25 {
        sandbox.insert_paypro_payment();
    }
    sandbox.set_content_faults(payments_sandbox::ContentFaults {
        paypro_events_kept: Some(10),
        ..payments_sandbox::ContentFaults::default()
    });
    let output = sync().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("the change feed no longer reaches"),
        "{stderr}"
    );
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("the whole listing was read again"),
        "{stdout}"
    );
    let shown = text(&run(payments_for(&sandbox, &db).args(["show", &old.id]), 0).stdout);
    assert!(shown.contains("paid → refunded"), "{shown}");
    let status = text(&run(payments_for(&sandbox, &db).arg("status"), 0).stdout);
    assert!(
        status.contains("the whole listing was read again"),
        "{status}"
    );
}
