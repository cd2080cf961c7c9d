//! Faults in what is served ([`ContentFaults`]): each spoils exactly what it says, on the wire,
//! and [`Sandbox::spoiled`] names it.

use payments_sandbox::{
    ContentFaults, Faults, OversizedLinks, OversizedPages, Sandbox, SandboxConfig,
};
use serde_json::Value;

const MKP_KEY: &str = "mkp_sandbox_key";
const PAYPRO_KEY: &str = "pp_sandbox_key";

async fn get(url: &str, key: &str) -> (u16, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

async fn get_json(url: &str, key: &str) -> Value {
    let (status, body) = get(url, key).await;
    assert_eq!(status, 200, "{url}");
    serde_json::from_slice(&body).unwrap()
}

async fn start(content_faults: ContentFaults) -> Sandbox {
    Sandbox::start(SandboxConfig {
        mkp_links: 30,
        paypro_payments: 250,
        mkp_rate_limit: None,
        content_faults,
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn nothing_is_spoiled_by_default() {
    let sandbox = start(ContentFaults::default()).await;
    assert_eq!(sandbox.spoiled(), payments_sandbox::Spoiled::default());
}

#[tokio::test]
async fn invalid_utf8_is_one_byte_in_each_spoiled_record_and_nowhere_else() {
    let sandbox = start(ContentFaults {
        paypro_invalid_utf8_every: Some(7),
        mkp_invalid_utf8_every: Some(3),
        ..ContentFaults::default()
    })
    .await;
    let spoiled = sandbox.spoiled();
    let expected: Vec<String> = sandbox
        .paypro_payments()
        .iter()
        .skip(6)
        .step_by(7)
        .map(|p| p.id.clone())
        .collect();
    assert_eq!(spoiled.paypro_payments, expected);

    let (_, body) = get(
        &format!("{}/payments?limit=100", sandbox.paypro_base_url()),
        PAYPRO_KEY,
    )
    .await;
    assert!(std::str::from_utf8(&body).is_err());
    let text = String::from_utf8_lossy(&body);
    let page: Value = serde_json::from_str(&text).unwrap();
    let mut bad = Vec::new();
    for record in page["data"].as_array().unwrap() {
        let description = record["description"].as_str().unwrap();
        if description.contains('\u{FFFD}') {
            assert!(description.ends_with(" caf\u{FFFD}"), "{description}");
            bad.push(record["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(bad, expected[..bad.len()]);
    assert_eq!(bad.len(), 14, "positions 7, 14, … 98 of the first 100");
    assert_eq!(body.iter().filter(|b| **b == 0xE9).count(), 14);

    // MKP: payment k of link j when j + k + 1 is a multiple of 3.
    let links = sandbox.mkp_links();
    let big = 7;
    let (_, body) = get(
        &format!(
            "{}/payment-links/{}/payments",
            sandbox.mkp_base_url(),
            links[big].id
        ),
        MKP_KEY,
    )
    .await;
    let page: Value = serde_json::from_str(&String::from_utf8_lossy(&body)).unwrap();
    let bad: Vec<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["payersName"] == "Ren\u{FFFD}e de Vries")
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = sandbox.mkp_payments(&links[big].id)[..15]
        .iter()
        .enumerate()
        .filter(|(k, _)| (big + k + 1) % 3 == 0)
        .map(|(_, p)| p.id.clone())
        .collect();
    assert_eq!(bad, expected);
    assert!(
        spoiled
            .mkp_payments
            .iter()
            .filter(|p| p.link_id == links[big].id)
            .map(|p| p.id.clone())
            .take(5)
            .eq(expected)
    );
    // The link list is untouched.
    let (_, body) = get(
        &format!("{}/payment-links", sandbox.mkp_base_url()),
        MKP_KEY,
    )
    .await;
    assert!(std::str::from_utf8(&body).is_ok());
}

#[tokio::test]
async fn a_link_with_path_characters_is_listed_so_and_its_payments_are_404() {
    let sandbox = start(ContentFaults {
        mkp_path_id_every: Some(4),
        ..ContentFaults::default()
    })
    .await;
    let base = sandbox.mkp_base_url();
    let page = get_json(&format!("{base}/payment-links"), MKP_KEY).await;
    let listed = ids(&page);
    let links = sandbox.mkp_links();
    let spoiled = sandbox.spoiled().mkp_path_links;
    assert_eq!(spoiled.len(), 7, "links 4, 8, … 28 of 30");
    for (j, id) in listed.iter().enumerate() {
        if (j + 1) % 4 == 0 {
            assert_eq!(*id, format!("{}/../x", links[j].id));
            assert!(
                spoiled
                    .iter()
                    .any(|s| s.id == links[j].id && s.served_id == *id)
            );
        } else {
            assert_eq!(*id, links[j].id);
        }
    }
    let bad = &spoiled[0].served_id;
    for path in [
        format!("{base}/payment-links/{bad}/payments"),
        format!("{base}/payment-links/{}/payments", bad.replace('/', "%2F")),
    ] {
        assert_eq!(get(&path, MKP_KEY).await.0, 404, "{path}");
    }
}

#[tokio::test]
async fn oversized_pages_are_padded_past_the_size_and_keep_their_records() {
    let sandbox = start(ContentFaults {
        mkp_oversized_links: Some(OversizedLinks {
            every: 5,
            bytes: 50_000,
        }),
        paypro_oversized_pages: Some(OversizedPages {
            above_limit: 25,
            bytes: 60_000,
        }),
        ..ContentFaults::default()
    })
    .await;
    let links = sandbox.mkp_links();
    assert_eq!(
        sandbox.spoiled().mkp_oversized_links,
        [4, 9, 14, 19, 24, 29].map(|j| links[j].id.clone())
    );
    for (j, link) in links.iter().enumerate().take(10) {
        let url = format!(
            "{}/payment-links/{}/payments",
            sandbox.mkp_base_url(),
            link.id
        );
        let (_, body) = get(&url, MKP_KEY).await;
        let page: Value = serde_json::from_slice(&body).unwrap();
        let served = ids(&page);
        let generated: Vec<String> = sandbox
            .mkp_payments(&link.id)
            .into_iter()
            .take(15)
            .map(|p| p.id)
            .collect();
        assert_eq!(served, generated);
        if (j + 1) % 5 == 0 {
            assert!(body.len() > 50_000, "link {j}: {} bytes", body.len());
        } else {
            assert!(body.len() < 10_000, "link {j}: {} bytes", body.len());
            assert!(page.get("padding").is_none());
        }
    }
    let url = |limit: usize| format!("{}/payments?limit={limit}", sandbox.paypro_base_url());
    let (_, big) = get(&url(26), PAYPRO_KEY).await;
    let (_, small) = get(&url(25), PAYPRO_KEY).await;
    assert!(big.len() > 60_000 && small.len() < 30_000);
    let big: Value = serde_json::from_slice(&big).unwrap();
    assert_eq!(ids(&big).len(), 26);
}

#[tokio::test]
async fn php_envelopes_write_numbers_as_strings_links_relative_and_null_for_no_data() {
    let sandbox = Sandbox::start(SandboxConfig {
        mkp_links: 30,
        paypro_payments: 250,
        mkp_rate_limit: None,
        content_faults: ContentFaults {
            php_envelopes: true,
            ..ContentFaults::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let base = sandbox.mkp_base_url();
    let first = get_json(&format!("{base}/payment-links"), MKP_KEY).await;
    assert_eq!(first["current_page"], "1");
    assert_eq!(first["per_page"], "15");
    assert_eq!(first["next_page_url"], "/mkp/v1/payment-links?page=2");
    assert_eq!(first["first_page_url"], "/mkp/v1/payment-links?page=1");
    assert_eq!(first["path"], "/mkp/v1/payment-links");
    let second = get_json(&format!("{base}/payment-links?page=2"), MKP_KEY).await;
    assert_eq!(second["prev_page_url"], "/mkp/v1/payment-links?page=1");
    let beyond = get_json(&format!("{base}/payment-links?page=9"), MKP_KEY).await;
    assert_eq!(beyond["data"], Value::Null);
    let empty = sandbox
        .mkp_links()
        .into_iter()
        .find(|l| sandbox.mkp_payments(&l.id).is_empty())
        .unwrap();
    let page = get_json(
        &format!("{base}/payment-links/{}/payments", empty.id),
        MKP_KEY,
    )
    .await;
    assert_eq!(page["data"], Value::Null);

    let page = get_json(
        &format!("{}/payments?limit=100", sandbox.paypro_base_url()),
        PAYPRO_KEY,
    )
    .await;
    assert_eq!(page["count"], "100");
    assert_eq!(page["_links"]["self"], "payments?limit=100");
    let next = page["_links"]["next"].as_str().unwrap();
    assert!(next.starts_with("payments?limit=100&cursor="), "{next}");
    let next = get_json(&format!("{}/{next}", sandbox.paypro_base_url()), PAYPRO_KEY).await;
    assert!(
        next["_links"]["prev"]
            .as_str()
            .unwrap()
            .starts_with("payments?")
    );
    assert_eq!(ids(&next)[0], sandbox.paypro_payments()[100].id);

    // A foreign next link, when asked for, stays absolute.
    sandbox.set_faults(Faults {
        foreign_next: Some("http://127.0.0.1:9".into()),
        ..Faults::default()
    });
    let first = get_json(&format!("{base}/payment-links"), MKP_KEY).await;
    assert_eq!(
        first["next_page_url"],
        "http://127.0.0.1:9/mkp/v1/payment-links?page=2"
    );
}

#[tokio::test]
async fn content_faults_can_be_changed_while_serving() {
    let sandbox = start(ContentFaults::default()).await;
    let url = format!("{}/payments?limit=10", sandbox.paypro_base_url());
    assert!(std::str::from_utf8(&get(&url, PAYPRO_KEY).await.1).is_ok());
    sandbox.set_content_faults(ContentFaults {
        paypro_invalid_utf8_every: Some(1),
        ..ContentFaults::default()
    });
    assert!(std::str::from_utf8(&get(&url, PAYPRO_KEY).await.1).is_err());
    assert_eq!(sandbox.spoiled().paypro_payments.len(), 250);
}
