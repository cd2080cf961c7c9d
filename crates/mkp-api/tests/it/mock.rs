//! MkpSource against an in-process mock server: the exact requests, headers and cursors sent.

use mkp_api::{MkpClient, MkpSource, USER_AGENT};
use payments_model::{PaymentSource, SourceError};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "mkp_mock_key";

fn envelope(server: &MockServer, path: &str, data: Value, next_page: Option<u32>) -> Value {
    let base = format!("{}/v1{path}", server.uri());
    json!({
        "current_page": 1, "data": data, "first_page_url": format!("{base}?page=1"), "from": 1,
        "next_page_url": next_page.map(|n| format!("{base}?page={n}")), "path": base,
        "per_page": 15, "prev_page_url": null, "to": 1,
    })
}

fn link(id: &str) -> Value {
    json!({"id": id, "description": format!("Link {id}"), "currency": "EUR", "amount": "5.00",
           "reusable": false, "expiresAt": null, "status": "open", "checkoutUrl": "https://pay/x",
           "createdAt": "2024-04-29T21:00:00+02:00"})
}

fn payment(id: &str, link: &str) -> Value {
    json!({"id": id, "paymentLinkId": link, "currency": "EUR", "amount": "5.00", "status": "paid",
           "payersName": null, "integration": "mollie", "integrationId": "tr_1",
           "createdAt": "2024-04-29T21:00:00+02:00"})
}

async fn serve(server: &MockServer, at: &str, page: Option<&str>, body: Value) {
    let mock = Mock::given(method("GET")).and(path(format!("/v1{at}")));
    let mock = match page {
        Some(page) => mock.and(query_param("page", page)),
        None => mock.and(query_param_is_missing("page")),
    };
    mock.respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(server)
        .await;
}

fn client(server: &MockServer) -> MkpClient {
    MkpClient::with_config(MkpClient::config(&format!("{}/v1", server.uri()), KEY)).unwrap()
}

#[tokio::test]
async fn the_walk_sends_exactly_these_requests_in_this_order() {
    let server = MockServer::start().await;
    let links = "/payment-links";
    serve(
        &server,
        links,
        None,
        envelope(
            &server,
            links,
            json!([link("plk_a"), link("plk_b")]),
            Some(2),
        ),
    )
    .await;
    serve(
        &server,
        links,
        Some("2"),
        envelope(&server, links, json!([link("plk_c")]), None),
    )
    .await;
    let a = "/payment-links/plk_a/payments";
    serve(
        &server,
        a,
        None,
        envelope(&server, a, json!([payment("plp_1", "plk_a")]), Some(2)),
    )
    .await;
    serve(
        &server,
        a,
        Some("2"),
        envelope(&server, a, json!([payment("plp_2", "plk_a")]), None),
    )
    .await;
    let b = "/payment-links/plk_b/payments";
    serve(
        &server,
        b,
        None,
        envelope(&server, b, json!([payment("plp_3", "plk_b")]), None),
    )
    .await;
    let c = "/payment-links/plk_c/payments";
    serve(&server, c, None, envelope(&server, c, json!([]), None)).await;

    let source = MkpSource::new(client(&server));
    let mut cursor = None;
    let mut payments = Vec::new();
    loop {
        let page = source.page(cursor.as_ref()).await.unwrap();
        payments.extend(
            page.payments
                .into_iter()
                .map(|p| (p.source_id, p.description)),
        );
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let requests = server.received_requests().await.unwrap();
    let sent: Vec<String> = requests
        .iter()
        .map(|r| {
            format!(
                "{}{}",
                r.url.path(),
                r.url.query().map(|q| format!("?{q}")).unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        sent,
        [
            "/v1/payment-links",
            "/v1/payment-links/plk_a/payments",
            "/v1/payment-links/plk_a/payments?page=2",
            "/v1/payment-links/plk_b/payments",
            "/v1/payment-links?page=2",
            "/v1/payment-links/plk_c/payments",
        ]
    );
    for request in &requests {
        assert_eq!(
            request.headers["authorization"],
            format!("Bearer {KEY}").as_str()
        );
        assert_eq!(request.headers["user-agent"], USER_AGENT);
        assert!(USER_AGENT.starts_with("mkp-api/"));
    }
    let described = |id: &str, link: &str| (id.to_owned(), Some(format!("Link {link}")));
    assert_eq!(
        payments,
        [
            described("plp_1", "plk_a"),
            described("plp_2", "plk_a"),
            described("plp_3", "plk_b")
        ]
    );
}

#[tokio::test]
async fn a_body_that_is_not_the_envelope_is_a_bad_response_with_an_excerpt() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(format!("<html>maintenance {KEY}</html>")),
        )
        .mount(&server)
        .await;
    let err = client(&server).payment_links_page(None).await.unwrap_err();
    let SourceError::BadResponse {
        excerpt,
        status: 200,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(excerpt.starts_with("<html>maintenance"), "{excerpt}");
    assert!(!err.to_string().contains(KEY), "the key leaked into {err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_redirect_is_refused_not_followed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", "https://elsewhere.example/v1/payment-links"),
        )
        .mount(&server)
        .await;
    let err = client(&server).payment_links_page(None).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::Refused(m) if m.contains("elsewhere.example")),
        "{err:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_422_carries_the_providers_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(422)
                .set_body_json(json!({"code": 422, "message": "The page must be an integer."})),
        )
        .mount(&server)
        .await;
    let err = client(&server)
        .payment_links_page(Some("/payment-links?page=x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::Invalid { status: 422, message, .. } if message == "The page must be an integer."),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_link_deleted_after_it_was_listed_is_skipped_and_the_walk_goes_on() {
    let server = MockServer::start().await;
    let links = "/payment-links";
    serve(
        &server,
        links,
        None,
        envelope(
            &server,
            links,
            json!([link("plk_gone"), link("plk_b")]),
            None,
        ),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/v1/payment-links/plk_gone/payments"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"code": 404, "message": "Not found"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let b = "/payment-links/plk_b/payments";
    serve(
        &server,
        b,
        None,
        envelope(&server, b, json!([payment("plp_b1", "plk_b")]), None),
    )
    .await;

    let source = MkpSource::new(client(&server));
    let listing = source.page(None).await.unwrap();
    let gone = source.page(listing.next.as_ref()).await.unwrap();
    assert!(gone.payments.is_empty() && gone.rejected.is_empty());
    let next = gone.next.expect("the walk goes on to the next link");
    assert_eq!(next.groups.len(), 1);
    assert_eq!(next.groups[0].id, "plk_b");
    let b_page = source.page(Some(&next)).await.unwrap();
    assert_eq!(b_page.payments.len(), 1);
    assert_eq!(b_page.payments[0].id, "mkp:plp_b1");
    assert!(b_page.next.is_none());
}
