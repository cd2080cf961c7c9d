//! Every version of a payment is kept: `payments show` tells its story, and
//! `payments export --as-of` reproduces an earlier export byte for byte.

use payments_sandbox::Sandbox;
use serde_json::Value;

use crate::{payments_for, run, text, unlimited};

#[tokio::test(flavor = "multi_thread")]
async fn an_earlier_export_is_reproduced_byte_for_byte_and_show_tells_each_change() {
    let sandbox = Sandbox::start(unlimited(11, 6, 250)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let export =
        |extra: &[&str]| run(payments_for(&sandbox, &db).arg("export").args(extra), 0).stdout;
    run(payments_for(&sandbox, &db).arg("sync"), 0);
    let csv_then = export(&[]);
    let excel_then = export(&["--dialect", "excel-nl"]);
    let ndjson_then = export(&["--format", "ndjson"]);
    let closed = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);

    // After the month closed: an amount corrected (12.95 → 999.99 in the issue), a refund that
    // keeps the status, a chargeback, and a new payment.
    let payments = sandbox.paypro_payments();
    let mut paid = payments
        .iter()
        .filter(|p| p.state == "paid" && p.refunded_amount == 0 && p.amount > 500);
    let (corrected, refunded, charged) = (
        paid.next().unwrap(),
        paid.next().unwrap(),
        paid.next().unwrap(),
    );
    sandbox.set_paypro_amount(&corrected.id, 99_999);
    sandbox.set_paypro_state(&refunded.id, "paid", 100);
    sandbox.set_paypro_state(&charged.id, "chargeback", 0);
    sandbox.insert_paypro_payment();
    run(payments_for(&sandbox, &db).args(["sync", "--full"]), 0);
    sandbox.set_paypro_state(&refunded.id, "paid", 300);
    run(payments_for(&sandbox, &db).args(["sync", "--full"]), 0);

    assert_ne!(export(&[]), csv_then, "the ledger moved on");
    assert_eq!(export(&["--as-of", &closed]), csv_then);
    assert_eq!(
        export(&["--as-of", &closed, "--dialect", "excel-nl"]),
        excel_then
    );
    assert_eq!(
        export(&["--as-of", &closed, "--format", "ndjson"]),
        ndjson_then
    );
    // Before the first sync the ledger knew nothing: the header alone.
    let before = text(&export(&["--as-of", "2000-01-01"]));
    assert_eq!(before.lines().count(), 1, "{before}");

    // `show` by unified id and by the provider's id; every change is listed.
    let show = |id: &str, extra: &[&str]| {
        text(
            &run(
                payments_for(&sandbox, &db).args(["show", id]).args(extra),
                0,
            )
            .stdout,
        )
    };
    let story = show(&format!("paypro:{}", corrected.id), &[]);
    let amount_then = format!("{}.{:02}", corrected.amount / 100, corrected.amount % 100);
    assert!(
        story.contains("2 versions") && story.contains(&format!("{amount_then} → 999.99")),
        "{story}"
    );
    let story = show(&refunded.id, &[]);
    assert!(story.contains("3 versions"), "{story}");
    assert!(
        story.contains("0.00 → 1.00") && story.contains("1.00 → 3.00"),
        "{story}"
    );
    assert!(story.contains("partially_refunded"), "{story}");
    let story = show(&charged.id, &["--tz", "UTC"]);
    assert!(story.contains("paid → charged_back"), "{story}");
    assert!(story.contains("times in UTC"), "{story}");

    // The JSON form: each version with its times and whole record; the first one's time, given
    // to --as-of, shows that version.
    let json: Value = serde_json::from_str(&show(&charged.id, &["--json"])).unwrap();
    let versions = json["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["record"]["status"], "paid");
    assert_eq!(versions[1]["record"]["status"], "charged_back");
    assert_eq!(versions[0]["superseded_at"], versions[1]["observed_at"]);
    assert_eq!(versions[1]["superseded_at"], Value::Null);
    assert_eq!(json["payment"], versions[1]["record"]);
    let first_seen = versions[0]["observed_at"].as_str().unwrap();
    let then: Vec<Value> = text(&export(&["--as-of", first_seen, "--format", "ndjson"]))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let charged_then = then
        .iter()
        .find(|p| p["source_id"] == charged.id.as_str())
        .unwrap();
    assert_eq!(charged_then["status"], "paid");

    let missing = run(payments_for(&sandbox, &db).args(["show", "paypro:nope"]), 1);
    assert!(
        text(&missing.stderr).contains("no payment"),
        "{}",
        text(&missing.stderr)
    );
}
