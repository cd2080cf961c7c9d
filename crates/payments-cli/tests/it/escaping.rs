//! Provider text with terminal control sequences in it (a status word, an id, a payer name, a
//! description, the body of a 5xx) is shown escaped wherever `payments` prints it: the log lines
//! on stderr, the reports on stdout, the error that ends a run.

use std::process::Output;
use std::time::Duration;

use payments_sandbox::{Api, EndpointFault, FaultAnswer, Sandbox};

use crate::{payments_for, run, text, unlimited};

/// ESC alone, a CSI (clear screen), an OSC (set the window title) ended by BEL, a carriage
/// return that would let the rest overwrite the line, and a right-to-left override.
const HOSTILE: &str = "\u{1b}[2J\u{1b}]0;owned\u{7}\r\u{202e}\u{1b}";
/// `HOSTILE` as `payments` shows it.
const SHOWN: &str = "\\x1b[2J\\x1b]0;owned\\x07\\r\\u{202e}\\x1b";

/// Checks that `bytes`, printed by `what`, hold nothing a terminal could obey (a byte below
/// 0x20 but the newline, DEL, a C1 control) and, unless `json`, nothing that reorders the text
/// (the bidirectional controls). JSON output is for programs: it escapes the control characters
/// (`\u001b`) but carries other text as it is.
fn assert_inert(what: &str, bytes: &[u8], json: bool) {
    let shown = text(bytes);
    for (at, byte) in bytes.iter().enumerate() {
        assert!(
            (*byte >= b' ' || *byte == b'\n') && *byte != 0x7f,
            "{what}: byte {byte:#04x} at {at}:\n{shown}"
        );
    }
    for c in shown.chars() {
        assert!(!matches!(c, '\u{80}'..='\u{9f}'), "{what}: {c:?}:\n{shown}");
        assert!(
            json || !matches!(
                c,
                '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            ),
            "{what}: {c:?}:\n{shown}"
        );
    }
}

/// Both streams of `output` (of `what`; `json`: its stdout is JSON).
fn assert_output_inert(what: &str, output: &Output, json: bool) {
    assert_inert(&format!("{what} (stdout)"), &output.stdout, json);
    assert_inert(&format!("{what} (stderr)"), &output.stderr, false);
}

/// A 503 from every PayPro endpoint, `times` times (`None`: always), at once again
/// (`Retry-After: 0`), with a body full of control sequences.
fn hostile_503(times: Option<u64>) -> EndpointFault {
    EndpointFault {
        api: Api::PayPro,
        path: "*".to_owned(),
        answer: FaultAnswer::Status {
            status: 503,
            retry_after: Some(Duration::ZERO),
            body: Some(format!("<html>down {HOSTILE} for maintenance</html>")),
        },
        times,
        latency: Duration::ZERO,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn control_sequences_in_provider_text_are_shown_escaped_by_sync_status_and_show() {
    let sandbox = Sandbox::start(unlimited(31, 4, 40)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");

    // PayPro: an unknown status word, a description and a customer's name, an id.
    let payments = sandbox.paypro_payments();
    let worded = &payments[0].id;
    sandbox.set_paypro_state(worded, &format!("in_{HOSTILE}review"), 0);
    let described = payments
        .iter()
        .find(|p| p.id != *worded && p.customer.is_some())
        .expect("a PayPro payment with a customer");
    sandbox.set_paypro_text(
        &described.id,
        Some(&format!("invoice {HOSTILE} 42")),
        Some(&format!("Jan {HOSTILE} Jansen")),
    );
    let odd_id = sandbox.insert_paypro_payment_with_id(&format!("PP{HOSTILE}9"));

    // MKP: a payment's unknown status word and payer's name, a link's description.
    let (link, paid) = sandbox
        .mkp_links()
        .into_iter()
        .find_map(|link| {
            let payments = sandbox.mkp_payments(&link.id);
            (payments.len() >= 2).then_some((link, payments))
        })
        .expect("an MKP link with two payments");
    sandbox.set_mkp_payment_status(&paid[0].id, &format!("on_{HOSTILE}hold"));
    sandbox.set_mkp_text(
        &link.id,
        Some(&format!("subscription {HOSTILE} 2024")),
        Some(&paid[1].id),
        Some(&format!("Piet {HOSTILE} Puk")),
    );

    // The first two PayPro requests fail with a hostile body: each retry is a WARN line.
    sandbox.add_endpoint_fault(hostile_503(Some(2)));

    // The default level (warn) shows the unknown words and the retries; debug shows more of
    // what was read, through the same fields.
    for (pass, log) in [
        ("warn", None),
        ("debug", Some("payments_sync=debug,payments_http=debug")),
    ] {
        let mut sync = payments_for(&sandbox, &db);
        sync.args(["sync", "--full"]);
        if let Some(log) = log {
            sync.env("RUST_LOG", log);
        }
        let output = sync.output().expect("the payments binary runs");
        assert!(
            matches!(output.status.code(), Some(0 | 3)),
            "{pass}: {}\n{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        assert_output_inert(&format!("sync ({pass})"), &output, false);
        if pass == "warn" {
            let stderr = text(&output.stderr);
            // The retries name the body, the unknown words are named: escaped.
            assert!(
                stderr.contains(&format!("down {SHOWN} for maintenance")),
                "{stderr}"
            );
            assert!(stderr.contains(&format!("in_{SHOWN}review")), "{stderr}");
            assert!(stderr.contains(&format!("on_{SHOWN}hold")), "{stderr}");
            // One event, one line: the carriage return and the rest are on the WARN line.
            for line in stderr.lines().filter(|l| l.contains(SHOWN)) {
                assert!(line.contains("WARN"), "{line}\n{stderr}");
            }
        }
        sandbox.add_endpoint_fault(hostile_503(Some(2)));
    }

    for args in [&["status"][..], &["status", "--json"]] {
        let output = payments_for(&sandbox, &db).args(args).output().unwrap();
        assert!(matches!(output.status.code(), Some(0 | 3)), "{args:?}");
        assert_output_inert(&format!("{args:?}"), &output, args.len() > 1);
        if args.len() == 1 {
            let status = text(&output.stdout);
            assert!(status.contains(&format!("in_{SHOWN}review")), "{status}");
        }
    }

    let mut shown = vec![
        (format!("paypro:{worded}"), format!("in_{SHOWN}review")),
        (
            format!("paypro:{}", described.id),
            format!("invoice {SHOWN} 42"),
        ),
        (format!("mkp:{}", paid[0].id), format!("on_{SHOWN}hold")),
        (format!("mkp:{}", paid[1].id), format!("Piet {SHOWN} Puk")),
        (
            format!("mkp:{}", paid[1].id),
            format!("subscription {SHOWN} 2024"),
        ),
    ];
    // A PayPro id with control characters may be refused or quarantined by the client; when the
    // ledger holds it, `show` finds it and shows it escaped.
    let held = run(
        payments_for(&sandbox, &db).args(["export", "--format", "ndjson"]),
        0,
    );
    if crate::parse_ndjson(&held.stdout)
        .iter()
        .any(|p| p.source_id == odd_id)
    {
        shown.push((format!("paypro:{odd_id}"), format!("PP{SHOWN}9")));
    } else {
        let status = text(
            &payments_for(&sandbox, &db)
                .arg("status")
                .output()
                .unwrap()
                .stdout,
        );
        assert!(
            status.contains(&format!("PP{SHOWN}9")),
            "quarantined: {status}"
        );
    }
    for (id, expected) in &shown {
        for json in [false, true] {
            let mut show = payments_for(&sandbox, &db);
            show.args(["show", id]);
            if json {
                show.arg("--json");
            }
            let output = run(&mut show, 0);
            assert_output_inert(&format!("show {id:?} (json: {json})"), &output, json);
            if !json {
                let stdout = text(&output.stdout);
                assert!(stdout.contains(expected.as_str()), "{expected}:\n{stdout}");
            }
        }
    }
    // An id given on the command line, not in the ledger: the error says it, escaped.
    let missing = run(payments_for(&sandbox, &db).args(["show", HOSTILE]), 1);
    assert_output_inert("show (missing)", &missing, false);
    assert!(
        text(&missing.stderr).contains(SHOWN),
        "{}",
        text(&missing.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_that_fails_on_a_hostile_5xx_body_prints_it_escaped() {
    let sandbox = Sandbox::start(unlimited(32, 0, 20)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    sandbox.add_endpoint_fault(hostile_503(None));

    let output = run(
        payments_for(&sandbox, &db).args(["sync", "--source", "paypro"]),
        1,
    );
    assert_output_inert("sync (failing)", &output, false);
    let stderr = text(&output.stderr);
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("an error line: {stderr}"));
    assert!(
        error.contains(&format!("down {SHOWN} for maintenance")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains(&format!("down {SHOWN}"))),
        "each retry is logged, escaped: {stderr}"
    );

    // `status` names the failed run and its error, escaped.
    for args in [&["status"][..], &["status", "--json"]] {
        let output = run(payments_for(&sandbox, &db).args(args), 1);
        assert_output_inert(&format!("{args:?} (failed)"), &output, args.len() > 1);
    }
    let status = text(&run(payments_for(&sandbox, &db).arg("status"), 1).stdout);
    assert!(status.contains(&format!("down {SHOWN}")), "{status}");
}
