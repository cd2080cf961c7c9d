//! The read side of a store: what `export`, `status` and `show` ask a ledger, whichever store
//! keeps it (one SQLite file, or one account of a PostgreSQL database).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use payments_model::{Payment, Source};

use crate::store::{Checkpoint, RunRecord, StoreError, Version};

/// Which payments to read back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only these sources (empty: all).
    pub sources: Vec<Source>,
    /// Only these unified statuses, as words (empty: all).
    pub statuses: Vec<String>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
    /// The ledger as it was known at this moment: each payment in the version observed then,
    /// and only payments first seen by then (`None`: as it is now).
    pub as_of: Option<DateTime<Utc>>,
}

/// A record set aside because it could not be mapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// The provider's id of the record, when it could be read.
    pub source_id: Option<String>,
    /// Why it could not be mapped (naming the record and field).
    pub reason: String,
    /// The record as the provider sent it.
    pub raw: String,
    /// When it was first quarantined (a record set aside again keeps this time).
    pub first_seen_at: DateTime<Utc>,
}

/// The payments stream of [`Ledger::payments`].
pub type PaymentStream = BoxStream<'static, Result<Payment, StoreError>>;

/// What can be read back from a ledger. Every store that a sync writes to ([`crate::Store`])
/// answers these the same way, so that the commands reading a ledger work on any of them.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// The ledger, for messages: a file's path, a database and account.
    fn describe(&self) -> String;

    /// Every payment matching `filter`, sorted by `created_at` (as an instant) then `id`, one
    /// at a time (a million need not fit in memory).
    async fn payments(&self, filter: &Filter) -> Result<PaymentStream, StoreError>;

    /// Every version of one payment, oldest first; the last is the current one. Empty when the
    /// ledger holds no payment with this unified id (`paypro:…`, `mkp:…`).
    async fn versions(&self, payment_id: &str) -> Result<Vec<Version>, StoreError>;

    /// Whether the ledger as known at `at` holds a version of which only the status is known
    /// (migrated from an older ledger): its other fields are those of a later version.
    async fn reconstructed_at(&self, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// The last recorded run of a source.
    async fn last_run(&self, source_name: &str) -> Result<Option<RunRecord>, StoreError> {
        Ok(self.recent_runs(source_name, 1).await?.pop())
    }

    /// The last `limit` recorded runs of a source, newest first.
    async fn recent_runs(
        &self,
        source_name: &str,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError>;

    /// A source's checkpoint ([`StoreError::Corrupt`] when it does not read back).
    async fn checkpoint(&self, source_name: &str) -> Result<Option<Checkpoint>, StoreError>;

    /// The quarantined records of a source, oldest first.
    async fn quarantine(&self, source_name: &str) -> Result<Vec<Quarantined>, StoreError>;

    /// The status words outside the status table that a source's provider has sent, with when
    /// each was first seen, oldest first.
    async fn unknown_words(
        &self,
        source_name: &str,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError>;

    /// Payments per unified status word, for one source, sorted by word.
    async fn counts_by_status(&self, source: Source) -> Result<Vec<(String, u64)>, StoreError>;
}
