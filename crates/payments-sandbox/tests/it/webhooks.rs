//! Webhook delivery: changes POSTed to a receiver, signed as each provider signs, with the
//! delivery faults on request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use hmac::{KeyInit, Mac};
use payments_sandbox::{Api, Sandbox, SandboxConfig, WebhookDelivery};
use serde_json::Value;
use sha2::Sha256;

const PAYPRO_SECRET: &str = "whsec_sandbox_paypro";
const MKP_SECRET: &str = "whsec_sandbox_mkp";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

type Inbox = Arc<Mutex<Vec<Received>>>;

/// A receiver on 127.0.0.1 that keeps every request and answers 204; its base URL.
async fn receiver() -> (String, Inbox) {
    async fn take(
        State(inbox): State<Inbox>,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        inbox.lock().unwrap().push(Received {
            path: uri.path().to_owned(),
            headers,
            body,
        });
        StatusCode::NO_CONTENT
    }
    let inbox = Inbox::default();
    let app = Router::new().fallback(take).with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, inbox)
}

async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig {
        mkp_links: 20,
        paypro_payments: 50,
        mkp_rate_limit: None,
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

fn delivery(base: &str) -> WebhookDelivery {
    WebhookDelivery {
        paypro_url: Some(format!("{base}/webhooks/paypro")),
        mkp_url: Some(format!("{base}/webhooks/mkp")),
        paypro_secret: Some(PAYPRO_SECRET.to_owned()),
        mkp_secret: Some(MKP_SECRET.to_owned()),
        ..WebhookDelivery::default()
    }
}

/// Checks a PayPro signature as a receiver must: HMAC-SHA256 over `"{timestamp}.{body}"`,
/// compared in constant time.
fn paypro_signed(received: &Received, secret: &str) -> bool {
    let header = |name: &str| received.headers.get(name).unwrap().to_str().unwrap();
    let (timestamp, signature) = (header("PayPro-Timestamp"), header("PayPro-Signature"));
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&received.body);
    signature.len() == 64
        && signature == signature.to_lowercase()
        && mac.verify_slice(&decode_hex(signature)).is_ok()
}

fn mkp_signed(received: &Received, secret: &str) -> bool {
    let signature = received.headers["X-Webhook-Signature"].to_str().unwrap();
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&received.body);
    mac.verify_slice(&decode_hex(signature)).is_ok()
}

fn decode_hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn unpaid_paypro_payment(sandbox: &Sandbox) -> String {
    sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.paid_at.is_none())
        .expect("the data set has an unpaid payment")
        .id
}

async fn settle(sandbox: &Sandbox) {
    assert!(sandbox.wait_for_webhooks(Duration::from_secs(10)).await);
}

#[tokio::test]
async fn paying_a_paypro_payment_delivers_its_event_signed() {
    let (base, inbox) = receiver().await;
    let sandbox = sandbox().await;
    sandbox.set_webhooks(Some(delivery(&base)));
    let payment = unpaid_paypro_payment(&sandbox);
    let event_id = sandbox.pay_paypro_payment(&payment).unwrap();
    settle(&sandbox).await;

    let received = inbox.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    let got = &received[0];
    assert_eq!(got.path, "/webhooks/paypro");
    assert!(paypro_signed(got, PAYPRO_SECRET));
    assert!(!paypro_signed(got, "whsec_other"));
    let timestamp: i64 = got.headers["PayPro-Timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
    let event: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(event["id"], event_id.as_str());
    assert_eq!(event["event_type"], "payment.paid");
    assert_eq!(event["payload"]["id"], payment.as_str());
    // The same event object as `/events` serves.
    assert_eq!(
        sandbox.paypro_events()[0].id,
        event_id,
        "the event tops the feed"
    );
    assert_eq!(
        event["_links"]["self"],
        format!("http://{}/paypro/events/{event_id}", sandbox.addr()).as_str()
    );

    let attempts = sandbox.webhook_deliveries();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].api, Api::PayPro);
    assert_eq!(attempts[0].about, event_id);
    assert_eq!(attempts[0].status, Some(204));
    assert!(!attempts[0].dropped && !attempts[0].mis_signed);
    assert!(!format!("{attempts:?}").contains(PAYPRO_SECRET));

    // A redelivery on request.
    assert!(sandbox.deliver_paypro_event(&event_id));
    assert!(!sandbox.deliver_paypro_event("EV_no_such_event"));
    settle(&sandbox).await;
    let received = inbox.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].body, received[0].body);
}

#[tokio::test]
async fn refunds_chargebacks_and_inserts_are_delivered_too() {
    let (base, inbox) = receiver().await;
    let sandbox = sandbox().await;
    sandbox.set_webhooks(Some(delivery(&base)));
    let paid = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.paid_at.is_some() && p.refunded_amount == 0 && p.state == "paid")
        .unwrap();
    sandbox.refund_paypro_payment(&paid.id, 1).unwrap();
    sandbox
        .charge_back_paypro_payment(&paid.id, 1, true)
        .unwrap();
    sandbox.insert_paypro_payment();
    // A silent change stays silent.
    sandbox.set_paypro_state(&paid.id, "paid", 0);
    settle(&sandbox).await;
    let kinds: Vec<String> = inbox
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["event_type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        ["refund.created", "chargeback.created", "payment.created"]
    );
}

#[tokio::test]
async fn paying_through_an_mkp_link_delivers_payment_link_paid_signed() {
    let (base, inbox) = receiver().await;
    let sandbox = sandbox().await;
    sandbox.set_webhooks(Some(delivery(&base)));
    let link = sandbox
        .mkp_links()
        .into_iter()
        .find(|l| l.status == "open")
        .unwrap();
    let payment = sandbox.add_mkp_payment(&link.id).unwrap();
    sandbox.set_mkp_payment_status(&payment, "paid");
    settle(&sandbox).await;
    let received = inbox.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].path, "/webhooks/mkp");
    assert!(mkp_signed(&received[0], MKP_SECRET));
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["type"], "payment-link-paid");
    assert_eq!(body["data"]["id"], link.id.as_str());
}

#[tokio::test]
async fn a_drop_rate_of_one_delivers_nothing() {
    let (base, inbox) = receiver().await;
    let sandbox = sandbox().await;
    sandbox.set_webhooks(Some(WebhookDelivery {
        drop_rate: 1.0,
        ..delivery(&base)
    }));
    sandbox.pay_paypro_payment(&unpaid_paypro_payment(&sandbox));
    settle(&sandbox).await;
    assert!(inbox.lock().unwrap().is_empty());
    let attempts = sandbox.webhook_deliveries();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].dropped);
    assert_eq!(attempts[0].status, None);
}

#[tokio::test]
async fn duplicate_three_delivers_three_copies() {
    let (base, inbox) = receiver().await;
    let sandbox = sandbox().await;
    sandbox.set_webhooks(Some(WebhookDelivery {
        duplicate: 3,
        ..delivery(&base)
    }));
    sandbox.pay_paypro_payment(&unpaid_paypro_payment(&sandbox));
    settle(&sandbox).await;
    let received = inbox.lock().unwrap().clone();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.body == received[0].body));
    assert!(received.iter().all(|r| paypro_signed(r, PAYPRO_SECRET)));
    let copies: Vec<u32> = sandbox
        .webhook_deliveries()
        .iter()
        .map(|a| a.copy)
        .collect();
    assert_eq!(copies, [1, 2, 3]);
}

#[tokio::test]
async fn mis_signed_copies_do_not_verify() {
    let (base, inbox) = receiver().await;
    let sandbox = sandbox().await;
    sandbox.set_webhooks(Some(WebhookDelivery {
        mis_sign_rate: 1.0,
        ..delivery(&base)
    }));
    sandbox.pay_paypro_payment(&unpaid_paypro_payment(&sandbox));
    settle(&sandbox).await;
    let received = inbox.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    assert!(!paypro_signed(&received[0], PAYPRO_SECRET));
    assert!(sandbox.webhook_deliveries()[0].mis_signed);
}

#[tokio::test]
async fn reordered_deliveries_all_arrive_and_a_delay_holds_them() {
    let (base, inbox) = receiver().await;
    let sandbox = sandbox().await;
    sandbox.set_webhooks(Some(WebhookDelivery {
        reorder: true,
        delay: Duration::from_millis(150),
        ..delivery(&base)
    }));
    let made = std::time::Instant::now();
    let ids: Vec<String> = (0..6).map(|_| sandbox.insert_paypro_payment()).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(inbox.lock().unwrap().is_empty(), "held for the delay");
    settle(&sandbox).await;
    assert!(made.elapsed() >= Duration::from_millis(150));
    let mut got: Vec<String> = inbox
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["payload"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_ne!(got, ids, "shuffled (deterministically, from the seed)");
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn an_unreachable_receiver_is_logged_and_the_api_does_not_wait() {
    let sandbox = sandbox().await;
    sandbox.set_webhooks(Some(delivery("http://127.0.0.1:9")));
    let started = std::time::Instant::now();
    sandbox.pay_paypro_payment(&unpaid_paypro_payment(&sandbox));
    assert!(started.elapsed() < Duration::from_millis(100));
    settle(&sandbox).await;
    let attempts = sandbox.webhook_deliveries();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, None);
    assert!(attempts[0].error.is_some());
}

#[tokio::test]
async fn churn_makes_changes_that_are_delivered() {
    let (base, inbox) = receiver().await;
    let sandbox = sandbox().await;
    sandbox.set_webhooks(Some(delivery(&base)));
    let made = (0..12).filter_map(|n| sandbox.churn(n)).count();
    assert!(made > 0);
    settle(&sandbox).await;
    assert_eq!(inbox.lock().unwrap().len(), made);
}

#[tokio::test]
async fn payouts_and_late_refunds_are_delivered_signed() {
    let (base, inbox) = receiver().await;
    let sandbox = sandbox().await;
    sandbox.set_webhooks(Some(delivery(&base)));
    let payout = sandbox.add_paypro_payout(1000, 25, 5).unwrap();
    sandbox.set_paypro_payout_state(&payout, "paid").unwrap();
    let paid = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.paid_at.is_some() && p.refunded_amount == 0 && p.state == "paid")
        .unwrap();
    let paid_at = chrono::DateTime::parse_from_rfc3339(paid.paid_at.as_deref().unwrap())
        .unwrap()
        .to_utc();
    sandbox
        .refund_paypro_payment_at(&paid.id, 1, paid_at + chrono::Duration::hours(1))
        .unwrap();
    settle(&sandbox).await;
    let received = inbox.lock().unwrap().clone();
    let bodies: Vec<Value> = received
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let kinds: Vec<&str> = bodies
        .iter()
        .map(|b| b["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["payout.created", "payout.paid", "refund.created"]);
    assert!(received.iter().all(|r| paypro_signed(r, PAYPRO_SECRET)));
    assert_eq!(bodies[0]["payload"]["type"], "payout");
    assert_eq!(bodies[0]["payload"]["id"], payout.as_str());
    assert_eq!(bodies[0]["payload"]["state"], "created");
    assert_eq!(bodies[1]["payload"]["state"], "paid");
    assert!(bodies[1]["payload"]["paid_at"].is_string());
    assert!(
        bodies[0]["payload"]["_links"]["self"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/paypro/payouts/{payout}"))
    );
}
