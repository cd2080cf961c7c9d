//! A fleet of `payments worker` processes on one PostgreSQL ledger, two of them killed with
//! SIGKILL at random moments: every account's ledger still equals its provider's data, nothing
//! is written twice, no key is used by two runs at once (two accounts share one), and no key meets
//! a 429.

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use payments_postgres::{MasterKey, NewAccount, PgLedger, SourceOptions};
use payments_sandbox::{Api, RateLimitWindow, Sandbox, SandboxConfig};
use payments_sync::{Filter, Ledger};
use payments_testkit::postgres::Cluster;
use secrecy::SecretString;

use crate::sandbox_account::sandbox_account;
use crate::{payments, text};

const ACCOUNTS: usize = 200;
const WORKERS: usize = 4;
/// Two accounts with the same keys.
const TWINS: [&str; 2] = ["twin-a", "twin-b"];

/// A small business: a few MKP links and a few dozen PayPro payments, behind MKP's rolling
/// window (10 requests per 2 s, so that workers must pace) and some latency.
fn small_account(seed: u64) -> SandboxConfig {
    SandboxConfig {
        seed,
        // Keys of its own, as every business has (sources sharing a key are leased one at a
        // time).
        mkp_key: format!("mkp_key_{seed}"),
        paypro_key: format!("pp_key_{seed}"),
        mkp_links: 4,
        paypro_payments: 30,
        mkp_rate_limit: Some(RateLimitWindow {
            limit: 10,
            window: Duration::from_secs(2),
        }),
        faults: payments_sandbox::Faults {
            latency: Duration::from_millis(25),
            ..payments_sandbox::Faults::default()
        },
        ..SandboxConfig::default()
    }
}

fn worker(url: &str, master: &str) -> Child {
    payments()
        .args([
            "worker",
            "--concurrency",
            "4",
            "--lease-ttl",
            "4s",
            "--poll",
            "1s",
        ])
        .env("PAYMENTS_POSTGRES", url)
        .env("PAYMENTS_MASTER_KEY", master)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the payments binary starts")
}

/// One run of one account-source as `ledger.runs` holds it.
struct RunRow {
    worker: Option<String>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    lease_expires_at: Option<DateTime<Utc>>,
    error: Option<String>,
}

async fn runs(client: &tokio_postgres::Client) -> HashMap<(i64, String), Vec<RunRow>> {
    let rows = client
        .query(
            "SELECT account_id, source_name, worker, started_at, finished_at, lease_expires_at, error
             FROM ledger.runs ORDER BY started_at, seq",
            &[],
        )
        .await
        .unwrap();
    let mut runs: HashMap<(i64, String), Vec<RunRow>> = HashMap::new();
    for row in rows {
        runs.entry((row.get(0), row.get(1)))
            .or_default()
            .push(RunRow {
                worker: row.get(2),
                started_at: row.get(3),
                finished_at: row.get(4),
                lease_expires_at: row.get(5),
                error: row.get(6),
            });
    }
    runs
}

/// How many runs the worker with process id `pid` has under way.
async fn leases_held(client: &tokio_postgres::Client, pid: u32) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM ledger.runs WHERE finished_at IS NULL AND worker LIKE '%:' || $1",
            &[&pid.to_string()],
        )
        .await
        .unwrap()
        .get(0)
}

#[test]
fn four_workers_two_killed_keep_200_accounts_exact_with_no_overlap_and_no_429() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("fleet");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let master = MasterKey::generate();
    let master_text = master.to_base64();

    let sandboxes: Vec<Sandbox> = runtime.block_on(async {
        let mut sandboxes = Vec::new();
        for seed in 0..ACCOUNTS as u64 {
            sandboxes.push(Sandbox::start(small_account(1_000 + seed)).await.unwrap());
        }
        sandboxes
    });
    let shared = runtime
        .block_on(Sandbox::start(SandboxConfig {
            mkp_links: 40,
            ..small_account(9_999)
        }))
        .unwrap();
    let ledger = runtime.block_on(async {
        let ledger = PgLedger::connect(&url, 4).await.unwrap();
        // Every business's options, the twins' too: MKP limited to 10 requests per 2 s.
        let mkp = SourceOptions {
            rate_limit: Some(10),
            rate_window_secs: Some(2),
            every_secs: Some(3_600),
            ..SourceOptions::default()
        };
        let paypro = SourceOptions {
            every_secs: Some(3_600),
            ..SourceOptions::default()
        };
        for (index, sandbox) in sandboxes.iter().enumerate() {
            let account = sandbox_account(
                format!("business-{index:03}"),
                sandbox,
                mkp.clone(),
                paypro.clone(),
            );
            ledger.add_account(account, &master).await.unwrap();
        }
        // Two accounts with one key (of one business's sandbox, with more to read): never
        // synced at once, and the key's limit holds across them.
        for name in TWINS {
            let account = sandbox_account(name.to_owned(), &shared, mkp.clone(), paypro.clone());
            ledger.add_account(account, &master).await.unwrap();
        }
        ledger
    });
    let (client, connection) = runtime
        .block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls))
        .unwrap();
    runtime.spawn(connection);

    // Four workers; two of them are killed with SIGKILL at random moments of the round.
    let mut workers: Vec<Child> = (0..WORKERS).map(|_| worker(&url, &master_text)).collect();
    let mut killed = Vec::new();
    for child in &mut workers[..2] {
        // A random moment once the worker holds a lease, so that a takeover is exercised.
        let holding = Instant::now() + Duration::from_secs(60);
        while runtime.block_on(leases_held(&client, child.id())) == 0 && Instant::now() < holding {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..600)));
        killed.push(format!(":{}", child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    // The round ends when every account-source has a run that completed.
    let deadline = Instant::now()
        + Duration::from_secs(
            std::env::var("FLEET_DEADLINE_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(240),
        );
    loop {
        let runs = runtime.block_on(runs(&client));
        let done = runs
            .values()
            .filter(|runs| {
                runs.iter()
                    .any(|r| r.finished_at.is_some() && r.error.is_none())
            })
            .count();
        if done == ACCOUNTS * 2 + TWINS.len() * 2 {
            break;
        }
        if Instant::now() > deadline {
            let mut stderr = String::new();
            for mut child in workers.drain(2..) {
                let _ = child.kill();
                stderr.push_str(&text(&child.wait_with_output().unwrap().stderr));
            }
            panic!(
                "only {done} of {} account-sources completed a run in time; the workers said:\n{stderr}",
                ACCOUNTS * 2 + TWINS.len() * 2
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    for child in &mut workers[2..] {
        let pid = child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
    }
    for child in workers.drain(2..) {
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(143),
            "a worker stops on SIGTERM at a page boundary: {}",
            text(&output.stderr)
        );
    }

    // Every account's ledger equals its provider's data, each payment once.
    runtime.block_on(async {
        for (index, sandbox) in sandboxes.iter().enumerate() {
            let name = format!("business-{index:03}");
            let account = ledger.account(&name).await.unwrap().unwrap();
            let store = ledger.store(account.id, &account.name);
            let stored: Vec<_> = store
                .payments(&Filter::default())
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            assert_eq!(stored, payments_testkit::data_set(sandbox), "{name}");
        }
        for name in TWINS {
            let account = ledger.account(name).await.unwrap().unwrap();
            let store = ledger.store(account.id, &account.name);
            let stored: Vec<_> = store
                .payments(&Filter::default())
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            assert_eq!(stored, payments_testkit::data_set(&shared), "{name}");
        }
    });
    // Nothing was written twice: a payment committed again unchanged leaves no version, so each
    // version differs from the one after it. The providers' data did not change during the
    // round, so the only new version a payment may have is the one the first read of PayPro's
    // chargebacks makes (its `charged_back_amount`), once.
    let (repeated, most): (i64, i64) = runtime
        .block_on(client.query_one(
            "SELECT
                (SELECT count(*) FROM (
                    SELECT v.record, LEAD(v.record) OVER (PARTITION BY v.account_id, v.payment_id ORDER BY v.seq) AS next,
                           v.account_id, v.payment_id
                    FROM ledger.versions v) v
                 JOIN ledger.payments p ON p.account_id = v.account_id AND p.id = v.payment_id
                 WHERE COALESCE(v.next, p.record) = v.record),
                (SELECT COALESCE(max(n), 0) FROM (
                    SELECT count(*) AS n FROM ledger.versions GROUP BY account_id, payment_id) counts)",
            &[],
        ))
        .map(|row| (row.get(0), row.get(1)))
        .unwrap();
    assert_eq!(
        repeated, 0,
        "versions repeat the state after them: written twice"
    );
    assert!(most <= 1, "a payment has {most} versions of unchanged data");

    // No key was used by two runs at once (each account-source has a key of its own but the
    // twins, which share theirs): each run started after the one before it with that key
    // ended, or, for a run whose worker was killed, after its lease expired.
    let runs = runtime.block_on(runs(&client));
    let keys: HashMap<(i64, String), String> = runtime
        .block_on(client.query(
            "SELECT account_id, source_name, key_fingerprint FROM ledger.account_sources",
            &[],
        ))
        .unwrap()
        .into_iter()
        .map(|row| ((row.get(0), row.get(1)), row.get(2)))
        .collect();
    let mut by_key: HashMap<&str, Vec<&RunRow>> = HashMap::new();
    for (account_source, runs) in &runs {
        by_key
            .entry(keys[account_source].as_str())
            .or_default()
            .extend(runs);
    }
    assert_eq!(
        by_key.len(),
        ACCOUNTS * 2 + TWINS.len(),
        "the twins share one key per source"
    );
    let mut taken_over = 0;
    for (key, runs) in &mut by_key {
        runs.sort_by_key(|run| run.started_at);
        for pair in runs.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            let free_from = before
                .finished_at
                .or(before.lease_expires_at)
                .expect("a run has an end or a lease");
            assert!(
                after.started_at >= free_from,
                "key {key}: {:?} started at {} while {:?} held it until {free_from}",
                after.worker,
                after.started_at,
                before.worker
            );
            if before.finished_at.is_none() {
                taken_over += 1;
            }
        }
    }
    let killed_runs = runs
        .values()
        .flatten()
        .filter(|r| {
            r.finished_at.is_none()
                && r.worker
                    .as_deref()
                    .is_some_and(|w| killed.iter().any(|k| w.ends_with(k.as_str())))
        })
        .count();
    assert!(
        killed_runs > 0 && taken_over > 0,
        "the killed workers held runs ({killed_runs}) that others took over ({taken_over})"
    );

    // No key met a 429: the leases kept each key on one worker at a time.
    for (index, sandbox) in sandboxes.iter().enumerate() {
        assert_eq!(
            sandbox.count_status(Api::Mkp, 429) + sandbox.count_status(Api::PayPro, 429),
            0,
            "business-{index:03} met a 429"
        );
    }
    assert_eq!(
        shared.count_status(Api::Mkp, 429) + shared.count_status(Api::PayPro, 429),
        0,
        "the twins' shared key met a 429"
    );
}

#[test]
fn a_worker_stopped_by_sigterm_mid_run_releases_its_lease_at_once_for_the_next_worker() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("sigterm");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // One PayPro account whose full run takes a while: 40 pages at 50 ms each.
    let sandbox = runtime
        .block_on(Sandbox::start(SandboxConfig {
            seed: 5,
            mkp_links: 0,
            paypro_payments: 4_000,
            mkp_rate_limit: None,
            faults: payments_sandbox::Faults {
                latency: Duration::from_millis(50),
                ..payments_sandbox::Faults::default()
            },
            ..SandboxConfig::default()
        }))
        .unwrap();
    let master = MasterKey::generate();
    let ledger = runtime.block_on(PgLedger::connect(&url, 2)).unwrap();
    runtime
        .block_on(ledger.add_account(
            NewAccount {
                webhook_secrets: Vec::new(),
                name: "big".to_owned(),
                sources: vec![(
                    "paypro".to_owned(),
                    SecretString::from(sandbox.config().paypro_key.clone()),
                    SourceOptions {
                        base_url: Some(sandbox.paypro_base_url()),
                        every_secs: Some(3_600),
                        ..SourceOptions::default()
                    },
                )],
            },
            &master,
        ))
        .unwrap();
    let (client, connection) = runtime
        .block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls))
        .unwrap();
    runtime.spawn(connection);

    let mut first = worker(&url, &master.to_base64());
    let holding = Instant::now() + Duration::from_secs(60);
    while runtime.block_on(leases_held(&client, first.id())) == 0 {
        assert!(
            Instant::now() < holding,
            "the worker never leased the account"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    std::process::Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    let status = first.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(143),
        "stopped by SIGTERM at a page boundary"
    );
    // Released, due at once: no waiting for the lease to expire.
    let row = runtime
        .block_on(client.query_one(
            "SELECT leased_by, next_run_at <= now() FROM ledger.account_sources",
            &[],
        ))
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    assert!(row.get::<_, bool>(1), "due at once for the next worker");
    // Stopped, not failed: the fleet's status stays healthy while the next worker resumes.
    let fleet = payments()
        .args(["status", "--json"])
        .env("PAYMENTS_POSTGRES", &url)
        .output()
        .unwrap();
    assert_eq!(fleet.status.code(), Some(0), "{}", text(&fleet.stdout));
    assert!(
        text(&fleet.stdout).contains("\"last_run_unfinished\":true"),
        "{}",
        text(&fleet.stdout)
    );
    let partial: i64 = runtime
        .block_on(client.query_one("SELECT count(*) FROM ledger.payments", &[]))
        .unwrap()
        .get(0);
    assert!(
        partial > 0 && partial < 4_000,
        "stopped mid-run with {partial} payments"
    );

    // The next worker resumes from the checkpoint and completes the ledger.
    let output = payments()
        .args(["worker", "--until-idle"])
        .env("PAYMENTS_POSTGRES", &url)
        .env("PAYMENTS_MASTER_KEY", master.to_base64())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("(resumed)"),
        "{}",
        text(&output.stdout)
    );
    let account = runtime.block_on(ledger.account("big")).unwrap().unwrap();
    let stored: Vec<_> = runtime.block_on(async {
        ledger
            .store(account.id, &account.name)
            .payments(&Filter::default())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    });
    assert_eq!(stored, payments_testkit::data_set(&sandbox));

    // Monitoring that tells the truth: fresh within --max-age; overdue by more than it (no
    // worker took it), stale, named, exit 1.
    let status = |max_age: &str| {
        payments()
            .args(["status", "--json", "--max-age", max_age])
            .env("PAYMENTS_POSTGRES", &url)
            .output()
            .unwrap()
    };
    assert_eq!(status("1h").status.code(), Some(0));
    runtime
        .block_on(client.execute(
            "UPDATE ledger.account_sources SET next_run_at = now() - interval '2 hours'",
            &[],
        ))
        .unwrap();
    let overdue = status("1h");
    assert_eq!(overdue.status.code(), Some(1), "{}", text(&overdue.stdout));
    assert!(
        text(&overdue.stdout).contains("\"stale\":true"),
        "{}",
        text(&overdue.stdout)
    );
    let human = payments()
        .args(["status", "--max-age", "1h"])
        .env("PAYMENTS_POSTGRES", &url)
        .output()
        .unwrap();
    assert!(text(&human.stdout).contains("big paypro: ") && text(&human.stdout).contains("stale"));
}

/// The worker's printing, byte for byte: one line per run, a summary on stdout and an error on
/// stderr (escaped), and a failed run is due again after a minute while a completed one waits
/// for its `every`.
#[test]
fn a_worker_prints_one_line_per_run_and_retries_a_failure_after_a_minute() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("printing");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sandbox = runtime
        .block_on(Sandbox::start(SandboxConfig {
            seed: 11,
            mkp_links: 0,
            paypro_payments: 30,
            mkp_rate_limit: None,
            ..SandboxConfig::default()
        }))
        .unwrap();
    let master = MasterKey::generate();
    let ledger = runtime.block_on(PgLedger::connect(&url, 2)).unwrap();
    let every = |secs| SourceOptions {
        every_secs: Some(secs),
        ..SourceOptions::default()
    };
    runtime
        .block_on(ledger.add_account(
            NewAccount {
                webhook_secrets: Vec::new(),
                name: "acme".to_owned(),
                sources: vec![
                    (
                        "mkp".to_owned(),
                        SecretString::from("mkp_key".to_owned()),
                        // Stored by a library user, unchecked: the worker's build refuses it.
                        SourceOptions {
                            base_url: Some("https://exa\u{7}mple.com".to_owned()),
                            ..every(3_600)
                        },
                    ),
                    (
                        "paypro".to_owned(),
                        SecretString::from(sandbox.config().paypro_key.clone()),
                        SourceOptions {
                            base_url: Some(sandbox.paypro_base_url()),
                            ..every(3_600)
                        },
                    ),
                ],
            },
            &master,
        ))
        .unwrap();
    let output = payments()
        .args(["worker", "--until-idle", "--concurrency", "1"])
        .env("PAYMENTS_POSTGRES", &url)
        .env("PAYMENTS_MASTER_KEY", master.to_base64())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "a run failed");
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    // When the run ended, who, and what it did: one prefix, counts in the singular for one.
    let (at, line) = lines[0].split_once(' ').unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    assert_eq!(
        line,
        "acme/paypro: full run, 1 page, 6 requests; 30 new, 0 changed, 0 unchanged, 0 quarantined"
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.lines().any(|line| line
            == "error: acme/mkp: base URL `https://exa\\x07mple.com` is not usable: invalid international domain name"
            || line
                == "error: acme/mkp: base URL `https://exa\\x07mple.com` is not usable: invalid domain character"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{7}'), "{stderr}");

    let (client, connection) = runtime
        .block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls))
        .unwrap();
    runtime.spawn(connection);
    let due: Vec<(String, f64)> = runtime
        .block_on(client.query(
            "SELECT source_name, extract(epoch FROM next_run_at - now())::float8
             FROM ledger.account_sources ORDER BY source_name",
            &[],
        ))
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(due.len(), 2);
    assert_eq!(due[0].0, "mkp");
    assert!(
        (30.0..=60.0).contains(&due[0].1),
        "a failure is tried again after a minute: {due:?}"
    );
    assert!(
        (3_500.0..=3_600.0).contains(&due[1].1),
        "a completed run waits for its every: {due:?}"
    );
    // The failed run is recorded with its message.
    let error: Option<String> = runtime
        .block_on(client.query_one(
            "SELECT error FROM ledger.runs WHERE source_name = 'mkp'",
            &[],
        ))
        .unwrap()
        .get(0);
    assert!(
        error
            .unwrap()
            .starts_with("base URL `https://exa\u{7}mple.com` is not usable")
    );

    // `worker | head -c1`: a closed stdout is no panic, and no lease is left held.
    runtime
        .block_on(client.execute("UPDATE ledger.account_sources SET next_run_at = now()", &[]))
        .unwrap();
    let mut child = payments()
        .args(["worker", "--until-idle"])
        .env("PAYMENTS_POSTGRES", &url)
        .env("PAYMENTS_MASTER_KEY", master.to_base64())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_ne!(output.status.code(), Some(101), "{}", text(&output.stderr));
    assert!(
        !text(&output.stderr).contains("panicked"),
        "{}",
        text(&output.stderr)
    );
    let held: i64 = runtime
        .block_on(client.query_one(
            "SELECT count(*) FROM ledger.account_sources WHERE leased_by IS NOT NULL",
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(held, 0, "every lease released");

    // A database that refuses every lease (read-only): the round exits 1, and says why in
    // PostgreSQL's words with its SQLSTATE, not "db error".
    runtime
        .block_on(client.batch_execute(
            "UPDATE ledger.account_sources SET next_run_at = now();
             ALTER DATABASE printing SET default_transaction_read_only = on;",
        ))
        .unwrap();
    let refused = payments()
        .args(["worker", "--until-idle"])
        .env("PAYMENTS_POSTGRES", &url)
        .env("PAYMENTS_MASTER_KEY", master.to_base64())
        .output()
        .unwrap();
    let said = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(
        said.contains("cannot lease work")
            && said.contains("read-only")
            && said.contains("SQLSTATE 25006"),
        "{said}"
    );
    assert!(!said.contains("db error"), "{said}");

    // --poll 0 is a usage error, not a panic.
    let zero = payments()
        .args(["worker", "--until-idle", "--poll", "0"])
        .env("PAYMENTS_POSTGRES", &url)
        .env("PAYMENTS_MASTER_KEY", master.to_base64())
        .output()
        .unwrap();
    assert_eq!(zero.status.code(), Some(2), "{}", text(&zero.stderr));
    assert!(
        text(&zero.stderr).contains("--poll"),
        "{}",
        text(&zero.stderr)
    );
}
