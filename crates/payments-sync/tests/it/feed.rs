//! Late changes through PayPro's change feed: a chargeback or a refund on a payment of any age
//! reaches the ledger in the next run, for a request or two; a feed that lost its oldest
//! changes is made up for by re-verifying the whole listing.

use std::sync::Arc;
use std::time::Duration;

use payments_model::{BookKind, Currency, Money, PaymentStatus, Source};
use payments_sandbox::{ContentFaults, Sandbox, SandboxConfig};
use payments_sync::{Books, MemoryStore, RunKind, Summary, SyncOptions, Syncer};
use payments_testkit::paypro;

/// 1,000 PayPro payments eight hours apart: the oldest is a year old.
pub(crate) async fn a_year_of_paypro() -> Sandbox {
    Sandbox::start(SandboxConfig {
        mkp_links: 0,
        paypro_payments: 1000,
        paypro_spacing: Duration::from_secs(8 * 3600),
        anchor: chrono::Utc::now(),
        mkp_rate_limit: None,
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

async fn sync(store: &Arc<MemoryStore>, sandbox: &Sandbox, options: SyncOptions) -> Summary {
    let mut syncer = Syncer::new(store.clone(), options);
    syncer.add_source(paypro(sandbox));
    syncer.run().await.remove(0).unwrap()
}

fn stored(store: &MemoryStore, source_id: &str) -> payments_model::Payment {
    store
        .payments()
        .into_iter()
        .find(|p| p.source_id == source_id)
        .unwrap()
}

#[tokio::test]
async fn a_chargeback_200_days_back_and_a_refund_100_days_back_land_in_the_next_run_for_two_requests()
 {
    let sandbox = a_year_of_paypro().await;
    let store = Arc::new(MemoryStore::new());
    // Re-verification off: only the feed can bring these changes in.
    let feed_only = SyncOptions {
        reverify_budget: 0,
        ..SyncOptions::default()
    };
    assert_eq!(
        sync(&store, &sandbox, feed_only.clone()).await.run,
        Some(RunKind::Full)
    );
    // What an incremental run costs when nothing changed: the feed and the recent pages.
    let usual = sync(&store, &sandbox, feed_only.clone()).await;
    assert_eq!(usual.run, Some(RunKind::Incremental));

    let charged = sandbox
        .old_paid_paypro_payment(Duration::from_secs(200 * 86_400))
        .unwrap();
    let refunded = sandbox
        .old_paid_paypro_payment(Duration::from_secs(100 * 86_400))
        .unwrap();
    assert_ne!(charged.id, refunded.id);
    let chargeback = sandbox
        .charge_back_paypro_payment(&charged.id, charged.amount, true)
        .unwrap();
    let refund = sandbox
        .refund_paypro_payment(&refunded.id, refunded.amount / 4)
        .unwrap();

    let before = sandbox.requests().len();
    let next = sync(&store, &sandbox, feed_only.clone()).await;
    let requests = (sandbox.requests().len() - before) as u64;
    assert!(
        requests <= usual.requests + 2,
        "{requests} requests, the usual {}",
        usual.requests
    );
    assert_eq!(next.counts.changed, 2, "{next:?}");

    let charged_now = stored(&store, &charged.id);
    assert_eq!(charged_now.status, PaymentStatus::ChargedBack);
    assert_eq!(
        charged_now.charged_back_amount,
        Some(Money::from_minor(charged.amount, Currency::EUR))
    );
    assert_eq!(
        charged_now.provider_status, charged.state,
        "the provider's word is kept"
    );
    let refunded_now = stored(&store, &refunded.id);
    assert_eq!(refunded_now.status, PaymentStatus::PartiallyRefunded);
    assert_eq!(
        refunded_now.refunded_amount,
        Some(Money::from_minor(refunded.amount / 4, Currency::EUR))
    );
    // Their own records came with the feed, for the books (the hourly walk of the book
    // listings was not due): the provider's times, at no request more.
    let records = store.records(Source::PayPro).await.unwrap();
    for (id, kind, payment) in [
        (&refund, BookKind::Refund, &refunded_now.id),
        (&chargeback, BookKind::Chargeback, &charged_now.id),
    ] {
        let kept = records
            .iter()
            .find(|kept| &kept.record.source_id == id)
            .unwrap_or_else(|| panic!("the {kind} {id} is not among {} kept", records.len()));
        assert_eq!(kept.record.kind, kind);
        assert_eq!(kept.record.payment_id.as_ref(), Some(payment));
    }
    let versions = store.versions(&charged_now.id);
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].payment.status, PaymentStatus::Paid);

    // The listing does not show chargebacks: reading the payment there again (a full run)
    // keeps it charged back, and changes nothing.
    let full = sync(&store, &sandbox, SyncOptions::full()).await;
    assert_eq!((full.counts.changed, full.counts.backwards), (0, 0));
    assert_eq!(
        stored(&store, &charged.id).status,
        PaymentStatus::ChargedBack
    );

    // A chargeback still in progress changes nothing yet.
    let pending = sandbox
        .old_paid_paypro_payment(Duration::from_secs(150 * 86_400))
        .unwrap();
    sandbox
        .charge_back_paypro_payment(&pending.id, 100, false)
        .unwrap();
    sync(&store, &sandbox, feed_only.clone()).await;
    assert_eq!(stored(&store, &pending.id).status, PaymentStatus::Paid);

    // The charged-back payment's latest chargeback is no longer completed (reversed): the feed's
    // word is final, the payment is paid again, and the move back is flagged.
    sandbox
        .charge_back_paypro_payment(&charged.id, charged.amount, false)
        .unwrap();
    let reversed = sync(&store, &sandbox, feed_only).await;
    assert_eq!(reversed.counts.backwards, 1, "{reversed:?}");
    let after = stored(&store, &charged.id);
    assert_eq!(after.charged_back_amount, None);
    assert_ne!(after.status, PaymentStatus::ChargedBack);
}

#[tokio::test]
async fn a_feed_that_lost_the_last_applied_change_falls_back_to_a_whole_walk_that_finds_it() {
    let sandbox = a_year_of_paypro().await;
    let store = Arc::new(MemoryStore::new());
    // A budget of one page a run: only the fallback reads the whole listing in one run.
    let options = SyncOptions {
        reverify_budget: 1,
        ..SyncOptions::default()
    };
    sync(&store, &sandbox, options.clone()).await;
    sync(&store, &sandbox, options.clone()).await;

    // A refund 250 days back, then so many new payments that the feed, which keeps only its
    // newest 20 events, no longer reaches back to the last change this ledger applied.
    let old = sandbox
        .old_paid_paypro_payment(Duration::from_secs(250 * 86_400))
        .unwrap();
    sandbox.refund_paypro_payment(&old.id, old.amount).unwrap();
    for _ in 0..25 {
        sandbox.insert_paypro_payment();
    }
    sandbox.set_content_faults(ContentFaults {
        paypro_events_kept: Some(20),
        ..ContentFaults::default()
    });
    let started = chrono::Utc::now();
    let summary = sync(&store, &sandbox, options.clone()).await;
    assert!(summary.feed_incomplete, "the gap is said: {summary:?}");
    assert_eq!(stored(&store, &old.id).status, PaymentStatus::Refunded);
    assert_eq!(summary.counts.new, 25);
    // The walk read the whole listing: the ledger is verified since this run.
    let checkpoint = store.checkpoint("paypro").unwrap();
    assert!(checkpoint.verified_through.is_some_and(|at| at >= started));

    // The next run reads the feed from where it now stands: no gap.
    let next = sync(&store, &sandbox, options.clone()).await;
    assert!(!next.feed_incomplete, "{next:?}");

    // A feed that shows nothing at all (every event expired): one fallback, not one every run.
    sandbox.set_content_faults(ContentFaults {
        paypro_events_kept: Some(0),
        ..ContentFaults::default()
    });
    sandbox.insert_paypro_payment();
    assert!(
        sync(&store, &sandbox, options.clone())
            .await
            .feed_incomplete
    );
    assert!(!sync(&store, &sandbox, options).await.feed_incomplete);
}

#[tokio::test]
async fn library_users_read_the_change_feed_as_a_stream_newest_first() {
    use futures::StreamExt;
    let sandbox = a_year_of_paypro().await;
    let old = sandbox
        .old_paid_paypro_payment(Duration::from_secs(300 * 86_400))
        .unwrap();
    sandbox
        .charge_back_paypro_payment(&old.id, 500, true)
        .unwrap();
    let source = paypro(&sandbox);
    let changes: Vec<payments_model::Change> = payments_sync::changes(
        source.as_ref(),
        None,
        payments_sync::PagerOptions::default(),
    )
    .map(Result::unwrap)
    .collect()
    .await;
    assert_eq!(
        changes.len(),
        sandbox.paypro_events().len(),
        "every page of the feed"
    );
    let payments_model::ChangeKind::ChargedBack {
        payment_id,
        source_id,
        amount,
        completed,
        chargeback_id,
        record,
    } = &changes[0].kind
    else {
        panic!("a chargeback first: {:?}", changes[0].kind);
    };
    assert_eq!(payment_id, &format!("paypro:{}", old.id));
    assert_eq!(source_id, &old.id);
    assert_eq!(*amount, Money::from_minor(500, Currency::EUR));
    assert!(*completed);
    assert!(chargeback_id.starts_with("PC"), "{chargeback_id}");
    assert!(record.contains(chargeback_id.as_str()), "{record}");
    assert!(
        changes.windows(2).all(|w| w[0].at >= w[1].at),
        "newest first"
    );
}

#[tokio::test]
async fn the_first_sync_learns_every_chargeback_made_before_it_and_a_gap_its_own() {
    let sandbox = a_year_of_paypro().await;
    // Chargebacks from long before this ledger existed: one completed, one still in progress.
    let day = Duration::from_secs(86_400);
    let done = sandbox.old_paid_paypro_payment(300 * day).unwrap();
    let open = sandbox.old_paid_paypro_payment(200 * day).unwrap();
    sandbox
        .charge_back_paypro_payment(&done.id, done.amount / 2, true)
        .unwrap();
    sandbox
        .charge_back_paypro_payment(&open.id, open.amount, false)
        .unwrap();
    let store = Arc::new(MemoryStore::new());
    let options = SyncOptions {
        reverify_budget: 1,
        ..SyncOptions::default()
    };
    let first = sync(&store, &sandbox, options.clone()).await;
    assert_eq!(first.run, Some(RunKind::Full));
    let partial = stored(&store, &done.id);
    assert_eq!(
        partial.status,
        PaymentStatus::ChargedBack,
        "a partial chargeback"
    );
    assert_eq!(
        partial.charged_back_amount,
        Some(Money::from_minor(done.amount / 2, Currency::EUR))
    );
    assert_eq!(stored(&store, &open.id).charged_back_amount, None);
    // Every chargeback the provider lists that completed is in the ledger, not only these.
    let completed = sandbox
        .paypro_chargebacks()
        .into_iter()
        .filter(|c| c.state == "completed")
        .count();
    let charged = store
        .payments()
        .iter()
        .filter(|p| p.charged_back_amount.is_some())
        .count();
    assert_eq!(charged, completed);

    // A chargeback whose event is lost in a gap of the feed comes from the chargebacks list.
    let gap = sandbox.old_paid_paypro_payment(250 * day).unwrap();
    sandbox
        .charge_back_paypro_payment(&gap.id, gap.amount, true)
        .unwrap();
    for _ in 0..25 {
        sandbox.insert_paypro_payment();
    }
    sandbox.set_content_faults(ContentFaults {
        paypro_events_kept: Some(20),
        ..ContentFaults::default()
    });
    let summary = sync(&store, &sandbox, options).await;
    assert!(summary.feed_incomplete);
    assert_eq!(stored(&store, &gap.id).status, PaymentStatus::ChargedBack);
}

#[tokio::test]
async fn a_chargeback_that_completes_without_an_event_is_seen_by_the_next_run() {
    let sandbox = a_year_of_paypro().await;
    let store = Arc::new(MemoryStore::new());
    let feed_only = SyncOptions {
        reverify_budget: 0,
        ..SyncOptions::default()
    };
    sync(&store, &sandbox, feed_only.clone()).await;
    let old = sandbox
        .old_paid_paypro_payment(Duration::from_secs(180 * 86_400))
        .unwrap();
    let chargeback = sandbox
        .charge_back_paypro_payment(&old.id, old.amount, false)
        .unwrap();
    sync(&store, &sandbox, feed_only.clone()).await;
    assert_eq!(
        stored(&store, &old.id).status,
        PaymentStatus::Paid,
        "still in progress"
    );

    // PayPro documents no event for a completed chargeback: only its list shows it.
    assert!(sandbox.complete_paypro_chargeback(&chargeback));
    let events = sandbox.paypro_events().len();
    let next = sync(&store, &sandbox, feed_only).await;
    assert_eq!(sandbox.paypro_events().len(), events, "no event said so");
    assert_eq!(next.counts.changed, 1, "{next:?}");
    let now = stored(&store, &old.id);
    assert_eq!(now.status, PaymentStatus::ChargedBack);
    assert_eq!(
        now.charged_back_amount,
        Some(Money::from_minor(old.amount, Currency::EUR))
    );
}
