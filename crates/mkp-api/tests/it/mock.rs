//! MkpSource against an in-process mock server: the exact requests, headers and cursors sent.

use mkp_api::{MkpClient, MkpSource, USER_AGENT};
use payments_model::{Cursor, Page, PaymentSource, Rejected, SourceError};
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

/// Every page of a walk from the start until `next` is `None`, or the first error.
async fn walk(source: &MkpSource) -> Result<Vec<Page>, SourceError> {
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

/// The ids of the payments kept over a walk, in order.
fn kept(pages: &[Page]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p.payments.iter().map(|p| p.source_id.clone()))
        .collect()
}

fn set_aside(pages: &[Page]) -> Vec<&Rejected> {
    pages.iter().flat_map(|p| &p.rejected).collect()
}

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

async fn serve_raw(server: &MockServer, at: &str, page: Option<&str>, body: Vec<u8>) {
    let mock = Mock::given(method("GET")).and(path(format!("/v1{at}")));
    let mock = match page {
        Some(page) => mock.and(query_param("page", page)),
        None => mock.and(query_param_is_missing("page")),
    };
    mock.respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn string_page_numbers_null_data_and_relative_next_links_are_read_and_the_walk_completes() {
    let server = MockServer::start().await;
    let links = "/payment-links";
    // PHP's `1` for true and a number for the link's (unused) amount never cost the link.
    let mut plk_a = link("plk_a");
    plk_a["reusable"] = json!(1);
    plk_a["amount"] = json!(5);
    // Page numbers as strings, no `from`/`to`, and a root-relative next link.
    serve(
        &server,
        links,
        None,
        json!({"current_page": "1", "per_page": "15", "data": [plk_a],
               "next_page_url": "/v1/payment-links?page=2", "path": null}),
    )
    .await;
    // The last page: `data: null`, and no page numbers at all.
    serve(
        &server,
        links,
        Some("2"),
        json!({"data": null, "next_page_url": null}),
    )
    .await;
    let a = "/payment-links/plk_a/payments";
    // A next link relative to the request (`?page=2`), then a last page with `data: null`.
    serve(
        &server,
        a,
        None,
        json!({"current_page": 1, "per_page": "15", "data": [payment("plp_1", "plk_a")], "next_page_url": "?page=2"}),
    )
    .await;
    serve(
        &server,
        a,
        Some("2"),
        json!({"current_page": "2", "data": [payment("plp_2", "plk_a")], "next_page_url": ""}),
    )
    .await;

    let pages = walk(&MkpSource::new(client(&server))).await.unwrap();
    assert_eq!(kept(&pages), ["plp_1", "plp_2"]);
    assert!(set_aside(&pages).is_empty());
    assert_eq!(
        sent(&server).await,
        [
            "/v1/payment-links",
            "/v1/payment-links/plk_a/payments",
            "/v1/payment-links/plk_a/payments?page=2",
            "/v1/payment-links?page=2",
        ]
    );
    let cursors: Vec<Option<String>> = pages
        .iter()
        .filter_map(|p| p.next.as_ref().map(|c| c.listing.clone()))
        .collect();
    assert_eq!(
        cursors[0].as_deref(),
        Some("/payment-links?page=2"),
        "cursors keep next pages relative to the base URL"
    );
}

#[tokio::test]
async fn a_next_link_to_another_listing_is_refused_naming_it_and_never_followed() {
    let server = MockServer::start().await;
    let links = "/payment-links";
    serve(
        &server,
        links,
        None,
        json!({"current_page": 1, "data": [link("plk_a")], "next_page_url": format!("{}/v1/customers?page=2", server.uri())}),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope(
            &server,
            "/customers",
            json!([{"id": "cus_1", "status": "open"}]),
            None,
        )))
        .expect(0)
        .mount(&server)
        .await;
    let err = MkpSource::new(client(&server))
        .page(None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::Refused(m) if m.contains("/v1/customers?page=2") && m.contains("another listing")),
        "{err}"
    );
    assert!(!err.is_retryable());

    // The same within a link's payments: another link's listing is refused too.
    let a = "/payment-links/plk_a/payments";
    serve(
        &server,
        a,
        None,
        json!({"data": [payment("plp_1", "plk_a")], "next_page_url": "/v1/payment-links/plk_b/payments?page=2"}),
    )
    .await;
    let group = payments_model::Group {
        id: "plk_a".into(),
        status: "open".into(),
        open: true,
        description: None,
        created_at: None,
    };
    let err = client(&server)
        .link_payments_page(&group, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::Refused(m) if m.contains("/v1/payment-links/plk_b/payments?page=2")),
        "{err}"
    );
    assert!(
        !sent(&server)
            .await
            .iter()
            .any(|r| r.contains("customers") || r.contains("plk_b")),
        "the refused links were requested"
    );
}

#[tokio::test]
async fn a_payment_whose_bytes_are_not_utf8_is_set_aside_named_and_the_rest_of_the_page_kept() {
    let server = MockServer::start().await;
    let links = "/payment-links";
    // A link whose description is Latin-1 is set aside too; the others are read.
    let mut links_body = br#"{"current_page": 1, "data": ["#.to_vec();
    links_body.extend_from_slice(link("plk_a").to_string().as_bytes());
    links_body.extend_from_slice(b", {\"id\": \"plk_latin\", \"description\": \"Caf\xE9\", \"status\": \"open\"}], \"next_page_url\": null}");
    serve_raw(&server, links, None, links_body).await;
    let a = "/payment-links/plk_a/payments";
    let mut body = br#"{"current_page": 1, "data": ["#.to_vec();
    body.extend_from_slice(payment("plp_1", "plk_a").to_string().as_bytes());
    body.extend_from_slice(b", ");
    let bad_at = body.len();
    body.extend_from_slice(
        b"{\"id\": \"plp_2\", \"paymentLinkId\": \"plk_a\", \"currency\": \"EUR\", \"amount\": \"5.00\", \"status\": \"paid\", \"payersName\": \"Jos\xE9 M\xFCller\", \"createdAt\": \"2024-04-29T21:00:00+02:00\"}",
    );
    body.extend_from_slice(b", ");
    body.extend_from_slice(payment("plp_3", "plk_a").to_string().as_bytes());
    body.extend_from_slice(br#"], "next_page_url": null}"#);
    let offset = bad_at + body[bad_at..].iter().position(|b| *b == 0xE9).unwrap();
    serve_raw(&server, a, None, body).await;

    let pages = walk(&MkpSource::new(client(&server))).await.unwrap();
    assert_eq!(
        kept(&pages),
        ["plp_1", "plp_3"],
        "the rest of the page is kept"
    );
    let rejected = set_aside(&pages);
    let [latin, plp_2] = rejected.as_slice() else {
        panic!("{rejected:?}")
    };
    assert_eq!(latin.source_id.as_deref(), Some("plk_latin"));
    assert!(
        latin.reason.starts_with(
            "payment link record `plk_latin`: field `description`: byte 0xE9 at offset"
        ),
        "{}",
        latin.reason
    );
    assert_eq!(plp_2.source_id.as_deref(), Some("plp_2"));
    assert_eq!(
        plp_2.reason,
        format!(
            "record `plp_2`: field `payersName`: byte 0xE9 at offset {offset} of the page body is not valid UTF-8 (and 1 more byte)"
        )
    );
    assert!(
        plp_2.raw.contains(r#""payersName": "Jos\xE9 M\xFCller""#),
        "the bytes are kept, escaped: {}",
        plp_2.raw
    );
    assert!(
        !sent(&server).await.iter().any(|r| r.contains("plk_latin")),
        "a link that could not be read has no payments to request"
    );
}

#[tokio::test]
async fn amounts_and_offsets_as_laravel_writes_them_are_kept_and_ambiguous_ones_refused_by_name() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/payment-links",
        None,
        json!({"data": [link("plk_a")], "next_page_url": null}),
    )
    .await;
    let record = |id: &str, amount: Value, created_at: &str| {
        let mut p = payment(id, "plk_a");
        p["amount"] = amount;
        p["createdAt"] = Value::from(created_at);
        p
    };
    let at = "2024-04-29T21:00:00+02:00";
    let data = json!([
        record("plp_number", json!(12.95), at),
        record("plp_spaces", json!(" 12.95 "), at),
        record("plp_whole", json!(25), at),
        record("plp_compact", json!("1.50"), "2024-04-29T21:00:00+0200"),
        record("plp_hours", json!("1.50"), "2024-04-29T21:00:00+02"),
        record("plp_thousands", json!("1,000.00"), at),
        record("plp_european", json!("1.000,00"), at),
        record("plp_negative", json!("-5.00"), at),
        record("plp_negnum", json!(-5.00), at),
        record("plp_inexact", json!(12.951), at),
        record("plp_nooffset", json!("5.00"), "2024-04-29T21:00:00"),
    ]);
    serve(
        &server,
        "/payment-links/plk_a/payments",
        None,
        json!({"data": data, "next_page_url": null}),
    )
    .await;

    let pages = walk(&MkpSource::new(client(&server))).await.unwrap();
    let payments: Vec<_> = pages.iter().flat_map(|p| &p.payments).collect();
    let shown: Vec<(&str, String, String)> = payments
        .iter()
        .map(|p| {
            (
                p.source_id.as_str(),
                p.amount.amount_string(),
                payments_model::format_timestamp(&p.created_at),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("plp_number", "12.95".into(), at.into()),
            ("plp_spaces", "12.95".into(), at.into()),
            ("plp_whole", "25.00".into(), at.into()),
            ("plp_compact", "1.50".into(), at.into()),
            ("plp_hours", "1.50".into(), at.into()),
        ]
    );
    let refused: Vec<(Option<&str>, &str)> = set_aside(&pages)
        .iter()
        .map(|r| (r.source_id.as_deref(), r.reason.as_str()))
        .collect();
    let expect = [
        (
            "plp_thousands",
            "amount",
            "`1,000.00` is not a decimal amount",
        ),
        (
            "plp_european",
            "amount",
            "`1.000,00` is not a decimal amount",
        ),
        ("plp_negative", "amount", "`-5.00` is negative"),
        ("plp_negnum", "amount", "`-5.0` is negative"),
        ("plp_inexact", "amount", "`12.951` is not exact in EUR"),
        (
            "plp_nooffset",
            "createdAt",
            "`2024-04-29T21:00:00` is not an RFC 3339 timestamp with an offset",
        ),
    ];
    assert_eq!(refused.len(), expect.len(), "{refused:#?}");
    for ((id, reason), (want_id, field, problem)) in refused.iter().zip(expect) {
        assert_eq!(*id, Some(want_id));
        let named = format!("record `{want_id}`: field `{field}`: {problem}");
        assert!(reason.starts_with(&named), "{reason}\n  wanted: {named}");
    }
}

#[tokio::test]
async fn a_link_whose_id_holds_path_characters_is_set_aside_and_its_payments_never_requested() {
    let server = MockServer::start().await;
    let bad = "plk_1/../../x";
    serve(
        &server,
        "/payment-links",
        None,
        json!({"data": [link("plk_a"), link(bad), link("plk_b")], "next_page_url": null}),
    )
    .await;
    for id in ["plk_a", "plk_b"] {
        let at = format!("/payment-links/{id}/payments");
        serve(
            &server,
            &at,
            None,
            json!({"data": [payment(&format!("plp_{id}"), id)], "next_page_url": null}),
        )
        .await;
    }

    let pages = walk(&MkpSource::new(client(&server))).await.unwrap();
    assert_eq!(
        kept(&pages),
        ["plp_plk_a", "plp_plk_b"],
        "the walk goes on past it"
    );
    let rejected = set_aside(&pages);
    let [link_set_aside] = rejected.as_slice() else {
        panic!("{rejected:?}")
    };
    assert_eq!(link_set_aside.source_id.as_deref(), Some(bad));
    assert!(
        link_set_aside.reason.starts_with(&format!(
            "payment link record `{bad}`: field `id`: `{bad}` holds `/`"
        )) && link_set_aside
            .reason
            .ends_with("its payments are not requested"),
        "{}",
        link_set_aside.reason
    );
    assert_eq!(
        serde_json::from_str::<Value>(&link_set_aside.raw).unwrap(),
        link(bad),
        "the link is kept as sent"
    );
    assert!(
        pages.iter().all(|p| p.groups.iter().all(|g| g.id != bad)),
        "it is not listed as a group"
    );
    assert_eq!(
        sent(&server).await,
        [
            "/v1/payment-links",
            "/v1/payment-links/plk_a/payments",
            "/v1/payment-links/plk_b/payments",
        ]
    );
}

#[tokio::test]
async fn a_link_queued_with_a_path_id_by_an_older_checkpoint_is_set_aside_not_failed_on() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/payment-links/plk_b/payments",
        None,
        json!({"data": [payment("plp_b", "plk_b")], "next_page_url": null}),
    )
    .await;
    let group = |id: &str| payments_model::Group {
        id: id.into(),
        status: "open".into(),
        open: true,
        description: None,
        created_at: None,
    };
    let stored = Cursor {
        listing: None,
        groups: vec![group("plk_1/../../x"), group("plk_b")],
        group_page: None,
    };
    let source = MkpSource::new(client(&server));
    let page = source.page(Some(&stored)).await.unwrap();
    assert_eq!(page.rejected.len(), 1);
    assert_eq!(page.rejected[0].source_id.as_deref(), Some("plk_1/../../x"));
    assert!(
        page.rejected[0].reason.contains("field `id`"),
        "{}",
        page.rejected[0].reason
    );
    let next = page.next.unwrap();
    assert_eq!(next.groups, [group("plk_b")]);
    let page = source.page(Some(&next)).await.unwrap();
    assert_eq!(page.payments[0].source_id, "plp_b");
    assert!(page.next.is_none());
    assert_eq!(sent(&server).await, ["/v1/payment-links/plk_b/payments"]);
}

#[tokio::test]
async fn a_link_whose_payments_page_is_over_the_body_cap_is_set_aside_and_the_walk_goes_on() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/payment-links",
        None,
        json!({"data": [link("plk_a"), link("plk_big"), link("plk_b")], "next_page_url": null}),
    )
    .await;
    for id in ["plk_a", "plk_b"] {
        serve(
            &server,
            &format!("/payment-links/{id}/payments"),
            None,
            json!({"data": [payment(&format!("plp_{id}"), id)], "next_page_url": null}),
        )
        .await;
    }
    let mut huge = payment("plp_huge", "plk_big");
    huge["payersName"] = Value::from("x".repeat(20_000));
    serve(
        &server,
        "/payment-links/plk_big/payments",
        None,
        json!({"data": [huge], "next_page_url": null}),
    )
    .await;
    let mut config = MkpClient::config(&format!("{}/v1", server.uri()), KEY);
    config.max_body_bytes = 8 * 1024;
    let source = MkpSource::new(MkpClient::with_config(config).unwrap());

    let pages = walk(&source).await.unwrap();
    assert_eq!(kept(&pages), ["plp_plk_a", "plp_plk_b"]);
    let rejected = set_aside(&pages);
    let [big] = rejected.as_slice() else {
        panic!("{rejected:?}")
    };
    assert_eq!(big.source_id.as_deref(), Some("plk_big"));
    assert_eq!(
        big.reason,
        "payment link `plk_big`: its payments page `/payment-links/plk_big/payments` is over the body cap of 8192 bytes, so its payments from that page on were not read; raise the body cap to read them"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&big.raw).unwrap()["id"],
        "plk_big",
        "the link as listed is kept"
    );
}
