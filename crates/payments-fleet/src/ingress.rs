//! The fleet's side of `payments worker --listen`: the [`Inlet`] that takes any account's
//! verified webhook into its inbox in PostgreSQL (waking the fleet), `/healthz`, and the
//! fleet's gauges in `/metrics`.

use std::sync::Arc;

use async_trait::async_trait;
use payments_model::Delivery;
use payments_postgres::{DeliveryError, MasterKey, PgLedger, Schedule};
use payments_serve::{
    Gauges, Health, HealthReport, Inlet, InletError, Metrics, SourceState, Target, WebhookSecret,
};
use payments_sync::Receipt;
use secrecy::ExposeSecret;
use serde_json::json;

/// Webhooks for any account of the ledger: the secret of (account, provider) comes sealed from
/// the database, and a verified delivery is stored by [`PgLedger::receive_delivery`]. An
/// unknown account or source is [`InletError::Unknown`] (401, as a bad signature).
pub struct FleetInlet {
    ledger: PgLedger,
    master: Arc<MasterKey>,
}

impl std::fmt::Debug for FleetInlet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetInlet")
            .field("ledger", &self.ledger)
            .finish_non_exhaustive()
    }
}

impl FleetInlet {
    /// The inlet of `ledger`, whose webhook secrets open with `master`.
    pub fn new(ledger: PgLedger, master: Arc<MasterKey>) -> FleetInlet {
        FleetInlet { ledger, master }
    }
}

fn inlet_error(error: DeliveryError) -> InletError {
    match error {
        DeliveryError::Unknown { .. } => InletError::Unknown,
        other => InletError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl Inlet for FleetInlet {
    async fn secret(&self, target: &Target) -> Result<Option<WebhookSecret>, InletError> {
        let Some(account) = &target.account else {
            return Err(InletError::Unknown);
        };
        let secret = self
            .ledger
            .webhook_secret(account, target.provider.as_str(), &self.master)
            .await
            .map_err(inlet_error)?;
        // A stored secret is never empty (`accounts add` skips empty ones); if it were, no
        // webhook would verify.
        Ok(secret.and_then(|secret| WebhookSecret::new(secret.expose_secret()).ok()))
    }

    async fn receive(&self, target: &Target, delivery: &Delivery) -> Result<Receipt, InletError> {
        let Some(account) = &target.account else {
            return Err(InletError::Unknown);
        };
        self.ledger
            .receive_delivery(account, target.provider.as_str(), delivery)
            .await
            .map_err(inlet_error)
    }
}

/// The fleet's `/healthz`: healthy while the database answers (within 5 s) and,
/// for a worker's, while its loop still leases work (a round whose lease query the database
/// answered at least every `poll`; a worker without one for longer than [`STUCK_AFTER_POLLS`]
/// polls and [`STUCK_GRACE`], stuck or refused by the database, is unhealthy).
#[derive(Debug)]
pub struct FleetHealth {
    ledger: PgLedger,
    rounds: Option<(crate::worker::LastRound, std::time::Duration)>,
}

/// A worker whose last round is this many polls old (plus [`STUCK_GRACE`]) is stuck.
pub const STUCK_AFTER_POLLS: u32 = 3;
/// See [`STUCK_AFTER_POLLS`].
pub const STUCK_GRACE: std::time::Duration = std::time::Duration::from_secs(30);
/// How long `/healthz` and `/metrics` wait for the database before saying it is unavailable:
/// a database behind a dropped network answers nothing rather than an error. Under
/// Prometheus's default scrape timeout of 10 s, so that such a scrape still shows
/// `fleet_read_ok 0` and the counters.
pub(crate) const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `read`, or an error naming what did not answer within [`READ_TIMEOUT`].
async fn within_timeout<T>(
    what: &str,
    read: impl std::future::Future<Output = Result<T, payments_sync::StoreError>>,
) -> Result<T, String> {
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(result) => result.map_err(|error| error.to_string()),
        Err(_) => Err(format!(
            "the database did not answer {what} within {} s",
            READ_TIMEOUT.as_secs()
        )),
    }
}

impl FleetHealth {
    /// The health of `ledger`.
    pub fn new(ledger: PgLedger) -> FleetHealth {
        FleetHealth {
            ledger,
            rounds: None,
        }
    }

    /// The health of a worker of `ledger` whose rounds are noted in `last_round`, one at
    /// least every `poll`.
    pub(crate) fn of_worker(
        ledger: PgLedger,
        last_round: crate::worker::LastRound,
        poll: std::time::Duration,
    ) -> FleetHealth {
        FleetHealth {
            ledger,
            rounds: Some((last_round, poll)),
        }
    }
}

#[async_trait]
impl Health for FleetHealth {
    async fn check(&self) -> HealthReport {
        let mut body = match within_timeout("a ping", self.ledger.ping()).await {
            Ok(()) => json!({ "database": "ok" }),
            Err(error) => json!({ "database": "unavailable", "error": error }),
        };
        let mut healthy = body["database"] == "ok";
        if let Some((last_round, poll)) = &self.rounds {
            let age = last_round.age();
            body["last_round_seconds_ago"] = json!(age.map(|age| age.as_secs()));
            if let Some(stuck) = age.and_then(|age| stuck(age, *poll)) {
                healthy = false;
                body["worker"] = json!(stuck);
            }
        }
        HealthReport { healthy, body }
    }
}

/// Why a worker whose last round began `age` ago, with rounds at least every `poll`, is
/// stuck; `None` while it is not.
fn stuck(age: std::time::Duration, poll: std::time::Duration) -> Option<String> {
    (age > poll * STUCK_AFTER_POLLS + STUCK_GRACE).then(|| {
        format!(
            "stuck: no round that could lease for {} s (one at least every {} s is expected)",
            age.as_secs(),
            poll.as_secs()
        )
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_worker_is_stuck_after_three_polls_and_the_grace() {
        let poll = Duration::from_secs(30);
        assert_eq!(super::stuck(Duration::from_secs(120), poll), None);
        let said = super::stuck(Duration::from_secs(121), poll).unwrap();
        assert!(
            said.contains("no round that could lease for 121 s"),
            "{said}"
        );
    }
}

/// The fleet's gauges in `/metrics`, read from the database's schedule at each scrape: every
/// worker shows the whole fleet as the database holds it (by its clock), not what it did.
#[derive(Debug)]
pub struct FleetGauges {
    ledger: PgLedger,
    per_account: usize,
}

impl FleetGauges {
    /// The gauges of `ledger`'s fleet, with the series of at most `per_account`
    /// account-sources (the worst first; the aggregates count all).
    pub fn new(ledger: PgLedger, per_account: usize) -> FleetGauges {
        FleetGauges {
            ledger,
            per_account,
        }
    }
}

/// Each account-source of `schedule` as the gauges show it.
fn states(schedule: &Schedule) -> Vec<SourceState> {
    schedule
        .sources
        .iter()
        .map(|s| SourceState {
            account: s.account.clone(),
            source: s.source_name.clone(),
            enabled: !s.disabled,
            running: s.leased.is_some(),
            failed: s.failed(),
            overdue: s.overdue(schedule.now),
            last_success: s.last_success,
        })
        .collect()
}

#[async_trait]
impl Gauges for FleetGauges {
    async fn refresh(&self, metrics: &Metrics) {
        match within_timeout("the schedule's read", self.ledger.schedule(None)).await {
            Ok(schedule) => metrics.set_fleet(&states(&schedule), self.per_account),
            Err(error) => {
                tracing::warn!("the fleet's gauges are left out of /metrics: {error}");
                metrics.fleet_unreadable();
            }
        }
    }
}
