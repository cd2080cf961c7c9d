//! Faults on one endpoint ([`EndpointFault`]) and a hostile PayPro change feed: chargebacks
//! checked against nothing, made in the past and corrected silently, provider text with control
//! characters, ids with any characters. Each over real loopback HTTP.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use payments_sandbox::{
    Api, ChargebackSpec, EndpointFault, FaultAnswer, PayProPayload, Sandbox, SandboxConfig,
};
use serde_json::{Value, json};

const MKP_KEY: &str = "mkp_sandbox_key";
const PAYPRO_KEY: &str = "pp_sandbox_key";

/// Control characters, an escape sequence, a line break and a NUL, as a hostile provider could
/// send them.
const HOSTILE: &str = "Bestelling\u{7}\u{1b}[31m rood\r\n=cmd|' /C calc'!A0\u{0}\u{7f}";

struct Answer {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

async fn get(url: &str, key: &str) -> Answer {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (content_type, retry_after) = (header("content-type"), header("retry-after"));
    Answer {
        status: response.status().as_u16(),
        content_type: content_type.unwrap_or_default(),
        retry_after,
        body: response.bytes().await.unwrap().to_vec(),
    }
}

async fn paypro(url: &str) -> Answer {
    get(url, PAYPRO_KEY).await
}

async fn paypro_ok(url: &str) -> Value {
    let answer = paypro(url).await;
    assert_eq!(answer.status, 200, "{url}");
    answer.json()
}

async fn start() -> Sandbox {
    Sandbox::start(SandboxConfig {
        mkp_links: 30,
        paypro_payments: 200,
        anchor: Utc::now(),
        mkp_rate_limit: None,
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

fn fault(api: Api, path: &str, answer: FaultAnswer, times: Option<u64>) -> EndpointFault {
    EndpointFault {
        api,
        path: path.to_owned(),
        answer,
        times,
        latency: Duration::ZERO,
    }
}

fn status(status: u16, retry_after: Option<Duration>, body: Option<&str>) -> FaultAnswer {
    FaultAnswer::Status {
        status,
        retry_after,
        body: body.map(str::to_owned),
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every record of a listing, following `_links.next` from `first`.
async fn walk(first: &str) -> Vec<Value> {
    let (mut url, mut records) = (first.to_owned(), Vec::new());
    loop {
        let page = paypro_ok(&url).await;
        records.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["_links"]["next"].as_str() {
            Some(next) => url = next.to_owned(),
            None => return records,
        }
    }
}

/// `text` with every byte but the unreserved ones percent-encoded, as a path segment.
fn escaped(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

#[tokio::test]
async fn a_status_fault_answers_its_status_retry_after_and_error_body_for_its_times() {
    let sandbox = start().await;
    let base = sandbox.paypro_base_url();
    sandbox.add_endpoint_fault(fault(
        Api::PayPro,
        "/events",
        status(429, Some(Duration::from_secs(60)), None),
        Some(2),
    ));
    for _ in 0..2 {
        let answer = paypro(&format!("{base}/events?limit=5")).await;
        assert_eq!(answer.status, 429);
        assert_eq!(answer.retry_after.as_deref(), Some("60"));
        assert_eq!(answer.content_type, "application/json");
        assert_eq!(
            answer.json(),
            json!({"error": {"message": "Too many requests.", "param": null, "type": "invalid_request"}})
        );
    }
    let answer = paypro(&format!("{base}/events?limit=5")).await;
    assert_eq!(answer.status, 200, "spent: the endpoint answers normally");
    assert_eq!(answer.retry_after, None);
    assert_eq!(paypro(&format!("{base}/refunds")).await.status, 200);
    assert_eq!(sandbox.count_status(Api::PayPro, 429), 2);
    let statuses: Vec<(String, u16)> = sandbox
        .requests()
        .into_iter()
        .map(|r| (r.path_and_query, r.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("/paypro/events?limit=5".to_owned(), 429),
            ("/paypro/events?limit=5".to_owned(), 429),
            ("/paypro/events?limit=5".to_owned(), 200),
            ("/paypro/refunds".to_owned(), 200),
        ]
    );

    // MKP: its own error body, or the body given; whole seconds, rounded up.
    let mkp = sandbox.mkp_base_url();
    sandbox.add_endpoint_fault(fault(
        Api::Mkp,
        "/payment-links",
        status(503, Some(Duration::from_millis(1500)), None),
        Some(1),
    ));
    sandbox.add_endpoint_fault(fault(
        Api::Mkp,
        "/payment-links",
        status(502, None, Some("<html><body>Bad gateway</body></html>")),
        Some(1),
    ));
    let answer = get(&format!("{mkp}/payment-links"), MKP_KEY).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.retry_after.as_deref(), Some("2"));
    assert_eq!(
        answer.json(),
        json!({"code": 503, "message": "Service Unavailable."})
    );
    let answer = get(&format!("{mkp}/payment-links?page=2"), MKP_KEY).await;
    assert_eq!(answer.status, 502);
    assert_eq!(answer.retry_after, None);
    assert!(answer.content_type.starts_with("text/html"));
    assert_eq!(answer.body, b"<html><body>Bad gateway</body></html>");
    assert_eq!(
        get(&format!("{mkp}/payment-links"), MKP_KEY).await.status,
        200
    );
    assert_eq!(sandbox.count_status(Api::Mkp, 503), 1);
    assert_eq!(sandbox.count_status(Api::Mkp, 502), 1);
}

#[tokio::test]
async fn a_fault_matches_its_api_and_path_and_a_trailing_star_every_path_below() {
    let sandbox = start().await;
    let base = sandbox.paypro_base_url();
    let id = sandbox.paypro_payments()[3].id.clone();
    sandbox.add_endpoint_fault(fault(
        Api::PayPro,
        "/payments/*",
        status(500, None, None),
        None,
    ));
    sandbox.add_endpoint_fault(fault(Api::Mkp, "/events", status(418, None, None), None));
    for _ in 0..3 {
        let answer = paypro(&format!("{base}/payments/{id}")).await;
        assert_eq!(answer.status, 500, "times: None is all of them");
        assert_eq!(answer.json()["error"]["message"], "Server Error");
    }
    assert_eq!(
        paypro(&format!("{base}/payments/PPNOSUCH")).await.status,
        500
    );
    assert_eq!(
        paypro(&format!("{base}/payments?limit=3")).await.status,
        200,
        "`/payments/*` is not the listing"
    );
    assert_eq!(
        paypro(&format!("{base}/events")).await.status,
        200,
        "a fault of the other API"
    );
    // Only the exact path, without a star: not a path below it.
    sandbox.clear_endpoint_faults();
    sandbox.add_endpoint_fault(fault(
        Api::Mkp,
        "/payment-links",
        status(500, None, None),
        None,
    ));
    let mkp = sandbox.mkp_base_url();
    let link = sandbox.mkp_links()[0].id.clone();
    assert_eq!(
        get(&format!("{mkp}/payment-links/{link}/payments"), MKP_KEY)
            .await
            .status,
        200
    );
    assert_eq!(
        get(&format!("{mkp}/payment-links?page=1"), MKP_KEY)
            .await
            .status,
        500,
        "the query is not part of the path"
    );
}

#[tokio::test]
async fn faults_answer_in_the_order_added_until_spent_and_clear_removes_them() {
    let sandbox = start().await;
    let url = format!("{}/chargebacks", sandbox.paypro_base_url());
    sandbox.add_endpoint_fault(fault(
        Api::PayPro,
        "/chargebacks",
        status(503, None, None),
        Some(1),
    ));
    sandbox.add_endpoint_fault(fault(
        Api::PayPro,
        "/chargebacks",
        status(429, Some(Duration::from_secs(5)), None),
        Some(2),
    ));
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(paypro(&url).await.status);
    }
    assert_eq!(seen, [503, 429, 429, 200]);

    sandbox.add_endpoint_fault(fault(
        Api::PayPro,
        "/chargebacks",
        status(500, None, None),
        None,
    ));
    assert_eq!(paypro(&url).await.status, 500);
    sandbox.clear_endpoint_faults();
    assert_eq!(paypro(&url).await.status, 200);
    assert_eq!(sandbox.count_status(Api::PayPro, 500), 1);
}

#[tokio::test]
async fn latency_slows_the_matching_requests_and_stays_once_spent() {
    let sandbox = start().await;
    let base = sandbox.paypro_base_url();
    let latency = Duration::from_millis(1200);
    sandbox.add_endpoint_fault(EndpointFault {
        latency,
        ..fault(Api::PayPro, "/refunds", status(503, None, None), Some(1))
    });
    let started = Instant::now();
    assert_eq!(paypro(&format!("{base}/refunds")).await.status, 503);
    assert!(started.elapsed() >= latency, "{:?}", started.elapsed());
    let started = Instant::now();
    assert_eq!(paypro(&format!("{base}/refunds")).await.status, 200);
    assert!(
        started.elapsed() >= latency,
        "the latency stays: {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_eq!(paypro(&format!("{base}/events")).await.status, 200);
    assert!(
        started.elapsed() < latency,
        "another endpoint is not slowed: {:?}",
        started.elapsed()
    );

    // A slow endpoint: the normal answer, late.
    sandbox.add_endpoint_fault(EndpointFault {
        latency,
        ..fault(Api::Mkp, "/payment-links", FaultAnswer::Normal, None)
    });
    let started = Instant::now();
    let answer = get(
        &format!("{}/payment-links", sandbox.mkp_base_url()),
        MKP_KEY,
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["current_page"], 1);
    assert!(started.elapsed() >= latency, "{:?}", started.elapsed());
}

#[tokio::test]
async fn repeat_next_points_each_listing_at_the_page_just_served() {
    let sandbox = start().await;
    let base = sandbox.paypro_base_url();
    sandbox.charge_back_paypro_payment(
        &sandbox
            .paypro_payments()
            .into_iter()
            .find(|p| p.state == "paid")
            .unwrap()
            .id,
        1,
        true,
    );
    for listing in ["events", "refunds", "chargebacks", "payments"] {
        sandbox.add_endpoint_fault(fault(
            Api::PayPro,
            &format!("/{listing}"),
            FaultAnswer::RepeatNext,
            Some(2),
        ));
        let first = format!("{base}/{listing}?limit=2");
        let page = paypro_ok(&first).await;
        assert_eq!(page["_links"]["next"], first, "{listing}");
        assert_eq!(page["_links"]["next"], page["_links"]["self"], "{listing}");
        // Following it serves the very page again, still looping.
        let again = paypro_ok(page["_links"]["next"].as_str().unwrap()).await;
        assert_eq!(ids(&again), ids(&page), "{listing}");
        assert_eq!(again["_links"]["next"], first, "{listing}");
        // Spent: the next link moves on.
        let third = paypro_ok(&first).await;
        assert_eq!(ids(&third), ids(&page), "{listing}");
        let next = third["_links"]["next"].as_str().unwrap();
        assert_ne!(next, first, "{listing}");
        let second = paypro_ok(next).await;
        assert_ne!(ids(&second), ids(&page), "{listing}");
        assert_ne!(
            second["_links"]["next"], second["_links"]["self"],
            "{listing}"
        );
    }
    // A page further on repeats its own cursor.
    let top = paypro_ok(&format!("{base}/events?limit=3")).await;
    let next = top["_links"]["next"].as_str().unwrap();
    sandbox.add_endpoint_fault(fault(
        Api::PayPro,
        "/events",
        FaultAnswer::RepeatNext,
        Some(1),
    ));
    let page = paypro_ok(next).await;
    assert_eq!(page["_links"]["next"], next);

    // MKP: `next_page_url` is this page.
    let mkp = sandbox.mkp_base_url();
    sandbox.add_endpoint_fault(fault(
        Api::Mkp,
        "/payment-links",
        FaultAnswer::RepeatNext,
        Some(1),
    ));
    let answer = get(&format!("{mkp}/payment-links?page=2"), MKP_KEY).await;
    assert_eq!(
        answer.json()["next_page_url"],
        format!("{mkp}/payment-links?page=2")
    );
    let answer = get(&format!("{mkp}/payment-links?page=2"), MKP_KEY).await;
    assert_eq!(
        answer.json()["next_page_url"],
        Value::Null,
        "the last page, spent"
    );
}

#[tokio::test]
async fn not_json_answers_200_with_an_html_page() {
    let sandbox = start().await;
    let base = sandbox.paypro_base_url();
    sandbox.add_endpoint_fault(fault(
        Api::PayPro,
        "/payments",
        FaultAnswer::NotJson,
        Some(1),
    ));
    let answer = paypro(&format!("{base}/payments?limit=10")).await;
    assert_eq!(answer.status, 200);
    assert!(answer.content_type.starts_with("text/html"));
    assert!(answer.body.starts_with(b"<html>"));
    assert!(serde_json::from_slice::<Value>(&answer.body).is_err());
    let answer = paypro(&format!("{base}/payments?limit=10")).await;
    assert_eq!(ids(&answer.json()).len(), 10);
    assert_eq!(sandbox.count_status(Api::PayPro, 200), 2);
    // Answered in front of the API: before the key is even looked at.
    sandbox.add_endpoint_fault(fault(Api::Mkp, "/*", FaultAnswer::NotJson, Some(1)));
    let mkp = sandbox.mkp_base_url();
    let answer = get(&format!("{mkp}/payment-links"), "wrong").await;
    assert_eq!(answer.status, 200);
    assert!(answer.body.starts_with(b"<html>"));
    assert_eq!(
        get(&format!("{mkp}/payment-links"), "wrong").await.status,
        401
    );
}

#[tokio::test]
async fn an_added_chargeback_is_checked_against_nothing_and_served_as_specified() {
    let sandbox = start().await;
    let base = sandbox.paypro_base_url();
    let unpaid = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.paid_at.is_none())
        .unwrap();
    assert_eq!(
        sandbox.add_paypro_chargeback(ChargebackSpec {
            payment_id: "PPNOSUCHPAYMENT000".to_owned(),
            amount: 1,
            currency: None,
            completed: true,
            at: None,
        }),
        None
    );
    let oversized = sandbox
        .add_paypro_chargeback(ChargebackSpec {
            payment_id: unpaid.id.clone(),
            amount: unpaid.amount * 10 + 1,
            currency: Some("USD".to_owned()),
            completed: false,
            at: None,
        })
        .unwrap();
    let top = paypro_ok(&format!("{base}/chargebacks?limit=1")).await;
    let chargeback = &top["data"][0];
    assert_eq!(chargeback["id"], oversized);
    assert_eq!(chargeback["payment"], unpaid.id);
    assert_eq!(chargeback["amount"], unpaid.amount * 10 + 1);
    assert_eq!(chargeback["currency"], "USD");
    assert_eq!(chargeback["state"], "processing");
    assert_eq!(chargeback["charged_back_at"], Value::Null);
    let made = at(chargeback["created_at"].as_str().unwrap());
    assert!((Utc::now() - made).num_seconds() < 5, "now: {made}");
    let events = paypro_ok(&format!("{base}/events?limit=1")).await;
    let event = &events["data"][0];
    assert_eq!(event["event_type"], "chargeback.created");
    assert_eq!(event["payload"]["id"], oversized);
    assert_eq!(event["payload"]["amount"], chargeback["amount"]);
    assert_eq!(event["payload"]["currency"], "USD");
    assert_eq!(
        sandbox.paypro_payment(&unpaid.id),
        Some(unpaid.clone()),
        "the payment is served unchanged"
    );

    // Without a currency: the payment's; completed: charged back when made.
    let paid = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.paid_at.is_some())
        .unwrap();
    let completed = sandbox
        .add_paypro_chargeback(ChargebackSpec {
            payment_id: paid.id.clone(),
            amount: paid.amount,
            currency: None,
            completed: true,
            at: None,
        })
        .unwrap();
    let listed = sandbox.paypro_chargebacks();
    assert_eq!(listed[0].id, completed);
    assert_eq!(listed[0].currency, paid.currency);
    assert_eq!(listed[0].state, "completed");
    assert_eq!(
        listed[0].charged_back_at.as_ref(),
        Some(&listed[0].created_at)
    );
    assert_eq!(listed[1].id, oversized);
}

#[tokio::test]
async fn a_chargeback_made_in_the_past_lists_below_newer_run_time_items() {
    let sandbox = start().await;
    let base = sandbox.paypro_base_url();
    let paid: Vec<_> = sandbox
        .paypro_payments()
        .into_iter()
        .filter(|p| p.state == "paid" && p.refunded_amount == 0)
        .take(3)
        .collect();
    let now = Utc::now();
    let spec = |payment: usize, hours: i64| ChargebackSpec {
        payment_id: paid[payment].id.clone(),
        amount: 100,
        currency: None,
        completed: true,
        at: Some(now - chrono::Duration::hours(hours)),
    };
    // Run-time items: one made two hours ago, one now.
    let two_hours = sandbox.add_paypro_chargeback(spec(0, 2)).unwrap();
    let newest = sandbox
        .charge_back_paypro_payment(&paid[1].id, 100, true)
        .unwrap();
    let generated_top = sandbox.paypro_events()[2].id.clone();
    // A reader has read every run-time event, and holds the cursor after them.
    let page = paypro_ok(&format!("{base}/events?limit=2")).await;
    let read: Vec<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(read, [newest.clone(), two_hours.clone()]);
    let cursor = page["_links"]["next"].as_str().unwrap().to_owned();

    // Made an hour ago: between the two; three hours ago: below both.
    let one_hour = sandbox.add_paypro_chargeback(spec(2, 1)).unwrap();
    let three_hours = sandbox.add_paypro_chargeback(spec(2, 3)).unwrap();
    let chargebacks: Vec<String> = sandbox
        .paypro_chargebacks()
        .into_iter()
        .take(4)
        .map(|c| c.id)
        .collect();
    assert_eq!(
        chargebacks,
        [&newest, &one_hour, &two_hours, &three_hours].map(String::clone)
    );
    let served = walk(&format!("{base}/chargebacks?limit=3")).await;
    let served_ids: Vec<&str> = served.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        served_ids[..4],
        chargebacks.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let one_hour_served = served.iter().find(|c| c["id"] == one_hour).unwrap();
    let made = now - chrono::Duration::hours(1);
    assert_eq!(
        at(one_hour_served["created_at"].as_str().unwrap()),
        made.trunc_subsecs_utc()
    );
    assert_eq!(
        one_hour_served["charged_back_at"],
        one_hour_served["created_at"]
    );

    // The reader past that point goes on with the generated events: the hour-old one is not
    // ahead of it, the three-hour-old one is.
    let next = paypro_ok(&cursor).await;
    let payloads: Vec<&str> = next["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(payloads[0], three_hours);
    assert!(!payloads.contains(&one_hour.as_str()));
    assert_eq!(next["data"][1]["id"], generated_top);
    // Reading back from the top finds it, in its place.
    let top = paypro_ok(&format!("{base}/events?limit=4")).await;
    let top: Vec<&str> = top["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        top,
        [&newest, &one_hour, &two_hours, &three_hours].map(String::as_str)
    );
    let event = sandbox
        .paypro_events()
        .into_iter()
        .find(|e| matches!(&e.payload, PayProPayload::Chargeback(c) if c.id == one_hour))
        .unwrap();
    assert_eq!(at(&event.created_at), made.trunc_subsecs_utc());
}

/// `at` to the whole second, as the wire writes it.
trait TruncSubsecs {
    fn trunc_subsecs_utc(self) -> DateTime<Utc>;
}

impl TruncSubsecs for DateTime<Utc> {
    fn trunc_subsecs_utc(self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.timestamp(), 0).unwrap()
    }
}

#[tokio::test]
async fn a_corrected_chargeback_changes_only_the_chargebacks_listing() {
    let sandbox = start().await;
    let base = sandbox.paypro_base_url();
    let paid = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.state == "paid" && p.amount > 500)
        .unwrap();
    let added = sandbox
        .add_paypro_chargeback(ChargebackSpec {
            payment_id: paid.id.clone(),
            amount: 500,
            currency: None,
            completed: true,
            at: None,
        })
        .unwrap();
    let late = sandbox
        .charge_back_paypro_payment(&paid.id, 200, false)
        .unwrap();
    let events_before = sandbox.paypro_events();
    assert!(sandbox.correct_paypro_chargeback(&added, 50_000, Some("GBP")));
    assert!(sandbox.correct_paypro_chargeback(&late, 7, None));
    assert!(!sandbox.correct_paypro_chargeback("PCNOSUCH", 1, None));
    let chargebacks = paypro_ok(&format!("{base}/chargebacks?limit=2")).await;
    assert_eq!(ids(&chargebacks), [late.clone(), added.clone()]);
    assert_eq!(chargebacks["data"][0]["amount"], 7);
    assert_eq!(chargebacks["data"][0]["currency"], "EUR", "None keeps it");
    assert_eq!(chargebacks["data"][0]["state"], "processing");
    assert_eq!(chargebacks["data"][1]["amount"], 50_000);
    assert_eq!(chargebacks["data"][1]["currency"], "GBP");
    // Silently: no new event, and the events say what they said.
    assert_eq!(sandbox.paypro_events(), events_before);
    let events = paypro_ok(&format!("{base}/events?limit=2")).await;
    assert_eq!(events["data"][0]["payload"]["amount"], 200);
    assert_eq!(events["data"][1]["payload"]["amount"], 500);
    assert_eq!(events["data"][1]["payload"]["currency"], "EUR");
}

#[tokio::test]
async fn paypro_text_is_served_in_every_listing_and_by_id() {
    let sandbox = start().await;
    let base = sandbox.paypro_base_url();
    // A paid payment whose customer has a `customer.created` event.
    let events = sandbox.paypro_events();
    let payment = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| {
            p.paid_at.is_some()
                && events.iter().any(|e| {
                    matches!(&e.payload, PayProPayload::Customer(c) if Some(&c.id) == p.customer.as_ref())
                })
        })
        .unwrap();
    let customer = payment.customer.clone().unwrap();
    let name = "Jan\u{8}\u{8}\u{8}Piet\u{1b}]0;titel\u{7} de\tVries\u{2028}";
    sandbox.set_paypro_text(&payment.id, Some(HOSTILE), Some(name));

    let one = paypro_ok(&format!("{base}/payments/{}", payment.id)).await;
    assert_eq!(one["description"], HOSTILE);
    let listed = walk(&format!("{base}/payments?limit=100")).await;
    let in_list = listed.iter().find(|p| p["id"] == payment.id).unwrap();
    assert_eq!(in_list, &one);
    assert_eq!(
        sandbox.paypro_payment(&payment.id).unwrap().description,
        HOSTILE
    );
    let served_events = walk(&format!("{base}/events?limit=100")).await;
    let of_payment: Vec<&Value> = served_events
        .iter()
        .filter(|e| e["payload"]["type"] == "payment" && e["payload"]["id"] == payment.id)
        .collect();
    assert_eq!(of_payment.len(), 2, "payment.created and payment.paid");
    assert!(
        of_payment
            .iter()
            .all(|e| e["payload"]["description"] == HOSTILE)
    );
    let of_customer = served_events
        .iter()
        .find(|e| e["event_type"] == "customer.created" && e["payload"]["id"] == customer)
        .unwrap();
    assert_eq!(of_customer["payload"]["name"], name);
    assert!(
        served_events
            .iter()
            .filter(|e| e["event_type"] == "customer.created" && e["payload"]["id"] != customer)
            .all(|e| e["payload"].get("name").is_none()),
        "other customers have no name"
    );
    // Other payments keep their text; `None` keeps what is there.
    assert!(
        listed
            .iter()
            .filter(|p| p["id"] != payment.id)
            .all(|p| p["description"].as_str().unwrap().starts_with("Order #"))
    );
    sandbox.set_paypro_text(&payment.id, None, None);
    let one = paypro_ok(&format!("{base}/payments/{}", payment.id)).await;
    assert_eq!(one["description"], HOSTILE);
}

#[tokio::test]
async fn mkp_text_is_served_on_the_link_and_its_payment() {
    let sandbox = start().await;
    let base = sandbox.mkp_base_url();
    let link = sandbox
        .mkp_links()
        .into_iter()
        .find(|l| sandbox.mkp_payments(&l.id).len() >= 2)
        .unwrap();
    let payments = sandbox.mkp_payments(&link.id);
    let name = "Ren\u{e9}e\u{0}\u{1b}[2J\r\n<script>alert(1)</script>";
    sandbox.set_mkp_text(&link.id, Some(HOSTILE), Some(&payments[1].id), Some(name));

    let one = get(&format!("{base}/payment-links/{}", link.id), MKP_KEY).await;
    assert_eq!(one.json()["description"], HOSTILE);
    let mut listed = Vec::new();
    for page in 1..=2 {
        let answer = get(&format!("{base}/payment-links?page={page}"), MKP_KEY).await;
        listed.extend(answer.json()["data"].as_array().unwrap().iter().cloned());
    }
    let in_list = listed.iter().find(|l| l["id"] == link.id).unwrap();
    assert_eq!(in_list, &one.json());
    assert_eq!(
        sandbox
            .mkp_links()
            .into_iter()
            .find(|l| l.id == link.id)
            .unwrap()
            .description
            .as_deref(),
        Some(HOSTILE)
    );
    let page = get(
        &format!("{base}/payment-links/{}/payments", link.id),
        MKP_KEY,
    )
    .await;
    let served = page.json()["data"].as_array().unwrap().clone();
    assert_eq!(served[1]["id"], payments[1].id);
    assert_eq!(served[1]["payersName"], name);
    assert_eq!(
        served[0]["payersName"],
        json!(payments[0].payers_name),
        "only that payment"
    );
    assert_eq!(
        sandbox.mkp_payments(&link.id)[1].payers_name.as_deref(),
        Some(name)
    );

    // Only the link's description; the payment's name stays.
    sandbox.set_mkp_text(&link.id, Some("plain"), None, None);
    let one = get(&format!("{base}/payment-links/{}", link.id), MKP_KEY).await;
    assert_eq!(one.json()["description"], "plain");
    assert_eq!(
        sandbox.mkp_payments(&link.id)[1].payers_name.as_deref(),
        Some(name)
    );
}

#[tokio::test]
async fn a_payment_inserted_with_any_id_tops_the_list_and_is_read_by_its_escaped_id() {
    let sandbox = start().await;
    let base = sandbox.paypro_base_url();
    let id = "PP/../x?y=1&z=%41 #\u{1}\u{e9}\u{1b}";
    assert_eq!(sandbox.insert_paypro_payment_with_id(id), id);
    let top = paypro_ok(&format!("{base}/payments?limit=1")).await;
    assert_eq!(ids(&top), [id]);
    assert_eq!(sandbox.paypro_payments()[0].id, id);
    assert_eq!(sandbox.paypro_payment(id).unwrap().state, "open");
    let events = sandbox.paypro_events();
    assert_eq!(events[0].event_type, "payment.created");
    assert!(matches!(&events[0].payload, PayProPayload::Payment(p) if p.id == id));
    // Its cursor leads on to the rest.
    let next = paypro_ok(top["_links"]["next"].as_str().unwrap()).await;
    assert_eq!(ids(&next), [sandbox.paypro_payments()[1].id.clone()]);
    // By id, escaped; a fault on its path matches it as decoded.
    let one = paypro_ok(&format!("{base}/payments/{}", escaped(id))).await;
    assert_eq!(one["id"], id);
    sandbox.add_endpoint_fault(fault(
        Api::PayPro,
        &format!("/payments/{id}"),
        status(410, None, None),
        Some(1),
    ));
    let answer = paypro(&format!("{base}/payments/{}", escaped(id))).await;
    assert_eq!(answer.status, 410);
    assert_eq!(answer.json()["error"]["message"], "Gone.");
    assert_eq!(
        paypro(&format!("{base}/payments/{}", escaped(id)))
            .await
            .status,
        200
    );
}
