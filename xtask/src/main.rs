//! Project automation, run as `cargo xtask <task>` (alias in `.cargo/config.toml`).
//!
//! Tasks:
//! - `fixtures [--check | record --provider mkp|paypro …]`: regenerate, check or record the
//!   provider pages in `fixtures/` (see `fixtures.rs`).
//! - `bench`: every performance benchmark, each figure printed as a ratio to its bound.
//! - `man [--out DIR]`: the man pages of `payments` (see `man.rs`).
//! - `check-model-purity`: fails when `payments-model` depends on an I/O crate.
#![forbid(unsafe_code)]

mod fixtures;
mod io_crates;
mod man;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

use crate::io_crates::IO_CRATES;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("check-model-purity") => check_model_purity(),
        Some("fixtures") => fixtures::run(&args[1..]),
        Some("bench") => bench(),
        Some("man") => man::run(&args[1..]),
        Some(other) => Err(anyhow::anyhow!(
            "unknown task `{other}`; run `cargo xtask` to list the tasks"
        )),
        None => {
            println!(
                "cargo xtask <task>\n\ntasks:\n  fixtures             regenerate fixtures/*/generated from the sandbox (deterministic)\n  fixtures --check     fail when the generated fixtures are stale\n  fixtures record --provider mkp|paypro [--base-url URL] [--pages N]\n                       record scrubbed pages from a live API (key from MKP_API_KEY/PAYPRO_API_KEY)\n  bench                run every benchmark and print each figure as a ratio to its bound\n  man [--out DIR]      write the man pages of payments (default: target/man)\n  check-model-purity   fail if payments-model depends on an I/O crate"
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
    let output = cargo()
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

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn run_cargo(args: &[&str]) -> Result<()> {
    println!("== cargo {}", args.join(" "));
    let status = cargo()
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

/// The mean time of a criterion benchmark, in nanoseconds, from its `estimates.json`.
fn criterion_mean_ns(group: &str, function: &str) -> Result<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let path = target
        .join("criterion")
        .join(group)
        .join(function)
        .join("new")
        .join("estimates.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let estimates: serde_json::Value = serde_json::from_str(&text)?;
    estimates["mean"]["point_estimate"]
        .as_f64()
        .with_context(|| format!("{} has no mean", path.display()))
}

/// Targets 1 and 6 from the criterion benchmarks, 2 to 5 and 7 from the end-to-end sync
/// benchmark, 8 from the fleet benchmark, 9 from the webhooks benchmark, 10 from the
/// statements benchmark.
fn bench() -> Result<()> {
    let criterion = [
        ("paypro-api", "decode"),
        ("mkp-api", "decode"),
        ("payments-sqlite", "commit"),
    ];
    for (package, bench) in criterion {
        run_cargo(&["bench", "-p", package, "--bench", bench])?;
    }
    let mut lines = Vec::new();
    for (provider, group) in [("PayPro", "paypro_page_of_100"), ("MKP", "mkp_page_of_15")] {
        let wire = criterion_mean_ns(group, "wire_only")?;
        let mapped = criterion_mean_ns(group, "decode_and_map")?;
        let speed = wire / mapped;
        lines.push(format!(
            "target 1: {provider} decode + map is {speed:.3}× as fast as decoding into wire structs alone ({:.1} µs vs {:.1} µs); bound ≥ 0.8×: ratio to bound {:.3} ({})",
            mapped / 1000.0,
            wire / 1000.0,
            speed / 0.8,
            if speed >= 0.8 { "met" } else { "NOT met" }
        ));
    }
    let per_page = criterion_mean_ns("sqlite_commit", "page_of_100_new_payments")?;
    let rate = 100.0 / (per_page * 1e-9);
    lines.push(format!(
        "target 6: SQLite commits {rate:.0} payments/s in pages of 100; bound ≥ 100,000/s: ratio to bound {:.3} ({})",
        rate / 100_000.0,
        if rate >= 100_000.0 { "met" } else { "NOT met" }
    ));
    run_cargo(&["bench", "-p", "payments-cli", "--bench", "sync"])?;
    run_cargo(&["bench", "-p", "payments-cli", "--bench", "fleet"])?;
    run_cargo(&["bench", "-p", "payments-cli", "--bench", "webhooks"])?;
    run_cargo(&["bench", "-p", "payments-cli", "--bench", "statements"])?;
    println!(
        "\n== targets 1 and 6 (targets 2 to 5 and 7 are printed by the sync benchmark above, 8 by the fleet benchmark, 9 by the webhooks benchmark, 10 by the statements benchmark)"
    );
    for line in lines {
        println!("{line}");
    }
    Ok(())
}
