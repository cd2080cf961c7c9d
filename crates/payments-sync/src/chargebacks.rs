//! The policy of chargebacks, without I/O: which word on a payment's chargeback wins (the
//! provider's list of chargebacks, read each run, over the change feed's events; the newest of
//! either over older ones), how far the list is read back, which chargebacks are still
//! pending, and how a stated chargeback is applied to a payment or set aside.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, FixedOffset};
use payments_model::{Change, ChangeKind, ChangePage, Cursor, Payment, Rejected};

use crate::feed::FeedFacts;
use crate::store::{PendingChargeback, StatedChargeback};

/// The most pages of a provider's chargebacks one run reads (10,000 chargebacks) when it reads
/// them all, or back to a time ([`ChargebackList::since`]).
pub(crate) const MAX_CHARGEBACK_PAGES: usize = 100;

/// How many times the first page of the newest chargebacks is asked for again smaller (over
/// the body cap) before it counts as empty.
const MAX_SMALLER_PAGES: usize = 8;

/// The most pages of the provider's chargebacks a run reads, past the first, to reach back to
/// the oldest chargeback not completed when last seen.
const MAX_PENDING_PAGES: usize = 10;

/// The latest chargeback of each payment in `chargebacks` (newest first), with the payment's
/// provider and unified ids.
pub(crate) fn latest_chargebacks(
    chargebacks: Vec<Change>,
) -> HashMap<String, (String, StatedChargeback)> {
    let mut latest = HashMap::new();
    for change in chargebacks {
        if let ChangeKind::ChargedBack {
            source_id,
            payment_id,
            amount,
            completed,
            chargeback_id,
            record,
        } = change.kind
        {
            latest.entry(payment_id).or_insert((
                source_id,
                StatedChargeback {
                    id: chargeback_id,
                    completed_amount: completed.then_some(amount),
                    record,
                },
            ));
        }
    }
    latest
}

/// How long a chargeback may stay not completed before it is no longer looked for (the list is
/// then read back no further than this).
pub(crate) const PENDING_FOR: chrono::Duration = chrono::Duration::days(180);

/// The most chargebacks not completed that a checkpoint keeps (the oldest go first).
const MAX_PENDING: usize = 1000;

/// Notes what `changes` (chargebacks, newest first, as read now) say of chargebacks not completed
/// yet: one seen completed is no longer pending, one seen not completed is; one older than
/// [`PENDING_FOR`] is no longer looked for.
pub(crate) fn note_pending(
    pending: &mut Vec<PendingChargeback>,
    changes: &[Change],
    now: DateTime<FixedOffset>,
) {
    for change in changes {
        let ChangeKind::ChargedBack {
            source_id,
            completed,
            chargeback_id,
            ..
        } = &change.kind
        else {
            continue;
        };
        pending.retain(|p| p.id != *chargeback_id);
        if !completed {
            pending.push(PendingChargeback {
                id: chargeback_id.clone(),
                payment: source_id.clone(),
                at: change.at,
            });
        }
    }
    pending.retain(|p| p.at >= now - PENDING_FOR);
    pending.sort_by_key(|p| std::cmp::Reverse(p.at));
    pending.truncate(MAX_PENDING);
}

/// Applies a stated chargeback to a payment read afresh: a completed one is recorded if it fits
/// the payment (else it is set aside, whole, with the reason, and the payment is unchanged); one
/// that is not completed leaves the payment as its provider shows it.
pub(crate) fn apply(payment: &mut Payment, stated: &StatedChargeback) -> Result<(), Rejected> {
    let Some(amount) = stated.completed_amount else {
        payment.charged_back_amount = None;
        return Ok(());
    };
    if payment.charged_back_amount == Some(amount) {
        return Ok(());
    }
    payment.charge_back(amount).map_err(|reason| Rejected {
        source_id: Some(stated.id.clone()),
        reason,
        raw: stated.record.clone(),
    })
}

/// How far back the newest chargebacks are read each run: to the oldest chargeback not
/// completed when last seen (`None`: the first page with something on it is enough).
pub(crate) fn back_to(pending: &[PendingChargeback]) -> Option<DateTime<FixedOffset>> {
    pending.iter().map(|p| p.at).min()
}

/// A read of the provider's list of chargebacks (newest first), page by page: what it keeps
/// of each page and where it goes on.
#[derive(Debug)]
pub(crate) struct ChargebackList {
    reach: Reach,
    /// Pages taken so far.
    pages: usize,
    /// The chargebacks read, newest first.
    changes: Vec<Change>,
    /// The entries that could not be read (to quarantine).
    rejected: Vec<Rejected>,
}

/// How far a [`ChargebackList`] reads.
#[derive(Clone, Copy, Debug)]
enum Reach {
    /// Every chargeback made at or after the time (all of them for `None`), at most
    /// [`MAX_CHARGEBACK_PAGES`] pages.
    Since(Option<DateTime<FixedOffset>>),
    /// The first page with something on it, and on back to the time (the oldest pending
    /// chargeback), at most [`MAX_PENDING_PAGES`] pages more.
    Newest(Option<DateTime<FixedOffset>>),
}

impl ChargebackList {
    /// A read of every chargeback made at or after `since` (all of them for `None`): a first
    /// read of the feed, or the chargebacks of a gap in it.
    pub(crate) fn since(since: Option<DateTime<FixedOffset>>) -> ChargebackList {
        ChargebackList::new(Reach::Since(since))
    }

    /// A read of the newest chargebacks as they stand now, made each run (one that completed,
    /// or was undone, since its event said otherwise changes no event), back to `back_to`.
    pub(crate) fn newest(back_to: Option<DateTime<FixedOffset>>) -> ChargebackList {
        ChargebackList::new(Reach::Newest(back_to))
    }

    fn new(reach: Reach) -> ChargebackList {
        ChargebackList {
            reach,
            pages: 0,
            changes: Vec::new(),
            rejected: Vec::new(),
        }
    }

    /// Whether each page is read bounded like a read by id (the newest chargebacks, read each
    /// run: a list that fails costs little), rather than with the run's retries.
    pub(crate) fn bounded(&self) -> bool {
        matches!(self.reach, Reach::Newest(_))
    }

    /// Takes one page of the list, and returns where the next page to read is: `None` once
    /// the read is over.
    pub(crate) fn take_page(&mut self, page: ChangePage) -> Option<Cursor> {
        self.pages += 1;
        self.rejected.extend(page.rejected);
        match self.reach {
            Reach::Since(since) => {
                for change in page.changes {
                    if since.is_some_and(|since| change.at < since) {
                        return None;
                    }
                    self.changes.push(change);
                }
                page.next.filter(|_| self.pages < MAX_CHARGEBACK_PAGES)
            }
            Reach::Newest(back_to) => {
                let oldest = page.changes.last().map(|change| change.at);
                let empty = page.changes.is_empty();
                self.changes.extend(page.changes);
                if self.pages >= MAX_SMALLER_PAGES + MAX_PENDING_PAGES {
                    return None;
                }
                match page.next {
                    // A page with nothing on it and a next link: the same page asked for
                    // smaller.
                    Some(next) if empty && self.changes.is_empty() => Some(next),
                    // On, back to the oldest chargeback not completed when last seen.
                    Some(next) if back_to.is_some_and(|to| oldest.is_some_and(|o| o >= to)) => {
                        Some(next)
                    }
                    _ => None,
                }
            }
        }
    }

    /// The chargebacks read (newest first), and the entries that could not be read.
    pub(crate) fn finish(self) -> (Vec<Change>, Vec<Rejected>) {
        (self.changes, self.rejected)
    }
}

/// What checking stored payments against the provider's chargebacks gives.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    /// The payments with a chargeback applied, chargebacks set aside, and those that read.
    pub(crate) facts: FeedFacts,
    /// Payments whose chargeback is to be applied with a read by id (they are queued, or their
    /// chargeback is no longer completed), with the list's word on it.
    pub(crate) to_read: Vec<(String, StatedChargeback)>,
}

/// Checks the `stored` payments (by unified id) against `latest`, the latest chargeback of each
/// ([`latest_chargebacks`]): one that completed with an amount the ledger does not have is
/// applied (or, when it does not fit the payment, set aside with its reason); a payment whose
/// known chargeback is no longer completed is to be read again to learn its status. A payment in
/// `queued` (provider ids of those read by id anyway) only gets the list's word, to apply with
/// its read.
pub(crate) fn check_stored(
    mut latest: HashMap<String, (String, StatedChargeback)>,
    stored: HashMap<String, Payment>,
    queued: &HashSet<String>,
) -> Checked {
    let mut checked = Checked::default();
    let mut stored: Vec<Payment> = stored.into_values().collect();
    stored.sort_by(|a, b| a.id.cmp(&b.id));
    for mut payment in stored {
        let Some((source_id, stated)) = latest.remove(&payment.id) else {
            continue;
        };
        if queued.contains(&source_id) {
            checked.to_read.push((source_id, stated));
            continue;
        }
        match stated.completed_amount {
            Some(amount) if payment.charged_back_amount != Some(amount) => {
                match apply(&mut payment, &stated) {
                    Ok(()) => {
                        checked.facts.readable.push(stated.id.clone());
                        checked.facts.stated.insert(payment.id.clone());
                        checked.facts.payments.push(payment);
                    }
                    Err(rejected) => {
                        tracing::warn!(chargeback = %stated.id, reason = %rejected.reason, "a chargeback that does not fit its payment is quarantined; the payment keeps its last good state");
                        checked.facts.rejected.push(rejected);
                    }
                }
            }
            Some(_) => checked.facts.readable.push(stated.id.clone()),
            None if payment.charged_back_amount.is_some() => {
                checked.to_read.push((source_id, stated));
            }
            None => {}
        }
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;
    use payments_model::{Currency, Money, PaymentStatus};

    fn at(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).unwrap()
    }

    #[test]
    fn a_chargeback_is_pending_until_seen_completed_or_half_a_year_old() {
        let chargeback = |id: &str, when: &str, completed| Change {
            id: format!("event of {id}"),
            at: at(when),
            record: None,
            kind: ChangeKind::ChargedBack {
                source_id: format!("payment of {id}"),
                payment_id: format!("unified payment of {id}"),
                amount: Money::from_minor(100, Currency::EUR),
                completed,
                chargeback_id: id.to_owned(),
                record: "{}".to_owned(),
            },
        };
        let now = at("2026-12-02T12:00:00Z");
        let mut pending = Vec::new();
        note_pending(
            &mut pending,
            &[
                chargeback("C3", "2026-12-01T10:00:00Z", false),
                chargeback("C2", "2026-11-01T10:00:00Z", false),
                chargeback("C1", "2026-01-01T10:00:00Z", false),
            ],
            now,
        );
        let ids: Vec<&str> = pending.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["C3", "C2"], "C1 is older than half a year");
        assert_eq!(pending[1].payment, "payment of C2");
        note_pending(
            &mut pending,
            &[chargeback("C2", "2026-11-01T10:00:00Z", true)],
            now,
        );
        let ids: Vec<&str> = pending.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["C3"], "C2 completed");
    }

    #[test]
    fn a_chargeback_that_does_not_fit_is_set_aside_whole_and_the_payment_is_unchanged() {
        let payment = crate::test_data::payment("P1", "2026-01-01T10:00:00+01:00");
        let stated = |minor, currency| StatedChargeback {
            id: "PC1".into(),
            completed_amount: Some(Money::from_minor(minor, currency)),
            record: r#"{"id":"PC1"}"#.into(),
        };
        let usd = Currency::from_code("USD").unwrap();
        for bad in [stated(100_000_000, Currency::EUR), stated(500, usd)] {
            let mut read = payment.clone();
            let rejected = apply(&mut read, &bad).unwrap_err();
            assert_eq!(read, payment);
            assert_eq!(rejected.source_id.as_deref(), Some("PC1"));
            assert_eq!(rejected.raw, r#"{"id":"PC1"}"#);
        }
        let mut read = payment.clone();
        apply(&mut read, &stated(1295, Currency::EUR)).unwrap();
        assert_eq!(read.status, PaymentStatus::ChargedBack);
    }

    mod precedence {
        use super::super::*;
        use crate::test_data::{at, change_page, charged_back, eur, payment, source};

        #[test]
        fn the_newest_chargeback_of_a_payment_in_the_list_is_its_latest() {
            let latest = latest_chargebacks(vec![
                charged_back("PC3", "2026-12-02T11:00:00Z", "P1", 300, false),
                charged_back("PC2", "2026-12-01T11:00:00Z", "P2", 200, true),
                charged_back("PC1", "2026-11-01T11:00:00Z", "P1", 100, true),
            ]);
            let (source_id, stated) = &latest[&source().payment_id("P1")];
            assert_eq!((source_id.as_str(), stated.id.as_str()), ("P1", "PC3"));
            assert_eq!(stated.completed_amount, None);
            assert_eq!(
                latest[&source().payment_id("P2")].1.completed_amount,
                Some(eur(200))
            );
        }

        #[test]
        fn the_lists_word_applies_to_stored_payments_or_waits_for_their_read() {
            let charged = |cents| {
                let mut stored = payment("P1", "2025-01-01T10:00:00Z");
                stored.charge_back(eur(cents)).unwrap();
                stored
            };
            let plain = || payment("P1", "2025-01-01T10:00:00Z");
            // (what, stored, the list's word (cents when completed), queued, applied, readable,
            // to read, set aside)
            let cases = [
                (
                    "completed, new to the ledger",
                    plain(),
                    Some(500),
                    false,
                    true,
                    true,
                    false,
                    false,
                ),
                (
                    "completed, known",
                    charged(500),
                    Some(500),
                    false,
                    false,
                    true,
                    false,
                    false,
                ),
                (
                    "completed, another amount",
                    charged(300),
                    Some(500),
                    false,
                    true,
                    true,
                    false,
                    false,
                ),
                (
                    "completed, does not fit",
                    plain(),
                    Some(100_000),
                    false,
                    false,
                    false,
                    false,
                    true,
                ),
                (
                    "no longer completed",
                    charged(500),
                    None,
                    false,
                    false,
                    false,
                    true,
                    false,
                ),
                (
                    "never completed",
                    plain(),
                    None,
                    false,
                    false,
                    false,
                    false,
                    false,
                ),
                (
                    "completed, but queued",
                    plain(),
                    Some(500),
                    true,
                    false,
                    false,
                    true,
                    false,
                ),
            ];
            for (what, stored, cents, queued, applied, readable, to_read, set_aside) in cases {
                let change = charged_back(
                    "PC1",
                    "2026-12-01T10:00:00Z",
                    "P1",
                    cents.unwrap_or(500),
                    cents.is_some(),
                );
                let latest = latest_chargebacks(vec![change]);
                let stored = HashMap::from([(stored.id.clone(), stored)]);
                let queued = match queued {
                    true => HashSet::from(["P1".to_owned()]),
                    false => HashSet::new(),
                };
                let checked = check_stored(latest, stored, &queued);
                assert_eq!(!checked.facts.payments.is_empty(), applied, "{what}");
                if applied {
                    assert_eq!(
                        checked.facts.payments[0].charged_back_amount,
                        cents.map(eur),
                        "{what}"
                    );
                    assert!(
                        checked.facts.stated.contains(&source().payment_id("P1")),
                        "{what}"
                    );
                }
                assert_eq!(checked.facts.readable == ["PC1"], readable, "{what}");
                assert_eq!(!checked.to_read.is_empty(), to_read, "{what}");
                if to_read {
                    assert_eq!(checked.to_read[0].0, "P1", "{what}");
                    assert_eq!(checked.to_read[0].1.id, "PC1", "{what}");
                }
                assert_eq!(!checked.facts.rejected.is_empty(), set_aside, "{what}");
            }
            let nothing_stored = check_stored(
                latest_chargebacks(vec![charged_back(
                    "PC1",
                    "2026-12-01T10:00:00Z",
                    "P1",
                    500,
                    true,
                )]),
                HashMap::new(),
                &HashSet::new(),
            );
            assert!(nothing_stored.facts.payments.is_empty() && nothing_stored.to_read.is_empty());
        }

        #[test]
        fn the_newest_chargebacks_are_read_back_to_the_oldest_pending_one() {
            let page_at = |n: usize, when: &str, next: bool| {
                let next = next.then(|| format!("page {}", n + 1));
                change_page(
                    vec![charged_back(&format!("PC{n}"), when, "P1", 100, true)],
                    next.as_deref(),
                )
            };
            // No pending chargeback: the first page is enough.
            let mut list = ChargebackList::newest(None);
            assert!(list.bounded());
            assert_eq!(
                list.take_page(page_at(1, "2026-12-02T10:00:00Z", true)),
                None
            );
            // Back to the oldest pending one: on while a page's oldest is not older.
            let pending = [
                PendingChargeback {
                    id: "PCp".into(),
                    payment: "P9".into(),
                    at: at("2026-11-01T00:00:00Z"),
                },
                PendingChargeback {
                    id: "PCq".into(),
                    payment: "P8".into(),
                    at: at("2026-11-20T00:00:00Z"),
                },
            ];
            let mut list = ChargebackList::newest(back_to(&pending));
            assert!(
                list.take_page(page_at(1, "2026-12-02T10:00:00Z", true))
                    .is_some()
            );
            assert!(
                list.take_page(page_at(2, "2026-11-01T00:00:00Z", true))
                    .is_some(),
                "not older yet"
            );
            assert_eq!(
                list.take_page(page_at(3, "2026-10-31T00:00:00Z", true)),
                None,
                "past it"
            );
            assert_eq!(list.finish().0.len(), 3);
            // A first page that comes back empty (over the body cap) is asked for smaller.
            let mut list = ChargebackList::newest(None);
            assert!(
                list.take_page(change_page(Vec::new(), Some("smaller")))
                    .is_some()
            );
            assert_eq!(
                list.take_page(page_at(1, "2026-12-02T10:00:00Z", true)),
                None
            );
            // However far back the pending one is, a run reads a bounded number of pages.
            let mut list = ChargebackList::newest(Some(at("2000-01-01T00:00:00Z")));
            let mut pages = 1;
            // (A list that never ends is bounded here too, so that a broken cap fails.)
            while pages <= 1000
                && list
                    .take_page(page_at(pages, "2026-12-02T10:00:00Z", true))
                    .is_some()
            {
                pages += 1;
            }
            assert_eq!(pages, MAX_SMALLER_PAGES + MAX_PENDING_PAGES);
        }

        #[test]
        fn the_chargebacks_since_a_time_stop_at_the_first_older_one() {
            let mut list = ChargebackList::since(Some(at("2026-12-01T00:00:00Z")));
            assert!(!list.bounded());
            let first = change_page(
                vec![
                    charged_back("PC3", "2026-12-02T10:00:00Z", "P3", 100, true),
                    charged_back("PC2", "2026-12-01T10:00:00Z", "P2", 100, true),
                ],
                Some("page 2"),
            );
            assert!(list.take_page(first).is_some());
            let second = change_page(
                vec![
                    charged_back("PC1", "2026-12-01T00:00:00Z", "P1", 100, true),
                    charged_back("PC0", "2026-11-30T23:59:59Z", "P0", 100, true),
                ],
                Some("page 3"),
            );
            assert_eq!(list.take_page(second), None);
            let ids: Vec<String> = list.finish().0.into_iter().map(|c| c.id).collect();
            assert_eq!(ids.len(), 3, "{ids:?}");
            // All of them, at most so many pages.
            let mut list = ChargebackList::since(None);
            let mut pages = 1;
            while pages <= 1000
                && list
                    .take_page(change_page(
                        vec![charged_back("PC", "2020-01-01T00:00:00Z", "P", 1, true)],
                        Some("next"),
                    ))
                    .is_some()
            {
                pages += 1;
            }
            assert_eq!(pages, MAX_CHARGEBACK_PAGES);
        }
    }
}
