//! `payments sandbox`: both APIs on loopback, for your own tests and scripts.

use std::io::Write;
use std::time::Duration;

use payments_sandbox::{Burst, Faults, RateLimitWindow, RetryAfterForm, Sandbox, SandboxConfig};

use crate::outcome::{CliError, Exit};

/// Runs both APIs on loopback, for your own tests and scripts.
///
/// A local server that behaves like both APIs (deterministic data from a seed, optional faults)
/// runs until interrupted. It prints the base URLs and keys as NAME=value lines first, so a
/// script can load them and point `payments sync` at it.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct SandboxArgs {
    /// The port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The seed of the data set: the same seed gives the same payments.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many MKP payment links.
    #[arg(long, default_value_t = 60, value_name = "N")]
    mkp_links: usize,
    /// How many PayPro payments.
    #[arg(long, default_value_t = 500, value_name = "N")]
    paypro_payments: usize,
    /// MKP requests allowed per window (0 turns the limit off).
    #[arg(long, default_value_t = 60, value_name = "N")]
    mkp_rate_limit: u32,
    /// The MKP rate-limit window, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    mkp_rate_window: u64,
    /// Latency added to every response, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    latency_ms: u64,
    /// Share of requests answered with a 5xx (0 to 1).
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    server_error_rate: f64,
    /// Share of connections dropped mid-request (0 to 1).
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    reset_rate: f64,
    /// Share of bodies cut short (0 to 1).
    #[arg(long, default_value_t = 0.0, value_name = "RATE")]
    truncate_rate: f64,
    /// Every N requests, start a burst of 429 answers.
    #[arg(long, value_name = "N")]
    burst_429_every: Option<u64>,
    /// How many 429 answers a burst has.
    #[arg(long, default_value_t = 3, value_name = "N")]
    burst_429_length: u64,
    /// The Retry-After of a burst, in seconds.
    #[arg(long, default_value_t = 1, value_name = "SECONDS")]
    burst_retry_after: u64,
    /// Send Retry-After as an HTTP date instead of seconds.
    #[arg(long)]
    burst_http_date: bool,
    /// Insert a new payment every N requests, while a sync pages.
    #[arg(long, value_name = "N")]
    insert_every: Option<u64>,
    /// Point next links at this foreign origin (a sync must refuse them).
    #[arg(long, value_name = "URL")]
    foreign_next: Option<String>,
    /// Send the same next cursor again and again (a sync must stop).
    #[arg(long)]
    repeat_cursor: bool,
    /// Serve every Nth PayPro payment with an amount that is not whole cents (a sync must
    /// quarantine it and keep the rest).
    #[arg(long, value_name = "N")]
    bad_record_every: Option<u64>,
}

/// Printed after the options as written, line for line; each line fits in 80 columns.
const EXAMPLES: &str = r#"Example, in a shell script:
  payments sandbox --seed 7 > sandbox.env &
  sleep 1; set -a; . ./sandbox.env; set +a
  payments sync --db sandbox.db && payments export --db sandbox.db

With faults, to see a sync retry and quarantine:
  payments sandbox --server-error-rate 0.1 --burst-429-every 50 \
      --bad-record-every 40"#;

impl SandboxArgs {
    fn config(&self) -> Result<SandboxConfig, CliError> {
        for (flag, rate) in [
            ("--server-error-rate", self.server_error_rate),
            ("--reset-rate", self.reset_rate),
            ("--truncate-rate", self.truncate_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(CliError::config(format!(
                    "{flag} is {rate}; give a share between 0 and 1, such as 0.05"
                )));
            }
        }
        Ok(SandboxConfig {
            seed: self.seed,
            mkp_links: self.mkp_links,
            paypro_payments: self.paypro_payments,
            port: self.port,
            mkp_rate_limit: (self.mkp_rate_limit > 0).then(|| RateLimitWindow {
                limit: self.mkp_rate_limit,
                window: Duration::from_secs(self.mkp_rate_window.max(1)),
            }),
            faults: Faults {
                latency: Duration::from_millis(self.latency_ms),
                server_error_rate: self.server_error_rate,
                reset_rate: self.reset_rate,
                truncate_rate: self.truncate_rate,
                burst_429: self.burst_429_every.map(|every| Burst {
                    every,
                    length: self.burst_429_length,
                    retry_after: Duration::from_secs(self.burst_retry_after),
                    form: if self.burst_http_date {
                        RetryAfterForm::HttpDate
                    } else {
                        RetryAfterForm::Seconds
                    },
                }),
                insert_every: self.insert_every,
                foreign_next: self.foreign_next.clone(),
                repeat_cursor: self.repeat_cursor,
                bad_record_every: self.bad_record_every,
            },
            ..SandboxConfig::default()
        })
    }
}

/// The `NAME=value` lines that point `payments sync` at `sandbox`.
pub(crate) fn environment(sandbox: &Sandbox) -> [(&'static str, String); 4] {
    let config = sandbox.config();
    [
        ("MKP_BASE_URL", sandbox.mkp_base_url()),
        ("MKP_API_KEY", config.mkp_key.clone()),
        ("PAYPRO_BASE_URL", sandbox.paypro_base_url()),
        ("PAYPRO_API_KEY", config.paypro_key.clone()),
    ]
}

pub(crate) async fn run(args: SandboxArgs) -> Result<Exit, CliError> {
    let sandbox = Sandbox::start(args.config()?).await.map_err(|e| {
        CliError::config(format!(
            "cannot listen on 127.0.0.1:{} ({e}); choose another --port, or 0 for any free one",
            args.port
        ))
    })?;
    let mut stdout = std::io::stdout().lock();
    for (name, value) in environment(&sandbox) {
        let _ = writeln!(stdout, "{name}={value}");
    }
    let _ = stdout.flush();
    drop(stdout);
    eprintln!(
        "sandbox: listening on {} (seed {}, {} MKP links, {} PayPro payments); Ctrl-C stops it",
        sandbox.addr(),
        args.seed,
        args.mkp_links,
        args.paypro_payments
    );
    shutdown_signal().await;
    eprintln!("sandbox: stopped");
    Ok(Exit::Done)
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
