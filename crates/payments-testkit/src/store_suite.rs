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
//! The second element is kept alive for the test (holding a temporary directory, a PostgreSQL
//! cluster) and is the store's [`Tamper`] hook: it writes a raw value where the store keeps one,
//! by the store's own means (SQL), for the cases of what a value that does not read back means.
//! Every store (SQLite, PostgreSQL, memory) must pass every test unchanged: they differ in their
//! SQL, never in what they keep or answer.

use std::sync::Arc;

use futures::TryStreamExt;
use payments_model::{Payment, PaymentSource, PaymentStatus, Source};
use payments_sandbox::{Sandbox, SandboxConfig};
use payments_sync::codec::Stored;
use payments_sync::{
    CommitCounts, Filter, Inbox, Ledger, MemoryStore, Receipt, RunKind, RunRecord, Store,
    StoreError, Summary, SyncOptions, Syncer,
};

/// A store's hook for the suite: writes `value` raw where the store keeps `place`, as a ledger
/// edited by hand or damaged would hold it. The values the suite writes are valid JSON where the
/// store's column is JSON, and `infinity` for an instant (which a PostgreSQL `timestamptz`
/// holds).
#[async_trait::async_trait]
pub trait Tamper: Send + Sync {
    /// Writes `value` at `place`; panics when it cannot.
    async fn write_raw(&self, place: Stored<'_>, value: &str);
}

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
            ledgers_in_one_store_are_kept_apart_by_source,
            an_unreadable_checkpoint_is_said_and_the_next_run_reads_everything,
            an_unreadable_group_state_is_left_out_and_the_group_read_again,
            a_stored_instant_that_does_not_read_back_is_a_named_error,
            a_stored_record_that_does_not_read_back_is_a_named_error,
            unknown_words_are_kept_once_with_when_first_seen,
            counts_by_status_count_each_status_of_a_source,
            a_run_record_reads_back_as_recorded,
            a_redelivery_is_one_entry_and_keys_are_per_source,
            pending_deliveries_are_oldest_first_without_the_processed,
            prune_deletes_only_processed_deliveries_older_than_the_cut,
            hints_read_back_exactly_and_unreadable_ones_are_a_named_error,
            a_commit_never_replaces_a_payment_fetched_later,
            book_records_keep_their_walk_versions_and_the_ordering_stamp,
            an_issued_statement_is_kept_once_and_never_replaced
        );
    };
    (@tests $fresh:path; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                if let Some((store, tamper)) = $fresh().await {
                    $crate::store_suite::$name(store, &tamper).await;
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
    _: &dyn Tamper,
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
pub async fn ledgers_in_one_store_are_kept_apart_by_source<S: Store + Ledger>(
    store: Arc<S>,
    _: &dyn Tamper,
) {
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
    _: &dyn Tamper,
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
pub async fn as_of_reads_the_ledger_as_it_was_known_then<S: Store + Ledger>(
    store: Arc<S>,
    _: &dyn Tamper,
) {
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
pub async fn filters_select_by_source_status_and_time<S: Store + Ledger>(
    store: Arc<S>,
    _: &dyn Tamper,
) {
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
pub async fn quarantined_records_are_kept_once_with_their_reason<S: Store + Ledger>(
    store: Arc<S>,
    _: &dyn Tamper,
) {
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
    // Stores keep instants to the microsecond: a millisecond's margin below.
    let before = chrono::Utc::now() - chrono::Duration::milliseconds(1);
    let mut first_run_ended = before;
    for run in 0..2 {
        let mut syncer = Syncer::new(store.clone(), SyncOptions::full());
        syncer.add_source(Arc::new(OneBadRecord));
        let summary = syncer.run().await.remove(0).unwrap();
        assert_eq!(summary.quarantined, 1);
        if run == 0 {
            first_run_ended = chrono::Utc::now();
        }
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
        first_seen_at,
    } = &quarantine[0];
    assert_eq!(id.as_deref(), Some("PPBAD"));
    assert!(
        (before..=first_run_ended).contains(first_seen_at),
        "first seen in the first run, kept by the second: {first_seen_at}, not in {before}..={first_run_ended}"
    );
    assert!(reason.contains("field `created_at`"), "{reason}");
    assert!(raw.contains("30/06/2024"));
    assert_eq!(
        all(&*store, &Filter::default()).await.len(),
        1,
        "the good record of the page was kept"
    );
}

fn small_sandbox() -> SandboxConfig {
    SandboxConfig {
        mkp_links: 5,
        paypro_payments: 30,
        mkp_rate_limit: None,
        ..SandboxConfig::default()
    }
}

/// The `(table, column, key)` of an [`StoreError::Unreadable`], and its message; panics on
/// any other outcome.
fn unreadable<T: std::fmt::Debug>(
    read: Result<T, StoreError>,
) -> (&'static str, &'static str, String, String) {
    match read {
        Err(error @ StoreError::Unreadable { .. }) => {
            let message = error.to_string();
            let StoreError::Unreadable {
                table, column, key, ..
            } = error
            else {
                unreachable!()
            };
            (table, column, key, message)
        }
        other => panic!("expected a value that does not read back, got {other:?}"),
    }
}

/// A checkpoint that does not read back is no checkpoint, with the reason said (the engine then
/// starts a full run instead of failing every run), and [`Ledger::checkpoint`] names it.
pub async fn an_unreadable_checkpoint_is_said_and_the_next_run_reads_everything<
    S: Store + Ledger,
>(
    store: Arc<S>,
    tamper: &dyn Tamper,
) {
    let sandbox = Sandbox::start(small_sandbox()).await.unwrap();
    sync(&store, &sandbox, SyncOptions::default()).await;
    tamper
        .write_raw(Stored::Checkpoint { source: "paypro" }, "{\"cursor\": 12")
        .await;
    let state = store.source_state("paypro").await.unwrap();
    assert_eq!(state.checkpoint, None);
    let reason = state.unreadable_checkpoint.expect("the reason is said");
    assert!(reason.contains("line 1"), "{reason}");
    let read = store.checkpoint("paypro").await;
    let (table, column, key, message) = unreadable(read);
    assert_eq!(
        (table, column, key.as_str()),
        ("checkpoints", "checkpoint", "paypro")
    );
    assert!(message.contains("{\"cursor\": 12"), "the value: {message}");
    let (checkpoint, why) =
        payments_sync::codec::tolerate_unreadable_checkpoint(store.checkpoint("paypro").await)
            .unwrap();
    assert_eq!((checkpoint, why), (None, Some(reason)));
    assert!(
        store
            .source_state("mkp")
            .await
            .unwrap()
            .checkpoint
            .is_some()
    );

    let summaries = sync(&store, &sandbox, SyncOptions::default()).await;
    let paypro = summaries
        .iter()
        .find(|s| s.source_name == "paypro")
        .unwrap();
    assert_eq!(paypro.run, Some(RunKind::Full), "{paypro:?}");
    assert!(store.checkpoint("paypro").await.unwrap().is_some());
}

/// A group state that does not read back is left out of the source's state (the others are
/// kept), and the next run reads the group again and writes a good state.
pub async fn an_unreadable_group_state_is_left_out_and_the_group_read_again<S: Store + Ledger>(
    store: Arc<S>,
    tamper: &dyn Tamper,
) {
    let sandbox = Sandbox::start(small_sandbox()).await.unwrap();
    sync(&store, &sandbox, SyncOptions::default()).await;
    let before = store.source_state("mkp").await.unwrap().groups;
    assert_eq!(before.len(), 5);
    let mut ids: Vec<&String> = before.keys().collect();
    ids.sort();
    let spoiled = ids[0].clone();
    tamper
        .write_raw(
            Stored::GroupState {
                source: "mkp",
                id: &spoiled,
            },
            r#"{"status": 12}"#,
        )
        .await;
    let groups = store.source_state("mkp").await.unwrap().groups;
    assert_eq!(groups.len(), 4, "only the spoiled state is left out");
    assert!(!groups.contains_key(&spoiled));
    sync(&store, &sandbox, SyncOptions::default()).await;
    let after = store.source_state("mkp").await.unwrap().groups;
    assert_eq!(after.len(), 5, "read again");
    assert_eq!(after[&spoiled].status, before[&spoiled].status);
}

/// A stored instant that does not read back is an error naming the table, the column, the row
/// and the value, never a default (1970).
pub async fn a_stored_instant_that_does_not_read_back_is_a_named_error<S: Store + Ledger>(
    store: Arc<S>,
    tamper: &dyn Tamper,
) {
    let sandbox = Sandbox::start(small_sandbox()).await.unwrap();
    sync(&store, &sandbox, SyncOptions::default()).await;
    assert!(store.last_run("paypro").await.unwrap().is_some());
    tamper
        .write_raw(Stored::LastRunStartedAt { source: "paypro" }, "infinity")
        .await;
    let (table, column, key, message) = unreadable(store.last_run("paypro").await);
    assert_eq!((table, column), ("runs", "started_at"));
    assert!(key.contains("paypro"), "{key}");
    assert!(
        message.contains("`infinity`") && message.contains("restore the ledger from a backup"),
        "{message}"
    );
    assert!(
        store.last_run("mkp").await.unwrap().is_some(),
        "other rows read"
    );
}

/// A stored record that does not read back (a timestamp in it, here) fails the readers of the
/// payment, naming it.
pub async fn a_stored_record_that_does_not_read_back_is_a_named_error<S: Store + Ledger>(
    store: Arc<S>,
    tamper: &dyn Tamper,
) {
    let sandbox = Sandbox::start(small_sandbox()).await.unwrap();
    sync(&store, &sandbox, SyncOptions::default()).await;
    let payment = all(&*store, &Filter::default()).await.remove(0);
    let mut record = serde_json::to_value(&payment).unwrap();
    record["created_at"] = "30/06/2024".into();
    tamper
        .write_raw(Stored::Record { id: &payment.id }, &record.to_string())
        .await;
    let (table, column, key, message) = unreadable(store.stored(vec![payment.id.clone()]).await);
    assert_eq!((table, column), ("payments", "record"));
    assert_eq!(key, format!("payment {}", payment.id));
    assert!(message.contains("30/06/2024"), "{message}");
    let read: Result<Vec<Payment>, StoreError> = store
        .payments(&Filter::default())
        .await
        .unwrap()
        .try_collect()
        .await;
    let (table, _, key, _) = unreadable(read);
    assert_eq!(
        (table, key),
        ("payments", format!("payment {}", payment.id))
    );
    let (_, _, key, _) = unreadable(store.versions(&payment.id).await);
    assert_eq!(key, format!("payment {}", payment.id));
}

/// A status word outside the status table is kept once per source, with when it was first seen.
pub async fn unknown_words_are_kept_once_with_when_first_seen<S: Store + Ledger>(
    store: Arc<S>,
    _: &dyn Tamper,
) {
    use payments_model::{Cursor, Page, SourceError};
    /// A source whose single page has a payment in a state no table knows.
    struct Teleported;
    #[async_trait::async_trait]
    impl PaymentSource for Teleported {
        fn name(&self) -> &str {
            "paypro"
        }
        fn order(&self) -> payments_model::ListingOrder {
            payments_model::ListingOrder::NewestFirst
        }
        async fn page(&self, _: Option<&Cursor>) -> Result<Page, SourceError> {
            let raw = serde_json::value::RawValue::from_string(
                r#"{"id":"PPT","amount":100,"currency":"EUR","state":"teleported","created_at":"2024-06-30T12:40:10Z"}"#
                    .to_owned(),
            )
            .unwrap();
            Ok(Page {
                payments: paypro_api::map_payments(&[raw]).payments,
                ..Page::default()
            })
        }
    }
    let before = chrono::Utc::now();
    for _ in 0..2 {
        let mut syncer = Syncer::new(store.clone(), SyncOptions::full());
        syncer.add_source(Arc::new(Teleported));
        syncer.run().await.remove(0).unwrap();
    }
    let words = store.unknown_words("paypro").await.unwrap();
    assert_eq!(words.len(), 1, "{words:?}");
    let (word, seen) = &words[0];
    assert_eq!(word, "teleported");
    let first_run = store.last_run("paypro").await.unwrap().unwrap();
    assert!(
        before <= *seen && *seen < first_run.started_at,
        "first seen by the first run"
    );
    let state = store.source_state("paypro").await.unwrap();
    assert_eq!(
        state.unknown_words,
        std::collections::HashSet::from(["teleported".to_owned()])
    );
    assert!(store.unknown_words("mkp").await.unwrap().is_empty());
    assert_eq!(
        store.counts_by_status(Source::PayPro).await.unwrap(),
        [("unknown".to_owned(), 1)]
    );
}

/// Payments per status word, for one source, sorted by word: as many as the ledger holds.
pub async fn counts_by_status_count_each_status_of_a_source<S: Store + Ledger>(
    store: Arc<S>,
    _: &dyn Tamper,
) {
    let sandbox = Sandbox::start(sandbox_config()).await.unwrap();
    sync(&store, &sandbox, SyncOptions::default()).await;
    let everything = all(&*store, &Filter::default()).await;
    for source in Source::ALL {
        let mut expected = std::collections::BTreeMap::<String, u64>::new();
        for payment in everything.iter().filter(|p| p.source == source) {
            *expected
                .entry(payment.status.as_str().to_owned())
                .or_default() += 1;
        }
        let counts = store.counts_by_status(source).await.unwrap();
        assert_eq!(counts, expected.into_iter().collect::<Vec<_>>(), "{source}");
        assert!(counts.len() > 1, "{source}: several statuses");
    }
}

/// A recorded run reads back with every field a run's row keeps; the last one recorded is the
/// last run.
pub async fn a_run_record_reads_back_as_recorded<S: Store + Ledger>(store: Arc<S>, _: &dyn Tamper) {
    use chrono::TimeZone;
    let at = |seconds: i64, micros: u32| chrono::Utc.timestamp_opt(seconds, micros * 1000).unwrap();
    let run = RunRecord {
        started_at: at(1_719_751_210, 123_456),
        finished_at: at(1_719_751_275, 654_321),
        summary: Summary {
            source_name: "paypro".to_owned(),
            run: Some(RunKind::DeepSweep),
            resumed: true,
            pages: 7,
            requests: 11,
            counts: CommitCounts {
                new: 600,
                changed: 3,
                unchanged: 97,
                backwards: 1,
            },
            quarantined: 2,
            waited: std::time::Duration::from_millis(1_234),
            feed_incomplete: true,
            ..Summary::default()
        },
        error: Some("paypro: the feed\nfailed `badly`".to_owned()),
        stopped: true,
    };
    store.record_run(run.clone()).await.unwrap();
    assert_eq!(store.last_run("paypro").await.unwrap(), Some(run.clone()));
    let next = RunRecord {
        started_at: at(1_719_751_300, 0),
        finished_at: at(1_719_751_301, 0),
        summary: Summary {
            source_name: "paypro".to_owned(),
            ..Summary::default()
        },
        error: None,
        stopped: false,
    };
    store.record_run(next.clone()).await.unwrap();
    assert_eq!(store.last_run("paypro").await.unwrap(), Some(next.clone()));
    assert_eq!(store.last_run("mkp").await.unwrap(), None);
    assert_eq!(
        store.recent_runs("paypro", 5).await.unwrap(),
        vec![next.clone(), run],
        "newest first"
    );
    assert_eq!(store.recent_runs("paypro", 1).await.unwrap(), vec![next]);
    assert!(store.recent_runs("mkp", 3).await.unwrap().is_empty());
}

/// An instant of the inbox and stamp cases: `2024-07-01T10:00:00Z` plus `micros`.
fn instant(micros: i64) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc.timestamp_opt(1_719_828_000, 0).unwrap() + chrono::Duration::microseconds(micros)
}

/// A delivery known by `key`, naming the payment `PP` + key.
fn delivery(key: &str) -> payments_model::Delivery {
    payments_model::Delivery {
        key: key.to_owned(),
        kind: "payment.paid".to_owned(),
        hints: vec![payments_model::Hint::Payment {
            id: format!("PP{key}"),
        }],
    }
}

/// The keys of `source`'s pending deliveries, in the order the inbox gives them.
async fn pending_keys<S: Inbox>(store: &S, source: &str) -> Vec<String> {
    store
        .pending(source)
        .await
        .unwrap()
        .into_iter()
        .map(|received| received.delivery.key)
        .collect()
}

/// A delivery received twice (processed or not) is one entry, the second receipt a duplicate
/// that changes nothing; the same key for another source is another delivery.
pub async fn a_redelivery_is_one_entry_and_keys_are_per_source<S: Store + Ledger + Inbox>(
    store: Arc<S>,
    _: &dyn Tamper,
) {
    let first = delivery("EV1");
    assert_eq!(
        store.receive("paypro", &first, instant(0)).await.unwrap(),
        Receipt::New
    );
    // A redelivery has the same key; what it says is not stored again.
    let again = payments_model::Delivery {
        kind: "payment.refunded".to_owned(),
        hints: vec![payments_model::Hint::Feed],
        ..first.clone()
    };
    assert_eq!(
        store.receive("paypro", &again, instant(5)).await.unwrap(),
        Receipt::Duplicate
    );
    let pending = store.pending("paypro").await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(
        (
            &pending[0].source,
            &pending[0].delivery,
            pending[0].received_at
        ),
        (&"paypro".to_owned(), &first, instant(0)),
        "the first delivery is kept as it was received"
    );
    assert_eq!(
        store.receive("mkp", &first, instant(7)).await.unwrap(),
        Receipt::New,
        "the same key for another source"
    );
    let mkp = store.pending("mkp").await.unwrap();
    assert_eq!(mkp.len(), 1);
    assert_ne!(mkp[0].id, pending[0].id);
    assert_eq!(pending_keys(&*store, "paypro").await, ["EV1"]);
    // Processed, it is still known: a redelivery after processing costs nothing either.
    store
        .processed(&[pending[0].id], instant(10))
        .await
        .unwrap();
    assert_eq!(
        store.receive("paypro", &first, instant(20)).await.unwrap(),
        Receipt::Duplicate
    );
    assert!(store.pending("paypro").await.unwrap().is_empty());
    assert_eq!(pending_keys(&*store, "mkp").await, ["EV1"]);
}

/// Pending deliveries are the unprocessed ones, oldest received first (to the microsecond; the
/// inbox's order among those received at the same instant), each read back as received.
pub async fn pending_deliveries_are_oldest_first_without_the_processed<
    S: Store + Ledger + Inbox,
>(
    store: Arc<S>,
    _: &dyn Tamper,
) {
    // Received out of order, with fractions of a second of every width.
    let received = [
        ("late", 1_500_000),
        ("whole", 1_000_000),
        ("early", 250),
        ("same", 1_000_000),
        ("earliest", 1),
        ("tenth", 100_000),
    ];
    for (key, micros) in received {
        assert_eq!(
            store
                .receive("paypro", &delivery(key), instant(micros))
                .await
                .unwrap(),
            Receipt::New
        );
    }
    let pending = store.pending("paypro").await.unwrap();
    let order: Vec<(&str, chrono::DateTime<chrono::Utc>)> = pending
        .iter()
        .map(|r| (r.delivery.key.as_str(), r.received_at))
        .collect();
    assert_eq!(
        order,
        [
            ("earliest", instant(1)),
            ("early", instant(250)),
            ("tenth", instant(100_000)),
            ("whole", instant(1_000_000)),
            ("same", instant(1_000_000)),
            ("late", instant(1_500_000)),
        ]
    );
    assert!(
        pending
            .iter()
            .all(|r| r.delivery == delivery(&r.delivery.key))
    );
    let id = |key: &str| pending.iter().find(|r| r.delivery.key == key).unwrap().id;
    store
        .processed(&[id("whole"), id("earliest"), i64::MAX], instant(2_000_000))
        .await
        .unwrap();
    assert_eq!(
        pending_keys(&*store, "paypro").await,
        ["early", "tenth", "same", "late"],
        "the processed ones are left out, an id not in the inbox is ignored"
    );
    assert!(store.pending("mkp").await.unwrap().is_empty());
    store.processed(&[], instant(3_000_000)).await.unwrap();
    assert_eq!(pending_keys(&*store, "paypro").await.len(), 4);
}

/// Pruning deletes the deliveries processed before the cut, never a pending one nor one
/// processed at or after it; a redelivery of a pruned one is new again.
pub async fn prune_deletes_only_processed_deliveries_older_than_the_cut<
    S: Store + Ledger + Inbox,
>(
    store: Arc<S>,
    _: &dyn Tamper,
) {
    for key in ["old", "cut", "open"] {
        store
            .receive("paypro", &delivery(key), instant(0))
            .await
            .unwrap();
    }
    store
        .receive("mkp", &delivery("old"), instant(0))
        .await
        .unwrap();
    let id = |pending: &[payments_sync::Received], key: &str| {
        pending.iter().find(|r| r.delivery.key == key).unwrap().id
    };
    let pending = store.pending("paypro").await.unwrap();
    store
        .processed(&[id(&pending, "old")], instant(1_000))
        .await
        .unwrap();
    store
        .processed(&[id(&pending, "cut")], instant(2_000))
        .await
        .unwrap();
    let mkp = store.pending("mkp").await.unwrap();
    store
        .processed(&[id(&mkp, "old")], instant(1_999))
        .await
        .unwrap();
    // Processed again later: it was processed at its first time.
    store
        .processed(&[id(&pending, "old")], instant(5_000))
        .await
        .unwrap();

    assert_eq!(store.prune(instant(1_000)).await.unwrap(), 0, "none before");
    assert_eq!(
        store.prune(instant(2_000)).await.unwrap(),
        2,
        "old, of both"
    );
    assert_eq!(pending_keys(&*store, "paypro").await, ["open"]);
    assert_eq!(
        store
            .receive("paypro", &delivery("old"), instant(3_000))
            .await
            .unwrap(),
        Receipt::New,
        "pruned: a redelivery is new again"
    );
    assert_eq!(
        store
            .receive("paypro", &delivery("cut"), instant(3_000))
            .await
            .unwrap(),
        Receipt::Duplicate,
        "processed at the cut: kept"
    );
    assert_eq!(
        store.prune(instant(1_000_000_000)).await.unwrap(),
        1,
        "cut, and never a pending one"
    );
    assert_eq!(pending_keys(&*store, "paypro").await, ["open", "old"]);
    assert_eq!(
        store
            .receive("paypro", &delivery("cut"), instant(4_000))
            .await
            .unwrap(),
        Receipt::New
    );
}

/// A delivery's hints read back exactly, of every kind (none, a payment, a group, the feed);
/// stored hints that do not read back are an error naming the inbox, the column and the row.
pub async fn hints_read_back_exactly_and_unreadable_ones_are_a_named_error<
    S: Store + Ledger + Inbox,
>(
    store: Arc<S>,
    tamper: &dyn Tamper,
) {
    use payments_model::{Delivery, Hint};
    let every = Delivery {
        key: "sha256:9f86d081884c7d65".to_owned(),
        kind: "payment-link-paid".to_owned(),
        hints: vec![
            Hint::Group {
                id: "plk_1 \"quoted\" é".to_owned(),
            },
            Hint::Payment {
                id: "PP1".to_owned(),
            },
            Hint::Feed,
            Hint::Payment {
                id: "PP1".to_owned(),
            },
        ],
    };
    let nothing = Delivery {
        key: "EV2".to_owned(),
        kind: String::new(),
        hints: Vec::new(),
    };
    for (n, delivery) in [&every, &nothing].into_iter().enumerate() {
        store
            .receive("paypro", delivery, instant(n as i64))
            .await
            .unwrap();
    }
    store.receive("mkp", &every, instant(0)).await.unwrap();
    let read: Vec<Delivery> = store
        .pending("paypro")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.delivery)
        .collect();
    assert_eq!(read, [every.clone(), nothing]);

    tamper
        .write_raw(
            Stored::Hints {
                source: "paypro",
                key: "EV2",
            },
            r#"[{"read":"teleport"}]"#,
        )
        .await;
    let (table, column, key, message) = unreadable(store.pending("paypro").await);
    assert_eq!((table, column), ("inbox", "hints"));
    assert!(key.contains("EV2") && key.contains("paypro"), "{key}");
    assert!(message.contains("teleport"), "the value: {message}");
    let mkp = store.pending("mkp").await.unwrap();
    assert_eq!(mkp.len(), 1, "other rows read");
    assert_eq!(mkp[0].delivery, every);
}

/// The ordering stamp: a commit never replaces a payment stored from a later fetch (to the
/// microsecond), and the rest of that commit lands; a commit fetched later replaces it and
/// keeps it as a version. A commit without a checkpoint leaves the stored one as it is.
pub async fn a_commit_never_replaces_a_payment_fetched_later<S: Store + Ledger>(
    store: Arc<S>,
    _: &dyn Tamper,
) {
    use payments_sync::{Checkpoint, Commit, GroupState};
    let version = |state: &str| {
        let raw = serde_json::value::RawValue::from_string(format!(
            r#"{{"id":"PPS","amount":1250,"currency":"EUR","state":"{state}","created_at":"2024-06-30T12:40:10Z"}}"#
        ))
        .unwrap();
        paypro_api::map_payments(&[raw]).payments.remove(0)
    };
    let (a, b, c) = (version("open"), version("paid"), version("chargeback"));
    assert!(a != b && b != c);
    let id = b.id.clone();
    let commit = |payments: Vec<Payment>, micros: i64| Commit {
        source: "paypro".to_owned(),
        observed_at: instant(micros),
        payments,
        rejected: Vec::new(),
        resolved: Vec::new(),
        groups: Vec::new(),
        unknown_words: Vec::new(),
        checkpoint: None,
    };
    // Fetched at t1 < t2 < t3, a millisecond apart, with fractions of a microsecond cut.
    let (t1, t2, t3) = (123_456, 124_456, 125_456);
    let checkpoint = Checkpoint::started(RunKind::Full, instant(t2));
    store
        .commit(Commit {
            checkpoint: Some(checkpoint.clone()),
            ..commit(vec![b.clone()], t2)
        })
        .await
        .unwrap();

    // Version A, fetched earlier, committed later (a slow read beside the run), with other facts.
    let rejected = paypro_api::map_payments(&[serde_json::value::RawValue::from_string(
        r#"{"id":"PPBAD","amount":100,"currency":"EUR","state":"paid","created_at":"30/06/2024"}"#
            .to_owned(),
    )
    .unwrap()])
    .rejected;
    assert_eq!(rejected.len(), 1);
    store
        .commit(Commit {
            rejected,
            groups: vec![("plk_s".to_owned(), GroupState::default())],
            unknown_words: vec!["teleported".to_owned()],
            ..commit(vec![a.clone()], t1)
        })
        .await
        .unwrap();
    // A microsecond earlier is earlier too.
    let just_before = instant(t2 - 1) + chrono::Duration::nanoseconds(999);
    store
        .commit(Commit {
            observed_at: just_before,
            ..commit(vec![a.clone()], 0)
        })
        .await
        .unwrap();

    assert_eq!(store.stored(vec![id.clone()]).await.unwrap()[&id], b);
    let versions = store.versions(&id).await.unwrap();
    assert_eq!(versions.len(), 1, "no version A: {versions:?}");
    assert_eq!(
        (
            &versions[0].payment,
            versions[0].observed_at,
            versions[0].superseded_at
        ),
        (&b, instant(t2), None)
    );
    assert_eq!(
        all(&*store, &Filter::default()).await,
        std::slice::from_ref(&b)
    );
    let as_of = |micros| Filter {
        as_of: Some(instant(micros)),
        ..Filter::default()
    };
    assert!(
        all(&*store, &as_of(t1)).await.is_empty(),
        "A was never the ledger's knowledge"
    );
    assert_eq!(all(&*store, &as_of(t2)).await, std::slice::from_ref(&b));
    // The rest of the commit landed; its checkpoint was none, so the stored one stays.
    assert_eq!(store.quarantine("paypro").await.unwrap().len(), 1);
    assert!(
        store
            .source_state("paypro")
            .await
            .unwrap()
            .groups
            .contains_key("plk_s")
    );
    assert_eq!(
        store.unknown_words("paypro").await.unwrap(),
        [("teleported".to_owned(), instant(t1))]
    );
    assert_eq!(
        store.checkpoint("paypro").await.unwrap(),
        Some(checkpoint.clone())
    );

    // Version C, fetched later, replaces B, which is kept as a version.
    store.commit(commit(vec![c.clone()], t3)).await.unwrap();
    assert_eq!(store.stored(vec![id.clone()]).await.unwrap()[&id], c);
    let versions: Vec<_> = store
        .versions(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.payment, v.observed_at, v.superseded_at))
        .collect();
    assert_eq!(
        versions,
        [
            (b.clone(), instant(t2), Some(instant(t3))),
            (c.clone(), instant(t3), None)
        ]
    );
    assert_eq!(
        all(&*store, &Filter::default()).await,
        std::slice::from_ref(&c)
    );
    assert_eq!(all(&*store, &as_of(t3 - 1)).await, [b]);
    assert_eq!(store.checkpoint("paypro").await.unwrap(), Some(checkpoint));
    // A commit of the same instant as the stored one replaces it, as before the stamp.
    let again = version("paid");
    store.commit(commit(vec![again.clone()], t3)).await.unwrap();
    assert_eq!(store.stored(vec![id.clone()]).await.unwrap()[&id], again);
    assert_eq!(store.versions(&id).await.unwrap().len(), 3);
}

/// A refund record of `state`, as the books keep it.
fn refund(id: &str, state: &str, cents: i64) -> payments_model::BookRecord {
    payments_model::BookRecord {
        kind: payments_model::BookKind::Refund,
        id: Source::PayPro.payment_id(id),
        source: Source::PayPro,
        source_id: id.to_owned(),
        payment_id: Some("paypro:PP1".to_owned()),
        state: state.to_owned(),
        amount: payments_model::Money::from_minor(cents, payments_model::Currency::EUR),
        fee: None,
        fee_vat: None,
        created_at: payments_model::parse_timestamp("2026-10-02T09:00:00Z").unwrap(),
        settled_at: None,
        description: Some("retour \u{1b}[31m".to_owned()),
        reason: None,
        bank_account: None,
    }
}

/// Book records: committed with the walk's state in one commit, read back exactly, a changed
/// one supersedes the stored one (kept as a version), and one fetched earlier than the stored
/// one never replaces it; walks are per source and kind; a rejected record is quarantined.
pub async fn book_records_keep_their_walk_versions_and_the_ordering_stamp<S: Store + Ledger>(
    store: Arc<S>,
    _: &dyn Tamper,
) {
    use payments_model::BookKind;
    use payments_sync::{BookWalk, KeptRecord, RecordCommit};
    let kept = |record, micros| KeptRecord {
        record,
        first_seen_at: instant(micros),
        returned_at: None,
    };
    let walk = BookWalk {
        cursor: Some(payments_model::Cursor {
            listing: Some("/refunds?cursor=x".to_owned()),
            ..Default::default()
        }),
        complete: false,
        walked_at: None,
        failing: None,
    };
    let commit = |records, micros, walk: BookWalk| RecordCommit {
        source: "paypro".to_owned(),
        observed_at: instant(micros),
        kind: BookKind::Refund,
        records,
        rejected: Vec::new(),
        walk,
    };
    assert_eq!(
        store.book_walk("paypro", BookKind::Refund).await.unwrap(),
        None
    );
    let first = kept(refund("PR1", "processing", 500), 1_000);
    store
        .commit_records(commit(vec![first.clone()], 1_000, walk.clone()))
        .await
        .unwrap();
    assert_eq!(
        store.book_walk("paypro", BookKind::Refund).await.unwrap(),
        Some(walk.clone())
    );
    assert_eq!(
        store.book_walk("paypro", BookKind::Payout).await.unwrap(),
        None
    );
    let id = first.record.id.clone();
    assert_eq!(
        store.kept_records(vec![id.clone()]).await.unwrap()[&id],
        first
    );

    // Changed later: it supersedes; an older fetch committed after it does not replace it.
    let done = BookWalk {
        cursor: None,
        complete: true,
        walked_at: Some(instant(3_000)),
        failing: None,
    };
    let second = kept(refund("PR1", "refunded", 500), 1_000);
    store
        .commit_records(commit(vec![second.clone()], 3_000, done.clone()))
        .await
        .unwrap();
    store
        .commit_records(RecordCommit {
            rejected: vec![payments_model::Rejected {
                source_id: Some("PRBAD".to_owned()),
                reason: "refund PRBAD: amount: not a number".to_owned(),
                raw: r#"{"id":"PRBAD"}"#.to_owned(),
            }],
            ..commit(vec![first.clone()], 2_000, done.clone())
        })
        .await
        .unwrap();
    assert_eq!(
        store.kept_records(vec![id.clone()]).await.unwrap()[&id],
        second
    );
    assert_eq!(store.records(Source::PayPro).await.unwrap(), vec![second]);
    assert!(store.records(Source::Mkp).await.unwrap().is_empty());
    let quarantined = store.quarantine("paypro").await.unwrap();
    assert!(
        quarantined.iter().any(|q| q.raw == r#"{"id":"PRBAD"}"#),
        "{quarantined:?}"
    );
}

/// Issued statements read back exactly, in number order, with the references they book; a
/// number or a day issued already is refused as a conflict, and nothing of that issue lands.
pub async fn an_issued_statement_is_kept_once_and_never_replaced<S: Store + Ledger>(
    store: Arc<S>,
    _: &dyn Tamper,
) {
    use payments_model::MovementKind;
    use payments_sync::{Booking, IssuedStatement, StatementHead};
    let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 10, d).unwrap();
    let statement = |number, d, refs: &[&str]| IssuedStatement {
        account: "PAYPRO-EUR".to_owned(),
        number,
        day: day(d),
        closing: format!("{number}0.00"),
        digest: format!("digest{number}"),
        body: format!("{{\"n\":{number}}}"),
        issued_at: instant(1_000),
        // One booked before the ledger kept what (`None`), the others with kind and amount.
        bookings: refs
            .iter()
            .map(|r| Booking {
                reference: (*r).to_owned(),
                booked: (*r != "PP2").then(|| {
                    let minus = r.starts_with("PR");
                    (
                        if minus {
                            MovementKind::Refund
                        } else {
                            MovementKind::Payment
                        },
                        payments_model::Money::from_minor(
                            if minus { -150 } else { 1_234 },
                            payments_model::Currency::EUR,
                        ),
                    )
                }),
            })
            .collect(),
    };
    store
        .issue(vec![
            statement(1, 1, &["PP1", "PP2"]),
            statement(2, 2, &["PR1"]),
        ])
        .await
        .unwrap();
    let issued = store.issued("PAYPRO-EUR").await.unwrap();
    let head = |s: IssuedStatement| StatementHead {
        account: s.account,
        number: s.number,
        day: s.day,
        closing: s.closing,
        digest: s.digest,
        issued_at: s.issued_at,
    };
    assert_eq!(
        issued,
        vec![head(statement(1, 1, &[])), head(statement(2, 2, &[]))]
    );
    for number in [1, 2] {
        assert_eq!(
            store.statement_body("PAYPRO-EUR", number).await.unwrap(),
            Some(statement(number, 1, &[]).body)
        );
    }
    assert_eq!(store.statement_body("PAYPRO-EUR", 3).await.unwrap(), None);
    assert_eq!(store.statement_body("OTHER", 1).await.unwrap(), None);
    assert!(store.issued("OTHER").await.unwrap().is_empty());
    let mut booked = store.booked("PAYPRO-EUR").await.unwrap();
    booked.sort_by(|a, b| a.reference.cmp(&b.reference));
    let mut expected: Vec<Booking> = [statement(1, 1, &["PP1", "PP2"]), statement(2, 2, &["PR1"])]
        .into_iter()
        .flat_map(|s| s.bookings)
        .collect();
    expected.sort_by(|a, b| a.reference.cmp(&b.reference));
    assert_eq!(booked, expected, "what each booked reads back exactly");
    for refused in [statement(2, 3, &["PP9"]), statement(3, 2, &["PP9"])] {
        let error = store.issue(vec![refused]).await.unwrap_err();
        assert!(matches!(error, StoreError::Conflict { .. }), "{error}");
    }
    assert_eq!(store.issued("PAYPRO-EUR").await.unwrap().len(), 2);
    assert!(
        !store
            .booked("PAYPRO-EUR")
            .await
            .unwrap()
            .iter()
            .any(|b| b.reference == "PP9")
    );
}
