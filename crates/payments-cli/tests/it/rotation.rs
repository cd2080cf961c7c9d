//! A master-key rotation while two workers run, as README tells it: the workers start with the
//! new key and the previous one, `payments accounts rotate-master-key` seals every key anew, and
//! no run fails, before, during or after; then the new key alone opens every account.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use payments_postgres::{MasterKey, NewAccount, PgLedger, SourceOptions};
use payments_sandbox::Sandbox;
use payments_testkit::postgres::Cluster;
use secrecy::SecretString;

use crate::sandbox_account::sandbox_account;
use crate::{payments, run, text, unlimited};

const ACCOUNTS: usize = 6;

fn worker(url: &str, master: &str, previous: &str) -> Child {
    payments()
        .args([
            "worker",
            "--concurrency",
            "2",
            "--lease-ttl",
            "4s",
            "--poll",
            "1s",
        ])
        .env("PAYMENTS_POSTGRES", url)
        .env("PAYMENTS_MASTER_KEY", master)
        .env("PAYMENTS_MASTER_KEY_PREVIOUS", previous)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the payments binary starts")
}

/// Runs that ended, and of them those that failed, started after `after` (the database's
/// clock) when given.
async fn ended(
    client: &tokio_postgres::Client,
    after: Option<chrono::DateTime<chrono::Utc>>,
) -> (i64, Vec<String>) {
    let rows = client
        .query(
            "SELECT error FROM ledger.runs
             WHERE finished_at IS NOT NULL AND ($1::timestamptz IS NULL OR started_at > $1)",
            &[&after],
        )
        .await
        .unwrap();
    let failed = rows
        .iter()
        .filter_map(|row| row.get::<_, Option<String>>(0))
        .collect();
    (rows.len() as i64, failed)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_rotation_under_two_running_workers_fails_no_run_and_leaves_the_new_key_alone_enough() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("rotation");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let old = MasterKey::generate();
    let new = MasterKey::generate().to_base64();
    let sandboxes: Vec<Sandbox> = runtime.block_on(async {
        let mut sandboxes = Vec::new();
        for seed in 0..ACCOUNTS as u64 {
            let mut config = unlimited(300 + seed, 3, 20);
            config.mkp_key = format!("mkp_key_{seed}");
            config.paypro_key = format!("pp_key_{seed}");
            sandboxes.push(Sandbox::start(config).await.unwrap());
        }
        sandboxes
    });
    let client = runtime.block_on(async {
        let ledger = PgLedger::connect(&url, 2).await.unwrap();
        let every = SourceOptions {
            every_secs: Some(10),
            ..SourceOptions::default()
        };
        for (index, sandbox) in sandboxes.iter().enumerate() {
            let account = NewAccount {
                webhook_secrets: vec![("paypro".to_owned(), SecretString::from("whsec-rotation"))],
                ..sandbox_account(
                    format!("shop-{index}"),
                    sandbox,
                    every.clone(),
                    every.clone(),
                )
            };
            ledger.add_account(account, &old).await.unwrap();
        }
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    });
    let old = old.to_base64();
    let mut workers: Vec<Child> = (0..2).map(|_| worker(&url, &new, &old)).collect();
    wait_for("a run of every account-source", || {
        runtime.block_on(ended(&client, None)).0 >= (ACCOUNTS * 2) as i64
    });

    // Rotated while both run; then every account-source is made due, so that each runs again
    // after the rotation.
    let rotated = run(
        payments()
            .args(["accounts", "rotate-master-key"])
            .env("PAYMENTS_POSTGRES", &url)
            .env("PAYMENTS_MASTER_KEY", &new)
            .env("PAYMENTS_MASTER_KEY_PREVIOUS", &old),
        0,
    );
    assert!(
        !text(&rotated.stdout).contains(&new) && !text(&rotated.stderr).contains(&old),
        "no master key in the output"
    );
    let since: chrono::DateTime<chrono::Utc> = runtime
        .block_on(client.query_one("SELECT now()", &[]))
        .unwrap()
        .get(0);
    runtime
        .block_on(client.execute("UPDATE ledger.account_sources SET next_run_at = now()", &[]))
        .unwrap();
    wait_for("a run of every account-source after the rotation", || {
        runtime.block_on(ended(&client, Some(since))).0 >= (ACCOUNTS * 2) as i64
    });
    for child in &workers {
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
    }
    for child in workers.drain(..) {
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(143), "{}", text(&output.stderr));
    }
    let (runs, failed) = runtime.block_on(ended(&client, None));
    assert!(failed.is_empty(), "of {runs} runs these failed: {failed:?}");

    // The new key alone opens every account's keys (and its webhook secrets).
    runtime
        .block_on(client.execute("UPDATE ledger.account_sources SET next_run_at = now()", &[]))
        .unwrap();
    let alone = run(
        payments()
            .args(["worker", "--until-idle"])
            .env("PAYMENTS_POSTGRES", &url)
            .env("PAYMENTS_MASTER_KEY", &new)
            .env_remove("PAYMENTS_MASTER_KEY_PREVIOUS"),
        0,
    );
    let (_, failed) = runtime.block_on(ended(&client, None));
    assert!(failed.is_empty(), "{failed:?}\n{}", text(&alone.stderr));
    let opened = runtime.block_on(async {
        let ledger = PgLedger::open_existing(&url).await.unwrap();
        let master = MasterKey::from_base64(&new).unwrap();
        let mut opened = 0;
        for index in 0..ACCOUNTS {
            let name = format!("shop-{index}");
            if ledger
                .webhook_secret(&name, "paypro", &master)
                .await
                .unwrap()
                .is_some()
            {
                opened += 1;
            }
        }
        opened
    });
    assert_eq!(
        opened, ACCOUNTS,
        "every webhook secret opens with the new key"
    );
}
