//! What a ledger keeps for the books: the refunds, chargebacks and payouts its sources list
//! ([`KeptRecord`], synced by the run's book walks, [`BookWalk`]), and the statements it
//! issued ([`IssuedStatement`], which never change once issued).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use payments_model::{BookKind, BookRecord, Cursor, Rejected};

use crate::store::{
    BookWalk, Failing, KeptRecord, RecordCommit, UNSETTLED_RECORDS_FOR, WALK_BOOKS_EVERY,
};

impl BookWalk {
    /// Whether a run walks this listing: a walk not yet complete or resuming, one failing, or
    /// the last walk older than [`WALK_BOOKS_EVERY`]. (What the change feed says of a record
    /// comes with it, [`from_feed`]: a moved feed costs no walk.)
    pub(crate) fn due(&self, now: DateTime<Utc>) -> bool {
        !self.complete
            || self.cursor.is_some()
            || self.failing.is_some()
            || self
                .walked_at
                .is_none_or(|at| (now - at).to_std().unwrap_or_default() >= WALK_BOOKS_EVERY)
    }

    /// This walk after a failure to read `kind`'s listing: it resumes where it stood.
    pub(crate) fn failed(&self, error: String, now: DateTime<Utc>) -> BookWalk {
        let failing = match &self.failing {
            Some(failing) => Failing {
                since: failing.since,
                runs: failing.runs.saturating_add(1),
                error,
            },
            None => Failing {
                since: now,
                runs: 1,
                error,
            },
        };
        BookWalk {
            failing: Some(failing),
            ..self.clone()
        }
    }

    /// The failure to report, once reading `kind` has failed long enough to make the source
    /// unhealthy (the rule of the change feed's failures).
    pub fn persistent_failure(&self, kind: BookKind, now: DateTime<Utc>) -> Option<String> {
        let failing = self.failing.as_ref()?;
        crate::store::persistent(failing.runs, failing.since, now).then(|| {
            format!(
                "the {kind} listing could not be read in {} runs in a row since {}, so the statements miss what it holds: {}",
                failing.runs,
                failing.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                failing.error
            )
        })
    }
}

/// One walk of one book listing: the policy of what each page changes and where the walk
/// goes on, given the time (pure; the syncer fetches and commits).
#[derive(Debug)]
pub(crate) struct BookWalker {
    source: String,
    kind: BookKind,
    /// The walk's state when it started.
    start: BookWalk,
}

/// What [`BookWalker::page`] decided.
#[derive(Debug)]
pub(crate) struct WalkedPage {
    /// What to commit.
    pub commit: RecordCommit,
    /// Where to fetch next; `None` when the walk is over.
    pub next: Option<Cursor>,
    /// Records new or changed.
    pub changed: u64,
}

impl BookWalker {
    pub(crate) fn new(source: &str, kind: BookKind, start: BookWalk) -> BookWalker {
        BookWalker {
            source: source.to_owned(),
            kind,
            start,
        }
    }

    /// Where the walk's first fetch goes: where an interrupted one stood, else the newest.
    pub(crate) fn first(&self) -> Option<Cursor> {
        self.start.cursor.clone()
    }

    /// The walk's state as it started.
    pub(crate) fn start(&self) -> &BookWalk {
        &self.start
    }

    /// Decides one fetched page: `records` as read at `observed_at`, `kept` what the ledger
    /// holds of them. A walk that once reached the listing's end stops at the first page that
    /// tells nothing new: every record kept unchanged and final or older than
    /// [`UNSETTLED_RECORDS_FOR`].
    pub(crate) fn page(
        &self,
        records: Vec<BookRecord>,
        rejected: Vec<Rejected>,
        next: Option<Cursor>,
        kept: &HashMap<String, KeptRecord>,
        observed_at: DateTime<Utc>,
    ) -> WalkedPage {
        let unsettled_since = observed_at
            - chrono::Duration::from_std(UNSETTLED_RECORDS_FOR)
                .unwrap_or_else(|_| chrono::Duration::zero());
        let mut changed = Vec::new();
        let mut nothing_new = true;
        for record in records {
            let stored = kept.get(&record.id);
            if stored.is_some_and(|stored| stored.record == record) {
                if !record.is_final() && record.created_at >= unsettled_since {
                    nothing_new = false;
                }
                continue;
            }
            nothing_new = false;
            // A listing shows no time of undoing: new and undone, it returns when it was made.
            let made = record.created_at.to_utc();
            changed.extend(keep(record, stored, observed_at, made));
        }
        let ends = next.is_none() || (self.start.complete && nothing_new);
        let walk = if ends {
            BookWalk {
                cursor: None,
                complete: true,
                walked_at: Some(observed_at),
                failing: None,
            }
        } else {
            BookWalk {
                cursor: next.clone(),
                complete: self.start.complete,
                walked_at: self.start.walked_at,
                failing: None,
            }
        };
        let count = changed.len() as u64;
        WalkedPage {
            commit: RecordCommit {
                source: self.source.clone(),
                observed_at,
                kind: self.kind,
                records: changed,
                rejected,
                walk,
            },
            next: if ends { None } else { next },
            changed: count,
        }
    }
}

/// What the ledger keeps of `record`, read as it was at `observed_at`, given what it holds of
/// it: `None` when that is the same. An undone payout returns when the ledger learnt so (see
/// [`KeptRecord::returned_at`]): `undone_at` when it is new and undone already.
pub(crate) fn keep(
    record: BookRecord,
    stored: Option<&KeptRecord>,
    observed_at: DateTime<Utc>,
    undone_at: DateTime<Utc>,
) -> Option<KeptRecord> {
    match stored {
        Some(stored) if stored.record == record => None,
        Some(stored) => Some(KeptRecord {
            first_seen_at: stored.first_seen_at,
            returned_at: stored
                .returned_at
                .or_else(|| record.is_undone().then_some(observed_at)),
            record,
        }),
        None => Some(KeptRecord {
            returned_at: record.is_undone().then_some(undone_at),
            record,
            first_seen_at: observed_at,
        }),
    }
}

/// The records a read of the change feed carried (each with its change's time, never after
/// `now`), as one commit each: stamped with that time, so that a record a walk read later
/// stays, and with the listing's walk as it stands (`walks`). A payload never takes a record
/// kept final back to a state before (an event listed late, a provider's clock ahead of this
/// one's): a final record changes only through the listing. A record new and undone already
/// returns at its change's time (the event of its undoing).
pub(crate) fn from_feed(
    source: &str,
    records: Vec<(BookRecord, DateTime<Utc>)>,
    kept: &HashMap<String, KeptRecord>,
    walks: &HashMap<BookKind, BookWalk>,
    now: DateTime<Utc>,
) -> Vec<RecordCommit> {
    let mut records = records;
    records.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.id.cmp(&b.0.id)));
    records
        .into_iter()
        .filter_map(|(record, at)| {
            let at = at.min(now);
            let kind = record.kind;
            let stored = kept.get(&record.id);
            if stored.is_some_and(|stored| stored.record.is_final() && !record.is_final()) {
                return None;
            }
            let kept = keep(record, stored, at, at)?;
            Some(RecordCommit {
                source: source.to_owned(),
                observed_at: at,
                kind,
                records: vec![kept],
                rejected: Vec::new(),
                walk: walks.get(&kind).cloned().unwrap_or_default(),
            })
        })
        .collect()
}

/// The keys to ask [`Books::kept_records`] for.
pub(crate) fn ids(records: &[BookRecord]) -> Vec<String> {
    records.iter().map(|record| record.id.clone()).collect()
}

/// Just the walk's new state, committed after a failed fetch.
pub(crate) fn walk_only(
    source: &str,
    kind: BookKind,
    walk: BookWalk,
    at: DateTime<Utc>,
) -> RecordCommit {
    RecordCommit {
        source: source.to_owned(),
        observed_at: at,
        kind,
        records: Vec::new(),
        rejected: Vec::new(),
        walk,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use payments_model::{Currency, Money, Source};

    use super::*;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, day, 12, 0, 0).unwrap()
    }

    fn refund(id: &str, day: u32, settled: bool) -> BookRecord {
        BookRecord {
            kind: BookKind::Refund,
            id: Source::ALL[0].payment_id(id),
            source: Source::ALL[0],
            source_id: id.to_owned(),
            payment_id: None,
            state: if settled { "refunded" } else { "processing" }.to_owned(),
            amount: Money::from_minor(100, Currency::EUR),
            fee: None,
            fee_vat: None,
            created_at: at(day).fixed_offset(),
            settled_at: settled.then(|| at(day).fixed_offset()),
            description: None,
            reason: None,
            bank_account: None,
        }
    }

    fn kept(records: &[BookRecord]) -> HashMap<String, KeptRecord> {
        records
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    KeptRecord {
                        record: r.clone(),
                        first_seen_at: at(1),
                        returned_at: None,
                    },
                )
            })
            .collect()
    }

    fn cursor(text: &str) -> Option<Cursor> {
        Some(Cursor {
            listing: Some(text.to_owned()),
            ..Cursor::default()
        })
    }

    #[test]
    fn a_complete_walk_stops_at_the_first_page_that_tells_nothing_new() {
        let complete = BookWalk {
            complete: true,
            walked_at: Some(at(1)),
            ..BookWalk::default()
        };
        let walker = BookWalker::new("s", BookKind::Refund, complete);
        let page = vec![refund("PR2", 9, true), refund("PR1", 8, true)];
        let walked = walker.page(page.clone(), Vec::new(), cursor("n"), &kept(&page), at(10));
        assert_eq!(walked.next, None, "nothing new: the walk ends");
        assert!(walked.commit.walk.complete && walked.commit.walk.walked_at == Some(at(10)));
        // A record not yet final and recent keeps it going; so does a new one.
        let open = vec![refund("PR3", 9, false)];
        let walked = walker.page(open.clone(), Vec::new(), cursor("n"), &kept(&open), at(10));
        assert_eq!(walked.next, cursor("n"));
        let walked = walker.page(page, Vec::new(), cursor("n"), &HashMap::new(), at(10));
        assert_eq!((walked.changed, walked.next), (2, cursor("n")));
        assert_eq!(walked.commit.walk.cursor, cursor("n"), "resumable");
    }

    #[test]
    fn a_first_walk_goes_to_the_end_and_an_undone_payout_returns_when_it_is_known_to() {
        let walker = BookWalker::new("s", BookKind::Payout, BookWalk::default());
        let page = vec![refund("PR1", 8, true)];
        let walked = walker.page(page.clone(), Vec::new(), cursor("n"), &kept(&page), at(10));
        assert_eq!(walked.next, cursor("n"), "an incomplete walk reads on");
        assert!(!walked.commit.walk.complete);
        let walked = walker.page(page, Vec::new(), None, &HashMap::new(), at(10));
        assert!(walked.commit.walk.complete && walked.next.is_none());

        let mut payout = refund("PO1", 8, false);
        payout.kind = BookKind::Payout;
        let stored = kept(std::slice::from_ref(&payout));
        payout.state = "rejected".to_owned();
        let walked = walker.page(vec![payout], Vec::new(), None, &stored, at(11));
        assert_eq!(walked.commit.records[0].returned_at, Some(at(11)));
        assert_eq!(walked.commit.records[0].first_seen_at, at(1));

        // First seen already rejected: it returns when it was made, not when the ledger looked.
        let mut rejected = refund("PO2", 8, false);
        rejected.kind = BookKind::Payout;
        rejected.state = "rejected".to_owned();
        let made = rejected.created_at.to_utc();
        let walked = walker.page(vec![rejected], Vec::new(), None, &HashMap::new(), at(11));
        assert_eq!(walked.commit.records[0].returned_at, Some(made));
    }

    #[test]
    fn a_record_from_the_feed_is_stamped_with_its_change_and_an_unchanged_one_is_not_committed() {
        let mut payout = refund("PO1", 8, false);
        payout.kind = BookKind::Payout;
        payout.state = "approved".to_owned();
        let stored = kept(std::slice::from_ref(&payout));
        let mut failed = payout.clone();
        failed.state = "failed".to_owned();
        let refund = refund("PR1", 8, true);
        let walks = HashMap::from([(
            BookKind::Payout,
            BookWalk {
                complete: true,
                walked_at: Some(at(2)),
                ..BookWalk::default()
            },
        )]);
        let commits = from_feed(
            "s",
            vec![(failed, at(12)), (payout, at(11)), (refund, at(30))],
            &stored,
            &walks,
            at(20),
        );
        assert_eq!(
            commits.len(),
            2,
            "the unchanged payout is not committed: {commits:?}"
        );
        let (payout, refund) = (&commits[0], &commits[1]);
        assert_eq!(payout.observed_at, at(12));
        assert_eq!(
            payout.records[0].returned_at,
            Some(at(12)),
            "failed when its change says"
        );
        assert_eq!(
            payout.walk,
            walks[&BookKind::Payout],
            "the walk stays as it stands"
        );
        assert_eq!(
            refund.observed_at,
            at(20),
            "a change stamped in the future stands at now"
        );
        assert_eq!(refund.kind, BookKind::Refund);
        assert_eq!(refund.walk, BookWalk::default());
    }

    #[test]
    fn a_late_or_early_stamped_payload_never_takes_a_final_record_back() {
        // The walk kept the refund failed (no movement); its `refund.created` event, listed
        // late and stamped after that walk by a clock ahead, says processing.
        let mut failed = refund("PR1", 8, false);
        failed.state = "failed".to_owned();
        let stored = kept(std::slice::from_ref(&failed));
        let processing = refund("PR1", 8, false);
        let walks = HashMap::new();
        let commits = from_feed("s", vec![(processing, at(12))], &stored, &walks, at(13));
        assert!(commits.is_empty(), "{commits:?}");

        // A payout first seen through its `payout.rejected` event returns when that says.
        let mut rejected = refund("PO1", 8, false);
        rejected.kind = BookKind::Payout;
        rejected.state = "rejected".to_owned();
        let commits = from_feed(
            "s",
            vec![(rejected, at(11))],
            &HashMap::new(),
            &walks,
            at(13),
        );
        assert_eq!(commits[0].records[0].returned_at, Some(at(11)));
    }

    #[test]
    fn a_walk_is_due_when_incomplete_failing_or_an_hour_passed() {
        let walked = BookWalk {
            complete: true,
            walked_at: Some(at(10)),
            ..BookWalk::default()
        };
        let soon = at(10) + chrono::Duration::minutes(5);
        assert!(!walked.due(soon));
        assert!(walked.due(at(10) + chrono::Duration::minutes(61)));
        assert!(BookWalk::default().due(soon));
        let failed = walked.failed("HTTP 500".to_owned(), soon);
        assert!(failed.due(soon));
        assert_eq!(failed.persistent_failure(BookKind::Payout, soon), None);
        let thrice = failed
            .failed("HTTP 500".to_owned(), soon)
            .failed("HTTP 500".to_owned(), soon);
        let said = thrice.persistent_failure(BookKind::Payout, soon).unwrap();
        assert!(
            said.contains("payout listing") && said.contains("3 runs"),
            "{said}"
        );
    }
}
