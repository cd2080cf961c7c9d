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
    /// Whether a run walks this listing: a walk not yet complete or resuming, one failing, a
    /// change feed that moved in this run, or the last walk older than [`WALK_BOOKS_EVERY`].
    pub(crate) fn due(&self, feed_moved: bool, now: DateTime<Utc>) -> bool {
        !self.complete
            || self.cursor.is_some()
            || self.failing.is_some()
            || feed_moved
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
            let undone_now = record.is_undone().then_some(observed_at);
            match kept.get(&record.id) {
                Some(stored) if stored.record == record => {
                    if !record.is_final() && record.created_at >= unsettled_since {
                        nothing_new = false;
                    }
                }
                Some(stored) => {
                    nothing_new = false;
                    changed.push(KeptRecord {
                        first_seen_at: stored.first_seen_at,
                        undone_seen_at: stored.undone_seen_at.or(undone_now),
                        record,
                    });
                }
                None => {
                    nothing_new = false;
                    changed.push(KeptRecord {
                        record,
                        first_seen_at: observed_at,
                        undone_seen_at: undone_now,
                    });
                }
            }
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
                        undone_seen_at: None,
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
    fn a_first_walk_goes_to_the_end_and_an_undone_payout_is_dated_when_first_seen() {
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
        assert_eq!(walked.commit.records[0].undone_seen_at, Some(at(11)));
        assert_eq!(walked.commit.records[0].first_seen_at, at(1));
    }

    #[test]
    fn a_walk_is_due_when_the_feed_moved_it_failed_or_an_hour_passed() {
        let walked = BookWalk {
            complete: true,
            walked_at: Some(at(10)),
            ..BookWalk::default()
        };
        let soon = at(10) + chrono::Duration::minutes(5);
        assert!(!walked.due(false, soon));
        assert!(walked.due(true, soon));
        assert!(walked.due(false, at(10) + chrono::Duration::minutes(61)));
        assert!(BookWalk::default().due(false, soon));
        let failed = walked.failed("HTTP 500".to_owned(), soon);
        assert!(failed.due(false, soon));
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
