//! `payments serve`: the long-running form of `sync` for one ledger, with webhooks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use payments_serve::{
    App, Health, HealthReport, LedgerInlet, Metrics, WebhookSecret, ledger_router,
};
use payments_sources::Source;
use payments_sqlite::SqliteStore;
use payments_sync::{Events, Service, ServiceEvent, StopSignal, Syncer};
use serde_json::json;

use crate::duration::parse_duration;
use crate::outcome::{CliError, Exit, printable};
use crate::sync::{SyncArgs, stop_on_signals, summary_line};

/// Keeps the ledger up to date from one long-running process: runs each source every --every,
/// takes the providers' webhooks and reads what they name within seconds.
///
/// A webhook is a hint, never data: it is verified (PayPro's signature always: set
/// PAYPRO_WEBHOOK_SECRET; MKP's when MKP_WEBHOOK_SECRET is set), stored in the ledger's inbox,
/// answered 200, and then the payment (PayPro) or the payment link's payments (MKP) are read
/// again from the provider and committed like a page. A lost webhook is healed by the next run.
/// It holds the ledger's sync lock, so `payments sync` from cron must be stopped first. SIGTERM
/// or Ctrl-C stops it cleanly (the page in flight is dropped, as `sync` does).
///
/// It also serves GET /healthz (200 while every source's last run succeeded within twice
/// --every, else 503; the body is `payments status --json`'s) and GET /metrics (Prometheus).
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    sync: SyncArgs,
    /// How often each source is run (30s, 5m, 1h; at least 10s).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_every)]
    every: Duration,
    /// The address to take webhooks on, and /healthz and /metrics (put TLS in front: see
    /// README's "Real time: webhooks").
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

/// Printed after the options as written, line for line; each line fits in 80 columns.
const EXAMPLES: &str = r#"Examples:
  set -a; . ~/payments.env; set +a    # keys and webhook secrets
  payments serve --db ledger.db --every 5m --listen 127.0.0.1:8080

Register https://your.host/webhooks/paypro at PayPro and
https://your.host/webhooks/mkp at MijnKlantportaal; a reverse proxy with TLS
forwards them to --listen. The secrets come from PAYPRO_WEBHOOK_SECRET and
MKP_WEBHOOK_SECRET only (never a flag: flags show in the process list)."#;

fn parse_every(text: &str) -> Result<Duration, String> {
    let every = parse_duration(text)?;
    if every < Duration::from_secs(10) {
        return Err("--every must be at least 10s (a run every few seconds would spend the rate limit on polling; webhooks bring changes sooner)".to_owned());
    }
    Ok(every)
}

/// A webhook secret from the variable `name`, when it is set and not empty.
fn secret(name: &str) -> Result<Option<WebhookSecret>, CliError> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => WebhookSecret::new(value)
            .map(Some)
            .map_err(|e| CliError::config(format!("{name}: {e}"))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(CliError::config(format!(
            "{name} is not valid UTF-8; set it to the webhook's secret as the provider shows it"
        ))),
    }
}

pub(crate) async fn run(args: ServeArgs) -> Result<Exit, CliError> {
    let (db, sources, options) = args.sync.for_serve()?;
    let paypro = secret("PAYPRO_WEBHOOK_SECRET")?;
    let mkp = secret("MKP_WEBHOOK_SECRET")?;
    let store = Arc::new(db.open()?);
    store.check_writable()?;
    let _lock = store.lock_for_sync()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            CliError::config(format!(
                "cannot listen on {}: {e}; choose another --listen address",
                args.listen
            ))
        })?;
    let metrics = Arc::new(Metrics::new());
    let stop = StopSignal::new();
    let signals = tokio::spawn(stop_on_signals(stop.clone()));
    let mut syncer = Syncer::new(store.clone(), options);
    let names: Vec<String> = sources.iter().map(|s| s.name().to_owned()).collect();
    for source in sources {
        syncer.add_source(source);
    }
    let counted = metrics.clone();
    syncer
        .with_events(Events::to(move |event| counted.on_sync(event)))
        .with_stop(stop.clone());
    let counted = metrics.clone();
    let service = Arc::new(Service::new(syncer, args.every).with_report(move |event| {
        counted.on_service(event);
        report(event);
    }));
    if paypro.is_none() && names.iter().any(|name| name == Source::PayPro.as_str()) {
        eprintln!(
            "PAYPRO_WEBHOOK_SECRET is not set: PayPro's webhooks are refused (401), and PayPro is read every {} only",
            humantime(args.every)
        );
    }
    if mkp.is_none() && names.iter().any(|name| name == Source::Mkp.as_str()) {
        eprintln!(
            "MKP_WEBHOOK_SECRET is not set: MKP's webhooks are taken unsigned, so anyone who can reach --listen can make this process read links (each costs MKP requests); set it to the webhook's secret"
        );
    }
    let app = App {
        inlet: Arc::new(LedgerInlet::new(service.clone(), paypro, mkp)),
        health: Arc::new(LedgerHealth {
            store: store.clone(),
            max_age: args.every * 2,
        }),
        metrics,
        gauges: None,
    };
    let address = listener.local_addr().unwrap_or(args.listen);
    println!(
        "{}serving {}: webhooks at http://{address}/webhooks/{{paypro,mkp}}, /healthz, /metrics; each source runs every {}",
        stamp(),
        printable(&names.join(" and ")),
        humantime(args.every),
    );
    let http = tokio::spawn(payments_serve::serve(
        listener,
        ledger_router(app),
        stop.clone(),
    ));
    service.run().await;
    http.abort();
    signals.abort();
    let reason = stop.reason();
    println!(
        "{}stopped{}: what was committed is kept; pending webhooks are read at the next start",
        stamp(),
        reason.map(|r| format!(" by {r}")).unwrap_or_default()
    );
    // Stopping is what a service manager asks of a service: a clean exit.
    Ok(Exit::Done)
}

/// One line per run and per batch of webhooks read, on stdout, each with its time.
fn report(event: &ServiceEvent<'_>) {
    match event {
        ServiceEvent::RunEnded { result, .. } => match result {
            Ok(summary) => println!("{}{}", stamp(), printable(&summary_line(summary))),
            Err(error) => println!("{}error: {}", stamp(), printable(&error.to_string())),
        },
        ServiceEvent::HintsRead {
            source_name,
            read,
            latencies,
        } => {
            let slowest = latencies.iter().max().copied().unwrap_or_default();
            let mut line = format!(
                "{source_name}: {} webhooks: {} read, {} requests; {} new, {} changed, {} unchanged, {} quarantined; committed within {} ms",
                latencies.len(),
                read.read,
                read.requests,
                read.counts.new,
                read.counts.changed,
                read.counts.unchanged,
                read.quarantined,
                slowest.as_millis()
            );
            if read.unknown > 0 {
                line.push_str(&format!(", {} unknown to the provider", read.unknown));
            }
            if !read.failed.is_empty() {
                line.push_str(&format!(
                    ", {} could not be read (the run started now reads them)",
                    read.failed.len()
                ));
            }
            println!("{}{}", stamp(), printable(&line));
        }
        ServiceEvent::InboxFailed { source_name, error } => {
            println!(
                "{}{source_name}: the inbox failed: {}; tried again shortly",
                stamp(),
                printable(&error.to_string())
            );
        }
        _ => {}
    }
}

fn stamp() -> String {
    format!(
        "{} ",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

fn humantime(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `/healthz`: `status --json`'s facts, healthy while no source is failing and each completed
/// a run within twice --every.
struct LedgerHealth {
    store: Arc<SqliteStore>,
    max_age: Duration,
}

#[async_trait]
impl Health for LedgerHealth {
    async fn check(&self) -> HealthReport {
        match crate::status::health(&*self.store, self.max_age).await {
            Ok((healthy, body)) => HealthReport { healthy, body },
            Err(error) => HealthReport {
                healthy: false,
                body: json!({ "error": printable(&error.message) }),
            },
        }
    }
}
