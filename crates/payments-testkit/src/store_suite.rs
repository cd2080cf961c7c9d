//! The store test suite, written once against the `Store` and `Ledger` traits and run on every
//! store: each store's test crate invokes [`store_suite!`](macro@crate::store_suite) with an async
//! function that makes a fresh, empty store (or `None` to skip, for a store whose server is not
//! installed), and gets one `#[tokio::test]` per behaviour, named as the functions here:
//!
//! ```text
//! async fn fresh() -> Option<(Arc<SqliteStore>, tempfile::TempDir)> { ... }
//! payments_testkit::store_suite!(fresh);
//! ```
//!
//! The second element is a guard kept alive for the test (a temporary directory, a PostgreSQL
//! cluster). Both stores must pass every test unchanged: they differ in their SQL, never in what
//! they keep or answer.

use std::sync::Arc;

use futures::TryStreamExt;
use payments_model::{Payment, PaymentSource, PaymentStatus, Source};
use payments_sandbox::{Sandbox, SandboxConfig};
use payments_sync::{Filter, Ledger, MemoryStore, Store, SyncOptions, Syncer};

/// Expands to one `#[tokio::test]` per behaviour of the suite, each on a store from `$fresh`
/// (an async fn returning `Option<(Arc<S>, guard)>`; `None` skips the test).
#[macro_export]
macro_rules! store_suite {
    ($fresh:path) => {
        $crate::store_suite!(@tests $fresh;
            a_sync_matches_the_memory_store_and_a_rerun_changes_nothing,
            every_version_of_a_payment_is_kept_with_when_it_was_observed,
            as_of_reads_the_ledger_as_it_was_known_then,
            filters_select_by_source_status_and_time,
            quarantined_records_are_kept_once_with_their_reason,
            ledgers_in_one_store_are_kept_apart_by_source
        );
    };
    (@tests $fresh:path; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                if let Some((store, _guard)) = $fresh().await {
                    $crate::store_suite::$name(store).await;
                }
            }
        )*
    };
}

fn sources(sandbox: &Sandbox) -> [Arc<dyn PaymentSource>; 2] {
    [crate::mkp(sandbox), crate::paypro(sandbox)]
}

/// Syncs both of `sandbox`'s sources into `store` once; panics when a run fails.
pub async fn sync<S: Store + 'static>(
    store: &Arc<S>,
    sandbox: &Sandbox,
    options: SyncOptions,
) -> Vec<payments_sync::Summary> {
    let mut syncer = Syncer::new(store.clone(), options);
    for source in sources(sandbox) {
        syncer.add_source(source);
    }
    syncer.run().await.into_iter().map(Result::unwrap).collect()
}

/// Every payment `filter` selects, in export order.
pub async fn all(store: &dyn Ledger, filter: &Filter) -> Vec<Payment> {
    store
        .payments(filter)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

fn sandbox_config() -> SandboxConfig {
    SandboxConfig {
        mkp_links: 50,
        paypro_payments: 700,
        anchor: chrono::Utc::now(),
        mkp_rate_limit: None,
        ..SandboxConfig::default()
    }
}

/// A sync into the store keeps what a sync into the `MemoryStore` keeps, in the same order, and
/// a full rerun finds everything unchanged.
pub async fn a_sync_matches_the_memory_store_and_a_rerun_changes_nothing<S: Store + Ledger>(
    store: Arc<S>,
) {
    let sandbox = Sandbox::start(sandbox_config()).await.unwrap();
    let memory = Arc::new(MemoryStore::new());
    sync(&store, &sandbox, SyncOptions::default()).await;
    sync(&memory, &sandbox, SyncOptions::default()).await;
    let stored = all(&*store, &Filter::default()).await;
    assert!(stored.len() > 700);
    assert_eq!(
        stored,
        memory.payments(),
        "same payments, same order (created_at, then id)"
    );
    let checkpoint = store.checkpoint("paypro").await.unwrap().unwrap();
    assert!(checkpoint.cursor.is_none() && checkpoint.last_completed_at.is_some());
    let run = store.last_run("paypro").await.unwrap().unwrap();
    assert_eq!(run.error, None);
    assert_eq!(
        run.summary.counts,
        memory
            .runs()
            .iter()
            .find(|r| r.summary.source_name == "paypro")
            .unwrap()
            .summary
            .counts
    );
    for summary in sync(&store, &sandbox, SyncOptions::full()).await {
        assert_eq!(
            (summary.counts.new, summary.counts.changed),
            (0, 0),
            "{summary:?}"
        );
    }
    assert_eq!(all(&*store, &Filter::default()).await, stored);
}

/// Two sources' checkpoints, groups and quarantines stay apart in one store.
pub async fn ledgers_in_one_store_are_kept_apart_by_source<S: Store + Ledger>(store: Arc<S>) {
    let sandbox = Sandbox::start(SandboxConfig {
        mkp_links: 5,
        paypro_payments: 30,
        mkp_rate_limit: None,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    sync(&store, &sandbox, SyncOptions::default()).await;
    let mkp = store.source_state("mkp").await.unwrap();
    let paypro = store.source_state("paypro").await.unwrap();
    assert_eq!(mkp.groups.len(), 5, "the MKP links' states");
    assert!(paypro.groups.is_empty(), "PayPro has no groups");
    assert_ne!(mkp.checkpoint, paypro.checkpoint);
    let counted: u64 = store
        .counts_by_status(Source::Mkp)
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    let mkp_payments = all(
        &*store,
        &Filter {
            sources: vec![Source::Mkp],
            ..Filter::default()
        },
    )
    .await;
    assert_eq!(counted, mkp_payments.len() as u64);
    let ids: Vec<String> = mkp_payments.iter().map(|p| p.id.clone()).collect();
    let stored = store.stored(ids.clone()).await.unwrap();
    assert_eq!(stored.len(), ids.len());
    assert!(
        store
            .stored(vec!["mkp:no-such-payment".into()])
            .await
            .unwrap()
            .is_empty()
    );
}

/// See the module's documentation.
pub async fn every_version_of_a_payment_is_kept_with_when_it_was_observed<S: Store + Ledger>(
    store: Arc<S>,
) {
    let sandbox = Sandbox::start(sandbox_config()).await.unwrap();
    sync(&store, &sandbox, SyncOptions::default()).await;
    let paid = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.state == "paid" && p.refunded_amount == 0 && p.amount > 300)
        .unwrap();
    let id = format!("paypro:{}", paid.id);
    sandbox.set_paypro_state(&paid.id, "chargeback", 0);
    sync(&store, &sandbox, SyncOptions::full()).await;
    sandbox.set_paypro_state(&paid.id, "paid", 0);
    sync(&store, &sandbox, SyncOptions::full()).await;
    // Two refunds: the status stays partially_refunded, the refunded amount changes.
    sandbox.set_paypro_state(&paid.id, "paid", 100);
    sync(&store, &sandbox, SyncOptions::full()).await;
    sandbox.set_paypro_state(&paid.id, "paid", 250);
    sync(&store, &sandbox, SyncOptions::full()).await;
    // An unchanged run adds no version.
    sync(&store, &sandbox, SyncOptions::full()).await;

    let versions = store.versions(&id).await.unwrap();
    let seen: Vec<(PaymentStatus, Option<String>)> = versions
        .iter()
        .map(|v| {
            let refunded = v.payment.refunded_amount.map(|m| m.amount_string());
            (v.payment.status.clone(), refunded)
        })
        .collect();
    assert_eq!(
        seen,
        [
            (PaymentStatus::Paid, Some("0.00".to_owned())),
            (PaymentStatus::ChargedBack, Some("0.00".to_owned())),
            (PaymentStatus::Paid, Some("0.00".to_owned())),
            (PaymentStatus::PartiallyRefunded, Some("1.00".to_owned())),
            (PaymentStatus::PartiallyRefunded, Some("2.50".to_owned())),
        ]
    );
    assert_eq!(versions[1].payment.provider_status, "chargeback");
    let backwards: Vec<bool> = versions
        .windows(2)
        .map(|w| w[0].backwards_to(&w[1]))
        .collect();
    assert_eq!(backwards, [false, true, false, false]);
    for pair in versions.windows(2) {
        assert_eq!(pair[0].superseded_at, Some(pair[1].observed_at));
        assert!(pair[0].observed_at < pair[1].observed_at);
    }
    assert_eq!(versions.last().unwrap().superseded_at, None);
    assert!(versions.iter().all(|v| !v.status_only));
    assert_eq!(
        versions.last().unwrap().payment,
        all(&*store, &Filter::default())
            .await
            .into_iter()
            .find(|p| p.id == id)
            .unwrap()
    );
    assert!(
        store
            .versions("paypro:no-such-payment")
            .await
            .unwrap()
            .is_empty()
    );
}

/// See the module's documentation.
pub async fn as_of_reads_the_ledger_as_it_was_known_then<S: Store + Ledger>(store: Arc<S>) {
    let sandbox = Sandbox::start(sandbox_config()).await.unwrap();
    let before_anything = chrono::Utc::now();
    sync(&store, &sandbox, SyncOptions::default()).await;
    let closed = chrono::Utc::now();
    let then = all(&*store, &Filter::default()).await;

    let payments = sandbox.paypro_payments();
    let paid = payments
        .iter()
        .find(|p| p.state == "paid" && p.refunded_amount == 0)
        .unwrap();
    sandbox.set_paypro_state(&paid.id, "chargeback", 0);
    let inserted = sandbox.insert_paypro_payment();
    sync(&store, &sandbox, SyncOptions::full()).await;
    let now = all(&*store, &Filter::default()).await;
    assert_ne!(now, then);
    assert!(now.iter().any(|p| p.source_id == inserted));

    let as_of = |at| Filter {
        as_of: Some(at),
        ..Filter::default()
    };
    assert_eq!(all(&*store, &as_of(closed)).await, then);
    assert_eq!(all(&*store, &as_of(chrono::Utc::now())).await, now);
    assert!(all(&*store, &as_of(before_anything)).await.is_empty());
    // Filters apply to the versions known then: the charged-back payment was paid.
    let paid_then = all(
        &*store,
        &Filter {
            statuses: vec!["paid".into()],
            sources: vec![Source::PayPro],
            ..as_of(closed)
        },
    )
    .await;
    assert!(paid_then.iter().any(|p| p.source_id == paid.id));
    assert_eq!(
        paid_then,
        then.into_iter()
            .filter(|p| p.source == Source::PayPro && p.status == PaymentStatus::Paid)
            .collect::<Vec<_>>()
    );
}

/// See the module's documentation.
pub async fn filters_select_by_source_status_and_time<S: Store + Ledger>(store: Arc<S>) {
    let sandbox = Sandbox::start(sandbox_config()).await.unwrap();
    sync(&store, &sandbox, SyncOptions::default()).await;
    let everything = all(&*store, &Filter::default()).await;
    let mkp_paid = all(
        &*store,
        &Filter {
            sources: vec![Source::Mkp],
            statuses: vec!["paid".into()],
            ..Filter::default()
        },
    )
    .await;
    assert_eq!(
        mkp_paid,
        everything
            .iter()
            .filter(|p| p.source == Source::Mkp && p.status == PaymentStatus::Paid)
            .cloned()
            .collect::<Vec<_>>()
    );
    let middle = everything[everything.len() / 2]
        .created_at
        .with_timezone(&chrono::Utc);
    let since = all(
        &*store,
        &Filter {
            since: Some(middle),
            ..Filter::default()
        },
    )
    .await;
    let until = all(
        &*store,
        &Filter {
            until: Some(middle),
            ..Filter::default()
        },
    )
    .await;
    assert_eq!(since.len() + until.len(), everything.len());
    assert!(
        since.iter().all(|p| p.created_at >= middle) && until.iter().all(|p| p.created_at < middle)
    );
    let counts = store.counts_by_status(Source::PayPro).await.unwrap();
    assert_eq!(
        counts.iter().map(|(_, n)| n).sum::<u64>(),
        everything
            .iter()
            .filter(|p| p.source == Source::PayPro)
            .count() as u64
    );
}

/// See the module's documentation.
pub async fn quarantined_records_are_kept_once_with_their_reason<S: Store + Ledger>(store: Arc<S>) {
    use payments_model::{Cursor, Page, SourceError};
    /// A source whose single page has one good and one bad record.
    struct OneBadRecord;
    #[async_trait::async_trait]
    impl PaymentSource for OneBadRecord {
        fn name(&self) -> &str {
            "paypro"
        }
        fn order(&self) -> payments_model::ListingOrder {
            payments_model::ListingOrder::NewestFirst
        }
        async fn page(&self, _: Option<&Cursor>) -> Result<Page, SourceError> {
            let raw =
                |json: &str| serde_json::value::RawValue::from_string(json.to_owned()).unwrap();
            let mapped = paypro_api::map_payments(&[
                raw(
                    r#"{"id":"PPGOOD","amount":100,"currency":"EUR","state":"paid","created_at":"2024-06-30T12:40:10Z"}"#,
                ),
                raw(
                    r#"{"id":"PPBAD","amount":100,"currency":"EUR","state":"paid","created_at":"30/06/2024"}"#,
                ),
            ]);
            Ok(Page {
                payments: mapped.payments,
                rejected: mapped.rejected,
                ..Page::default()
            })
        }
    }
    for _ in 0..2 {
        let mut syncer = Syncer::new(store.clone(), SyncOptions::full());
        syncer.add_source(Arc::new(OneBadRecord));
        let summary = syncer.run().await.remove(0).unwrap();
        assert_eq!(summary.quarantined, 1);
    }
    let quarantine = store.quarantine("paypro").await.unwrap();
    assert_eq!(
        quarantine.len(),
        1,
        "the same bad record twice is kept once"
    );
    let payments_sync::Quarantined {
        source_id: id,
        reason,
        raw,
    } = &quarantine[0];
    assert_eq!(id.as_deref(), Some("PPBAD"));
    assert!(reason.contains("field `created_at`"), "{reason}");
    assert!(raw.contains("30/06/2024"));
    assert_eq!(
        all(&*store, &Filter::default()).await.len(),
        1,
        "the good record of the page was kept"
    );
}
