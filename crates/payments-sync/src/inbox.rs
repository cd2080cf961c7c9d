//! The ledger's inbox of webhook deliveries: each verified delivery is stored, in one
//! transaction, *before* the provider is answered 2xx, so that a crash after the answer loses
//! nothing (the next start reads what is pending), and a redelivery is known by its key.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use payments_model::Delivery;

use crate::store::StoreError;

/// How long a processed delivery is kept to recognise a redelivery of it, before
/// [`Inbox::prune`] deletes it. Providers redeliver for hours to a few days.
pub const KEEP_DELIVERIES: Duration = Duration::from_secs(7 * 24 * 3600);

/// A delivery as the inbox holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The inbox's own id for it.
    pub id: i64,
    /// The source it came for (`paypro`, `mkp`).
    pub source: String,
    /// The delivery: its key and what it names to read.
    pub delivery: Delivery,
    /// When it was received.
    pub received_at: DateTime<Utc>,
}

/// Whether [`Inbox::receive`] stored a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// Stored: its hints are to be read.
    New,
    /// A delivery with the same source and key is already stored (a redelivery): nothing to do.
    Duplicate,
}

/// Where a ledger keeps its webhook deliveries. Each method is one transaction.
#[async_trait]
pub trait Inbox: Send + Sync + 'static {
    /// Stores `delivery` for `source`, received at `at`, unless one with the same source and key
    /// is already stored (processed or not).
    async fn receive(
        &self,
        source: &str,
        delivery: &Delivery,
        at: DateTime<Utc>,
    ) -> Result<Receipt, StoreError>;

    /// The deliveries for `source` not yet processed, oldest first.
    async fn pending(&self, source: &str) -> Result<Vec<Received>, StoreError>;

    /// Marks the deliveries with these ids processed at `at` (their hints were read and
    /// committed); ids not in the inbox are ignored.
    async fn processed(&self, ids: &[i64], at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Deletes the deliveries processed before `before`, and says how many.
    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
