//! The change feed's policy, without I/O: what a read of the feed takes from each change, where
//! a read stops, which payments are to be read by id and when a failed read is tried again,
//! and how a stated chargeback is applied or set aside.
//!
//! The async driver (`syncer.rs`) fetches; everything it decides about the feed is decided here.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use payments_model::{Change, ChangeKind, Payment, Rejected};

use crate::store::{FeedPosition, PendingChargeback, StatedChargeback, ToRead};

/// The most pages of a change feed one run reads; a feed further behind than that is treated
/// as one that lost its oldest changes.
pub(crate) const MAX_FEED_PAGES: usize = 50;

/// How much older than the last change applied a change may be stamped and still be newer,
/// when that change's id is no longer in the feed (the provider's clocks need not agree to the
/// second).
pub(crate) const FEED_CLOCK_SKEW: chrono::Duration = chrono::Duration::hours(1);

/// How far below the last change applied a read of the feed goes on, by time: a change the
/// provider inserts late, stamped up to this long before that change, is still seen.
pub const FEED_OVERLAP: chrono::Duration = chrono::Duration::minutes(10);

/// How many pages past the one holding the last change applied a read of the feed goes on at
/// most (the overlap by pages; [`FEED_OVERLAP`] by time, whichever ends first).
pub const FEED_OVERLAP_PAGES: usize = 1;

/// Changes stamped this close below the last one applied may have been made after it was read
/// (stamps in whole seconds, the provider's clock behind this one): a page that holds one is
/// not counted as overlap.
const SAME_TIME: chrono::Duration = chrono::Duration::minutes(1);

/// The most change ids a position keeps to recognise what it already took.
const MAX_RECENT: usize = 300;

/// The most pages of a provider's chargebacks one run reads (10,000 chargebacks).
pub(crate) const MAX_CHARGEBACK_PAGES: usize = 100;

/// What a run takes from a change feed, one change at a time, newest first.
#[derive(Default)]
pub(crate) struct FeedRead {
    /// The newest change seen: the feed's new position.
    pub(crate) newest: Option<FeedPosition>,
    /// Whether the feed reached the last change applied.
    pub(crate) reached: bool,
    /// Payments to read again by id.
    pub(crate) to_read: HashSet<String>,
    /// The latest chargeback of a payment, by the payment's provider id.
    pub(crate) chargebacks: HashMap<String, StatedChargeback>,
    /// Entries that could not be read.
    pub(crate) rejected: Vec<Rejected>,
    /// Changes of other kinds.
    pub(crate) ignored: u64,
    /// The ids of the changes seen, newest first (the new position's `recent`).
    seen: Vec<String>,
    /// Pages read past the one that holds the last change applied (`None`: not there yet),
    /// not counting pages that still held changes stamped after it.
    pages_past: Option<usize>,
    /// Whether the page being read holds, past the last change applied, a change stamped at or
    /// after it: a change the provider listed below it, though newer (below one stamped in the
    /// future, say), so the read goes on.
    newer_below: bool,
}

/// Where a read of the feed is after one change.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Go on with the next change.
    Next,
    /// The read is over: nothing below this change is read.
    Stop,
}

impl FeedRead {
    /// Takes one change (newest first), read back towards `last`, the position of the last
    /// read (`None`: the first read, which only notes where the feed stands). A change among
    /// `last`'s recent ones was taken before; any other is taken, also one found below the
    /// position (inserted late). A payment a change carries is as it was then, which may be
    /// older than what the ledger holds: one the run's walk reads anyway is left to it, any
    /// other is read again by id (its current state, never a stale one).
    pub(crate) fn step(
        &mut self,
        change: Change,
        last: Option<&FeedPosition>,
        now: DateTime<FixedOffset>,
        walk_reads: impl Fn(DateTime<FixedOffset>) -> bool,
    ) -> Step {
        if self.newest.is_none() {
            // A change stamped in the future stands at now, so that it cannot hide the changes
            // after it.
            self.newest = Some(FeedPosition {
                id: change.id.clone(),
                at: change.at.min(now),
                recent: Vec::new(),
            });
        }
        let Some(last) = last else {
            // The first read: the walk reads everything; the feed starts here.
            self.reached = true;
            self.seen.push(change.id);
            return Step::Next;
        };
        if change.id == last.id {
            self.reached = true;
            self.pages_past.get_or_insert(0);
            self.seen.push(change.id);
            return Step::Next;
        }
        // Past the position, the read goes on for the overlap; before it, a position whose id
        // is gone is found by its time.
        let floor = match self.pages_past {
            Some(_) => last.at - FEED_OVERLAP,
            None => last.at - FEED_CLOCK_SKEW,
        };
        if change.at < floor {
            self.reached = true;
            return Step::Stop;
        }
        if self.pages_past.is_some() && change.at >= last.at - SAME_TIME {
            self.newer_below = true;
        }
        let taken_before = last.recent.contains(&change.id);
        self.seen.push(change.id.clone());
        if !taken_before {
            self.take(change, walk_reads);
        }
        Step::Next
    }

    /// Whether the read goes on to the next page, after one was read to its end.
    pub(crate) fn next_page(&mut self, first_read: bool) -> bool {
        if first_read {
            // One page, with something on it (a page over the body cap comes back empty, with
            // a next link to the same page asked for smaller).
            return self.newest.is_none();
        }
        let newer_below = std::mem::take(&mut self.newer_below);
        match &mut self.pages_past {
            None => true,
            // Changes stamped after the last one applied are still being listed: read on.
            Some(_) if newer_below => true,
            Some(pages) if *pages >= FEED_OVERLAP_PAGES => false,
            Some(pages) => {
                *pages += 1;
                true
            }
        }
    }

    /// The feed's new position, with the changes seen near it; `None` when the feed showed
    /// nothing.
    pub(crate) fn position(&mut self) -> Option<FeedPosition> {
        let mut position = self.newest.clone()?;
        self.seen.truncate(MAX_RECENT);
        position.recent = std::mem::take(&mut self.seen);
        Some(position)
    }

    /// Takes one change without reading it back to a position (the chargebacks of a gap).
    pub(crate) fn take(
        &mut self,
        change: Change,
        walk_reads: impl Fn(DateTime<FixedOffset>) -> bool,
    ) {
        match change.kind {
            ChangeKind::Payment(payment) => {
                if !walk_reads(payment.created_at) {
                    self.to_read.insert(payment.source_id);
                }
            }
            ChangeKind::Touched { source_id } => {
                self.to_read.insert(source_id);
            }
            ChangeKind::ChargedBack {
                source_id,
                amount,
                completed,
                chargeback_id,
                record,
                ..
            } => {
                // Newest first: the first chargeback seen of a payment is its latest.
                self.chargebacks
                    .entry(source_id.clone())
                    .or_insert(StatedChargeback {
                        id: chargeback_id,
                        completed_amount: completed.then_some(amount),
                        record,
                    });
                self.to_read.insert(source_id);
            }
            ChangeKind::Other { .. } => self.ignored += 1,
        }
    }
}

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

/// Adds payments to read by id to `queue`, or updates them: a newer statement of a payment's
/// chargeback replaces the older one; its attempts and backoff stay.
pub(crate) fn enqueue(
    queue: &mut Vec<ToRead>,
    payments: impl IntoIterator<Item = (String, Option<StatedChargeback>)>,
    now: DateTime<Utc>,
) {
    let mut at: HashMap<String, usize> = queue
        .iter()
        .enumerate()
        .map(|(i, entry)| (entry.source_id.clone(), i))
        .collect();
    for (source_id, chargeback) in payments {
        match at.get(&source_id) {
            Some(&i) => {
                if chargeback.is_some() {
                    queue[i].chargeback = chargeback;
                }
            }
            None => {
                at.insert(source_id.clone(), queue.len());
                queue.push(queued(source_id, chargeback, now));
            }
        }
    }
}

fn queued(source_id: String, chargeback: Option<StatedChargeback>, now: DateTime<Utc>) -> ToRead {
    ToRead {
        source_id,
        chargeback,
        queued_at: now,
        attempts: 0,
        failing_since: None,
        last_error: None,
        not_before: None,
    }
}

/// The provider ids in `queue` due for a read at `now`, in the order to read them: never tried
/// first (oldest first), then failed ones by when they became due, so that one payment that
/// keeps failing cannot hold the others back.
pub(crate) fn due(queue: &[ToRead], now: DateTime<Utc>) -> Vec<String> {
    // A backoff is never longer than an hour: one set further ahead (a clock that was ahead,
    // a checkpoint edited by hand) is over an hour from now.
    let longest = chrono::Duration::hours(1);
    let mut due: Vec<&ToRead> = queue
        .iter()
        .filter(|entry| {
            entry
                .not_before
                .is_none_or(|at| at <= now || at - now > longest)
        })
        .collect();
    due.sort_by_key(|entry| (entry.attempts > 0, entry.not_before, entry.queued_at));
    due.into_iter()
        .map(|entry| entry.source_id.clone())
        .collect()
}

/// How many failed reads of a payment the feed named make it give up on reading it by id: with
/// [`backoff`], about four hours of runs. It is then quarantined ([`give_up`]).
pub(crate) const MAX_ATTEMPTS: u32 = 10;

/// What is kept of a queued payment that is no longer read by id, with `reason`: the chargeback
/// the feed stated, under the chargeback's own id (so that no read of the payment resolves it;
/// a later read of that chargeback that applies does), or else the entry under the payment's id
/// (which a later read of the payment resolves).
pub(crate) fn give_up(entry: ToRead, reason: &str) -> Vec<Rejected> {
    let reason = format!(
        "the change feed names payment {}, but it could not be read by id: {reason}",
        entry.source_id
    );
    match entry.chargeback {
        Some(stated) => vec![Rejected {
            source_id: Some(stated.id),
            reason,
            raw: stated.record,
        }],
        None => vec![Rejected {
            source_id: Some(entry.source_id.clone()),
            reason,
            raw: serde_json::to_string(&entry).unwrap_or_default(),
        }],
    }
}

/// Records a failed read of a queued payment: it is tried again after [`backoff`].
pub(crate) fn failed(entry: &mut ToRead, error: String, now: DateTime<Utc>) {
    entry.attempts = entry.attempts.saturating_add(1);
    entry.failing_since.get_or_insert(now);
    entry.last_error = Some(error);
    entry.not_before = chrono::Duration::from_std(backoff(entry.attempts))
        .ok()
        .and_then(|wait| now.checked_add_signed(wait));
}

/// How long after its `attempts`th failed read a payment is read again: at the next run after
/// the first failure, then after 1, 2, 4 … minutes, at most an hour.
pub(crate) fn backoff(attempts: u32) -> Duration {
    match attempts {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs(60 << (n - 2).min(6)).min(Duration::from_secs(3600)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use payments_model::{Currency, Money, PaymentStatus, Source};

    fn at(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).unwrap()
    }

    fn touched(id: &str, when: &str, payment: &str) -> Change {
        Change {
            id: id.to_owned(),
            at: at(when),
            kind: ChangeKind::Touched {
                source_id: payment.to_owned(),
            },
        }
    }

    fn position(id: &str, when: &str, recent: &[&str]) -> FeedPosition {
        FeedPosition {
            id: id.to_owned(),
            at: at(when),
            recent: recent.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Reads `pages` as the driver does; the payments to read and the new position.
    fn read(
        pages: Vec<Vec<Change>>,
        last: Option<&FeedPosition>,
    ) -> (Vec<String>, FeedRead, usize) {
        let now = at("2026-12-02T12:00:00Z");
        let mut read = FeedRead::default();
        let mut pages_read = 0;
        'pages: for page in pages {
            pages_read += 1;
            for change in page {
                if read.step(change, last, now, |_| false) == Step::Stop {
                    break 'pages;
                }
            }
            if !read.next_page(last.is_none()) {
                break;
            }
        }
        let mut ids: Vec<String> = read.to_read.iter().cloned().collect();
        ids.sort();
        (ids, read, pages_read)
    }

    #[test]
    fn a_read_takes_what_is_new_and_what_was_inserted_late_below_the_position() {
        let last = position("E3", "2026-12-02T11:00:00Z", &["E3", "E2"]);
        let pages = vec![
            vec![
                touched("E5", "2026-12-02T11:30:00Z", "PPnew"),
                touched("E3", "2026-12-02T11:00:00Z", "PPold3"),
                touched("L1", "2026-12-02T10:58:00Z", "PPlate"),
            ],
            vec![
                touched("E2", "2026-12-02T10:55:00Z", "PPold2"),
                touched("E1", "2026-12-02T10:40:00Z", "PPold1"),
            ],
            vec![touched("E0", "2026-12-02T10:30:00Z", "PPold0")],
        ];
        let (ids, mut read, pages_read) = read(pages, Some(&last));
        assert_eq!(
            ids,
            ["PPlate", "PPnew"],
            "E2 was taken before; E1 is past the overlap"
        );
        assert!(read.reached);
        assert_eq!(pages_read, 2, "one page past the position's, at most");
        let next = read.position().unwrap();
        assert_eq!(next.id, "E5");
        assert_eq!(next.recent, ["E5", "E3", "L1", "E2"]);
    }

    #[test]
    fn a_read_goes_at_most_one_page_past_the_position() {
        let last = position("E9", "2026-12-02T11:00:00Z", &[]);
        let page = |from: u32| {
            (from..from + 3)
                .map(|n| touched(&format!("E{n}"), "2026-12-02T10:55:00Z", &format!("PP{n}")))
                .collect::<Vec<_>>()
        };
        let mut first = vec![touched("E9", "2026-12-02T11:00:00Z", "PP9")];
        first.extend(page(10));
        let (ids, _, pages_read) = read(vec![first, page(20), page(30)], Some(&last));
        assert_eq!(pages_read, 2);
        assert_eq!(ids.len(), 6, "{ids:?}");
    }

    #[test]
    fn changes_listed_below_a_position_stamped_ahead_are_read_however_many_pages_they_fill() {
        // The position's change was stamped a day ahead: it stays at the top, and what is
        // new lists below it (its position was noted at the time of that read, not a day ahead).
        let last = position("AHEAD", "2026-12-02T11:00:00Z", &["AHEAD"]);
        let page = |from: u32| {
            (from..from + 3)
                .map(|n| touched(&format!("E{n}"), "2026-12-02T11:30:00Z", &format!("PP{n}")))
                .collect::<Vec<_>>()
        };
        let mut first = vec![touched("AHEAD", "2026-12-03T11:00:00Z", "PPa")];
        first.extend(page(10));
        let mut last_page = page(30);
        last_page.push(touched("OLD", "2026-12-02T09:00:00Z", "PPold"));
        let (ids, _, pages_read) = read(vec![first, page(20), last_page], Some(&last));
        assert_eq!(pages_read, 3);
        assert_eq!(ids.len(), 9, "{ids:?}");
    }

    #[test]
    fn a_position_whose_id_is_gone_is_found_by_its_time() {
        let last = position("gone", "2026-12-02T11:00:00Z", &[]);
        let pages = vec![vec![
            touched("E5", "2026-12-02T11:30:00Z", "PPa"),
            touched("E4", "2026-12-02T10:30:00Z", "PPb"),
            touched("E3", "2026-12-02T09:59:00Z", "PPc"),
        ]];
        let (ids, read, _) = read(pages, Some(&last));
        assert!(read.reached);
        assert_eq!(ids, ["PPa", "PPb"], "within the clock skew, taken again");
    }

    #[test]
    fn the_first_read_notes_where_the_feed_stands_and_remembers_its_first_page() {
        let pages = vec![
            vec![
                touched("E2", "2026-12-02T11:30:00Z", "PPa"),
                touched("E1", "2026-12-02T11:00:00Z", "PPb"),
            ],
            vec![touched("E0", "2026-12-02T10:30:00Z", "PPc")],
        ];
        let (ids, mut read, pages_read) = read(pages, None);
        assert!(ids.is_empty());
        assert_eq!(pages_read, 1);
        assert_eq!(read.position().unwrap().recent, ["E2", "E1"]);
    }

    #[test]
    fn failed_reads_back_off_up_to_an_hour_and_never_hold_the_others_back() {
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(4), Duration::from_secs(240));
        assert_eq!(backoff(30), Duration::from_secs(3600));
        let now = Utc::now();
        let mut queue = Vec::new();
        enqueue(
            &mut queue,
            [("PPstuck".into(), None), ("PPnext".into(), None)],
            now,
        );
        failed(&mut queue[0], "503".into(), now);
        assert_eq!(due(&queue, now), ["PPnext", "PPstuck"]);
        failed(&mut queue[0], "503".into(), now);
        assert_eq!(queue[0].attempts, 2);
        assert_eq!(due(&queue, now), ["PPnext"], "backing off");
        let later = now + chrono::Duration::minutes(2);
        assert_eq!(due(&queue, later), ["PPnext", "PPstuck"]);
        let stated = StatedChargeback {
            id: "PC1".into(),
            completed_amount: None,
            record: "{}".into(),
        };
        enqueue(
            &mut queue,
            [("PPstuck".into(), Some(stated.clone()))],
            later,
        );
        assert_eq!(queue.len(), 2);
        assert_eq!(queue[0].chargeback, Some(stated));
        assert_eq!(queue[0].attempts, 2, "a new statement keeps the backoff");
    }

    #[test]
    fn a_chargeback_is_pending_until_seen_completed_or_half_a_year_old() {
        let chargeback = |id: &str, when: &str, completed| Change {
            id: format!("event of {id}"),
            at: at(when),
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
        let eur = |minor| Money::from_minor(minor, Currency::EUR);
        // Any source: the rule is the model's, whoever the provider.
        let source = Source::ALL[0];
        let payment = Payment {
            id: source.payment_id("P1"),
            source,
            source_id: "P1".into(),
            status: PaymentStatus::Paid,
            provider_status: "completed".into(),
            amount: eur(1295),
            refunded_amount: None,
            created_at: at("2026-01-01T10:00:00+01:00"),
            paid_at: None,
            payer_name: None,
            description: None,
            method: None,
            processor: "a processor".into(),
            processor_reference: None,
            payment_link_id: None,
            customer_id: None,
            fail_reason: None,
            charged_back_amount: None,
        };
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
}
