//! `payments sync` on a terminal, run under a pseudo-terminal: the progress display draws a line
//! per source, says that it waits while it waits, and log lines pass above it whole.

use std::fs::OpenOptions;
use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use payments_sandbox::{RateLimitWindow, Sandbox, SandboxConfig};

use crate::{payments_for, text, unlimited};

/// A pseudo-terminal: the controller to read from, and the terminal the child writes to.
fn pseudo_terminal() -> (std::fs::File, std::fs::File) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("a pseudo-terminal");
    grantpt(&controller).unwrap();
    unlockpt(&controller).unwrap();
    let name = ptsname(&controller, Vec::new()).unwrap();
    let terminal = OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    (std::fs::File::from(controller), terminal)
}

/// The text a terminal would show, roughly: escape sequences dropped, and each `\r` or `\n`
/// ending a segment (a redrawn line is a segment of its own).
fn segments(raw: &[u8]) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = String::from_utf8_lossy(raw)
        .into_owned()
        .chars()
        .collect::<Vec<_>>()
        .into_iter();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Runs `payments sync` (with `args`) against `sandbox` with its stderr on a pseudo-terminal,
/// until the child closes it: its output (stdout piped) and the bytes the terminal showed.
async fn on_a_terminal(
    sandbox: &Sandbox,
    db: &std::path::Path,
    args: &[&str],
) -> (std::process::Output, Vec<u8>) {
    let (mut controller, terminal) = pseudo_terminal();
    let child = payments_for(sandbox, db)
        .arg("sync")
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(terminal)
        .spawn()
        .unwrap();
    // Read the terminal until the child closes it (EIO on Linux once no one holds it open).
    let reader = std::thread::spawn(move || {
        let mut shown = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n) = controller.read(&mut buffer) {
            if n == 0 {
                break;
            }
            shown.extend_from_slice(&buffer[..n]);
        }
        shown
    });
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    (output, reader.join().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_terminal_progress_shows_each_source_its_waits_and_whole_log_lines() {
    let sandbox = Sandbox::start(SandboxConfig {
        mkp_rate_limit: Some(RateLimitWindow {
            limit: 10,
            window: Duration::from_secs(2),
        }),
        ..unlimited(31, 25, 3000)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let (output, shown) = on_a_terminal(
        &sandbox,
        &db,
        &["--mkp-rate-limit", "10", "--mkp-rate-window", "2"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    let segments = segments(&shown);
    let seen = segments.join("\n");

    // A line per source, with its running totals.
    for source in ["mkp", "paypro"] {
        assert!(
            segments
                .iter()
                .any(|s| s.contains(source) && s.contains("pages,") && s.contains("payments")),
            "{source}: {seen}"
        );
    }
    // MKP's rate limit is waited for, and the line says so while it waits.
    assert!(
        segments.iter().any(|s| s.contains("mkp")
            && s.contains("waiting")
            && s.contains("for the rate limit")),
        "{seen}"
    );
    // A warning (the sandbox sends unknown status words) is printed whole, on a line of its
    // own above the bars, and without colour under NO_COLOR.
    let warning = segments
        .iter()
        .find(|s| s.contains("a status word the status table does not know"))
        .unwrap_or_else(|| panic!("a warning: {seen}"));
    assert!(
        warning.starts_with("WARN") || warning.contains(" WARN "),
        "{warning}"
    );
    assert!(!warning.contains("pages,"), "not torn by a bar: {warning}");
    assert!(
        !String::from_utf8_lossy(&shown).contains("\u{1b}[33m"),
        "no colour under NO_COLOR"
    );
    // The bars are cleared at the end; the summary lines are on stdout, without a timestamp
    // only when stdout is a terminal (here it is a pipe).
    let summary = text(&output.stdout);
    assert_eq!(summary.lines().count(), 2, "{summary}");
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_are_counted_in_the_line_the_wait_counts_down_and_a_finished_source_stops() {
    let sandbox = Sandbox::start(SandboxConfig {
        mkp_rate_limit: Some(RateLimitWindow {
            limit: 5,
            window: Duration::from_secs(4),
        }),
        faults: payments_sandbox::Faults {
            server_error_rate: 0.1,
            ..payments_sandbox::Faults::default()
        },
        ..unlimited(32, 12, 1500)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ledger.db");
    let (output, shown) = on_a_terminal(
        &sandbox,
        &db,
        &["--mkp-rate-limit", "5", "--mkp-rate-window", "4"],
    )
    .await;
    let segments = segments(&shown);
    let seen = segments.join("\n");
    assert!(matches!(output.status.code(), Some(0 | 3)), "{seen}");
    // No retry scrolls the screen as a log line: the line counts them, with the last error.
    assert!(!seen.contains("retrying"), "{seen}");
    assert!(
        segments
            .iter()
            .any(|s| (s.contains(" retry") || s.contains(" retries")) && s.contains("(last: ")),
        "{seen}"
    );
    // The wait counts down: MKP's line says several different seconds left.
    let waits: std::collections::BTreeSet<String> = segments
        .iter()
        .filter(|s| s.contains("mkp") && s.contains("for the rate limit"))
        .filter_map(|s| {
            s.split("waiting ")
                .nth(1)?
                .split(" s")
                .next()
                .map(str::to_owned)
        })
        .collect();
    assert!(waits.len() >= 2, "{waits:?}\n{seen}");
    // PayPro (no rate limit) finishes first: its line shows its summary and no longer spins
    // (its running line, `… payments, … requests`, is not drawn again). Both lines are redrawn
    // together: PayPro's is what follows its name, up to MKP's.
    let paypro: Vec<&str> = segments
        .iter()
        .filter_map(|s| {
            let at = s.find("paypro ")?;
            let rest = &s[at..];
            Some(rest.find(" mkp ").map_or(rest, |end| &rest[..end]))
        })
        .collect();
    let finished = paypro
        .iter()
        .position(|s| s.contains("full run"))
        .unwrap_or_else(|| panic!("paypro's summary line: {seen}"));
    assert!(
        !paypro[finished + 1..]
            .iter()
            .any(|s| s.contains(" payments,")),
        "{seen}"
    );
}
