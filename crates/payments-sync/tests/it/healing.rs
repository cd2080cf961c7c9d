//! A run that meets a bad answer narrows it and goes on, and the next run makes progress: never
//! the same failure on every future run.

use std::sync::Arc;
use std::time::Duration;

use payments_model::RateLimit;
use payments_sandbox::{Api, Burst, Faults, RetryAfterForm, Sandbox, SandboxConfig};
use payments_sync::{MemoryStore, RunKind, StopSignal, SyncError, SyncOptions, Syncer};
use payments_testkit::{data_set, paypro};

fn paypro_only(seed: u64, payments: usize) -> SandboxConfig {
    SandboxConfig {
        seed,
        mkp_links: 0,
        paypro_payments: payments,
        anchor: chrono::Utc::now(),
        mkp_rate_limit: None,
        ..SandboxConfig::default()
    }
}

#[tokio::test]
async fn a_resume_point_the_provider_refuses_restarts_the_walk_from_the_top() {
    let first = Sandbox::start(paypro_only(1, 500)).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let mut stopped = Syncer::new(
        store.clone(),
        SyncOptions {
            max_pages: Some(2),
            ..SyncOptions::default()
        },
    );
    stopped.add_source(paypro(&first));
    assert!(matches!(
        stopped.run().await.remove(0),
        Err(SyncError::PageBudget { pages: 2, .. })
    ));
    assert!(store.checkpoint("paypro").unwrap().in_progress());

    // The same account, but the stored cursor names a payment the provider no longer knows:
    // PayPro answers 422 "Invalid cursor". Before, every later run failed right there.
    let second = Sandbox::start(paypro_only(2, 500)).await.unwrap();
    let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
    syncer.add_source(paypro(&second));
    let summary = syncer.run().await.remove(0).unwrap();
    assert!(summary.resumed);
    assert_eq!(second.count_status(Api::PayPro, 422), 1, "one refusal");
    assert_eq!(summary.counts.new, 500, "then every page from the top");
    let stored = store.payments();
    for payment in data_set(&second) {
        assert!(stored.contains(&payment), "{} is missing", payment.id);
    }
    assert!(!store.checkpoint("paypro").unwrap().in_progress());
}

#[tokio::test]
async fn a_429_that_only_says_retry_after_waits_that_long_not_a_whole_window() {
    let sandbox = Sandbox::start(SandboxConfig {
        faults: Faults {
            burst_429: Some(Burst {
                every: 3,
                length: 1,
                retry_after: Duration::from_secs(1),
                form: RetryAfterForm::Seconds,
            }),
            ..Faults::default()
        },
        ..paypro_only(3, 400)
    })
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
    // Paced by a limit of 60 per minute: a 429 without `X-RateLimit-Remaining` used to be read as
    // "the window is full", which cost a whole minute for a `Retry-After: 1`.
    syncer.add_source_with_rate_limit(
        paypro(&sandbox),
        Some(RateLimit::per(60, Duration::from_secs(60))),
    );
    let summary = syncer.run().await.remove(0).unwrap();
    assert_eq!(summary.counts.new, 400);
    assert!(sandbox.count_status(Api::PayPro, 429) >= 1);
    assert!(
        summary.waited < Duration::from_secs(10),
        "waited {:?} for {} × `Retry-After: 1`",
        summary.waited,
        sandbox.count_status(Api::PayPro, 429)
    );
}

#[tokio::test]
async fn a_stopped_run_is_recorded_as_interrupted_and_the_next_run_resumes() {
    let sandbox = Sandbox::start(SandboxConfig {
        faults: Faults {
            latency: Duration::from_millis(30),
            ..Faults::default()
        },
        ..paypro_only(4, 2000)
    })
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let stop = StopSignal::new();
    let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
    syncer.add_source(paypro(&sandbox)).with_stop(stop.clone());
    let running = tokio::spawn(async move { syncer.run().await.remove(0) });
    while store.payments().len() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.stop("SIGTERM");
    let err = running.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, SyncError::Interrupted { reason, .. } if reason == "SIGTERM"),
        "{err}"
    );
    let kept = store.payments().len();
    assert!(kept < 2000 && kept.is_multiple_of(100), "{kept}: whole pages only");
    let run = store.runs().pop().unwrap();
    assert!(run.error.unwrap().contains("interrupted (SIGTERM)"));

    let mut next = Syncer::new(store.clone(), SyncOptions::default());
    next.add_source(paypro(&sandbox));
    let summary = next.run().await.remove(0).unwrap();
    assert!(summary.resumed);
    assert_eq!(summary.counts.new as usize, 2000 - kept);
    assert_eq!(store.payments(), data_set(&sandbox));
}

#[tokio::test]
async fn a_run_past_its_time_budget_stops_at_a_page_and_the_next_run_resumes() {
    let sandbox = Sandbox::start(SandboxConfig {
        faults: Faults {
            latency: Duration::from_millis(40),
            ..Faults::default()
        },
        ..paypro_only(5, 3000)
    })
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let mut runs = 0;
    loop {
        runs += 1;
        let mut syncer = Syncer::new(
            store.clone(),
            SyncOptions {
                max_duration: Some(Duration::from_millis(300)),
                ..SyncOptions::default()
            },
        );
        syncer.add_source(paypro(&sandbox));
        match syncer.run().await.remove(0) {
            Ok(summary) => {
                assert!(summary.resumed, "the last run resumed the first");
                break;
            }
            Err(SyncError::OutOfTime { budget, .. }) => {
                assert_eq!(budget, Duration::from_millis(300));
                assert!(store.checkpoint("paypro").unwrap().in_progress());
            }
            Err(error) => panic!("{error}"),
        }
        assert!(runs < 100, "every run makes progress");
    }
    assert!(runs > 1, "30 pages at 40 ms do not fit in 300 ms");
    assert_eq!(store.payments(), data_set(&sandbox));
    assert_eq!(store.checkpoint("paypro").unwrap().run, RunKind::Full);
}

#[tokio::test]
async fn an_mkp_429_with_retry_after_costs_that_wait_even_when_it_says_none_remain() {
    // The sandbox's MKP 429 says `Retry-After: 1` and `X-RateLimit-Remaining: 0`; DESIGN's
    // target 3: the next request goes out within Retry-After + 1 s, not a window later.
    let sandbox = Sandbox::start(SandboxConfig {
        seed: 6,
        mkp_links: 20,
        paypro_payments: 0,
        anchor: chrono::Utc::now(),
        mkp_rate_limit: None,
        faults: Faults {
            burst_429: Some(Burst {
                every: 5,
                length: 1,
                retry_after: Duration::from_secs(1),
                form: RetryAfterForm::Seconds,
            }),
            ..Faults::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
    syncer.add_source_with_rate_limit(
        payments_testkit::mkp(&sandbox),
        Some(RateLimit::per(60, Duration::from_secs(60))),
    );
    let summary = syncer.run().await.remove(0).unwrap();
    let refused = sandbox.count_status(Api::Mkp, 429) as u64;
    assert!(refused >= 2);
    assert!(
        summary.waited <= Duration::from_secs(2) * refused as u32,
        "waited {:?} for {refused} × `Retry-After: 1`",
        summary.waited
    );
    assert_eq!(store.payments().len(), data_set(&sandbox).len());
}
