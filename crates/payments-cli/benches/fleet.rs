//! DESIGN.md's performance target 8, many accounts: 1,000 small accounts, each behind a sandbox
//! of its own with 100 ms of latency per request, synced by `payments worker` processes (8
//! account-sources at once each) from one PostgreSQL ledger. The latency makes a round wait on
//! the providers, as real ones do, rather than on this machine's two cores, which the sandboxes,
//! the workers and PostgreSQL share.
//! One worker against four on the same work: the throughput ratio (bound: at least 3×) and the
//! peak memory of one worker (bound: under 200 MB). Run by `cargo xtask bench`, or alone with
//! `cargo bench -p payments-cli --bench fleet`. Needs PostgreSQL's server programs (the bench
//! starts a throwaway cluster); without them it says so and measures nothing.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use payments_postgres::{MasterKey, NewAccount, PgLedger, SourceOptions};
use payments_sandbox::{Faults, Sandbox, SandboxConfig};
use payments_testkit::peak;
use payments_testkit::postgres::Cluster;
use secrecy::SecretString;

const ACCOUNTS: usize = 1_000;
/// Account-sources each worker syncs at once.
const CONCURRENCY: &str = "8";

fn small_account(seed: u64) -> SandboxConfig {
    SandboxConfig {
        seed,
        // Keys of its own, as every business has (sources sharing a key are leased one at a
        // time).
        mkp_key: format!("mkp_key_{seed}"),
        paypro_key: format!("pp_key_{seed}"),
        mkp_links: 3,
        paypro_payments: 20,
        mkp_rate_limit: None,
        faults: Faults {
            latency: Duration::from_millis(100),
            ..Faults::default()
        },
        ..SandboxConfig::default()
    }
}

fn report(what: &str, measured: String, ratio: f64) {
    let verdict = if ratio <= 1.0 { "met" } else { "NOT met" };
    println!("target 8: {what}: {measured}; ratio to bound {ratio:.3} ({verdict})");
}

fn main() {
    let Some(cluster) = Cluster::start() else {
        println!("target 8: skipped (PostgreSQL is not installed)");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let master = MasterKey::generate();
    let sandboxes: Vec<Sandbox> = runtime.block_on(async {
        let mut sandboxes = Vec::with_capacity(ACCOUNTS);
        for seed in 0..ACCOUNTS as u64 {
            sandboxes.push(
                Sandbox::start(small_account(seed))
                    .await
                    .expect("the sandbox starts"),
            );
        }
        sandboxes
    });
    // The same 1,000 accounts in two databases: one round for one worker, one for four.
    let mut rounds = Vec::new();
    for (database, workers) in [("one_worker", 1), ("four_workers", 4)] {
        let url = cluster.database(database);
        runtime.block_on(add_accounts(&url, &sandboxes, &master));
        let (elapsed, peak_kib) = round(&url, &master.to_base64(), workers);
        println!(
            "target 8: {workers} worker(s) × {CONCURRENCY}: a round of {ACCOUNTS} accounts ({} account-sources) in {:.1} s; peak memory of one worker {:.1} MB",
            ACCOUNTS * 2,
            elapsed.as_secs_f64(),
            peak_kib as f64 / 1024.0
        );
        rounds.push((elapsed, peak_kib));
    }
    let speedup = rounds[0].0.as_secs_f64() / rounds[1].0.as_secs_f64();
    report(
        "four workers against one on a round of 1,000 accounts",
        format!("{speedup:.2}× the throughput against the bound of 3×"),
        3.0 / speedup,
    );
    let peak_mb = rounds[0].1 as f64 / 1024.0;
    report(
        "peak memory of one worker keeping 1,000 accounts",
        format!("{peak_mb:.1} MB against 200 MB"),
        peak_mb / 200.0,
    );
}

async fn add_accounts(url: &str, sandboxes: &[Sandbox], master: &MasterKey) {
    let ledger = PgLedger::connect(url, 4)
        .await
        .expect("the ledger is created");
    for (index, sandbox) in sandboxes.iter().enumerate() {
        let config = sandbox.config();
        let options = |base_url: String| SourceOptions {
            base_url: Some(base_url),
            every_secs: Some(3_600),
            ..SourceOptions::default()
        };
        ledger
            .add_account(
                NewAccount {
                    webhook_secrets: Vec::new(),
                    name: format!("business-{index:04}"),
                    sources: vec![
                        (
                            "mkp".to_owned(),
                            SecretString::from(config.mkp_key.clone()),
                            options(sandbox.mkp_base_url()),
                        ),
                        (
                            "paypro".to_owned(),
                            SecretString::from(config.paypro_key.clone()),
                            options(sandbox.paypro_base_url()),
                        ),
                    ],
                },
                master,
            )
            .await
            .expect("the account is added");
    }
}

/// Runs `workers` workers until nothing is due; the round's wall time and the largest peak
/// resident set of any of them.
fn round(url: &str, master: &str, workers: usize) -> (Duration, u64) {
    let children: Vec<Child> = (0..workers)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_payments"))
                .args(["worker", "--until-idle", "--concurrency", CONCURRENCY])
                .env("PAYMENTS_POSTGRES", url)
                .env("PAYMENTS_MASTER_KEY", master)
                .env_remove("RUST_LOG")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("the payments binary starts")
        })
        .collect();
    let (statuses, elapsed, peak_kib) = peak::wait_all(children, Duration::from_millis(20));
    for status in statuses {
        assert!(status.success(), "a worker failed: {status}");
    }
    (elapsed, peak_kib)
}
