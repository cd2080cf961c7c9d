//! `payments sandbox`: both APIs on loopback, for your own tests and scripts.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use payments_sandbox::{
    Burst, Faults, RateLimitWindow, RetryAfterForm, Sandbox, SandboxConfig, WebhookDelivery,
};

use crate::outcome::{CliError, Exit};

/// Runs both APIs on loopback, for your own tests and scripts.
///
/// A local server that behaves like both APIs (deterministic data from a seed, optional faults)
/// runs until interrupted. It prints the base URLs and keys as NAME=value lines first, so a
/// script can load them and point `payments sync` at it.
///
/// With --webhook-url it also POSTs a webhook for each change it makes, as the providers would:
/// PayPro's events to URL/webhooks/paypro, MKP's payment-link-paid and payment-link-expired to
/// URL/webhooks/mkp, signed with --webhook-secret when given (then printed as
/// PAYPRO_WEBHOOK_SECRET and MKP_WEBHOOK_SECRET, like the sandbox's own keys).
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
    /// Deliver webhooks to this base URL: PayPro's to URL/webhooks/paypro, MKP's to
    /// URL/webhooks/mkp.
    #[arg(long, value_name = "URL")]
    webhook_url: Option<String>,
    /// Sign both providers' webhooks with this secret (PayPro's HMAC over timestamp and body,
    /// MKP's over the body).
    #[arg(long, value_name = "SECRET", requires = "webhook_url", value_parser = parse_secret)]
    webhook_secret: Option<Secret>,
    /// Share of webhooks lost (0 to 1).
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "RATE",
        requires = "webhook_url"
    )]
    webhook_drop_rate: f64,
    /// Send each webhook N times.
    #[arg(long, default_value_t = 1, value_name = "N", requires = "webhook_url")]
    webhook_duplicate: u32,
    /// Send webhooks made close together in a shuffled order.
    #[arg(long, requires = "webhook_url")]
    webhook_reorder: bool,
    /// Send no webhook sooner than this after its change, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS", requires = "webhook_url")]
    webhook_delay_ms: u64,
    /// Share of webhooks sent with a wrong signature (0 to 1).
    #[arg(
        long,
        default_value_t = 0.0,
        value_name = "RATE",
        requires = "webhook_url"
    )]
    webhook_mis_sign_rate: f64,
    /// Every MS milliseconds, make a change (pay or refund a PayPro payment, or pay an MKP
    /// payment), so that a demo sees webhooks flow.
    #[arg(long, value_name = "MS")]
    churn_every_ms: Option<u64>,
}

/// A secret given on the command line: never shown by `Debug`.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

fn parse_secret(text: &str) -> Result<Secret, String> {
    if text.trim().is_empty() {
        return Err("a webhook secret must not be empty".to_owned());
    }
    if text.chars().any(char::is_control) {
        return Err("a webhook secret must not hold control characters".to_owned());
    }
    Ok(Secret(text.to_owned()))
}

/// Printed after the options as written, line for line; each line fits in 80 columns.
const EXAMPLES: &str = r#"Example, in a shell script:
  payments sandbox --seed 7 > sandbox.env &
  sleep 1; set -a; . ./sandbox.env; set +a
  payments sync --db sandbox.db && payments export --db sandbox.db

With faults, to see a sync retry and quarantine:
  payments sandbox --server-error-rate 0.1 --burst-429-every 50 \
      --bad-record-every 40

With webhooks to a local receiver, a change every second, some lost:
  payments sandbox --webhook-url http://127.0.0.1:8080 \
      --webhook-secret s3cret --churn-every-ms 1000 --webhook-drop-rate 0.1"#;

impl SandboxArgs {
    fn config(&self) -> Result<SandboxConfig, CliError> {
        for (flag, rate) in [
            ("--server-error-rate", self.server_error_rate),
            ("--reset-rate", self.reset_rate),
            ("--truncate-rate", self.truncate_rate),
            ("--webhook-drop-rate", self.webhook_drop_rate),
            ("--webhook-mis-sign-rate", self.webhook_mis_sign_rate),
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

    /// Where and how webhooks are delivered; `None` without --webhook-url.
    fn webhooks(&self) -> Result<Option<WebhookDelivery>, CliError> {
        let Some(url) = &self.webhook_url else {
            return Ok(None);
        };
        let base = url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://"))
            || base.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(CliError::config(format!(
                "--webhook-url `{}` is not an http:// or https:// URL; give the receiver's base, such as http://127.0.0.1:8080",
                url.escape_default()
            )));
        }
        if self.webhook_duplicate == 0 {
            return Err(CliError::config(
                "--webhook-duplicate is 0; give how many times each webhook is sent, 1 or more"
                    .to_owned(),
            ));
        }
        let secret = self.webhook_secret.as_ref().map(|s| s.0.clone());
        Ok(Some(WebhookDelivery {
            paypro_url: Some(format!("{base}/webhooks/paypro")),
            mkp_url: Some(format!("{base}/webhooks/mkp")),
            paypro_secret: secret.clone(),
            mkp_secret: secret,
            drop_rate: self.webhook_drop_rate,
            duplicate: self.webhook_duplicate,
            reorder: self.webhook_reorder,
            delay: Duration::from_millis(self.webhook_delay_ms),
            mis_sign_rate: self.webhook_mis_sign_rate,
        }))
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
    let webhooks = args.webhooks()?;
    if args.churn_every_ms == Some(0) {
        return Err(CliError::config(
            "--churn-every-ms is 0; give the milliseconds between changes, such as 1000".to_owned(),
        ));
    }
    let sandbox = Sandbox::start(args.config()?).await.map_err(|e| {
        CliError::config(format!(
            "cannot listen on 127.0.0.1:{} ({e}); choose another --port, or 0 for any free one",
            args.port
        ))
    })?;
    let sandbox = Arc::new(sandbox);
    let mut stdout = std::io::stdout().lock();
    for (name, value) in environment(&sandbox) {
        let _ = writeln!(stdout, "{name}={value}");
    }
    // The secret is the sandbox's own, printed like its keys, for `payments serve` to read.
    if let Some(secret) = &args.webhook_secret {
        for name in ["PAYPRO_WEBHOOK_SECRET", "MKP_WEBHOOK_SECRET"] {
            let _ = writeln!(stdout, "{name}={}", secret.0);
        }
    }
    let _ = stdout.flush();
    drop(stdout);
    if let Some(webhooks) = webhooks {
        eprintln!(
            "sandbox: webhooks to {} and {}",
            webhooks.paypro_url.as_deref().unwrap_or_default(),
            webhooks.mkp_url.as_deref().unwrap_or_default()
        );
        sandbox.set_webhooks(Some(webhooks));
    }
    let churn = args.churn_every_ms.map(|every| {
        let sandbox = sandbox.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(every));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            for n in 0.. {
                tick.tick().await;
                if let Some(change) = sandbox.churn(n) {
                    let change: String = change.chars().filter(|c| !c.is_control()).collect();
                    eprintln!("sandbox: {change}");
                }
            }
        })
    });
    eprintln!(
        "sandbox: listening on {} (seed {}, {} MKP links, {} PayPro payments); Ctrl-C stops it",
        sandbox.addr(),
        args.seed,
        args.mkp_links,
        args.paypro_payments
    );
    shutdown_signal().await;
    if let Some(churn) = churn {
        churn.abort();
    }
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: SandboxArgs,
    }

    fn parse(args: &[&str]) -> Result<SandboxArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("sandbox").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn webhook_flags_make_the_delivery() {
        let args = parse(&[
            "--webhook-url",
            "http://127.0.0.1:8080/",
            "--webhook-secret",
            "s3cret-value",
            "--webhook-drop-rate",
            "0.25",
            "--webhook-duplicate",
            "2",
            "--webhook-reorder",
            "--webhook-delay-ms",
            "40",
            "--webhook-mis-sign-rate",
            "0.5",
        ])
        .unwrap();
        assert!(!format!("{args:?}").contains("s3cret-value"));
        let webhooks = args.webhooks().unwrap().unwrap();
        assert_eq!(
            webhooks.paypro_url.as_deref(),
            Some("http://127.0.0.1:8080/webhooks/paypro")
        );
        assert_eq!(
            webhooks.mkp_url.as_deref(),
            Some("http://127.0.0.1:8080/webhooks/mkp")
        );
        assert_eq!(webhooks.paypro_secret.as_deref(), Some("s3cret-value"));
        assert_eq!(webhooks.mkp_secret.as_deref(), Some("s3cret-value"));
        assert_eq!(webhooks.drop_rate, 0.25);
        assert_eq!(webhooks.duplicate, 2);
        assert!(webhooks.reorder);
        assert_eq!(webhooks.delay, Duration::from_millis(40));
        assert_eq!(webhooks.mis_sign_rate, 0.5);
        assert!(parse(&[]).unwrap().webhooks().unwrap().is_none());
    }

    #[test]
    fn bad_webhook_flags_are_refused() {
        assert!(parse(&["--webhook-secret", "x"]).is_err(), "needs a URL");
        assert!(parse(&["--webhook-url", "http://h", "--webhook-secret", ""]).is_err());
        for args in [
            &["--webhook-url", "ftp://h"][..],
            &["--webhook-url", "http://h", "--webhook-drop-rate", "1.5"],
            &["--webhook-url", "http://h", "--webhook-duplicate", "0"],
        ] {
            let parsed = parse(args).unwrap();
            assert!(
                parsed.webhooks().is_err() || parsed.config().is_err(),
                "{args:?}"
            );
        }
    }
}
