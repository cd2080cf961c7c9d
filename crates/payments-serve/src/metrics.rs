//! What `/metrics` exposes, in the Prometheus text format (from the `prometheus-client` crate):
//! runs and their outcomes, requests, rate-limit waits, retries, webhooks received by result,
//! the time from a webhook's receipt to the commit of its reads, and each source's last
//! successful run.

use std::sync::atomic::AtomicU64;

use payments_sync::{Event, ServiceEvent, SyncError};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// The buckets of the webhook-to-commit histogram, in seconds: from 5 ms to about 80 s.
#[derive(Clone, Copy)]
struct LatencyBuckets;

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.005, 2.0, 15,
        ))
    }
}

/// The counters and gauges of one process, fed by its runs' [`Event`]s, its service's
/// [`ServiceEvent`]s and its webhook ingress.
pub struct Metrics {
    registry: Registry,
    runs: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    retries: Family<Labels, Counter>,
    rate_limit_wait: Family<Labels, Counter<f64, AtomicU64>>,
    pages: Family<Labels, Counter>,
    webhooks: Family<Labels, Counter>,
    hints_read: Family<Labels, Counter>,
    hint_latency: Family<Labels, Histogram, LatencyBuckets>,
    last_success: Family<Labels, Gauge<f64, AtomicU64>>,
    rounds: Counter,
    leases: Family<Labels, Counter>,
    leases_taken_over: Counter,
    postgres_errors: Family<Labels, Counter>,
    fleet: FleetFamilies,
    /// Held while the fleet's gauges are set and while they are encoded, so a scrape never
    /// reads another's half-set gauges (two Prometheus servers at once); the database's read
    /// before happens outside it.
    fleet_lock: std::sync::Mutex<()>,
}

/// The fleet's gauges, as the database says at the scrape ([`Metrics::set_fleet`]).
#[derive(Default)]
struct FleetFamilies {
    read_ok: Gauge,
    sources: Family<Labels, Gauge>,
    overdue_max: Gauge<f64, AtomicU64>,
    series_left_out: Gauge,
    account_last_success: Family<Labels, Gauge<f64, AtomicU64>>,
    account_overdue: Family<Labels, Gauge<f64, AtomicU64>>,
    account_failed: Family<Labels, Gauge>,
}

/// One account-source as the fleet's gauges show it.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceState {
    /// The account's name.
    pub account: String,
    /// The source (`mkp`, `paypro`).
    pub source: String,
    /// Whether it is synced (its account is not disabled).
    pub enabled: bool,
    /// Whether a worker holds it now.
    pub running: bool,
    /// Whether its last run failed.
    pub failed: bool,
    /// How long it has been due without a worker taking it.
    pub overdue: std::time::Duration,
    /// When its last successful run ended, within the runs kept.
    pub last_success: Option<chrono::DateTime<chrono::Utc>>,
}

/// A label value as the text format can carry it: quotes, backslashes and control characters
/// become `_` (account names are a safe set, but older ones were not checked).
fn label_value(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '"' | '\\' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect()
}

fn unix_seconds(at: chrono::DateTime<chrono::Utc>) -> f64 {
    at.timestamp() as f64 + f64::from(at.timestamp_subsec_millis()) / 1e3
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// How a run ended, as a metric's label: `ok`, `quarantined` (done, some records set aside),
/// `unfinished` (stopped by its time budget or a signal; the next run resumes), `unhealthy`
/// (done, but something keeps failing) or `failed`.
pub fn run_outcome(result: &Result<payments_sync::Summary, SyncError>) -> &'static str {
    match result {
        Ok(summary) if summary.quarantined > 0 => "quarantined",
        Ok(_) => "ok",
        Err(error) if error.is_stop() => "unfinished",
        Err(SyncError::Unhealthy { .. }) => "unhealthy",
        Err(_) => "failed",
    }
}

fn source(name: &str) -> Labels {
    vec![("source", name.to_owned())]
}

impl Metrics {
    /// Empty metrics, registered under the `payments_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("payments");
        let metrics = Metrics {
            fleet_lock: std::sync::Mutex::new(()),
            runs: Family::default(),
            requests: Family::default(),
            retries: Family::default(),
            rate_limit_wait: Family::default(),
            pages: Family::default(),
            webhooks: Family::default(),
            hints_read: Family::default(),
            hint_latency: Family::new_with_constructor(LatencyBuckets),
            last_success: Family::default(),
            rounds: Counter::default(),
            leases: Family::default(),
            leases_taken_over: Counter::default(),
            postgres_errors: Family::default(),
            fleet: FleetFamilies::default(),
            registry: Registry::default(),
        };
        registry.register(
            "runs",
            "Runs of a source, by how they ended (ok, quarantined, unfinished, unhealthy, failed)",
            metrics.runs.clone(),
        );
        registry.register(
            "requests",
            "Requests sent to the provider, retries included",
            metrics.requests.clone(),
        );
        registry.register(
            "retries",
            "Requests that failed and were retried",
            metrics.retries.clone(),
        );
        registry.register(
            "rate_limit_wait_seconds",
            "Time requests were held back by the rate limiter",
            metrics.rate_limit_wait.clone(),
        );
        registry.register(
            "pages_committed",
            "Pages committed by runs",
            metrics.pages.clone(),
        );
        registry.register(
            "webhooks_received",
            "Webhook deliveries received, by result (accepted, duplicate, or why they were refused)",
            metrics.webhooks.clone(),
        );
        registry.register(
            "hints_read",
            "Payments and groups read again because a webhook named them",
            metrics.hints_read.clone(),
        );
        registry.register(
            "hint_to_commit_seconds",
            "Time from a webhook's receipt to the commit of the reads it asked for",
            metrics.hint_latency.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When the last run of a source that completed ended (unix time)",
            metrics.last_success.clone(),
        );
        registry.register(
            "worker_rounds",
            "Rounds in which a worker looked for due account-sources",
            metrics.rounds.clone(),
        );
        registry.register(
            "worker_leases",
            "Account-sources a worker leased, by why (due: its scheduled run; hints: webhooks alone)",
            metrics.leases.clone(),
        );
        registry.register(
            "worker_leases_taken_over",
            "Leases taken from a worker whose lease had expired unreleased (it died, froze or lost the database)",
            metrics.leases_taken_over.clone(),
        );
        registry.register(
            "postgres_errors",
            "Failures of PostgreSQL seen by a worker, by operation",
            metrics.postgres_errors.clone(),
        );
        let fleet = &metrics.fleet;
        registry.register(
            "fleet_read_ok",
            "1 when the fleet's schedule was read from the database for this scrape, 0 when it could not be (the fleet's gauges are then absent)",
            fleet.read_ok.clone(),
        );
        registry.register(
            "fleet_account_sources",
            "Account-sources of the fleet by state: enabled, disabled, running (leased), failed (last run failed), overdue (due, not taken), never_succeeded",
            fleet.sources.clone(),
        );
        registry.register(
            "fleet_overdue_seconds_max",
            "The longest any enabled account-source has been due without a worker taking it (NaN when the database could not be read: alert on fleet_read_ok too)",
            fleet.overdue_max.clone(),
        );
        registry.register(
            "fleet_account_series_left_out",
            "Account-sources whose own series were left out by the cap on per-account series (the aggregates count them)",
            fleet.series_left_out.clone(),
        );
        registry.register(
            "account_last_success_timestamp_seconds",
            "When an account-source's last successful run ended (unix time), by the database's runs",
            fleet.account_last_success.clone(),
        );
        registry.register(
            "account_overdue_seconds",
            "How long an account-source has been due without a worker taking it (its lag)",
            fleet.account_overdue.clone(),
        );
        registry.register(
            "account_last_run_failed",
            "1 when an account-source's last run failed",
            fleet.account_failed.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Counts a round of a worker.
    pub fn round(&self) {
        self.rounds.inc();
    }

    /// Counts a lease a worker took: for its scheduled run (`due`) or for its hints alone,
    /// and whether it was taken over from a worker whose lease expired unreleased.
    pub fn leased(&self, due: bool, taken_over: bool) {
        let kind = if due { "due" } else { "hints" };
        self.leases
            .get_or_create(&vec![("kind", kind.to_owned())])
            .inc();
        if taken_over {
            self.leases_taken_over.inc();
        }
    }

    /// Counts a failure of PostgreSQL during `operation` (`lease`, `release`, `listen`,
    /// `schedule`).
    pub fn postgres_error(&self, operation: &'static str) {
        self.postgres_errors
            .get_or_create(&vec![("operation", operation.to_owned())])
            .inc();
    }

    /// Sets the fleet's gauges from its account-sources as the database holds them: the
    /// aggregates over all of them, and the series of each account-source for at most
    /// `per_account` of them, the worst first (the longest overdue, then those whose last run
    /// failed, then the longest since a success), so that the cap never hides a problem
    /// that a shown one does not outrank.
    pub fn set_fleet(&self, sources: &[SourceState], per_account: usize) {
        let _whole = self.fleet_lock();
        let fleet = &self.fleet;
        fleet.read_ok.set(1);
        let count = |state: &str, n: usize| {
            fleet
                .sources
                .get_or_create(&vec![("state", state.to_owned())])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        let enabled: Vec<&SourceState> = sources.iter().filter(|s| s.enabled).collect();
        count("enabled", enabled.len());
        count("disabled", sources.len() - enabled.len());
        count("running", enabled.iter().filter(|s| s.running).count());
        count("failed", enabled.iter().filter(|s| s.failed).count());
        count(
            "overdue",
            enabled.iter().filter(|s| !s.overdue.is_zero()).count(),
        );
        count(
            "never_succeeded",
            enabled.iter().filter(|s| s.last_success.is_none()).count(),
        );
        fleet.overdue_max.set(
            enabled
                .iter()
                .map(|s| s.overdue.as_secs_f64())
                .fold(0.0, f64::max),
        );
        let mut worst = enabled;
        worst.sort_by(|a, b| {
            b.overdue
                .cmp(&a.overdue)
                .then(b.failed.cmp(&a.failed))
                .then(a.last_success.cmp(&b.last_success))
                .then(a.account.cmp(&b.account))
                .then(a.source.cmp(&b.source))
        });
        let shown = worst.len().min(per_account);
        fleet
            .series_left_out
            .set(i64::try_from(worst.len() - shown).unwrap_or(i64::MAX));
        fleet.account_last_success.clear();
        fleet.account_overdue.clear();
        fleet.account_failed.clear();
        for s in &worst[..shown] {
            let labels = vec![
                ("account", label_value(&s.account)),
                ("source", label_value(&s.source)),
            ];
            if let Some(at) = s.last_success {
                fleet
                    .account_last_success
                    .get_or_create(&labels)
                    .set(unix_seconds(at));
            }
            fleet
                .account_overdue
                .get_or_create(&labels)
                .set(s.overdue.as_secs_f64());
            fleet
                .account_failed
                .get_or_create(&labels)
                .set(i64::from(s.failed));
        }
    }

    /// The fleet's schedule could not be read for this scrape: its gauges are left out (never
    /// shown stale), `fleet_read_ok` is 0 and the error is counted.
    pub fn fleet_unreadable(&self) {
        let _whole = self.fleet_lock();
        let fleet = &self.fleet;
        fleet.read_ok.set(0);
        fleet.sources.clear();
        fleet.overdue_max.set(f64::NAN);
        fleet.series_left_out.set(0);
        fleet.account_last_success.clear();
        fleet.account_overdue.clear();
        fleet.account_failed.clear();
        self.postgres_error("schedule");
    }

    /// The lock of the fleet's gauges (a panic while it was held left no gauge half-set that
    /// matters more than the scrape: go on).
    fn fleet_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.fleet_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts what a run reports as it goes.
    pub fn on_sync(&self, event: &Event) {
        match event {
            Event::Request { source_name } => {
                self.requests.get_or_create(&source(source_name)).inc();
            }
            Event::Retry { source_name, .. } => {
                self.retries.get_or_create(&source(source_name)).inc();
            }
            Event::RateLimitWait {
                source_name,
                waited,
            } => {
                self.rate_limit_wait
                    .get_or_create(&source(source_name))
                    .inc_by(waited.as_secs_f64());
            }
            Event::PageCommitted { source_name, .. } => {
                self.pages.get_or_create(&source(source_name)).inc();
            }
            _ => {}
        }
    }

    /// Counts what a service reports: runs ended, deliveries read.
    pub fn on_service(&self, event: &ServiceEvent<'_>) {
        match event {
            ServiceEvent::RunEnded {
                source_name,
                result,
            } => self.run_ended(source_name, result),
            ServiceEvent::HintsRead {
                source_name,
                read,
                latencies,
            } => {
                self.hints_read
                    .get_or_create(&source(source_name))
                    .inc_by(read.read);
                let histogram = self.hint_latency.get_or_create(&source(source_name));
                for latency in *latencies {
                    histogram.observe(latency.as_secs_f64());
                }
            }
            _ => {}
        }
    }

    /// Counts a run that ended, and notes when the source last completed one.
    pub fn run_ended(&self, source_name: &str, result: &Result<payments_sync::Summary, SyncError>) {
        self.run_counted(source_name, run_outcome(result));
    }

    /// Counts a run of `source_name` that ended with `outcome` (as [`run_outcome`] names them),
    /// and notes when the source last completed one.
    pub fn run_counted(&self, source_name: &str, outcome: &'static str) {
        self.runs
            .get_or_create(&vec![
                ("source", source_name.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
        if matches!(outcome, "ok" | "quarantined") {
            self.last_success
                .get_or_create(&source(source_name))
                .set(unix_seconds(chrono::Utc::now()));
        }
    }

    /// Counts a webhook delivery for `source_name` (`paypro`, `mkp`) with its `result`.
    pub fn webhook(&self, source_name: &str, result: &'static str) {
        self.webhooks
            .get_or_create(&vec![
                ("source", source_name.to_owned()),
                ("result", result.to_owned()),
            ])
            .inc();
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let _whole = self.fleet_lock();
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_each_metric_with_its_labels_and_ends_with_eof() {
        let metrics = Metrics::new();
        metrics.on_sync(&Event::Request {
            source_name: "paypro".into(),
        });
        metrics.webhook("paypro", "accepted");
        metrics.run_ended("mkp", &Ok(payments_sync::Summary::default()));
        let text = metrics.encode();
        assert!(
            text.contains("payments_requests_total{source=\"paypro\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "payments_webhooks_received_total{source=\"paypro\",result=\"accepted\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("payments_runs_total{source=\"mkp\",outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("payments_last_success_timestamp_seconds{source=\"mkp\"}"));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    fn state(account: &str, overdue: u64, failed: bool, success: Option<i64>) -> SourceState {
        SourceState {
            account: account.to_owned(),
            source: "paypro".to_owned(),
            enabled: true,
            running: false,
            failed,
            overdue: std::time::Duration::from_secs(overdue),
            last_success: success.map(|s| chrono::DateTime::from_timestamp(s, 0).unwrap()),
        }
    }

    #[test]
    fn the_cap_keeps_the_worst_account_sources_and_the_aggregates_count_all() {
        let metrics = Metrics::new();
        let mut disabled = state("off", 9_999, true, None);
        disabled.enabled = false;
        let sources = [
            state("fine", 0, false, Some(1_700_000_000)),
            state("failing", 0, true, Some(1_700_000_000)),
            state("late", 120, false, Some(1_700_000_000)),
            state("new\"\\\ncomer", 0, false, None),
            disabled,
        ];
        metrics.set_fleet(&sources, 2);
        let text = metrics.encode();
        assert!(
            text.contains("payments_fleet_account_sources{state=\"enabled\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("payments_fleet_account_sources{state=\"disabled\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("payments_fleet_account_sources{state=\"failed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("payments_fleet_account_sources{state=\"never_succeeded\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("payments_fleet_overdue_seconds_max 120.0"),
            "{text}"
        );
        assert!(
            text.contains("payments_fleet_account_series_left_out 2"),
            "{text}"
        );
        // The longest overdue, then the failing one; the disabled one's overdue is not counted.
        assert!(
            text.contains(
                "payments_account_overdue_seconds{account=\"late\",source=\"paypro\"} 120.0"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "payments_account_last_run_failed{account=\"failing\",source=\"paypro\"} 1"
            ),
            "{text}"
        );
        assert!(!text.contains("account=\"fine\""), "{text}");

        // With room for all: a name that would break the format is made safe.
        metrics.set_fleet(&sources, 10);
        let text = metrics.encode();
        assert!(text.contains("account=\"new___comer\""), "{text}");
        assert!(
            text.contains("payments_fleet_account_series_left_out 0"),
            "{text}"
        );

        // Unreadable: no stale series, and said.
        metrics.fleet_unreadable();
        let text = metrics.encode();
        assert!(text.contains("payments_fleet_read_ok 0"), "{text}");
        assert!(!text.contains("account=\""), "{text}");
        assert!(
            text.contains("payments_postgres_errors_total{operation=\"schedule\"} 1"),
            "{text}"
        );
    }
}
