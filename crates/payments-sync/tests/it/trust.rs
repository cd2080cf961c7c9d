//! The change feed tried as a hostile provider would: one payment that cannot be read never
//! holds the source, a long feed is read over successive runs while each run still walks, a
//! feed that fails is a failed feed (unhealthy once it persists), a chargeback is never lost to
//! an outage, a chargeback that does not fit its payment is quarantined, and an event inserted
//! late below the position is still read.

use std::sync::Arc;
use std::time::Duration;

use payments_model::{Currency, Money, PaymentStatus};
use payments_sandbox::{Api, ChargebackSpec, EndpointFault, FaultAnswer, PayProPayment, Sandbox};
use payments_sync::{
    MemoryStore, PERSISTENT_RUNS, RunKind, Summary, SyncError, SyncOptions, Syncer,
};
use payments_testkit::paypro;

use crate::feed::a_year_of_paypro;

async fn run(
    store: &Arc<MemoryStore>,
    sandbox: &Sandbox,
    options: &SyncOptions,
) -> Result<Summary, SyncError> {
    let mut syncer = Syncer::new(store.clone(), options.clone());
    syncer.add_source(paypro(sandbox));
    syncer.run().await.remove(0)
}

/// A ledger that has read everything and noted where the feed stands.
async fn synced(sandbox: &Sandbox) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let first = run(&store, sandbox, &SyncOptions::default()).await.unwrap();
    assert_eq!(first.run, Some(RunKind::Full));
    assert!(
        store.checkpoint("paypro").unwrap().feed.is_some(),
        "the first run notes where the feed stands"
    );
    store
}

fn stored(store: &MemoryStore, source_id: &str) -> Option<payments_model::Payment> {
    store
        .payments()
        .into_iter()
        .find(|p| p.source_id == source_id)
}

/// `n` paid payments with nothing refunded, older than `days` (the walk of an incremental run
/// does not reach them: only the feed does).
fn old_paid(sandbox: &Sandbox, days: i64, n: usize) -> Vec<PayProPayment> {
    let before = chrono::Utc::now() - chrono::Duration::days(days);
    let old: Vec<PayProPayment> = sandbox
        .paypro_payments()
        .into_iter()
        .filter(|p| {
            matches!(p.state.as_str(), "paid" | "completed")
                && p.refunded_amount == 0
                && chrono::DateTime::parse_from_rfc3339(&p.created_at).unwrap() < before
        })
        .take(n)
        .collect();
    assert_eq!(old.len(), n, "the data set has {n} old paid payments");
    old
}

/// How many times the payment `id` was read by id since request number `since`.
fn reads_of_since(sandbox: &Sandbox, id: &str, since: usize) -> usize {
    let path = format!("/paypro/payments/{id}");
    sandbox.requests()[since..]
        .iter()
        .filter(|r| r.api == Api::PayPro && r.path_and_query == path)
        .count()
}

/// What time passing does to the payments put off: their backoff is over.
async fn due_now(store: &MemoryStore) {
    let mut checkpoint = store.checkpoint("paypro").unwrap();
    for entry in &mut checkpoint.to_read {
        entry.not_before = None;
    }
    put_checkpoint(store, checkpoint).await;
}

/// `/chargebacks` answering 404: only the feed can tell of a chargeback.
fn no_chargeback_list() -> EndpointFault {
    at_path("/chargebacks", status(404), None, Duration::ZERO)
}

/// A fault on the PayPro endpoint at `path`.
fn at_path(
    path: &str,
    answer: FaultAnswer,
    times: Option<u64>,
    latency: Duration,
) -> EndpointFault {
    EndpointFault {
        api: Api::PayPro,
        path: path.into(),
        answer,
        times,
        latency,
    }
}

/// An answer with this HTTP status and the API's error body.
fn status(status: u16) -> FaultAnswer {
    FaultAnswer::Status {
        status,
        retry_after: None,
        body: None,
    }
}

/// The default budget of `payments sync`.
fn four_minutes() -> SyncOptions {
    SyncOptions {
        max_duration: Some(Duration::from_secs(240)),
        ..SyncOptions::default()
    }
}

#[tokio::test]
async fn a_payment_whose_read_asks_to_wait_a_minute_is_put_off_and_the_run_goes_on() {
    let sandbox = a_year_of_paypro().await;
    let store = synced(&sandbox).await;
    let charged = &old_paid(&sandbox, 100, 1)[0];
    sandbox
        .charge_back_paypro_payment(&charged.id, charged.amount, true)
        .unwrap();
    // The chargeback is also on the first page of /chargebacks; only the read by id may apply
    // it, and that read keeps asking for a minute.
    let wait_a_minute = FaultAnswer::Status {
        status: 503,
        retry_after: Some(Duration::from_secs(60)),
        body: None,
    };
    let path = format!("/payments/{}", charged.id);
    sandbox.add_endpoint_fault(at_path(&path, wait_a_minute, None, Duration::ZERO));
    let new = sandbox.insert_paypro_payment();

    let started = std::time::Instant::now();
    // An incremental run, then a full one (`--full` is no way around it either).
    for (attempt, options) in [(1, four_minutes()), (2, SyncOptions::full())] {
        let summary = run(&store, &sandbox, &options).await.unwrap();
        assert_eq!(summary.to_read, 1, "run {attempt}: said, not silent");
        let queue = store.checkpoint("paypro").unwrap().to_read;
        assert_eq!(queue[0].source_id, charged.id);
        assert_eq!(queue[0].attempts, attempt);
        assert!(
            queue[0].last_error.as_deref().unwrap().contains("503"),
            "{queue:?}"
        );
        assert!(
            stored(&store, &new).is_some(),
            "run {attempt}: the walk went on"
        );
        assert_eq!(
            stored(&store, &charged.id).unwrap().status,
            PaymentStatus::Paid
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "nothing waited for the minute: {:?}",
        started.elapsed()
    );
    assert_eq!(
        reads_of_since(&sandbox, &charged.id, 0),
        2,
        "one request a run"
    );
    // After a second failure it backs off: a run right after does not ask again.
    let before = sandbox.requests().len();
    assert_eq!(
        run(&store, &sandbox, &four_minutes())
            .await
            .unwrap()
            .to_read,
        1
    );
    assert_eq!(reads_of_since(&sandbox, &charged.id, before), 0);
    due_now(&store).await;

    // Failing that many times makes the source unhealthy, naming the payment, the walk done.
    let third = run(&store, &sandbox, &four_minutes()).await;
    let Err(SyncError::Unhealthy {
        problem, summary, ..
    }) = third
    else {
        panic!("unhealthy after {PERSISTENT_RUNS} runs: {third:?}");
    };
    assert!(problem.contains(&charged.id), "{problem}");
    assert_eq!(summary.to_read, 1);
    assert_eq!(
        store.runs().last().unwrap().error.as_deref(),
        Some(format!("paypro: {problem}").as_str()),
        "recorded as the run's failure"
    );

    // Once the provider answers, a later run reads it (the backoff is a minute by now).
    sandbox.clear_endpoint_faults();
    due_now(&store).await;
    let healed = run(&store, &sandbox, &four_minutes()).await.unwrap();
    assert_eq!(healed.to_read, 0);
    let now = stored(&store, &charged.id).unwrap();
    assert_eq!(now.status, PaymentStatus::ChargedBack);
    assert_eq!(
        now.charged_back_amount,
        Some(Money::from_minor(charged.amount, Currency::EUR))
    );
}

/// Stores `checkpoint` as the source's (what time passing would do to its backoff).
async fn put_checkpoint(store: &MemoryStore, checkpoint: payments_sync::Checkpoint) {
    use payments_sync::Store;
    store
        .commit(payments_sync::Commit {
            source: "paypro".into(),
            observed_at: chrono::Utc::now(),
            payments: Vec::new(),
            rejected: Vec::new(),
            resolved: Vec::new(),
            groups: Vec::new(),
            unknown_words: Vec::new(),
            checkpoint: Some(checkpoint),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_feed_naming_300_old_payments_is_read_over_successive_runs_each_storing_the_newest() {
    let sandbox = a_year_of_paypro().await;
    let store = synced(&sandbox).await;
    let old = old_paid(&sandbox, 2, 300);
    for payment in &old {
        sandbox.refund_paypro_payment(&payment.id, 1).unwrap();
    }
    let latency = Duration::from_millis(50);
    sandbox.add_endpoint_fault(at_path("/payments/*", FaultAnswer::Normal, None, latency));
    let budget = Duration::from_secs(10);
    let options = SyncOptions {
        max_duration: Some(budget),
        ..SyncOptions::default()
    };
    // What the budget allows: the feed's share of it, a read at a time.
    let per_run =
        (budget.mul_f64(payments_sync::FEED_SHARE).as_secs_f64() / latency.as_secs_f64()) as usize;
    let bound = old.len().div_ceil(per_run) + 1;
    let mut runs = 0;
    loop {
        runs += 1;
        let newest = sandbox.insert_paypro_payment();
        let summary = run(&store, &sandbox, &options).await.unwrap();
        assert!(
            stored(&store, &newest).is_some(),
            "run {runs} stored the newest payment"
        );
        if summary.to_read == 0 {
            break;
        }
        assert!(runs < bound, "{runs} runs, {} left", summary.to_read);
    }
    assert!(
        runs <= bound,
        "{runs} runs for {} reads, at most {bound}",
        old.len()
    );
    for payment in &old {
        assert_eq!(
            stored(&store, &payment.id).unwrap().refunded_amount,
            Some(Money::from_minor(1, Currency::EUR)),
            "{}",
            payment.id
        );
    }
}

/// A feed that cannot be read, in each way a hostile provider can fail it.
fn failing_feeds() -> Vec<(&'static str, FaultAnswer)> {
    vec![
        ("403", status(403)),
        ("404", status(404)),
        ("a next link to itself", FaultAnswer::RepeatNext),
        ("a body that is not JSON", FaultAnswer::NotJson),
    ]
}

#[tokio::test]
async fn a_feed_that_fails_still_reads_the_newest_chargebacks_and_is_unhealthy_once_it_persists() {
    for (what, answer) in failing_feeds() {
        let sandbox = a_year_of_paypro().await;
        let store = synced(&sandbox).await;
        let old = old_paid(&sandbox, 100, 123);
        let [charged, refunded, later] = <[PayProPayment; 3]>::try_from(old[..3].to_vec()).unwrap();
        // More changes than a page holds, so that a next link to itself is followed.
        for payment in &old[3..] {
            sandbox.refund_paypro_payment(&payment.id, 1).unwrap();
        }
        sandbox.add_endpoint_fault(at_path("/events", answer, None, Duration::ZERO));
        sandbox
            .charge_back_paypro_payment(&charged.id, charged.amount, true)
            .unwrap();
        sandbox.refund_paypro_payment(&refunded.id, 100).unwrap();
        for failed in 1..=PERSISTENT_RUNS {
            let result = run(&store, &sandbox, &SyncOptions::default()).await;
            let summary = match result {
                Ok(summary) if failed < PERSISTENT_RUNS => summary,
                Err(SyncError::Unhealthy {
                    problem, summary, ..
                }) if failed == PERSISTENT_RUNS => {
                    assert!(problem.contains("change feed"), "{what}: {problem}");
                    *summary
                }
                other => panic!("{what}, run {failed}: {other:?}"),
            };
            assert!(summary.feed_error.is_some(), "{what}: said: {summary:?}");
            assert_eq!(
                stored(&store, &charged.id).unwrap().status,
                PaymentStatus::ChargedBack,
                "{what}: the chargeback on the first page of /chargebacks landed in run {failed}"
            );
            let failing = store.checkpoint("paypro").unwrap().feed_failing.unwrap();
            assert_eq!(failing.runs, failed, "{what}");
            if failed == 1 {
                // A chargeback made while the feed fails lands too.
                sandbox
                    .charge_back_paypro_payment(&later.id, later.amount, true)
                    .unwrap();
            }
        }
        // The feed reads again: the source is healthy, and the refund it announced (which no
        // other list shows) lands: its position did not move while it failed.
        sandbox.clear_endpoint_faults();
        let healed = run(&store, &sandbox, &SyncOptions::default())
            .await
            .unwrap();
        assert_eq!(healed.feed_error, None, "{what}");
        assert!(store.checkpoint("paypro").unwrap().feed_failing.is_none());
        assert!(
            store
                .checkpoint("paypro")
                .unwrap()
                .persistent_failures(chrono::Utc::now())
                .is_empty()
        );
        assert_eq!(
            stored(&store, &refunded.id).unwrap().refunded_amount,
            Some(Money::from_minor(100, Currency::EUR)),
            "{what}: nothing was lost"
        );
        for payment in [&charged, &later] {
            assert_eq!(
                stored(&store, &payment.id).unwrap().status,
                PaymentStatus::ChargedBack,
                "{what}"
            );
        }
    }
}

#[tokio::test]
async fn a_chargeback_whose_payment_fails_eight_times_is_applied_by_a_later_run() {
    let sandbox = a_year_of_paypro().await;
    let store = synced(&sandbox).await;
    let charged = &old_paid(&sandbox, 100, 1)[0];
    sandbox
        .charge_back_paypro_payment(&charged.id, charged.amount / 2, true)
        .unwrap();
    // As if the chargeback had left the first page of /chargebacks: only the feed has it.
    sandbox.add_endpoint_fault(no_chargeback_list());
    let path = format!("/payments/{}", charged.id);
    sandbox.add_endpoint_fault(at_path(&path, status(500), Some(8), Duration::ZERO));
    let options = SyncOptions {
        max_duration: Some(Duration::from_secs(20)),
        ..SyncOptions::default()
    };
    let position = store.checkpoint("paypro").unwrap().feed.unwrap();
    let mut runs = 0;
    while stored(&store, &charged.id).unwrap().status != PaymentStatus::ChargedBack {
        runs += 1;
        assert!(runs <= 8, "applied within eight runs");
        let checkpoint = store.checkpoint("paypro").unwrap();
        if runs == 2 {
            assert_ne!(
                checkpoint.feed.as_ref(),
                Some(&position),
                "the feed moved on"
            );
            assert_eq!(
                checkpoint.to_read.len(),
                1,
                "because the payment is kept to read"
            );
            assert!(
                checkpoint.to_read[0].chargeback.is_some(),
                "with its chargeback"
            );
        }
        // Time passes between runs: the backoff is over.
        due_now(&store).await;
        let _ = run(&store, &sandbox, &options).await;
    }
    assert!(runs >= 2, "the first run could not read it");
    assert_eq!(
        stored(&store, &charged.id).unwrap().charged_back_amount,
        Some(Money::from_minor(charged.amount / 2, Currency::EUR))
    );
    assert!(store.checkpoint("paypro").unwrap().to_read.is_empty());
}

#[tokio::test]
async fn chargebacks_above_the_amount_or_in_another_currency_are_quarantined_until_corrected() {
    let sandbox = a_year_of_paypro().await;
    let store = synced(&sandbox).await;
    let [huge, foreign] = <[PayProPayment; 2]>::try_from(old_paid(&sandbox, 100, 2)).unwrap();
    let spec = |payment: &PayProPayment, amount, currency: Option<&str>| ChargebackSpec {
        payment_id: payment.id.clone(),
        amount,
        currency: currency.map(str::to_owned),
        completed: true,
        at: None,
    };
    let huge_id = sandbox
        .add_paypro_chargeback(spec(&huge, 100_000_000, None))
        .unwrap();
    let foreign_id = sandbox
        .add_paypro_chargeback(spec(&foreign, foreign.amount, Some("USD")))
        .unwrap();
    let before = [
        stored(&store, &huge.id).unwrap(),
        stored(&store, &foreign.id).unwrap(),
    ];
    for attempt in 0..2 {
        let summary = run(&store, &sandbox, &SyncOptions::default())
            .await
            .unwrap();
        assert_eq!(
            summary.quarantined, 2,
            "run {attempt}: said every run (exit 3)"
        );
        let quarantined: Vec<_> = store.rejected();
        let ids: Vec<&str> = quarantined
            .iter()
            .filter_map(|r| r.source_id.as_deref())
            .collect();
        assert_eq!(ids.len(), 2, "kept once each: {quarantined:?}");
        assert!(ids.contains(&huge_id.as_str()) && ids.contains(&foreign_id.as_str()));
        let reasons: Vec<&str> = quarantined.iter().map(|r| r.reason.as_str()).collect();
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("more than the payment's amount"))
                && reasons
                    .iter()
                    .any(|r| r.contains("not the payment's currency")),
            "{reasons:?}"
        );
        assert!(
            quarantined.iter().all(|r| r.raw.contains("\"amount\"")),
            "the raw record"
        );
        assert_eq!(
            [
                stored(&store, &huge.id).unwrap(),
                stored(&store, &foreign.id).unwrap()
            ],
            before,
            "the payments keep their last good state"
        );
    }
    assert!(sandbox.correct_paypro_chargeback(&huge_id, huge.amount, None));
    assert!(sandbox.correct_paypro_chargeback(&foreign_id, foreign.amount / 2, Some("EUR")));
    let corrected = run(&store, &sandbox, &SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(corrected.quarantined, 0);
    assert!(
        store.rejected().is_empty(),
        "resolved: {:?}",
        store.rejected()
    );
    assert_eq!(
        stored(&store, &huge.id).unwrap().charged_back_amount,
        Some(Money::from_minor(huge.amount, Currency::EUR))
    );
    assert_eq!(
        stored(&store, &foreign.id).unwrap().charged_back_amount,
        Some(Money::from_minor(foreign.amount / 2, Currency::EUR))
    );
}

#[tokio::test]
async fn an_event_inserted_late_just_below_the_position_is_applied_by_the_next_run() {
    let sandbox = a_year_of_paypro().await;
    let store = synced(&sandbox).await;
    let [first, late] = <[PayProPayment; 2]>::try_from(old_paid(&sandbox, 100, 2)).unwrap();
    sandbox
        .charge_back_paypro_payment(&first.id, first.amount, true)
        .unwrap();
    run(&store, &sandbox, &SyncOptions::default())
        .await
        .unwrap();
    let position = store.checkpoint("paypro").unwrap().feed.unwrap();
    assert_eq!(
        stored(&store, &first.id).unwrap().status,
        PaymentStatus::ChargedBack
    );
    sandbox.add_endpoint_fault(no_chargeback_list());
    let at = position.at.with_timezone(&chrono::Utc) - chrono::Duration::minutes(5);
    let listed: std::collections::HashSet<String> =
        sandbox.paypro_events().into_iter().map(|e| e.id).collect();
    sandbox
        .add_paypro_chargeback(ChargebackSpec {
            payment_id: late.id.clone(),
            amount: late.amount,
            currency: None,
            completed: true,
            at: Some(at),
        })
        .unwrap();
    let events = sandbox.paypro_events();
    let top = events.iter().position(|e| e.id == position.id).unwrap();
    let inserted = events.iter().position(|e| !listed.contains(&e.id)).unwrap();
    assert!(inserted > top, "listed below the position");
    run(&store, &sandbox, &SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(
        stored(&store, &late.id).unwrap().status,
        PaymentStatus::ChargedBack,
        "read back past the position"
    );
    // Read back over, not again: the next run reads none of those payments by id.
    let before = sandbox.requests().len();
    run(&store, &sandbox, &SyncOptions::default())
        .await
        .unwrap();
    let by_id = sandbox.requests()[before..]
        .iter()
        .filter(|r| r.path_and_query.starts_with("/paypro/payments/"))
        .count();
    assert_eq!(by_id, 0, "changes taken before are not taken again");
}

#[tokio::test]
async fn a_read_by_id_that_hangs_is_cut_off_and_put_off_and_the_walk_runs() {
    let sandbox = a_year_of_paypro().await;
    let store = synced(&sandbox).await;
    let refunded = &old_paid(&sandbox, 100, 1)[0];
    sandbox.refund_paypro_payment(&refunded.id, 1).unwrap();
    let path = format!("/payments/{}", refunded.id);
    sandbox.add_endpoint_fault(at_path(
        &path,
        FaultAnswer::Normal,
        None,
        Duration::from_secs(20),
    ));
    let options = SyncOptions {
        max_duration: Some(Duration::from_secs(4)),
        ..SyncOptions::default()
    };
    let newest = sandbox.insert_paypro_payment();
    let summary = run(&store, &sandbox, &options).await.unwrap();
    assert!(stored(&store, &newest).is_some(), "the walk ran");
    assert_eq!(summary.to_read, 1);
    let queue = store.checkpoint("paypro").unwrap().to_read;
    assert_eq!(queue[0].attempts, 1, "a read cut off is a failed attempt");
    sandbox.clear_endpoint_faults();
    run(&store, &sandbox, &options).await.unwrap();
    assert_eq!(
        stored(&store, &refunded.id).unwrap().refunded_amount,
        Some(Money::from_minor(1, Currency::EUR))
    );
}

#[tokio::test]
async fn a_read_by_id_answered_once_with_a_404_or_a_page_that_is_not_json_keeps_its_chargeback() {
    for answer in [FaultAnswer::NotJson, status(404)] {
        let sandbox = a_year_of_paypro().await;
        let store = synced(&sandbox).await;
        let charged = &old_paid(&sandbox, 100, 1)[0];
        sandbox.add_endpoint_fault(no_chargeback_list());
        let path = format!("/payments/{}", charged.id);
        sandbox.add_endpoint_fault(at_path(&path, answer.clone(), Some(1), Duration::ZERO));
        sandbox
            .charge_back_paypro_payment(&charged.id, charged.amount, true)
            .unwrap();
        let first = run(&store, &sandbox, &SyncOptions::default())
            .await
            .unwrap();
        assert_eq!(first.to_read, 1, "{answer:?}: put off, not dropped");
        // A listing that reads the payment meanwhile resolves nothing the chargeback needs.
        run(&store, &sandbox, &SyncOptions::full()).await.unwrap();
        assert!(
            store.rejected().is_empty(),
            "{answer:?}: {:?}",
            store.rejected()
        );
        assert_eq!(
            stored(&store, &charged.id).unwrap().status,
            PaymentStatus::ChargedBack,
            "{answer:?}: applied by the next run"
        );
    }
}

#[tokio::test]
async fn changes_listed_below_an_event_stamped_a_day_ahead_are_all_read() {
    let sandbox = a_year_of_paypro().await;
    let store = synced(&sandbox).await;
    let old = old_paid(&sandbox, 30, 260);
    sandbox.add_endpoint_fault(no_chargeback_list());
    let ahead = chrono::Utc::now() + chrono::Duration::days(1);
    let chargeback = |payment: &PayProPayment, amount, at| ChargebackSpec {
        payment_id: payment.id.clone(),
        amount,
        currency: None,
        completed: true,
        at: Some(at),
    };
    sandbox
        .add_paypro_chargeback(chargeback(&old[0], 1, ahead))
        .unwrap();
    run(&store, &sandbox, &SyncOptions::default())
        .await
        .unwrap();
    for payment in &old[1..] {
        sandbox
            .add_paypro_chargeback(chargeback(payment, payment.amount, chrono::Utc::now()))
            .unwrap();
    }
    assert_eq!(
        sandbox.paypro_events()[0].created_at[..10],
        ahead.to_rfc3339()[..10]
    );
    run(&store, &sandbox, &SyncOptions::default())
        .await
        .unwrap();
    let missed: Vec<&str> = old[1..]
        .iter()
        .filter(|p| stored(&store, &p.id).unwrap().status != PaymentStatus::ChargedBack)
        .map(|p| p.id.as_str())
        .collect();
    assert!(missed.is_empty(), "{} missed: {missed:?}", missed.len());
}

#[tokio::test]
async fn a_feed_too_slow_for_its_share_is_a_failed_feed_and_the_walk_still_runs() {
    let sandbox = a_year_of_paypro().await;
    let store = synced(&sandbox).await;
    for payment in old_paid(&sandbox, 2, 300) {
        sandbox.refund_paypro_payment(&payment.id, 1).unwrap();
    }
    sandbox.add_endpoint_fault(at_path(
        "/events",
        FaultAnswer::Normal,
        None,
        Duration::from_millis(1000),
    ));
    let options = SyncOptions {
        max_duration: Some(Duration::from_secs(3)),
        ..SyncOptions::default()
    };
    let newest = sandbox.insert_paypro_payment();
    let summary = run(&store, &sandbox, &options).await.unwrap();
    assert!(stored(&store, &newest).is_some(), "the walk ran");
    let error = summary.feed_error.unwrap();
    assert!(error.contains("share of the run's time"), "{error}");
}

#[tokio::test]
async fn a_refund_after_a_chargeback_keeps_the_chargeback() {
    let sandbox = a_year_of_paypro().await;
    let store = synced(&sandbox).await;
    let charged = &old_paid(&sandbox, 100, 1)[0];
    sandbox
        .charge_back_paypro_payment(&charged.id, charged.amount, true)
        .unwrap();
    run(&store, &sandbox, &SyncOptions::default())
        .await
        .unwrap();
    sandbox.refund_paypro_payment(&charged.id, 1).unwrap();
    sandbox.add_endpoint_fault(no_chargeback_list());
    run(&store, &sandbox, &SyncOptions::default())
        .await
        .unwrap();
    let now = stored(&store, &charged.id).unwrap();
    assert_eq!(now.status, PaymentStatus::ChargedBack);
    assert_eq!(
        now.charged_back_amount,
        Some(Money::from_minor(charged.amount, Currency::EUR))
    );
    assert_eq!(
        now.refunded_amount,
        Some(Money::from_minor(1, Currency::EUR))
    );
}

/// What the second hostile review found: the provider's list of chargebacks failing, pages over
/// the body cap, a slow list before the walk, a gap in the feed on a full run or with the list
/// failing.
mod chargeback_list {
    use super::*;
    use payments_sandbox::{ContentFaults, OversizedPages, SandboxConfig};
    use payments_testkit::paypro_with_body_cap;

    fn forbidden() -> EndpointFault {
        at_path("/chargebacks", status(403), None, Duration::ZERO)
    }

    #[tokio::test]
    async fn a_list_of_chargebacks_that_keeps_failing_is_said_and_unhealthy_once_it_persists() {
        let sandbox = a_year_of_paypro().await;
        let store = synced(&sandbox).await;
        let charged = &old_paid(&sandbox, 100, 1)[0];
        let id = sandbox
            .charge_back_paypro_payment(&charged.id, charged.amount, false)
            .unwrap();
        run(&store, &sandbox, &SyncOptions::default())
            .await
            .unwrap();
        sandbox.add_endpoint_fault(forbidden());
        assert!(sandbox.complete_paypro_chargeback(&id));
        for failed in 1..PERSISTENT_RUNS {
            let summary = run(&store, &sandbox, &SyncOptions::default())
                .await
                .unwrap();
            let error = summary.feed_error.unwrap();
            assert!(
                error.contains("newest chargebacks"),
                "run {failed}: {error}"
            );
        }
        let third = run(&store, &sandbox, &SyncOptions::default()).await;
        assert!(
            matches!(third, Err(SyncError::Unhealthy { .. })),
            "{third:?}"
        );
        sandbox.clear_endpoint_faults();
        let healed = run(&store, &sandbox, &SyncOptions::default())
            .await
            .unwrap();
        assert_eq!(healed.feed_error, None);
        assert_eq!(
            stored(&store, &charged.id).unwrap().status,
            PaymentStatus::ChargedBack,
            "the completion is seen once the list reads"
        );
    }

    #[tokio::test]
    async fn a_chargeback_that_completes_after_100_newer_ones_is_still_seen() {
        let sandbox = a_year_of_paypro().await;
        let store = synced(&sandbox).await;
        let old = old_paid(&sandbox, 100, 101);
        let pending = sandbox
            .charge_back_paypro_payment(&old[0].id, old[0].amount, false)
            .unwrap();
        run(&store, &sandbox, &SyncOptions::default())
            .await
            .unwrap();
        let checkpoint = store.checkpoint("paypro").unwrap();
        assert_eq!(checkpoint.pending_chargebacks.len(), 1, "noted as pending");
        for payment in &old[1..] {
            sandbox
                .charge_back_paypro_payment(&payment.id, 1, true)
                .unwrap();
        }
        run(&store, &sandbox, &SyncOptions::default())
            .await
            .unwrap();
        // It completes silently, off the first page of the list.
        assert!(sandbox.complete_paypro_chargeback(&pending));
        run(&store, &sandbox, &SyncOptions::default())
            .await
            .unwrap();
        let now = stored(&store, &old[0].id).unwrap();
        assert_eq!(now.status, PaymentStatus::ChargedBack);
        assert!(
            store
                .checkpoint("paypro")
                .unwrap()
                .pending_chargebacks
                .is_empty(),
            "no longer pending"
        );
        // With nothing pending, a run reads the list's first page only.
        let before = sandbox.requests().len();
        run(&store, &sandbox, &SyncOptions::default())
            .await
            .unwrap();
        let pages = sandbox.requests()[before..]
            .iter()
            .filter(|r| r.path_and_query.starts_with("/paypro/chargebacks"))
            .count();
        assert_eq!(pages, 1);
    }

    async fn run_capped(store: &Arc<MemoryStore>, sandbox: &Sandbox) -> Result<Summary, SyncError> {
        let mut syncer = Syncer::new(store.clone(), SyncOptions::default());
        syncer.add_source(paypro_with_body_cap(sandbox, Some(200_000)));
        syncer.run().await.remove(0)
    }

    fn oversized() -> ContentFaults {
        ContentFaults {
            paypro_oversized_pages: Some(OversizedPages {
                above_limit: 50,
                bytes: 300_000,
            }),
            ..ContentFaults::default()
        }
    }

    #[tokio::test]
    async fn pages_over_the_body_cap_are_asked_for_smaller_on_the_first_read_and_in_the_list() {
        let sandbox = a_year_of_paypro().await;
        sandbox.set_content_faults(oversized());
        let store = Arc::new(MemoryStore::new());
        run_capped(&store, &sandbox).await.unwrap();
        assert!(
            store.checkpoint("paypro").unwrap().feed.is_some(),
            "the first read notes where the feed stands"
        );
        let charged = &old_paid(&sandbox, 100, 1)[0];
        let id = sandbox
            .charge_back_paypro_payment(&charged.id, charged.amount, false)
            .unwrap();
        run_capped(&store, &sandbox).await.unwrap();
        assert!(sandbox.complete_paypro_chargeback(&id));
        let summary = run_capped(&store, &sandbox).await.unwrap();
        assert_eq!(summary.feed_error, None);
        assert_eq!(
            stored(&store, &charged.id).unwrap().status,
            PaymentStatus::ChargedBack,
            "the newest chargebacks were read at the smaller size"
        );
    }

    #[tokio::test]
    async fn a_slow_list_on_a_first_read_before_the_walk_leaves_the_walk_its_time() {
        let sandbox = a_year_of_paypro().await;
        sandbox.add_endpoint_fault(at_path(
            "/chargebacks",
            FaultAnswer::Normal,
            None,
            Duration::from_secs(4),
        ));
        let store = Arc::new(MemoryStore::new());
        let options = SyncOptions {
            max_duration: Some(Duration::from_secs(3)),
            ..SyncOptions::default()
        };
        // The first run walks, then runs out of time in the first read of the feed.
        let first = run(&store, &sandbox, &options).await;
        assert!(
            matches!(first, Err(SyncError::OutOfTime { .. })),
            "{first:?}"
        );
        let new = sandbox.insert_paypro_payment();
        let next = run(&store, &sandbox, &options).await.unwrap();
        assert!(next.feed_error.is_some(), "said: {next:?}");
        assert!(stored(&store, &new).is_some(), "the walk ran");
    }

    /// A year of PayPro whose generated feed ends three hours ago.
    async fn earlier_paypro() -> Sandbox {
        Sandbox::start(SandboxConfig {
            mkp_links: 0,
            paypro_payments: 1000,
            paypro_spacing: Duration::from_secs(8 * 3600),
            anchor: chrono::Utc::now() - chrono::Duration::hours(3),
            mkp_rate_limit: None,
            ..SandboxConfig::default()
        })
        .await
        .unwrap()
    }

    /// A feed that lost the last change applied, with a chargeback of the gap off the first page
    /// of the provider's list; returns the payment charged back.
    async fn a_gap(sandbox: &Sandbox) -> PayProPayment {
        let old = old_paid(sandbox, 30, 301);
        let two_hours_ago = chrono::Utc::now() - chrono::Duration::hours(2);
        let chargeback = |payment: &PayProPayment, amount, at| ChargebackSpec {
            payment_id: payment.id.clone(),
            amount,
            currency: None,
            completed: true,
            at: Some(at),
        };
        sandbox
            .add_paypro_chargeback(chargeback(&old[0], old[0].amount, two_hours_ago))
            .unwrap();
        for (i, payment) in old[1..101].iter().enumerate() {
            let at = two_hours_ago + chrono::Duration::seconds(i as i64 + 1);
            sandbox
                .add_paypro_chargeback(chargeback(payment, 1, at))
                .unwrap();
        }
        for payment in &old[101..] {
            sandbox.refund_paypro_payment(&payment.id, 1).unwrap();
        }
        sandbox.set_content_faults(ContentFaults {
            paypro_events_kept: Some(50),
            ..ContentFaults::default()
        });
        old[0].clone()
    }

    #[tokio::test]
    async fn a_full_run_over_a_gap_in_the_feed_reads_the_gaps_chargebacks() {
        let sandbox = earlier_paypro().await;
        let store = synced(&sandbox).await;
        let charged = a_gap(&sandbox).await;
        let full = run(&store, &sandbox, &SyncOptions::full()).await.unwrap();
        assert!(full.feed_incomplete, "{full:?}");
        assert_eq!(
            stored(&store, &charged.id).unwrap().status,
            PaymentStatus::ChargedBack
        );
    }

    #[tokio::test]
    async fn a_gap_whose_chargebacks_cannot_be_read_keeps_the_position_until_they_are() {
        let sandbox = earlier_paypro().await;
        let store = synced(&sandbox).await;
        let charged = a_gap(&sandbox).await;
        sandbox.add_endpoint_fault(forbidden());
        let gap = run(&store, &sandbox, &SyncOptions::default())
            .await
            .unwrap();
        assert!(gap.feed_error.is_some(), "said: {gap:?}");
        sandbox.set_content_faults(ContentFaults::default());
        sandbox.clear_endpoint_faults();
        run(&store, &sandbox, &SyncOptions::default())
            .await
            .unwrap();
        assert_eq!(
            stored(&store, &charged.id).unwrap().status,
            PaymentStatus::ChargedBack,
            "read by the next run"
        );
    }
}
