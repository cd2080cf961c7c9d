//! Full, incremental and failing runs of both providers' sources against the sandbox.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use payments_model::{Payment, PaymentStatus, RateLimit};
use payments_sandbox::{
    Api, Burst, Faults, RateLimitWindow, RetryAfterForm, Sandbox, SandboxConfig,
};
use payments_sync::{
    Limiter, LimiterSnapshot, MemoryStore, PagerOptions, RetryPolicy, RunKind, SyncError,
    SyncOptions, Syncer, payments,
};
use payments_testkit::{close_and_settle_all_links_but, data_set, mkp, paypro};

fn config(links: usize, paypro: usize) -> SandboxConfig {
    SandboxConfig {
        mkp_links: links,
        paypro_payments: paypro,
        anchor: chrono::Utc::now(),
        mkp_rate_limit: None,
        ..SandboxConfig::default()
    }
}

/// One run of `source` into `store`.
async fn try_sync_one(
    store: &Arc<MemoryStore>,
    source: Arc<dyn payments_model::PaymentSource>,
    options: SyncOptions,
) -> Result<payments_sync::Summary, SyncError> {
    let mut syncer = Syncer::new(store.clone(), options);
    syncer.add_source(source);
    syncer.run().await.remove(0)
}

/// One run of `source` into `store`, which succeeds.
async fn sync_one(
    store: &Arc<MemoryStore>,
    source: Arc<dyn payments_model::PaymentSource>,
    options: SyncOptions,
) -> payments_sync::Summary {
    try_sync_one(store, source, options).await.unwrap()
}

/// Incremental runs without re-verification: they read only what can have changed.
fn only_what_can_have_changed() -> SyncOptions {
    SyncOptions {
        reverify_budget: 0,
        ..SyncOptions::default()
    }
}

fn fast_retries() -> SyncOptions {
    SyncOptions {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            ..RetryPolicy::default()
        },
        ..SyncOptions::default()
    }
}

async fn sync_both(
    store: &Arc<MemoryStore>,
    sandbox: &Sandbox,
    options: SyncOptions,
) -> Vec<Result<payments_sync::Summary, SyncError>> {
    let mut syncer = Syncer::new(store.clone(), options);
    syncer.add_source(mkp(sandbox)).add_source(paypro(sandbox));
    syncer.run().await
}

#[tokio::test]
async fn a_full_sync_of_both_sources_equals_the_data_set() {
    let sandbox = Sandbox::start(config(80, 1200)).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let results = sync_both(&store, &sandbox, SyncOptions::default()).await;
    for result in &results {
        let summary = result.as_ref().unwrap();
        assert_eq!(summary.run, Some(RunKind::Full));
        assert_eq!(summary.counts.unchanged, 0);
    }
    // After its walk, the first run learns the chargebacks PayPro lists: each completed one
    // changes its payment.
    let completed = sandbox
        .paypro_chargebacks()
        .iter()
        .filter(|c| c.state == "completed")
        .count() as u64;
    assert!(completed > 0);
    assert_eq!(results[1].as_ref().unwrap().counts.changed, completed);
    assert_eq!(results[0].as_ref().unwrap().counts.changed, 0);
    assert_eq!(store.payments(), data_set(&sandbox));
    assert!(
        store.checkpoint("mkp").unwrap().cursor.is_none(),
        "a finished run leaves no cursor"
    );
}

#[tokio::test]
async fn an_incremental_run_is_cheap_and_catches_status_changes() {
    let sandbox = Sandbox::start(config(120, 3000)).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    for result in sync_both(&store, &sandbox, SyncOptions::default()).await {
        result.unwrap();
    }
    // A payer starts a payment on an open link; the next run stores it as pending.
    let link = sandbox
        .mkp_links()
        .into_iter()
        .find(|l| l.status == "open")
        .unwrap();
    let pending_id = sandbox.add_mkp_payment(&link.id).unwrap();
    for result in sync_both(&store, &sandbox, SyncOptions::default()).await {
        result.unwrap();
    }
    let pending = store
        .payments()
        .into_iter()
        .find(|p| p.source_id == pending_id)
        .unwrap();
    assert_eq!(pending.status, PaymentStatus::Pending);
    // The link expires (a status change: its payments are read again)...
    sandbox.set_mkp_link_status(&link.id, "expired");
    for result in sync_both(&store, &sandbox, SyncOptions::default()).await {
        result.unwrap();
    }
    let full_requests = sandbox.requests().len() / 3;

    // ...and later the pending payment is paid: read again because it was unsettled and recent.
    // Meanwhile a new PayPro payment arrives and a recent one is refunded.
    sandbox.set_mkp_payment_status(&pending.source_id, "paid");
    let new_id = sandbox.insert_paypro_payment();
    let recent = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.state == "paid" && p.refunded_amount == 0)
        .unwrap();
    sandbox.set_paypro_state(&recent.id, "paid", recent.amount);

    // (Re-verification off: this run reads only what can have changed.)
    let results = sync_both(&store, &sandbox, only_what_can_have_changed()).await;
    for result in &results {
        assert_eq!(result.as_ref().unwrap().run, Some(RunKind::Incremental));
    }
    // PayPro reads back to the horizon: a day, or the oldest payment of the last 7 days that was
    // still unsettled, whichever is older; one more page finds the end of it.
    let now = chrono::Utc::now();
    let week_ago = now - chrono::Duration::days(7);
    let before: Vec<Payment> = store
        .payments()
        .into_iter()
        .filter(|p| p.source_id.starts_with("PP"))
        .collect();
    let horizon = before
        .iter()
        .filter(|p| p.status.is_unsettled() && p.created_at >= week_ago)
        .map(|p| p.created_at.with_timezone(&chrono::Utc))
        .fold(now - chrono::Duration::days(1), |h, t| h.min(t));
    let within = sandbox
        .paypro_payments()
        .iter()
        .filter(|p| {
            p.created_at
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
                >= horizon
        })
        .count();
    let paypro_requests = results[1].as_ref().unwrap().requests;
    // One more for the change feed.
    assert!(
        paypro_requests <= within as u64 / 100 + 3,
        "{paypro_requests} requests for {within} payments since {horizon}"
    );
    assert!(paypro_requests < 30, "a full read is 31 pages");
    // MKP: every page of links, the payments of open links, and the one link with news.
    let links = sandbox.mkp_links();
    let pages_of = |id: &str| sandbox.mkp_payments(id).len().div_ceil(15).max(1) as u64;
    let bound = links.len().div_ceil(15) as u64
        + links
            .iter()
            .filter(|l| l.status == "open")
            .map(|l| pages_of(&l.id))
            .sum::<u64>()
        + pages_of(&link.id);
    let mkp_requests = results[0].as_ref().unwrap().requests;
    assert!(
        mkp_requests <= bound,
        "{mkp_requests} requests, bound {bound}"
    );
    assert!(
        mkp_requests * 2 < full_requests as u64,
        "{mkp_requests} vs a full run's {full_requests}"
    );
    let stored: HashMap<String, Payment> = store
        .payments()
        .into_iter()
        .map(|p| (p.source_id.clone(), p))
        .collect();
    assert_eq!(stored[&pending.source_id].status, PaymentStatus::Paid);
    assert!(stored.contains_key(&new_id));
    assert_eq!(stored[&recent.id].status, PaymentStatus::Refunded);
    let versions = store.versions(&pending.id);
    let statuses: Vec<&PaymentStatus> = versions.iter().map(|v| &v.payment.status).collect();
    assert_eq!(statuses, [&PaymentStatus::Pending, &PaymentStatus::Paid]);
    assert!(!versions[0].backwards_to(&versions[1]));
    assert_eq!(versions[0].superseded_at, Some(versions[1].observed_at));
    assert_eq!(versions[1].superseded_at, None);
    let refunded = store.versions(&format!("paypro:{}", recent.id));
    assert_eq!(
        refunded.last().map(|v| &v.payment.status),
        Some(&PaymentStatus::Refunded)
    );
    assert!(refunded.len() >= 2, "the version before the refund is kept");
}

#[tokio::test]
async fn re_verification_finds_a_chargeback_on_a_300_day_old_payment_within_the_runs_its_budget_implies()
 {
    // 120 links three days apart (a year of links), all closed and
    // settled but one, so that only re-verification reads their payments again.
    let sandbox = Sandbox::start(SandboxConfig {
        mkp_link_spacing: Duration::from_secs(3 * 86_400),
        ..config(120, 0)
    })
    .await
    .unwrap();
    close_and_settle_all_links_but(&sandbox, 0);
    let store = Arc::new(MemoryStore::new());
    let budget = 10;
    let options = SyncOptions {
        reverify_budget: budget,
        ..SyncOptions::default()
    };
    let mkp_only = |options| sync_one(&store, mkp(&sandbox), options);
    mkp_only(options.clone()).await;
    let now = chrono::Utc::now();
    let old_paid = store
        .payments()
        .into_iter()
        .filter(|p| p.status == PaymentStatus::Paid)
        .find(|p| (now - p.created_at.with_timezone(&chrono::Utc)).num_days() >= 300)
        .expect("a payment paid 300 days ago");
    // What an incremental run reads without re-verification (the link list, recent links).
    let baseline = mkp_only(SyncOptions {
        reverify_budget: 0,
        ..SyncOptions::default()
    })
    .await
    .requests;
    let pages_per_link = sandbox
        .mkp_links()
        .iter()
        .map(|l| sandbox.mkp_payments(&l.id).len().div_ceil(15).max(1) as u64)
        .max()
        .unwrap();
    sandbox.set_mkp_payment_status(&old_paid.source_id, "chargebacked");

    // Each incremental run re-reads the `budget` links verified longest ago: every link is read
    // again within ceil(links / budget) runs.
    let links = sandbox.mkp_links().len() as u32;
    let bound = links.div_ceil(budget);
    let mut runs = 0;
    while store
        .payments()
        .iter()
        .any(|p| p.id == old_paid.id && p.status != PaymentStatus::ChargedBack)
    {
        runs += 1;
        assert!(runs <= bound, "not charged back after {bound} runs");
        let summary = mkp_only(options.clone()).await;
        assert_eq!(summary.run, Some(RunKind::Incremental));
        // What must be read anyway, plus the budget (or the one link that costs more).
        assert!(
            summary.requests <= baseline + u64::from(budget).max(pages_per_link),
            "{summary:?}, baseline {baseline}"
        );
    }
    let versions = store.versions(&old_paid.id);
    let statuses: Vec<&PaymentStatus> = versions.iter().map(|v| &v.payment.status).collect();
    assert_eq!(
        statuses,
        [&PaymentStatus::Paid, &PaymentStatus::ChargedBack]
    );

    // The provider moves it back to paid (a reversed chargeback): kept and flagged, not hidden.
    sandbox.set_mkp_payment_status(&old_paid.source_id, "paid");
    let summary = mkp_only(SyncOptions::full()).await;
    assert_eq!(summary.counts.backwards, 1);
    let versions = store.versions(&old_paid.id);
    assert!(
        versions[1].backwards_to(&versions[2]),
        "flagged, not hidden"
    );

    // After a full run every link was verified: the checkpoint says since when.
    let checkpoint = store.checkpoint("mkp").unwrap();
    assert!(checkpoint.verified_through.is_some_and(|at| at >= now));
}

#[tokio::test]
async fn faults_are_retried_and_the_result_is_exact() {
    let faults = Faults {
        server_error_rate: 0.2,
        reset_rate: 0.05,
        truncate_rate: 0.05,
        burst_429: Some(Burst {
            every: 17,
            length: 2,
            retry_after: Duration::from_secs(1),
            form: RetryAfterForm::HttpDate,
        }),
        ..Faults::default()
    };
    let sandbox = Sandbox::start(SandboxConfig {
        faults,
        ..config(40, 600)
    })
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    for result in sync_both(&store, &sandbox, fast_retries()).await {
        result.unwrap();
    }
    assert!(sandbox.requests().iter().any(|r| r.status >= 500));
    assert!(sandbox.requests().iter().any(|r| r.status == 429));
    assert_eq!(store.payments(), data_set(&sandbox));
}

#[tokio::test]
async fn when_retries_run_out_the_run_fails_cleanly_and_the_next_run_resumes() {
    let sandbox = Sandbox::start(config(10, 1000)).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let mut syncer = Syncer::new(store.clone(), fast_retries());
    syncer.add_source(paypro(&sandbox));
    // Let three pages through, then fail every request.
    let mut stopper = Syncer::new(
        store.clone(),
        SyncOptions {
            max_pages: Some(3),
            ..fast_retries()
        },
    );
    stopper.add_source(paypro(&sandbox));
    assert!(matches!(
        stopper.run().await.remove(0),
        Err(SyncError::PageBudget { pages: 3, .. })
    ));
    sandbox.set_faults(Faults {
        server_error_rate: 1.0,
        ..Faults::default()
    });
    let err = syncer.run().await.remove(0).unwrap_err();
    assert!(
        matches!(err, SyncError::RetriesExhausted { attempts: 8, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("resumes from the last committed page")
    );
    assert_eq!(
        store.payments().len(),
        300,
        "the committed pages stay, nothing more"
    );
    let checkpoint = store.checkpoint("paypro").unwrap();
    assert!(checkpoint.in_progress());

    sandbox.set_faults(Faults::default());
    let before = sandbox.requests().len();
    let summary = syncer.run().await.remove(0).unwrap();
    assert!(summary.resumed);
    assert_eq!(
        sandbox.requests().len() - before,
        7 + 2 + 3,
        "resumed at page 4 of 10, then the feed's first read, the list of chargebacks, and the first walk of the three book listings"
    );
    assert_eq!(store.payments().len(), 1000);
}

#[tokio::test]
async fn a_repeating_cursor_or_a_foreign_next_link_stops_the_run_with_a_clear_error() {
    let sandbox = Sandbox::start(SandboxConfig {
        faults: Faults {
            repeat_cursor: true,
            ..Faults::default()
        },
        ..config(10, 300)
    })
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let results = sync_both(&store, &sandbox, SyncOptions::default()).await;
    let err = results[1].as_ref().unwrap_err();
    assert!(matches!(err, SyncError::RepeatingCursor { .. }), "{err}");
    assert!(err.to_string().contains("same next page twice"));

    sandbox.set_faults(Faults {
        foreign_next: Some("http://127.0.0.2:1".into()),
        ..Faults::default()
    });
    let store = Arc::new(MemoryStore::new());
    let results = sync_both(&store, &sandbox, SyncOptions::default()).await;
    for result in results {
        assert!(matches!(
            result,
            Err(SyncError::Source {
                error: payments_model::SourceError::Refused(_),
                ..
            })
        ));
    }
}

#[tokio::test]
async fn the_limiter_keeps_mkp_clear_of_429s_also_back_to_back() {
    let window = RateLimitWindow {
        limit: 20,
        window: Duration::from_secs(2),
    };
    let sandbox = Sandbox::start(SandboxConfig {
        mkp_rate_limit: Some(window),
        ..config(30, 10)
    })
    .await
    .unwrap();
    // Two runs, as two cron processes on one database would: a fresh limiter each time,
    // starting from the rate-limit state the previous run left in the checkpoint.
    let store = Arc::new(MemoryStore::new());
    for _ in 0..2 {
        let mut syncer = Syncer::new(store.clone(), SyncOptions::full());
        syncer.add_source(mkp(&sandbox));
        syncer.run().await.remove(0).unwrap();
    }
    assert!(
        sandbox.requests().len() > 40,
        "the test must exceed the window twice"
    );
    assert_eq!(sandbox.count_status(Api::Mkp, 429), 0);
}

/// Another client of `sandbox`'s MKP key (another account with the same key) spends the whole
/// window through a limiter of its own; what that limiter saw.
async fn spend_the_window(sandbox: &Sandbox, window: RateLimitWindow) -> LimiterSnapshot {
    let source = mkp(sandbox);
    let limiter = Limiter::new(RateLimit::per(window.limit, window.window));
    for _ in 0..window.limit {
        let ticket = limiter.acquire().await;
        let page = source.page(None).await.unwrap();
        if let Some(remaining) = page.rate_limit.remaining {
            limiter.observe_remaining(remaining);
        }
        limiter.answered(ticket);
    }
    limiter
        .snapshot(chrono::Utc::now())
        .expect("the server said what remains")
}

#[tokio::test]
async fn a_run_started_from_what_another_client_of_its_key_saw_meets_no_429() {
    let window = RateLimitWindow {
        limit: 20,
        window: Duration::from_secs(2),
    };
    let sandbox = Sandbox::start(SandboxConfig {
        mkp_rate_limit: Some(window),
        ..config(30, 10)
    })
    .await
    .unwrap();
    // Told what the other client saw, the run waits for the window: no 429.
    let seen = spend_the_window(&sandbox, window).await;
    let mut syncer = Syncer::new(Arc::new(MemoryStore::new()), SyncOptions::full());
    syncer.add_source_seen(mkp(&sandbox), Some(seen));
    syncer.run().await.remove(0).unwrap();
    assert_eq!(sandbox.count_status(Api::Mkp, 429), 0);
    assert!(
        syncer.rate_limit_seen("mkp").is_some(),
        "it says what it saw, for the next client"
    );

    // Not told, its own ledger knowing nothing of the other client, its first request meets
    // the spent window.
    tokio::time::sleep(window.window).await;
    spend_the_window(&sandbox, window).await;
    let mut syncer = Syncer::new(Arc::new(MemoryStore::new()), SyncOptions::full());
    syncer.add_source(mkp(&sandbox));
    syncer.run().await.remove(0).unwrap();
    assert!(sandbox.count_status(Api::Mkp, 429) > 0);
}

#[tokio::test]
async fn the_payment_stream_yields_every_payment_once() {
    let sandbox = Sandbox::start(config(10, 450)).await.unwrap();
    let source = paypro(&sandbox);
    let ids: Vec<String> = payments(source.as_ref(), None, PagerOptions::default())
        .map(|p| p.unwrap().id)
        .collect()
        .await;
    assert_eq!(ids.len(), 450);
    assert_eq!(
        ids,
        sandbox
            .paypro_payments()
            .into_iter()
            .map(|p| format!("paypro:{}", p.id))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_incremental_mkp_run_over_1000_links_with_950_closed_and_settled_stays_within_its_bound()
{
    let sandbox = Sandbox::start(config(1000, 10)).await.unwrap();
    // 50 links stay open (ones with a single page of payments); the other 950 are closed, and
    // every payment on them is settled.
    close_and_settle_all_links_but(&sandbox, 50);
    let store = Arc::new(MemoryStore::new());
    let run = || async {
        let mut syncer = Syncer::new(store.clone(), only_what_can_have_changed());
        syncer.add_source(mkp(&sandbox));
        syncer.run().await.remove(0).unwrap()
    };
    let full = run().await;
    assert_eq!(full.run, Some(RunKind::Full));
    let before = sandbox.requests().len();
    let incremental = run().await;
    assert_eq!(incremental.run, Some(RunKind::Incremental));
    let requests = (sandbox.requests().len() - before) as u64;
    let link_pages = 1000u64.div_ceil(15);
    assert!(
        requests <= link_pages + 50 + 2,
        "{requests} requests; bound {}",
        link_pages + 52
    );
    assert_eq!(requests, incremental.requests);
    println!(
        "incremental MKP over 1000 links: {requests} requests (bound {}), full run {}",
        link_pages + 52,
        full.requests
    );
    assert!(
        full.requests > 5 * requests,
        "full {} vs incremental {requests}",
        full.requests
    );
}

#[tokio::test]
async fn every_one_of_1000_mkp_links_is_re_verified_within_a_day_of_five_minute_runs() {
    let sandbox = Sandbox::start(config(1000, 0)).await.unwrap();
    close_and_settle_all_links_but(&sandbox, 20);
    let store = Arc::new(MemoryStore::new());
    let run = |options| sync_one(&store, mkp(&sandbox), options);
    run(SyncOptions::default()).await;
    let started = chrono::Utc::now();
    let verified_since_started = || {
        let checkpoint = store.checkpoint("mkp").unwrap();
        checkpoint.verified_through.is_some_and(|at| at >= started)
    };
    // A day of cron every five minutes is 288 runs.
    let mut runs = 0;
    while !verified_since_started() {
        runs += 1;
        assert!(
            runs <= 288,
            "some link was not re-verified within a day of runs"
        );
        run(SyncOptions::default()).await;
    }
    // The budget is requests: all links' pages of payments, spread over the runs.
    let budget = payments_sync::DEFAULT_REVERIFY_BUDGET as usize;
    let pages: usize = sandbox
        .mkp_links()
        .iter()
        .map(|l| sandbox.mkp_payments(&l.id).len().div_ceil(15).max(1))
        .sum();
    assert!(
        runs <= pages.div_ceil(budget) + 1,
        "{runs} runs for {pages} pages"
    );

    // With MKP's limit (scaled down: 60 per 300 ms), a run waits at most one window, as a cron
    // run five minutes after the last one would (the window has emptied in between).
    let window = Duration::from_millis(300);
    for _ in 0..3 {
        tokio::time::sleep(window).await;
        let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
        syncer.add_source_with_rate_limit(
            mkp(&sandbox),
            Some(payments_sync::RateLimit::per(60, window)),
        );
        let summary = syncer.run().await.remove(0).unwrap();
        assert!(
            summary.requests > 60,
            "the run needs more than one window: {summary:?}"
        );
        assert!(summary.waited <= window, "{summary:?}");
    }
}

#[tokio::test]
async fn the_paypro_re_verification_walk_resumes_run_after_run_and_finds_a_silent_change() {
    // 2,000 payments three hours apart: 20 pages, 250 days.
    let sandbox = Sandbox::start(SandboxConfig {
        paypro_spacing: Duration::from_secs(3 * 3600),
        ..config(0, 2000)
    })
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let budget = 4;
    let run = |options| sync_one(&store, paypro(&sandbox), options);
    let options = SyncOptions {
        reverify_budget: budget,
        ..SyncOptions::default()
    };
    run(options.clone()).await;
    let first = store
        .checkpoint("paypro")
        .unwrap()
        .verified_through
        .unwrap();
    let baseline = run(SyncOptions {
        reverify_budget: 0,
        ..SyncOptions::default()
    })
    .await
    .requests;
    // A change the provider reports nowhere but in the payment itself, 200 days back.
    let old = sandbox
        .old_paid_paypro_payment(Duration::from_secs(200 * 86_400))
        .unwrap();
    sandbox.set_paypro_state(&old.id, "paid", old.amount / 2);
    let id = format!("paypro:{}", old.id);
    let pages = 2000u32.div_ceil(100);
    let mut runs = 0;
    while store
        .payments()
        .iter()
        .any(|p| p.id == id && p.status != PaymentStatus::PartiallyRefunded)
    {
        runs += 1;
        assert!(
            runs <= pages.div_ceil(budget) + 1,
            "not found after {runs} runs"
        );
        let summary = run(options.clone()).await;
        assert_eq!(summary.run, Some(RunKind::Incremental));
        assert!(
            summary.requests <= baseline + u64::from(budget),
            "{summary:?}"
        );
    }
    // Once the walk reaches the end of the listing, the ledger is verified since it started.
    for _ in 0..=pages.div_ceil(budget) {
        run(options.clone()).await;
    }
    let through = store
        .checkpoint("paypro")
        .unwrap()
        .verified_through
        .unwrap();
    assert!(through > first, "{through} after {first}");
}

#[tokio::test]
async fn a_run_stopped_in_its_re_verification_walk_is_followed_by_a_new_run_that_reads_the_newest_first()
 {
    let sandbox = Sandbox::start(SandboxConfig {
        paypro_spacing: Duration::from_secs(3 * 3600),
        ..config(0, 2000)
    })
    .await
    .unwrap();
    let store = Arc::new(MemoryStore::new());
    let run = |options| try_sync_one(&store, paypro(&sandbox), options);
    run(SyncOptions::default()).await.unwrap();
    // The incremental run reads a page or two down to its horizon, then re-verifies until its
    // page budget stops it in the middle of the walk.
    let stopped = run(SyncOptions {
        max_pages: Some(4),
        ..SyncOptions::default()
    })
    .await;
    assert!(
        matches!(stopped, Err(SyncError::PageBudget { .. })),
        "{stopped:?}"
    );
    let checkpoint = store.checkpoint("paypro").unwrap();
    assert!(checkpoint.in_progress());
    assert_eq!(
        checkpoint.cursor, checkpoint.reverify_cursor,
        "stopped while re-verifying"
    );
    let stopped_at = checkpoint.reverify_cursor.clone();

    let new = sandbox.insert_paypro_payment();
    let next = run(SyncOptions::default()).await.unwrap();
    assert!(
        !next.resumed,
        "a new run, not a resume of the re-verification walk"
    );
    assert!(
        store.payments().iter().any(|p| p.source_id == new),
        "the newest page was read"
    );
    let after = store.checkpoint("paypro").unwrap();
    assert_ne!(
        after.reverify_cursor, stopped_at,
        "the walk went on from where it stopped"
    );
    assert!(!after.in_progress());
}
