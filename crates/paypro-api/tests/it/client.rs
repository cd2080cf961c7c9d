//! PayProClient and PayProSource against the sandbox and an in-process mock server.

use std::collections::HashSet;
use std::time::Duration;

use payments_model::{Cursor, Page, PaymentSource, SourceError};
use payments_sandbox::{Burst, Faults, RetryAfterForm, Sandbox, SandboxConfig};
use paypro_api::{PayProClient, PayProSource, USER_AGENT, map_payments};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "pp_sandbox_key";

async fn sandbox(payments: usize, faults: Faults) -> Sandbox {
    Sandbox::start(SandboxConfig {
        paypro_payments: payments,
        faults,
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

fn source(base_url: &str, key: &str) -> PayProSource {
    PayProSource::new(PayProClient::with_config(PayProClient::config(base_url, key)).unwrap())
}

async fn walk(source: &PayProSource) -> Result<Vec<Page>, SourceError> {
    let (mut at, mut pages): (Option<Cursor>, Vec<Page>) = (None, Vec::new());
    loop {
        let page = source.page(at.as_ref()).await?;
        at = page.next.clone();
        pages.push(page);
        if at.is_none() {
            return Ok(pages);
        }
    }
}

#[tokio::test]
async fn a_25000_payment_account_yields_every_payment_exactly_once_mapped() {
    let sandbox = sandbox(25_000, Faults::default()).await;
    let pages = walk(&source(&sandbox.paypro_base_url(), KEY))
        .await
        .unwrap();
    assert_eq!(pages.len(), 250, "limit=100 by default");
    let got: Vec<_> = pages
        .into_iter()
        .flat_map(|p| {
            assert!(p.rejected.is_empty());
            p.payments
        })
        .collect();
    let records: Vec<Box<RawValue>> = sandbox
        .paypro_payments()
        .iter()
        .map(|p| RawValue::from_string(serde_json::to_string(p).unwrap()).unwrap())
        .collect();
    let expected = map_payments(&records).payments;
    assert_eq!(got.len(), 25_000);
    assert_eq!(
        got.iter().map(|p| &p.id).collect::<HashSet<_>>().len(),
        25_000,
        "duplicates"
    );
    assert_eq!(got, expected);
    assert!(
        sandbox
            .requests()
            .iter()
            .all(|r| r.path_and_query.contains("limit=100"))
    );
}

#[tokio::test]
async fn cursors_chain_exactly_as_the_api_links_them() {
    let server = MockServer::start().await;
    let base = server.uri();
    let record = |id: &str| json!({"id": id, "amount": 1000, "currency": "EUR", "state": "paid", "created_at": "2024-06-30T12:40:10Z"});
    let page = |ids: &[&str], next: Option<&str>| {
        let mut links = json!({"self": format!("{base}/payments")});
        if let Some(cursor) = next {
            links["next"] = Value::from(format!("{base}/payments?limit=100&cursor={cursor}"));
        }
        json!({"type": "list", "data": ids.iter().map(|id| record(id)).collect::<Vec<_>>(), "count": ids.len(), "_links": links})
    };
    let respond = |body: Value| ResponseTemplate::new(200).set_body_json(body);
    Mock::given(method("GET"))
        .and(path("/payments"))
        .and(wiremock::matchers::query_param_is_missing("cursor"))
        .respond_with(respond(page(&["PP1", "PP2"], Some("c2"))))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/payments"))
        .and(wiremock::matchers::query_param("cursor", "c2"))
        .respond_with(respond(page(&["PP3"], Some("c3"))))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/payments"))
        .and(wiremock::matchers::query_param("cursor", "c3"))
        .respond_with(respond(page(&[], None)))
        .expect(1)
        .mount(&server)
        .await;

    let pages = match walk(&source(&base, "pp_mock_key")).await {
        Ok(pages) => pages,
        Err(err) => panic!(
            "{err}; requests: {:?}",
            server
                .received_requests()
                .await
                .unwrap()
                .iter()
                .map(|r| r.url.to_string())
                .collect::<Vec<_>>()
        ),
    };
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|p| p.payments.iter().map(|p| p.source_id.clone()))
        .collect();
    assert_eq!(ids, ["PP1", "PP2", "PP3"]);
    let cursors: Vec<Option<String>> = pages
        .iter()
        .map(|p| p.next.as_ref().and_then(|c| c.listing.clone()))
        .collect();
    assert_eq!(
        cursors,
        [
            Some("/payments?limit=100&cursor=c2".to_owned()),
            Some("/payments?limit=100&cursor=c3".to_owned()),
            None
        ]
    );
    let requests = server.received_requests().await.unwrap();
    let sent: Vec<&str> = requests
        .iter()
        .map(|r| r.url.query().unwrap_or(""))
        .collect();
    assert_eq!(
        sent,
        ["limit=100", "limit=100&cursor=c2", "limit=100&cursor=c3"]
    );
    for request in &requests {
        assert_eq!(request.headers["authorization"], "Bearer pp_mock_key");
        assert_eq!(request.headers["user-agent"], USER_AGENT);
    }
}

#[tokio::test]
async fn a_wrong_key_says_which_variable_to_fix() {
    let sandbox = sandbox(10, Faults::default()).await;
    let err = source(&sandbox.paypro_base_url(), "pp_wrong_secret")
        .page(None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::Auth { status: 401, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("PAYPRO_API_KEY") && !err.to_string().contains("pp_wrong_secret"),
        "{err}"
    );
}

#[tokio::test]
async fn a_refused_cursor_carries_paypros_message_and_parameter() {
    let sandbox = sandbox(10, Faults::default()).await;
    let stale = Cursor {
        listing: Some("/payments?limit=100&cursor=bm90LWEtY3Vyc29y".to_owned()),
        ..Cursor::default()
    };
    let err = source(&sandbox.paypro_base_url(), KEY)
        .page(Some(&stale))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::Invalid { status: 422, message, .. } if message == "Invalid cursor (parameter `cursor`)"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_429_burst_reports_its_wait_in_either_form() {
    for form in [RetryAfterForm::Seconds, RetryAfterForm::HttpDate] {
        let burst = Burst {
            every: 1,
            length: 1,
            retry_after: Duration::from_secs(4),
            form,
        };
        let sandbox = sandbox(
            10,
            Faults {
                burst_429: Some(burst),
                ..Faults::default()
            },
        )
        .await;
        let err = source(&sandbox.paypro_base_url(), KEY)
            .page(None)
            .await
            .unwrap_err();
        let wait = err.retry_after().unwrap_or_else(|| panic!("{err:?}"));
        assert!(
            wait >= Duration::from_secs(3) && wait <= Duration::from_secs(6),
            "{form:?}: {wait:?}"
        );
        assert!(err.is_retryable());
    }
}

#[tokio::test]
async fn a_foreign_next_link_is_refused() {
    let sandbox = sandbox(
        300,
        Faults {
            foreign_next: Some("http://127.0.0.2:9".to_owned()),
            ..Faults::default()
        },
    )
    .await;
    let err = walk(&source(&sandbox.paypro_base_url(), KEY))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::Refused(m) if m.contains("http://127.0.0.2:9")),
        "{err:?}"
    );
    assert_eq!(sandbox.requests().len(), 1);
}

#[tokio::test]
async fn plain_http_is_refused_off_loopback_and_allowed_on_it() {
    let err = PayProClient::with_config(PayProClient::config("http://api.paypro.nl", "pp_x"))
        .unwrap_err();
    assert!(err.to_string().contains("plain http"), "{err}");
    assert!(PayProClient::with_config(PayProClient::config("http://localhost:1", "pp_x")).is_ok());
    assert_eq!(
        PayProClient::new("pp_x").unwrap().base_url(),
        "https://api.paypro.nl/"
    );
}
