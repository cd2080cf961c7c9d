//! `payments worker`: one of a fleet of workers that keep the accounts of a PostgreSQL ledger
//! current.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use payments_fleet::{Event, Worker, WorkerOptions, worker_name};
use payments_serve::{App, Metrics, fleet_router};
use payments_sync::{StopSignal, SyncOptions};

use crate::duration::parse_duration;
use crate::outcome::{CliError, Exit, printable};
use crate::sync::run_line;

/// Syncs the accounts of a PostgreSQL ledger, as one of any number of workers.
///
/// The worker leases due account-sources from the database (`FOR UPDATE SKIP LOCKED`), syncs
/// each with the same engine as `payments sync`, committing page by page, renews the lease while
/// it works, and releases it with the next due time (each source's `--every`, 5 minutes unless
/// `payments accounts add` said otherwise). Start as many workers as you like, on as many
/// machines: one key is synced by one worker at a time, so its rate limit holds across the
/// fleet. A worker that dies keeps its leases until they expire (--lease-ttl); another worker
/// then resumes each from its last committed page.
///
/// The account keys are sealed with the master key in PAYMENTS_MASTER_KEY. SIGTERM or SIGINT
/// stops the runs at the next page boundary and releases their leases at once, due for the next
/// worker.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct WorkerArgs {
    #[command(flatten)]
    db: crate::accounts::PostgresArgs,
    /// How many account-sources this worker syncs at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=512))]
    concurrency: u32,
    /// How long a lease holds unless renewed (renewed every quarter of it). Keep it at least 1.5
    /// times the longest rate-limit window (MKP: 60 s), so that a dead worker's last requests
    /// have left the window before another worker takes its key over.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    lease_ttl: Duration,
    /// The longest one run may take; past it, the run stops at a page boundary and the next one
    /// resumes.
    #[arg(long, value_name = "DURATION", default_value = "4m", value_parser = parse_duration)]
    max_duration: Duration,
    /// How long an idle worker sleeps at most before it looks for due work again.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    poll: Duration,
    /// Requests each incremental run spends on re-reading what was verified longest ago.
    #[arg(long, value_name = "N", default_value_t = payments_sync::DEFAULT_REVERIFY_BUDGET, value_parser = clap::value_parser!(u32).range(0..=1000))]
    reverify_budget: u32,
    /// Exit once nothing is due and this worker's runs are done (one round, from cron or a
    /// benchmark) instead of waiting for the next due time.
    #[arg(long)]
    until_idle: bool,
    /// Take every account's webhooks on this address (POST /webhooks/ACCOUNT/PROVIDER, with
    /// the secrets `payments accounts add` sealed), and serve /healthz and /metrics. Put TLS in
    /// front; any worker takes any account's webhook and wakes the fleet.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// With --listen: /metrics shows the series of at most this many account-sources (the
    /// worst first: longest overdue, failing, longest since a success); the fleet's aggregates
    /// always count them all. 0 shows the aggregates alone.
    #[arg(long, value_name = "N", default_value_t = 100)]
    metrics_accounts: usize,
}

/// Printed after the options as written, line for line; each line fits in 80 columns.
const EXAMPLES: &str = r#"Examples:
  export PAYMENTS_POSTGRES=postgresql://payments@db.internal/ledgers
  export PAYMENTS_MASTER_KEY=...   # from `payments accounts master-key`
  payments worker --concurrency 16
  payments worker --until-idle      # one round, then exit
  payments worker --listen 127.0.0.1:8080   # and take webhooks"#;

pub(crate) async fn run(args: WorkerArgs) -> Result<Exit, CliError> {
    if args.poll.is_zero() {
        return Err(CliError::config(
            "--poll must be at least 1s: how long an idle worker sleeps before it looks for due work again",
        ));
    }
    if args.lease_ttl < Duration::from_secs(2) {
        return Err(CliError::config(
            "--lease-ttl must be at least 2s (and at least 1.5 times the longest rate-limit window)",
        ));
    }
    let master = crate::accounts::master_key()?;
    let concurrency = args.concurrency as usize;
    let ledger = args.db.connect_with(concurrency + 2).await?;
    ledger
        .check_master_key(&master)
        .await
        .map_err(|e| CliError::config(e.to_string()))?;
    let fingerprinted = ledger
        .fingerprint_keys(&master)
        .await
        .map_err(|e| CliError::config(e.to_string()))?;
    if !fingerprinted.unopened.is_empty() {
        tracing::warn!(
            "the key of {} does not open with PAYMENTS_MASTER_KEY, so it has no fingerprint and one key, one lease cannot hold for it; its runs fail until its key is given anew (payments accounts update NAME --source SOURCE --key)",
            fingerprinted.unopened.join(", ")
        );
    }
    if let Some(warning) = ledger.unencrypted_warning().await? {
        tracing::warn!("{warning}");
    }
    let stop = StopSignal::new();
    let signals = tokio::spawn(crate::sync::stop_on_signals(stop.clone()));
    let options = WorkerOptions {
        name: worker_name(),
        concurrency,
        lease_ttl: args.lease_ttl,
        poll: args.poll,
        until_idle: args.until_idle,
        sync: SyncOptions {
            max_duration: (!args.max_duration.is_zero()).then_some(args.max_duration),
            reverify_budget: args.reverify_budget,
            ..SyncOptions::default()
        },
    };
    let metrics = Arc::new(Metrics::new());
    let worker = Arc::new(
        Worker::new(ledger, master, options, stop.clone())
            .with_events(print)
            .with_metrics(metrics.clone()),
    );
    let http = match args.listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
                CliError::config(format!(
                    "cannot listen on {address}: {e}; choose another --listen address"
                ))
            })?;
            let address = listener.local_addr().unwrap_or(address);
            let app = App {
                inlet: Arc::new(worker.inlet()),
                health: Arc::new(worker.health()),
                metrics,
                gauges: Some(Arc::new(worker.gauges(args.metrics_accounts))),
            };
            say(format!(
                "listening on http://{address}: webhooks at /webhooks/ACCOUNT/PROVIDER, /healthz, /metrics"
            ));
            Some(tokio::spawn(payments_serve::serve(
                listener,
                fleet_router(app),
                stop.clone(),
            )))
        }
        None => None,
    };
    tracing::info!(worker = %worker.options().name, "started");
    // On a terminal, a word at once: the first run's line may be a while away.
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) && !crate::output::quiet() {
        let options = worker.options();
        say(format!(
            "worker {} started: up to {} runs at once, looking for due work every {} s{}; Ctrl-C stops it at the next page boundary",
            printable(&options.name),
            options.concurrency,
            options.poll.as_secs(),
            if options.until_idle {
                ", until none is due"
            } else {
                ""
            }
        ));
    }
    worker.clone().run().await;
    if let Some(http) = http {
        http.abort();
    }
    signals.abort();
    Ok(match stop.reason() {
        Some(reason) => Exit::stopped_by(reason),
        // A round (--until-idle) in which a run failed, or due work could not be leased, says
        // so, for cron.
        None if worker.failed_runs() > 0 || worker.lease_failures() > 0 => Exit::Failed,
        None => Exit::Done,
    })
}

/// One line per run: its summary on stdout, after when it ended, or its error on stderr (a line
/// starting `error:`, as every error); and the queue's failures on stderr.
fn print(event: &Event<'_>) {
    match event {
        Event::RunEnded { lease, outcome } => {
            let who = format!("{}/{}", lease.account_name, lease.source_name);
            let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            match outcome {
                Ok(summary) => say(format!("{at} {who}: {}", printable(&run_line(summary)))),
                Err(error) => complain(format!("error: {who}: {}", printable(&error.to_string()))),
            }
        }
        Event::LeaseFailed { error } => {
            complain(format!(
                "error: cannot lease work: {}",
                printable(&error.to_string())
            ));
        }
        Event::ReleaseFailed { lease, error } => {
            // The lease then expires on its own, and the source is due again.
            complain(format!(
                "error: {}/{}: the lease was not released: {}",
                lease.account_name,
                lease.source_name,
                printable(&error.to_string())
            ));
        }
        _ => {}
    }
}

/// A line on stdout; a stdout that was closed (`worker | head -c1`) loses it, and the worker
/// goes on (a panic would leave its leases held until they expire).
fn say(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// A line on stderr, as [`say`].
fn complain(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
