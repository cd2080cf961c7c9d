//! Webhooks as hints, end to end: verified, stored in the inbox, answered, read once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use payments_model::{Hint, PaymentSource, PaymentStatus};
use payments_sandbox::{Api, RateLimitWindow, Sandbox, SandboxConfig};
use payments_serve::{
    App, Health, HealthReport, LedgerInlet, Metrics, WebhookSecret, ledger_router,
};
use payments_sync::{
    Inbox, MemoryStore, Service, ServiceEvent, StopReason, StopSignal, SyncOptions, Syncer,
};
use tokio::sync::mpsc;

const SECRET: &str = "whsec_test_s3cret";

/// What the service reported, as the tests wait for it.
#[derive(Debug)]
enum Reported {
    Run { source: String, ok: bool },
    Hints { source: String, read: u64 },
}

struct Healthy;

#[async_trait::async_trait]
impl Health for Healthy {
    async fn check(&self) -> HealthReport {
        HealthReport {
            healthy: true,
            body: serde_json::json!({}),
        }
    }
}

/// A service over `sources` of `sandbox` into a memory ledger, its routes on loopback.
struct Harness {
    store: Arc<MemoryStore>,
    url: String,
    reported: mpsc::UnboundedReceiver<Reported>,
    stop: StopSignal,
    task: tokio::task::JoinHandle<()>,
    client: reqwest::Client,
}

impl Harness {
    async fn start(sources: Vec<Arc<dyn PaymentSource>>, mkp_secret: Option<&str>) -> Harness {
        let store = Arc::new(MemoryStore::new());
        let stop = StopSignal::new();
        let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
        for source in sources {
            syncer.add_source(source);
        }
        syncer.with_stop(stop.clone());
        let (send, reported) = mpsc::unbounded_channel();
        let send = Mutex::new(send);
        let service = Arc::new(Service::new(syncer, Duration::from_secs(3600)).with_report(
            move |event| {
                let reported = match event {
                    ServiceEvent::RunEnded {
                        source_name,
                        result,
                    } => Reported::Run {
                        source: source_name.to_string(),
                        ok: result.is_ok(),
                    },
                    ServiceEvent::HintsRead {
                        source_name, read, ..
                    } => Reported::Hints {
                        source: source_name.to_string(),
                        read: read.read,
                    },
                    _ => return,
                };
                let _ = send.lock().unwrap().send(reported);
            },
        ));
        let app = App {
            inlet: Arc::new(LedgerInlet::new(
                service.clone(),
                Some(WebhookSecret::new(SECRET.to_owned()).unwrap()),
                mkp_secret.map(|s| WebhookSecret::new(s.to_owned()).unwrap()),
            )),
            health: Arc::new(Healthy),
            metrics: Arc::new(Metrics::new()),
            gauges: None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(payments_serve::serve(
            listener,
            ledger_router(app),
            stop.clone(),
        ));
        let task = tokio::spawn(async move { service.run().await });
        Harness {
            store,
            url,
            reported,
            stop,
            task,
            client: reqwest::Client::new(),
        }
    }

    /// Waits for the first run of each of `sources` to end well.
    async fn first_runs(&mut self, sources: &[&str]) {
        let mut left: Vec<&str> = sources.to_vec();
        while !left.is_empty() {
            match self.next().await {
                Reported::Run { source, ok } => {
                    assert!(ok, "the first run of {source} failed");
                    left.retain(|s| *s != source);
                }
                other => panic!("before the first runs: {other:?}"),
            }
        }
    }

    /// Waits for the next batch of hints of `source` to be read, and says how many it read.
    async fn hints_read(&mut self, source: &str) -> u64 {
        loop {
            match self.next().await {
                Reported::Hints { source: s, read } if s == source => return read,
                Reported::Run { source, .. } => panic!("a run of {source} ran: no run is due"),
                _ => {}
            }
        }
    }

    async fn next(&mut self) -> Reported {
        tokio::time::timeout(Duration::from_secs(30), self.reported.recv())
            .await
            .expect("the service reports within 30 s")
            .expect("the service runs")
    }

    async fn post(&self, provider: &str, headers: &[(&str, String)], body: Vec<u8>) -> u16 {
        let mut request = self
            .client
            .post(format!("{}/webhooks/{provider}", self.url))
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.unwrap().status().as_u16()
    }

    /// Posts `body` to the PayPro route, signed at `timestamp` (unix seconds).
    async fn post_paypro_at(&self, body: &[u8], timestamp: i64) -> u16 {
        let secret = WebhookSecret::new(SECRET.to_owned()).unwrap();
        let signature = paypro_api::webhook::sign(&secret, timestamp, body);
        self.post(
            "paypro",
            &[
                (paypro_api::webhook::TIMESTAMP_HEADER, timestamp.to_string()),
                (paypro_api::webhook::SIGNATURE_HEADER, signature),
            ],
            body.to_vec(),
        )
        .await
    }

    /// Posts a signed `body` over the size limit: its status, or how the connection closed
    /// while the body was still being written.
    async fn post_paypro_over_limit(&self, body: Vec<u8>) -> Result<u16, std::io::ErrorKind> {
        let secret = WebhookSecret::new(SECRET.to_owned()).unwrap();
        let timestamp = chrono::Utc::now().timestamp();
        let signature = paypro_api::webhook::sign(&secret, timestamp, &body);
        let sent = self
            .client
            .post(format!("{}/webhooks/paypro", self.url))
            .header(paypro_api::webhook::TIMESTAMP_HEADER, timestamp.to_string())
            .header(paypro_api::webhook::SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => Ok(response.status().as_u16()),
            Err(error) => {
                let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
                while let Some(current) = cause {
                    if let Some(io) = current.downcast_ref::<std::io::Error>() {
                        return Err(io.kind());
                    }
                    cause = current.source();
                }
                panic!("the post failed otherwise than by a closed connection: {error}")
            }
        }
    }

    async fn post_paypro(&self, body: &[u8]) -> u16 {
        self.post_paypro_at(body, chrono::Utc::now().timestamp())
            .await
    }

    async fn stop(self) {
        self.stop.stop(StopReason::Terminate);
        self.task.await.unwrap();
    }
}

/// The webhook PayPro sends for the event `event_id` of the sandbox's feed: the event itself.
fn paypro_event(sandbox: &Sandbox, event_id: &str) -> Vec<u8> {
    let event = sandbox
        .paypro_events()
        .into_iter()
        .find(|event| event.id == event_id)
        .expect("the sandbox has the event");
    serde_json::to_vec(&event).unwrap()
}

/// The PayPro payments the sandbox serves unpaid.
fn unpaid(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .paypro_payments()
        .into_iter()
        .filter(|p| p.state != "paid" && p.state != "completed" && p.refunded_amount == 0)
        .map(|p| p.id)
        .collect()
}

fn small() -> SandboxConfig {
    SandboxConfig {
        paypro_payments: 30,
        mkp_links: 8,
        mkp_rate_limit: None,
        ..SandboxConfig::default()
    }
}

async fn stored_status(store: &MemoryStore, id: &str) -> Option<PaymentStatus> {
    store
        .stored(vec![format!("paypro:{id}")])
        .await
        .unwrap()
        .into_values()
        .next()
        .map(|p| p.status)
}

use payments_sync::Store as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_payment_s_webhook_is_committed_after_one_read_by_id_and_no_poll() {
    let sandbox = Sandbox::start(small()).await.unwrap();
    let mut harness = Harness::start(vec![payments_testkit::paypro(&sandbox)], None).await;
    harness.first_runs(&["paypro"]).await;
    let id = unpaid(&sandbox).remove(0);
    let event = sandbox.pay_paypro_payment(&id).unwrap();
    let before = sandbox.requests().len();

    assert_eq!(
        harness.post_paypro(&paypro_event(&sandbox, &event)).await,
        200
    );
    assert_eq!(harness.hints_read("paypro").await, 1);

    assert_eq!(
        stored_status(&harness.store, &id).await,
        Some(PaymentStatus::Paid)
    );
    let after: Vec<String> = sandbox.requests()[before..]
        .iter()
        .map(|r| r.path_and_query.clone())
        .collect();
    assert_eq!(
        after,
        vec![format!("/paypro/payments/{id}")],
        "one read by id, nothing else"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mkp_link_s_webhook_reads_that_link_and_its_payments_alone() {
    let sandbox = Sandbox::start(small()).await.unwrap();
    let mut harness = Harness::start(vec![payments_testkit::mkp(&sandbox)], None).await;
    harness.first_runs(&["mkp"]).await;
    let link = sandbox.mkp_links()[3].id.clone();
    let payment = sandbox.add_mkp_payment(&link).unwrap();
    let before = sandbox.requests().len();
    let body = serde_json::json!({"type": "payment-link-paid", "data": {"id": link}});

    let status = harness
        .post("mkp", &[], serde_json::to_vec(&body).unwrap())
        .await;
    assert_eq!(status, 200);
    assert_eq!(harness.hints_read("mkp").await, 1);

    let stored = harness
        .store
        .stored(vec![format!("mkp:{payment}")])
        .await
        .unwrap();
    assert_eq!(
        stored.len(),
        1,
        "the new payment of the link is in the ledger"
    );
    for request in &sandbox.requests()[before..] {
        assert!(
            request
                .path_and_query
                .starts_with(&format!("/mkp/v1/payment-links/{link}")),
            "only that link was read: {}",
            request.path_and_query
        );
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_webhooks_get_their_status_cause_no_request_and_store_nothing() {
    let sandbox = Sandbox::start(small()).await.unwrap();
    let mut harness = Harness::start(
        vec![
            payments_testkit::paypro(&sandbox),
            payments_testkit::mkp(&sandbox),
        ],
        Some("mkp-secret"),
    )
    .await;
    harness.first_runs(&["paypro", "mkp"]).await;
    let id = unpaid(&sandbox).remove(0);
    let event = sandbox.pay_paypro_payment(&id).unwrap();
    let body = paypro_event(&sandbox, &event);
    let before = sandbox.requests().len();
    let now = chrono::Utc::now().timestamp();

    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let secret = WebhookSecret::new(SECRET.to_owned()).unwrap();
    let signed = |at: i64, body: &[u8]| paypro_api::webhook::sign(&secret, at, body);
    let cases: Vec<(&str, u16)> = vec![
        ("bad signature", {
            let signature = signed(now, &body);
            harness
                .post(
                    "paypro",
                    &[
                        (paypro_api::webhook::TIMESTAMP_HEADER, now.to_string()),
                        (paypro_api::webhook::SIGNATURE_HEADER, signature),
                    ],
                    tampered.clone(),
                )
                .await
        }),
        ("unsigned", harness.post("paypro", &[], body.clone()).await),
        ("601 s old", harness.post_paypro_at(&body, now - 601).await),
        (
            "601 s ahead",
            harness.post_paypro_at(&body, now + 601).await,
        ),
        ("not JSON", harness.post_paypro(b"<html>hello</html>").await),
        (
            "MKP without its signature",
            harness
                .post(
                    "mkp",
                    &[],
                    br#"{"type":"payment-link-paid","data":{"id":"plk_1"}}"#.to_vec(),
                )
                .await,
        ),
    ];
    let statuses: Vec<(&str, u16)> = cases;
    assert_eq!(
        statuses,
        vec![
            ("bad signature", 401),
            ("unsigned", 401),
            ("601 s old", 401),
            ("601 s ahead", 401),
            ("not JSON", 400),
            ("MKP without its signature", 401),
        ]
    );
    // Over 1 MiB: refused with 413 as soon as the limit is crossed, and the connection closed;
    // a client still writing its body then sees the close (a broken pipe) instead of the 413.
    let over = harness
        .post_paypro_over_limit(vec![b' '; 1024 * 1024 + 1])
        .await;
    assert!(
        matches!(
            over,
            Ok(413) | Err(std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset)
        ),
        "over 1 MiB: {over:?}"
    );
    assert_eq!(
        harness.post_paypro_at(&body, now - 600).await,
        200,
        "600 s is within the skew"
    );
    assert_eq!(harness.hints_read("paypro").await, 1);
    assert_eq!(
        sandbox.requests()[before..]
            .iter()
            .filter(|r| r.api == Api::PayPro)
            .count(),
        1,
        "only the accepted webhook made a request"
    );
    assert!(harness.store.pending("mkp").await.unwrap().is_empty());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_delivered_fifty_times_at_once_is_one_entry_and_at_most_one_read() {
    let sandbox = Sandbox::start(small()).await.unwrap();
    let mut harness = Harness::start(vec![payments_testkit::paypro(&sandbox)], None).await;
    harness.first_runs(&["paypro"]).await;
    let id = unpaid(&sandbox).remove(0);
    let event = sandbox.pay_paypro_payment(&id).unwrap();
    let body = paypro_event(&sandbox, &event);
    let before = sandbox.requests().len();

    let statuses = futures::future::join_all((0..50).map(|_| harness.post_paypro(&body))).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(harness.hints_read("paypro").await, 1);
    // Any later batch would be a second read of the same event.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(harness.reported.try_recv().is_err(), "one batch only");
    let reads = sandbox.requests()[before..]
        .iter()
        .filter(|r| r.path_and_query == format!("/paypro/payments/{id}"))
        .count();
    assert_eq!(reads, 1);
    assert!(harness.store.pending("paypro").await.unwrap().is_empty());
    assert_eq!(
        harness
            .store
            .receive(
                "paypro",
                &paypro_api::webhook::verify(
                    Some(&WebhookSecret::new(SECRET.to_owned()).unwrap()),
                    Some(&chrono::Utc::now().timestamp().to_string()),
                    Some(&paypro_api::webhook::sign(
                        &WebhookSecret::new(SECRET.to_owned()).unwrap(),
                        chrono::Utc::now().timestamp(),
                        &body
                    )),
                    &body,
                    chrono::Utc::now()
                )
                .unwrap(),
                chrono::Utc::now()
            )
            .await
            .unwrap(),
        payments_sync::Receipt::Duplicate,
        "the inbox holds the one entry"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_mkp_hints_for_a_hundred_links_read_each_link_at_most_twice_without_429() {
    let sandbox = Sandbox::start(SandboxConfig {
        paypro_payments: 1,
        mkp_links: 100,
        mkp_rate_limit: Some(RateLimitWindow {
            limit: 100,
            window: Duration::from_secs(1),
        }),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let mut harness = Harness::start(vec![payments_testkit::mkp(&sandbox)], None).await;
    harness.first_runs(&["mkp"]).await;
    let links: Vec<String> = sandbox.mkp_links().into_iter().map(|l| l.id).collect();
    assert_eq!(links.len(), 100);
    let before = sandbox.requests().len();

    let posts = (0..1000).map(|i| {
        let body = serde_json::json!({
            "type": "payment-link-paid",
            "event_id": format!("evt_{i}"),
            "data": {"id": links[i % 100]},
        });
        harness.post("mkp", &[], serde_json::to_vec(&body).unwrap())
    });
    let statuses = futures::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 200));
    let mut read = 0;
    while !harness.store.pending("mkp").await.unwrap().is_empty() || read == 0 {
        read += harness.hints_read("mkp").await;
    }
    let requests = &sandbox.requests()[before..];
    assert_eq!(
        requests.iter().filter(|r| r.status == 429).count(),
        0,
        "the limiter held every read within the rate limit"
    );
    for link in &links {
        let reads = requests
            .iter()
            .filter(|r| r.path_and_query == format!("/mkp/v1/payment-links/{link}"))
            .count();
        assert!((1..=2).contains(&reads), "{link} read {reads} times");
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hint_for_the_feed_is_stored_and_read_by_the_run_it_starts() {
    // A chargeback's webhook names the payment and the feed: the read by id, then a run.
    let sandbox = Sandbox::start(small()).await.unwrap();
    let mut harness = Harness::start(vec![payments_testkit::paypro(&sandbox)], None).await;
    harness.first_runs(&["paypro"]).await;
    let delivery = payments_model::Delivery {
        key: "EVfeed".into(),
        kind: "chargeback.created".into(),
        hints: vec![Hint::Feed],
    };
    harness
        .store
        .receive("paypro", &delivery, chrono::Utc::now())
        .await
        .unwrap();
    // Stored behind the service's back: a restart would find it; here the run it asks for is
    // started by the next delivery's wake-up.
    let id = unpaid(&sandbox).remove(0);
    let event = sandbox.pay_paypro_payment(&id).unwrap();
    assert_eq!(
        harness.post_paypro(&paypro_event(&sandbox, &event)).await,
        200
    );
    assert_eq!(harness.hints_read("paypro").await, 1);
    match harness.next().await {
        Reported::Run { source, ok } => assert!(ok && source == "paypro"),
        other => panic!("the feed's hint starts a run: {other:?}"),
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_30_percent_of_webhooks_lost_every_change_is_in_the_ledger_after_the_next_run() {
    let sandbox = Sandbox::start(SandboxConfig {
        paypro_payments: 60,
        ..small()
    })
    .await
    .unwrap();
    let mut harness = Harness::start(vec![payments_testkit::paypro(&sandbox)], None).await;
    harness.first_runs(&["paypro"]).await;
    sandbox.set_webhooks(Some(payments_sandbox::WebhookDelivery {
        paypro_url: Some(format!("{}/webhooks/paypro", harness.url)),
        paypro_secret: Some(SECRET.to_owned()),
        drop_rate: 0.3,
        ..payments_sandbox::WebhookDelivery::default()
    }));
    let paid: Vec<String> = unpaid(&sandbox).into_iter().take(20).collect();
    for id in &paid {
        sandbox.pay_paypro_payment(id).unwrap();
    }
    assert!(sandbox.wait_for_webhooks(Duration::from_secs(20)).await);
    let dropped = sandbox
        .webhook_deliveries()
        .iter()
        .filter(|attempt| attempt.dropped)
        .count();
    assert!(dropped > 0, "the knob drops some of 20");
    // Wait until what was delivered is read.
    while !harness.store.pending("paypro").await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut missing = 0;
    for id in &paid {
        if stored_status(&harness.store, id).await != Some(PaymentStatus::Paid) {
            missing += 1;
        }
    }
    assert!(
        missing > 0 && missing <= dropped,
        "{missing} missing, {dropped} lost"
    );
    let store = harness.store.clone();
    harness.stop().await;

    // The next run heals what the lost webhooks did not bring.
    let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
    syncer.add_source(payments_testkit::paypro(&sandbox));
    for result in syncer.run().await {
        result.unwrap();
    }
    for id in &paid {
        assert_eq!(
            stored_status(&store, id).await,
            Some(PaymentStatus::Paid),
            "{id}"
        );
    }
}
