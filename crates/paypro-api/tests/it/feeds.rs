//! PayProClient's change feeds (`/events`, `/refunds`, `/chargebacks`) and `GET
//! /payments/{id}`, against the sandbox and an in-process mock server.

use std::time::Duration;

use payments_model::{Payment, PaymentStatus, SourceError};
use payments_sandbox::{Api, ContentFaults, OversizedPages, PayProPayload, Sandbox, SandboxConfig};
use paypro_api::{Chargeback, Event, EventPayload, PayProClient, Payout, Refund, map_payments};
use serde_json::json;
use serde_json::value::RawValue;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "pp_sandbox_key";
const DAY: u64 = 86_400;

fn client(base_url: &str, limit: u8) -> PayProClient {
    PayProClient::with_config(PayProClient::config(base_url, KEY))
        .unwrap()
        .with_limit(limit)
}

/// A sandbox of `payments` PayPro payments one day apart, anchored now: the oldest are months
/// old.
async fn sandbox_of_days(payments: usize) -> Sandbox {
    Sandbox::start(SandboxConfig {
        paypro_payments: payments,
        paypro_spacing: Duration::from_secs(DAY),
        anchor: payments_model::chrono::Utc::now(),
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

/// Every event of the feed from the top, page by page, with the `next` of each page.
async fn walk_events(client: &PayProClient) -> (Vec<Event>, Vec<Option<String>>) {
    let (mut at, mut events, mut nexts) = (None::<String>, Vec::new(), Vec::new());
    loop {
        let page = client.events_page(at.as_deref()).await.unwrap().value;
        assert!(page.rejected.is_empty(), "{:?}", page.rejected);
        events.extend(page.items);
        nexts.push(page.next.clone());
        match page.next {
            Some(next) => at = Some(next),
            None => return (events, nexts),
        }
    }
}

/// The sandbox's own payment record, mapped by this crate.
fn mapped(payment: &impl serde::Serialize) -> Payment {
    let raw = RawValue::from_string(serde_json::to_string(payment).unwrap()).unwrap();
    let mut mapped = map_payments(&[raw]);
    assert!(mapped.rejected.is_empty(), "{:?}", mapped.rejected);
    mapped.payments.remove(0)
}

fn refund(value: &impl serde::Serialize) -> Refund {
    serde_json::from_value::<paypro_api::PayProRefund>(serde_json::to_value(value).unwrap())
        .unwrap()
        .to_refund()
        .unwrap()
}

fn payout(value: &impl serde::Serialize) -> Payout {
    serde_json::from_value::<paypro_api::PayProPayout>(serde_json::to_value(value).unwrap())
        .unwrap()
        .to_payout()
        .unwrap()
}

fn chargeback(value: &impl serde::Serialize) -> Chargeback {
    serde_json::from_value::<paypro_api::PayProChargeback>(serde_json::to_value(value).unwrap())
        .unwrap()
        .to_chargeback()
        .unwrap()
}

#[tokio::test]
async fn the_event_feed_is_walked_page_by_page_and_every_payload_mapped() {
    let sandbox = sandbox_of_days(150).await;
    let client = client(&sandbox.paypro_base_url(), 40);
    let (events, nexts) = walk_events(&client).await;
    let expected = sandbox.paypro_events();
    assert!(expected.len() > 200, "several pages");
    assert_eq!(nexts.len(), expected.len().div_ceil(40));
    assert_eq!(
        events.iter().map(|e| &e.id).collect::<Vec<_>>(),
        expected.iter().map(|e| &e.id).collect::<Vec<_>>()
    );
    for (event, sent) in events.iter().zip(&expected) {
        assert_eq!(event.event_type, sent.event_type);
        assert_eq!(
            payments_model::format_timestamp(&event.created_at),
            sent.created_at
        );
        match (&event.payload, &sent.payload) {
            (EventPayload::Payment(p), PayProPayload::Payment(s)) => {
                assert_eq!(p.as_ref(), &mapped(s))
            }
            (EventPayload::Refund(r), PayProPayload::Refund(s)) => assert_eq!(r, &refund(s)),
            (EventPayload::Chargeback(c), PayProPayload::Chargeback(s)) => {
                assert_eq!(c, &chargeback(s));
                assert!(c.is_completed());
            }
            (EventPayload::Payout(p), PayProPayload::Payout(s)) => assert_eq!(p, &payout(s)),
            (
                EventPayload::Other {
                    payload_type,
                    payload_id,
                },
                PayProPayload::Customer(s),
            ) => {
                assert_eq!(payload_type.as_deref(), Some("customer"));
                assert_eq!(payload_id.as_deref(), Some(s.id.as_str()));
            }
            (got, sent) => panic!("{} mapped to {got:?} from {sent:?}", event.id),
        }
    }
    // Each page was one request, each cursor the one the page before linked to.
    let requests = sandbox.requests();
    assert_eq!(requests.len(), nexts.len());
    assert_eq!(requests[0].path_and_query, "/paypro/events?limit=40");
    for (request, next) in requests[1..].iter().zip(&nexts) {
        let next = next.as_deref().unwrap();
        assert!(next.starts_with("/events?limit=40&cursor="), "{next}");
        assert_eq!(request.path_and_query, format!("/paypro{next}"));
    }
}

#[tokio::test]
async fn a_late_chargeback_on_a_200_day_old_payment_tops_the_feed_and_leaves_the_payment() {
    let sandbox = sandbox_of_days(300).await;
    let old = sandbox
        .old_paid_paypro_payment(Duration::from_secs(200 * DAY))
        .unwrap();
    let client = client(&sandbox.paypro_base_url(), 100);
    let before = client.events_page(None).await.unwrap().value;
    let chargeback_id = sandbox
        .charge_back_paypro_payment(&old.id, old.amount, true)
        .unwrap();
    let after = client.events_page(None).await.unwrap().value;
    let top = &after.items[0];
    assert_eq!(top.event_type, "chargeback.created");
    let EventPayload::Chargeback(chargeback) = &top.payload else {
        panic!("{top:?}");
    };
    assert_eq!(chargeback.id, chargeback_id);
    assert_eq!(chargeback.payment_id, old.id);
    assert_eq!(
        chargeback.unified_payment_id(),
        format!("paypro:{}", old.id)
    );
    assert_eq!(chargeback.amount.to_minor(), Some(old.amount));
    assert!(chargeback.is_completed());
    assert!(chargeback.charged_back_at.is_some());
    // Below it, the feed as it was: what a reader stopped at is still there to stop at.
    assert_eq!(after.items[1..], before.items[..99]);
    // The chargeback listing has it on top; the payment by id is as it was.
    let chargebacks = client.chargebacks_page(None).await.unwrap().value;
    assert_eq!(&chargebacks.items[0], chargeback);
    let payment = client
        .payment(&old.id)
        .await
        .unwrap()
        .value
        .unwrap()
        .unwrap();
    assert_eq!(payment, mapped(&old));
    // A chargeback not yet completed says so.
    sandbox
        .charge_back_paypro_payment(&old.id, 100, false)
        .unwrap();
    let top = client
        .events_page(None)
        .await
        .unwrap()
        .value
        .items
        .remove(0);
    assert!(
        matches!(&top.payload, EventPayload::Chargeback(c) if !c.is_completed() && c.charged_back_at.is_none())
    );
}

#[tokio::test]
async fn a_late_refund_on_a_100_day_old_payment_is_in_the_feeds_and_the_payment() {
    let sandbox = sandbox_of_days(300).await;
    let old = sandbox
        .old_paid_paypro_payment(Duration::from_secs(100 * DAY))
        .unwrap();
    let created = payments_model::chrono::DateTime::parse_from_rfc3339(&old.created_at).unwrap();
    assert!(
        payments_model::chrono::Utc::now().fixed_offset() - created
            >= payments_model::chrono::Duration::days(100)
    );
    let client = client(&sandbox.paypro_base_url(), 10);
    let refund_id = sandbox.refund_paypro_payment(&old.id, 1).unwrap();
    let top = client
        .events_page(None)
        .await
        .unwrap()
        .value
        .items
        .remove(0);
    let EventPayload::Refund(refund) = &top.payload else {
        panic!("{top:?}");
    };
    assert_eq!(
        (refund.id.as_str(), refund.payment_id.as_str()),
        (refund_id.as_str(), old.id.as_str())
    );
    assert_eq!(refund.amount.amount_string(), "0.01");
    let refunds = client.refunds_page(None).await.unwrap().value;
    assert_eq!(&refunds.items[0], refund);
    let payment = client
        .payment(&old.id)
        .await
        .unwrap()
        .value
        .unwrap()
        .unwrap();
    assert_eq!(payment.refunded_amount.unwrap().amount_string(), "0.01");
    assert_eq!(payment.status, PaymentStatus::PartiallyRefunded);
}

#[tokio::test]
async fn refunds_and_chargebacks_are_listed_to_the_end() {
    let sandbox = sandbox_of_days(800).await;
    let client = client(&sandbox.paypro_base_url(), 9);
    let mut at = None::<String>;
    let mut refunds = Vec::new();
    loop {
        let page = client.refunds_page(at.as_deref()).await.unwrap().value;
        assert!(page.rejected.is_empty());
        refunds.extend(page.items);
        match page.next {
            Some(next) => at = Some(next),
            None => break,
        }
    }
    let expected: Vec<Refund> = sandbox.paypro_refunds().iter().map(refund).collect();
    assert!(expected.len() > 9, "several pages");
    assert_eq!(refunds, expected);
    let mut at = None::<String>;
    let mut chargebacks = Vec::new();
    loop {
        let page = client.chargebacks_page(at.as_deref()).await.unwrap().value;
        chargebacks.extend(page.items);
        match page.next {
            Some(next) => at = Some(next),
            None => break,
        }
    }
    let expected: Vec<Chargeback> = sandbox
        .paypro_chargebacks()
        .iter()
        .map(chargeback)
        .collect();
    assert!(expected.len() > 9, "several pages");
    assert_eq!(chargebacks, expected);
}

#[tokio::test]
async fn one_payment_by_id_is_found_missing_or_refused_unsent() {
    let sandbox = sandbox_of_days(20).await;
    let client = client(&sandbox.paypro_base_url(), 100);
    let listed = client.payments_page(None).await.unwrap().value.items;
    let found = client.payment(&listed[7].source_id).await.unwrap().value;
    assert_eq!(found, Some(Ok(listed[7].clone())));
    assert_eq!(
        client.payment("PPNOSUCHPAYMENT00").await.unwrap().value,
        None
    );
    assert_eq!(sandbox.count_status(Api::PayPro, 404), 1);
    let sent = sandbox.requests().len();
    for id in ["PP1/../customers", "PP1?limit=1", "", "PP 1", "PP%2F1"] {
        let err = client.payment(id).await.unwrap_err();
        assert!(
            matches!(&err, SourceError::Refused(m) if m.contains("not sent in a URL path") || m.contains("is empty")),
            "{id}: {err}"
        );
    }
    assert_eq!(sandbox.requests().len(), sent, "a refused id was sent");
}

#[tokio::test]
async fn a_feed_that_lost_its_oldest_events_ends_early_and_refuses_an_old_cursor() {
    let sandbox = sandbox_of_days(60).await;
    let client = client(&sandbox.paypro_base_url(), 20);
    let first = client.events_page(None).await.unwrap().value;
    let second = client
        .events_page(first.next.as_deref())
        .await
        .unwrap()
        .value;
    let deep = second.next.unwrap();
    sandbox.set_content_faults(ContentFaults {
        paypro_events_kept: Some(30),
        ..ContentFaults::default()
    });
    let (events, nexts) = walk_events(&client).await;
    assert_eq!(events.len(), 30);
    assert_eq!(nexts.len(), 2);
    assert_eq!(events[..20], first.items[..]);
    let err = client.events_page(Some(&deep)).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::Invalid { status: 422, message, .. } if message.contains("cursor")),
        "{err}"
    );
}

#[tokio::test]
async fn a_feed_page_over_the_body_cap_is_refused_unread() {
    let sandbox = Sandbox::start(SandboxConfig {
        paypro_payments: 50,
        content_faults: ContentFaults {
            paypro_oversized_pages: Some(OversizedPages {
                above_limit: 10,
                bytes: 200_000,
            }),
            ..ContentFaults::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let mut config = PayProClient::config(&sandbox.paypro_base_url(), KEY);
    config.max_body_bytes = 100_000;
    let big = PayProClient::with_config(config.clone()).unwrap();
    let err = big.events_page(None).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::BodyTooLarge { cap: 100_000, what, .. } if what == "/events?limit=100"),
        "{err}"
    );
    assert!(matches!(
        big.refunds_page(None).await.unwrap_err(),
        SourceError::BodyTooLarge { .. }
    ));
    let small = PayProClient::with_config(config).unwrap().with_limit(10);
    assert_eq!(small.events_page(None).await.unwrap().value.items.len(), 10);
}

/// What the mock server was asked for, path and query.
async fn sent(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| match r.url.query() {
            Some(query) => format!("{}?{query}", r.url.path()),
            None => r.url.path().to_owned(),
        })
        .collect()
}

fn fixture(name: &str, base: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/paypro")
            .join(name),
    )
    .unwrap()
    .replace("https://api.paypro.nl", base)
}

#[tokio::test]
async fn feed_pages_return_their_next_cursor_relative_to_the_base_and_refuse_other_listings() {
    let server = MockServer::start().await;
    let base = server.uri();
    let body = |name: &str| {
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/json")
            .set_body_string(fixture(name, &base))
    };
    Mock::given(method("GET"))
        .and(path("/events"))
        .and(wiremock::matchers::query_param_is_missing("cursor"))
        .respond_with(body("events-page-1.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/events"))
        .and(wiremock::matchers::query_param(
            "cursor",
            "YWZ0ZXI6RVYwMDAwMDAwMDAwMDAwMDA3",
        ))
        .respond_with(body("events-page-2-last.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/refunds"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "list", "data": [], "count": 0,
            "_links": {"next": format!("{base}/payments?limit=100&cursor=x")},
        })))
        .mount(&server)
        .await;
    let client = PayProClient::with_config(PayProClient::config(&base, "pp_mock_key")).unwrap();
    let first = client.events_page(None).await.unwrap().value;
    assert_eq!(first.items.len(), 14);
    assert_eq!(
        first.next.as_deref(),
        Some("/events?limit=100&cursor=YWZ0ZXI6RVYwMDAwMDAwMDAwMDAwMDA3")
    );
    let last = client
        .events_page(first.next.as_deref())
        .await
        .unwrap()
        .value;
    assert_eq!((last.items.len(), last.rejected.len()), (2, 5));
    assert_eq!(last.next, None);
    let err = client.refunds_page(None).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::Refused(m) if m.contains("another listing")),
        "{err}"
    );
    assert_eq!(
        sent(&server).await,
        [
            "/events?limit=100",
            "/events?limit=100&cursor=YWZ0ZXI6RVYwMDAwMDAwMDAwMDAwMDA3",
            "/refunds?limit=100"
        ]
    );
}

#[tokio::test]
async fn one_payment_by_id_reads_the_documented_object_its_404_and_refuses_another_payment() {
    let server = MockServer::start().await;
    let base = server.uri();
    let body = |status: u16, name: &str| {
        ResponseTemplate::new(status)
            .insert_header("content-type", "application/json")
            .set_body_string(fixture(name, &base))
    };
    Mock::given(method("GET"))
        .and(path("/payments/PPH25H07JYWLR7PA82"))
        .respond_with(body(200, "payment-PPH25H07JYWLR7PA82.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/payments/PPH25H07JYWLR7PA83"))
        .respond_with(body(200, "payment-PPH25H07JYWLR7PA83-unmappable.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/payments/PPNOSUCHPAYMENT00"))
        .respond_with(body(404, "error-404.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/payments/PPASKEDFOR"))
        .respond_with(body(200, "payment-PPH25H07JYWLR7PA82.json"))
        .mount(&server)
        .await;
    let client = PayProClient::with_config(PayProClient::config(&base, "pp_mock_key")).unwrap();
    let found = client.payment("PPH25H07JYWLR7PA82").await.unwrap().value;
    let payment = found.unwrap().unwrap();
    assert_eq!(payment.id, "paypro:PPH25H07JYWLR7PA82");
    assert_eq!(payment.amount.amount_string(), "10.00");
    let rejected = client
        .payment("PPH25H07JYWLR7PA83")
        .await
        .unwrap()
        .value
        .unwrap()
        .unwrap_err();
    assert_eq!(rejected.source_id.as_deref(), Some("PPH25H07JYWLR7PA83"));
    assert!(
        rejected.reason.contains("field `refunded_amount`"),
        "{}",
        rejected.reason
    );
    assert_eq!(
        client.payment("PPNOSUCHPAYMENT00").await.unwrap().value,
        None
    );
    let err = client.payment("PPASKEDFOR").await.unwrap_err();
    assert!(
        matches!(&err, SourceError::BadResponse { problem, .. } if problem.contains("PPH25H07JYWLR7PA82")),
        "{err}"
    );
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .all(|r| r.headers["authorization"] == "Bearer pp_mock_key")
    );
}
