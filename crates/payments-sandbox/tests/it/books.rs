//! PayPro's payouts (`/payouts`, `/payouts/{id}`, their events) and balance (`/balances`):
//! the balance is the sum of what the listings say, computed here from them over HTTP, also
//! after changes made at run time.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use payments_sandbox::{ChargebackSpec, Sandbox, SandboxConfig};
use serde_json::Value;

const KEY: &str = "pp_sandbox_key";
const DAY: i64 = 86_400;

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

/// `payments` PayPro payments over the last `days` days.
async fn history(payments: usize, days: u64) -> Sandbox {
    Sandbox::start(
        SandboxConfig {
            paypro_payments: payments,
            mkp_links: 0,
            anchor: Utc::now(),
            ..SandboxConfig::default()
        }
        .with_paypro_span(Duration::from_secs(days * DAY as u64)),
    )
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
        records.extend(data.iter().cloned());
        match page["_links"]["next"].as_str() {
            Some(next) => url = next.to_owned(),
            None => return (records, pages),
        }
    }
}

fn at(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .to_utc()
}

fn cents(value: &Value) -> i64 {
    value.as_i64().unwrap()
}

fn word(value: &Value) -> String {
    value.as_str().unwrap().to_ascii_lowercase()
}

/// What the listings say, read over HTTP.
struct Listed {
    payments: Vec<Value>,
    refunds: Vec<Value>,
    chargebacks: Vec<Value>,
    payouts: Vec<Value>,
}

async fn listed(sandbox: &Sandbox) -> Listed {
    let base = sandbox.paypro_base_url();
    let all = |listing: &str| format!("{base}/{listing}?limit=100");
    Listed {
        payments: walk(&all("payments")).await.0,
        refunds: walk(&all("refunds")).await.0,
        chargebacks: walk(&all("chargebacks")).await.0,
        payouts: walk(&all("payouts")).await.0,
    }
}

/// One movement of the balance: when, and how much (signed cents).
type Movement = (DateTime<Utc>, i64);

/// The movements the listings make, by the ledger's rules (PROVIDERS.md, DESIGN.md "Into the
/// books"): a payment that brought money in credits its amount when paid; a refund debits its
/// amount unless it failed or was canceled; a completed chargeback debits its amount; a
/// payout debits its amount, fee and VAT unless it was rejected or failed. Only EUR.
fn movements(listed: &Listed) -> Vec<Movement> {
    let mut moves = Vec::new();
    for payment in &listed.payments {
        assert_eq!(payment["currency"], "EUR");
        // What the ledger's status table reads as paid, (partially) refunded, charged back.
        if [
            "paid",
            "completed",
            "refunded",
            "chargeback",
            "chargebacked",
        ]
        .contains(&word(&payment["state"]).as_str())
        {
            let when = match payment["paid_at"].as_str() {
                Some(_) => at(&payment["paid_at"]),
                None => at(&payment["created_at"]),
            };
            moves.push((when, cents(&payment["amount"])));
        }
    }
    for refund in &listed.refunds {
        if refund["currency"] == "EUR"
            && !["failed", "canceled", "cancelled"].contains(&word(&refund["state"]).as_str())
        {
            moves.push((at(&refund["created_at"]), -cents(&refund["amount"])));
        }
    }
    for chargeback in &listed.chargebacks {
        if chargeback["currency"] == "EUR" && word(&chargeback["state"]) == "completed" {
            let when = match chargeback["charged_back_at"].as_str() {
                Some(_) => at(&chargeback["charged_back_at"]),
                None => at(&chargeback["created_at"]),
            };
            moves.push((when, -cents(&chargeback["amount"])));
        }
    }
    for payout in &listed.payouts {
        assert_eq!(payout["currency"], "EUR");
        if !["rejected", "failed"].contains(&word(&payout["state"]).as_str()) {
            moves.push((at(&payout["created_at"]), -total(payout)));
        }
    }
    moves
}

fn total(payout: &Value) -> i64 {
    cents(&payout["amount"]) + cents(&payout["fee_amount"]) + cents(&payout["fee_vat_amount"])
}

/// `GET /balances`, checked for its envelope: the one EUR balance, in cents.
async fn served_balance(sandbox: &Sandbox) -> i64 {
    let page = get_ok(&format!("{}/balances", sandbox.paypro_base_url())).await;
    assert_eq!(page["type"], "list");
    assert_eq!(page["count"], 1);
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    let balance = &data[0];
    assert_eq!(balance["type"], "balance");
    assert_eq!(balance["currency"], "EUR");
    assert_eq!(balance["pending_amount"], 0);
    assert_eq!(sandbox.paypro_balance().amount, cents(&balance["amount"]));
    cents(&balance["amount"])
}

async fn listed_balance(sandbox: &Sandbox) -> i64 {
    movements(&listed(sandbox).await)
        .iter()
        .map(|(_, amount)| amount)
        .sum()
}

#[tokio::test]
async fn the_balance_is_the_sum_of_what_the_listings_say_also_after_changes_at_run_time() {
    let sandbox = history(900, 90).await;
    let before = served_balance(&sandbox).await;
    assert_eq!(before, listed_balance(&sandbox).await);
    assert!(before > 0, "{before}");

    // Every kind of change made at run time, each by the same rules.
    let payments = sandbox.paypro_payments();
    let unpaid: Vec<&str> = payments
        .iter()
        .filter(|p| p.paid_at.is_none())
        .map(|p| p.id.as_str())
        .collect();
    let paid: Vec<_> = payments
        .iter()
        .filter(|p| p.state == "paid" && p.refunded_amount == 0 && p.amount > 100)
        .collect();
    sandbox.pay_paypro_payment(unpaid[0]).unwrap();
    sandbox.set_paypro_state(unpaid[1], "completed", 0);
    sandbox.set_paypro_state(&paid[0].id, "failed", 0);
    sandbox.set_paypro_amount(&paid[1].id, paid[1].amount + 7);
    let inserted = sandbox.insert_paypro_payment();
    sandbox.pay_paypro_payment(&inserted).unwrap();
    sandbox.insert_paypro_payment();
    sandbox.refund_paypro_payment(&paid[2].id, 50).unwrap();
    sandbox
        .charge_back_paypro_payment(&paid[3].id, paid[3].amount, true)
        .unwrap();
    sandbox
        .charge_back_paypro_payment(&paid[4].id, 10, false)
        .unwrap();
    // In another currency: not in the EUR balance.
    sandbox
        .add_paypro_chargeback(ChargebackSpec {
            payment_id: paid[5].id.clone(),
            amount: 300,
            currency: Some("USD".to_owned()),
            completed: true,
            at: None,
        })
        .unwrap();
    let paid_at = at(&Value::from(paid[6].paid_at.clone().unwrap()));
    sandbox
        .refund_paypro_payment_at(&paid[6].id, 40, paid_at + chrono::Duration::days(2))
        .unwrap();
    let kept = sandbox.add_paypro_payout(5_000, 25, 5).unwrap();
    let rejected = sandbox.add_paypro_payout(1_000, 25, 5).unwrap();
    sandbox.set_paypro_payout_state(&kept, "paid").unwrap();
    sandbox
        .set_paypro_payout_state(&rejected, "rejected")
        .unwrap();

    let after = served_balance(&sandbox).await;
    assert_eq!(after, listed_balance(&sandbox).await);
    assert_ne!(after, before);
    // A payout over the balance is refused, and changes nothing.
    assert_eq!(sandbox.add_paypro_payout(after + 1, 0, 0), None);
    assert_eq!(sandbox.add_paypro_payout(after - 29, 25, 5), None);
    assert_eq!(served_balance(&sandbox).await, after);
    assert!(sandbox.add_paypro_payout(after - 30, 25, 5).is_some());
    assert_eq!(served_balance(&sandbox).await, 0);
    assert_eq!(listed_balance(&sandbox).await, 0);
}

#[tokio::test]
async fn the_default_data_set_balances_too() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let balance = served_balance(&sandbox).await;
    assert_eq!(balance, listed_balance(&sandbox).await);
    assert_eq!(sandbox.paypro_payouts().len(), 1, "50 hours of payments");
    let none = Sandbox::start(SandboxConfig {
        paypro_payout_spacing: None,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    assert!(none.paypro_payouts().is_empty());
    assert_eq!(served_balance(&none).await, listed_balance(&none).await);
    let payout = &sandbox.paypro_payouts()[0];
    let taken = if ["rejected", "failed"].contains(&payout.state.as_str()) {
        0
    } else {
        payout.total()
    };
    assert_eq!(
        served_balance(&none).await,
        balance + taken,
        "the same payments, less the payout"
    );
}

#[tokio::test]
async fn no_payout_takes_more_than_the_balance_held_when_it_was_made() {
    for (payments, days, seed) in [(900, 90, 1), (400, 61, 2), (2_000, 30, 3), (300, 300, 4)] {
        let sandbox = Sandbox::start(
            SandboxConfig {
                seed,
                paypro_payments: payments,
                mkp_links: 0,
                anchor: Utc::now(),
                ..SandboxConfig::default()
            }
            .with_paypro_span(Duration::from_secs(days * DAY as u64)),
        )
        .await
        .unwrap();
        let listed = listed(&sandbox).await;
        assert!(listed.payouts.len() >= 9, "{}", listed.payouts.len());
        let moves = movements(&listed);
        for payout in &listed.payouts {
            let made = at(&payout["created_at"]);
            let held: i64 = moves
                .iter()
                .filter(|(when, _)| *when < made)
                .map(|(_, amount)| amount)
                .sum();
            assert!(
                total(payout) <= held,
                "seed {seed}: {} takes {} of {held}",
                payout["id"],
                total(payout)
            );
            assert!(cents(&payout["amount"]) >= 1);
        }
    }
}

#[tokio::test]
async fn payouts_are_paged_newest_first_found_by_id_and_announced() {
    let sandbox = history(600, 120).await;
    let base = sandbox.paypro_base_url();
    let (payouts, pages) = walk(&format!("{base}/payouts?limit=7")).await;
    let expected = sandbox.paypro_payouts();
    assert!(expected.len() > 30, "{}", expected.len());
    assert_eq!(pages, expected.len().div_ceil(7));
    assert_eq!(
        payouts.iter().map(|p| p["id"].clone()).collect::<Vec<_>>(),
        expected
            .iter()
            .map(|p| Value::from(p.id.clone()))
            .collect::<Vec<_>>()
    );
    let ids: HashSet<&str> = payouts.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), payouts.len(), "an id repeats");
    assert!(
        payouts
            .windows(2)
            .all(|w| at(&w[0]["created_at"]) > at(&w[1]["created_at"])),
        "not newest first"
    );
    // Every page's cursor is the one the page before linked to.
    let requests = sandbox.requests();
    assert_eq!(requests[0].path_and_query, "/paypro/payouts?limit=7");
    assert!(
        requests[1]
            .path_and_query
            .starts_with("/paypro/payouts?limit=7&cursor=")
    );

    // The documented shape; mostly paid, some rejected or failed, the newest not yet paid.
    let mut states: HashMap<String, usize> = HashMap::new();
    for payout in &payouts {
        let id = payout["id"].as_str().unwrap();
        assert!(id.starts_with("PO"), "{id}");
        assert_eq!(payout["type"], "payout");
        assert_eq!(payout["currency"], "EUR");
        assert!(cents(&payout["amount"]) > 0);
        assert!(cents(&payout["fee_amount"]) >= 0);
        assert!(cents(&payout["fee_vat_amount"]) >= 0);
        let iban = payout["bank_account"]["iban"].as_str().unwrap();
        assert!(iban.starts_with("NL") && iban.len() == 18, "{iban}");
        assert!(payout["bank_account"]["name"].is_string());
        let state = payout["state"].as_str().unwrap();
        assert_eq!(payout["paid_at"].is_string(), state == "paid", "{id}");
        if state == "paid" {
            assert!(at(&payout["paid_at"]) > at(&payout["created_at"]));
        }
        assert!(at(&payout["created_at"]) <= Utc::now());
        *states.entry(state.to_owned()).or_default() += 1;
        assert!(
            payout["_links"]["self"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/paypro/payouts/{id}"))
        );
        // By id: as listed.
        assert_eq!(&get_ok(&format!("{base}/payouts/{id}")).await, payout);
    }
    assert!(states["paid"] * 2 > payouts.len(), "{states:?}");
    assert!(
        states
            .keys()
            .all(|s| ["created", "approved", "paid", "rejected", "failed"].contains(&s.as_str())),
        "{states:?}"
    );
    assert!(payouts.iter().any(|p| cents(&p["fee_amount"]) > 0));
    let (status, body) = get(&format!("{base}/payouts/PO0000000000000000")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["message"], "Payout not found.");
    let (status, body) = get(&format!("{base}/payouts?limit=101")).await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (422, Some("limit"))
    );

    // Each payout's life is in the feed, each event carrying it as it was then.
    let events = sandbox.paypro_events();
    for payout in &expected {
        let lives: Vec<_> = events
            .iter()
            .rev()
            .filter_map(|e| match &e.payload {
                payments_sandbox::PayProPayload::Payout(p) if p.id == payout.id => Some((e, p)),
                _ => None,
            })
            .collect();
        assert_eq!(lives[0].0.event_type, "payout.created", "{}", payout.id);
        assert_eq!(lives[0].0.created_at, payout.created_at);
        let (last, as_now) = lives.last().unwrap();
        assert_eq!(last.event_type, format!("payout.{}", payout.state));
        assert_eq!(*as_now, payout);
        for (event, as_then) in &lives {
            assert_eq!(event.event_type, format!("payout.{}", as_then.state));
            assert_eq!(
                (as_then.amount, as_then.fee_amount),
                (payout.amount, payout.fee_amount)
            );
        }
    }
    // On the wire, the payload has its own `type` and links.
    let (served, _) = walk(&format!("{base}/events?limit=100")).await;
    let created = served
        .iter()
        .find(|e| e["event_type"] == "payout.created")
        .unwrap();
    assert_eq!(created["payload"]["type"], "payout");
    assert!(created["payload"]["_links"]["self"].is_string());
    // A payout made at run time tops the listing.
    let new = sandbox.add_paypro_payout(100, 0, 0).unwrap();
    let top = get_ok(&format!("{base}/payouts?limit=1")).await;
    assert_eq!(top["data"][0]["id"], new.as_str());
    assert_eq!(top["data"][0]["state"], "created");
    assert_eq!(
        get_ok(&format!("{base}/payouts/{new}")).await["id"],
        new.as_str()
    );
    assert_eq!(sandbox.set_paypro_payout_state(&new, "teleported"), None);
    assert_eq!(
        sandbox.set_paypro_payout_state(&expected[0].id, "paid"),
        None,
        "generated"
    );
}

#[tokio::test]
async fn sixty_days_of_history_reach_back_in_every_listing() {
    let sandbox = history(600, 90).await;
    let listed = listed(&sandbox).await;
    let sixty_days_ago = Utc::now() - chrono::Duration::days(60);
    for (name, records) in [
        ("payments", &listed.payments),
        ("refunds", &listed.refunds),
        ("chargebacks", &listed.chargebacks),
        ("payouts", &listed.payouts),
    ] {
        let oldest = records.iter().map(|r| at(&r["created_at"])).min().unwrap();
        let newest = records.iter().map(|r| at(&r["created_at"])).max().unwrap();
        assert!(oldest < sixty_days_ago, "{name}: the oldest is {oldest}");
        assert!(
            newest > Utc::now() - chrono::Duration::days(30),
            "{name}: the newest is {newest}"
        );
    }
    let paid_at: HashMap<&str, DateTime<Utc>> = listed
        .payments
        .iter()
        .filter(|p| p["paid_at"].is_string())
        .map(|p| (p["id"].as_str().unwrap(), at(&p["paid_at"])))
        .collect();
    for refund in &listed.refunds {
        let paid = paid_at[refund["payment"].as_str().unwrap()];
        assert!(at(&refund["created_at"]) > paid, "{}", refund["id"]);
        assert!(at(&refund["refunded_at"]) > paid, "{}", refund["id"]);
    }
    for chargeback in &listed.chargebacks {
        let paid = paid_at[chargeback["payment"].as_str().unwrap()];
        assert!(at(&chargeback["created_at"]) > paid, "{}", chargeback["id"]);
        assert!(
            at(&chargeback["charged_back_at"]) > paid,
            "{}",
            chargeback["id"]
        );
    }
}

#[tokio::test]
async fn a_late_refund_on_a_day_long_past_changes_the_listings_the_payment_and_the_balance() {
    let sandbox = history(600, 90).await;
    let base = sandbox.paypro_base_url();
    let old = sandbox
        .old_paid_paypro_payment(Duration::from_secs(70 * DAY as u64))
        .unwrap();
    let paid_at = at(&Value::from(old.paid_at.clone().unwrap()));
    let balance = served_balance(&sandbox).await;
    let refunds = walk(&format!("{base}/refunds?limit=100")).await.0;
    // Never before the payment was paid, never more than is left.
    assert_eq!(
        sandbox.refund_paypro_payment_at(&old.id, 1, paid_at - chrono::Duration::seconds(1)),
        None
    );
    assert_eq!(
        sandbox.refund_paypro_payment_at(&old.id, old.amount + 1, paid_at),
        None
    );
    assert_eq!(
        sandbox.refund_paypro_payment_at("PPUNKNOWN", 1, paid_at),
        None
    );

    let when = paid_at + chrono::Duration::days(5);
    let id = sandbox
        .refund_paypro_payment_at(&old.id, 250.min(old.amount), when)
        .unwrap();
    let amount = 250.min(old.amount);
    // `/refunds`: on top, made on that day; the rest as before.
    let after = walk(&format!("{base}/refunds?limit=100")).await.0;
    assert_eq!(after[0]["id"], id.as_str());
    assert_eq!(after[0]["payment"], old.id.as_str());
    assert_eq!(at(&after[0]["created_at"]), when);
    assert_eq!(at(&after[0]["refunded_at"]), when);
    assert_eq!(after[0]["state"], "completed");
    assert_eq!(after[1..], refunds[..]);
    // `/payments/{id}/refunds` and the payment itself.
    let of_payment = get_ok(&format!("{base}/payments/{}/refunds", old.id)).await;
    assert_eq!(of_payment["data"].as_array().unwrap().len(), 1);
    assert_eq!(of_payment["data"][0], after[0]);
    let payment = get_ok(&format!("{base}/payments/{}", old.id)).await;
    assert_eq!(cents(&payment["refunded_amount"]), amount);
    assert_eq!(payment["state"], old.state.as_str());
    // `/events`: its `refund.created`, made on that day, on top.
    let events = get_ok(&format!("{base}/events?limit=1")).await;
    assert_eq!(events["data"][0]["event_type"], "refund.created");
    assert_eq!(events["data"][0]["payload"]["id"], id.as_str());
    assert_eq!(at(&events["data"][0]["created_at"]), when);
    // `/balances`: less by the refund, and still the sum of the listings.
    assert_eq!(served_balance(&sandbox).await, balance - amount);
    assert_eq!(listed_balance(&sandbox).await, balance - amount);
    // A second one, on an earlier day, lists below the first.
    let earlier = sandbox
        .refund_paypro_payment_at(&old.id, 1, paid_at + chrono::Duration::days(1))
        .unwrap();
    let top = get_ok(&format!("{base}/refunds?limit=2")).await;
    assert_eq!(top["data"][0]["id"], id.as_str());
    assert_eq!(top["data"][1]["id"], earlier.as_str());
    let of_payment = get_ok(&format!("{base}/payments/{}/refunds?limit=1", old.id)).await;
    assert_eq!(of_payment["data"][0]["id"], id.as_str());
    let next = of_payment["_links"]["next"].as_str().unwrap();
    assert_eq!(get_ok(next).await["data"][0]["id"], earlier.as_str());
    assert_eq!(served_balance(&sandbox).await, balance - amount - 1);
}

#[tokio::test]
async fn a_payments_refunds_and_chargebacks_are_listed_under_it() {
    let sandbox = history(300, 30).await;
    let base = sandbox.paypro_base_url();
    let refunds = sandbox.paypro_refunds();
    let chargebacks = sandbox.paypro_chargebacks();
    for refund in refunds.iter().take(5) {
        let page = get_ok(&format!("{base}/payments/{}/refunds", refund.payment)).await;
        assert_eq!(page["data"].as_array().unwrap().len(), 1);
        assert_eq!(page["data"][0]["id"], refund.id.as_str());
    }
    for chargeback in chargebacks.iter().take(5) {
        let page = get_ok(&format!(
            "{base}/payments/{}/chargebacks",
            chargeback.payment
        ))
        .await;
        assert_eq!(page["data"][0]["id"], chargeback.id.as_str());
        assert_eq!(page["data"][0]["type"], "chargeback");
    }
    let plain = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.refunded_amount == 0 && p.state == "paid")
        .unwrap();
    let empty = get_ok(&format!("{base}/payments/{}/refunds", plain.id)).await;
    assert_eq!(empty["data"], Value::Array(Vec::new()));
    let (status, _) = get(&format!("{base}/payments/PPUNKNOWN/refunds")).await;
    assert_eq!(status, 404);
    let (status, _) = get(&format!("{base}/payments/PPUNKNOWN/chargebacks")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_same_seed_gives_the_same_payouts_and_another_seed_others() {
    let config = |seed| {
        SandboxConfig {
            seed,
            paypro_payments: 400,
            mkp_links: 0,
            ..SandboxConfig::default()
        }
        .with_paypro_span(Duration::from_secs(40 * DAY as u64))
    };
    let one = Sandbox::start(config(5)).await.unwrap();
    let again = Sandbox::start(config(5)).await.unwrap();
    let other = Sandbox::start(config(6)).await.unwrap();
    assert_eq!(one.paypro_payouts(), again.paypro_payouts());
    assert_eq!(one.paypro_balance(), again.paypro_balance());
    assert_ne!(one.paypro_payouts(), other.paypro_payouts());
    // Payouts take nothing from the payments: they are as without payouts.
    let without = Sandbox::start(SandboxConfig {
        paypro_payout_spacing: None,
        ..config(5)
    })
    .await
    .unwrap();
    assert_eq!(one.paypro_payments(), without.paypro_payments());
    assert_eq!(one.paypro_refunds(), without.paypro_refunds());
    let not_payouts = |sandbox: &Sandbox| -> Vec<String> {
        sandbox
            .paypro_events()
            .into_iter()
            .filter(|e| !e.event_type.starts_with("payout."))
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(not_payouts(&one), not_payouts(&without));
}
