//! Target 9: webhook-to-committed latency of `payments serve`'s parts (the routes, the inbox in
//! SQLite, the service's reader) over 1,000 PayPro webhooks at 20 ms of provider latency, as a
//! ratio to one provider round trip; and the requests an idle hour costs `serve` beside cron's.
//! Run by `cargo xtask bench`, or alone with `cargo bench -p payments-cli --bench webhooks`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use payments_sandbox::{Faults, Sandbox, SandboxConfig};
use payments_serve::{
    App, Health, HealthReport, LedgerInlet, Metrics, WebhookSecret, ledger_router,
};
use payments_sqlite::SqliteStore;
use payments_sync::{Service, ServiceEvent, StopReason, StopSignal, SyncOptions, Syncer};

const WEBHOOKS: usize = 1000;
const LATENCY: Duration = Duration::from_millis(20);
const SECRET: &str = "bench-secret";

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

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(webhook_latency());
    runtime.block_on(fleet_latency());
}

/// Webhooks a fleet takes: how many, one each this often.
const FLEET_WEBHOOKS: usize = 200;

/// The fleet's part of target 9: PayPro webhooks posted to a worker's `--listen` routes, stored
/// in PostgreSQL, the fleet woken by NOTIFY, read by the lease holder; receipt to commit.
async fn fleet_latency() {
    use payments_fleet::{Worker, WorkerOptions};
    use payments_postgres::{MasterKey, NewAccount, PgLedger, SourceOptions};
    use payments_serve::fleet_router;
    use secrecy::SecretString;

    let Some(cluster) = payments_testkit::postgres::Cluster::start() else {
        println!("target 9 (fleet): not measured, no PostgreSQL here (Debian's postgresql-15)");
        return;
    };
    let url = cluster.database("bench_webhooks");
    let sandbox = Sandbox::start(SandboxConfig {
        paypro_payments: FLEET_WEBHOOKS + 50,
        mkp_links: 1,
        mkp_rate_limit: None,
        anchor: chrono::Utc::now(),
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let master = MasterKey::generate();
    let ledger = PgLedger::connect(&url, 8).await.expect("the database");
    ledger
        .add_account(
            NewAccount {
                name: "acme".to_owned(),
                sources: vec![(
                    "paypro".to_owned(),
                    SecretString::from(sandbox.config().paypro_key.clone()),
                    SourceOptions {
                        base_url: Some(sandbox.paypro_base_url()),
                        every_secs: Some(3_600),
                        ..SourceOptions::default()
                    },
                )],
                webhook_secrets: vec![("paypro".to_owned(), SecretString::from(SECRET))],
            },
            &master,
        )
        .await
        .expect("the account");
    let stop = StopSignal::new();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = latencies.clone();
    let ran = runs.clone();
    let worker = Arc::new(
        Worker::new(
            PgLedger::connect(&url, 6).await.expect("the database"),
            master,
            WorkerOptions {
                name: "bench".to_owned(),
                concurrency: 2,
                lease_ttl: Duration::from_secs(30),
                poll: Duration::from_secs(30),
                until_idle: false,
                sync: SyncOptions::default(),
            },
            stop.clone(),
        )
        .with_events(move |event| match event {
            payments_fleet::Event::HintsRead { latencies, .. } => {
                seen.lock().unwrap().extend_from_slice(latencies);
            }
            payments_fleet::Event::RunEnded { .. } => {
                ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            _ => {}
        }),
    );
    let app = App {
        inlet: Arc::new(worker.inlet()),
        health: Arc::new(worker.health()),
        metrics: Arc::new(Metrics::new()),
        gauges: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!(
        "http://{}/webhooks/acme/paypro",
        listener.local_addr().unwrap()
    );
    tokio::spawn(payments_serve::serve(
        listener,
        fleet_router(app),
        stop.clone(),
    ));
    let running = tokio::spawn(worker.clone().run());
    // The first (full) run, without latency.
    while runs.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sandbox.set_faults(Faults {
        latency: LATENCY,
        ..Faults::default()
    });
    let secret = WebhookSecret::new(SECRET).unwrap();
    let client = reqwest::Client::new();
    let ids: Vec<String> = sandbox
        .paypro_payments()
        .into_iter()
        .map(|p| p.id)
        .collect();
    for (i, id) in ids.iter().take(FLEET_WEBHOOKS).enumerate() {
        let (status, _) = post_paid(&client, &base, &secret, &format!("EVFLEET{i:06}"), id).await;
        assert!(status.is_success(), "webhook {i} answered {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while latencies.lock().unwrap().len() < FLEET_WEBHOOKS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.stop(StopReason::Terminate);
    let _ = running.await;
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    assert_eq!(
        latencies.len(),
        FLEET_WEBHOOKS,
        "every webhook was read and committed"
    );
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "target 9 (fleet): {FLEET_WEBHOOKS} PayPro webhooks to a worker's --listen, one each 100 ms, provider latency {} ms: receipt to commit p50 {:.1} ms, p99 {:.1} ms; bound p99 ≤ 1 s: ratio to bound {:.2} ({})",
        LATENCY.as_millis(),
        ms(p50),
        ms(p99),
        p99.as_secs_f64(),
        if p99 <= Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        }
    );
}

/// Posts a signed PayPro `payment.paid` webhook `event_id` for `payment_id` to `url`: its status,
/// and how long the answer took from the request's send.
async fn post_paid(
    client: &reqwest::Client,
    url: &str,
    secret: &WebhookSecret,
    event_id: &str,
    payment_id: &str,
) -> (reqwest::StatusCode, Duration) {
    let body = serde_json::to_vec(&serde_json::json!({
        "id": event_id,
        "type": "event",
        "event_type": "payment.paid",
        "created_at": chrono::Utc::now().to_rfc3339(),
        "payload": {"id": payment_id, "type": "payment"},
    }))
    .unwrap();
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature = secret.sign_hex(&[timestamp.as_bytes(), b".", &body]);
    let sent = Instant::now();
    let status = client
        .post(url)
        .header("PayPro-Timestamp", timestamp)
        .header("PayPro-Signature", signature)
        .body(body)
        .send()
        .await
        .expect("the webhook is answered")
        .status();
    (status, sent.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn webhook_latency() {
    let sandbox = Sandbox::start(SandboxConfig {
        paypro_payments: WEBHOOKS + 100,
        mkp_links: 1,
        mkp_rate_limit: None,
        anchor: chrono::Utc::now(),
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(SqliteStore::open(dir.path().join("ledger.db")).expect("a ledger"));
    let source = payments_testkit::paypro(&sandbox);
    // The ledger as after its first run, read without latency.
    let mut first = Syncer::new(store.clone(), SyncOptions::default());
    first.add_source(source.clone());
    for result in first.run().await {
        result.expect("the first run");
    }
    sandbox.set_faults(Faults {
        latency: LATENCY,
        ..Faults::default()
    });
    // An idle incremental run: what each poll costs.
    let mut idle = Syncer::new(store.clone(), SyncOptions::default());
    idle.add_source(source.clone());
    let idle_requests: u64 = idle
        .run()
        .await
        .into_iter()
        .map(|r| r.expect("an idle run").requests)
        .sum();
    // One round trip, as the reader makes it: a read by id, the median of 21.
    let ids: Vec<String> = sandbox
        .paypro_payments()
        .into_iter()
        .map(|p| p.id)
        .collect();
    let mut trips = Vec::new();
    for id in ids.iter().take(21) {
        let started = Instant::now();
        source.payment(id).await.expect("a read by id");
        trips.push(started.elapsed());
    }
    trips.sort();
    let round_trip = trips[trips.len() / 2];

    let stop = StopSignal::new();
    let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
    syncer.add_source(source.clone()).with_stop(stop.clone());
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let seen = latencies.clone();
    let service = Arc::new(Service::new(syncer, Duration::from_secs(3600)).with_report(
        move |event| {
            if let ServiceEvent::HintsRead { latencies, .. } = event {
                seen.lock().unwrap().extend_from_slice(latencies);
            }
        },
    ));
    let secret = WebhookSecret::new(SECRET).unwrap();
    let app = App {
        inlet: Arc::new(LedgerInlet::new(
            service.clone(),
            Some(secret.clone()),
            None,
        )),
        health: Arc::new(Healthy),
        metrics: Arc::new(Metrics::new()),
        gauges: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/paypro", listener.local_addr().unwrap());
    tokio::spawn(payments_serve::serve(
        listener,
        ledger_router(app),
        stop.clone(),
    ));
    let running = tokio::spawn({
        let service = service.clone();
        async move { service.run().await }
    });
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    // One webhook each twice the round trip: the reader keeps up, as it must in production.
    for (i, id) in ids.iter().take(WEBHOOKS).enumerate() {
        let (status, answered) =
            post_paid(&client, &url, &secret, &format!("EVBENCH{i:06}"), id).await;
        answers.push(answered);
        assert!(status.is_success(), "webhook {i} answered {status}");
        tokio::time::sleep(round_trip * 2).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while latencies.lock().unwrap().len() < WEBHOOKS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.stop(StopReason::Terminate);
    running.await.unwrap();
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    answers.sort();
    assert_eq!(
        latencies.len(),
        WEBHOOKS,
        "every webhook was read and committed"
    );
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let bound = round_trip + Duration::from_millis(50);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "target 9: {WEBHOOKS} PayPro webhooks into SQLite, one provider round trip {:.1} ms: answered p99 {:.1} ms; receipt to commit p50 {:.1} ms ({:.2}× the round trip), p99 {:.1} ms ({:.2}×); bound p99 ≤ round trip + 50 ms = {:.1} ms: ratio to bound {:.2} ({})",
        ms(round_trip),
        ms(percentile(&answers, 0.99)),
        ms(p50),
        p50.as_secs_f64() / round_trip.as_secs_f64(),
        ms(p99),
        p99.as_secs_f64() / round_trip.as_secs_f64(),
        ms(bound),
        p99.as_secs_f64() / bound.as_secs_f64(),
        if p99 <= bound { "met" } else { "NOT met" }
    );
    println!(
        "target 9: an idle PayPro poll costs {idle_requests} requests: cron every 5 minutes spends {} an idle hour; serve --every 5m the same {}, and with webhooks bringing changes, serve --every 1h spends {}",
        idle_requests * 12,
        idle_requests * 12,
        idle_requests
    );
}
