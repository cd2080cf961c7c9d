//! A day statement of a balance, as it is issued: the one input of both formats.

use chrono::{DateTime, FixedOffset, NaiveDate};
use payments_model::{Currency, Money, MovementKind};
use serde::{Deserialize, Serialize};

/// One statement: a day's entries on one balance, between its opening and closing balance.
///
/// It holds everything either format writes, so that an issued statement, kept as it was
/// issued, is written again byte for byte whatever the ledger learned since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// The account identification (`--account`; a stable default per source).
    pub account: String,
    /// Sequential per account, from 1.
    pub number: u32,
    /// The booking day (Amsterdam).
    pub day: NaiveDate,
    /// The balance's currency; every amount below is in it.
    pub currency: Currency,
    /// The balance at the start of the day (the previous statement's closing).
    pub opening: Money,
    /// The balance at its end: `opening` + Σ entries.
    pub closing: Money,
    /// When the statement was issued (written into the file as its creation time).
    pub issued_at: DateTime<FixedOffset>,
    /// The entries, in booking order.
    pub entries: Vec<Entry>,
}

/// One entry of a statement: one movement of the balance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The movement's stable reference (`PP…`, `PR…`, `PC…`, `PO…`, `PO…/fee`): the entry's
    /// reference in both formats, so that an import of the same statement twice is seen as
    /// duplicates.
    pub reference: String,
    /// What moved.
    pub kind: MovementKind,
    /// When it happened (Amsterdam day); earlier than the statement's day for a movement
    /// learned after its own day was issued.
    pub value_date: NaiveDate,
    /// Signed: a credit is positive, a debit negative.
    pub amount: Money,
    /// The provider's id of the payment concerned (`PP…`), when there is one.
    pub payment_reference: Option<String>,
    /// The payer, or the holder of the account a payout went to.
    pub counterparty: Option<String>,
    /// The counterparty's IBAN, when known.
    pub counterparty_iban: Option<String>,
    /// The description, as the provider gave it.
    pub description: Option<String>,
}
