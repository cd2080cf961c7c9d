//! What a ledger keeps for the books: the refunds, chargebacks and payouts its sources list
//! ([`KeptRecord`], synced by the run's book walks, [`BookWalk`]), and the statements it
//! issued ([`IssuedStatement`], which never change once issued).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use payments_model::{BookKind, BookRecord, Cursor, Rejected, Source};
use serde::{Deserialize, Serialize};

use crate::store::{Failing, StoreError};

/// A record of a book listing as the ledger keeps it, with what the engine decided about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptRecord {
    /// The record as last read.
    pub record: BookRecord,
    /// When the ledger first saw it.
    pub first_seen_at: DateTime<Utc>,
    /// When the ledger first saw it undone (a payout rejected or failed): the provider sends
    /// no such time, so this is when its money is known to have come back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undone_seen_at: Option<DateTime<Utc>>,
}

/// Where the walk of one book listing of one source stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookWalk {
    /// Where an unfinished walk resumes (`None`: at the newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Cursor>,
    /// Whether a walk has once reached the listing's end: from then on a walk stops at the
    /// first page that tells nothing new.
    #[serde(default)]
    pub complete: bool,
    /// When the last walk ended (reached its end or what it already knew).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walked_at: Option<DateTime<Utc>>,
    /// The listing could not be read by the last runs (`None` once it reads again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<Failing>,
}

/// How often a source's book listings are walked when its change feed shows nothing: a
/// feed that moved wakes them at once.
pub const WALK_BOOKS_EVERY: Duration = Duration::from_secs(3600);

/// How long a record that is not yet final (a refund not carried out, a pending chargeback,
/// a payout not paid) keeps each walk going back to it.
pub const UNSETTLED_RECORDS_FOR: Duration = Duration::from_secs(120 * 24 * 3600);

/// One page of a book listing, committed atomically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordCommit {
    /// The source's name.
    pub source: String,
    /// When the page was fetched: a record is never replaced by one fetched earlier.
    pub observed_at: DateTime<Utc>,
    /// The listing.
    pub kind: BookKind,
    /// New and changed records (a changed one supersedes the stored one, which is kept as a
    /// version).
    pub records: Vec<KeptRecord>,
    /// Records that could not be mapped, to quarantine (once per raw record).
    pub rejected: Vec<Rejected>,
    /// The walk's new state.
    pub walk: BookWalk,
}

/// A statement as the ledger issued it: from then on it is written again from `body` alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedStatement {
    /// The account it is of.
    pub account: String,
    /// Sequential per account, from 1.
    pub number: u32,
    /// Its booking day.
    pub day: NaiveDate,
    /// Its closing balance, exact (`"1234.56"`).
    pub closing: String,
    /// The SHA-256 of `body`, lowercase hex.
    pub digest: String,
    /// The statement whole (JSON), as issued.
    pub body: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// The references of the movements it books: its entries, and for an account's first
    /// statement also those its opening balance holds.
    pub references: Vec<String>,
}

/// The books part of a store: the records of book listings and the statements issued. Like
/// every part of a [`crate::Store`], it holds no rule: the engine decides, the store keeps.
#[async_trait]
pub trait Books: Send + Sync {
    /// Where the walk of `kind` of `source` stands; `None` before its first page.
    async fn book_walk(&self, source: &str, kind: BookKind)
    -> Result<Option<BookWalk>, StoreError>;

    /// The kept records with these unified ids (those it has).
    async fn kept_records(
        &self,
        ids: Vec<String>,
    ) -> Result<HashMap<String, KeptRecord>, StoreError>;

    /// Commits one page of a book listing: its records (the ordering stamp as for payments: a
    /// record stored from a later fetch stays), its quarantined records, the walk's state.
    async fn commit_records(&self, commit: RecordCommit) -> Result<(), StoreError>;

    /// Every kept record of `source`, sorted by `created_at` (as an instant) then id.
    async fn records(&self, source: Source) -> Result<Vec<KeptRecord>, StoreError>;

    /// The statements issued for `account`, by number.
    async fn issued(&self, account: &str) -> Result<Vec<IssuedStatement>, StoreError>;

    /// The references of every movement booked on a statement of `account` (or in its first
    /// opening balance).
    async fn booked(&self, account: &str) -> Result<HashSet<String>, StoreError>;

    /// Records statements as issued, all or none: refused with [`StoreError::Conflict`] when
    /// a number or day of one of them is already issued for its account (another issue got
    /// there first), so an issued statement is never replaced.
    async fn issue(&self, statements: Vec<IssuedStatement>) -> Result<(), StoreError>;
}

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
        let unsettled_since = crate::run::before(observed_at, UNSETTLED_RECORDS_FOR);
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
            id: Source::PayPro.payment_id(id),
            source: Source::PayPro,
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
        let walker = BookWalker::new("paypro", BookKind::Refund, complete);
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
        let walker = BookWalker::new("paypro", BookKind::Payout, BookWalk::default());
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
