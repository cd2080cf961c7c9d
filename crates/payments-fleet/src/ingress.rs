//! The fleet's side of `payments worker --listen`: the [`Inlet`] that takes any account's
//! verified webhook into its inbox in PostgreSQL (waking the fleet), and `/healthz`.

use std::sync::Arc;

use async_trait::async_trait;
use payments_model::Delivery;
use payments_postgres::{DeliveryError, MasterKey, PgLedger};
use payments_serve::{Health, HealthReport, Inlet, InletError, Target, WebhookSecret};
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

/// The fleet's `/healthz`: healthy while the database answers.
#[derive(Debug)]
pub struct FleetHealth {
    ledger: PgLedger,
}

impl FleetHealth {
    /// The health of `ledger`.
    pub fn new(ledger: PgLedger) -> FleetHealth {
        FleetHealth { ledger }
    }
}

#[async_trait]
impl Health for FleetHealth {
    async fn check(&self) -> HealthReport {
        match self.ledger.ping().await {
            Ok(()) => HealthReport {
                healthy: true,
                body: json!({ "database": "ok" }),
            },
            Err(error) => HealthReport {
                healthy: false,
                body: json!({ "database": "unavailable", "error": error.to_string() }),
            },
        }
    }
}
