//! The sandbox behaves like the documented APIs, deterministically.

use std::collections::HashSet;
use std::time::Duration;

use payments_sandbox::{
    Api, Burst, Faults, RateLimitWindow, RetryAfterForm, Sandbox, SandboxConfig,
};
use serde_json::Value;

async fn get(url: &str, key: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

async fn get_json(url: &str, key: &str) -> Value {
    let response = get(url, key).await;
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.unwrap()
}

fn small() -> SandboxConfig {
    SandboxConfig {
        mkp_links: 30,
        paypro_payments: 250,
        ..SandboxConfig::default()
    }
}

#[tokio::test]
async fn the_same_seed_gives_the_same_data_and_another_seed_other_data() {
    let a = Sandbox::start(small()).await.unwrap();
    let b = Sandbox::start(small()).await.unwrap();
    let c = Sandbox::start(SandboxConfig { seed: 2, ..small() })
        .await
        .unwrap();
    assert_eq!(a.mkp_links(), b.mkp_links());
    assert_eq!(a.paypro_payments(), b.paypro_payments());
    for link in a.mkp_links() {
        assert_eq!(a.mkp_payments(&link.id), b.mkp_payments(&link.id));
    }
    assert_ne!(a.paypro_payments(), c.paypro_payments());
    assert_ne!(a.mkp_links(), c.mkp_links());
    // And what is served over HTTP is that data.
    let page = get_json(
        &format!("{}/payments?limit=100", a.paypro_base_url()),
        "pp_sandbox_key",
    )
    .await;
    let served: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = a
        .paypro_payments()
        .into_iter()
        .take(100)
        .map(|p| p.id)
        .collect();
    assert_eq!(served, expected);
}

#[tokio::test]
async fn the_data_set_covers_every_status_and_edge() {
    let sandbox = Sandbox::start(SandboxConfig {
        mkp_links: 200,
        paypro_payments: 2000,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let links = sandbox.mkp_links();
    let link_statuses: HashSet<String> = links.iter().map(|l| l.status.clone()).collect();
    assert_eq!(
        link_statuses,
        ["open", "paid", "expired", "closed"]
            .map(String::from)
            .into()
    );
    let payments: Vec<_> = links
        .iter()
        .flat_map(|l| sandbox.mkp_payments(&l.id))
        .collect();
    let words: HashSet<&str> = payments.iter().map(|p| p.status.as_str()).collect();
    for word in [
        "paid",
        "pending",
        "failed",
        "canceled",
        "chargebacked",
        "refunded",
        "authorized",
    ] {
        assert!(words.contains(word), "no MKP payment is {word}");
    }
    assert!(
        payments.iter().any(|p| p.payers_name.is_none()),
        "no null payer name"
    );
    assert!(
        links
            .iter()
            .any(|l| sandbox.mkp_payments(&l.id).len() >= 100),
        "no link with hundreds of payments"
    );
    assert!(
        links.iter().any(|l| sandbox.mkp_payments(&l.id).is_empty()),
        "no link without payments"
    );
    let paypro = sandbox.paypro_payments();
    let states: HashSet<&str> = paypro.iter().map(|p| p.state.as_str()).collect();
    for state in [
        "initialized",
        "open",
        "pending",
        "processing",
        "paid",
        "completed",
        "refunded",
        "chargeback",
        "chargebacked",
        "canceled",
        "cancelled",
        "expired",
        "failed",
        "authorized",
    ] {
        assert!(states.contains(state), "no PayPro payment is {state}");
    }
    assert!(
        paypro
            .iter()
            .any(|p| p.refunded_amount > 0 && p.refunded_amount < p.amount && p.state == "paid"),
        "no partial refund"
    );
    assert!(
        paypro
            .iter()
            .any(|p| p.refunded_amount == p.amount && p.state == "paid"),
        "no full refund of a paid payment"
    );
    assert!(
        paypro.windows(2).all(|w| w[0].created_at > w[1].created_at),
        "not newest first"
    );
}

#[tokio::test]
async fn mkp_pages_follow_laravel_simple_paginate() {
    let sandbox = Sandbox::start(small()).await.unwrap();
    let base = sandbox.mkp_base_url();
    let first = get_json(&format!("{base}/payment-links"), "mkp_sandbox_key").await;
    assert_eq!(first["current_page"], 1);
    assert_eq!(first["per_page"], 15);
    assert_eq!(first["from"], 1);
    assert_eq!(first["to"], 15);
    assert_eq!(first["prev_page_url"], Value::Null);
    assert_eq!(
        first["next_page_url"],
        format!("{base}/payment-links?page=2")
    );
    assert!(first.get("total").is_none() && first.get("last_page").is_none());
    let last = get_json(&format!("{base}/payment-links?page=2"), "mkp_sandbox_key").await;
    assert_eq!(last["next_page_url"], Value::Null);
    let beyond = get_json(&format!("{base}/payment-links?page=9"), "mkp_sandbox_key").await;
    assert_eq!(beyond["data"], serde_json::json!([]));
    assert_eq!(beyond["from"], Value::Null);
    assert_eq!(beyond["to"], Value::Null);
}

#[tokio::test]
async fn auth_is_enforced_with_each_apis_error_body() {
    let sandbox = Sandbox::start(small()).await.unwrap();
    let links = format!("{}/payment-links", sandbox.mkp_base_url());
    let response = get(&links, "wrong").await;
    assert_eq!(response.status(), 401);
    let response = get(&links, "mkp_sandbox_noscope").await;
    assert_eq!(response.status(), 403);
    let response = get(
        &format!("{}/payments", sandbox.paypro_base_url()),
        "mkp_sandbox_key",
    )
    .await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
    let response = get(
        &format!("{}/payments?limit=101", sandbox.paypro_base_url()),
        "pp_sandbox_key",
    )
    .await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "limit");
    let response = get(
        &format!("{}/payment-links/plk_nope/payments", sandbox.mkp_base_url()),
        "mkp_sandbox_key",
    )
    .await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn mkp_rate_limit_answers_429_with_the_documented_headers_and_body() {
    let window = RateLimitWindow {
        limit: 5,
        window: Duration::from_secs(2),
    };
    let sandbox = Sandbox::start(SandboxConfig {
        mkp_rate_limit: Some(window),
        ..small()
    })
    .await
    .unwrap();
    let url = format!("{}/payment-links", sandbox.mkp_base_url());
    for remaining in (0..5).rev() {
        let response = get(&url, "mkp_sandbox_key").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ratelimit-limit"], "5");
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            remaining.to_string().as_str()
        );
    }
    let response = get(&url, "mkp_sandbox_key").await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let reset: u64 = response.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset > now && reset <= now + 3, "reset {reset} now {now}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"code": 429, "message": "Too many requests."})
    );
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(
        get(&url, "mkp_sandbox_key").await.status(),
        200,
        "the window rolls on"
    );
}

#[tokio::test]
async fn burst_429_states_its_wait_in_either_form() {
    for form in [RetryAfterForm::Seconds, RetryAfterForm::HttpDate] {
        let burst = Burst {
            every: 2,
            length: 1,
            retry_after: Duration::from_secs(3),
            form,
        };
        let sandbox = Sandbox::start(SandboxConfig {
            faults: Faults {
                burst_429: Some(burst),
                ..Faults::default()
            },
            ..small()
        })
        .await
        .unwrap();
        let url = format!("{}/payments", sandbox.paypro_base_url());
        assert_eq!(get(&url, "pp_sandbox_key").await.status(), 200);
        let response = get(&url, "pp_sandbox_key").await;
        assert_eq!(response.status(), 429);
        let value = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .to_owned();
        match form {
            RetryAfterForm::Seconds => assert_eq!(value, "3"),
            RetryAfterForm::HttpDate => assert!(httpdate_like(&value), "{value}"),
        }
        assert_eq!(sandbox.count_status(Api::PayPro, 429), 1);
    }
}

fn httpdate_like(value: &str) -> bool {
    value.ends_with(" GMT") && value.len() == 29
}

#[tokio::test]
async fn paypro_cursors_are_opaque_and_chain_to_the_end() {
    let sandbox = Sandbox::start(small()).await.unwrap();
    let mut url = format!("{}/payments?limit=100", sandbox.paypro_base_url());
    let mut seen = Vec::new();
    loop {
        let page = get_json(&url, "pp_sandbox_key").await;
        let data = page["data"].as_array().unwrap();
        assert_eq!(page["count"], data.len());
        seen.extend(data.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        match page["_links"]["next"].as_str() {
            Some(next) => {
                assert!(
                    !next.contains(&seen[seen.len() - 1]),
                    "the cursor is not opaque: {next}"
                );
                url = next.to_owned();
            }
            None => break,
        }
    }
    let expected: Vec<String> = sandbox
        .paypro_payments()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(seen, expected);
    let bad = get(
        &format!("{}/payments?cursor=bogus", sandbox.paypro_base_url()),
        "pp_sandbox_key",
    )
    .await;
    assert_eq!(bad.status(), 422);
}
