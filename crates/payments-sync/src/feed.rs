//! The change feed's policy, without I/O: what a read of the feed takes from each change, where
//! a read stops and which page it reads next, whether it found a gap, and what a read gives to
//! commit ([`FeedFacts`]).
//!
//! The rest of the feed's policy is in `chargebacks.rs` (which word on a chargeback wins, how
//! far the provider's list of them is read) and `to_read.rs` (the payments the feed names,
//! queued to be read by id). The async driver (`syncer.rs`) fetches; everything it decides
//! about the feed is decided in these modules, from plain data and the time it passes in.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, FixedOffset};
use payments_model::{BookRecord, Change, ChangeKind, ChangePage, Cursor, Payment, Rejected};

use crate::store::{FeedPosition, StatedChargeback};

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
    /// The book records the changes carried (refunds, chargebacks, payouts), the latest of
    /// each by id, with the time of its change.
    pub(crate) records: HashMap<String, (BookRecord, DateTime<FixedOffset>)>,
    /// The ids of the changes seen, newest first (the new position's `recent`).
    seen: Vec<String>,
    /// Pages read past the one that holds the last change applied (`None`: not there yet),
    /// not counting pages that still held changes stamped after it.
    pages_past: Option<usize>,
    /// Whether the page being read holds, past the last change applied, a change stamped at or
    /// after it: a change the provider listed below it, though newer (below one stamped in the
    /// future, say), so the read goes on.
    newer_below: bool,
    /// Pages taken so far ([`FeedRead::take_page`]).
    pages_read: usize,
}

/// What a read of the change feed, or of the payments it named, gives to commit.
#[derive(Debug, Default)]
pub(crate) struct FeedFacts {
    /// Payments read afresh (by id, or stored ones with a chargeback applied).
    pub(crate) payments: Vec<Payment>,
    /// Unified ids of those whose chargeback the provider stated (none, or its amount): a
    /// stored chargeback is not carried forward onto them.
    pub(crate) stated: HashSet<String>,
    /// Records and chargebacks set aside, with their reasons.
    pub(crate) rejected: Vec<Rejected>,
    /// Provider ids (of payments, of chargebacks) that read correctly: their quarantine, if
    /// any, is resolved.
    pub(crate) readable: Vec<String>,
    /// The feed's new position.
    pub(crate) position: Option<FeedPosition>,
}

/// Whether a read of the feed (`None`: it failed) shows a gap: it read, but did not reach back
/// to the last change applied (the provider lost its oldest changes, or the ledger is more
/// than [`MAX_FEED_PAGES`] pages behind). The run then re-verifies the whole listing and reads
/// the gap's chargebacks from their own list. A feed that failed shows none: it is read again.
pub(crate) fn shows_gap(read: Option<&FeedRead>) -> bool {
    read.is_some_and(|read| !read.reached)
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
    /// Takes one page of the feed (newest first), read back towards `last` as
    /// [`FeedRead::step`] says, and returns where the next page to read is: `None` once the read
    /// is over (it reached far enough, the feed ends, or [`MAX_FEED_PAGES`] pages were read).
    pub(crate) fn take_page(
        &mut self,
        page: ChangePage,
        last: Option<&FeedPosition>,
        now: DateTime<FixedOffset>,
        walk_reads: impl Fn(DateTime<FixedOffset>) -> bool,
    ) -> Option<Cursor> {
        // The first read reaches wherever the feed stands; a later one must find the last
        // change applied (or pass its time).
        self.reached |= last.is_none();
        self.pages_read += 1;
        self.rejected.extend(page.rejected);
        for change in page.changes {
            if self.step(change, last, now, &walk_reads) == Step::Stop {
                return None;
            }
        }
        match page.next {
            Some(next) if self.next_page(last.is_none()) && self.pages_read < MAX_FEED_PAGES => {
                Some(next)
            }
            _ => None,
        }
    }

    /// Takes the chargebacks of a gap in the feed (read from the provider's list of them, newest
    /// first): each of their payments is read by id, and the feed's word on a chargeback, when it
    /// said one, stays the latest.
    pub(crate) fn take_gap(&mut self, chargebacks: Vec<Change>) {
        for change in chargebacks {
            self.take(change, |_| false);
        }
    }

    /// Takes one change (newest first), read back towards `last`, the position of the last
    /// read (`None`: the first read, which only notes where the feed stands). A change among
    /// `last`'s recent ones was taken before; any other is taken, also one found below the
    /// position (inserted late). A payment a change carries is as it was then, which may be
    /// older than what the ledger holds: one the run's walk reads anyway is left to it, any
    /// other is read again by id (its current state, never a stale one).
    fn step(
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
    fn next_page(&mut self, first_read: bool) -> bool {
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

    /// Takes one change without reading it back to a position.
    fn take(&mut self, change: Change, walk_reads: impl Fn(DateTime<FixedOffset>) -> bool) {
        if let Some(record) = change.record {
            // The latest by the change's time; listed first among changes of one time (the
            // feed lists newest first, but not always in time order).
            match self.records.get(&record.id) {
                Some((_, at)) if *at >= change.at => {}
                _ => {
                    self.records.insert(record.id.clone(), (record, change.at));
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::{at, carried, change_page, charged_back, payment, touched};

    fn position(id: &str, when: &str, recent: &[&str]) -> FeedPosition {
        FeedPosition {
            id: id.to_owned(),
            at: at(when),
            recent: recent.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Reads `pages` (each continuing to the next) as the driver does, page by page while
    /// [`FeedRead::take_page`] says where the next one is: the payments to read, the read, and
    /// how many pages were read.
    fn read(
        pages: Vec<Vec<Change>>,
        last: Option<&FeedPosition>,
    ) -> (Vec<String>, FeedRead, usize) {
        let now = at("2026-12-02T12:00:00Z");
        let mut read = FeedRead::default();
        let count = pages.len();
        let mut pages_read = 0;
        for (n, changes) in pages.into_iter().enumerate() {
            pages_read += 1;
            let next = (n + 1 < count).then(|| format!("page {}", n + 1));
            let page = change_page(changes, next.as_deref());
            if read.take_page(page, last, now, |_| false).is_none() {
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
    fn a_feed_further_behind_than_its_page_limit_is_a_gap() {
        let last = position("E0", "2026-12-01T11:00:00Z", &[]);
        let pages: Vec<Vec<Change>> = (0..MAX_FEED_PAGES + 5)
            .map(|n| vec![touched(&format!("N{n}"), "2026-12-02T11:00:00Z", "PPa")])
            .collect();
        let (_, read, pages_read) = read(pages, Some(&last));
        assert_eq!(pages_read, MAX_FEED_PAGES);
        assert!(shows_gap(Some(&read)));
    }

    #[test]
    fn a_gap_is_a_read_that_did_not_reach_back_and_a_failed_read_is_none() {
        let last = position("E1", "2026-12-02T11:00:00Z", &[]);
        let reached = vec![vec![
            touched("E2", "2026-12-02T11:30:00Z", "PPa"),
            touched("E1", "2026-12-02T11:00:00Z", "PPb"),
        ]];
        let short = vec![vec![touched("E2", "2026-12-02T11:30:00Z", "PPa")]];
        for (what, pages, last, gap) in [
            (
                "reached the last change applied",
                reached.clone(),
                Some(&last),
                false,
            ),
            ("ended above it", short.clone(), Some(&last), true),
            ("a first read, wherever it ends", short, None, false),
        ] {
            let (_, read, _) = read(pages, last);
            assert_eq!(shows_gap(Some(&read)), gap, "a read that {what}");
        }
        assert!(
            !shows_gap(None),
            "a feed that failed is read again, not a gap"
        );
    }

    #[test]
    fn a_payment_the_walk_reads_is_left_to_it_and_any_other_is_read_by_id() {
        let last = position("E0", "2026-12-02T11:00:00Z", &[]);
        let recent = payment("PPrecent", "2026-12-02T10:00:00Z");
        let old = payment("PPold", "2025-01-01T10:00:00Z");
        let page = change_page(
            vec![
                carried("E2", "2026-12-02T11:40:00Z", recent),
                carried("E1", "2026-12-02T11:30:00Z", old),
                touched("E0", "2026-12-02T11:00:00Z", "PPzero"),
            ],
            None,
        );
        let walk_reads =
            |created_at: DateTime<FixedOffset>| created_at >= at("2026-12-01T00:00:00Z");
        let mut read = FeedRead::default();
        let next = read.take_page(page, Some(&last), at("2026-12-02T12:00:00Z"), walk_reads);
        assert_eq!(next, None);
        assert_eq!(read.to_read, HashSet::from(["PPold".to_owned()]));
    }

    #[test]
    fn the_first_word_on_a_payments_chargeback_newest_first_is_the_latest() {
        let mut read = FeedRead::default();
        let page = change_page(
            vec![
                charged_back("PC2", "2026-12-02T11:30:00Z", "PPa", 500, false),
                charged_back("PC1", "2026-12-02T11:00:00Z", "PPa", 700, true),
            ],
            None,
        );
        read.take_page(page, None, at("2026-12-02T12:00:00Z"), |_| false);
        assert!(
            read.chargebacks.is_empty(),
            "a first read only notes where it stands"
        );
        let last = position("E0", "2026-12-02T10:00:00Z", &[]);
        let mut read = FeedRead::default();
        let page = change_page(
            vec![
                charged_back("PC2", "2026-12-02T11:30:00Z", "PPa", 500, false),
                charged_back("PC1", "2026-12-02T11:00:00Z", "PPa", 700, true),
            ],
            None,
        );
        read.take_page(page, Some(&last), at("2026-12-02T12:00:00Z"), |_| false);
        assert_eq!(read.chargebacks["PPa"].id, "PC2");
        assert_eq!(read.chargebacks["PPa"].completed_amount, None);
        // A gap's chargebacks, from the provider's list, come after the feed's own word.
        read.take_gap(vec![charged_back(
            "PC9",
            "2026-12-02T09:00:00Z",
            "PPa",
            900,
            true,
        )]);
        read.take_gap(vec![charged_back(
            "PC8",
            "2026-12-02T09:00:00Z",
            "PPb",
            800,
            true,
        )]);
        assert_eq!(read.chargebacks["PPa"].id, "PC2");
        assert_eq!(read.chargebacks["PPb"].id, "PC8");
        assert!(read.to_read.contains("PPb"));
    }

    #[test]
    fn the_record_a_read_keeps_is_the_latest_by_its_change_not_by_its_place() {
        let refund = |at: &str, state: &str| {
            let mut change = touched(&format!("EV{at}"), at, "PP1");
            change.record = Some(payments_model::BookRecord {
                kind: payments_model::BookKind::Refund,
                id: crate::test_data::source().payment_id("PR1"),
                source: crate::test_data::source(),
                source_id: "PR1".to_owned(),
                payment_id: Some(crate::test_data::source().payment_id("PP1")),
                state: state.to_owned(),
                amount: crate::test_data::eur(100),
                fee: None,
                fee_vat: None,
                created_at: crate::test_data::at("2026-10-01T10:00:00Z"),
                settled_at: None,
                description: None,
                reason: None,
                bank_account: None,
            });
            change
        };
        let mut read = FeedRead::default();
        // Listed newest first, but the later change is listed below the earlier one.
        read.take(refund("2026-10-01T10:00:00Z", "processing"), |_| false);
        read.take(refund("2026-10-01T10:05:00Z", "refunded"), |_| false);
        read.take(refund("2026-10-01T10:05:00Z", "stale"), |_| false);
        let (record, at) = &read.records[&crate::test_data::source().payment_id("PR1")];
        assert_eq!(record.state, "refunded");
        assert_eq!(*at, crate::test_data::at("2026-10-01T10:05:00Z"));
    }
}
