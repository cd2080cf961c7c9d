//! End-to-end tests of the `payments` binary, run as a user runs it, against sandboxes these
//! tests start on loopback.

mod accounts;
mod accounts_update;
mod books;
mod check;
mod commands;
mod escaping;
#[cfg(unix)]
mod export;
mod feed;
#[cfg(unix)]
mod fleet;
#[cfg(unix)]
mod healing;
mod help;
mod kill;
mod logs;
mod output;
mod quarantine;
#[cfg(unix)]
mod rotation;
#[cfg(unix)]
mod sandbox_account;
#[cfg(unix)]
mod serve;
mod status;
#[cfg(unix)]
mod terminal;
mod versions;

use std::path::Path;
use std::process::{Command, Output};

use payments_model::Payment;
use payments_sandbox::{Sandbox, SandboxConfig};

/// The built binary with a clean environment: no key, URL or database from the caller's shell.
fn payments() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_payments"));
    for variable in [
        "MKP_API_KEY",
        "PAYPRO_API_KEY",
        "MKP_BASE_URL",
        "PAYPRO_BASE_URL",
        "PAYMENTS_DB",
        "PAYMENTS_POSTGRES",
        "PAYMENTS_MASTER_KEY",
        "RUST_LOG",
    ] {
        command.env_remove(variable);
    }
    command
}

/// `payments` pointed at `sandbox` with its keys (MKP's limit off: the sandbox's is off too).
fn payments_for(sandbox: &Sandbox, db: &Path) -> Command {
    let config = sandbox.config();
    let mut command = payments();
    command
        .env("MKP_BASE_URL", sandbox.mkp_base_url())
        .env("MKP_API_KEY", &config.mkp_key)
        .env("PAYPRO_BASE_URL", sandbox.paypro_base_url())
        .env("PAYPRO_API_KEY", &config.paypro_key)
        .env("PAYMENTS_DB", db);
    command
}

/// A sandbox without MKP's rate limit, anchored at the fixed default date.
fn unlimited(seed: u64, mkp_links: usize, paypro_payments: usize) -> SandboxConfig {
    SandboxConfig {
        seed,
        mkp_links,
        paypro_payments,
        mkp_rate_limit: None,
        ..SandboxConfig::default()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `command`, and shows its output when the exit code is not `expected`.
fn run(command: &mut Command, expected: i32) -> Output {
    let output = command.output().expect("the payments binary runs");
    assert_eq!(
        output.status.code(),
        Some(expected),
        "stdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    output
}

/// Parses an NDJSON export.
fn parse_ndjson(bytes: &[u8]) -> Vec<Payment> {
    text(bytes)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is a unified payment"))
        .collect()
}

/// Parses a CSV export, checking its header.
fn parse_csv(bytes: &[u8]) -> Vec<Payment> {
    let mut reader = csv::Reader::from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .expect("a header row")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, payments_model::PaymentRecord::FIELDS);
    reader
        .deserialize::<Payment>()
        .map(|row| row.expect("each row is a unified payment"))
        .collect()
}
