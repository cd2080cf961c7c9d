//! `payments sync`: drives the configured sources into the ledger.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::ValueEnum;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use payments_sources::{PaymentSource, RateLimitSpec, Source, SourceSpec, SpecError};
use payments_sqlite::SqliteStore;
use payments_sync::{
    Event, Events, StopReason, StopSignal, Summary, SyncError, SyncOptions, Syncer,
};
use secrecy::SecretString;

use crate::providers::{Provider, ProviderArgs};

use crate::DbArgs;
use crate::duration::parse_duration;
use crate::outcome::{CliError, Exit, printable};

/// Syncs the enabled sources into the ledger: incremental after the first run.
///
/// A source is enabled by its key: MKP_API_KEY for MijnKlantportaal (a key with the
/// `paymentlinks.read` scope), PAYPRO_API_KEY for PayPro. The first run reads everything; later
/// runs read PayPro's change feed (late refunds and chargebacks on payments of any age), what can
/// have changed, and a small budget of re-verification (what was read longest ago), so that
/// every payment is read again within a bounded time. Safe to run from cron every few minutes: a
/// second sync on the same
/// database refuses to start, and an interrupted run resumes where it stopped.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct SyncArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Only these sources (default: every source that has a key).
    #[arg(long = "source", value_enum, value_name = "SOURCE")]
    sources: Vec<SourceArg>,
    /// Re-read everything instead of only what can have changed.
    #[arg(long)]
    full: bool,
    /// The short lookback of incremental runs, in days (1 to 3650).
    #[arg(long, value_name = "DAYS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=3650))]
    lookback: u32,
    /// The longest a run may take (90s, 4m, 2h; 0 for no limit). Past it, the run stops at a page
    /// boundary with its checkpoint and exits 1, and the next run resumes: from cron every five
    /// minutes, a run never overlaps the next one.
    #[arg(long, value_name = "DURATION", default_value = "4m", value_parser = parse_duration)]
    max_duration: Duration,
    /// Requests each incremental run spends on re-reading what was verified longest ago (MKP
    /// links; pages of a walk over PayPro's whole listing), 0 to 1000.
    #[arg(long, value_name = "N", default_value_t = payments_sync::DEFAULT_REVERIFY_BUDGET, value_parser = clap::value_parser!(u32).range(0..=1000))]
    reverify_budget: u32,
    #[command(flatten)]
    providers: ProviderArgs,
    /// MKP requests allowed per rate-limit window, when your key's contract differs from
    /// MKP's documented 60 per rolling minute.
    #[arg(long, value_name = "N")]
    mkp_rate_limit: Option<u32>,
    /// The MKP rate-limit window in seconds, when your key's contract differs from MKP's
    /// documented 60.
    #[arg(long, value_name = "SECONDS")]
    mkp_rate_window: Option<u64>,
}

/// Printed after the options as written, line for line (clap joins the lines of a doc comment
/// into one paragraph); each line fits in 80 columns, so clap wraps none on such a terminal.
const EXAMPLES: &str = r#"Examples:
  MKP_API_KEY=... PAYPRO_API_KEY=... payments sync --db ledger.db
  payments sync --source paypro --full
  payments sync --lookback 3 --max-duration 10m

From cron every five minutes: keep the keys in an env file of NAME=value lines
that only you can read (chmod 600 ~/payments.env),
  MKP_API_KEY=...
  PAYPRO_API_KEY=...
  PAYMENTS_DB=/var/lib/payments/ledger.db
and add this line with `crontab -e` (set -a exports what the file sets):
  */5 * * * *  set -a; . ~/payments.env; payments sync >>~/payments.log 2>&1"#;

/// A source, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SourceArg {
    /// MijnKlantportaal payment links.
    Mkp,
    /// PayPro.
    Paypro,
}

impl From<SourceArg> for Source {
    fn from(source: SourceArg) -> Source {
        match source {
            SourceArg::Mkp => Source::Mkp,
            SourceArg::Paypro => Source::PayPro,
        }
    }
}

/// What the flags say about one provider's source.
struct ProviderFlags<'a> {
    provider: Provider<'a>,
    rate_limit: Option<u32>,
    rate_window: Option<u64>,
    /// What to say when a rate-limit flag is refused.
    rate_refused: &'static str,
}

impl ProviderFlags<'_> {
    /// The source the flags describe, reached with `api_key`, built by the registry (which
    /// checks the spec first).
    fn source(&self, api_key: String) -> Result<Arc<dyn PaymentSource>, CliError> {
        let refused = |error: SpecError| match error {
            SpecError::ZeroRateLimit { .. }
            | SpecError::ShortWindow { .. }
            | SpecError::PartialRateLimit { .. } => CliError::config(self.rate_refused),
            other => CliError::config(format!("{}: {other}", self.provider.base_url_flag)),
        };
        let rate_limit = RateLimitSpec::overriding(
            self.provider.source,
            self.rate_limit,
            self.rate_window.map(Duration::from_secs),
        )
        .map_err(refused)?;
        SourceSpec::new(self.provider.source)
            .with_base_url(self.provider.base_url)
            .with_rate_limit(rate_limit)
            .build(&SecretString::from(api_key))
            .map_err(refused)
    }
}

impl SyncArgs {
    fn options(&self) -> SyncOptions {
        SyncOptions {
            full: self.full,
            lookback: Duration::from_secs(u64::from(self.lookback) * 24 * 3600),
            max_duration: (!self.max_duration.is_zero()).then_some(self.max_duration),
            reverify_budget: self.reverify_budget,
            ..SyncOptions::default()
        }
    }

    /// Each provider's flags, in the order their sources run and their errors are reported.
    fn providers(&self) -> [ProviderFlags<'_>; 2] {
        let [mkp, paypro] = self.providers.providers();
        [
            ProviderFlags {
                provider: mkp,
                rate_limit: self.mkp_rate_limit,
                rate_window: self.mkp_rate_window,
                rate_refused: "--mkp-rate-limit and --mkp-rate-window must be at least 1; MKP allows 60 requests per 60 seconds",
            },
            ProviderFlags {
                provider: paypro,
                rate_limit: None,
                rate_window: None,
                rate_refused: "",
            },
        ]
    }

    fn configured(&self) -> Result<Vec<Arc<dyn PaymentSource>>, CliError> {
        let named = |provider: Source| self.sources.iter().any(|s| Source::from(*s) == provider);
        let mut configured = Vec::new();
        for flags in self.providers() {
            let source = flags.provider.source;
            match flags.provider.key {
                Some(api_key) if self.sources.is_empty() || named(source) => {
                    configured.push(flags.source(api_key.to_owned())?);
                }
                None if named(source) => {
                    return Err(CliError::config(format!(
                        "--source {} needs a key: set {} to {}",
                        source.as_str(),
                        flags.provider.key_flag,
                        flags.provider.key_is
                    )));
                }
                _ => {}
            }
        }
        if configured.is_empty() {
            let demo = if cfg!(feature = "sandbox") {
                " (or try `payments demo`, which needs neither)"
            } else {
                ""
            };
            return Err(CliError::config(format!(
                "no source is configured: set MKP_API_KEY and/or PAYPRO_API_KEY{demo}"
            )));
        }
        Ok(configured)
    }
}

/// The ledger, the sources and the options of a run, as `payments serve` runs them.
type ServeSetup<'a> = (&'a DbArgs, Vec<Arc<dyn PaymentSource>>, SyncOptions);

impl SyncArgs {
    /// What `payments serve` runs with: the ledger, the sources and the options of a run
    /// (`--full` is refused: every scheduled run would read everything).
    pub(crate) fn for_serve(&self) -> Result<ServeSetup<'_>, CliError> {
        if self.full {
            return Err(CliError::config(
                "`payments serve` runs incremental runs on a schedule; run `payments sync --full` once instead of --full here",
            ));
        }
        Ok((&self.db, self.configured()?, self.options()))
    }
}

pub(crate) async fn run(args: SyncArgs) -> Result<Exit, CliError> {
    let sources = args.configured()?;
    let store = Arc::new(args.db.open()?);
    // A ledger that cannot be written is found out before any request is made.
    store.check_writable()?;
    sync_into(store, sources, args.options()).await
}

/// Syncs `sources` into `store` under the sync lock, with progress on stderr and one summary
/// line per source on stdout; the exit code says how it went.
pub(crate) async fn sync_into(
    store: Arc<SqliteStore>,
    sources: Vec<Arc<dyn PaymentSource>>,
    options: SyncOptions,
) -> Result<Exit, CliError> {
    let _lock = store.lock_for_sync()?;
    let progress = Arc::new(Progress::new(sources.iter().map(|s| s.name())));
    let mut syncer = Syncer::new(store, options);
    for source in sources {
        syncer.add_source(source);
    }
    let events = progress.clone();
    let stop = StopSignal::new();
    let signals = tokio::spawn(stop_on_signals(stop.clone()));
    syncer
        .with_events(Events::to(move |event| events.show(event)))
        .with_stop(stop.clone());
    let results = syncer.run().await;
    signals.abort();
    progress.finish();
    // In a log (cron), each summary line says when it was written.
    let stamp = if std::io::stdout().is_terminal() {
        String::new()
    } else {
        format!(
            "{} ",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    };
    let mut exit = Exit::Done;
    for result in results {
        match result {
            Ok(summary) => {
                if !crate::output::quiet() {
                    println!("{stamp}{}", printable(&summary_line(&summary)));
                }
                if sets_aside(&summary) && exit == Exit::Done {
                    exit = Exit::Quarantined;
                }
            }
            Err(error) => {
                if let SyncError::Unhealthy { summary, .. } = &error
                    && !crate::output::quiet()
                {
                    println!("{stamp}{}", printable(&summary_line(summary)));
                }
                // A signal's stop is said once, below, not once per source.
                let signalled =
                    matches!(error, SyncError::Interrupted { .. }) && stop.reason().is_some();
                if !signalled {
                    eprintln!("error: {}", printable(&error.to_string()));
                }
                let code = match &error {
                    SyncError::Source { error, .. } if error.is_auth() => Exit::Config,
                    SyncError::Store(error) => CliError::from_store(error).exit,
                    _ => Exit::Failed,
                };
                if matches!(exit, Exit::Done | Exit::Quarantined) {
                    exit = code;
                }
            }
        }
    }
    if let Some(reason) = stop.reason() {
        eprintln!(
            "stopped by {reason}: what was committed is kept, and the next run resumes from there"
        );
        return Ok(Exit::stopped_by(reason));
    }
    if exit == Exit::Quarantined && !crate::output::quiet() {
        eprintln!(
            "some records could not be read and were quarantined, or some work was put off to the next run; `payments status` lists them with their reasons"
        );
    }
    Ok(exit)
}

/// Whether a completed run set something aside: records quarantined, the change feed not read,
/// payments it names still to read. Such a run exits 3, never 0.
pub(crate) fn sets_aside(summary: &Summary) -> bool {
    summary.quarantined > 0 || summary.feed_error.is_some() || summary.to_read > 0
}

/// Raises `stop` on SIGINT or SIGTERM, so the runs stop at the next page boundary; a second
/// signal ends the process at once.
pub(crate) async fn stop_on_signals(stop: StopSignal) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        loop {
            let (name, code) = tokio::select! {
                _ = interrupt.recv() => (StopReason::Interrupt, Exit::Interrupted),
                _ = terminate.recv() => (StopReason::Terminate, Exit::Terminated),
            };
            if stop.reason().is_some() {
                std::process::exit(code as i32);
            }
            stop.stop(name);
        }
    }
    #[cfg(not(unix))]
    if tokio::signal::ctrl_c().await.is_ok() {
        stop.stop(StopReason::Interrupt);
    }
}

/// `mkp: full run, 14 pages, 15 requests; 210 new, 0 changed, 0 unchanged, 0 quarantined`.
pub(crate) fn summary_line(summary: &Summary) -> String {
    format!("{}: {}", summary.source_name, run_line(summary))
}

/// `1 page`, `2 pages`.
pub(crate) fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// [`summary_line`] without the source's name: `full run, 14 pages, 15 requests; …`.
pub(crate) fn run_line(summary: &Summary) -> String {
    let run = match summary.run {
        Some(payments_sync::RunKind::Full) => "full run",
        Some(payments_sync::RunKind::DeepSweep) => "deep sweep",
        Some(payments_sync::RunKind::Incremental) | None => "incremental run",
    };
    let counts = &summary.counts;
    let mut line = format!(
        "{run}{}, {}, {}; {} new, {} changed, {} unchanged, {} quarantined",
        if summary.resumed { " (resumed)" } else { "" },
        counted(summary.pages, "page", "pages"),
        counted(summary.requests, "request", "requests"),
        counts.new,
        counts.changed,
        counts.unchanged,
        summary.quarantined,
    );
    if summary.feed_incomplete {
        line.push_str(
            ", the change feed no longer reached the last change applied: the whole listing was read again",
        );
    }
    if let Some(error) = &summary.feed_error {
        line.push_str(&format!(
            ", the change feed was not read whole ({error}); the listing was, and the next run reads the feed again"
        ));
    }
    if summary.to_read > 0 {
        line.push_str(&format!(
            ", {} payments the change feed named are still to read (put off to the next run)",
            summary.to_read
        ));
    }
    if counts.backwards > 0 {
        line.push_str(&format!(
            ", {} moved backwards (every version kept: payments show ID)",
            counts.backwards
        ));
    }
    if summary.waited >= Duration::from_millis(100) {
        line.push_str(&format!(
            "; waited {:.1} s for rate limits and retries",
            summary.waited.as_secs_f64()
        ));
    }
    line
}

/// The progress of a sync: on a terminal, a line per source (pages, payments, requests, the
/// retries with the last error's first words, a rate-limit wait counting down) that shows the
/// source's summary and stops spinning when it ends; off a terminal, a line every
/// [`PLAIN_EVERY_PAGES`] pages and every wait of a second or more.
struct Progress {
    bars: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
    lines: Arc<Mutex<HashMap<String, Line>>>,
}

/// Plain output reports every this many pages.
const PLAIN_EVERY_PAGES: u64 = 100;

/// What one source's line says.
#[derive(Clone, Debug, Default)]
struct Line {
    pages: u64,
    payments: u64,
    requests: u64,
    retries: u64,
    /// The first words of the last retried error.
    last_error: Option<String>,
    /// Until when the rate limiter holds the next request back.
    waiting_until: Option<std::time::Instant>,
}

/// How much of a retried error a line shows.
const ERROR_WORDS: usize = 48;

impl Line {
    fn render(&self, now: std::time::Instant) -> String {
        let mut text = format!(
            "{}, {}, {}",
            counted(self.pages, "page", "pages"),
            counted(self.payments, "payment", "payments"),
            counted(self.requests, "request", "requests")
        );
        if self.retries > 0 {
            text.push_str(&format!(", {}", counted(self.retries, "retry", "retries")));
            if let Some(error) = &self.last_error {
                text.push_str(&format!(" (last: {error})"));
            }
        }
        if let Some(until) = self.waiting_until.filter(|until| *until > now) {
            text.push_str(&format!(
                "; waiting {:.0} s for the rate limit",
                (until - now).as_secs_f64().ceil()
            ));
        }
        text
    }
}

/// The first words of `error`, on one line, at most [`ERROR_WORDS`] characters.
fn first_words(error: &str) -> String {
    let line = error.lines().next().unwrap_or_default();
    let mut words: String = line.chars().take(ERROR_WORDS).collect();
    if line.chars().count() > ERROR_WORDS {
        words.push('…');
    }
    printable(&words).into_owned()
}

impl Progress {
    fn new<'a>(names: impl Iterator<Item = &'a str>) -> Progress {
        let names: Vec<String> = names.map(str::to_owned).collect();
        let lines: Arc<Mutex<HashMap<String, Line>>> = Arc::new(Mutex::new(
            names.iter().map(|n| (n.clone(), Line::default())).collect(),
        ));
        let bars = (std::io::stderr().is_terminal() && !crate::output::quiet()).then(|| {
            let multi = MultiProgress::new();
            let bars = names
                .iter()
                .map(|name| {
                    // The line is drawn from the source's state at each tick, so that a wait
                    // counts down between events.
                    let state = lines.clone();
                    let key = name.clone();
                    let style = ProgressStyle::with_template("{spinner} {prefix:>7} {line}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner())
                        .with_key(
                            "line",
                            move |_: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                                let lines = state.lock().unwrap_or_else(|e| e.into_inner());
                                let text = lines
                                    .get(&key)
                                    .map(|line| line.render(std::time::Instant::now()))
                                    .unwrap_or_default();
                                let _ = out.write_str(&text);
                            },
                        );
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(style);
                    bar.set_prefix(name.clone());
                    bar.enable_steady_tick(Duration::from_millis(200));
                    (name.clone(), bar)
                })
                .collect();
            crate::logs::through(Some(multi.clone()));
            (multi, bars)
        });
        Progress { bars, lines }
    }

    fn show(&self, event: &Event) {
        let now = std::time::Instant::now();
        let (name, plain) = {
            let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                Event::PageCommitted {
                    source_name,
                    payments,
                    ..
                } => {
                    let line = lines.entry(source_name.clone()).or_default();
                    line.pages += 1;
                    line.payments += payments;
                    line.waiting_until = None;
                    (
                        source_name,
                        line.pages
                            .is_multiple_of(PLAIN_EVERY_PAGES)
                            .then(|| line.render(now)),
                    )
                }
                Event::Request { source_name } => {
                    lines.entry(source_name.clone()).or_default().requests += 1;
                    (source_name, None)
                }
                Event::RateLimitWaiting { source_name, wait } => {
                    let line = lines.entry(source_name.clone()).or_default();
                    line.waiting_until = Some(now + *wait);
                    (
                        source_name,
                        (*wait >= Duration::from_secs(1)).then(|| line.render(now)),
                    )
                }
                Event::Retry {
                    source_name, error, ..
                } => {
                    let line = lines.entry(source_name.clone()).or_default();
                    line.retries += 1;
                    line.last_error = Some(first_words(error));
                    // Off a terminal the engine's own warning says so: one line per retry.
                    (source_name, None)
                }
                Event::Finished { summary, error } => {
                    if let Some((_, bars)) = &self.bars
                        && let Some(bar) = bars.get(&summary.source_name)
                    {
                        let said = match error {
                            None => run_line(summary),
                            Some(error) => format!("{}: {}", run_line(summary), first_words(error)),
                        };
                        bar.set_style(
                            ProgressStyle::with_template("{prefix:>9} {msg}")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        );
                        bar.finish_with_message(printable(&said).into_owned());
                    }
                    return;
                }
                _ => return,
            }
        };
        if self.bars.is_none()
            && let Some(message) = plain
            && !crate::output::quiet()
        {
            eprintln!("{name}: {}", printable(&message));
        }
    }

    fn finish(&self) {
        if let Some((multi, bars)) = &self.bars {
            for bar in bars.values() {
                bar.finish_and_clear();
            }
            let _ = multi.clear();
        }
        crate::logs::through(None);
    }
}
