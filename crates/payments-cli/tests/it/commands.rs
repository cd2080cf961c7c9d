//! Each command as a user runs it: output, files and exit codes.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use payments_sandbox::{Faults, Sandbox, SandboxConfig};
use payments_testkit::data_set;

use crate::{parse_csv, parse_ndjson, payments, payments_for, run, text, unlimited};

#[test]
fn the_demo_tells_its_story_and_its_next_steps_work_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    // Not through cargo, and not on PATH: the next steps name the binary by its path.
    let output = run(
        payments()
            .env_remove("CARGO")
            .env_remove("CARGO_MANIFEST_DIR")
            .current_dir(dir.path())
            .arg("demo")
            .arg("--db")
            .arg(&db),
        0,
    );
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains("WARN"),
        "no warning that looks like failure: {stderr}"
    );
    for told in [
        "mkp: full run",
        "paypro: full run",
        "mkp: incremental run",
        "paypro: incremental run",
        "have status `unknown`",
        "is quarantined",
        "2 versions",
        "paid → partially_refunded",
    ] {
        assert!(stdout.contains(told), "{told}: {stdout}");
    }
    // Both sources among the newest rows.
    let newest = stdout
        .split("The newest payments of each source:")
        .nth(1)
        .unwrap();
    let rows: Vec<&str> = newest
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(
        rows.iter().any(|r| r.trim_start().starts_with("mkp:")),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|r| r.trim_start().starts_with("paypro:")),
        "{rows:?}"
    );
    let new: u64 = stdout
        .lines()
        .filter(|line| line.contains(" run, "))
        .filter_map(|line| {
            line.split("; ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let exported = run(
        payments()
            .args(["export", "--format", "ndjson", "--db"])
            .arg(&db),
        0,
    );
    assert_eq!(parse_ndjson(&exported.stdout).len() as u64, new);

    // Each next step runs as printed, from a shell.
    let steps: Vec<&str> = stdout
        .split("Next:\n")
        .nth(1)
        .unwrap()
        .lines()
        .map(|line| line.split("    #").next().unwrap().trim())
        .filter(|line| !line.ends_with(" sandbox") && !line.ends_with(" check"))
        .collect();
    assert_eq!(steps.len(), 3, "{stdout}");
    assert!(
        stdout.contains(" check "),
        "the first step with real keys: {stdout}"
    );
    // The export goes beside the demo's ledger, not into the directory it was run from.
    let beside = dir.path().join("ledger.csv");
    assert!(
        steps
            .iter()
            .any(|s| s.contains(&beside.display().to_string())),
        "{stdout}"
    );
    for step in steps {
        assert!(step.starts_with(env!("CARGO_BIN_EXE_payments")), "{step}");
        let ran = std::process::Command::new("sh")
            .arg("-c")
            .arg(step)
            .current_dir(dir.path())
            .output()
            .unwrap();
        // `status` says 3: the demo's quarantined record is still listed.
        assert!(
            matches!(ran.status.code(), Some(0 | 3)),
            "{step}: {}",
            text(&ran.stderr)
        );
    }
    assert!(dir.path().join("ledger.csv").exists());

    let again = run(payments().arg("demo").arg("--db").arg(&db), 2);
    assert!(
        text(&again.stderr).contains("already exists"),
        "the demo never writes into an existing ledger"
    );
}

/// The first "Next:" step the demo prints, when run as `command` from `cwd`.
fn demo_next_step(command: &mut std::process::Command, cwd: &std::path::Path) -> String {
    let db = tempfile::tempdir().unwrap();
    let output = run(
        command
            .current_dir(cwd)
            .arg("demo")
            .arg("--db")
            .arg(db.path().join("demo.db")),
        0,
    );
    let stdout = text(&output.stdout);
    let next = stdout
        .split("Next:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{stdout}"));
    next.lines().next().unwrap().trim().to_owned()
}

#[test]
#[cfg(unix)]
fn the_demo_suggests_what_runs_this_binary_from_where_the_user_is() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("ws");
    let manifest_dir = workspace.join("crates/payments-cli");
    let elsewhere = dir.path().join("elsewhere");
    for made in [&manifest_dir, &elsewhere] {
        std::fs::create_dir_all(made).unwrap();
    }
    let through_cargo = |cwd: &std::path::Path| {
        demo_next_step(
            payments()
                .env("CARGO", "cargo")
                .env("CARGO_MANIFEST_DIR", &manifest_dir),
            cwd,
        )
    };
    assert!(
        through_cargo(&workspace).starts_with("cargo run -q -p payments-cli -- status --db "),
        "inside the workspace"
    );
    let outside = through_cargo(&elsewhere);
    let expected = format!(
        "cargo run -q --manifest-path {} -- status",
        manifest_dir.join("Cargo.toml").display()
    );
    assert!(outside.starts_with(&expected), "{outside}");

    // On PATH, `payments` is suggested only when it is the first `payments` there.
    let (shadow, real) = (dir.path().join("bin1"), dir.path().join("bin2"));
    std::fs::create_dir_all(&shadow).unwrap();
    std::fs::create_dir_all(&real).unwrap();
    std::fs::write(shadow.join("payments"), "#!/bin/sh\necho old\n").unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_payments"), real.join("payments")).unwrap();
    let with_path = |path: std::ffi::OsString| {
        let mut command = std::process::Command::new(real.join("payments"));
        command
            .env_remove("CARGO")
            .env_remove("CARGO_MANIFEST_DIR")
            .env_remove("PAYMENTS_DB")
            .env("PATH", path);
        demo_next_step(&mut command, &elsewhere)
    };
    let first = with_path(std::env::join_paths([&real, &shadow]).unwrap());
    assert!(first.starts_with("payments status --db "), "{first}");
    let shadowed = with_path(std::env::join_paths([&shadow, &real]).unwrap());
    assert!(
        shadowed.starts_with(&format!("{} status --db ", env!("CARGO_BIN_EXE_payments"))),
        "{shadowed}"
    );
}

/// Reads `payments sandbox`'s `NAME=value` lines from its stdout.
fn sandbox_environment(child: &mut std::process::Child) -> Vec<String> {
    let stdout = child.stdout.take().unwrap();
    BufReader::new(stdout)
        .lines()
        .take(4)
        .map(Result::unwrap)
        .collect()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn sandbox_output_evaluated_by_a_shell_lets_sync_and_export_reproduce_the_data_set() {
    let mut child = payments()
        .args([
            "sandbox",
            "--seed",
            "7",
            "--mkp-links",
            "25",
            "--paypro-payments",
            "450",
            "--mkp-rate-limit",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = sandbox_environment(&mut child);
    for (line, name) in lines.iter().zip([
        "MKP_BASE_URL=",
        "MKP_API_KEY=",
        "PAYPRO_BASE_URL=",
        "PAYPRO_API_KEY=",
    ]) {
        assert!(line.starts_with(name), "{line}");
    }
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("sandbox.env");
    std::fs::write(&env_file, lines.join("\n") + "\n").unwrap();
    // Loaded as README's cron line loads an env file: `set -a` exports what the file sets.
    let script = format!(
        "set -e; set -a; . '{env}'; set +a; \
         '{bin}' sync --db '{db}' >&2; '{bin}' export --db '{db}' --format ndjson; '{bin}' export --db '{db}' --format csv --output '{csv}'",
        env = env_file.display(),
        bin = env!("CARGO_BIN_EXE_payments"),
        db = dir.path().join("ledger.db").display(),
        csv = dir.path().join("ledger.csv").display(),
    );
    let mut shell = std::process::Command::new("sh");
    shell.arg("-c").arg(script);
    for variable in [
        "MKP_API_KEY",
        "PAYPRO_API_KEY",
        "MKP_BASE_URL",
        "PAYPRO_BASE_URL",
    ] {
        shell.env_remove(variable);
    }
    let output = run(&mut shell, 0);
    child.kill().unwrap();
    child.wait().unwrap();

    // The same seed and size, in-process: the data set the child served.
    let reference = Sandbox::start(unlimited(7, 25, 450)).await.unwrap();
    let expected = data_set(&reference);
    assert!(expected.len() > 450);
    assert_eq!(parse_ndjson(&output.stdout), expected, "NDJSON");
    let csv = std::fs::read(dir.path().join("ledger.csv")).unwrap();
    assert_eq!(parse_csv(&csv), expected, "CSV");
}

#[tokio::test(flavor = "multi_thread")]
async fn export_filters_by_source_status_and_dates_and_replaces_a_file_only_when_complete() {
    let sandbox = Sandbox::start(unlimited(3, 10, 300)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    run(payments_for(&sandbox, &db).arg("sync"), 0);
    let all = data_set(&sandbox);
    let export = |args: &[&str]| {
        parse_ndjson(
            &run(
                payments_for(&sandbox, &db)
                    .arg("export")
                    .args(["--format", "ndjson"])
                    .args(args),
                0,
            )
            .stdout,
        )
    };
    let paid_paypro: Vec<_> = all
        .iter()
        .filter(|p| p.id.starts_with("paypro:") && p.status.as_str() == "paid")
        .cloned()
        .collect();
    assert!(!paid_paypro.is_empty());
    assert_eq!(
        export(&["--source", "paypro", "--status", "paid"]),
        paid_paypro
    );

    // A day given to --until counts whole; --since includes its instant (days in UTC here; the
    // export test checks Amsterdam's, the default).
    let day = all[all.len() / 2]
        .created_at
        .with_timezone(&chrono::Utc)
        .date_naive();
    let start = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let within: Vec<_> = all
        .iter()
        .filter(|p| {
            let at = p.created_at.with_timezone(&chrono::Utc);
            at >= start && at < start + chrono::Duration::days(1)
        })
        .cloned()
        .collect();
    assert!(!within.is_empty());
    let day = day.to_string();
    assert_eq!(
        export(&["--tz", "UTC", "--since", &day, "--until", &day]),
        within
    );

    let out = dir.path().join("out.ndjson");
    std::fs::write(&out, "good data from before\n").unwrap();
    let failed = run(
        payments()
            .args(["export", "--db"])
            .arg(dir.path().join("missing.db"))
            .arg("--output")
            .arg(&out),
        2,
    );
    assert!(text(&failed.stderr).contains("no database"));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "good data from before\n",
        "a failed export leaves the old file alone"
    );
    let bad_date = run(
        payments_for(&sandbox, &db).args(["export", "--since", "last tuesday"]),
        2,
    );
    assert!(
        text(&bad_date.stderr).contains("2026-10-01"),
        "says what to write"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_exit_code_means_what_the_contract_says() {
    let sandbox = Sandbox::start(unlimited(5, 4, 120)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");

    // 2: configuration, each with what to do.
    let no_key = run(payments().arg("sync").arg("--db").arg(&db), 2);
    assert!(text(&no_key.stderr).contains("set MKP_API_KEY"));
    let bad_url = run(
        payments_for(&sandbox, &db)
            .env("PAYPRO_BASE_URL", "http://payments.example.com")
            .arg("sync"),
        2,
    );
    assert!(
        text(&bad_url.stderr).contains("--paypro-base-url (or PAYPRO_BASE_URL)"),
        "{}",
        text(&bad_url.stderr)
    );
    let not_a_db = run(payments_for(&sandbox, dir.path()).arg("sync"), 2);
    assert!(
        text(&not_a_db.stderr).contains("--db"),
        "{}",
        text(&not_a_db.stderr)
    );
    let wrong_key = run(
        payments_for(&sandbox, &db)
            .env("PAYPRO_API_KEY", "pp_wrong")
            .args(["sync", "--source", "paypro"]),
        2,
    );
    assert!(
        text(&wrong_key.stderr).contains("PAYPRO_API_KEY"),
        "{}",
        text(&wrong_key.stderr)
    );
    run(payments().args(["sync", "--lookback", "a week"]), 2);

    // 0: done; a rerun is incremental and changes nothing.
    run(payments_for(&sandbox, &db).arg("sync"), 0);
    let rerun = text(&run(payments_for(&sandbox, &db).arg("sync"), 0).stdout);
    assert!(rerun.contains("0 new, 0 changed"), "{rerun}");

    // 1: failed, with the checkpoint intact and the reason in `status`.
    sandbox.set_faults(Faults {
        foreign_next: Some("http://127.0.0.1:9".to_owned()),
        ..Faults::default()
    });
    let refused = run(
        payments_for(&sandbox, &db).args(["sync", "--full", "--source", "paypro"]),
        1,
    );
    assert!(
        text(&refused.stderr).contains("paypro"),
        "{}",
        text(&refused.stderr)
    );
    // `status` says so too, with exit 1, so monitoring can watch it.
    let status = text(&run(payments_for(&sandbox, &db).arg("status"), 1).stdout);
    assert!(status.contains(", failed\n"), "{status}");
    assert!(status.contains("error: paypro: "), "{status}");

    // 3: done, with a record quarantined and listed with its reason.
    sandbox.set_faults(Faults {
        bad_record_every: Some(50),
        ..Faults::default()
    });
    let quarantined = run(payments_for(&sandbox, &db).args(["sync", "--full"]), 3);
    assert!(
        text(&quarantined.stdout).contains("2 quarantined"),
        "{}",
        text(&quarantined.stdout)
    );
    // `status` exits 3 while quarantined records are there, so monitoring keeps seeing them.
    let status = text(&run(payments_for(&sandbox, &db).arg("status"), 3).stdout);
    assert!(status.contains("quarantined records: 2"), "{status}");
    assert!(status.contains("12.951"), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sync_on_the_same_database_is_refused_while_the_first_runs() {
    let sandbox = Sandbox::start(SandboxConfig {
        faults: Faults {
            latency: Duration::from_millis(150),
            ..Faults::default()
        },
        ..unlimited(9, 2, 1_000)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let mut first = payments_for(&sandbox, &db)
        .arg("sync")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first holds the lock once its first request is under way.
    while sandbox.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = run(payments_for(&sandbox, &db).arg("sync"), 1);
    assert!(
        text(&second.stderr).contains("another sync is running"),
        "{}",
        text(&second.stderr)
    );
    let status = first.wait().unwrap();
    assert!(status.success(), "the first completes untouched: {status}");
    let exported = run(
        payments_for(&sandbox, &db).args(["export", "--format", "ndjson"]),
        0,
    );
    assert_eq!(parse_ndjson(&exported.stdout), data_set(&sandbox));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_output_or_log_line_contains_the_key() {
    const MKP_KEY: &str = "mkp_live_SECRET_4f9a2c";
    const PAYPRO_KEY: &str = "pp_live_SECRET_77b1e0";
    let sandbox = Sandbox::start(SandboxConfig {
        mkp_key: MKP_KEY.to_owned(),
        paypro_key: PAYPRO_KEY.to_owned(),
        faults: Faults {
            server_error_rate: 0.1,
            ..Faults::default()
        },
        ..unlimited(11, 6, 250)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let mut outputs = vec![
        run(
            payments_for(&sandbox, &db)
                .env("RUST_LOG", "trace")
                .arg("sync"),
            0,
        ),
        run(
            payments_for(&sandbox, &db)
                .env("RUST_LOG", "trace")
                .env("MKP_API_KEY", "mkp_live_SECRET_wrong")
                .args(["sync", "--source", "mkp", "--full"]),
            2,
        ),
        // The last MKP run failed on the rejected key: `status` exits 1.
        run(payments_for(&sandbox, &db).arg("status"), 1),
        run(payments_for(&sandbox, &db).arg("export"), 0),
        run(
            payments()
                .args(["sync", "--help"])
                .env("MKP_API_KEY", MKP_KEY),
            0,
        ),
    ];
    outputs.push(run(
        payments_for(&sandbox, &db)
            .env("PAYPRO_BASE_URL", "http://payments.example.com")
            .arg("sync"),
        2,
    ));
    for output in outputs {
        for stream in [text(&output.stdout), text(&output.stderr)] {
            assert!(!stream.contains("SECRET"), "a key leaked:\n{stream}");
        }
    }
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let path = file.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(6).any(|w| w == b"SECRET"),
            "the key is in {}",
            path.display()
        );
    }
}
