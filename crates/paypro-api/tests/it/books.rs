//! Payouts (`/payouts`, `/payouts/{id}`), the balance (`/balances`) and the book listings of
//! `PayProSource` (refunds, chargebacks, payouts as `BookRecord`s), against the sandbox and an
//! in-process mock server.

use std::collections::HashSet;
use std::time::Duration;

use payments_http::WebhookSecret;
use payments_model::chrono::{DateTime, Utc};
use payments_model::{BookKind, BookRecord, Cursor, Hint, PaymentSource, SourceError};
use payments_sandbox::{Api, ContentFaults, OversizedPages, PayProPayload, Sandbox, SandboxConfig};
use paypro_api::{Chargeback, PayProClient, PayProPayout, PayProSource, Payout, Refund, webhook};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "pp_sandbox_key";
const DAY: u64 = 86_400;

fn client(base_url: &str, limit: u8) -> PayProClient {
    PayProClient::with_config(PayProClient::config(base_url, KEY))
        .unwrap()
        .with_limit(limit)
}

/// `payments` PayPro payments over the last `days` days, anchored now.
async fn history(payments: usize, days: u64) -> Sandbox {
    Sandbox::start(
        SandboxConfig {
            paypro_payments: payments,
            mkp_links: 0,
            anchor: Utc::now(),
            ..SandboxConfig::default()
        }
        .with_paypro_span(Duration::from_secs(days * DAY)),
    )
    .await
    .unwrap()
}

/// The sandbox's own payout record, mapped by this crate.
fn payout(value: &impl serde::Serialize) -> Payout {
    serde_json::from_value::<PayProPayout>(serde_json::to_value(value).unwrap())
        .unwrap()
        .to_payout()
        .unwrap()
}

fn refund(value: &impl serde::Serialize) -> Refund {
    serde_json::from_value::<paypro_api::PayProRefund>(serde_json::to_value(value).unwrap())
        .unwrap()
        .to_refund()
        .unwrap()
}

fn chargeback(value: &impl serde::Serialize) -> Chargeback {
    serde_json::from_value::<paypro_api::PayProChargeback>(serde_json::to_value(value).unwrap())
        .unwrap()
        .to_chargeback()
        .unwrap()
}

/// Every book record of `kind`, walked page by page, with the cursors the pages gave.
async fn walk_books(
    source: &PayProSource,
    kind: BookKind,
) -> Result<(Vec<BookRecord>, Vec<Cursor>), SourceError> {
    let (mut at, mut records, mut cursors) = (None::<Cursor>, Vec::new(), Vec::new());
    loop {
        let page = source.book_page(kind, at.as_ref()).await?;
        assert!(page.rejected.is_empty(), "{:?}", page.rejected);
        records.extend(page.records);
        match page.next {
            Some(next) => {
                cursors.push(next.clone());
                at = Some(next);
            }
            None => return Ok((records, cursors)),
        }
    }
}

#[tokio::test]
async fn payouts_are_paged_to_the_end_newest_first_and_read_by_id() {
    let sandbox = history(600, 120).await;
    let client = client(&sandbox.paypro_base_url(), 7);
    let (mut at, mut got, mut nexts) = (None::<String>, Vec::new(), Vec::new());
    loop {
        let page = client.payouts_page(at.as_deref()).await.unwrap().value;
        assert!(page.rejected.is_empty(), "{:?}", page.rejected);
        got.extend(page.items);
        nexts.push(page.next.clone());
        match page.next {
            Some(next) => at = Some(next),
            None => break,
        }
    }
    let expected: Vec<Payout> = sandbox.paypro_payouts().iter().map(payout).collect();
    assert!(expected.len() > 30, "{}", expected.len());
    assert_eq!(got, expected);
    assert!(got.windows(2).all(|w| w[0].created_at > w[1].created_at));
    assert!(got.iter().any(|p| p.fee.is_some_and(|f| !f.is_zero())));
    assert!(got.iter().all(|p| p.bank_account.is_some()));
    // Each page one request, each cursor the one the page before linked to.
    let requests = sandbox.requests();
    assert_eq!(requests.len(), nexts.len());
    assert_eq!(requests[0].path_and_query, "/paypro/payouts?limit=7");
    for (request, next) in requests[1..].iter().zip(&nexts) {
        let next = next.as_deref().unwrap();
        assert!(next.starts_with("/payouts?limit=7&cursor="), "{next}");
        assert_eq!(request.path_and_query, format!("/paypro{next}"));
    }

    // By id: as listed; unknown: none; an id that cannot go into a path: never sent.
    for listed in [&got[0], &got[got.len() / 2], got.last().unwrap()] {
        let one = client.payout(&listed.id).await.unwrap().value;
        assert_eq!(one, Some(Ok(listed.clone())));
    }
    assert_eq!(
        client.payout("PONOSUCHPAYOUT0000").await.unwrap().value,
        None
    );
    assert_eq!(sandbox.count_status(Api::PayPro, 404), 1);
    let sent = sandbox.requests().len();
    for id in ["PO1/../payments", "PO1?limit=1", "", "PO 1"] {
        let err = client.payout(id).await.unwrap_err();
        assert!(
            matches!(&err, SourceError::Refused(m) if m.contains("payout id")),
            "{id}: {err}"
        );
    }
    assert_eq!(sandbox.requests().len(), sent, "a refused id was sent");
}

#[tokio::test]
async fn the_balance_is_read_as_the_sandbox_holds_it_and_follows_a_late_refund() {
    let sandbox = history(600, 90).await;
    let source = PayProSource::new(client(&sandbox.paypro_base_url(), 100));
    let fetched = source.client().balances().await.unwrap().value;
    assert!(fetched.rejected.is_empty());
    assert_eq!(fetched.next, None);
    assert_eq!(fetched.items.len(), 1);
    let balance = fetched.items[0];
    assert_eq!(balance.amount.currency().code(), "EUR");
    assert_eq!(
        balance.amount.to_minor(),
        Some(sandbox.paypro_balance().amount)
    );
    assert_eq!(balance.pending.map(|p| p.is_zero()), Some(true));
    assert_eq!(
        source.balances().await.unwrap().unwrap().balances,
        vec![balance]
    );

    // A refund made on a day long past: the top refund record, valued on that day, and the
    // balance less by it.
    let old = sandbox
        .old_paid_paypro_payment(Duration::from_secs(70 * DAY))
        .unwrap();
    let paid_at: DateTime<Utc> = DateTime::parse_from_rfc3339(old.paid_at.as_deref().unwrap())
        .unwrap()
        .to_utc();
    let when = paid_at + payments_model::chrono::Duration::days(3);
    let id = sandbox
        .refund_paypro_payment_at(&old.id, 120, when)
        .unwrap();
    let top = source
        .book_page(BookKind::Refund, None)
        .await
        .unwrap()
        .records;
    let record = &top[0];
    assert_eq!(record.id, format!("paypro:{id}"));
    assert_eq!(record.payment_id, Some(format!("paypro:{}", old.id)));
    assert_eq!(record.created_at, when.fixed_offset());
    assert_eq!(record.settled_at, Some(when.fixed_offset()));
    assert_eq!(record.amount.to_minor(), Some(120));
    let after = source.balances().await.unwrap().unwrap().balances[0];
    assert_eq!(
        after.amount.to_minor(),
        Some(balance.amount.to_minor().unwrap() - 120)
    );
}

#[tokio::test]
async fn each_book_listing_is_walked_to_the_end_as_records_with_unified_ids() {
    let sandbox = history(800, 120).await;
    let source = PayProSource::new(client(&sandbox.paypro_base_url(), 9));
    assert_eq!(
        source.book_kinds(),
        [BookKind::Refund, BookKind::Chargeback, BookKind::Payout]
    );
    let expected = |kind: BookKind| -> Vec<BookRecord> {
        match kind {
            BookKind::Refund => sandbox
                .paypro_refunds()
                .iter()
                .map(|r| refund(r).into_record())
                .collect(),
            BookKind::Chargeback => sandbox
                .paypro_chargebacks()
                .iter()
                .map(|c| chargeback(c).into_record())
                .collect(),
            BookKind::Payout => sandbox
                .paypro_payouts()
                .iter()
                .map(|p| payout(p).into_record())
                .collect(),
        }
    };
    for kind in BookKind::ALL {
        let (records, cursors) = walk_books(&source, kind).await.unwrap();
        let want = expected(kind);
        assert!(want.len() > 9, "{kind}: several pages");
        assert_eq!(records, want, "{kind}");
        assert!(records.iter().all(|r| r.kind == kind));
        assert!(
            records
                .iter()
                .all(|r| r.id == format!("paypro:{}", r.source_id))
        );
        assert_eq!(
            records.iter().all(|r| r.payment_id.is_some()),
            kind != BookKind::Payout,
            "{kind}"
        );
        let listing = format!("/{kind}s?limit=9&cursor=");
        assert!(
            cursors.iter().all(|c| c
                .listing
                .as_deref()
                .is_some_and(|l| l.starts_with(&listing))),
            "{kind}: {cursors:?}"
        );
        assert_eq!(
            cursors.iter().collect::<HashSet<_>>().len(),
            cursors.len(),
            "{kind}: a cursor repeats"
        );
    }
    // The payouts carry what a statement needs: settled when paid, fee and VAT, the account.
    let (payouts, _) = walk_books(&source, BookKind::Payout).await.unwrap();
    for record in &payouts {
        assert_eq!(record.settled_at.is_some(), record.state == "paid");
        assert!(record.fee.is_some() && record.fee_vat.is_some());
        assert!(
            record
                .bank_account
                .as_ref()
                .is_some_and(|b| b.iban.is_some())
        );
    }
    // A cursor of one listing is refused for another, unread.
    let sent = sandbox.requests().len();
    let refunds = source.book_page(BookKind::Refund, None).await.unwrap();
    let err = source
        .book_page(BookKind::Payout, refunds.next.as_ref())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::BadCursor(m) if m.contains("/payouts")),
        "{err}"
    );
    assert_eq!(sandbox.requests().len(), sent + 1);
    // A cursor with nothing left: an empty last page, no request.
    let done = source
        .book_page(BookKind::Payout, Some(&Cursor::default()))
        .await
        .unwrap();
    assert_eq!((done.records.len(), done.next), (0, None));
    assert_eq!(sandbox.requests().len(), sent + 1);
}

#[tokio::test]
async fn a_book_page_over_the_body_cap_is_asked_for_again_smaller() {
    let sandbox = Sandbox::start(
        SandboxConfig {
            paypro_payments: 600,
            mkp_links: 0,
            anchor: Utc::now(),
            content_faults: ContentFaults {
                paypro_oversized_pages: Some(OversizedPages {
                    above_limit: 10,
                    bytes: 200_000,
                }),
                ..ContentFaults::default()
            },
            ..SandboxConfig::default()
        }
        .with_paypro_span(Duration::from_secs(120 * DAY)),
    )
    .await
    .unwrap();
    let mut config = PayProClient::config(&sandbox.paypro_base_url(), KEY);
    config.max_body_bytes = 100_000;
    let source = PayProSource::new(PayProClient::with_config(config).unwrap().with_limit(40));
    let (records, _) = walk_books(&source, BookKind::Payout).await.unwrap();
    let expected: Vec<String> = sandbox
        .paypro_payouts()
        .into_iter()
        .map(|p| format!("paypro:{}", p.id))
        .collect();
    assert_eq!(
        records.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        expected
    );
    let limits: Vec<String> = sandbox
        .requests()
        .into_iter()
        .map(|r| r.path_and_query)
        .take(3)
        .collect();
    assert!(
        limits[0].starts_with("/paypro/payouts?limit=40"),
        "{limits:?}"
    );
    assert!(
        limits[1].starts_with("/paypro/payouts?limit=20"),
        "{limits:?}"
    );
    assert!(
        limits[2].starts_with("/paypro/payouts?limit=10"),
        "{limits:?}"
    );
}

#[tokio::test]
async fn a_payout_event_of_the_feed_is_a_change_of_no_payment_and_its_webhook_wakes_a_run() {
    let sandbox = history(300, 30).await;
    let source = PayProSource::new(client(&sandbox.paypro_base_url(), 100));
    let id = sandbox.add_paypro_payout(500, 25, 5).unwrap();
    let top = source.changes(None).await.unwrap().changes.remove(0);
    assert!(
        matches!(&top.kind, payments_model::ChangeKind::Other { kind } if kind == "payout.created"),
        "{top:?}"
    );
    let events = source.client().events_page(None).await.unwrap().value;
    let paypro_api::EventPayload::Payout(mapped) = &events.items[0].payload else {
        panic!("{:?}", events.items[0]);
    };
    assert_eq!(mapped.id, id);
    assert_eq!(mapped.fee.unwrap().to_minor(), Some(25));
    // The sandbox's webhook body of that event, as PayPro would sign it.
    let event = sandbox
        .paypro_events()
        .into_iter()
        .find(|e| matches!(&e.payload, PayProPayload::Payout(p) if p.id == id))
        .unwrap();
    let body = serde_json::to_vec(&event).unwrap();
    let secret = WebhookSecret::new("whsec_books").unwrap();
    let now = Utc::now();
    let signature = webhook::sign(&secret, now.timestamp(), &body);
    let delivery = webhook::verify(
        Some(&secret),
        Some(&now.timestamp().to_string()),
        Some(&signature),
        &body,
        now,
    )
    .unwrap();
    assert_eq!(delivery.kind, "payout.created");
    assert_eq!(delivery.hints, vec![Hint::Feed]);
}

#[tokio::test]
async fn balances_the_api_does_not_have_are_none_and_an_unreadable_one_is_left_out() {
    let server = MockServer::start().await;
    let source = PayProSource::new(
        PayProClient::with_config(PayProClient::config(&server.uri(), "pp_mock_key")).unwrap(),
    );
    Mock::given(method("GET"))
        .and(path("/balances"))
        .respond_with(ResponseTemplate::new(404).set_body_json(serde_json::json!({
            "error": {"message": "Not found.", "type": "invalid_request"}
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    assert_eq!(source.balances().await.unwrap(), None);
    Mock::given(method("GET"))
        .and(path("/balances"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"type":"list","count":"2","_links":[],"data":[
                {"type":"balance","currency":"EUR","amount":"98765"},
                {"type":"balance","currency":"EUR","amount":1.5,"pending_amount":0}
            ]}"#,
        ))
        .mount(&server)
        .await;
    let balances = source.balances().await.unwrap().unwrap().balances;
    assert_eq!(balances.len(), 1);
    assert_eq!(balances[0].amount.amount_string(), "987.65");
    assert_eq!(balances[0].pending, None);
    let page = source.client().balances().await.unwrap().value;
    assert_eq!(page.rejected.len(), 1);
    assert!(
        page.rejected[0].reason.contains("field `amount`"),
        "{}",
        page.rejected[0].reason
    );
}
