//! Webhooks to any worker of a fleet: stored in the account's inbox, the fleet woken, read once
//! by whichever worker holds the lease; refusals store nothing; the schedule never moves.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use payments_fleet::{Worker, WorkerOptions};
use payments_model::PaymentStatus;
use payments_postgres::{MasterKey, NewAccount, PgLedger, SourceOptions};
use payments_sandbox::{Sandbox, SandboxConfig};
use payments_serve::{App, Metrics, WebhookSecret, fleet_router};
use payments_sync::{StopReason, StopSignal, Store as _, SyncOptions};
use payments_testkit::postgres::Cluster;
use secrecy::SecretString;

const SECRET: &str = "whsec_fleet_Rec0gnisable";

fn small() -> SandboxConfig {
    SandboxConfig {
        paypro_payments: 30,
        mkp_links: 2,
        mkp_rate_limit: None,
        ..SandboxConfig::default()
    }
}

/// A worker of `ledger` serving its routes on loopback (its `/metrics` with the series of one
/// account-source); its address.
async fn worker(url: &str, master: &str, name: &str, stop: &StopSignal) -> String {
    let ledger = PgLedger::connect(url, 6).await.unwrap();
    let options = WorkerOptions {
        name: name.to_owned(),
        concurrency: 2,
        lease_ttl: Duration::from_secs(10),
        poll: Duration::from_secs(30),
        until_idle: false,
        sync: SyncOptions::default(),
    };
    let metrics = Arc::new(Metrics::new());
    let worker = Arc::new(
        Worker::new(
            ledger,
            MasterKey::from_base64(master).unwrap(),
            options,
            stop.clone(),
        )
        .with_metrics(metrics.clone()),
    );
    let app = App {
        inlet: Arc::new(worker.inlet()),
        health: Arc::new(worker.health()),
        gauges: Some(Arc::new(worker.gauges(1))),
        metrics,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(payments_serve::serve(
        listener,
        fleet_router(app),
        stop.clone(),
    ));
    tokio::spawn(worker.run());
    address
}

async fn add(ledger: &PgLedger, master: &MasterKey, name: &str, sandbox: &Sandbox) -> i64 {
    ledger
        .add_account(
            NewAccount {
                name: name.to_owned(),
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
            master,
        )
        .await
        .unwrap()
        .id
}

async fn post_paypro(base: &str, account: &str, body: &[u8], secret: &str) -> u16 {
    let secret = WebhookSecret::new(secret.to_owned()).unwrap();
    let timestamp = Utc::now().timestamp();
    let signature = paypro_api::webhook::sign(&secret, timestamp, body);
    reqwest::Client::new()
        .post(format!("{base}/webhooks/{account}/paypro"))
        .header(paypro_api::webhook::TIMESTAMP_HEADER, timestamp.to_string())
        .header(paypro_api::webhook::SIGNATURE_HEADER, signature)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn event_body(sandbox: &Sandbox, event_id: &str) -> Vec<u8> {
    let event = sandbox
        .paypro_events()
        .into_iter()
        .find(|event| event.id == event_id)
        .unwrap();
    serde_json::to_vec(&event).unwrap()
}

fn unpaid(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .paypro_payments()
        .into_iter()
        .filter(|p| p.state != "paid" && p.state != "completed" && p.refunded_amount == 0)
        .map(|p| p.id)
        .collect()
}

/// Waits (30 s at most) until `check` holds.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 30 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn completed_runs(db: &tokio_postgres::Client) -> i64 {
    db.query_one(
        "SELECT count(*) FROM ledger.runs WHERE finished_at IS NOT NULL AND error IS NULL",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// The first run completed and its lease released (its next due time written).
async fn first_run_released(db: &tokio_postgres::Client) -> bool {
    let leased: i64 = db
        .query_one(
            "SELECT count(*) FROM ledger.account_sources WHERE leased_by IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    completed_runs(db).await == 1 && leased == 0
}

async fn next_run_at(db: &tokio_postgres::Client, account_id: i64) -> DateTime<Utc> {
    db.query_one(
        "SELECT next_run_at FROM ledger.account_sources WHERE account_id = $1",
        &[&account_id],
    )
    .await
    .unwrap()
    .get(0)
}

async fn status(ledger: &PgLedger, account_id: i64, name: &str, id: &str) -> Option<PaymentStatus> {
    ledger
        .store(account_id, name)
        .stored(vec![format!("paypro:{id}")])
        .await
        .unwrap()
        .into_values()
        .next()
        .map(|p| p.status)
}

async fn inbox_rows(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT count(*) FROM ledger.inbox", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_on_a_worker_s_port_is_committed_after_one_read_by_id_and_the_schedule_stays()
 {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("ingress_one");
    let master = MasterKey::generate();
    let sandbox = Sandbox::start(small()).await.unwrap();
    let ledger = PgLedger::connect(&url, 4).await.unwrap();
    let account = add(&ledger, &master, "acme", &sandbox).await;
    let db = client(&url).await;

    // The secret is sealed: its bytes are nowhere in the column.
    let sealed: Vec<u8> = db
        .query_one(
            "SELECT sealed_webhook_secret FROM ledger.account_sources WHERE account_id = $1",
            &[&account],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        !sealed
            .windows(SECRET.len())
            .any(|window| window == SECRET.as_bytes()),
        "the webhook secret is not stored in clear"
    );
    assert!(!format!("{:?}", ledger.accounts().await.unwrap()).contains(SECRET));

    let stop = StopSignal::new();
    let base = worker(&url, &master.to_base64(), "w1", &stop).await;
    until("the first run released", || async {
        first_run_released(&db).await
    })
    .await;
    let scheduled = next_run_at(&db, account).await;

    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);

    let id = unpaid(&sandbox).remove(0);
    let event = sandbox.pay_paypro_payment(&id).unwrap();
    let before = sandbox.requests().len();
    assert_eq!(
        post_paypro(&base, "acme", &event_body(&sandbox, &event), SECRET).await,
        200
    );
    until("the payment committed paid", || async {
        status(&ledger, account, "acme", &id).await == Some(PaymentStatus::Paid)
    })
    .await;
    // Settled: the hint is cleared and processed.
    until("the hint cleared", || async {
        db.query_one(
            "SELECT hinted_at IS NULL AND leased_by IS NULL FROM ledger.account_sources WHERE account_id = $1",
            &[&account],
        )
        .await
        .unwrap()
        .get(0)
    })
    .await;
    let after: Vec<String> = sandbox.requests()[before..]
        .iter()
        .map(|r| r.path_and_query.clone())
        .collect();
    assert_eq!(
        after,
        vec![format!("/paypro/payments/{id}")],
        "one read by id"
    );
    assert_eq!(
        next_run_at(&db, account).await,
        scheduled,
        "a hint does not move next_run_at"
    );
    assert_eq!(completed_runs(&db).await, 1, "no poll ran for the hint");
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("payments_runs_total"), "{metrics}");
    stop.stop(StopReason::Terminate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_account_and_a_bad_signature_are_both_401_and_store_nothing() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("ingress_refused");
    let master = MasterKey::generate();
    let sandbox = Sandbox::start(small()).await.unwrap();
    let ledger = PgLedger::connect(&url, 4).await.unwrap();
    add(&ledger, &master, "acme", &sandbox).await;
    let db = client(&url).await;
    let stop = StopSignal::new();
    let base = worker(&url, &master.to_base64(), "w1", &stop).await;
    let id = unpaid(&sandbox).remove(0);
    let event = sandbox.pay_paypro_payment(&id).unwrap();
    let body = event_body(&sandbox, &event);

    assert_eq!(post_paypro(&base, "nobody", &body, SECRET).await, 401);
    assert_eq!(
        post_paypro(&base, "acme", &body, "whsec_not_the_secret").await,
        401
    );
    assert_eq!(inbox_rows(&db).await, 0);
    let hinted: i64 = db
        .query_one(
            "SELECT count(*) FROM ledger.account_sources WHERE hinted_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(hinted, 0);
    stop.stop(StopReason::Terminate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_sent_alternately_to_two_workers_are_each_committed_once() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("ingress_two");
    let master = MasterKey::generate();
    let sandbox = Sandbox::start(small()).await.unwrap();
    let ledger = PgLedger::connect(&url, 4).await.unwrap();
    let account = add(&ledger, &master, "acme", &sandbox).await;
    let db = client(&url).await;
    let stop = StopSignal::new();
    let bases = [
        worker(&url, &master.to_base64(), "w1", &stop).await,
        worker(&url, &master.to_base64(), "w2", &stop).await,
    ];
    until("the first run released", || async {
        first_run_released(&db).await
    })
    .await;

    let ids: Vec<String> = unpaid(&sandbox).into_iter().take(6).collect();
    for (index, id) in ids.iter().enumerate() {
        let event = sandbox.pay_paypro_payment(id).unwrap();
        let body = event_body(&sandbox, &event);
        assert_eq!(
            post_paypro(&bases[index % 2], "acme", &body, SECRET).await,
            200
        );
    }
    for id in &ids {
        until("each payment committed paid", || async {
            status(&ledger, account, "acme", id).await == Some(PaymentStatus::Paid)
        })
        .await;
    }
    // Each change superseded its first version once: committed once, by whichever worker held
    // the lease.
    let versions: i64 = db
        .query_one(
            "SELECT count(*) FROM ledger.versions WHERE account_id = $1",
            &[&account],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, ids.len() as i64);
    stop.stop(StopReason::Terminate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_fleet_as_the_database_holds_it_the_worst_account_source_first() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("metrics");
    let master = MasterKey::generate();
    let sandbox = Sandbox::start(small()).await.unwrap();
    let ledger = PgLedger::connect(&url, 4).await.unwrap();
    let acme = add(&ledger, &master, "acme", &sandbox).await;
    let beta = add(&ledger, &master, "beta", &sandbox).await;
    let db = client(&url).await;
    let stop = StopSignal::new();
    let base = worker(&url, &master.to_base64(), "w1", &stop).await;
    until("both first runs released", || async {
        completed_runs(&db).await == 2 && first_runs_released(&db).await
    })
    .await;

    // A worker that died holding acme (its lease is long), and beta, which has the same key,
    // due an hour ago: beta cannot be leased while acme is held, so it is overdue.
    db.execute(
        "UPDATE ledger.account_sources SET leased_by = 'ghost:1',
                lease_expires_at = now() + interval '1 hour'
         WHERE account_id = $1",
        &[&acme],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE ledger.account_sources SET next_run_at = now() - interval '1 hour'
         WHERE account_id = $1",
        &[&beta],
    )
    .await
    .unwrap();

    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let samples =
        payments_testkit::prometheus::parse(&text).unwrap_or_else(|why| panic!("{why}\n{text}"));
    let value = |name: &str, labels: &[(&str, &str)]| {
        payments_testkit::prometheus::value(&samples, name, labels)
    };
    assert_eq!(value("payments_fleet_read_ok", &[]), Some(1.0));
    assert_eq!(
        value("payments_fleet_account_sources", &[("state", "enabled")]),
        Some(2.0)
    );
    assert_eq!(
        value("payments_fleet_account_sources", &[("state", "running")]),
        Some(1.0)
    );
    assert_eq!(
        value("payments_fleet_account_sources", &[("state", "overdue")]),
        Some(1.0)
    );
    let overdue = value("payments_fleet_overdue_seconds_max", &[]).unwrap();
    assert!((3_590.0..3_700.0).contains(&overdue), "{overdue}");
    // One account-source's series (the cap), and it is the overdue one.
    assert_eq!(
        value("payments_fleet_account_series_left_out", &[]),
        Some(1.0)
    );
    let shown: Vec<_> = samples
        .iter()
        .filter(|s| s.name == "payments_account_overdue_seconds")
        .collect();
    assert_eq!(shown.len(), 1, "{text}");
    assert_eq!(shown[0].labels["account"], "beta", "{text}");
    assert_eq!(shown[0].labels["source"], "paypro", "{text}");
    let last_success = value(
        "payments_account_last_success_timestamp_seconds",
        &[("account", "beta"), ("source", "paypro")],
    )
    .expect("beta's last success");
    let now = Utc::now().timestamp() as f64;
    assert!(
        (now - 600.0..now + 5.0).contains(&last_success),
        "{last_success} vs {now}"
    );
    assert_eq!(
        value("payments_worker_leases_total", &[("kind", "due")]),
        Some(2.0)
    );
    assert!(value("payments_worker_rounds_total", &[]).unwrap() >= 1.0);
    assert_eq!(
        value("payments_worker_leases_taken_over_total", &[]),
        Some(0.0)
    );

    // The dead worker's lease expires: acme is taken over, and counted so.
    db.batch_execute(&format!(
        "UPDATE ledger.account_sources SET lease_expires_at = now() - interval '1 second',
                next_run_at = now() - interval '1 second'
         WHERE account_id = {acme};
         NOTIFY payments_hints"
    ))
    .await
    .unwrap();
    until("acme taken over", || async {
        let text = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let samples = payments_testkit::prometheus::parse(&text).unwrap();
        payments_testkit::prometheus::value(
            &samples,
            "payments_worker_leases_taken_over_total",
            &[],
        ) == Some(1.0)
    })
    .await;
    stop.stop(StopReason::Terminate);
}

/// No account-source is leased.
async fn first_runs_released(db: &tokio_postgres::Client) -> bool {
    let leased: i64 = db
        .query_one(
            "SELECT count(*) FROM ledger.account_sources WHERE leased_by IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    leased == 0
}
