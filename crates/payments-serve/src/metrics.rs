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
            runs: Family::default(),
            requests: Family::default(),
            retries: Family::default(),
            rate_limit_wait: Family::default(),
            pages: Family::default(),
            webhooks: Family::default(),
            hints_read: Family::default(),
            hint_latency: Family::new_with_constructor(LatencyBuckets),
            last_success: Family::default(),
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
        Metrics {
            registry,
            ..metrics
        }
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
            let now = chrono::Utc::now();
            let seconds = now.timestamp() as f64 + f64::from(now.timestamp_subsec_millis()) / 1e3;
            self.last_success
                .get_or_create(&source(source_name))
                .set(seconds);
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
}
