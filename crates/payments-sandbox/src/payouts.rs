//! PayPro's payouts in the sandbox (`/payouts`, their `payout.*` events) and its balance
//! (`/balances`).
//!
//! Payout `k` (0 the newest) is made `k` payout spacings before the anchor, less up to a third
//! of a spacing, for as long as the payments reach back. It transfers part (80 to 100 %) of
//! what the payments of its *window* brought in, its fee and the fee's VAT included: the
//! payments created from [`ITEM_WINDOW`] before the next older payout to [`ITEM_WINDOW`] before
//! it, so that each of their items (paid, refunded, charged back) is made before the payout
//! (the oldest payout's window reaches back to the oldest payment). What a payment's items
//! take back never exceeds what it brought in, so the balance when a payout is made holds at
//! least its window's net, and `amount + fee_amount + fee_vat_amount` is never more than the
//! balance at its creation. A window that brought in too little for the fee makes no payout.
//!
//! A payout's life: `created`; then `approved` 1 to 6 hours later and `paid` 20 to 30 hours
//! after its creation (most), or `rejected` at the approval (1 in 20), or `approved` and then
//! `failed` (1 in 20). Only the steps made by the anchor have happened; each is an event.
//!
//! Each payout is computed once, from its window's payments, and kept: a payout every few days
//! costs a few hundred bytes each. The balance of the generated data is computed once too; what
//! tests change at run time is added to it when asked.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, TimeZone, Utc};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::RngCore;

use crate::data::{
    Data, Generator, PayProBalance, PayProBankAccount, PayProEvent, PayProPayload, PayProPayout,
    below, credits_balance, is_completed_word, is_undone_word, rng, utc,
};
use crate::feed::{ITEM_WINDOW, Items, Key};

/// The random stream of payouts.
const STREAM: u64 = 5;

/// The random stream of the account's bank account.
const ACCOUNT_STREAM: u64 = 6;

/// Approved (or rejected) this long after creation, plus up to [`APPROVE_SPAN`].
const APPROVE_MIN: i64 = 3600;
const APPROVE_SPAN: u64 = 5 * 3600;

/// Paid (or failed) this long after creation, plus up to [`FINISH_SPAN`].
const FINISH_MIN: i64 = 20 * 3600;
const FINISH_SPAN: u64 = 10 * 3600;

/// Every item of a payout (its events) is made within this many seconds of its creation.
pub(crate) const PAYOUT_WINDOW: i64 = FINISH_MIN + FINISH_SPAN as i64 + 1;

/// The step of a payout's first event in its event ids (`EV…{k:010}5`); a payment's steps are
/// below it.
pub(crate) const PAYOUT_STEP: u8 = 5;

/// Fees in cents, drawn per payout (a free payout now and then).
const FEES: [i64; 5] = [25, 25, 25, 50, 0];

/// The account holder of the sandbox's bank account.
const HOLDER: &str = "Sandbox Webshop B.V.";

/// What is computed once and kept: the payouts and the balance of the generated data.
#[derive(Debug, Default)]
pub(crate) struct PayoutCache {
    count: OnceLock<usize>,
    windows: Mutex<HashMap<usize, Arc<Window>>>,
    balance: OnceLock<i64>,
}

/// What payout `k`'s window of payments brought in, and the payout it made, if any.
#[derive(Debug)]
struct Window {
    net: i64,
    life: Option<Life>,
}

/// A generated payout as of the anchor, with the steps of its life made by then.
#[derive(Debug)]
struct Life {
    payout: PayProPayout,
    /// Each step's word and time (unix seconds), oldest first.
    steps: Vec<(&'static str, i64)>,
    tag: u32,
}

impl Generator {
    /// The random stream of payout `k` after its first draw, and when it was made.
    fn payout_start(&self, k: usize) -> (ChaCha8Rng, i64) {
        let spacing = self.paypro_payout_spacing.max(1);
        let mut r = rng(self.seed, STREAM, k as u64);
        let jitter = below(&mut r, (spacing / 3).max(1) as u64) as i64;
        (r, self.anchor.timestamp() - k as i64 * spacing - jitter)
    }

    /// When payout `k` was made (unix seconds): strictly falling with `k`.
    pub(crate) fn payout_made(&self, k: usize) -> i64 {
        self.payout_start(k).1
    }

    /// How many payouts there are (some of which may have made none, see
    /// [`Generator::paypro_payout`]): those made after the oldest payment.
    pub(crate) fn payout_count(&self) -> usize {
        *self.payouts.count.get_or_init(|| {
            let spacing = self.paypro_payout_spacing;
            if spacing <= 0 || self.paypro_payments == 0 {
                return 0;
            }
            let oldest = self.paypro_created(self.paypro_payments - 1).timestamp();
            // Made at most `k` spacings before the anchor: this one is before the oldest.
            let mut high = ((self.anchor.timestamp() - oldest) / spacing + 2) as usize;
            let mut low = 0;
            while low < high {
                let middle = low + (high - low) / 2;
                if self.payout_made(middle) > oldest {
                    low = middle + 1;
                } else {
                    high = middle;
                }
            }
            low
        })
    }

    /// The generated payments of payout `k`'s window (see the module's docs).
    fn payout_window(&self, k: usize) -> Range<usize> {
        let start = self.first_paypro_created_by(self.payout_made(k) - ITEM_WINDOW - 1);
        let end = if k + 1 < self.payout_count() {
            self.first_paypro_created_by(self.payout_made(k + 1) - ITEM_WINDOW - 1)
        } else {
            self.paypro_payments
        };
        start..end.max(start)
    }

    /// What generated payment `i` and its refund and chargeback do to the balance: its amount
    /// once paid, less its refund (unless failed or canceled) and its completed chargeback.
    /// Never below zero.
    pub(crate) fn paypro_net(&self, i: usize) -> i64 {
        let payment = self.paypro_payment(i);
        let mut net = if credits_balance(&payment.state) {
            payment.amount
        } else {
            0
        };
        if let Some(refund) = self.paypro_refund_of(i, &payment)
            && !is_undone_word(&refund.state)
        {
            net -= refund.amount;
        }
        if let Some(chargeback) = self.paypro_chargeback_of(i, &payment)
            && is_completed_word(&chargeback.state)
        {
            net -= chargeback.amount;
        }
        net
    }

    /// Payout `k`'s window and payout, computed once.
    fn window(&self, k: usize) -> Arc<Window> {
        if let Some(window) = self.payouts.windows.lock().expect("payouts lock").get(&k) {
            return window.clone();
        }
        let window = Arc::new(self.compute_window(k));
        self.payouts
            .windows
            .lock()
            .expect("payouts lock")
            .entry(k)
            .or_insert(window)
            .clone()
    }

    fn compute_window(&self, k: usize) -> Window {
        let (mut r, made) = self.payout_start(k);
        let tag = r.next_u32() & 0xFF_FFFF;
        let share = 80 + below(&mut r, 21) as i64;
        let fee = FEES[below(&mut r, FEES.len() as u64) as usize];
        let outcome = below(&mut r, 100);
        let approved = made + APPROVE_MIN + below(&mut r, APPROVE_SPAN + 1) as i64;
        let finished = made + FINISH_MIN + below(&mut r, FINISH_SPAN + 1) as i64;
        let net: i64 = self.payout_window(k).map(|i| self.paypro_net(i)).sum();
        let vat = (fee * 21 + 50) / 100;
        let amount = net * share / 100 - fee - vat;
        if k >= self.payout_count() || amount < 1 {
            return Window { net, life: None };
        }
        let mut steps = vec![("created", made)];
        match outcome {
            0..5 => steps.push(("rejected", approved)),
            5..10 => steps.extend([("approved", approved), ("failed", finished)]),
            _ => steps.extend([("approved", approved), ("paid", finished)]),
        }
        let now = self.anchor.timestamp();
        steps.retain(|(_, at)| *at <= now);
        let (state, _) = *steps.last().expect("a payout is created");
        let paid_at = steps
            .iter()
            .find(|(word, _)| *word == "paid")
            .map(|(_, at)| at_utc(*at));
        let payout = PayProPayout {
            id: format!("PO{tag:06X}{k:010}"),
            kind: "payout",
            amount,
            fee_amount: fee,
            fee_vat_amount: vat,
            currency: "EUR",
            state: state.to_owned(),
            bank_account: self.bank_account(),
            created_at: at_utc(made),
            paid_at,
        };
        Window {
            net,
            life: Some(Life { payout, steps, tag }),
        }
    }

    /// Payout `k` as of the anchor; `None` when its window made none.
    pub(crate) fn paypro_payout(&self, k: usize) -> Option<PayProPayout> {
        self.window(k).life.as_ref().map(|life| life.payout.clone())
    }

    /// The index of a generated payout by its id (`PO` + tag + index).
    pub(crate) fn paypro_payout_index(&self, id: &str) -> Option<usize> {
        let k: usize = id.strip_prefix("PO")?.get(6..)?.parse().ok()?;
        (id.len() == 18 && k < self.payout_count() && self.paypro_payout(k)?.id == id).then_some(k)
    }

    /// Payout `k` (none or one), with its key, for the `/payouts` listing.
    pub(crate) fn paypro_payouts_of(&self, k: usize) -> Items<PayProPayout> {
        let window = self.window(k);
        let Some(life) = &window.life else {
            return Vec::new();
        };
        vec![(
            Key::of_payout(life.steps[0].1, k, PAYOUT_STEP),
            life.payout.clone(),
        )]
    }

    /// The events of payout `k`, oldest first, each with its key: one per step of its life,
    /// carrying the payout as it was then.
    pub(crate) fn paypro_payout_events_of(&self, k: usize) -> Items<PayProEvent> {
        let window = self.window(k);
        let Some(life) = &window.life else {
            return Vec::new();
        };
        life.steps
            .iter()
            .enumerate()
            .map(|(n, (word, at))| {
                let step = PAYOUT_STEP + n as u8;
                let mut payout = life.payout.clone();
                payout.state = (*word).to_owned();
                payout.paid_at = (*word == "paid").then(|| at_utc(*at));
                let event = PayProEvent {
                    id: format!("EV{:06X}{k:010}{step}", life.tag),
                    kind: "event",
                    event_type: format!("payout.{word}"),
                    payload: PayProPayload::Payout(payout),
                    created_at: at_utc(*at),
                };
                (Key::of_payout(*at, k, step), event)
            })
            .collect()
    }

    /// The account's bank account: one per seed, a fictitious Dutch IBAN with valid check
    /// digits.
    pub(crate) fn bank_account(&self) -> PayProBankAccount {
        let mut r = rng(self.seed, ACCOUNT_STREAM, 0);
        let number = r.next_u64() % 10_000_000_000;
        PayProBankAccount {
            iban: dutch_iban("SNDB", number),
            name: HOLDER.to_owned(),
        }
    }

    /// The balance of the generated data (before what tests change at run time), in cents:
    /// every payment's net less every payout's total that was not rejected or failed.
    pub(crate) fn generated_balance(&self) -> i64 {
        *self.payouts.balance.get_or_init(|| {
            let count = self.payout_count();
            let newest = if count == 0 {
                0..self.paypro_payments
            } else {
                0..self.payout_window(0).start
            };
            let mut balance: i64 = newest.map(|i| self.paypro_net(i)).sum();
            for k in 0..count {
                let window = self.window(k);
                balance += window.net;
                if let Some(life) = &window.life
                    && !life.payout.is_undone()
                {
                    balance -= life.payout.total();
                }
            }
            balance
        })
    }
}

/// Unix seconds as PayPro writes them.
fn at_utc(at: i64) -> String {
    utc(Utc.timestamp_opt(at, 0).single().unwrap_or_default())
}

/// A Dutch IBAN for a four-letter bank code and a ten-digit account number, with its check
/// digits (ISO 13616: the number with `NL00` moved to its end, letters as 10 to 35, mod 97).
fn dutch_iban(bank: &str, number: u64) -> String {
    let bban = format!("{bank}{number:010}");
    let mut remainder = 0u32;
    for c in format!("{bban}NL00").chars() {
        let value = c.to_digit(36).unwrap_or_default();
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    format!("NL{:02}{bban}", 98 - remainder)
}

impl Data {
    /// The payout with `id`, as served now.
    pub(crate) fn paypro_payout_by_id(&self, id: &str) -> Option<PayProPayout> {
        if let Some(payout) = self.overlay.paypro_payouts.iter().find(|p| p.id == id) {
            return Some(payout.clone());
        }
        let k = self.generator.paypro_payout_index(id)?;
        self.generator.paypro_payout(k)
    }

    /// The EUR balance as served now: the generated data's, and what changed at run time (each
    /// payment whose state or amount a test changed, with what it brings in now instead of
    /// what it brought in as generated; payments inserted; refunds, chargebacks and payouts
    /// added), by the same rules. Records in another currency (only a test's chargebacks can
    /// be) are not in it.
    pub(crate) fn paypro_balance(&self) -> PayProBalance {
        let credit = |state: &str, amount: i64| if credits_balance(state) { amount } else { 0 };
        let overlay = &self.overlay;
        let mut amount = self.generator.generated_balance();
        let inserted = overlay.paypro_inserted.len();
        for position in 0..inserted {
            let payment = self.paypro_at(position);
            amount += credit(&payment.state, payment.amount);
        }
        let changed: BTreeSet<&String> = overlay
            .paypro_state
            .keys()
            .chain(overlay.paypro_amount.keys())
            .collect();
        for id in changed {
            if let Some(i) = self.generator.paypro_index(id) {
                let generated = self.generator.paypro_payment(i);
                let served = self.paypro_at(inserted + i);
                amount += credit(&served.state, served.amount)
                    - credit(&generated.state, generated.amount);
            }
        }
        for refund in &overlay.paypro_refunds {
            if refund.currency == "EUR" && !is_undone_word(&refund.state) {
                amount -= refund.amount;
            }
        }
        for chargeback in &overlay.paypro_chargebacks {
            if chargeback.currency == "EUR" && is_completed_word(&chargeback.state) {
                amount -= chargeback.amount;
            }
        }
        for payout in &overlay.paypro_payouts {
            if !payout.is_undone() {
                amount -= payout.total();
            }
        }
        PayProBalance {
            kind: "balance",
            currency: "EUR",
            amount,
            pending_amount: 0,
        }
    }

    /// Makes a payout of `amount` with `fee_amount` and `fee_vat_amount` now, state
    /// `created`, to the account's bank account, and its `payout.created` event; its id.
    /// `None` (and nothing changes) for an amount below 1, a negative fee or VAT, or a total
    /// over the balance now.
    pub(crate) fn add_paypro_payout(
        &mut self,
        amount: i64,
        fee_amount: i64,
        fee_vat_amount: i64,
        now: DateTime<Utc>,
    ) -> Option<String> {
        let total = amount
            .checked_add(fee_amount)?
            .checked_add(fee_vat_amount)?;
        if amount < 1 || fee_amount < 0 || fee_vat_amount < 0 {
            return None;
        }
        if total > self.paypro_balance().amount {
            return None;
        }
        let payout = PayProPayout {
            id: format!("PONEW{:013}", self.overlay.paypro_payouts.len()),
            kind: "payout",
            amount,
            fee_amount,
            fee_vat_amount,
            currency: "EUR",
            state: "created".to_owned(),
            bank_account: self.generator.bank_account(),
            created_at: utc(now),
            paid_at: None,
        };
        let id = payout.id.clone();
        self.overlay.paypro_payouts.push(payout.clone());
        self.add_paypro_event("payout.created", PayProPayload::Payout(payout), now);
        Some(id)
    }

    /// Moves a payout made at run time on to `state` now (`approved`, `paid`, `rejected` or
    /// `failed`; `paid` sets `paid_at`), with its `payout.{state}` event; the event's id.
    /// `None` (and nothing changes) for an unknown payout, one generated (its life is fixed),
    /// another word, or a payout already paid, rejected or failed.
    pub(crate) fn set_paypro_payout_state(
        &mut self,
        id: &str,
        state: &str,
        now: DateTime<Utc>,
    ) -> Option<String> {
        if !["approved", "paid", "rejected", "failed"].contains(&state) {
            return None;
        }
        let payout = self
            .overlay
            .paypro_payouts
            .iter_mut()
            .find(|p| p.id == id && matches!(p.state.as_str(), "created" | "approved"))?;
        payout.state = state.to_owned();
        if state == "paid" {
            payout.paid_at = Some(utc(now));
        }
        let payout = payout.clone();
        Some(self.add_paypro_event(
            &format!("payout.{state}"),
            PayProPayload::Payout(payout),
            now,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibans_carry_valid_check_digits() {
        // The example of the Dutch banks' IBAN documentation.
        assert_eq!(dutch_iban("ABNA", 417_164_300), "NL91ABNA0417164300");
        let iban = dutch_iban("SNDB", 1_234_567_890);
        assert_eq!(iban.len(), 18);
        // ISO 13616: the IBAN with its first four characters moved to its end is 1 mod 97.
        let moved = format!("{}{}", &iban[4..], &iban[..4]);
        let remainder = moved.chars().fold(0u32, |r, c| {
            let v = c.to_digit(36).unwrap();
            if v >= 10 {
                (r * 100 + v) % 97
            } else {
                (r * 10 + v) % 97
            }
        });
        assert_eq!(remainder, 1);
    }
}
