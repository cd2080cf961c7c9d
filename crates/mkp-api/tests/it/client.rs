//! MkpClient and MkpSource against the sandbox, over real loopback HTTP.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mkp_api::{MkpClient, MkpSource, map_links, map_payments};
use payments_model::{Cursor, Group, Payment, PaymentSource, Rejected, SourceError, TransportKind};
use payments_sandbox::{Faults, RateLimitWindow, Sandbox, SandboxConfig};
use serde_json::value::RawValue;

const KEY: &str = "mkp_sandbox_key";

fn client_with(sandbox: &Sandbox, key: &str) -> MkpClient {
    MkpClient::with_config(MkpClient::config(&sandbox.mkp_base_url(), key)).unwrap()
}

fn source(sandbox: &Sandbox) -> MkpSource {
    MkpSource::new(client_with(sandbox, KEY))
}

async fn sandbox(links: usize, faults: Faults) -> Sandbox {
    Sandbox::start(SandboxConfig {
        mkp_links: links,
        mkp_rate_limit: None,
        faults,
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

/// Every page of a walk from `start`, with the cursor each page was fetched at.
async fn walk(
    source: &MkpSource,
    start: Option<Cursor>,
) -> Result<Vec<(Option<Cursor>, payments_model::Page)>, SourceError> {
    let (mut at, mut pages) = (start, Vec::new());
    loop {
        let page = source.page(at.as_ref()).await?;
        let next = page.next.clone();
        pages.push((at, page));
        match next {
            Some(next) => at = Some(next),
            None => return Ok(pages),
        }
    }
}

fn raw<T: serde::Serialize>(record: &T) -> Box<RawValue> {
    RawValue::from_string(serde_json::to_string(record).unwrap()).unwrap()
}

/// The sandbox's data set, mapped the way the client maps what it receives.
fn expected(sandbox: &Sandbox) -> HashMap<String, Payment> {
    let links: Vec<_> = sandbox.mkp_links().iter().map(raw).collect();
    let (groups, rejected) = map_links(&links);
    assert!(rejected.is_empty());
    let mut payments = HashMap::new();
    for group in &groups {
        let records: Vec<_> = sandbox.mkp_payments(&group.id).iter().map(raw).collect();
        for payment in map_payments(&records, Some(group)).payments {
            payments.insert(payment.id.clone(), payment);
        }
    }
    payments
}

#[tokio::test]
async fn a_200_link_account_yields_every_payment_exactly_once_mapped() {
    let sandbox = sandbox(200, Faults::default()).await;
    let pages = walk(&source(&sandbox), None).await.unwrap();
    let mut got: HashMap<String, Payment> = HashMap::new();
    let mut rejected: Vec<Rejected> = Vec::new();
    for (_, page) in pages {
        rejected.extend(page.rejected);
        for payment in page.payments {
            let id = payment.id.clone();
            assert!(got.insert(id.clone(), payment).is_none(), "{id} came twice");
        }
    }
    assert!(rejected.is_empty(), "{rejected:?}");
    let expected = expected(&sandbox);
    assert!(
        expected.len() > 1000,
        "the account is not a real test: {} payments",
        expected.len()
    );
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
    assert!(
        got.values().any(|p| p.description.is_some()),
        "link descriptions were not carried"
    );
}

#[tokio::test]
async fn a_walk_resumes_from_any_cursor_with_the_same_remainder() {
    let sandbox = sandbox(40, Faults::default()).await;
    let source = source(&sandbox);
    let pages = walk(&source, None).await.unwrap();
    assert!(pages.len() > 10);
    for (at, page) in pages.iter().step_by(3) {
        // A checkpoint stores the cursor as JSON; resume from what was stored.
        let stored = at.as_ref().map(|c| serde_json::to_string(c).unwrap());
        let restored = stored.map(|s| serde_json::from_str::<Cursor>(&s).unwrap());
        let resumed = walk(&source, restored).await.unwrap();
        let suffix: Vec<_> = pages
            .iter()
            .skip_while(|(a, _)| a != at)
            .map(|(_, p)| p.clone())
            .collect();
        assert_eq!(
            resumed.into_iter().map(|(_, p)| p).collect::<Vec<_>>(),
            suffix
        );
        assert_eq!(suffix[0], *page);
    }
}

#[tokio::test]
async fn only_the_given_links_are_read() {
    let sandbox = sandbox(40, Faults::default()).await;
    let links = sandbox.mkp_links();
    let wanted = [links[3].id.clone(), links[7].id.clone()];
    let source = MkpSource::new(client_with(&sandbox, KEY)).only_links(wanted.clone());
    let pages = walk(&source, None).await.unwrap();
    let ids: Vec<String> = pages
        .iter()
        .flat_map(|(_, p)| {
            p.payments
                .iter()
                .map(|p| p.payment_link_id.clone().unwrap())
        })
        .collect();
    assert!(!ids.is_empty());
    assert!(ids.iter().all(|id| wanted.contains(id)));
    let payment_requests = sandbox
        .requests()
        .iter()
        .filter(|r| r.path_and_query.contains("/payments"))
        .count();
    assert!(
        payment_requests
            <= 1 + sandbox.mkp_payments(&wanted[0]).len() / 15
                + 1
                + sandbox.mkp_payments(&wanted[1]).len() / 15
                + 1
    );
}

#[tokio::test]
async fn rate_limit_headers_are_reported_on_every_page() {
    let window = RateLimitWindow {
        limit: 50,
        window: Duration::from_secs(60),
    };
    let sandbox = Sandbox::start(SandboxConfig {
        mkp_links: 10,
        mkp_rate_limit: Some(window),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let pages = walk(&source(&sandbox), None).await.unwrap();
    for (i, (_, page)) in pages.iter().enumerate() {
        assert_eq!(page.rate_limit.limit, Some(50));
        assert_eq!(page.rate_limit.remaining, Some(50 - 1 - i as u32));
    }
}

#[tokio::test]
async fn a_wrong_key_and_a_key_without_scope_say_what_to_do_without_showing_the_key() {
    let sandbox = sandbox(5, Faults::default()).await;
    let err = client_with(&sandbox, "mkp_wrong_secret")
        .payment_links_page(None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::Auth { status: 401, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("MKP_API_KEY") && !message.contains("mkp_wrong_secret"),
        "{message}"
    );
    assert!(!format!("{err:?}").contains("mkp_wrong_secret"));
    assert!(!err.is_retryable());

    let err = client_with(&sandbox, "mkp_sandbox_noscope")
        .payment_links_page(None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::Auth { status: 403, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("paymentlinks.read"), "{err}");
    assert!(!err.to_string().contains("mkp_sandbox_noscope"));
}

#[tokio::test]
async fn an_unknown_link_is_not_found() {
    let sandbox = sandbox(5, Faults::default()).await;
    let err = client_with(&sandbox, KEY)
        .link_payments_page(
            &Group {
                id: "plk_000999deadbeef".into(),
                status: "open".into(),
                open: true,
                description: None,
                created_at: None,
            },
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::NotFound { what, .. } if what.contains("plk_000999deadbeef")),
        "{err:?}"
    );
    assert!(err.to_string().contains("Payment link not found."), "{err}");
    let link = &sandbox.mkp_links()[2];
    let fetched = client_with(&sandbox, KEY)
        .payment_link(&link.id)
        .await
        .unwrap();
    assert_eq!(fetched.value.id, link.id);
    let err = client_with(&sandbox, KEY)
        .payment_link("plk_../../x")
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::BadCursor(_)), "{err:?}");
}

#[tokio::test]
async fn the_rate_limit_yields_a_retryable_429_with_its_wait() {
    let window = RateLimitWindow {
        limit: 2,
        window: Duration::from_secs(2),
    };
    let sandbox = Sandbox::start(SandboxConfig {
        mkp_links: 5,
        mkp_rate_limit: Some(window),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let client = client_with(&sandbox, KEY);
    client.payment_links_page(None).await.unwrap();
    client.payment_links_page(None).await.unwrap();
    let err = client.payment_links_page(None).await.unwrap_err();
    let SourceError::RateLimited {
        retry_after,
        rate_limit,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(
        retry_after.is_some_and(|w| w > Duration::ZERO && w <= Duration::from_secs(3)),
        "{retry_after:?}"
    );
    assert_eq!(rate_limit.remaining, Some(0));
    assert!(rate_limit.reset.is_some());
    assert!(err.is_retryable());
}

#[tokio::test]
async fn server_errors_dropped_connections_cut_bodies_and_timeouts_are_retryable_transport_kinds() {
    let cases = [
        (
            Faults {
                server_error_rate: 1.0,
                ..Faults::default()
            },
            "server",
        ),
        (
            Faults {
                reset_rate: 1.0,
                ..Faults::default()
            },
            "connection",
        ),
        (
            Faults {
                truncate_rate: 1.0,
                ..Faults::default()
            },
            "truncated",
        ),
        (
            Faults {
                latency: Duration::from_millis(600),
                ..Faults::default()
            },
            "timeout",
        ),
    ];
    for (faults, expected) in cases {
        let sandbox = sandbox(5, faults).await;
        let mut config = MkpClient::config(&sandbox.mkp_base_url(), KEY);
        config.timeout = Duration::from_millis(300);
        let err = MkpClient::with_config(config)
            .unwrap()
            .payment_links_page(None)
            .await
            .unwrap_err();
        let kind = match &err {
            SourceError::Server { status, .. } if *status >= 500 => "server",
            SourceError::Transport {
                kind: TransportKind::Connection,
                ..
            } => "connection",
            SourceError::Transport {
                kind: TransportKind::Truncated,
                ..
            } => "truncated",
            SourceError::Transport {
                kind: TransportKind::Timeout,
                ..
            } => "timeout",
            _ => "other",
        };
        assert_eq!(kind, expected, "{err:?}");
        assert!(err.is_retryable(), "{err:?}");
    }
}

#[tokio::test]
async fn a_foreign_next_link_is_refused_and_the_key_never_reaches_that_host() {
    // A second listener stands in for the foreign host and counts what reaches it.
    let foreign = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let foreign_origin = format!("http://{}", foreign.local_addr().unwrap());
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    tokio::spawn(async move {
        while let Ok((_stream, _)) = foreign.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let sandbox = sandbox(
        40,
        Faults {
            foreign_next: Some(foreign_origin.clone()),
            ..Faults::default()
        },
    )
    .await;
    let err = walk(&source(&sandbox), None).await.unwrap_err();
    assert!(
        matches!(&err, SourceError::Refused(m) if m.contains(&foreign_origin)),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "a request went to the foreign host"
    );
}

#[tokio::test]
async fn a_repeating_next_link_shows_as_the_same_cursor_again() {
    let sandbox = sandbox(
        40,
        Faults {
            repeat_cursor: true,
            ..Faults::default()
        },
    )
    .await;
    let source = source(&sandbox);
    let first = source.page(None).await.unwrap().next.unwrap();
    // Skip the queued links' payments to reach the next page of the link list.
    let links_only = Cursor {
        groups: Vec::new(),
        ..first.clone()
    };
    let second = source.page(Some(&links_only)).await.unwrap().next.unwrap();
    assert_eq!(
        second.listing, links_only.listing,
        "the repeat must be visible so the caller can stop"
    );
}

#[tokio::test]
async fn plain_http_off_loopback_is_refused_before_any_request() {
    let err = MkpClient::with_config(MkpClient::config("http://api.mijnklantportaal.nl/v1", "k"))
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("plain http") && message.contains("https://"),
        "{message}"
    );
    assert!(MkpClient::with_config(MkpClient::config("ftp://x/v1", "k")).is_err());
    assert!(MkpClient::with_config(MkpClient::config("not a url", "k")).is_err());
    let client = MkpClient::new("mkp_live_secret").unwrap();
    assert_eq!(client.base_url(), mkp_api::DEFAULT_BASE_URL);
    assert!(!format!("{client:?}").contains("mkp_live_secret"));
}

#[tokio::test]
async fn a_link_list_page_over_the_cap_is_refused_naming_the_cap_and_the_page() {
    let sandbox = sandbox(40, Faults::default()).await;
    let mut config = MkpClient::config(&sandbox.mkp_base_url(), KEY);
    config.max_body_bytes = 1024;
    let err = MkpClient::with_config(config)
        .unwrap()
        .payment_links_page(None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::BodyTooLarge { cap: 1024, what, .. } if what == "/payment-links"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "refused: MijnKlantportaal sent a response body over the cap of 1024 bytes for /payment-links; raise the body cap if such a page is expected"
    );
    assert!(!err.is_retryable(), "the same request gets the same body");
}

#[tokio::test]
async fn a_group_is_read_by_id_and_an_unknown_one_is_none() {
    let sandbox = sandbox(5, Faults::default()).await;
    let source = source(&sandbox);
    let link = &sandbox.mkp_links()[3];
    let (expected, rejected) = map_links(&[raw(link)]);
    assert!(rejected.is_empty());
    let one = source.group(&link.id).await.unwrap();
    assert_eq!(one.group, Some(Ok(expected[0].clone())));

    let unknown = source.group("plk_000999deadbeef").await.unwrap();
    assert_eq!(unknown.group, None);

    let before = sandbox.requests().len();
    let err = source.group("plk_1/../x").await.unwrap_err();
    assert!(matches!(err, SourceError::Refused(_)), "{err:?}");
    assert_eq!(sandbox.requests().len(), before, "no request for a bad id");

    let paths: Vec<_> = sandbox
        .requests()
        .into_iter()
        .map(|r| (r.path_and_query, r.status))
        .collect();
    assert_eq!(
        paths,
        vec![
            (format!("/mkp/v1/payment-links/{}", link.id), 200),
            ("/mkp/v1/payment-links/plk_000999deadbeef".to_owned(), 404),
        ]
    );
}

#[tokio::test]
async fn a_group_that_cannot_be_read_is_set_aside_whole() {
    let sandbox = sandbox(3, Faults::default()).await;
    sandbox.set_content_faults(payments_sandbox::ContentFaults {
        mkp_path_id_every: Some(1),
        ..payments_sandbox::ContentFaults::default()
    });
    let link = &sandbox.mkp_links()[0];
    let one = source(&sandbox).group(&link.id).await.unwrap();
    let Some(Err(rejected)) = one.group else {
        panic!("{:?}", one.group)
    };
    assert!(rejected.reason.starts_with("payment link "), "{rejected:?}");
    assert!(rejected.raw.contains(&link.id), "{rejected:?}");
}
