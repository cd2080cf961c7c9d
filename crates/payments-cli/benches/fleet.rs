//! DESIGN.md's performance target 8, many accounts, in two parts, each one round with one
//! `payments worker --until-idle` process and one with four (8 account-sources at once each)
//! from one PostgreSQL ledger on a throwaway cluster:
//!
//! 1. 1,000 small accounts (2,000 account-sources), each behind a sandbox of its own with 100 ms
//!    of latency per request. The latency makes a round wait on the providers, as real ones do,
//!    rather than on this machine's two cores, which the sandboxes, the workers and PostgreSQL
//!    share. The throughput ratio (bound: at least 3×) and the peak memory of one worker
//!    (bound: under 200 MB).
//! 2. 10,000 account-sources (5,000 accounts, each its own sandbox and keys, a few payments
//!    each), all due when the workers start, each at a due time of its own (in an order
//!    unrelated to the accounts' ids). Besides the round times and their ratio, what a run
//!    costs: PostgreSQL statements and transactions per account-source run
//!    (`pg_stat_statements`, `pg_stat_database`), CPU per run (the workers', PostgreSQL's and
//!    the sandboxes', from `/proc`), and the fairness of the queue: the longest wait of any
//!    account-source from the workers' start to its run's start, and how far the order the
//!    runs were leased in (`ledger.runs.seq`) is from the order of `next_run_at` (inversions).
//!
//! Run by `cargo xtask bench`, or alone with `cargo bench -p payments-cli --bench fleet`. Needs
//! PostgreSQL's server programs (the bench starts a throwaway cluster); without them it says so
//! and measures nothing.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use payments_postgres::{MasterKey, PgLedger, SourceOptions};
use payments_sandbox::{Faults, Sandbox, SandboxConfig};
use payments_testkit::peak;
use payments_testkit::postgres::Cluster;

#[path = "../tests/it/sandbox_account.rs"]
mod sandbox_account;
use sandbox_account::sandbox_account;

/// Part 1: accounts, each with an MKP and a PayPro source.
const ACCOUNTS: usize = 1_000;
/// Part 2: accounts, each with an MKP and a PayPro source: 10,000 account-sources.
const MANY_ACCOUNTS: usize = 5_000;
/// Part 2's latency per request.
const MANY_LATENCY: Duration = Duration::from_millis(100);
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

/// Part 2's account: one MKP link and five PayPro payments.
fn tiny_account(seed: u64) -> SandboxConfig {
    SandboxConfig {
        mkp_links: 1,
        paypro_payments: 5,
        faults: Faults {
            latency: MANY_LATENCY,
            ..Faults::default()
        },
        ..small_account(seed)
    }
}

fn report(what: &str, measured: String, ratio: f64) {
    let verdict = if ratio <= 1.0 { "met" } else { "NOT met" };
    println!("target 8: {what}: {measured}; ratio to bound {ratio:.3} ({verdict})");
}

fn main() {
    let started = Instant::now();
    let Some(cluster) = Cluster::start_with_settings(&[
        "shared_preload_libraries=pg_stat_statements",
        "pg_stat_statements.max=1000",
    ]) else {
        println!("target 8: skipped (PostgreSQL is not installed)");
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let master = MasterKey::generate();
    thousand_accounts(&cluster, &runtime, &master);
    many_account_sources(&cluster, &runtime, &master);
    println!(
        "target 8: the benchmark took {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// Part 1: 1,000 accounts, each its own sandbox with 100 ms of latency.
fn thousand_accounts(cluster: &Cluster, runtime: &tokio::runtime::Runtime, master: &MasterKey) {
    let sandboxes = runtime.block_on(start_sandboxes(ACCOUNTS, small_account));
    // The same 1,000 accounts in two databases: one round for one worker, one for four.
    let mut rounds = Vec::new();
    for (database, workers) in [("one_worker", 1), ("four_workers", 4)] {
        let url = cluster.database(database);
        runtime.block_on(add_accounts(&url, &sandboxes, master));
        let round = round(&url, &master.to_base64(), workers);
        println!(
            "target 8: {workers} worker(s) × {CONCURRENCY}: a round of {ACCOUNTS} accounts ({} account-sources) in {:.1} s; peak memory of one worker {:.1} MB",
            ACCOUNTS * 2,
            round.elapsed.as_secs_f64(),
            round.peak_kib as f64 / 1024.0
        );
        rounds.push(round);
    }
    let speedup = rounds[0].elapsed.as_secs_f64() / rounds[1].elapsed.as_secs_f64();
    report(
        "four workers against one on a round of 1,000 accounts",
        format!("{speedup:.2}× the throughput against the bound of 3×"),
        3.0 / speedup,
    );
    let peak_mb = rounds[0].peak_kib as f64 / 1024.0;
    report(
        "peak memory of one worker keeping 1,000 accounts",
        format!("{peak_mb:.1} MB against 200 MB"),
        peak_mb / 200.0,
    );
}

/// Part 2: 10,000 account-sources due at once.
fn many_account_sources(cluster: &Cluster, runtime: &tokio::runtime::Runtime, master: &MasterKey) {
    let sources = MANY_ACCOUNTS * 2;
    let sandboxes = runtime.block_on(start_sandboxes(MANY_ACCOUNTS, |seed| {
        tiny_account(1_000_000 + seed)
    }));
    // The accounts are added once, to a template that each round's database is copied from.
    let template = cluster.database("many_template");
    let added = Instant::now();
    runtime.block_on(add_accounts(&template, &sandboxes, master));
    eprintln!(
        "target 8: {MANY_ACCOUNTS} accounts added in {:.1} s",
        added.elapsed().as_secs_f64()
    );
    let admin = cluster.url("postgres");
    runtime.block_on(async {
        let admin = connect(&admin).await;
        admin
            .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await
            .expect("pg_stat_statements is installed");
    });
    let mut rounds = Vec::new();
    for workers in [1, 4] {
        let database = format!("many_{workers}");
        runtime.block_on(copy_database(&admin, "many_template", &database));
        let url = cluster.url(&database);
        let due = runtime.block_on(make_due(&url));
        let before = runtime.block_on(Counters::read(&admin, &database));
        let round = round(&url, &master.to_base64(), workers);
        let after = runtime.block_on(Counters::read(&admin, &database));
        let served = runtime.block_on(served(&url, &due, round.started_at));
        let runs = served.runs as f64;
        let cost = after.since(&before);
        println!(
            "target 8: {workers} worker(s) × {CONCURRENCY}: a round of {sources} account-sources ({MANY_ACCOUNTS} accounts, {} ms of latency) in {:.1} s ({:.0} runs/s); peak memory of one worker {:.1} MB",
            MANY_LATENCY.as_millis(),
            round.elapsed.as_secs_f64(),
            runs / round.elapsed.as_secs_f64(),
            round.peak_kib as f64 / 1024.0
        );
        println!(
            "target 8: {workers} worker(s): per account-source run: {:.1} PostgreSQL statements ({:.1} besides BEGIN and COMMIT), {:.1} transactions, {:.2} ms of statement time; {:.1} requests to the provider",
            cost.statements / runs,
            (cost.statements - cost.begin_commit) / runs,
            cost.transactions / runs,
            cost.statement_ms / runs,
            served.requests as f64 / runs,
        );
        println!(
            "target 8: {workers} worker(s): CPU per account-source run: workers {:.2} ms, PostgreSQL {:.2} ms, sandboxes {:.2} ms; {:.2} ms in all, {:.1} s of the round's {:.1} s on 2 cores",
            cost.cpu_workers_ms / runs,
            cost.cpu_postgres_ms / runs,
            cost.cpu_sandboxes_ms / runs,
            cost.cpu_ms() / runs,
            cost.cpu_ms() / 1000.0 / 2.0,
            round.elapsed.as_secs_f64()
        );
        for (calls, total_ms, query) in &cost.top {
            println!(
                "target 8: {workers} worker(s):   {:>6.2} calls/run {:>8.3} ms/call {:>6.1} s in all: {query}",
                *calls as f64 / runs,
                total_ms / *calls as f64,
                total_ms / 1000.0,
            );
        }
        println!(
            "target 8: {workers} worker(s): every one of {} account-sources served once; longest wait from the workers' start to a run's start {:.1} s (median {:.1} s, {:.0}% of the round); {} inversions of next_run_at order in the lease order ({:.4}% of the {} pairs), {} account-sources leased before one due earlier",
            served.runs,
            served.longest_wait,
            served.median_wait,
            100.0 * served.longest_wait / round.elapsed.as_secs_f64(),
            served.inversions,
            100.0 * served.inversions as f64 / (runs * (runs - 1.0) / 2.0),
            served.runs * (served.runs - 1) / 2,
            served.overtakers,
        );
        rounds.push((round, served));
    }
    let speedup = rounds[0].0.elapsed.as_secs_f64() / rounds[1].0.elapsed.as_secs_f64();
    report(
        "four workers against one on a round of 10,000 account-sources",
        format!("{speedup:.2}× the throughput against the bound of 3×"),
        3.0 / speedup,
    );
    let peak_mb = rounds[0].0.peak_kib as f64 / 1024.0;
    report(
        "peak memory of one worker keeping 10,000 account-sources",
        format!("{peak_mb:.1} MB against 200 MB"),
        peak_mb / 200.0,
    );
    drop(sandboxes);
}

async fn start_sandboxes(count: usize, config: impl Fn(u64) -> SandboxConfig) -> Vec<Sandbox> {
    let mut sandboxes = Vec::with_capacity(count);
    for seed in 0..count as u64 {
        sandboxes.push(
            Sandbox::start(config(seed))
                .await
                .expect("the sandbox starts"),
        );
    }
    sandboxes
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the bench connects to PostgreSQL");
    tokio::spawn(connection);
    client
}

/// `CREATE DATABASE copy TEMPLATE template`, once the template's last connections are gone.
async fn copy_database(admin: &str, template: &str, copy: &str) {
    let admin = connect(admin).await;
    for attempt in 1.. {
        match admin
            .batch_execute(&format!("CREATE DATABASE {copy} TEMPLATE {template}"))
            .await
        {
            Ok(()) => return,
            // "source database is being accessed by other users": the ledger's pool is closing.
            Err(_) if attempt < 50 => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(error) => panic!("cannot copy the database {template}: {error}"),
        }
    }
}

/// Makes every account-source due, each at a time of its own 1 ms apart, in an order unrelated
/// to the accounts' ids, between 20 and 10 seconds ago; returns each one's due time (seconds
/// since the epoch) by account id and source.
async fn make_due(url: &str) -> HashMap<(i64, String), f64> {
    let client = connect(url).await;
    client
        .batch_execute(
            "UPDATE ledger.account_sources s
             SET next_run_at = now() - interval '20 seconds' + d.rank * interval '1 millisecond'
             FROM (SELECT account_id, source_name,
                          row_number() OVER (ORDER BY md5(account_id || '/' || source_name)) AS rank
                   FROM ledger.account_sources) d
             WHERE s.account_id = d.account_id AND s.source_name = d.source_name",
        )
        .await
        .expect("the account-sources are made due");
    client
        .batch_execute("VACUUM ANALYZE ledger.account_sources")
        .await
        .expect("the account-sources are vacuumed");
    client
        .query(
            "SELECT account_id, source_name, extract(epoch FROM next_run_at)::float8
             FROM ledger.account_sources",
            &[],
        )
        .await
        .expect("the due times are read")
        .into_iter()
        .map(|row| ((row.get(0), row.get(1)), row.get(2)))
        .collect()
}

/// How the round served the account-sources, from `ledger.runs`.
struct Served {
    runs: usize,
    requests: i64,
    /// From the workers' start to a run's start (its lease), in seconds.
    longest_wait: f64,
    median_wait: f64,
    /// Pairs of runs leased in the opposite order of their due times.
    inversions: u64,
    /// Runs leased while one due earlier had not been leased yet.
    overtakers: usize,
}

async fn served(url: &str, due: &HashMap<(i64, String), f64>, workers_started: f64) -> Served {
    let client = connect(url).await;
    let rows = client
        .query(
            "SELECT account_id, source_name, extract(epoch FROM started_at)::float8, requests, error
             FROM ledger.runs ORDER BY seq",
            &[],
        )
        .await
        .expect("the runs are read");
    let mut seen = HashMap::new();
    let mut order = Vec::with_capacity(rows.len());
    let mut waits = Vec::with_capacity(rows.len());
    let mut requests = 0;
    for row in &rows {
        let key: (i64, String) = (row.get(0), row.get(1));
        let error: Option<String> = row.get(4);
        assert!(error.is_none(), "{key:?}'s run failed: {error:?}");
        let due_at = *due.get(&key).expect("a run of a known account-source");
        assert!(
            seen.insert(key.clone(), ()).is_none(),
            "{key:?} was run twice"
        );
        let started_at: f64 = row.get(2);
        order.push(due_at);
        waits.push(started_at - workers_started);
        requests += row.get::<_, i64>(3);
    }
    assert_eq!(seen.len(), due.len(), "every account-source is run");
    waits.sort_by(f64::total_cmp);
    let mut overtakers = 0;
    let mut min_after = f64::INFINITY;
    for due_at in order.iter().rev() {
        if *due_at > min_after {
            overtakers += 1;
        }
        min_after = min_after.min(*due_at);
    }
    Served {
        runs: rows.len(),
        requests,
        longest_wait: waits.last().copied().unwrap_or_default(),
        median_wait: waits.get(waits.len() / 2).copied().unwrap_or_default(),
        inversions: inversions(&mut order),
        overtakers,
    }
}

/// How many pairs of `values` are out of order (`i < j` and `values[i] > values[j]`), by a
/// merge sort (it leaves them sorted).
fn inversions(values: &mut [f64]) -> u64 {
    if values.len() < 2 {
        return 0;
    }
    let middle = values.len() / 2;
    let mut count = inversions(&mut values[..middle]) + inversions(&mut values[middle..]);
    let mut merged = Vec::with_capacity(values.len());
    let (mut i, mut j) = (0, middle);
    while i < middle && j < values.len() {
        if values[i] <= values[j] {
            merged.push(values[i]);
            i += 1;
        } else {
            // Every value left in the first half is greater than this one.
            count += (middle - i) as u64;
            merged.push(values[j]);
            j += 1;
        }
    }
    merged.extend_from_slice(&values[i..middle]);
    merged.extend_from_slice(&values[j..]);
    values.copy_from_slice(&merged);
    count
}

/// What a round cost: PostgreSQL's statements in the round's database, and CPU time.
#[derive(Default)]
struct Counters {
    statements: f64,
    begin_commit: f64,
    statement_ms: f64,
    transactions: f64,
    /// (calls, total ms, query) of each statement.
    by_query: HashMap<String, (i64, f64)>,
    /// The most costly statements, by total time (only in a difference).
    top: Vec<(i64, f64, String)>,
    cpu_workers_ms: f64,
    cpu_postgres_ms: f64,
    cpu_sandboxes_ms: f64,
}

impl Counters {
    async fn read(admin: &str, database: &str) -> Counters {
        let client = connect(admin).await;
        client
            .batch_execute("SELECT pg_stat_clear_snapshot()")
            .await
            .expect("a fresh snapshot");
        let mut counters = Counters::default();
        for row in client
            .query(
                "SELECT query, calls, total_exec_time FROM pg_stat_statements s
                 JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
                &[&database],
            )
            .await
            .expect("pg_stat_statements is read")
        {
            let query: String = row.get(0);
            let calls: i64 = row.get(1);
            let ms: f64 = row.get(2);
            let entry = counters.by_query.entry(one_line(&query)).or_default();
            entry.0 += calls;
            entry.1 += ms;
        }
        counters.transactions = client
            .query_one(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
                &[&database],
            )
            .await
            .expect("pg_stat_database is read")
            .get::<_, i64>(0) as f64;
        let postmaster: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("the backend's pid")
            .get(0);
        let postmaster = stat(postmaster as u32).expect("the backend's /proc").ppid;
        let mut postgres = 0;
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some(stat) = stat(pid)
                && (stat.ppid == postmaster || pid == postmaster)
            {
                postgres += stat.utime + stat.stime;
                if pid == postmaster {
                    // The backends that ended: the postmaster waited for them.
                    postgres += stat.cutime + stat.cstime;
                }
            }
        }
        let own = stat(std::process::id()).expect("the bench's /proc");
        counters.cpu_postgres_ms = ticks_ms(postgres);
        // The workers are the only children that end during a round.
        counters.cpu_workers_ms = ticks_ms(own.cutime + own.cstime);
        counters.cpu_sandboxes_ms = ticks_ms(own.utime + own.stime);
        counters
    }

    /// What was counted between `before` and `self`.
    fn since(&self, before: &Counters) -> Counters {
        let mut top: Vec<(i64, f64, String)> = self
            .by_query
            .iter()
            .map(|(query, (calls, ms))| {
                let (calls_before, ms_before) =
                    before.by_query.get(query).copied().unwrap_or((0, 0.0));
                (calls - calls_before, ms - ms_before, query.clone())
            })
            .filter(|(calls, _, query)| *calls > 0 && !query.contains("pg_stat"))
            .collect();
        let statements = top.iter().map(|(calls, _, _)| *calls as f64).sum();
        let statement_ms = top.iter().map(|(_, ms, _)| ms).sum();
        let begin_commit = top
            .iter()
            .filter(|(_, _, query)| {
                let word = query.trim().to_ascii_uppercase();
                word == "BEGIN" || word == "COMMIT" || word == "ROLLBACK"
            })
            .map(|(calls, _, _)| *calls as f64)
            .sum();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        top.truncate(6);
        Counters {
            statements,
            begin_commit,
            statement_ms,
            transactions: self.transactions - before.transactions,
            by_query: HashMap::new(),
            top,
            cpu_workers_ms: self.cpu_workers_ms - before.cpu_workers_ms,
            cpu_postgres_ms: self.cpu_postgres_ms - before.cpu_postgres_ms,
            cpu_sandboxes_ms: self.cpu_sandboxes_ms - before.cpu_sandboxes_ms,
        }
    }

    fn cpu_ms(&self) -> f64 {
        self.cpu_workers_ms + self.cpu_postgres_ms + self.cpu_sandboxes_ms
    }
}

/// A statement on one line, cut to a readable length.
fn one_line(query: &str) -> String {
    let line = query.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(90) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

/// What `/proc/<pid>/stat` says of a process's parent and CPU time (in clock ticks).
struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command's name, which is in parentheses: from the state (field 3).
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        ppid: u32::try_from(field(4)?).ok()?,
        utime: field(14)?,
        stime: field(15)?,
        cutime: field(16)?,
        cstime: field(17)?,
    })
}

/// Clock ticks in milliseconds (`/proc` counts in USER_HZ, 100 a second on Linux).
fn ticks_ms(ticks: u64) -> f64 {
    ticks as f64 * 10.0
}

async fn add_accounts(url: &str, sandboxes: &[Sandbox], master: &MasterKey) {
    // Eight at a time, with two connections each: `add_account` reads the account back with a
    // second connection while it still holds the first.
    let ledger = PgLedger::connect(url, 16)
        .await
        .expect("the ledger is created");
    let ledger = &ledger;
    futures::stream::iter(sandboxes.iter().enumerate())
        .map(|(index, sandbox)| async move {
            let hourly = SourceOptions {
                every_secs: Some(3_600),
                ..SourceOptions::default()
            };
            let account = sandbox_account(
                format!("business-{index:04}"),
                sandbox,
                hourly.clone(),
                hourly,
            );
            ledger
                .add_account(account, master)
                .await
                .expect("the account is added");
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

/// A round's wall time, the largest peak resident set of any of its workers, and when it
/// started by PostgreSQL's clock (seconds since the epoch).
struct Round {
    elapsed: Duration,
    peak_kib: u64,
    started_at: f64,
}

/// Runs `workers` workers until nothing is due.
fn round(url: &str, master: &str, workers: usize) -> Round {
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs_f64();
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
    Round {
        elapsed,
        peak_kib,
        started_at,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn inversions_are_counted() {
        assert_eq!(super::inversions(&mut [1.0, 2.0, 3.0]), 0);
        assert_eq!(super::inversions(&mut [3.0, 2.0, 1.0]), 3);
        assert_eq!(super::inversions(&mut [2.0, 1.0, 4.0, 3.0, 0.0]), 6);
    }
}
