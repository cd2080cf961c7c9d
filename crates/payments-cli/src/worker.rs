//! `payments worker`: one of a fleet of workers that keep the accounts of a PostgreSQL ledger
//! current.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use payments_model::{PaymentSource, RateLimit};
use payments_postgres::{Lease, MasterKey, PgLedger};
use payments_sync::{RunRecord, StopReason, StopSignal, Store, Summary, SyncOptions, Syncer};
use secrecy::ExposeSecret;
use tokio::task::JoinSet;

use crate::duration::parse_duration;
use crate::outcome::{CliError, Exit, printable};
use crate::sync::{mkp_source, paypro_source, summary_line};

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
}

/// Printed after the options as written, line for line; each line fits in 80 columns.
const EXAMPLES: &str = r#"Examples:
  export PAYMENTS_POSTGRES=postgresql://payments@db.internal/ledgers
  export PAYMENTS_MASTER_KEY=...   # from `payments accounts master-key`
  payments worker --concurrency 16
  payments worker --until-idle      # one round, then exit"#;

/// What a run needs besides its lease.
struct Worker {
    ledger: PgLedger,
    master: MasterKey,
    name: String,
    args: WorkerArgs,
    stop: StopSignal,
    /// Runs of this worker that failed.
    failed: AtomicUsize,
}

pub(crate) async fn run(args: WorkerArgs) -> Result<Exit, CliError> {
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
    let stop = StopSignal::new();
    let signals = tokio::spawn(crate::sync::stop_on_signals(stop.clone()));
    let worker = Arc::new(Worker {
        ledger,
        master,
        name: worker_name(),
        args,
        stop: stop.clone(),
        failed: AtomicUsize::new(0),
    });
    tracing::info!(worker = %worker.name, "started");
    let mut running = JoinSet::new();
    loop {
        while running.len() < concurrency && stop.reason().is_none() {
            match worker
                .ledger
                .lease_due(&worker.name, worker.args.lease_ttl)
                .await
            {
                Ok(Some(lease)) => {
                    let worker = worker.clone();
                    running.spawn(async move { worker.sync(lease).await });
                }
                Ok(None) => break,
                Err(error) => {
                    eprintln!(
                        "error: cannot lease work: {}",
                        printable(&error.to_string())
                    );
                    break;
                }
            }
        }
        if stop.reason().is_some() && running.is_empty() {
            break;
        }
        if worker.args.until_idle && running.is_empty() {
            // Nothing was leased: nothing is due that another worker does not hold.
            break;
        }
        let sleep = worker.idle_sleep().await;
        tokio::select! {
            finished = running.join_next(), if !running.is_empty() => {
                if let Some(Err(error)) = finished && error.is_panic() {
                    std::panic::resume_unwind(error.into_panic());
                }
            }
            _ = tokio::time::sleep(sleep) => {}
            _ = stop.raised() => {}
        }
    }
    signals.abort();
    Ok(match stop.reason() {
        Some(reason) => Exit::stopped_by(reason),
        // A round (--until-idle) in which a run failed says so, for cron.
        None if worker.failed.load(Ordering::Relaxed) > 0 => Exit::Failed,
        None => Exit::Done,
    })
}

/// `host:pid`, unique among live workers, and readable in `ledger.runs`.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

impl Worker {
    /// How long to wait before looking for due work again: until the next source is due, at
    /// most --poll.
    async fn idle_sleep(&self) -> Duration {
        let poll = self.args.poll;
        match self.ledger.next_due().await {
            Ok(Some(at)) => (at - Utc::now())
                .to_std()
                .unwrap_or_default()
                .clamp(Duration::from_millis(50), poll),
            _ => poll,
        }
    }

    /// Syncs the leased source once, renewing the lease meanwhile, and releases it with its
    /// next due time.
    async fn sync(&self, lease: Lease) {
        let who = format!("{}/{}", lease.account_name, lease.source_name);
        // At least ten seconds between runs, whatever the options say.
        let every = Duration::from_secs(lease.options.every_secs.unwrap_or(300).max(10));
        let store = Arc::new(self.ledger.leased_store(&lease));
        let started_at = Utc::now();
        let outcome = match self.source(&lease) {
            Ok(source) => self.run(&lease, store.clone(), source).await,
            Err(message) => {
                let record = RunRecord {
                    started_at,
                    finished_at: Utc::now(),
                    summary: Summary {
                        source_name: lease.source_name.clone(),
                        ..Summary::default()
                    },
                    error: Some(message.clone()),
                };
                if let Err(error) = store.record_run(record).await {
                    tracing::warn!("{who}: the failed run was not recorded: {error}");
                }
                Err(message)
            }
        };
        let next = match &outcome {
            // Stopped by a signal: due at once, for the next worker.
            _ if self.stop.reason().is_some() => Duration::ZERO,
            Ok(_) => every,
            // A failure is tried again sooner, but never sooner than a minute.
            Err(_) => every.min(Duration::from_secs(60)),
        };
        match outcome {
            Ok(summary) => println!("{who}: {}", printable(&summary_line(&summary))),
            Err(message) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("error: {who}: {}", printable(&message));
            }
        }
        let next_run_at = Utc::now() + chrono::Duration::from_std(next).unwrap_or_default();
        if let Err(error) = self.ledger.release(&lease, next_run_at).await {
            // The lease then expires on its own, and the source is due again.
            eprintln!(
                "error: {who}: the lease was not released: {}",
                printable(&error.to_string())
            );
        }
    }

    /// The leased source, with its key opened and its options applied.
    fn source(&self, lease: &Lease) -> Result<Arc<dyn PaymentSource>, String> {
        let key = lease
            .api_key(&self.master)
            .map_err(|e| format!("the API key cannot be opened: {e}"))?;
        let options = &lease.options;
        match lease.source_name.as_str() {
            "mkp" => {
                let rate = match (options.rate_limit, options.rate_window_secs) {
                    (None, None) => None,
                    (limit, window) => Some(RateLimit::per(
                        limit.unwrap_or(mkp_api::RATE_LIMIT.limit).max(1),
                        window
                            .map_or(mkp_api::RATE_LIMIT.window, Duration::from_secs)
                            .max(Duration::from_secs(1)),
                    )),
                };
                let base_url = options
                    .base_url
                    .as_deref()
                    .unwrap_or(mkp_api::DEFAULT_BASE_URL);
                mkp_source(base_url, key.expose_secret(), rate)
            }
            "paypro" => {
                let base_url = options
                    .base_url
                    .as_deref()
                    .unwrap_or(paypro_api::DEFAULT_BASE_URL);
                paypro_source(base_url, key.expose_secret())
            }
            other => Err(format!(
                "`{other}` is not a source this version knows; upgrade the workers or remove the account"
            )),
        }
    }

    /// One run of the source, stopped at a page boundary when the worker stops or the lease is
    /// lost.
    async fn run(
        &self,
        lease: &Lease,
        store: Arc<payments_postgres::PgStore>,
        source: Arc<dyn PaymentSource>,
    ) -> Result<Summary, String> {
        let run_stop = StopSignal::new();
        let ttl = self.args.lease_ttl;
        let renewer = {
            let (ledger, lease, run_stop, stop) = (
                self.ledger.clone(),
                lease.clone(),
                run_stop.clone(),
                self.stop.clone(),
            );
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(ttl / 4) => {}
                        reason = stop.raised() => {
                            run_stop.stop(reason);
                            return;
                        }
                    }
                    match ledger.renew(&lease, ttl).await {
                        Ok(true) => {}
                        Ok(false) => {
                            run_stop.stop(StopReason::LeaseLost);
                            return;
                        }
                        // The next renewal tries again; commits are fenced by the lease anyway.
                        Err(error) => tracing::warn!("the lease was not renewed: {error}"),
                    }
                }
            })
        };
        let options = SyncOptions {
            max_duration: (!self.args.max_duration.is_zero()).then_some(self.args.max_duration),
            reverify_budget: self.args.reverify_budget,
            ..SyncOptions::default()
        };
        let mut syncer = Syncer::new(store, options);
        syncer.add_source(source).with_stop(run_stop);
        let result = syncer.run().await.pop();
        renewer.abort();
        match result {
            Some(Ok(summary)) => Ok(summary),
            Some(Err(error)) => Err(error.to_string()),
            None => Err("the run produced no result".to_owned()),
        }
    }
}
