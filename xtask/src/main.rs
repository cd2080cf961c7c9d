//! Project automation, run as `cargo xtask <task>` (alias in `.cargo/config.toml`).
//!
//! Tasks:
//! - `check-model-purity`: fails when `payments-model` depends on an I/O crate.

use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// Crates that mean I/O or an async runtime; none may appear under `payments-model`.
const IO_CRATES: &[&str] = &[
    "reqwest",
    "hyper",
    "tokio",
    "mio",
    "socket2",
    "axum",
    "rusqlite",
    "async-std",
    "smol",
    "iana-time-zone",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("check-model-purity") => check_model_purity(),
        Some(other) => Err(anyhow::anyhow!(
            "unknown task `{other}`; run `cargo xtask` to list the tasks"
        )),
        None => {
            println!(
                "cargo xtask <task>\n\ntasks:\n  check-model-purity   fail if payments-model depends on an I/O crate"
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo tree -p payments-model -e normal` must list none of [`IO_CRATES`].
fn check_model_purity() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "payments-model",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .output()
        .context("running cargo tree")?;
    if !output.status.success() {
        bail!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tree = String::from_utf8(output.stdout).context("cargo tree printed non-UTF-8")?;
    let found: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| IO_CRATES.contains(name))
        .collect();
    if !found.is_empty() {
        bail!(
            "payments-model must do no I/O, but depends on {}; move that code to another crate",
            found.join(", ")
        );
    }
    println!("payments-model depends on no I/O crate");
    Ok(())
}
