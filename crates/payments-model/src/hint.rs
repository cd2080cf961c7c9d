//! What a webhook says: *that* something changed, never what it is now. A [`Hint`] names what to
//! read again from the provider; the engine reads it and commits what it read, so a forged,
//! replayed or reordered webhook can at worst cost a read.

use serde::{Deserialize, Serialize};

/// What to read again from one source, because a webhook said it changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "read", rename_all = "snake_case")]
pub enum Hint {
    /// One payment, by the provider's id (PayPro `PP…`): read by id.
    Payment {
        /// The payment's provider id.
        id: String,
    },
    /// One group's payments, by the group's id (an MKP payment link `plk_…`): the group, then
    /// its payment listing.
    Group {
        /// The group's provider id.
        id: String,
    },
    /// The source's change feed, now: the change is one its payments' own records do not show
    /// (a PayPro chargeback), so the next run is not waited for.
    Feed,
}

impl Hint {
    /// What it names, in words for a log line (`payment PP1`, `group plk_1`, `the change feed`).
    pub fn describe(&self) -> String {
        match self {
            Hint::Payment { id } => format!("payment {id}"),
            Hint::Group { id } => format!("group {id}"),
            Hint::Feed => "the change feed".to_owned(),
        }
    }
}

/// A webhook delivery, verified by its provider's crate: what it is known by (for
/// deduplicating redeliveries) and what it names to read again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The provider's id of the event (PayPro `EV…`), or `sha256:` and the hex digest of the
    /// body when the provider gives none: a redelivery has the same key.
    pub key: String,
    /// The provider's word for what happened (`payment.paid`, `payment-link-paid`), for logs
    /// and metrics; empty when the body names none.
    pub kind: String,
    /// What to read again; empty for an event about nothing the ledger keeps (a payout, a
    /// customer), which is answered 2xx and stored only to deduplicate.
    pub hints: Vec<Hint>,
}
