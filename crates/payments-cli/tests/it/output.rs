//! The output controls every command takes: `-q` (errors only), `-v`/`-vv` (the engine's steps
//! and decisions), `--color` with `NO_COLOR` and `CLICOLOR_FORCE`.

use payments_sandbox::Sandbox;

use crate::{payments_for, run, text, unlimited};

#[tokio::test(flavor = "multi_thread")]
async fn quiet_says_nothing_on_success_and_each_v_says_more() {
    let sandbox = Sandbox::start(unlimited(29, 2, 150)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let quiet = run(payments_for(&sandbox, &db).args(["-q", "sync"]), 0);
    assert!(quiet.stdout.is_empty(), "{}", text(&quiet.stdout));
    assert!(quiet.stderr.is_empty(), "{}", text(&quiet.stderr));
    // After the subcommand too, as cargo takes it.
    let quiet = run(payments_for(&sandbox, &db).args(["sync", "--quiet"]), 0);
    assert!(quiet.stdout.is_empty() && quiet.stderr.is_empty());

    let plain = run(
        payments_for(&sandbox, &db).args(["sync", "--source", "paypro"]),
        0,
    );
    assert!(!text(&plain.stdout).is_empty(), "a summary without -q");
    let decisions = "book listing not walked";
    assert!(!text(&plain.stderr).contains(decisions));
    let v = run(
        payments_for(&sandbox, &db).args(["sync", "-v", "--source", "paypro"]),
        0,
    );
    assert!(text(&v.stderr).contains("start"), "{}", text(&v.stderr));
    assert!(!text(&v.stderr).contains(decisions));
    let vv = run(
        payments_for(&sandbox, &db).args(["sync", "-vv", "--source", "paypro"]),
        0,
    );
    assert!(text(&vv.stderr).contains(decisions), "{}", text(&vv.stderr));
    let refused = run(payments_for(&sandbox, &db).args(["sync", "-q", "-v"]), 2);
    assert!(text(&refused.stderr).contains("cannot be used with"));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_colour_means_no_escape_sequence() {
    let sandbox = Sandbox::start(unlimited(29, 0, 50)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let escapes = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = payments_for(&sandbox, &db);
        command
            .args(args)
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE");
        for (name, value) in env {
            command.env(name, value);
        }
        let output = run(&mut command, 0);
        output.stderr.contains(&0x1b)
    };
    let sync = ["sync", "-v", "--source", "paypro"];
    assert!(
        escapes(&sync, &[("CLICOLOR_FORCE", "1")]),
        "forced colour has escapes"
    );
    assert!(escapes(&["--color", "always", "sync", "-v"], &[]));
    assert!(!escapes(&sync, &[]), "not a terminal: no colour");
    assert!(!escapes(
        &sync,
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]
    ));
    assert!(!escapes(
        &["--color", "never", "sync", "-v"],
        &[("CLICOLOR_FORCE", "1")]
    ));
}
