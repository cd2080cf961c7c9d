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

fn record(id: &str) -> Value {
    json!({"id": id, "amount": 1000, "currency": "EUR", "state": "paid", "created_at": "2024-06-30T12:40:10Z"})
}

fn kept(pages: &[Page]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p.payments.iter().map(|p| p.source_id.clone()))
        .collect()
}

async fn sent(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{}?{}", r.url.path(), r.url.query().unwrap_or("")))
        .collect()
}

#[tokio::test]
async fn null_data_a_string_count_php_empty_links_and_a_relative_next_are_read_and_the_walk_completes()
 {
    let server = MockServer::start().await;
    let respond = |body: Value| ResponseTemplate::new(200).set_body_json(body);
    Mock::given(method("GET"))
        .and(path("/payments"))
        .and(wiremock::matchers::query_param_is_missing("cursor"))
        .respond_with(respond(json!({"type": "list", "count": "2", "data": [record("PP1"), record("PP2")],
                                     "_links": {"self": "/payments", "next": "/payments?limit=100&cursor=c2"}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/payments"))
        .and(wiremock::matchers::query_param("cursor", "c2"))
        .respond_with(respond(
            json!({"type": "list", "count": "1", "data": [record("PP3")],
                                     "_links": {"next": {"href": "?limit=100&cursor=c3"}}}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/payments"))
        .and(wiremock::matchers::query_param("cursor", "c3"))
        .respond_with(respond(
            json!({"type": "list", "count": 0, "data": null, "_links": []}),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let pages = walk(&source(&server.uri(), "pp_mock_key")).await.unwrap();
    assert_eq!(kept(&pages), ["PP1", "PP2", "PP3"]);
    assert!(pages.iter().all(|p| p.rejected.is_empty()));
    assert_eq!(
        pages[0].next.as_ref().unwrap().listing.as_deref(),
        Some("/payments?limit=100&cursor=c2"),
        "the cursor is the next page relative to the base URL"
    );
    assert_eq!(
        sent(&server).await,
        [
            "/payments?limit=100",
            "/payments?limit=100&cursor=c2",
            "/payments?limit=100&cursor=c3"
        ]
    );
}

#[tokio::test]
async fn a_next_link_to_another_listing_is_refused_naming_it_and_never_followed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/payments"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"type": "list", "data": [record("PP1")],
            "_links": {"next": format!("{}/customers?limit=100&cursor=c2", server.uri())}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = source(&server.uri(), "pp_mock_key")
        .page(None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::Refused(m) if m.contains("/customers?limit=100&cursor=c2") && m.contains("another listing")),
        "{err}"
    );
    assert_eq!(sent(&server).await, ["/payments?limit=100"]);
}

#[tokio::test]
async fn a_payment_whose_bytes_are_not_utf8_is_set_aside_named_and_the_rest_of_the_page_kept() {
    let server = MockServer::start().await;
    let mut body = br#"{"type": "list", "count": 3, "_links": {}, "data": ["#.to_vec();
    body.extend_from_slice(record("PP1").to_string().as_bytes());
    body.extend_from_slice(b", {\"id\": \"PP2\", \"amount\": 1000, \"currency\": \"EUR\", \"state\": \"paid\", \"description\": \"Factuur caf\xE9\", \"created_at\": \"2024-06-30T12:40:10Z\"}, ");
    body.extend_from_slice(record("PP3").to_string().as_bytes());
    body.extend_from_slice(b"]}");
    let offset = body.iter().position(|b| *b == 0xE9).unwrap();
    Mock::given(method("GET"))
        .and(path("/payments"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;

    let pages = walk(&source(&server.uri(), "pp_mock_key")).await.unwrap();
    assert_eq!(kept(&pages), ["PP1", "PP3"], "the rest of the page is kept");
    let rejected = &pages[0].rejected;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].source_id.as_deref(), Some("PP2"));
    assert_eq!(
        rejected[0].reason,
        format!(
            "record `PP2`: field `description`: byte 0xE9 at offset {offset} of the page body is not valid UTF-8"
        )
    );
    assert!(
        rejected[0]
            .raw
            .contains(r#""description": "Factuur caf\xE9""#),
        "{}",
        rejected[0].raw
    );
}

#[tokio::test]
async fn amounts_and_dates_as_php_writes_them_are_kept_and_ambiguous_ones_refused_by_name() {
    let server = MockServer::start().await;
    let with = |id: &str, field: &str, value: Value| {
        let mut r = record(id);
        r[field] = value;
        r
    };
    let data = json!([
        with("PPSTRING", "amount", json!("1295")),
        with("PPSPACES", "amount", json!(" 1295 ")),
        with("PPNOPAID", "paid_at", json!("")),
        with("PPCOMPACT", "created_at", json!("2024-06-30T14:40:10+0200")),
        with("PPREFSTR", "refunded_amount", json!("1000")),
        with("PPDECIMAL", "amount", json!("12.95")),
        with("PPTHOUSANDS", "amount", json!("1,295")),
        with("PPFLOAT", "amount", json!(12.5)),
        with("PPNEGATIVE", "amount", json!("-5")),
        with("PPNOOFFSET", "created_at", json!("2024-06-30 12:40:10")),
    ]);
    Mock::given(method("GET"))
        .and(path("/payments"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"type": "list", "data": data, "_links": {}})),
        )
        .mount(&server)
        .await;

    let pages = walk(&source(&server.uri(), "pp_mock_key")).await.unwrap();
    let shown: Vec<(&str, String, String, Option<String>, &str)> = pages[0]
        .payments
        .iter()
        .map(|p| {
            (
                p.source_id.as_str(),
                p.amount.amount_string(),
                payments_model::format_timestamp(&p.created_at),
                p.paid_at.map(|t| payments_model::format_timestamp(&t)),
                p.status.as_str(),
            )
        })
        .collect();
    let utc = "2024-06-30T12:40:10Z".to_owned();
    assert_eq!(
        shown,
        [
            ("PPSTRING", "12.95".into(), utc.clone(), None, "paid"),
            ("PPSPACES", "12.95".into(), utc.clone(), None, "paid"),
            ("PPNOPAID", "10.00".into(), utc.clone(), None, "paid"),
            (
                "PPCOMPACT",
                "10.00".into(),
                "2024-06-30T14:40:10+02:00".into(),
                None,
                "paid"
            ),
            ("PPREFSTR", "10.00".into(), utc, None, "refunded"),
        ]
    );
    let expect = [
        (
            "PPDECIMAL",
            "amount",
            "`12.95` is not a whole number of minor units (cents)",
        ),
        (
            "PPTHOUSANDS",
            "amount",
            "`1,295` is not a whole number of minor units (cents)",
        ),
        (
            "PPFLOAT",
            "amount",
            "a number with a fraction or an exponent is not a whole number",
        ),
        ("PPNEGATIVE", "amount", "-5 is negative"),
        (
            "PPNOOFFSET",
            "created_at",
            "`2024-06-30 12:40:10` is not an RFC 3339 timestamp with an offset",
        ),
    ];
    let rejected = &pages[0].rejected;
    assert_eq!(rejected.len(), expect.len(), "{rejected:#?}");
    for (r, (id, field, problem)) in rejected.iter().zip(expect) {
        assert_eq!(r.source_id.as_deref(), Some(id));
        let named = format!("record `{id}`: field `{field}`: {problem}");
        assert!(
            r.reason.starts_with(&named),
            "{}\n  wanted: {named}",
            r.reason
        );
    }
}

/// The size of a page of `n` of the sandbox's payments, roughly (without their links).
fn page_bytes(sandbox: &Sandbox, n: usize) -> usize {
    serde_json::to_vec(&sandbox.paypro_payments()[..n])
        .unwrap()
        .len()
}

#[tokio::test]
async fn pages_over_the_body_cap_are_asked_for_again_smaller_and_the_walk_completes() {
    let sandbox = sandbox(500, Faults::default()).await;
    // A cap that a page of 100 and of 50 exceed, and a page of 25 fits.
    let cap = page_bytes(&sandbox, 100) * 4 / 10;
    let mut config = PayProClient::config(&sandbox.paypro_base_url(), KEY);
    config.max_body_bytes = cap;
    let source = PayProSource::new(PayProClient::with_config(config).unwrap());

    let (mut at, mut cursors, mut got) = (None::<Cursor>, Vec::new(), Vec::new());
    loop {
        let page = source.page(at.as_ref()).await.unwrap();
        assert!(page.rejected.is_empty());
        got.extend(page.payments.into_iter().map(|p| p.source_id));
        at = page.next;
        match &at {
            Some(next) => cursors.push(serde_json::to_string(next).unwrap()),
            None => break,
        }
    }
    let expected: Vec<String> = sandbox
        .paypro_payments()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(got, expected, "every payment exactly once, in order");
    assert_eq!(
        cursors.iter().collect::<HashSet<_>>().len(),
        cursors.len(),
        "no cursor repeats, so the engine's guard never trips"
    );
    let requests: Vec<String> = sandbox
        .requests()
        .into_iter()
        .map(|r| r.path_and_query)
        .collect();
    let limit = |r: &str| {
        r.split(['?', '&'])
            .find_map(|p| p.strip_prefix("limit="))
            .map(str::to_owned)
    };
    assert_eq!(
        requests
            .iter()
            .filter_map(|r| limit(r))
            .take(4)
            .collect::<Vec<_>>(),
        ["100", "50", "25", "100"],
        "halved until the page fits, then full pages again: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .all(|r| limit(r).is_some_and(|l| ["100", "50", "25"].contains(&l.as_str()))),
        "{requests:?}"
    );
}

#[tokio::test]
async fn a_single_payment_over_the_body_cap_fails_clearly_at_limit_one() {
    let sandbox = sandbox(50, Faults::default()).await;
    let mut config = PayProClient::config(&sandbox.paypro_base_url(), KEY);
    config.max_body_bytes = 64;
    let source = PayProSource::new(PayProClient::with_config(config).unwrap());
    let err = walk(&source).await.unwrap_err();
    let SourceError::BodyTooLarge { cap: 64, what, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        what.starts_with("/payments?limit=1")
            && what.ends_with("(a single item, the smallest page there is)"),
        "{what}"
    );
    assert!(err.to_string().contains("raise the body cap"), "{err}");
    assert!(!err.is_retryable());
    let limits: Vec<String> = sandbox
        .requests()
        .into_iter()
        .map(|r| r.path_and_query)
        .collect();
    assert_eq!(
        limits,
        [
            "/paypro/payments?limit=100",
            "/paypro/payments?limit=50",
            "/paypro/payments?limit=25",
            "/paypro/payments?limit=12",
            "/paypro/payments?limit=6",
            "/paypro/payments?limit=3",
            "/paypro/payments?limit=1",
        ]
    );
}
