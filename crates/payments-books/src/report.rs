//! A month of a ledger, for the books: what came in and went out, and the ledger's balance
//! reconciled with the provider's.
//!
//! The rules, all here:
//! - Payments are counted in the month they were created, by unified status.
//! - The balance's movements are those of [`payment_movement`] and [`record_movements`],
//!   counted in the month of their value date; the opening balance holds every movement
//!   valued before the month, the closing every one valued before its end, "now" all.
//! - A payment whose refunded or charged-back amount is more than the refund and chargeback
//!   records of it account for has given back money the ledger has not debited: that
//!   difference explains a ledger balance higher than the provider's.
//! - The reconciliation: the ledger's balance now against the provider's; "reconciled" when
//!   equal, "explained" when the unlisted refunds and chargebacks make up the difference,
//!   else "unexplained" with what is left.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use payments_model::{
    BookKind, BookRecord, Money, MovementKind, Source, payment_movement, record_movements,
};
use payments_sync::{Books, Filter, Ledger, StoreError};

/// A count and an exact sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// How many.
    pub count: u64,
    /// Their sum (`None` for none).
    pub sum: Option<Money>,
}

impl Tally {
    fn add(&mut self, amount: Money) {
        self.count += 1;
        self.sum = Some(match self.sum {
            Some(sum) => sum.checked_add(amount).unwrap_or(sum),
            None => amount,
        });
    }
}

/// Money a payment says it gave back that no record of the provider's lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unlisted {
    /// The payment's unified id.
    pub payment_id: String,
    /// Refunds or chargebacks.
    pub kind: BookKind,
    /// How much.
    pub amount: Money,
}

/// A month of a provider balance (PayPro's) as the ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceMonth {
    /// Payments created in the month, by unified status word.
    pub by_status: BTreeMap<String, Tally>,
    /// The month's movements, by kind.
    pub by_kind: BTreeMap<MovementKind, Tally>,
    /// Payouts made in the month.
    pub payouts: Vec<BookRecord>,
    /// The balance when the month began.
    pub opening: Money,
    /// The balance when it ended.
    pub closing: Money,
    /// The balance now, of everything the ledger holds.
    pub now: Money,
    /// What payments gave back that no record lists, by payment then kind.
    pub unlisted: Vec<Unlisted>,
}

/// The month `start..end` of `source`'s balance, from `opening` (the balance before every
/// movement the ledger holds).
pub async fn balance_month<L>(
    ledger: &L,
    source: Source,
    opening: Money,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<BalanceMonth, StoreError>
where
    L: Ledger + Books + ?Sized,
{
    let mut month = BalanceMonth {
        by_status: BTreeMap::new(),
        by_kind: BTreeMap::new(),
        payouts: Vec::new(),
        opening,
        closing: opening,
        now: opening,
        unlisted: Vec::new(),
    };
    let account =
        |month: &mut BalanceMonth, amount: Money, kind: MovementKind, at: DateTime<Utc>| {
            let add = |m: Money| m.checked_add(amount).unwrap_or(m);
            month.now = add(month.now);
            if at < start {
                month.opening = add(month.opening);
            }
            if at < end {
                month.closing = add(month.closing);
            }
            if (start..end).contains(&at) {
                month.by_kind.entry(kind).or_default().add(amount);
            }
        };
    // What each payment says it gave back (refunded, charged back), less what records list.
    let mut said: HashMap<String, [Money; 2]> = HashMap::new();
    let filter = Filter {
        sources: vec![source],
        ..Filter::default()
    };
    let mut payments = ledger.payments(&filter).await?;
    while let Some(payment) = payments.try_next().await? {
        if (start..end).contains(&payment.created_at.to_utc()) {
            month
                .by_status
                .entry(payment.status.as_str().to_owned())
                .or_default()
                .add(payment.amount);
        }
        if let Some(movement) = payment_movement(&payment) {
            account(
                &mut month,
                movement.amount,
                movement.kind,
                movement.value_at.to_utc(),
            );
            let zero = Money::zero(payment.currency());
            said.insert(
                payment.id.clone(),
                [
                    payment.refunded_amount.unwrap_or(zero),
                    payment.charged_back_amount.unwrap_or(zero),
                ],
            );
        }
    }
    drop(payments);
    for kept in ledger.records(source).await? {
        let record = kept.record;
        let moves = record_movements(&record, kept.returned_at.map(|at| at.fixed_offset()));
        for movement in &moves {
            account(
                &mut month,
                movement.amount,
                movement.kind,
                movement.value_at.to_utc(),
            );
        }
        let slot = match record.kind {
            BookKind::Refund => Some(0),
            BookKind::Chargeback => Some(1),
            BookKind::Payout => None,
        };
        if let Some(slot) = slot
            && let Some(said) = record.payment_id.as_ref().and_then(|id| said.get_mut(id))
        {
            // The moves debit: what they list is their negation.
            for movement in &moves {
                said[slot] = said[slot]
                    .checked_add(movement.amount)
                    .unwrap_or(said[slot]);
            }
        }
        if record.kind == BookKind::Payout && (start..end).contains(&record.created_at.to_utc()) {
            month.payouts.push(record);
        }
    }
    let mut unlisted: Vec<Unlisted> = said
        .into_iter()
        .flat_map(|(payment_id, [refunded, charged_back])| {
            [
                (BookKind::Refund, refunded),
                (BookKind::Chargeback, charged_back),
            ]
            .into_iter()
            .filter(|(_, amount)| !amount.is_zero())
            .map(move |(kind, amount)| Unlisted {
                payment_id: payment_id.clone(),
                kind,
                amount,
            })
        })
        .collect();
    unlisted.sort_by(|a, b| (&a.payment_id, a.kind).cmp(&(&b.payment_id, b.kind)));
    month.unlisted = unlisted;
    Ok(month)
}

/// The ledger's balance against the provider's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciliation {
    /// The ledger's balance now.
    pub ledger: Money,
    /// The provider's.
    pub provider: Money,
    /// Ledger less provider.
    pub difference: Money,
    /// What explains (part of) the difference.
    pub explained_by: Vec<Unlisted>,
    /// What nothing explains (zero when reconciled or explained).
    pub unexplained: Money,
}

impl Reconciliation {
    /// `"reconciled"`, `"explained"` or `"unexplained"`.
    pub fn state(&self) -> &'static str {
        if self.difference.is_zero() {
            "reconciled"
        } else if self.unexplained.is_zero() {
            "explained"
        } else {
            "unexplained"
        }
    }
}

/// Reconciles `month`'s balance now with the provider's balance, `provider`.
pub fn reconcile(month: &BalanceMonth, provider: Money) -> Reconciliation {
    let difference = month
        .now
        .checked_add(provider.negated())
        .unwrap_or(month.now);
    let zero = Money::zero(difference.currency());
    if difference.is_zero() {
        return Reconciliation {
            ledger: month.now,
            provider,
            difference,
            explained_by: Vec::new(),
            unexplained: zero,
        };
    }
    // An unlisted refund or chargeback: the ledger has not debited it, so its balance is
    // higher by that much.
    let explained = month
        .unlisted
        .iter()
        .fold(zero, |sum, u| sum.checked_add(u.amount).unwrap_or(sum));
    Reconciliation {
        ledger: month.now,
        provider,
        difference,
        explained_by: month.unlisted.clone(),
        unexplained: difference
            .checked_add(explained.negated())
            .unwrap_or(difference),
    }
}

/// A month of a source whose money sits at its processors (MKP).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessorMonth {
    /// Payments created in the month, by unified status word.
    pub by_status: BTreeMap<String, Tally>,
    /// What the month's payments brought in, by processor (`integration`).
    pub received_by_processor: BTreeMap<String, Tally>,
}

/// The month `start..end` of `source`, per processor.
pub async fn processor_month<L>(
    ledger: &L,
    source: Source,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<ProcessorMonth, StoreError>
where
    L: Ledger + ?Sized,
{
    let filter = Filter {
        sources: vec![source],
        since: Some(start),
        until: Some(end),
        ..Filter::default()
    };
    let mut month = ProcessorMonth::default();
    let mut payments = ledger.payments(&filter).await?;
    while let Some(payment) = payments.try_next().await? {
        month
            .by_status
            .entry(payment.status.as_str().to_owned())
            .or_default()
            .add(payment.amount);
        if payment_movement(&payment).is_some() {
            month
                .received_by_processor
                .entry(payment.processor.clone())
                .or_default()
                .add(payment.amount);
        }
    }
    Ok(month)
}
