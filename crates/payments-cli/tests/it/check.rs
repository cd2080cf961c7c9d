//! `payments check`: one request per configured source proves its key, without a ledger.

use std::path::Path;
use std::process::{Command, Output};

use payments_sandbox::{Api, LoggedRequest, Sandbox, SandboxConfig};

use crate::{payments, run, text};

/// `payments check` in `dir` (where a stray ledger would be created), pointed at `sandbox`
/// with the keys given (`None`: the variable is not set).
fn check(
    sandbox: &Sandbox,
    dir: &Path,
    mkp_key: Option<&str>,
    paypro_key: Option<&str>,
) -> Command {
    let mut command = payments();
    command
        .current_dir(dir)
        .arg("check")
        .env("MKP_BASE_URL", sandbox.mkp_base_url())
        .env("PAYPRO_BASE_URL", sandbox.paypro_base_url());
    if let Some(key) = mkp_key {
        command.env("MKP_API_KEY", key);
    }
    if let Some(key) = paypro_key {
        command.env("PAYPRO_API_KEY", key);
    }
    command
}

/// The requests the sandbox received for `api`.
fn requests(sandbox: &Sandbox, api: Api) -> Vec<LoggedRequest> {
    sandbox
        .requests()
        .into_iter()
        .filter(|request| request.api == api)
        .collect()
}

/// Fails when any of `keys` is in the command's output, or when the check left a file behind.
fn assert_no_key_and_no_ledger(output: &Output, keys: &[&str], dir: &Path) {
    let printed = format!("{}{}", text(&output.stdout), text(&output.stderr));
    for key in keys {
        assert!(
            !printed.contains(key),
            "the key {key} is printed:\n{printed}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(left.is_empty(), "check needs no ledger, but left {left:?}");
}

fn small() -> SandboxConfig {
    SandboxConfig {
        seed: 22,
        mkp_links: 3,
        paypro_payments: 5,
        ..SandboxConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn good_keys_pass_with_one_request_each_and_say_the_base_url_and_rate_limit() {
    let sandbox = Sandbox::start(small()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = sandbox.config();
    let output = run(
        &mut check(
            &sandbox,
            dir.path(),
            Some(&config.mkp_key),
            Some(&config.paypro_key),
        ),
        0,
    );
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "mkp: ok, the key was accepted at {}; rate limit: 60 requests per window, 59 left (MKP documents 60 requests per 60 seconds)",
                sandbox.mkp_base_url()
            ),
            format!(
                "paypro: ok, the key was accepted at {}; rate limit: none reported (PayPro documents none)",
                sandbox.paypro_base_url()
            ),
        ],
        "stderr: {}",
        text(&output.stderr)
    );
    assert_eq!(text(&output.stderr), "");
    let mkp = requests(&sandbox, Api::Mkp);
    assert_eq!(mkp.len(), 1, "{mkp:?}");
    assert_eq!(mkp[0].status, 200);
    assert!(
        mkp[0].path_and_query.starts_with("/mkp/v1/payment-links"),
        "{mkp:?}"
    );
    let paypro = requests(&sandbox, Api::PayPro);
    assert_eq!(paypro.len(), 1, "{paypro:?}");
    assert_eq!(paypro[0].status, 200);
    assert!(
        paypro[0].path_and_query.starts_with("/paypro/payments"),
        "{paypro:?}"
    );
    assert_no_key_and_no_ledger(&output, &[&config.mkp_key, &config.paypro_key], dir.path());

    // -q: nothing on success.
    let quiet = run(
        check(
            &sandbox,
            dir.path(),
            Some(&config.mkp_key),
            Some(&config.paypro_key),
        )
        .arg("-q"),
        0,
    );
    assert_eq!((quiet.stdout.len(), quiet.stderr.len()), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_is_refused_with_401_named_and_exits_2_after_one_request() {
    let sandbox = Sandbox::start(small()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wrong = "mkp_wrong_key_4711";
    let paypro_key = sandbox.config().paypro_key.clone();
    let output = run(
        &mut check(&sandbox, dir.path(), Some(wrong), Some(&paypro_key)),
        2,
    );
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        stdout.starts_with(&format!("mkp: failed at {}\n", sandbox.mkp_base_url())),
        "{stdout}"
    );
    // The other source is still checked, and passes.
    assert!(
        stdout.contains("\npaypro: ok, the key was accepted at "),
        "{stdout}"
    );
    assert_eq!(stderr.lines().count(), 1, "one error line: {stderr}");
    assert!(
        stderr.starts_with("error: mkp: MijnKlantportaal refused the API key (HTTP 401): the key is missing, wrong or revoked; check MKP_API_KEY"),
        "{stderr}"
    );
    let mkp = requests(&sandbox, Api::Mkp);
    assert_eq!(mkp.len(), 1, "{mkp:?}");
    assert_eq!(mkp[0].status, 401);
    assert_eq!(requests(&sandbox, Api::PayPro).len(), 1);
    assert_no_key_and_no_ledger(&output, &[wrong, &paypro_key], dir.path());
    // -q: the error alone.
    let quiet = run(check(&sandbox, dir.path(), Some(wrong), None).arg("-q"), 2);
    assert_eq!(quiet.stdout, b"");
    assert_eq!(text(&quiet.stderr), stderr);

    // A wrong PayPro key, alone.
    let wrong = "pp_wrong_key_4711";
    let output = run(&mut check(&sandbox, dir.path(), None, Some(wrong)), 2);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        stdout.starts_with("mkp: skipped (no key: MKP_API_KEY (or --mkp-api-key) is not set)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("paypro: failed at "), "{stdout}");
    assert!(
        stderr.starts_with("error: paypro: PayPro refused the API key (HTTP 401): the key is missing, wrong or revoked; check PAYPRO_API_KEY"),
        "{stderr}"
    );
    assert_eq!(
        requests(&sandbox, Api::Mkp).len(),
        2,
        "mkp was skipped (the two before were the checks above)"
    );
    let paypro = requests(&sandbox, Api::PayPro);
    assert_eq!(paypro.len(), 2, "{paypro:?}");
    assert_eq!(paypro[1].status, 401);
    assert_no_key_and_no_ledger(&output, &[wrong], dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_without_the_scope_is_refused_with_403_naming_the_scope_and_exits_2() {
    let sandbox = Sandbox::start(small()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let scopeless = sandbox.config().mkp_scopeless_key.clone();
    let output = run(&mut check(&sandbox, dir.path(), Some(&scopeless), None), 2);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(
        stdout,
        format!(
            "mkp: failed at {}\npaypro: skipped (no key: PAYPRO_API_KEY (or --paypro-api-key) is not set)\n",
            sandbox.mkp_base_url()
        )
    );
    assert!(
        stderr.starts_with("error: mkp: MijnKlantportaal refused the API key (HTTP 403): the key lacks the scope `paymentlinks.read`"),
        "{stderr}"
    );
    assert!(stderr.contains("fix the key in MKP_API_KEY"), "{stderr}");
    let mkp = requests(&sandbox, Api::Mkp);
    assert_eq!(mkp.len(), 1, "{mkp:?}");
    assert_eq!(mkp[0].status, 403);
    assert!(requests(&sandbox, Api::PayPro).is_empty());
    assert_no_key_and_no_ledger(&output, &[&scopeless], dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_key_nothing_is_asked_and_it_says_how_to_configure_one() {
    let sandbox = Sandbox::start(small()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = run(&mut check(&sandbox, dir.path(), None, Some("  ")), 2);
    assert_eq!(
        text(&output.stdout),
        "mkp: skipped (no key: MKP_API_KEY (or --mkp-api-key) is not set)\n\
         paypro: skipped (no key: PAYPRO_API_KEY (or --paypro-api-key) is not set)\n"
    );
    assert!(
        text(&output.stderr)
            .starts_with("error: no source is configured: set MKP_API_KEY and/or PAYPRO_API_KEY"),
        "{}",
        text(&output.stderr)
    );

    // --source names one: the other is skipped, and a named source without a key is an error.
    let mkp_key = sandbox.config().mkp_key.clone();
    let output = run(
        check(&sandbox, dir.path(), Some(&mkp_key), Some("pp_never_sent"))
            .args(["--source", "mkp"]),
        0,
    );
    assert!(
        text(&output.stdout).ends_with("paypro: skipped (not asked for with --source)\n"),
        "{}",
        text(&output.stdout)
    );
    let output = run(
        check(&sandbox, dir.path(), Some(&mkp_key), None).args(["--source", "paypro"]),
        2,
    );
    assert!(
        text(&output.stderr)
            .contains("error: paypro: --source paypro needs a key: set PAYPRO_API_KEY"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(requests(&sandbox, Api::Mkp).len(), 1);
    assert!(requests(&sandbox, Api::PayPro).is_empty());
    assert_no_key_and_no_ledger(&output, &["pp_never_sent", &mkp_key], dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_does_not_answer_is_a_failed_check_exit_1_not_a_key_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was free a moment ago: nothing answers there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = run(
        payments()
            .current_dir(dir.path())
            .args(["check", "--paypro-base-url"])
            .arg(format!("http://127.0.0.1:{port}/paypro"))
            .env("PAYPRO_API_KEY", "pp_unanswered"),
        1,
    );
    let stderr = text(&output.stderr);
    assert!(stderr.starts_with("error: paypro: "), "{stderr}");
    assert!(stderr.contains("try again later"), "{stderr}");
    assert_no_key_and_no_ledger(&output, &["pp_unanswered"], dir.path());

    // A base URL that is refused before any request is a flag to fix.
    let output = run(
        payments()
            .current_dir(dir.path())
            .args(["check", "--mkp-base-url", "http://example.com/v1"])
            .env("MKP_API_KEY", "mkp_never_sent"),
        2,
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with("error: mkp: --mkp-base-url (or MKP_BASE_URL): "),
        "{stderr}"
    );
    assert_no_key_and_no_ledger(&output, &["mkp_never_sent"], dir.path());
}
