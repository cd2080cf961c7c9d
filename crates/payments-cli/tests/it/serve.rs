//! `payments serve` as a service manager runs it: webhooks taken before a crash are read at the
//! next start, and /healthz and /metrics tell the truth.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use payments_sandbox::{Api, EndpointFault, FaultAnswer, Sandbox};
use payments_serve::WebhookSecret;

use crate::{payments_for, run, unlimited};

const SECRET: &str = "whsec_cli_test";

/// `payments serve` on a free port, its stdout lines sent to a channel.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    url: String,
}

impl Served {
    fn start(mut command: std::process::Command, more: &[&str]) -> Served {
        let mut child = command
            .args(["serve", "--every", "1h", "--listen", "127.0.0.1:0"])
            .args(more)
            .env("PAYPRO_WEBHOOK_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stdout.take().unwrap());
        let mut served = Served {
            child,
            lines,
            url: String::new(),
        };
        let serving = served.line_with("webhooks at http://");
        let address = serving
            .split("webhooks at http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap()
            .to_owned();
        served.url = format!("http://{address}");
        served
    }

    /// Waits for a line containing each of `texts`, in whichever order they come (the sources
    /// of one run end in no set order).
    fn lines_with_each(&mut self, texts: &[&str]) {
        let mut missing: Vec<&str> = texts.to_vec();
        while !missing.is_empty() {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("`payments serve` printed no line with {missing:?}"));
            missing.retain(|text| !line.contains(text));
        }
    }

    /// Waits for the next line of its stdout that contains `text`.
    fn line_with(&mut self, text: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("`payments serve` printed no line with {text:?}"));
            if line.contains(text) {
                return line;
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_of(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if send.send(line).is_err() {
                return;
            }
        }
    });
    receive
}

/// Posts the sandbox's event `event_id` to PayPro's webhook route, signed now.
fn post_event(runtime: &tokio::runtime::Runtime, url: &str, sandbox: &Sandbox, event: &str) -> u16 {
    let body = serde_json::to_vec(
        &sandbox
            .paypro_events()
            .into_iter()
            .find(|e| e.id == event)
            .unwrap(),
    )
    .unwrap();
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature =
        WebhookSecret::new(SECRET)
            .unwrap()
            .sign_hex(&[timestamp.as_bytes(), b".", &body]);
    runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{url}/webhooks/paypro"))
            .header("PayPro-Timestamp", timestamp)
            .header("PayPro-Signature", signature)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

fn get(runtime: &tokio::runtime::Runtime, url: &str) -> (u16, String) {
    runtime.block_on(async {
        let response = reqwest::get(url).await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    })
}

#[test]
fn a_webhook_answered_before_a_kill_9_is_read_at_the_next_start_without_a_poll() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sandbox = runtime
        .block_on(Sandbox::start(unlimited(5, 1, 30)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let mut served = Served::start(payments_for(&sandbox, &db), &["--source", "paypro"]);
    served.line_with("paypro: full run");

    // The read the webhook asks for cannot finish before the kill.
    sandbox.add_endpoint_fault(EndpointFault {
        api: Api::PayPro,
        path: "/payments/*".into(),
        answer: FaultAnswer::Normal,
        times: None,
        latency: Duration::from_secs(5),
    });
    let id = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.state == "open")
        .unwrap()
        .id;
    let event = sandbox.pay_paypro_payment(&id).unwrap();
    assert_eq!(post_event(&runtime, &served.url, &sandbox, &event), 200);
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    sandbox.clear_endpoint_faults();
    let before = sandbox.requests().len();

    let mut served = Served::start(payments_for(&sandbox, &db), &["--source", "paypro"]);
    served.line_with("paypro: 1 webhooks: 1 read");
    drop(served);

    let exported = run(
        payments_for(&sandbox, &db).args(["export", "--format", "ndjson", "--status", "paid"]),
        0,
    );
    let text = String::from_utf8(exported.stdout).unwrap();
    assert!(text.contains(&id), "the paid payment is in the ledger");
    let after: Vec<String> = sandbox.requests()[before..]
        .iter()
        .map(|r| r.path_and_query.clone())
        .collect();
    assert_eq!(
        after,
        vec![format!("/paypro/payments/{id}")],
        "the inbox's read by id alone: no poll"
    );
}

#[test]
fn healthz_is_503_after_a_failed_run_and_metrics_parse_as_prometheus_text() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sandbox = runtime
        .block_on(Sandbox::start(unlimited(6, 2, 20)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let mut command = payments_for(&sandbox, &db);
    command.env("PAYPRO_API_KEY", "pp_wrong_key");
    let mut served = Served::start(command, &[]);
    served.lines_with_each(&["error: paypro", "mkp: full run"]);

    let (status, body) = get(&runtime, &format!("{}/healthz", served.url));
    assert_eq!(status, 503, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["exit_code"], 1, "{body}");

    let (status, text) = get(&runtime, &format!("{}/metrics", served.url));
    assert_eq!(status, 200);
    payments_testkit::prometheus::parse(&text).unwrap_or_else(|why| panic!("{why}\n{text}"));
    assert!(
        text.contains("payments_runs_total{source=\"paypro\",outcome=\"failed\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("payments_runs_total{source=\"mkp\",outcome=\"ok\"} 1"),
        "{text}"
    );
}
