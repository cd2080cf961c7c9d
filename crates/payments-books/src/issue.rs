//! Issuing statements from a ledger: the day statements of a balance, chained, each issued
//! once and given again as it was.
//!
//! The rules, all here:
//! - A statement is one Amsterdam day with movements; its opening is the previous statement's
//!   closing, its closing the opening plus its entries.
//! - An account's first statement opens with `--opening-balance` plus every movement valued
//!   before its first day (they are booked in that opening, and recorded as such).
//! - A movement not booked yet is booked on its own day, or, when that day was issued
//!   already, on the first day after the last statement issued, keeping its value date.
//! - A movement booked before that changed since (a refund failed after it was booked, a
//!   payment no longer paid, a record gone) is corrected on the first day after the last
//!   statement issued: an entry of the difference, referenced `{reference}/corr{n}`, valued
//!   that day. Every booked movement was created before that day, so all of them are known
//!   before any statement of the range is made.
//! - Statements are issued in order: a range that would leave a day with movements unissued
//!   before it is refused, naming that day.
//! - An issued statement is written again from what was recorded, byte for byte.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Amsterdam;
use futures::TryStreamExt;
use payments_model::{Currency, Money, Movement, Source, payment_movement, record_movements};
use payments_sync::{Booking, Books, Filter, IssuedStatement, Ledger, StoreError};
use sha2::{Digest, Sha256};

use crate::{Entry, Statement};

/// What to issue.
#[derive(Clone, Debug)]
pub struct Request {
    /// The source whose balance it is.
    pub source: Source,
    /// The account identification written into the statements.
    pub account: String,
    /// The first day asked for (Amsterdam).
    pub since: NaiveDate,
    /// The last day asked for (Amsterdam), included.
    pub until: NaiveDate,
    /// The balance before every movement the ledger knows (for a ledger that starts after the
    /// account did); it also fixes the statements' currency.
    pub opening_balance: Money,
    /// Now: the issue time of new statements. Days from today on are not issued (they may
    /// still get movements).
    pub now: DateTime<Utc>,
}

/// What [`issue`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Issued {
    /// Statements given again as they were issued before.
    pub again: u32,
    /// Statements issued now.
    pub new: u32,
    /// Entries on the statements issued now.
    pub entries: u64,
    /// The closing balance of the last statement given, if any.
    pub closing: Option<Money>,
    /// Movements in another currency than the statements': of another balance, not on these.
    pub other_currency: u64,
    /// Corrections of movements booked before that changed since, on the statements issued now.
    pub corrections: u64,
}

/// Why statements could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BooksError {
    /// The ledger failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The range asked for cannot be issued as it stands.
    #[error("{0}")]
    Range(String),
    /// A movement is in another currency than the statements'.
    #[error(
        "movement {reference} is in {found}, the statements are of the {expected} balance; give --opening-balance in {found} for a statement of that balance"
    )]
    Currency {
        /// The movement.
        reference: String,
        /// Its currency.
        found: Currency,
        /// The statements'.
        expected: Currency,
    },
    /// A recorded statement does not read back as it was issued.
    #[error(
        "statement {number} of {account} does not read back as it was issued ({detail}); restore the ledger from a backup"
    )]
    Damaged {
        /// The account.
        account: String,
        /// Its number.
        number: u32,
        /// What is wrong.
        detail: String,
    },
    /// Writing a statement failed.
    #[error("cannot write the statement: {0}")]
    Write(#[from] std::io::Error),
}

/// The Amsterdam day of an instant.
pub fn amsterdam_day<Tz: chrono::TimeZone>(at: &DateTime<Tz>) -> NaiveDate {
    at.with_timezone(&Amsterdam).date_naive()
}

/// A movement waiting for its booking day.
#[derive(Debug, PartialEq, Eq)]
struct Pending {
    booking: NaiveDate,
    movement: Movement,
}

impl Ord for Pending {
    fn cmp(&self, other: &Pending) -> std::cmp::Ordering {
        (
            self.booking,
            self.movement.value_at,
            &self.movement.reference,
        )
            .cmp(&(
                other.booking,
                other.movement.value_at,
                &other.movement.reference,
            ))
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Pending) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Payments are read this many days of creation at a time (see [`issue`]).
const ISSUE_WINDOW: chrono::Duration = chrono::Duration::days(7);

/// The chain being issued.
struct Chain<'a> {
    request: &'a Request,
    number: u32,
    balance: Money,
    /// For an account's first statement: the movements its opening holds.
    opening_refs: Vec<Booking>,
    issued: Issued,
    /// Statements made while the ledger's payments stream (a store may hold its one connection
    /// for the stream), recorded and given once it ends ([`Chain::record_ready`]).
    ready: Vec<(IssuedStatement, Statement)>,
}

impl Chain<'_> {
    /// Makes the statement of `day` with `movements` (sorted), ready to record.
    fn issue_day(&mut self, day: NaiveDate, movements: Vec<Movement>) -> Result<(), BooksError> {
        let opening = self.balance;
        let mut closing = opening;
        let mut bookings = std::mem::take(&mut self.opening_refs);
        let mut entries = Vec::with_capacity(movements.len());
        for movement in movements {
            closing = add(closing, movement.amount, &movement.reference)?;
            bookings.push(Booking {
                reference: movement.reference.clone(),
                booked: Some((movement.kind, movement.amount)),
            });
            entries.push(Entry {
                value_date: amsterdam_day(&movement.value_at),
                payment_reference: movement
                    .payment_id
                    .as_deref()
                    .map(|id| id.split_once(':').map_or(id, |(_, own)| own).to_owned()),
                reference: movement.reference,
                kind: movement.kind,
                amount: movement.amount,
                counterparty: movement.counterparty,
                counterparty_iban: movement.counterparty_iban,
                description: movement.description,
            });
        }
        let statement = Statement {
            account: self.request.account.clone(),
            number: self.number,
            day,
            currency: opening.currency(),
            opening,
            closing,
            issued_at: self.request.now.fixed_offset(),
            entries,
        };
        let body = serde_json::to_string(&statement)
            .map_err(|e| std::io::Error::other(format!("cannot encode the statement: {e}")))?;
        self.ready.push((
            IssuedStatement {
                account: statement.account.clone(),
                number: statement.number,
                day,
                closing: closing.amount_string(),
                digest: digest(&body),
                body,
                issued_at: self.request.now,
                bookings,
            },
            statement.clone(),
        ));
        self.issued.new += 1;
        self.issued.entries += statement.entries.len() as u64;
        self.issued.closing = Some(closing);
        self.number += 1;
        self.balance = closing;
        Ok(())
    }

    /// Records each statement made (before it is given: a statement given was issued), then
    /// gives it to `sink`.
    async fn record_ready<L: Books + ?Sized>(
        &mut self,
        ledger: &L,
        sink: &mut impl FnMut(&Statement) -> std::io::Result<()>,
    ) -> Result<(), BooksError> {
        for (issued, statement) in std::mem::take(&mut self.ready) {
            ledger.issue(vec![issued]).await?;
            sink(&statement)?;
        }
        Ok(())
    }
}

/// What the statements booked so far, by the reference of each movement (its corrections
/// counted with it), and which of them a pass has seen again.
struct Booked {
    by_reference: HashMap<String, BookedMovement>,
    /// Corrections of movements seen changed.
    changed: Vec<Movement>,
}

struct BookedMovement {
    /// The kind and the amount booked in all (the movement and its corrections), when known.
    booked: Option<(payments_model::MovementKind, Money)>,
    /// How many corrections were booked.
    corrections: u32,
    seen: bool,
}

impl Booked {
    fn of(bookings: Vec<Booking>) -> Booked {
        let mut by_reference: HashMap<String, BookedMovement> = HashMap::new();
        let mut corrections = Vec::new();
        for booking in bookings {
            match correction_of(&booking.reference) {
                Some((base, n)) => corrections.push((base.to_owned(), n, booking.booked)),
                None => {
                    by_reference.insert(
                        booking.reference,
                        BookedMovement {
                            booked: booking.booked,
                            corrections: 0,
                            seen: false,
                        },
                    );
                }
            }
        }
        for (base, n, booked) in corrections {
            if let Some(movement) = by_reference.get_mut(&base) {
                movement.corrections = movement.corrections.max(n);
                movement.booked = match (movement.booked, booked) {
                    (Some((kind, sum)), Some((_, amount))) => {
                        sum.checked_add(amount).map(|sum| (kind, sum))
                    }
                    _ => None,
                };
            }
        }
        Booked {
            by_reference,
            changed: Vec::new(),
        }
    }

    /// Whether `movement` was booked before; if it was, and by another amount, its correction
    /// is kept for [`Booked::take_changed`].
    fn check(&mut self, movement: &Movement) -> bool {
        let Some(booked) = self.by_reference.get_mut(&movement.reference) else {
            return false;
        };
        booked.seen = true;
        if let Some((_, was)) = booked.booked
            && let Some(difference) = movement.amount.checked_add(was.negated())
            && !difference.is_zero()
        {
            booked.corrections += 1;
            booked.booked = Some((movement.kind, movement.amount));
            self.changed.push(Movement {
                reference: format!("{}/corr{}", movement.reference, booked.corrections),
                amount: difference,
                description: Some(format!(
                    "correction of {}: booked as {}, now {}",
                    movement.reference,
                    was.amount_string(),
                    movement.amount.amount_string()
                )),
                ..movement.clone()
            });
        }
        true
    }

    /// The corrections of the movements seen changed, valued at `at`.
    fn take_changed(&mut self, at: DateTime<chrono::FixedOffset>) -> Vec<Movement> {
        let mut out = std::mem::take(&mut self.changed);
        for correction in &mut out {
            correction.value_at = at;
        }
        out
    }

    /// The corrections, valued at `at`, of the movements booked and not seen (no longer a
    /// movement: a refund failed, a payment no longer paid or gone). One seen later after all
    /// (its creation moved) is then corrected back, as a change.
    fn gone(&mut self, at: DateTime<chrono::FixedOffset>) -> Vec<Movement> {
        let mut out = Vec::new();
        let mut gone: Vec<(&String, &mut BookedMovement)> = self
            .by_reference
            .iter_mut()
            .filter(|(_, booked)| !booked.seen)
            .collect();
        gone.sort_by(|a, b| a.0.cmp(b.0));
        for (reference, booked) in gone {
            let Some((kind, was)) = booked.booked.filter(|(_, was)| !was.is_zero()) else {
                continue;
            };
            booked.corrections += 1;
            booked.booked = Some((kind, Money::zero(was.currency())));
            out.push(Movement {
                reference: format!("{reference}/corr{}", booked.corrections),
                kind,
                value_at: at,
                amount: was.negated(),
                payment_id: None,
                counterparty: None,
                counterparty_iban: None,
                description: Some(format!(
                    "correction of {reference}: booked as {}, no longer a movement",
                    was.amount_string()
                )),
            });
        }
        out
    }
}

/// Places `movement`, booked on `booking`: on `heap` (true), or, booked before the range
/// asked for, as the range's `gap`, or left for a later range (after `last_day`).
fn place(
    heap: &mut BinaryHeap<Reverse<Pending>>,
    gap: &mut Option<NaiveDate>,
    request: &Request,
    last_day: NaiveDate,
    booking: NaiveDate,
    movement: Movement,
) -> bool {
    if booking > last_day {
        return false;
    }
    if booking < request.since {
        *gap = Some(gap.map_or(booking, |g| g.min(booking)));
        return false;
    }
    heap.push(Reverse(Pending { booking, movement }));
    true
}

/// The movement a correction's reference corrects, and the correction's number.
fn correction_of(reference: &str) -> Option<(&str, u32)> {
    let (base, n) = reference.rsplit_once("/corr")?;
    let n: u32 = n.parse().ok().filter(|n| *n > 0)?;
    (!base.is_empty()).then_some((base, n))
}

/// Refuses a range that would leave `gap`, a day with movements, unissued before it.
fn refuse_gap(gap: Option<NaiveDate>) -> Result<(), BooksError> {
    match gap {
        Some(gap) => Err(BooksError::Range(format!(
            "statements are issued in order and {gap} has movements not issued yet; ask with --since {gap}"
        ))),
        None => Ok(()),
    }
}

/// The instant an Amsterdam day begins.
fn midnight(day: NaiveDate) -> DateTime<Utc> {
    let local = day.and_time(chrono::NaiveTime::MIN);
    Amsterdam
        .from_local_datetime(&local)
        .earliest()
        .map_or_else(|| local.and_utc(), |at| at.to_utc())
}

fn add(balance: Money, amount: Money, reference: &str) -> Result<Money, BooksError> {
    balance
        .checked_add(amount)
        .ok_or_else(|| BooksError::Currency {
            reference: reference.to_owned(),
            found: amount.currency(),
            expected: balance.currency(),
        })
}

/// SHA-256 of `body`, lowercase hex.
pub fn digest(body: &str) -> String {
    Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Gives `sink` the statements of `request.since..=request.until`, in order: those issued
/// before as they were, and the days after the last one issued, issued now (each recorded
/// before it is given). Days from today (Amsterdam) on are left for later.
///
/// Memory stays flat in the ledger's size: payments are read as a stream in creation order, a
/// week of creation at a time; a movement is held only from its creation until its booking day
/// is complete, and a statement until its week is read. (The refunds, chargebacks and payouts
/// are read whole: a few for every hundred payments.)
pub async fn issue<L>(
    ledger: &L,
    request: &Request,
    mut sink: impl FnMut(&Statement) -> std::io::Result<()>,
) -> Result<Issued, BooksError>
where
    L: Ledger + Books + ?Sized,
{
    if request.until < request.since {
        return Err(BooksError::Range(format!(
            "--until {} is before --since {}",
            request.until, request.since
        )));
    }
    let account = &request.account;
    let issued = ledger.issued(account).await?;
    let mut result = Issued::default();
    for (expected, statement) in (1u32..).zip(&issued) {
        let damaged = |detail: String| BooksError::Damaged {
            account: account.clone(),
            number: statement.number,
            detail,
        };
        if statement.number != expected {
            return Err(damaged(format!("statement {expected} is missing")));
        }
        if !(request.since..=request.until).contains(&statement.day) {
            continue;
        }
        // Read one at a time: memory holds one statement, however many are given again.
        let body = ledger
            .statement_body(account, statement.number)
            .await?
            .ok_or_else(|| damaged("its body is missing".to_owned()))?;
        if digest(&body) != statement.digest {
            return Err(damaged("its digest does not match".to_owned()));
        }
        let again: Statement =
            serde_json::from_str(&body).map_err(|e| damaged(format!("its body: {e}")))?;
        sink(&again)?;
        result.again += 1;
        result.closing = Some(again.closing);
    }
    let today = amsterdam_day(&request.now);
    let last_day = request.until.min(today.pred_opt().unwrap_or(today));
    let last = issued.last();
    let first_issue = last.is_none();
    let open_day = match last {
        Some(last) => last.day.succ_opt().unwrap_or(last.day),
        None => request.since,
    };
    if last_day < open_day {
        return Ok(result);
    }
    let balance = match last {
        Some(last) => {
            Money::parse(&last.closing, request.opening_balance.currency()).map_err(|e| {
                BooksError::Damaged {
                    account: account.clone(),
                    number: last.number,
                    detail: format!("its closing balance: {e}"),
                }
            })?
        }
        None => request.opening_balance,
    };
    let mut booked = Booked::of(ledger.booked(account).await?);
    let mut chain = Chain {
        request,
        number: last.map_or(1, |last| last.number + 1),
        balance,
        opening_refs: Vec::new(),
        issued: result,
        ready: Vec::new(),
    };

    // The records (refunds, chargebacks, payouts: few beside the payments), in creation order.
    let mut records: Vec<(DateTime<Utc>, Movement)> = Vec::new();
    for kept in ledger.records(request.source).await? {
        let returned = kept.returned_at.map(|at| at.fixed_offset());
        for movement in record_movements(&kept.record, returned) {
            records.push((kept.record.created_at.to_utc(), movement));
        }
    }
    records.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.reference.cmp(&b.1.reference))
    });
    let mut records = records.into_iter().peekable();
    let mut heap: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut gap: Option<NaiveDate> = None;
    // Payments are read a window of creation days at a time, so that the statements a window
    // completes are recorded and given before the next is read (a store may hold its one
    // connection for a stream): memory holds one window's statements. The first window is
    // everything created before the first day to issue (it completes none); nothing created
    // after the last day can be booked on it.
    let end = midnight(last_day.succ_opt().unwrap_or(last_day));
    let mut window = (None, Some(midnight(open_day).min(end)));
    loop {
        let filter = Filter {
            sources: vec![request.source],
            since: window.0,
            until: window.1,
            ..Filter::default()
        };
        let mut payments = ledger.payments(&filter).await?;
        loop {
            // The next movement by creation: a payment's or a record's, whichever came first.
            let payment = payments.try_next().await?;
            let mut next: Vec<(DateTime<Utc>, Movement)> = Vec::new();
            while let Some((at, _)) = records.peek() {
                let later = match (&payment, window.1) {
                    (Some(payment), _) => *at > payment.created_at.to_utc(),
                    (None, Some(until)) => *at >= until,
                    (None, None) => false,
                };
                if later {
                    break;
                }
                next.extend(records.next());
            }
            if let Some(payment) = &payment
                && let Some(movement) = payment_movement(payment)
            {
                next.push((payment.created_at.to_utc(), movement));
            }
            for (created, movement) in next {
                // Every movement still to come is created after this one: the days before
                // this one's creation day are complete.
                emit_complete(&mut chain, &mut heap, amsterdam_day(&created))?;
                if booked.check(&movement) {
                    // Corrected on the first day not complete and not issued.
                    let booking = amsterdam_day(&created).max(open_day);
                    for correction in booked.take_changed(midnight(booking).fixed_offset()) {
                        if place(&mut heap, &mut gap, request, last_day, booking, correction) {
                            chain.issued.corrections += 1;
                        }
                    }
                    continue;
                }
                if movement.amount.currency() != request.opening_balance.currency() {
                    chain.issued.other_currency += 1;
                    continue;
                }
                let value_day = amsterdam_day(&movement.value_at);
                if first_issue && value_day < request.since {
                    chain.balance = add(chain.balance, movement.amount, &movement.reference)?;
                    chain.opening_refs.push(Booking {
                        reference: movement.reference,
                        booked: Some((movement.kind, movement.amount)),
                    });
                    continue;
                }
                let booking = value_day.max(open_day);
                place(&mut heap, &mut gap, request, last_day, booking, movement);
            }
            if payment.is_none() {
                break;
            }
        }
        drop(payments);
        if window.0.is_none() {
            // Every movement booked before was created before `open_day`: all are known now,
            // and no statement of the range is made yet.
            for correction in booked.gone(midnight(open_day).fixed_offset()) {
                if place(&mut heap, &mut gap, request, last_day, open_day, correction) {
                    chain.issued.corrections += 1;
                }
            }
        }
        let Some(until) = window.1.filter(|until| *until < end) else {
            break;
        };
        // A movement booked before `--since` is created before it: all of them are seen
        // before a statement is completed.
        refuse_gap(gap)?;
        chain.record_ready(ledger, &mut sink).await?;
        window = (Some(until), Some((until + ISSUE_WINDOW).min(end)));
    }
    refuse_gap(gap)?;
    emit_complete(&mut chain, &mut heap, NaiveDate::MAX)?;
    chain.record_ready(ledger, &mut sink).await?;
    Ok(chain.issued)
}

/// Makes the statement of every day in `heap` before `before`.
fn emit_complete(
    chain: &mut Chain<'_>,
    heap: &mut BinaryHeap<Reverse<Pending>>,
    before: NaiveDate,
) -> Result<(), BooksError> {
    while let Some(Reverse(first)) = heap.peek() {
        let day = first.booking;
        if day >= before {
            break;
        }
        let mut movements = Vec::new();
        while heap.peek().is_some_and(|Reverse(p)| p.booking == day) {
            if let Some(Reverse(pending)) = heap.pop() {
                movements.push(pending.movement);
            }
        }
        chain.issue_day(day, movements)?;
    }
    Ok(())
}

/// The default account identification of a source's balance: stable, so that a bookkeeping
/// package keeps it as one account.
pub fn default_account(source: Source) -> String {
    format!("{}-{}", source.as_str().to_uppercase(), "EUR")
}

/// The days of a month, for reports: its first day and the first day of the next.
pub fn month_days(year: i32, month: u32) -> Option<(NaiveDate, NaiveDate)> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    Some((first, next))
}
