//! PayPro's change feeds (`/events`, `/refunds`, `/chargebacks`) and `/payments/{id}`: derived
//! from the payments, paged like `/payments`, changed at run time at the top.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use payments_sandbox::{
    Api, ContentFaults, Faults, PayProPayload, PayProPayment, Sandbox, SandboxConfig,
};
use serde_json::Value;

const KEY: &str = "pp_sandbox_key";

async fn get(url: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn get_ok(url: &str) -> Value {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    body
}

async fn start(payments: usize) -> Sandbox {
    Sandbox::start(SandboxConfig {
        paypro_payments: payments,
        anchor: Utc::now(),
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

/// Every record of a listing, following `_links.next` from `first`, with the pages walked.
async fn walk(first: &str) -> (Vec<Value>, usize) {
    let (mut url, mut records, mut pages) = (first.to_owned(), Vec::new(), 0);
    loop {
        let page = get_ok(&url).await;
        pages += 1;
        let data = page["data"].as_array().unwrap();
        assert_eq!(page["count"], data.len());
        assert_eq!(page["type"], "list");
        records.extend(data.iter().cloned());
        match page["_links"]["next"].as_str() {
            Some(next) => url = next.to_owned(),
            None => return (records, pages),
        }
    }
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

#[tokio::test]
async fn events_are_derived_from_the_payments_newest_first_and_paged_to_the_end() {
    let sandbox = start(400).await;
    let payments = sandbox.paypro_payments();
    let events = sandbox.paypro_events();
    let (served, pages) = walk(&format!("{}/events?limit=100", sandbox.paypro_base_url())).await;
    assert_eq!(
        ids(&served),
        events.iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(pages, events.len().div_ceil(100));
    assert_eq!(
        events.iter().map(|e| &e.id).collect::<HashSet<_>>().len(),
        events.len(),
        "an event id repeats"
    );
    assert!(
        events
            .windows(2)
            .all(|w| at(&w[0].created_at) >= at(&w[1].created_at)),
        "not newest first"
    );
    let mut of_payment: HashMap<&str, Vec<&str>> = HashMap::new();
    for event in &events {
        let payment = match &event.payload {
            PayProPayload::Payment(p) => p.id.as_str(),
            PayProPayload::Refund(r) => r.payment.as_str(),
            PayProPayload::Chargeback(c) => c.payment.as_str(),
            PayProPayload::Customer(_) | PayProPayload::Payout(_) => continue,
        };
        of_payment
            .entry(payment)
            .or_default()
            .push(event.event_type.as_str());
    }
    for payment in &payments {
        let types = &of_payment[payment.id.as_str()];
        assert!(types.contains(&"payment.created"), "{}", payment.id);
        assert_eq!(
            types.contains(&"payment.paid"),
            payment.paid_at.is_some(),
            "{}",
            payment.id
        );
        assert_eq!(
            types.contains(&"refund.created"),
            payment.refunded_amount > 0,
            "{}",
            payment.id
        );
        assert_eq!(
            types.contains(&"chargeback.created"),
            matches!(payment.state.as_str(), "chargeback" | "chargebacked"),
            "{}",
            payment.id
        );
    }
    let (payouts, types): (HashSet<&str>, HashSet<&str>) = events
        .iter()
        .map(|e| e.event_type.as_str())
        .partition(|kind| kind.starts_with("payout."));
    assert_eq!(
        types,
        HashSet::from([
            "customer.created",
            "payment.created",
            "payment.paid",
            "refund.created",
            "chargeback.created"
        ])
    );
    // 40 hours of payments: one payout, made within a day of the anchor.
    assert!(payouts.contains("payout.created"), "{payouts:?}");
    // On the wire: the documented shape, with links on the event and its payload.
    let refund = served
        .iter()
        .find(|e| e["event_type"] == "refund.created")
        .unwrap();
    assert_eq!(refund["type"], "event");
    assert_eq!(refund["payload"]["type"], "refund");
    assert!(refund["payload"]["amount"].is_i64());
    let payment_link = refund["payload"]["_links"]["payment"].as_str().unwrap();
    assert!(payment_link.ends_with(&format!(
        "/paypro/payments/{}",
        refund["payload"]["payment"].as_str().unwrap()
    )));
    assert!(
        refund["_links"]["self"]
            .as_str()
            .unwrap()
            .starts_with(&sandbox.paypro_base_url())
    );
    let created = served
        .iter()
        .find(|e| e["event_type"] == "payment.created")
        .unwrap();
    assert_eq!(created["payload"]["type"], "payment");
    assert_eq!(created["payload"]["paid_at"], Value::Null);
}

#[tokio::test]
async fn refunds_and_chargebacks_list_what_the_payments_say() {
    let sandbox = start(600).await;
    let payments: HashMap<String, PayProPayment> = sandbox
        .paypro_payments()
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let refunds = sandbox.paypro_refunds();
    let (served, _) = walk(&format!("{}/refunds?limit=7", sandbox.paypro_base_url())).await;
    assert_eq!(
        ids(&served),
        refunds.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(
        refunds.len(),
        payments.values().filter(|p| p.refunded_amount > 0).count()
    );
    for refund in &refunds {
        assert_eq!(refund.amount, payments[&refund.payment].refunded_amount);
    }
    assert!(
        refunds
            .windows(2)
            .all(|w| at(&w[0].created_at) >= at(&w[1].created_at))
    );
    let chargebacks = sandbox.paypro_chargebacks();
    let (served, _) = walk(&format!(
        "{}/chargebacks?limit=3",
        sandbox.paypro_base_url()
    ))
    .await;
    assert_eq!(
        ids(&served),
        chargebacks.iter().map(|c| c.id.clone()).collect::<Vec<_>>()
    );
    assert!(!chargebacks.is_empty());
    for chargeback in &chargebacks {
        let payment = &payments[&chargeback.payment];
        assert!(matches!(
            payment.state.as_str(),
            "chargeback" | "chargebacked"
        ));
        assert_eq!(chargeback.amount, payment.amount);
        assert_eq!(chargeback.state, "completed");
    }
    assert!(served.iter().all(|c| c["type"] == "chargeback"));
}

#[tokio::test]
async fn one_payment_by_id_is_served_as_listed_or_404() {
    let sandbox = start(50).await;
    let base = sandbox.paypro_base_url();
    let listed = get_ok(&format!("{base}/payments?limit=100")).await;
    let tenth = &listed["data"][10];
    let one = get_ok(&format!(
        "{base}/payments/{}",
        tenth["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(&one, tenth);
    let (status, body) = get(&format!("{base}/payments/PPNOSUCHPAYMENT000")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "invalid_request");
    let (status, _) = get(&format!("{base}/payments/PP1%2F..%2Fx")).await;
    assert_eq!(status, 404);
    assert_eq!(sandbox.count_status(Api::PayPro, 404), 2);
    let response = reqwest::Client::new()
        .get(format!("{base}/events"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "the feeds need the key too");
}

#[tokio::test]
async fn a_late_refund_changes_the_payment_everywhere_and_tops_the_feeds() {
    let sandbox = start(100).await;
    let payment = sandbox
        .paypro_payments()
        .into_iter()
        .rev()
        .find(|p| p.state == "paid" && p.refunded_amount == 0 && p.amount > 100)
        .unwrap();
    let base = sandbox.paypro_base_url();
    assert_eq!(
        sandbox.refund_paypro_payment(&payment.id, payment.amount + 1),
        None,
        "more than was paid"
    );
    assert_eq!(sandbox.refund_paypro_payment(&payment.id, 0), None);
    assert_eq!(sandbox.refund_paypro_payment("PPNOSUCH", 1), None);
    let before = sandbox.paypro_events().len();
    let refund_id = sandbox.refund_paypro_payment(&payment.id, 100).unwrap();
    assert_eq!(sandbox.paypro_events().len(), before + 1);
    let one = get_ok(&format!("{base}/payments/{}", payment.id)).await;
    assert_eq!(one["refunded_amount"], 100);
    assert_eq!(one["state"], "paid", "the state stays");
    let (listed, _) = walk(&format!("{base}/payments?limit=100")).await;
    let in_list = listed.iter().find(|p| p["id"] == payment.id).unwrap();
    assert_eq!(in_list, &one);
    let refunds = get_ok(&format!("{base}/refunds?limit=1")).await;
    assert_eq!(refunds["data"][0]["id"], refund_id);
    assert_eq!(refunds["data"][0]["payment"], payment.id);
    assert_eq!(refunds["data"][0]["amount"], 100);
    let events = get_ok(&format!("{base}/events?limit=1")).await;
    let top = &events["data"][0];
    assert_eq!(top["event_type"], "refund.created");
    assert_eq!(top["payload"]["id"], refund_id);
    // The rest of the payment can be refunded; not a cent more.
    let rest = payment.amount - 100;
    assert!(
        sandbox
            .refund_paypro_payment(&payment.id, rest + 1)
            .is_none()
    );
    sandbox.refund_paypro_payment(&payment.id, rest).unwrap();
    assert_eq!(
        sandbox.paypro_payment(&payment.id).unwrap().refunded_amount,
        payment.amount
    );
}

#[tokio::test]
async fn a_late_chargeback_tops_the_feeds_and_leaves_the_payment_as_it_was() {
    let sandbox = start(100).await;
    let payment = sandbox
        .paypro_payments()
        .into_iter()
        .rev()
        .find(|p| p.state == "paid" && p.refunded_amount == 0)
        .unwrap();
    let open = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.paid_at.is_none())
        .unwrap();
    assert_eq!(
        sandbox.charge_back_paypro_payment(&open.id, 1, true),
        None,
        "unpaid"
    );
    let base = sandbox.paypro_base_url();
    let pending = sandbox
        .charge_back_paypro_payment(&payment.id, payment.amount, false)
        .unwrap();
    let completed = sandbox
        .charge_back_paypro_payment(&payment.id, payment.amount, true)
        .unwrap();
    let chargebacks = get_ok(&format!("{base}/chargebacks?limit=2")).await;
    assert_eq!(
        ids(chargebacks["data"].as_array().unwrap()),
        [completed.clone(), pending.clone()]
    );
    assert_eq!(chargebacks["data"][0]["state"], "completed");
    assert!(chargebacks["data"][0]["charged_back_at"].is_string());
    assert_eq!(chargebacks["data"][1]["state"], "processing");
    assert_eq!(chargebacks["data"][1]["charged_back_at"], Value::Null);
    let events = get_ok(&format!("{base}/events?limit=2")).await;
    for (event, id) in events["data"]
        .as_array()
        .unwrap()
        .iter()
        .zip([&completed, &pending])
    {
        assert_eq!(event["event_type"], "chargeback.created");
        assert_eq!(event["payload"]["type"], "chargeback");
        assert_eq!(&event["payload"]["id"], id.as_str());
        assert_eq!(event["payload"]["payment"], payment.id);
    }
    assert_eq!(sandbox.paypro_payment(&payment.id).unwrap(), payment);
}

#[tokio::test]
async fn a_walk_of_the_feed_is_not_shifted_by_events_added_at_the_top() {
    let sandbox = start(120).await;
    let base = sandbox.paypro_base_url();
    let expected: Vec<String> = sandbox.paypro_events().into_iter().map(|e| e.id).collect();
    let first = get_ok(&format!("{base}/events?limit=50")).await;
    let mut seen = ids(first["data"].as_array().unwrap());
    // Changes land at the top while the walk goes on.
    let inserted = sandbox.insert_paypro_payment();
    let paid = sandbox.pay_paypro_payment(&inserted).unwrap();
    assert_eq!(sandbox.pay_paypro_payment(&inserted), None, "already paid");
    let (rest, _) = walk(first["_links"]["next"].as_str().unwrap()).await;
    seen.extend(ids(&rest));
    assert_eq!(seen, expected);
    let top = get_ok(&format!("{base}/events?limit=2")).await;
    assert_eq!(top["data"][0]["id"], paid);
    assert_eq!(top["data"][0]["event_type"], "payment.paid");
    assert_eq!(top["data"][0]["payload"]["state"], "paid");
    assert_eq!(top["data"][1]["event_type"], "payment.created");
    assert_eq!(top["data"][1]["payload"]["id"], inserted);
    assert_eq!(top["data"][1]["payload"]["state"], "open");
    let payment = sandbox.paypro_payment(&inserted).unwrap();
    assert_eq!(payment.state, "paid");
    assert!(payment.paid_at.is_some());
    // A walk from the top sees the new events, then exactly the old ones.
    let (all, _) = walk(&format!("{base}/events?limit=100")).await;
    assert_eq!(ids(&all)[2..], expected[..]);
}

#[tokio::test]
async fn a_feed_that_lost_its_oldest_events_ends_early_and_refuses_cursors_into_the_lost_part() {
    let sandbox = start(100).await;
    let base = sandbox.paypro_base_url();
    let all: Vec<String> = sandbox.paypro_events().into_iter().map(|e| e.id).collect();
    assert!(all.len() > 60);
    // A cursor far down the feed, taken while it was whole.
    let (whole, _) = walk(&format!("{base}/events?limit=50")).await;
    assert_eq!(ids(&whole), all);
    let deep = get_ok(&format!("{base}/events?limit=50")).await;
    let deep = get_ok(deep["_links"]["next"].as_str().unwrap()).await;
    let deep_next = deep["_links"]["next"].as_str().unwrap().to_owned();
    sandbox.set_content_faults(ContentFaults {
        paypro_events_kept: Some(60),
        ..ContentFaults::default()
    });
    let (kept, pages) = walk(&format!("{base}/events?limit=25")).await;
    assert_eq!(ids(&kept), all[..60]);
    assert_eq!(pages, 3);
    let (status, body) = get(&deep_next).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["param"], "cursor");
    // New events push the oldest kept ones out.
    let refund_of = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.state == "paid" && p.refunded_amount == 0)
        .unwrap();
    sandbox.refund_paypro_payment(&refund_of.id, 1).unwrap();
    let (kept, _) = walk(&format!("{base}/events?limit=100")).await;
    assert_eq!(kept.len(), 60);
    assert_eq!(kept[0]["event_type"], "refund.created");
    assert_eq!(ids(&kept)[1..], all[..59]);
    assert_eq!(sandbox.paypro_events().len(), all.len() + 1);
}

#[tokio::test]
async fn the_feeds_share_the_envelope_faults_of_the_payments_listing() {
    let sandbox = start(30).await;
    let base = sandbox.paypro_base_url();
    sandbox.set_faults(Faults {
        foreign_next: Some("http://127.0.0.1:9".to_owned()),
        ..Faults::default()
    });
    let page = get_ok(&format!("{base}/events?limit=5")).await;
    assert!(
        page["_links"]["next"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:9/paypro/events?limit=5&cursor=")
    );
    sandbox.set_faults(Faults::default());
    sandbox.set_content_faults(ContentFaults {
        php_envelopes: true,
        ..ContentFaults::default()
    });
    let page = get_ok(&format!("{base}/refunds?limit=1")).await;
    assert_eq!(page["count"], "1");
    assert!(
        page["_links"]["next"]
            .as_str()
            .unwrap()
            .starts_with("refunds?limit=1&cursor=")
    );
    let (status, _) = get(&format!("{base}/events?limit=0")).await;
    assert_eq!(status, 422);
    let (status, _) = get(&format!("{base}/events?cursor=bogus")).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn payments_can_be_months_old_with_a_wider_spacing() {
    let sandbox = Sandbox::start(SandboxConfig {
        paypro_payments: 300,
        paypro_spacing: Duration::from_secs(86_400),
        anchor: Utc::now(),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let anchor = sandbox.config().anchor;
    for days in [100, 200] {
        let payment = sandbox
            .old_paid_paypro_payment(Duration::from_secs(days * 86_400))
            .unwrap();
        let age = anchor - at(&payment.created_at);
        assert!(
            age >= chrono::Duration::days(days as i64)
                && age < chrono::Duration::days(days as i64 + 10),
            "{days} days: {age}"
        );
        assert!(matches!(payment.state.as_str(), "paid" | "completed"));
        assert_eq!(payment.refunded_amount, 0);
    }
    let payments = sandbox.paypro_payments();
    assert!(
        payments
            .windows(2)
            .all(|w| w[0].created_at > w[1].created_at)
    );
    assert!(anchor - at(&payments[299].created_at) > chrono::Duration::days(298));
    // The default spacing keeps the same data as before, two days' worth.
    let recent = start(500).await;
    assert_eq!(
        recent.old_paid_paypro_payment(Duration::from_secs(100 * 86_400)),
        None
    );
}

#[tokio::test]
async fn mkp_links_can_be_more_than_a_year_old_with_a_wider_spacing() {
    let sandbox = Sandbox::start(SandboxConfig {
        mkp_links: 400,
        mkp_link_spacing: Duration::from_secs(86_400),
        paypro_payments: 0,
        mkp_rate_limit: None,
        anchor: Utc::now(),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let anchor = sandbox.config().anchor;
    let links = sandbox.mkp_links();
    assert!(anchor - at(&links[0].created_at) > chrono::Duration::days(400));
    assert!(anchor - at(&links[399].created_at) < chrono::Duration::days(32));
    let old_paid = links
        .iter()
        .flat_map(|l| sandbox.mkp_payments(&l.id))
        .find(|p| p.status == "paid" && anchor - at(&p.created_at) > chrono::Duration::days(300))
        .unwrap();
    sandbox.set_mkp_payment_status(&old_paid.id, "chargebacked");
    let now = sandbox.mkp_payments(&old_paid.payment_link_id);
    assert!(
        now.iter()
            .any(|p| p.id == old_paid.id && p.status == "chargebacked")
    );
}

#[tokio::test]
async fn the_same_seed_gives_the_same_feeds_and_another_seed_others() {
    let config = |seed| SandboxConfig {
        seed,
        paypro_payments: 200,
        ..SandboxConfig::default()
    };
    let a = Sandbox::start(config(1)).await.unwrap();
    let b = Sandbox::start(config(1)).await.unwrap();
    let c = Sandbox::start(config(2)).await.unwrap();
    assert_eq!(a.paypro_events(), b.paypro_events());
    assert_eq!(a.paypro_refunds(), b.paypro_refunds());
    assert_eq!(a.paypro_chargebacks(), b.paypro_chargebacks());
    assert_ne!(a.paypro_events(), c.paypro_events());
}
