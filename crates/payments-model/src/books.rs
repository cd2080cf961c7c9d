//! What moves a provider balance besides payments (refunds, chargebacks, payouts), and the
//! movements of that balance: the facts a bank statement of the balance is made of.
//!
//! [`BookRecord`] is a provider's refund, chargeback or payout as the provider said it. The
//! movements are derived, never stored: [`payment_movements`] and [`record_movements`] are pure
//! functions of what the ledger holds, so a statement made twice from the same ledger is the
//! same statement.

use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::{Money, Payment, PaymentStatus, Source};

/// A kind of record that moves a balance besides payments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookKind {
    /// Money paid back to a payer.
    Refund,
    /// Money taken back by the payer's bank.
    Chargeback,
    /// Money transferred from the balance to the merchant's bank account.
    Payout,
}

impl BookKind {
    /// Every kind, in the order a run reads their listings.
    pub const ALL: [BookKind; 3] = [BookKind::Refund, BookKind::Chargeback, BookKind::Payout];

    /// `"refund"`, `"chargeback"`, `"payout"`: the word stores keep and commands print.
    pub fn as_str(self) -> &'static str {
        match self {
            BookKind::Refund => "refund",
            BookKind::Chargeback => "chargeback",
            BookKind::Payout => "payout",
        }
    }

    /// Parses [`BookKind::as_str`]'s words.
    pub fn from_word(word: &str) -> Option<BookKind> {
        BookKind::ALL.into_iter().find(|kind| kind.as_str() == word)
    }
}

impl fmt::Display for BookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a payout went: the bank account as the provider names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BankAccount {
    /// The IBAN, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    /// The holder's name, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A refund, chargeback or payout as the provider said it. Amounts are exact and positive as
/// the provider sends them; which way they move the balance is [`record_movements`]'s to say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookRecord {
    /// What it is.
    pub kind: BookKind,
    /// Globally unique: the source's prefix and the provider's id (`"paypro:PR…"`).
    pub id: String,
    /// The provider.
    pub source: Source,
    /// The provider's own id (`PR…`, `PC…`, `PO…`).
    pub source_id: String,
    /// The unified id of the payment a refund or chargeback concerns (`"paypro:PP…"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// The provider's state word, as sent (`processing`, `completed`, `paid`, …; open-ended).
    pub state: String,
    /// The amount: refunded, charged back, or transferred to the bank.
    pub amount: Money,
    /// A payout's fee, withheld from the balance with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee: Option<Money>,
    /// The VAT on a payout's fee, withheld with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_vat: Option<Money>,
    /// When the provider created it, with the provider's offset kept.
    pub created_at: DateTime<FixedOffset>,
    /// When it was carried out (`refunded_at`, `charged_back_at`, a payout's `paid_at`), when
    /// the provider says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<DateTime<FixedOffset>>,
    /// Free text, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A chargeback's reason code (`MD06`) or a refund's reason, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where a payout went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_account: Option<BankAccount>,
}

impl BookRecord {
    /// Whether the record's state says it did not happen (`failed`, `rejected`, `canceled`,
    /// `cancelled`, any case): it moves no money, or gives back what it took.
    pub fn is_undone(&self) -> bool {
        let state = self.state.trim();
        ["failed", "rejected", "canceled", "cancelled"]
            .iter()
            .any(|word| state.eq_ignore_ascii_case(word))
    }

    /// Whether nothing more is expected of it: undone, a completed chargeback, or a refund or
    /// payout the provider says was carried out (it has a `settled_at`).
    pub fn is_final(&self) -> bool {
        self.is_undone()
            || match self.kind {
                BookKind::Chargeback => self.is_completed(),
                BookKind::Refund | BookKind::Payout => self.settled_at.is_some(),
            }
    }

    /// Whether a chargeback is done (`completed`, any case): only then is the money gone.
    pub fn is_completed(&self) -> bool {
        self.state.trim().eq_ignore_ascii_case("completed")
    }
}

/// What a movement of the balance is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// A paid payment: a credit.
    Payment,
    /// A refund: a debit.
    Refund,
    /// A completed chargeback: a debit.
    Chargeback,
    /// A payout's transfer to the bank: a debit.
    Payout,
    /// A payout's fee: a debit.
    PayoutFee,
    /// The VAT on a payout's fee: a debit.
    PayoutFeeVat,
    /// A rejected or failed payout given back to the balance: a credit.
    PayoutReturned,
}

impl MovementKind {
    /// `"payment"`, `"refund"`, …, `"payout_returned"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::Payment => "payment",
            MovementKind::Refund => "refund",
            MovementKind::Chargeback => "chargeback",
            MovementKind::Payout => "payout",
            MovementKind::PayoutFee => "payout_fee",
            MovementKind::PayoutFeeVat => "payout_fee_vat",
            MovementKind::PayoutReturned => "payout_returned",
        }
    }
}

/// One movement of a balance: a credit (positive amount) or a debit (negative).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movement {
    /// Stable and unique within the balance: the provider's id of the payment, refund,
    /// chargeback or payout (`PP…`, `PR…`, `PC…`, `PO…`), with `/fee`, `/vat` or `/returned`
    /// for a payout's other movements. A statement's entry reference.
    pub reference: String,
    /// What it is.
    pub kind: MovementKind,
    /// When it happened, from the provider (never when the ledger noticed), offset kept.
    pub value_at: DateTime<FixedOffset>,
    /// Signed: a credit is positive, a debit negative.
    pub amount: Money,
    /// The unified id of the payment concerned (a payment's own, a refund's, a chargeback's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    /// Who is on the other side: the payer, or the payout's bank account holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterparty: Option<String>,
    /// The counterparty's IBAN, when known (a payout's bank account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterparty_iban: Option<String>,
    /// The payment's or record's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The movement a payment makes: a credit of its amount once it was paid (paid, partly or
/// fully refunded, or charged back: what was given back is a movement of its own), valued at
/// `paid_at` (never before `created_at`; `created_at` when the provider gives no `paid_at`).
/// `None` for a payment that brought no money (open, pending, failed, canceled, expired, or a
/// status word not known).
pub fn payment_movement(payment: &Payment) -> Option<Movement> {
    let received = matches!(
        payment.status,
        PaymentStatus::Paid
            | PaymentStatus::PartiallyRefunded
            | PaymentStatus::Refunded
            | PaymentStatus::ChargedBack
    );
    if !received {
        return None;
    }
    let value_at = match payment.paid_at {
        Some(paid) if paid >= payment.created_at => paid,
        _ => payment.created_at,
    };
    Some(Movement {
        reference: payment.source_id.clone(),
        kind: MovementKind::Payment,
        value_at,
        amount: payment.amount,
        payment_id: Some(payment.id.clone()),
        counterparty: payment.payer_name.clone(),
        counterparty_iban: None,
        description: payment.description.clone(),
    })
}

/// The movements a refund, chargeback or payout makes, in the order they happened:
/// - a refund debits its amount when it is made (`created_at`), unless it failed or was
///   canceled;
/// - a chargeback debits its amount once completed, valued at `charged_back_at` (never before
///   `created_at`; `created_at` when not said);
/// - a payout debits its amount, its fee and the fee's VAT when it is created, and when it
///   was rejected or failed, credits their sum back, valued at `returned_at` (the provider
///   sends no such time: the ledger's best knowledge of it) or else `created_at`.
pub fn record_movements(
    record: &BookRecord,
    returned_at: Option<DateTime<FixedOffset>>,
) -> Vec<Movement> {
    let movement = |reference: String, kind, value_at, amount: Money| Movement {
        reference,
        kind,
        value_at,
        amount,
        payment_id: record.payment_id.clone(),
        counterparty: record.bank_account.as_ref().and_then(|b| b.name.clone()),
        counterparty_iban: record.bank_account.as_ref().and_then(|b| b.iban.clone()),
        description: record.description.clone(),
    };
    let not_before_creation = |at: Option<DateTime<FixedOffset>>| match at {
        Some(at) if at >= record.created_at => at,
        _ => record.created_at,
    };
    match record.kind {
        BookKind::Refund if record.is_undone() => Vec::new(),
        BookKind::Refund => vec![movement(
            record.source_id.clone(),
            MovementKind::Refund,
            record.created_at,
            record.amount.negated(),
        )],
        BookKind::Chargeback if !record.is_completed() => Vec::new(),
        BookKind::Chargeback => vec![movement(
            record.source_id.clone(),
            MovementKind::Chargeback,
            not_before_creation(record.settled_at),
            record.amount.negated(),
        )],
        BookKind::Payout => {
            let id = &record.source_id;
            let mut moves = vec![movement(
                id.clone(),
                MovementKind::Payout,
                record.created_at,
                record.amount.negated(),
            )];
            let mut total = record.amount;
            for (part, kind, suffix) in [
                (record.fee, MovementKind::PayoutFee, "fee"),
                (record.fee_vat, MovementKind::PayoutFeeVat, "vat"),
            ] {
                let Some(part) = part.filter(|p| !p.is_zero()) else {
                    continue;
                };
                moves.push(movement(
                    format!("{id}/{suffix}"),
                    kind,
                    record.created_at,
                    part.negated(),
                ));
                total = total.checked_add(part).unwrap_or(total);
            }
            if record.is_undone() {
                moves.push(movement(
                    format!("{id}/returned"),
                    MovementKind::PayoutReturned,
                    not_before_creation(returned_at),
                    total,
                ));
            }
            moves
        }
    }
}
