//! PayPro's other listings in the sandbox: `/events`, `/refunds` and `/chargebacks`, each newest
//! first, with the same envelope and cursors as `/payments`.
//!
//! Their generated part is a pure function of the generated payments. Each payment has its
//! items: the events `payment.created`, `payment.paid` once paid, `customer.created` for some,
//! and `refund.created` or `chargeback.created` for its refund or chargeback (with the refund
//! or chargeback itself), all within [`ITEM_WINDOW`] seconds of the payment's creation.
//! Payments are strictly ordered by creation, so a page of any listing is a merge over a
//! window of payments rather than a sort of the whole account: a million payments still cost
//! no memory. Items added at run time (a late refund or chargeback) list above the generated
//! ones, newest first, as the real feed would show them; a chargeback added with a time in the
//! past lists among them by that time, as an event inserted late into the feed would.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::data::{
    Data, Generator, PayProChargeback, PayProCustomer, PayProEvent, PayProPayload, PayProPayment,
    PayProPayout, PayProRefund, below, rng, utc,
};
use crate::payouts::PAYOUT_WINDOW;

/// Every generated item of a payment is made within this many seconds of the payment's
/// creation: paid less than 630 s after it (see `Generator::paypro_payment`), refunded or
/// charged back less than 301 s after that.
pub(crate) const ITEM_WINDOW: i64 = 630 + 301;

const CHARGEBACK_REASONS: [&str; 3] = ["MD06", "AM04", "MS02"];

/// The steps of a payment's life, in the order they happen.
const CUSTOMER: u8 = 0;
const CREATED: u8 = 1;
const PAID: u8 = 2;
const REFUND: u8 = 3;
const CHARGEBACK: u8 = 4;

/// Where a generated item stands in its newest-first listing: the newest time first, then the
/// newer owner's (a payment's, before any payout's), then the later step of one owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    at: i64,
    owner: Reverse<u64>,
    step: u8,
}

/// The owner number of payout `k` in a [`Key`]: above every payment's, so that at the same
/// second a payout's items list below the payments'.
const PAYOUT_OWNER: u64 = 1 << 62;

impl Key {
    fn new(at: &str, payment: usize, step: u8) -> Key {
        Key {
            at: parse_utc(at).timestamp(),
            owner: Reverse(payment as u64),
            step,
        }
    }

    /// The key of step `step` of payout `k`, made at `at` (unix seconds).
    pub(crate) fn of_payout(at: i64, k: usize, step: u8) -> Key {
        Key {
            at,
            owner: Reverse(PAYOUT_OWNER + k as u64),
            step,
        }
    }
}

pub(crate) fn parse_utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("generated timestamps parse")
        .with_timezone(&Utc)
}

/// The generated items of one payment or payout, with their keys.
pub(crate) type Items<T> = Vec<(Key, T)>;

impl Generator {
    /// When the refund or chargeback of payment `i` was made (shortly after it was paid), and
    /// the chargeback's reason.
    fn paypro_late(&self, i: usize, paid_at: &str) -> (String, &'static str) {
        let mut r = rng(self.seed, 4, i as u64);
        let at = parse_utc(paid_at) + Duration::seconds(1 + below(&mut r, 300) as i64);
        (utc(at), CHARGEBACK_REASONS[below(&mut r, 3) as usize])
    }

    /// The refund of generated payment `i` (as generated), when it has a refunded amount.
    pub(crate) fn paypro_refund_of(
        &self,
        i: usize,
        payment: &PayProPayment,
    ) -> Option<PayProRefund> {
        if payment.refunded_amount <= 0 {
            return None;
        }
        let (at, _) = self.paypro_late(i, payment.paid_at.as_deref()?);
        Some(PayProRefund {
            id: format!("PR{}{i:010}", &payment.id[2..8]),
            kind: "refund",
            amount: payment.refunded_amount,
            currency: payment.currency,
            description: Some(format!("Refund of {}", payment.description)),
            payment: payment.id.clone(),
            reason: None,
            refunded_at: Some(at.clone()),
            state: "completed".to_owned(),
            created_at: at,
        })
    }

    /// The chargeback of generated payment `i` (as generated), when its state says it has one.
    pub(crate) fn paypro_chargeback_of(
        &self,
        i: usize,
        payment: &PayProPayment,
    ) -> Option<PayProChargeback> {
        if !matches!(payment.state.as_str(), "chargeback" | "chargebacked") {
            return None;
        }
        let (at, reason) = self.paypro_late(i, payment.paid_at.as_deref()?);
        Some(PayProChargeback {
            id: format!("PC{}{i:010}", &payment.id[2..8]),
            kind: "chargeback",
            amount: payment.amount,
            currency: payment.currency,
            description: Some(format!("Chargeback of {}", payment.description)),
            payment: payment.id.clone(),
            reason: Some(reason.to_owned()),
            state: "completed".to_owned(),
            charged_back_at: Some(at.clone()),
            created_at: at,
        })
    }

    /// The events of generated payment `i`, oldest first, each with its key.
    pub(crate) fn paypro_events_of(&self, i: usize) -> Items<PayProEvent> {
        let payment = self.paypro_payment(i);
        let tag = &payment.id[2..8];
        let event = |step: u8, event_type: &str, at: &str, payload: PayProPayload| {
            let event = PayProEvent {
                id: format!("EV{tag}{i:010}{step}"),
                kind: "event",
                event_type: event_type.to_owned(),
                payload,
                created_at: at.to_owned(),
            };
            (Key::new(at, i, step), event)
        };
        let mut events = Vec::with_capacity(4);
        if let Some(customer) = payment.customer.as_ref().filter(|_| i % 4 == 1) {
            let customer = PayProCustomer {
                id: customer.clone(),
                kind: "customer",
                email: format!("klant{i}@sandbox.invalid"),
                name: None,
                created_at: payment.created_at.clone(),
            };
            events.push(event(
                CUSTOMER,
                "customer.created",
                &payment.created_at,
                PayProPayload::Customer(customer),
            ));
        }
        let mut created = payment.clone();
        if created.state != "initialized" {
            created.state = "open".to_owned();
        }
        created.refunded_amount = 0;
        created.paid_at = None;
        created.fail_reason = None;
        events.push(event(
            CREATED,
            "payment.created",
            &payment.created_at,
            PayProPayload::Payment(created),
        ));
        if let Some(paid_at) = &payment.paid_at {
            let mut paid = payment.clone();
            if paid.state != "completed" {
                paid.state = "paid".to_owned();
            }
            paid.refunded_amount = 0;
            events.push(event(
                PAID,
                "payment.paid",
                paid_at,
                PayProPayload::Payment(paid),
            ));
        }
        if let Some(refund) = self.paypro_refund_of(i, &payment) {
            let at = refund.created_at.clone();
            events.push(event(
                REFUND,
                "refund.created",
                &at,
                PayProPayload::Refund(refund),
            ));
        }
        if let Some(chargeback) = self.paypro_chargeback_of(i, &payment) {
            let at = chargeback.created_at.clone();
            events.push(event(
                CHARGEBACK,
                "chargeback.created",
                &at,
                PayProPayload::Chargeback(chargeback),
            ));
        }
        events
    }

    /// The refunds of generated payment `i` (none or one), with their keys.
    pub(crate) fn paypro_refunds_of(&self, i: usize) -> Items<PayProRefund> {
        let payment = self.paypro_payment(i);
        self.paypro_refund_of(i, &payment)
            .map(|refund| (Key::new(&refund.created_at, i, REFUND), refund))
            .into_iter()
            .collect()
    }

    /// The chargebacks of generated payment `i` (none or one), with their keys.
    pub(crate) fn paypro_chargebacks_of(&self, i: usize) -> Items<PayProChargeback> {
        let payment = self.paypro_payment(i);
        self.paypro_chargeback_of(i, &payment)
            .map(|chargeback| (Key::new(&chargeback.created_at, i, CHARGEBACK), chargeback))
            .into_iter()
            .collect()
    }

    /// The first generated payment created at or before `at` (unix seconds); the count when
    /// none is.
    pub(crate) fn first_paypro_created_by(&self, at: i64) -> usize {
        let (mut low, mut high) = (0, self.paypro_payments);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.paypro_created(middle).timestamp() > at {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    /// The generated payment a generated id (`EV`, `PR`, `PC` + the payment's tag and index)
    /// names, when it is in range.
    fn paypro_index_in(&self, id: &str) -> Option<usize> {
        let i: usize = id.get(8..18)?.parse().ok()?;
        (i < self.paypro_payments).then_some(i)
    }

    /// Up to `want` generated items of the payments, newest first, each strictly below `below`
    /// (from the top when `None`) and strictly above `above` (to the end when `None`).
    pub(crate) fn payments_merged<T>(
        &self,
        below: Option<Key>,
        above: Option<Key>,
        want: usize,
        items_of: fn(&Generator, usize) -> Items<T>,
    ) -> Items<T> {
        Lane {
            count: self.paypro_payments,
            window: ITEM_WINDOW,
            made: &|i| self.paypro_created(i).timestamp(),
            items_of: &|i| items_of(self, i),
        }
        .merged(below, above, want)
    }

    /// The same for the payouts' items (see `payouts.rs`).
    pub(crate) fn payouts_merged<T>(
        &self,
        below: Option<Key>,
        above: Option<Key>,
        want: usize,
        items_of: fn(&Generator, usize) -> Items<T>,
    ) -> Items<T> {
        Lane {
            count: self.payout_count(),
            window: PAYOUT_WINDOW,
            made: &|k| self.payout_made(k),
            items_of: &|k| items_of(self, k),
        }
        .merged(below, above, want)
    }

    /// Up to `want` generated events, newest first, strictly below `below`: the payments' and
    /// the payouts', merged.
    fn generated_events(&self, below: Option<Key>, want: usize) -> Items<PayProEvent> {
        let mut events = self.payments_merged(below, None, want, Generator::paypro_events_of);
        // A payout's event at or below the lowest of `want` payment events is not listed.
        let floor = if events.len() >= want {
            events.last().map(|(key, _)| *key)
        } else {
            None
        };
        let payouts = self.payouts_merged(below, floor, want, Generator::paypro_payout_events_of);
        if !payouts.is_empty() {
            events.extend(payouts);
            events.sort_by_key(|(key, _)| Reverse(*key));
            events.truncate(want);
        }
        events
    }

    /// The key of the generated event with `id`: a payment's (`EV` + tag + index + step 0 to
    /// 4) or a payout's (step 5 and up).
    fn event_key(&self, id: &str) -> Option<Key> {
        let step: u8 = id.get(18..)?.parse().ok()?;
        let i: usize = id.get(8..18)?.parse().ok()?;
        let events = if step >= crate::payouts::PAYOUT_STEP {
            (i < self.payout_count()).then(|| self.paypro_payout_events_of(i))?
        } else {
            (i < self.paypro_payments).then(|| self.paypro_events_of(i))?
        };
        key_in(events, id, |event| &event.id)
    }
}

/// The key of the item with `id` among `items`.
fn key_in<T>(items: Items<T>, id: &str, id_of: fn(&T) -> &str) -> Option<Key> {
    items
        .into_iter()
        .find(|(_, item)| id_of(item) == id)
        .map(|(key, _)| key)
}

/// One ordered source of generated items: `count` owners (payments, or payouts), owner `i`
/// made at `made(i)` (unix seconds, strictly falling with `i`), each of its items made within
/// `window` seconds from then.
struct Lane<'a, T> {
    count: usize,
    window: i64,
    made: &'a dyn Fn(usize) -> i64,
    items_of: &'a dyn Fn(usize) -> Items<T>,
}

impl<T> Lane<'_, T> {
    /// The first owner made at or before `at`; the count when none is.
    fn first_made_by(&self, at: i64) -> usize {
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let middle = low + (high - low) / 2;
            if (self.made)(middle) > at {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    /// Up to `want` items, newest first, each strictly below `below` (from the top when `None`)
    /// and strictly above `above` (to the end when `None`).
    ///
    /// Owner `i`'s items are made in `[made(i), made(i) + window)`, and `made` falls with `i`;
    /// so once the owners up to `i` are read, a pending item at or above `made(i + 1) + window`
    /// is above everything still unread, and is listed. Once that bound is at or below `above`,
    /// nothing unread can be listed.
    fn merged(&self, below: Option<Key>, above: Option<Key>, want: usize) -> Items<T> {
        let mut i = below.map_or(0, |key| self.first_made_by(key.at));
        let mut pending: BTreeMap<Key, T> = BTreeMap::new();
        let mut out = Vec::with_capacity(want.min(1024));
        while out.len() < want {
            let unread_below = (i < self.count)
                .then(|| (self.made)(i) + self.window)
                .filter(|bound| above.is_none_or(|above| *bound > above.at));
            while out.len() < want {
                match pending.last_key_value() {
                    Some((key, _)) if unread_below.is_none_or(|bound| key.at >= bound) => {
                        out.extend(pending.pop_last());
                    }
                    _ => break,
                }
            }
            let Some(_) = unread_below else { break };
            if out.len() >= want {
                break;
            }
            for (key, item) in (self.items_of)(i) {
                if below.is_none_or(|below| key < below) && above.is_none_or(|above| key > above) {
                    pending.insert(key, item);
                }
            }
            i += 1;
        }
        out
    }
}

/// Up to a number of generated items strictly below a key (from the top for `None`), newest
/// first.
type Generated<'a, T> = &'a dyn Fn(&Generator, Option<Key>, usize) -> Items<T>;

/// A newest-first listing: items added at run time (kept oldest first) above generated ones.
struct Listing<'a, T> {
    added: &'a [T],
    id: fn(&T) -> &str,
    /// The key of the generated item with an id, when there is one.
    key_of: &'a dyn Fn(&Generator, &str) -> Option<Key>,
    /// The generated items.
    generated: Generated<'a, T>,
}

impl<T: Clone> Listing<'_, T> {
    /// Up to `want` items after the one with id `after` (from the top when `None`); `None`
    /// when no item has that id.
    fn after(&self, generator: &Generator, after: Option<&str>, want: usize) -> Option<Vec<T>> {
        let (added_above, below) = match after {
            None => (self.added.len(), None),
            Some(id) => match self.added.iter().position(|item| (self.id)(item) == id) {
                Some(at) => (at, None),
                None => (0, Some((self.key_of)(generator, id)?)),
            },
        };
        let mut out: Vec<T> = self.added[..added_above]
            .iter()
            .rev()
            .take(want)
            .cloned()
            .collect();
        if out.len() < want {
            let generated = (self.generated)(generator, below, want - out.len());
            out.extend(generated.into_iter().map(|(_, item)| item));
        }
        Some(out)
    }
}

/// The key of a generated refund or chargeback (`PR`/`PC` + its payment's tag and index).
fn payment_item_key<T>(
    generator: &Generator,
    id: &str,
    items_of: fn(&Generator, usize) -> Items<T>,
    id_of: fn(&T) -> &str,
) -> Option<Key> {
    let i = generator.paypro_index_in(id)?;
    key_in(items_of(generator, i), id, id_of)
}

impl Data {
    /// Up to `want` events after the event `after` (from the newest when `None`); `None` when
    /// there is no such event.
    pub(crate) fn paypro_events_after(
        &self,
        after: Option<&str>,
        want: usize,
    ) -> Option<Vec<PayProEvent>> {
        let mut events = Listing {
            added: &self.overlay.paypro_events,
            id: |event: &PayProEvent| event.id.as_str(),
            key_of: &|generator, id| generator.event_key(id),
            generated: &|generator, below, want| generator.generated_events(below, want),
        }
        .after(&self.generator, after, want)?;
        let overlay = &self.overlay;
        if !overlay.paypro_description.is_empty() || !overlay.paypro_customer_name.is_empty() {
            for event in &mut events {
                match &mut event.payload {
                    PayProPayload::Payment(payment) => self.with_paypro_text(payment),
                    PayProPayload::Customer(customer) => {
                        if let Some(name) = overlay.paypro_customer_name.get(&customer.id) {
                            customer.name = Some(name.clone());
                        }
                    }
                    PayProPayload::Refund(_)
                    | PayProPayload::Chargeback(_)
                    | PayProPayload::Payout(_) => {}
                }
            }
        }
        Some(events)
    }

    /// Up to `want` refunds after the refund `after` (from the newest when `None`); `None` when
    /// there is no such refund.
    pub(crate) fn paypro_refunds_after(
        &self,
        after: Option<&str>,
        want: usize,
    ) -> Option<Vec<PayProRefund>> {
        Listing {
            added: &self.overlay.paypro_refunds,
            id: |refund: &PayProRefund| refund.id.as_str(),
            key_of: &|generator, id| {
                payment_item_key(generator, id, Generator::paypro_refunds_of, |r| &r.id)
            },
            generated: &|generator, below, want| {
                generator.payments_merged(below, None, want, Generator::paypro_refunds_of)
            },
        }
        .after(&self.generator, after, want)
    }

    /// Up to `want` chargebacks after the chargeback `after` (from the newest when `None`);
    /// `None` when there is no such chargeback.
    pub(crate) fn paypro_chargebacks_after(
        &self,
        after: Option<&str>,
        want: usize,
    ) -> Option<Vec<PayProChargeback>> {
        Listing {
            added: &self.overlay.paypro_chargebacks,
            id: |chargeback: &PayProChargeback| chargeback.id.as_str(),
            key_of: &|generator, id| {
                payment_item_key(generator, id, Generator::paypro_chargebacks_of, |c| &c.id)
            },
            generated: &|generator, below, want| {
                generator.payments_merged(below, None, want, Generator::paypro_chargebacks_of)
            },
        }
        .after(&self.generator, after, want)
    }

    /// Up to `want` payouts after the payout `after` (from the newest when `None`); `None` when
    /// there is no such payout.
    pub(crate) fn paypro_payouts_after(
        &self,
        after: Option<&str>,
        want: usize,
    ) -> Option<Vec<PayProPayout>> {
        Listing {
            added: &self.overlay.paypro_payouts,
            id: |payout: &PayProPayout| payout.id.as_str(),
            key_of: &|generator, id| {
                let k = generator.paypro_payout_index(id)?;
                key_in(generator.paypro_payouts_of(k), id, |p| &p.id)
            },
            generated: &|generator, below, want| {
                generator.payouts_merged(below, None, want, Generator::paypro_payouts_of)
            },
        }
        .after(&self.generator, after, want)
    }

    /// The refunds of the payment with `id`, newest first, as `/payments/{id}/refunds` lists
    /// them; `None` for an unknown payment.
    pub(crate) fn paypro_refunds_of_payment(&self, id: &str) -> Option<Vec<PayProRefund>> {
        self.paypro_position(id)?;
        let mut refunds: Vec<PayProRefund> = (self.overlay.paypro_refunds.iter().rev())
            .filter(|refund| refund.payment == id)
            .cloned()
            .collect();
        if let Some(i) = self.generator.paypro_index(id) {
            refunds.extend(
                self.generator
                    .paypro_refunds_of(i)
                    .into_iter()
                    .map(|(_, refund)| refund),
            );
        }
        Some(refunds)
    }

    /// The chargebacks of the payment with `id`, newest first, as `/payments/{id}/chargebacks`
    /// lists them; `None` for an unknown payment.
    pub(crate) fn paypro_chargebacks_of_payment(&self, id: &str) -> Option<Vec<PayProChargeback>> {
        self.paypro_position(id)?;
        let mut chargebacks: Vec<PayProChargeback> = (self.overlay.paypro_chargebacks.iter())
            .rev()
            .filter(|chargeback| chargeback.payment == id)
            .cloned()
            .collect();
        if let Some(i) = self.generator.paypro_index(id) {
            chargebacks.extend(
                self.generator
                    .paypro_chargebacks_of(i)
                    .into_iter()
                    .map(|(_, chargeback)| chargeback),
            );
        }
        Some(chargebacks)
    }

    /// The payment with `id`, as served now.
    pub(crate) fn paypro_by_id(&self, id: &str) -> Option<PayProPayment> {
        self.paypro_position(id).map(|at| self.paypro_at(at))
    }

    /// Adds an event at the top of the feed, made `now`; returns its id.
    pub(crate) fn add_paypro_event(
        &mut self,
        event_type: &str,
        payload: PayProPayload,
        now: DateTime<Utc>,
    ) -> String {
        let id = format!("EVNEW{:013}", self.overlay.paypro_events.len());
        self.overlay.paypro_events.push(PayProEvent {
            id: id.clone(),
            kind: "event",
            event_type: event_type.to_owned(),
            payload,
            created_at: utc(now),
        });
        if let (Some(outbox), Some(event)) = (&self.outbox, self.overlay.paypro_events.last()) {
            outbox.send(crate::webhooks::Outgoing::PayPro(event.clone()));
        }
        id
    }

    /// Refunds `amount` minor units of a paid payment `now`: the payment's `refunded_amount`
    /// grows by it, and a completed refund and its `refund.created` event are added. `None`
    /// (and nothing changes) for an unknown or unpaid payment or an amount that is not in
    /// `1..=` what is left to refund.
    pub(crate) fn refund_paypro(
        &mut self,
        payment_id: &str,
        amount: i64,
        now: DateTime<Utc>,
    ) -> Option<String> {
        let refund = self.new_refund(payment_id, amount, now)?;
        self.overlay.paypro_refunds.push(refund.clone());
        let id = refund.id.clone();
        self.add_paypro_event("refund.created", PayProPayload::Refund(refund), now);
        Some(id)
    }

    /// Refunds `amount` minor units of a paid payment as made at `at` (which may be long
    /// past, never before the payment was paid), as [`Data::refund_paypro`] does; the refund
    /// and its `refund.created` event are placed among the items added at run time by that
    /// time (so a single late refund tops both listings), and the event is sent as a webhook.
    /// `None` (and nothing changes) as for [`Data::refund_paypro`], and for a time before the
    /// payment's `paid_at`.
    pub(crate) fn refund_paypro_at(
        &mut self,
        payment_id: &str,
        amount: i64,
        at: DateTime<Utc>,
    ) -> Option<String> {
        let paid_at = self.paypro_by_id(payment_id)?.paid_at?;
        if at < parse_utc(&paid_at) {
            return None;
        }
        let refund = self.new_refund(payment_id, amount, at)?;
        let id = refund.id.clone();
        insert_by_time(&mut self.overlay.paypro_refunds, refund.clone(), |r| {
            &r.created_at
        });
        self.insert_paypro_event("refund.created", PayProPayload::Refund(refund), at);
        Some(id)
    }

    /// A completed refund of `amount` of a paid payment made at `at`, with the payment's
    /// `refunded_amount` grown by it; `None` (and nothing changes) for an unknown or unpaid
    /// payment or an amount that is not in `1..=` what is left to refund.
    fn new_refund(
        &mut self,
        payment_id: &str,
        amount: i64,
        at: DateTime<Utc>,
    ) -> Option<PayProRefund> {
        let payment = self.paypro_by_id(payment_id)?;
        if amount <= 0
            || payment.paid_at.is_none()
            || amount > payment.amount - payment.refunded_amount
        {
            return None;
        }
        let refund = PayProRefund {
            id: format!("PRNEW{:013}", self.overlay.paypro_refunds.len()),
            kind: "refund",
            amount,
            currency: payment.currency,
            description: Some(format!("Refund of {}", payment.description)),
            payment: payment.id.clone(),
            reason: None,
            refunded_at: Some(utc(at)),
            state: "completed".to_owned(),
            created_at: utc(at),
        };
        self.overlay.paypro_state.insert(
            payment.id.clone(),
            (payment.state.clone(), payment.refunded_amount + amount),
        );
        Some(refund)
    }

    /// Adds an event made at `at` among the events added at run time by that time (at the top
    /// when it is the newest), and sends it as a webhook; returns its id.
    pub(crate) fn insert_paypro_event(
        &mut self,
        event_type: &str,
        payload: PayProPayload,
        at: DateTime<Utc>,
    ) -> String {
        let id = format!("EVNEW{:013}", self.overlay.paypro_events.len());
        let event = PayProEvent {
            id: id.clone(),
            kind: "event",
            event_type: event_type.to_owned(),
            payload,
            created_at: utc(at),
        };
        if let Some(outbox) = &self.outbox {
            outbox.send(crate::webhooks::Outgoing::PayPro(event.clone()));
        }
        insert_by_time(&mut self.overlay.paypro_events, event, |e| &e.created_at);
        id
    }

    /// Charges back `amount` minor units of a paid payment `now`: a chargeback (`completed`, or
    /// `processing` when not `completed`) and its `chargeback.created` event are added; the
    /// payment itself is served as before. `None` (and nothing changes) for an unknown or
    /// unpaid payment or an amount that is not in `1..=` the payment's amount.
    pub(crate) fn charge_back_paypro(
        &mut self,
        payment_id: &str,
        amount: i64,
        completed: bool,
        now: DateTime<Utc>,
    ) -> Option<String> {
        let payment = self.paypro_by_id(payment_id)?;
        if amount <= 0 || payment.paid_at.is_none() || amount > payment.amount {
            return None;
        }
        let chargeback = PayProChargeback {
            id: format!("PCNEW{:013}", self.overlay.paypro_chargebacks.len()),
            kind: "chargeback",
            amount,
            currency: payment.currency,
            description: Some(format!("Chargeback of {}", payment.description)),
            payment: payment.id.clone(),
            reason: Some(CHARGEBACK_REASONS[0].to_owned()),
            state: if completed { "completed" } else { "processing" }.to_owned(),
            charged_back_at: completed.then(|| utc(now)),
            created_at: utc(now),
        };
        self.overlay.paypro_chargebacks.push(chargeback.clone());
        let id = chargeback.id.clone();
        self.add_paypro_event(
            "chargeback.created",
            PayProPayload::Chargeback(chargeback),
            now,
        );
        Some(id)
    }

    /// Adds a chargeback of `amount` (in `currency`, or the payment's) on a known payment, made
    /// at `at`, and its `chargeback.created` event, each placed among the items added at run
    /// time by that time; nothing is checked against the payment. `None` for an unknown payment.
    pub(crate) fn add_paypro_chargeback(
        &mut self,
        payment_id: &str,
        amount: i64,
        currency: Option<&str>,
        completed: bool,
        at: DateTime<Utc>,
    ) -> Option<String> {
        let payment = self.paypro_by_id(payment_id)?;
        let chargeback = PayProChargeback {
            id: format!("PCNEW{:013}", self.overlay.paypro_chargebacks.len()),
            kind: "chargeback",
            amount,
            currency: currency.map_or(payment.currency, intern),
            description: Some(format!("Chargeback of {}", payment.description)),
            payment: payment.id.clone(),
            reason: Some(CHARGEBACK_REASONS[0].to_owned()),
            state: if completed { "completed" } else { "processing" }.to_owned(),
            charged_back_at: completed.then(|| utc(at)),
            created_at: utc(at),
        };
        let event = PayProEvent {
            id: format!("EVNEW{:013}", self.overlay.paypro_events.len()),
            kind: "event",
            event_type: "chargeback.created".to_owned(),
            payload: PayProPayload::Chargeback(chargeback.clone()),
            created_at: utc(at),
        };
        let id = chargeback.id.clone();
        insert_by_time(&mut self.overlay.paypro_chargebacks, chargeback, |c| {
            &c.created_at
        });
        insert_by_time(&mut self.overlay.paypro_events, event, |e| &e.created_at);
        Some(id)
    }

    /// Changes the amount (and the currency, unless `None`) of a chargeback added at run time,
    /// silently: its event keeps what it said. `false` for an unknown chargeback.
    pub(crate) fn correct_paypro_chargeback(
        &mut self,
        id: &str,
        amount: i64,
        currency: Option<&str>,
    ) -> bool {
        match self
            .overlay
            .paypro_chargebacks
            .iter_mut()
            .find(|c| c.id == id)
        {
            Some(chargeback) => {
                chargeback.amount = amount;
                if let Some(currency) = currency {
                    chargeback.currency = intern(currency);
                }
                true
            }
            None => false,
        }
    }

    /// Completes a chargeback added at run time, `now`, silently: no event says so, as PayPro
    /// documents only `chargeback.created`. `false` for an unknown or completed chargeback.
    pub(crate) fn complete_paypro_chargeback(&mut self, id: &str, now: DateTime<Utc>) -> bool {
        match self
            .overlay
            .paypro_chargebacks
            .iter_mut()
            .find(|c| c.id == id && c.state != "completed")
        {
            Some(chargeback) => {
                chargeback.state = "completed".to_owned();
                chargeback.charged_back_at = Some(utc(now));
                true
            }
            None => false,
        }
    }

    /// Pays an unpaid payment `now`: its state becomes `paid` with `paid_at` now, and a
    /// `payment.paid` event carrying it is added; returns the event's id. `None` (and nothing
    /// changes) for an unknown or already paid payment.
    pub(crate) fn pay_paypro(&mut self, payment_id: &str, now: DateTime<Utc>) -> Option<String> {
        let payment = self.paypro_by_id(payment_id)?;
        if payment.paid_at.is_some() {
            return None;
        }
        self.overlay.paypro_state.insert(
            payment.id.clone(),
            ("paid".to_owned(), payment.refunded_amount),
        );
        self.overlay
            .paypro_paid_at
            .insert(payment.id.clone(), utc(now));
        let paid = self.paypro_by_id(payment_id)?;
        Some(self.add_paypro_event("payment.paid", PayProPayload::Payment(paid), now))
    }

    /// The newest generated payment created at least `age` before the anchor that is paid
    /// (`paid` or `completed`, as served now) with nothing refunded.
    pub(crate) fn old_paid_paypro(&self, age: Duration) -> Option<PayProPayment> {
        let by = (self.generator.anchor - age).timestamp();
        let inserted = self.overlay.paypro_inserted.len();
        (self.generator.first_paypro_created_by(by)..self.generator.paypro_payments)
            .map(|i| self.paypro_at(inserted + i))
            .find(|p| matches!(p.state.as_str(), "paid" | "completed") && p.refunded_amount == 0)
    }
}

/// Inserts `item` into `list` (oldest first) after every item made at or before it, so that
/// the newest-first listing shows it below the newer ones.
fn insert_by_time<T>(list: &mut Vec<T>, item: T, created_at: fn(&T) -> &str) {
    let at = parse_utc(created_at(&item));
    let position = list
        .iter()
        .rposition(|other| parse_utc(created_at(other)) <= at)
        .map_or(0, |p| p + 1);
    list.insert(position, item);
}

/// A currency code as the `&'static str` the records hold: each code a test names is leaked
/// once, so a handful of codes cost a handful of bytes.
fn intern(code: &str) -> &'static str {
    static CODES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    if code == "EUR" {
        return "EUR";
    }
    let mut codes = CODES.lock().expect("currency codes lock");
    if let Some(known) = codes.iter().find(|known| **known == code) {
        return known;
    }
    let leaked: &'static str = Box::leak(code.to_owned().into_boxed_str());
    codes.push(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Generator, default_anchor};

    fn generator(payments: usize, spacing: i64) -> Generator {
        Generator {
            seed: 7,
            mkp_links: 0,
            paypro_payments: payments,
            anchor: default_anchor(),
            paypro_spacing: spacing,
            mkp_link_spacing: 6 * 3600,
            paypro_payout_spacing: 3 * 86_400,
            payouts: Default::default(),
        }
    }

    #[test]
    fn every_generated_item_is_made_within_the_window_of_its_payment() {
        for spacing in [1, 5, 360, 86_400] {
            let generator = generator(400, spacing);
            for i in 0..400 {
                let created = generator.paypro_created(i).timestamp();
                let events = generator.paypro_events_of(i);
                assert!(
                    events
                        .iter()
                        .any(|(_, e)| e.event_type == "payment.created")
                );
                for (key, _) in events {
                    assert!(
                        (created..created + ITEM_WINDOW).contains(&key.at),
                        "spacing {spacing}, payment {i}"
                    );
                }
                if i > 0 {
                    assert!(generator.paypro_created(i - 1) > generator.paypro_created(i));
                }
            }
        }
    }

    #[test]
    fn the_events_with_the_payouts_list_every_item_once_newest_first_from_any_point() {
        for (spacing, payout_spacing) in [(360, 3 * 3600), (3600, 86_400), (86_400, 3 * 86_400)] {
            let mut generator = generator(300, spacing);
            generator.paypro_payout_spacing = payout_spacing;
            let mut all: Vec<(Key, PayProEvent)> = (0..300)
                .flat_map(|i| generator.paypro_events_of(i))
                .chain(
                    (0..generator.payout_count())
                        .flat_map(|k| generator.paypro_payout_events_of(k)),
                )
                .collect();
            assert!(
                all.iter()
                    .filter(|(_, e)| e.event_type.starts_with("payout."))
                    .count()
                    > 10,
                "spacing {spacing}"
            );
            all.sort_by_key(|(key, _)| Reverse(*key));
            let expected: Vec<String> = all.iter().map(|(_, e)| e.id.clone()).collect();
            let listed: Vec<String> = generator
                .generated_events(None, usize::MAX)
                .into_iter()
                .map(|(_, e)| e.id)
                .collect();
            assert_eq!(listed, expected, "spacing {spacing}");
            for from in [0, 1, 17, 120, all.len() / 2, all.len() - 2] {
                let key = generator.event_key(&expected[from]).unwrap();
                assert_eq!(key, all[from].0);
                for want in [1, 7, 40] {
                    let rest: Vec<String> = generator
                        .generated_events(Some(key), want)
                        .into_iter()
                        .map(|(_, e)| e.id)
                        .collect();
                    let end = (from + 1 + want).min(all.len());
                    assert_eq!(
                        rest,
                        expected[from + 1..end],
                        "spacing {spacing}, after {from}, {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_merge_lists_every_item_once_newest_first_from_any_point() {
        for spacing in [1, 360] {
            let generator = generator(300, spacing);
            let mut all: Vec<(Key, PayProEvent)> = (0..300)
                .flat_map(|i| generator.paypro_events_of(i))
                .collect();
            all.sort_by_key(|(key, _)| Reverse(*key));
            let expected: Vec<String> = all.iter().map(|(_, e)| e.id.clone()).collect();
            let merged: Vec<String> = generator
                .payments_merged(None, None, usize::MAX, Generator::paypro_events_of)
                .into_iter()
                .map(|(_, e)| e.id)
                .collect();
            assert_eq!(merged, expected, "spacing {spacing}");
            for from in [0, 1, 17, 250, all.len() - 1] {
                let rest: Vec<String> = generator
                    .payments_merged(Some(all[from].0), None, 7, Generator::paypro_events_of)
                    .into_iter()
                    .map(|(_, e)| e.id)
                    .collect();
                let end = (from + 8).min(all.len());
                assert_eq!(
                    rest,
                    expected[from + 1..end],
                    "spacing {spacing}, after {from}"
                );
            }
        }
    }
}
