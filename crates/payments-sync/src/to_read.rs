//! The payments the change feed names, queued in the checkpoint to be read by id, without
//! I/O: what a read of the feed (or the first read of it) puts in the queue and commits, which
//! entries are due, what an answer to a read does to its entry (read, put off with backoff, or
//! given up and quarantined), and what is kept of an entry given up.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use payments_model::{Payment, Rejected, SourceError};

use crate::SyncError;
use crate::chargebacks::{Checked, apply};
use crate::feed::{FeedFacts, FeedRead};
use crate::store::{FeedPosition, StatedChargeback, ToRead};

/// The provider ids of the payments that are read by id anyway: those `read` names and those
/// already in `queue`. The provider's list of chargebacks only gives them its word, applied
/// with their read.
pub(crate) fn read_by_id(read: &FeedRead, queue: &[ToRead]) -> HashSet<String> {
    read.to_read
        .iter()
        .cloned()
        .chain(queue.iter().map(|entry| entry.source_id.clone()))
        .collect()
}

/// What a read of the change feed commits, in one transaction with the queue: the feed's new
/// `position`, the chargebacks applied to stored payments and set aside (`checked`), and every
/// payment `read` names queued to be read by id, each with the latest word on its chargeback:
/// the list's (in `checked`, read this run) over the event's. A first read names no payment of
/// its own: only those whose chargeback `checked` says is to be applied with a read.
pub(crate) fn enqueue_read(
    queue: &mut Vec<ToRead>,
    mut read: FeedRead,
    position: Option<FeedPosition>,
    mut checked: Checked,
    now: DateTime<Utc>,
) -> FeedFacts {
    for (source_id, stated) in std::mem::take(&mut checked.to_read) {
        // The list's word is newer than the event's.
        read.chargebacks.insert(source_id.clone(), stated);
        read.to_read.insert(source_id);
    }
    let mut named: Vec<String> = read.to_read.into_iter().collect();
    named.sort();
    let named = named.into_iter().map(|source_id| {
        let stated = read.chargebacks.remove(&source_id);
        (source_id, stated)
    });
    enqueue(queue, named, now);
    let mut facts = checked.facts;
    facts.position = position;
    facts.rejected.append(&mut read.rejected);
    facts
}

/// Adds payments to read by id to `queue`, or updates them: a newer statement of a payment's
/// chargeback replaces the older one; its attempts and backoff stay.
fn enqueue(
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
const MAX_ATTEMPTS: u32 = 10;

/// What is kept of a queued payment that is no longer read by id, with `reason`: the chargeback
/// the feed stated, under the chargeback's own id (so that no read of the payment resolves it;
/// a later read of that chargeback that applies does), or else the entry under the payment's id
/// (which a later read of the payment resolves).
fn give_up(entry: ToRead, reason: &str) -> Vec<Rejected> {
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
fn failed(entry: &mut ToRead, error: String, now: DateTime<Utc>) {
    entry.attempts = entry.attempts.saturating_add(1);
    entry.failing_since.get_or_insert(now);
    entry.last_error = Some(error);
    entry.not_before = chrono::Duration::from_std(backoff(entry.attempts))
        .ok()
        .and_then(|wait| now.checked_add_signed(wait));
}

/// How long after its `attempts`th failed read a payment is read again: at the next run after
/// the first failure, then after 1, 2, 4 … minutes, at most an hour.
fn backoff(attempts: u32) -> Duration {
    match attempts {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs(60 << (n - 2).min(6)).min(Duration::from_secs(3600)),
    }
}

/// The answer to a read by id of a queued payment.
#[derive(Debug)]
pub(crate) enum ReadAnswer {
    /// The provider's record of the payment: mapped, or set aside with its reason.
    Read(Box<Result<Payment, Rejected>>),
    /// The provider does not know the payment (404).
    Unknown,
    /// The id cannot be asked for (refused before it was sent): it never will be.
    Refused(String),
    /// The read failed (what retrying within its share of the run could not fix, or no answer
    /// in time).
    Failed(String),
}

impl ReadAnswer {
    /// The answer a read by id gave: the record, `None` for a payment the provider does not
    /// know, or why the read failed.
    pub(crate) fn of(result: Result<Option<Result<Payment, Rejected>>, SyncError>) -> ReadAnswer {
        match result {
            Ok(Some(read)) => ReadAnswer::Read(Box::new(read)),
            Ok(None) => ReadAnswer::Unknown,
            Err(SyncError::Source {
                error: error @ SourceError::Refused(_),
                ..
            }) => ReadAnswer::Refused(error.to_string()),
            Err(
                SyncError::Source { error, .. } | SyncError::RetriesExhausted { last: error, .. },
            ) => ReadAnswer::Failed(error.to_string()),
            Err(error) => ReadAnswer::Failed(error.to_string()),
        }
    }
}

/// What an answer did to a queued payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// It was read (its record, or the record set aside) and left the queue.
    Read,
    /// Its read failed: it stays queued, with backoff, after this many failed attempts.
    PutOff {
        /// Failed reads so far.
        attempts: u32,
    },
    /// It is no longer read by id: it left the queue and is quarantined.
    GivenUp,
    /// It was not in the queue (any more): nothing changed.
    NotQueued,
}

/// Takes the `answer` to a read by id of the queued payment `source_id` at `now` into `queue`
/// and `facts`: a record read leaves the queue ([`take_read`]); a failed read (a 404 included:
/// it is asked for again in case that passes) stays queued with [`backoff`], and is given up
/// after [`MAX_ATTEMPTS`]; an id that cannot be asked for is given up at once. Given up, it is
/// quarantined ([`give_up`]).
pub(crate) fn take_answer(
    queue: &mut Vec<ToRead>,
    facts: &mut FeedFacts,
    source_id: &str,
    answer: ReadAnswer,
    now: DateTime<Utc>,
) -> Taken {
    let Some(at) = queue.iter().position(|e| e.source_id == source_id) else {
        return Taken::NotQueued;
    };
    let error = match answer {
        ReadAnswer::Read(read) => {
            take_read(facts, queue.remove(at), *read);
            return Taken::Read;
        }
        ReadAnswer::Refused(error) => {
            let entry = queue.remove(at);
            tracing::warn!(payment = %source_id, %error, "a payment the change feed names cannot be asked for; it is quarantined");
            facts.rejected.extend(give_up(entry, &error));
            return Taken::GivenUp;
        }
        ReadAnswer::Unknown => {
            "the provider does not know this payment (404); it is asked for again in case that passes"
                .to_owned()
        }
        ReadAnswer::Failed(error) => error,
    };
    let entry = &mut queue[at];
    failed(entry, error.clone(), now);
    if entry.attempts >= MAX_ATTEMPTS {
        let entry = queue.remove(at);
        tracing::warn!(payment = %source_id, attempts = entry.attempts, %error, "a payment the change feed names could not be read in all its attempts; it is quarantined with what the feed said of it");
        facts.rejected.extend(give_up(entry, &error));
        return Taken::GivenUp;
    }
    tracing::warn!(payment = %source_id, attempts = entry.attempts, %error, "a payment the change feed names could not be read; it is put off, and later runs read it again");
    Taken::PutOff {
        attempts: entry.attempts,
    }
}

/// Takes the answer to a read by id of a queued payment into `facts`: the payment read afresh,
/// with the chargeback the feed stated applied (or set aside when it does not fit: the payment
/// then keeps the chargeback the ledger knew); a record that cannot be mapped is quarantined,
/// and so is the chargeback the feed stated of it.
fn take_read(facts: &mut FeedFacts, entry: ToRead, answer: Result<Payment, Rejected>) {
    match answer {
        Ok(mut payment) => {
            facts.readable.push(payment.source_id.clone());
            if let Some(stated) = &entry.chargeback {
                match apply(&mut payment, stated) {
                    Ok(()) => {
                        facts.readable.push(stated.id.clone());
                        facts.stated.insert(payment.id.clone());
                    }
                    Err(rejected) => {
                        tracing::warn!(chargeback = %stated.id, reason = %rejected.reason, "a chargeback that does not fit its payment is quarantined; the payment keeps its last good state");
                        facts.rejected.push(rejected);
                    }
                }
            }
            facts.payments.push(payment);
        }
        Err(record) => {
            let reason = record.reason.clone();
            facts.rejected.push(record);
            // The record is quarantined under the payment's id, which a later read that maps
            // resolves; what the feed said of its chargeback is kept under the chargeback's.
            if entry.chargeback.is_some() {
                facts.rejected.extend(give_up(
                    entry,
                    &format!("its payment's record cannot be read: {reason}"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::{eur, payment, utc};

    #[test]
    fn failed_reads_back_off_up_to_an_hour_and_never_hold_the_others_back() {
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(4), Duration::from_secs(240));
        assert_eq!(backoff(30), Duration::from_secs(3600));
        let now = utc("2026-12-02T12:00:00Z");
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

    fn stated(id: &str, cents: Option<i64>) -> StatedChargeback {
        StatedChargeback {
            id: id.to_owned(),
            completed_amount: cents.map(eur),
            record: format!(r#"{{"id":"{id}"}}"#),
        }
    }

    fn queue_of(entries: &[(&str, Option<StatedChargeback>)]) -> Vec<ToRead> {
        let mut queue = Vec::new();
        enqueue(
            &mut queue,
            entries
                .iter()
                .map(|(id, chargeback)| ((*id).to_owned(), chargeback.clone())),
            utc("2026-12-02T11:00:00Z"),
        );
        queue
    }

    /// What a read by id gives the driver.
    type ReadResult = Result<Option<Result<Payment, Rejected>>, SyncError>;

    /// What, its chargeback as stated, the answer, what it did, whether it is still queued
    /// after, and the ids set aside.
    type AnswerCase = (
        &'static str,
        Option<StatedChargeback>,
        ReadAnswer,
        Taken,
        bool,
        Vec<&'static str>,
    );

    fn failure() -> ReadAnswer {
        ReadAnswer::Failed("a provider failed (HTTP 503)".into())
    }

    #[test]
    fn an_answer_reads_puts_off_or_gives_up_a_queued_payment() {
        let now = utc("2026-12-02T12:00:00Z");
        let unreadable = Rejected {
            source_id: Some("P1".into()),
            reason: "a bad amount".into(),
            raw: "{}".into(),
        };
        let cases: Vec<AnswerCase> = vec![
            (
                "read",
                None,
                ReadAnswer::Read(Box::new(Ok(payment("P1", "2025-01-01T10:00:00Z")))),
                Taken::Read,
                false,
                vec![],
            ),
            (
                "read, but its record does not map",
                Some(stated("PC1", Some(100))),
                ReadAnswer::Read(Box::new(Err(unreadable))),
                Taken::Read,
                false,
                vec!["P1", "PC1"],
            ),
            (
                "unknown to the provider",
                None,
                ReadAnswer::Unknown,
                Taken::PutOff { attempts: 1 },
                true,
                vec![],
            ),
            (
                "failed",
                None,
                failure(),
                Taken::PutOff { attempts: 1 },
                true,
                vec![],
            ),
            (
                "an id that cannot be asked for",
                None,
                ReadAnswer::Refused("refused: not a payment id".into()),
                Taken::GivenUp,
                false,
                vec!["P1"],
            ),
            (
                "an id that cannot be asked for, with a stated chargeback",
                Some(stated("PC1", Some(100))),
                ReadAnswer::Refused("refused: not a payment id".into()),
                Taken::GivenUp,
                false,
                vec!["PC1"],
            ),
        ];
        for (what, chargeback, answer, taken, queued, rejected) in cases {
            let mut queue = queue_of(&[("P1", chargeback), ("P2", None)]);
            let mut facts = FeedFacts::default();
            assert_eq!(
                take_answer(&mut queue, &mut facts, "P1", answer, now),
                taken,
                "{what}"
            );
            let ids: Vec<&str> = queue.iter().map(|e| e.source_id.as_str()).collect();
            let expected: &[&str] = if queued { &["P1", "P2"] } else { &["P2"] };
            assert_eq!(ids, expected, "{what}");
            let set_aside: Vec<&str> = facts
                .rejected
                .iter()
                .filter_map(|r| r.source_id.as_deref())
                .collect();
            assert_eq!(set_aside, rejected, "{what}");
        }
        let mut queue = queue_of(&[("P2", None)]);
        let mut facts = FeedFacts::default();
        assert_eq!(
            take_answer(&mut queue, &mut facts, "P1", failure(), now),
            Taken::NotQueued
        );
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn a_payment_read_afresh_gets_the_stated_chargeback_or_sets_it_aside() {
        let now = utc("2026-12-02T12:00:00Z");
        for (what, chargeback, charged_back, readable, rejected) in [
            ("none stated", None, None, vec!["P1"], vec![]),
            (
                "completed",
                Some(stated("PC1", Some(500))),
                Some(500),
                vec!["P1", "PC1"],
                vec![],
            ),
            (
                "not completed",
                Some(stated("PC1", None)),
                None,
                vec!["P1", "PC1"],
                vec![],
            ),
            (
                "above the payment's amount",
                Some(stated("PC1", Some(100_000))),
                None,
                vec!["P1"],
                vec!["PC1"],
            ),
        ] {
            let stated_any = chargeback.is_some();
            let mut queue = queue_of(&[("P1", chargeback)]);
            let mut facts = FeedFacts::default();
            let read = ReadAnswer::Read(Box::new(Ok(payment("P1", "2025-01-01T10:00:00Z"))));
            take_answer(&mut queue, &mut facts, "P1", read, now);
            assert_eq!(
                facts.payments[0].charged_back_amount,
                charged_back.map(eur),
                "{what}"
            );
            assert_eq!(facts.readable, readable, "{what}");
            let set_aside: Vec<&str> = facts
                .rejected
                .iter()
                .filter_map(|r| r.source_id.as_deref())
                .collect();
            assert_eq!(set_aside, rejected, "{what}");
            let applied = stated_any && rejected.is_empty();
            assert_eq!(
                facts.stated.contains(&facts.payments[0].id),
                applied,
                "{what}"
            );
        }
    }

    #[test]
    fn a_payment_that_keeps_failing_is_given_up_after_its_attempts_under_its_chargeback() {
        let mut now = utc("2026-12-02T12:00:00Z");
        let mut queue = queue_of(&[("P1", Some(stated("PC1", Some(100))))]);
        let mut facts = FeedFacts::default();
        for attempt in 1..MAX_ATTEMPTS {
            assert_eq!(due(&queue, now), ["P1"], "attempt {attempt} is due");
            let taken = take_answer(&mut queue, &mut facts, "P1", failure(), now);
            assert_eq!(taken, Taken::PutOff { attempts: attempt });
            assert_eq!(queue[0].failing_since, Some(utc("2026-12-02T12:00:00Z")));
            now += chrono::Duration::from_std(backoff(attempt)).unwrap();
        }
        assert!(facts.rejected.is_empty());
        assert_eq!(
            take_answer(&mut queue, &mut facts, "P1", failure(), now),
            Taken::GivenUp
        );
        assert!(queue.is_empty());
        assert_eq!(facts.rejected.len(), 1);
        assert_eq!(facts.rejected[0].source_id.as_deref(), Some("PC1"));
        assert_eq!(facts.rejected[0].raw, r#"{"id":"PC1"}"#);
        assert!(
            facts.rejected[0]
                .reason
                .contains("a provider failed (HTTP 503)")
        );
    }

    #[test]
    fn what_a_read_by_id_answered_is_read_unknown_refused_or_failed() {
        let error = |error: SourceError| SyncError::Source {
            source_name: "a source".into(),
            at: None,
            error,
        };
        let server = || SourceError::Server {
            provider: "a provider",
            status: 503,
            retry_after: None,
            excerpt: "down".into(),
        };
        let cases: Vec<(ReadResult, &str)> = vec![
            (Ok(Some(Ok(payment("P1", "2025-01-01T10:00:00Z")))), "read"),
            (Ok(None), "unknown"),
            (
                Err(error(SourceError::Refused("not an id".into()))),
                "refused: refused: not an id",
            ),
            (
                Err(error(server())),
                "failed: a provider failed (HTTP 503): down",
            ),
            (
                Err(SyncError::RetriesExhausted {
                    source_name: "a source".into(),
                    at: None,
                    attempts: 3,
                    last: server(),
                }),
                "failed: a provider failed (HTTP 503): down",
            ),
        ];
        for (result, expected) in cases {
            let answer = match ReadAnswer::of(result) {
                ReadAnswer::Read(_) => "read".to_owned(),
                ReadAnswer::Unknown => "unknown".to_owned(),
                ReadAnswer::Refused(why) => format!("refused: {why}"),
                ReadAnswer::Failed(why) => format!("failed: {why}"),
            };
            assert_eq!(answer, expected);
        }
    }

    #[test]
    fn the_lists_word_on_a_chargeback_wins_over_the_events_when_the_feed_is_queued() {
        let now = utc("2026-12-02T12:00:00Z");
        let mut read = FeedRead::default();
        read.to_read.extend(["P2".to_owned(), "P1".to_owned()]);
        read.chargebacks
            .insert("P1".into(), stated("PC-event", Some(100)));
        read.chargebacks
            .insert("P2".into(), stated("PC-event2", Some(200)));
        let checked = Checked {
            to_read: vec![
                ("P1".into(), stated("PC-list", None)),
                ("P3".into(), stated("PC-list3", None)),
            ],
            ..Checked::default()
        };
        // P2 was queued by an earlier run, with an older word; P4 too, with none now.
        let mut queue = queue_of(&[("P2", Some(stated("PC-old", None))), ("P4", None)]);
        let by_id = read_by_id(&read, &queue);
        assert_eq!(by_id, HashSet::from(["P1", "P2", "P4"].map(str::to_owned)));
        let facts = enqueue_read(&mut queue, read, None, checked, now);
        assert!(facts.payments.is_empty());
        let words: Vec<(&str, Option<&str>)> = queue
            .iter()
            .map(|e| {
                (
                    e.source_id.as_str(),
                    e.chargeback.as_ref().map(|c| c.id.as_str()),
                )
            })
            .collect();
        assert_eq!(
            words,
            [
                ("P2", Some("PC-event2")),
                ("P4", None),
                ("P1", Some("PC-list")),
                ("P3", Some("PC-list3")),
            ]
        );
        assert_eq!(queue[2].queued_at, now);
    }
}
