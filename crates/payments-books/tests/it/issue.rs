//! Issuing day statements from a ledger (a memory store): the chain, issued statements given
//! again unchanged, a late movement booked on the next statement with its own value date, and
//! the order statements are issued in.

use chrono::{DateTime, NaiveDate, Utc};
use payments_books::{Request, Statement, issue};
use payments_model::{
    BookKind, BookRecord, Currency, Money, MovementKind, Payment, PaymentStatus, Source,
    parse_timestamp,
};
use payments_sync::{BookWalk, Books, Commit, KeptRecord, MemoryStore, RecordCommit, Store};

fn eur(cents: i64) -> Money {
    Money::from_minor(cents, Currency::EUR)
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, d).unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    parse_timestamp(text).unwrap().to_utc()
}

fn paid(id: &str, cents: i64, paid_at: &str) -> Payment {
    let paid_at = parse_timestamp(paid_at).unwrap();
    Payment {
        id: Source::PayPro.payment_id(id),
        source: Source::PayPro,
        source_id: id.to_owned(),
        status: PaymentStatus::Paid,
        provider_status: "paid".to_owned(),
        amount: eur(cents),
        refunded_amount: None,
        created_at: paid_at - chrono::Duration::minutes(5),
        paid_at: Some(paid_at),
        payer_name: Some("Ömer Yılmaz".to_owned()),
        description: Some(format!("order {id}")),
        method: Some("ideal".to_owned()),
        processor: "paypro".to_owned(),
        processor_reference: None,
        payment_link_id: None,
        customer_id: None,
        fail_reason: None,
        charged_back_amount: None,
    }
}

fn refund(id: &str, payment: &str, cents: i64, created_at: &str) -> BookRecord {
    BookRecord {
        kind: BookKind::Refund,
        id: Source::PayPro.payment_id(id),
        source: Source::PayPro,
        source_id: id.to_owned(),
        payment_id: Some(Source::PayPro.payment_id(payment)),
        state: "refunded".to_owned(),
        amount: eur(cents),
        fee: None,
        fee_vat: None,
        created_at: parse_timestamp(created_at).unwrap(),
        settled_at: None,
        description: None,
        reason: None,
        bank_account: None,
    }
}

async fn store_payments(store: &MemoryStore, payments: Vec<Payment>) {
    store
        .commit(Commit {
            source: "paypro".to_owned(),
            observed_at: Utc::now(),
            payments,
            rejected: Vec::new(),
            resolved: Vec::new(),
            groups: Vec::new(),
            unknown_words: Vec::new(),
            checkpoint: None,
        })
        .await
        .unwrap();
}

async fn store_records(store: &MemoryStore, records: Vec<BookRecord>) {
    store
        .commit_records(RecordCommit {
            source: "paypro".to_owned(),
            observed_at: Utc::now(),
            kind: BookKind::Refund,
            records: records
                .into_iter()
                .map(|record| KeptRecord {
                    record,
                    first_seen_at: Utc::now(),
                    returned_at: None,
                })
                .collect(),
            rejected: Vec::new(),
            walk: BookWalk::default(),
        })
        .await
        .unwrap();
}

fn request(since: u32, until: u32) -> Request {
    Request {
        source: Source::PayPro,
        account: "PAYPRO-EUR".to_owned(),
        since: day(since),
        until: day(until),
        opening_balance: eur(10_000),
        now: at("2026-11-01T12:00:00Z"),
    }
}

async fn statements(store: &MemoryStore, request: &Request) -> Vec<Statement> {
    let mut out = Vec::new();
    issue(store, request, |s| {
        out.push(s.clone());
        Ok(())
    })
    .await
    .unwrap();
    out
}

fn assert_chain(statements: &[Statement]) {
    for pair in statements.windows(2) {
        assert_eq!(pair[1].opening, pair[0].closing, "the balances chain");
        assert_eq!(pair[1].number, pair[0].number + 1);
    }
    for s in statements {
        let sum = s
            .entries
            .iter()
            .fold(s.opening, |sum, e| sum.checked_add(e.amount).unwrap());
        assert_eq!(
            sum, s.closing,
            "statement {}: Σ entries = closing − opening",
            s.number
        );
    }
}

#[tokio::test]
async fn statements_chain_are_given_again_unchanged_and_a_late_refund_goes_on_the_next() {
    let store = MemoryStore::new();
    store_payments(
        &store,
        vec![
            // Before the first day asked for: in the first statement's opening balance.
            paid("PP0", 700, "2026-09-30T10:00:00Z"),
            paid("PP1", 1_000, "2026-10-01T10:00:00Z"),
            // 23:30 UTC on 1 October is 2 October in Amsterdam.
            paid("PP2", 2_500, "2026-10-01T23:30:00Z"),
            paid("PP3", 1_250, "2026-10-03T08:00:00Z"),
        ],
    )
    .await;
    store_records(
        &store,
        vec![refund("PR1", "PP2", 500, "2026-10-02T15:00:00Z")],
    )
    .await;

    let first = statements(&store, &request(1, 3)).await;
    assert_eq!(
        first.iter().map(|s| (s.number, s.day)).collect::<Vec<_>>(),
        vec![(1, day(1)), (2, day(2)), (3, day(3))]
    );
    assert_eq!(first[0].opening, eur(10_700), "the opening holds PP0");
    assert_eq!(first[1].entries.len(), 2);
    assert_eq!(first[1].entries[1].kind, MovementKind::Refund);
    assert_eq!(first[1].entries[1].amount, eur(-500));
    assert_eq!(
        first[1].entries[0].payment_reference.as_deref(),
        Some("PP2")
    );
    assert_eq!(first[2].closing, eur(10_700 + 1_000 + 2_500 - 500 + 1_250));
    assert_chain(&first);

    // Asked again, and after the ledger learned more: the same statements.
    store_records(
        &store,
        vec![refund("PR2", "PP1", 300, "2026-10-01T12:00:00Z")],
    )
    .await;
    store_payments(&store, vec![paid("PP4", 4_000, "2026-10-05T09:00:00Z")]).await;
    assert_eq!(statements(&store, &request(1, 3)).await, first);

    // The late refund is booked on the next day not issued (4 October), with its own value
    // date; 5 October follows.
    let next = statements(&store, &request(4, 5)).await;
    assert_eq!(
        next.iter().map(|s| (s.number, s.day)).collect::<Vec<_>>(),
        vec![(4, day(4)), (5, day(5))]
    );
    let late = &next[0];
    assert_eq!(late.opening, first[2].closing);
    assert_eq!(late.entries.len(), 1);
    assert_eq!(late.entries[0].reference, "PR2");
    assert_eq!(late.entries[0].value_date, day(1));
    assert_eq!(late.entries[0].amount, eur(-300));
    let all = statements(&store, &request(1, 5)).await;
    assert_eq!(all.len(), 5);
    assert_eq!(&all[..3], &first[..]);
    assert_chain(&all);
}

#[tokio::test]
async fn statements_are_issued_in_order_and_today_is_left_for_later() {
    let store = MemoryStore::new();
    store_payments(
        &store,
        vec![
            paid("PP1", 1_000, "2026-10-01T10:00:00Z"),
            paid("PP2", 2_000, "2026-10-02T10:00:00Z"),
            paid("PP3", 3_000, "2026-10-03T10:00:00Z"),
        ],
    )
    .await;
    assert_eq!(statements(&store, &request(1, 1)).await.len(), 1);
    // 2 October has movements and no statement: 3 October cannot be issued before it.
    let refused = issue(&store, &request(3, 3), |_| Ok(())).await.unwrap_err();
    assert!(
        refused.to_string().contains("--since 2026-10-02"),
        "{refused}"
    );
    assert_eq!(
        store.issued("PAYPRO-EUR").await.unwrap().len(),
        1,
        "nothing issued"
    );
    // A day not over yet is not issued.
    let today = Request {
        now: at("2026-10-03T12:00:00Z"),
        ..request(2, 3)
    };
    let issued = statements(&store, &today).await;
    assert_eq!(
        issued.iter().map(|s| s.day).collect::<Vec<_>>(),
        vec![day(2)]
    );
}

#[tokio::test]
async fn a_month_issued_at_once_is_the_month_issued_in_pieces() {
    let mut payments: Vec<Payment> = (1..=25)
        .map(|d| {
            paid(
                &format!("PP{d}"),
                100 * i64::from(d),
                &format!("2026-10-{d:02}T10:00:00Z"),
            )
        })
        .collect();
    // Made on 2 October and paid on the 20th, weeks of creation later: booked on the 20th.
    let mut slow = paid("PPSLOW", 9_999, "2026-10-20T10:00:00Z");
    slow.created_at = parse_timestamp("2026-10-02T09:00:00Z").unwrap();
    payments.push(slow);
    let refunds = vec![refund("PR9", "PP9", 50, "2026-10-16T10:00:00Z")];

    let at_once = MemoryStore::new();
    store_payments(&at_once, payments.clone()).await;
    store_records(&at_once, refunds.clone()).await;
    let whole = statements(&at_once, &request(1, 25)).await;
    assert_eq!(whole.len(), 25);
    assert_chain(&whole);
    let twentieth = &whole[19];
    assert!(
        twentieth.entries.iter().any(|e| e.reference == "PPSLOW"),
        "{twentieth:?}"
    );

    let in_pieces = MemoryStore::new();
    store_payments(&in_pieces, payments).await;
    store_records(&in_pieces, refunds).await;
    let mut pieces = statements(&in_pieces, &request(1, 3)).await;
    pieces.extend(statements(&in_pieces, &request(4, 17)).await);
    pieces.extend(statements(&in_pieces, &request(18, 25)).await);
    assert_eq!(pieces, whole);
}

#[tokio::test]
async fn a_movement_in_another_currency_is_of_another_balance_and_not_on_these_statements() {
    let store = MemoryStore::new();
    let mut dollars = paid("PPUSD", 5_000, "2026-10-02T10:00:00Z");
    dollars.amount = Money::from_minor(5_000, Currency::from_code("USD").unwrap());
    store_payments(
        &store,
        vec![
            paid("PP1", 1_000, "2026-10-01T10:00:00Z"),
            dollars,
            paid("PP3", 3_000, "2026-10-03T10:00:00Z"),
        ],
    )
    .await;
    let mut given = Vec::new();
    let issued = issue(&store, &request(1, 3), |s| {
        given.push(s.clone());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(issued.other_currency, 1);
    assert_eq!(
        given.iter().map(|s| s.day).collect::<Vec<_>>(),
        vec![day(1), day(3)]
    );
    assert_chain(&given);
    assert_eq!(given[1].closing, eur(10_000 + 1_000 + 3_000));
}

#[tokio::test]
async fn a_booked_movement_that_changed_since_is_corrected_on_the_next_statement() {
    let store = MemoryStore::new();
    store_payments(
        &store,
        vec![
            paid("PP1", 1_000, "2026-10-01T10:00:00Z"),
            paid("PP2", 2_500, "2026-10-02T10:00:00Z"),
            paid("PP3", 1_250, "2026-10-03T10:00:00Z"),
        ],
    )
    .await;
    store_records(
        &store,
        vec![refund("PR1", "PP2", 500, "2026-10-02T15:00:00Z")],
    )
    .await;
    let first = statements(&store, &request(1, 3)).await;
    assert_eq!(first[2].closing, eur(10_000 + 1_000 + 2_500 - 500 + 1_250));

    // Since: the refund failed (its money came back), PP3 is no longer paid, PP1's amount
    // was read again as less (a hostile provider), and PP4 came in on the 4th.
    let mut failed = refund("PR1", "PP2", 500, "2026-10-02T15:00:00Z");
    failed.state = "failed".to_owned();
    store_records(&store, vec![failed]).await;
    let mut unpaid = paid("PP3", 1_250, "2026-10-03T10:00:00Z");
    unpaid.status = PaymentStatus::Failed;
    let mut less = paid("PP1", 900, "2026-10-01T10:00:00Z");
    less.description = Some("order PP1, read again".to_owned());
    store_payments(
        &store,
        vec![unpaid, less, paid("PP4", 4_000, "2026-10-04T09:00:00Z")],
    )
    .await;
    let mut next = Vec::new();
    let issued = issue(&store, &request(4, 5), |s| {
        next.push(s.clone());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(issued.corrections, 3);
    assert_eq!(next.len(), 1, "{next:?}");
    let day4 = &next[0];
    assert_eq!(day4.day, day(4));
    assert_eq!(day4.opening, first[2].closing);
    let mut corrections: Vec<(&str, Money, NaiveDate)> = day4
        .entries
        .iter()
        .filter(|e| e.reference.contains("/corr"))
        .map(|e| (e.reference.as_str(), e.amount, e.value_date))
        .collect();
    corrections.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        corrections,
        vec![
            ("PP1/corr1", eur(-100), day(4)),
            ("PP3/corr1", eur(-1_250), day(4)),
            ("PR1/corr1", eur(500), day(4)),
        ]
    );
    // The chain now closes at what the ledger holds.
    assert_eq!(day4.closing, eur(10_000 + 900 + 2_500 + 4_000));
    assert_chain(&[first.clone(), next.clone()].concat());

    // Asked again: the same; nothing is corrected twice.
    assert_eq!(
        statements(&store, &request(1, 5)).await,
        [first, next].concat()
    );
    store_payments(&store, vec![paid("PP5", 700, "2026-10-06T09:00:00Z")]).await;
    let later = statements(&store, &request(6, 6)).await;
    assert_eq!(later.len(), 1);
    assert!(
        later[0]
            .entries
            .iter()
            .all(|e| !e.reference.contains("/corr"))
    );
}
