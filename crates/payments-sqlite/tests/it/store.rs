//! Syncing the sandbox into a SQLite file: exact, durable, idempotent, locked.

use std::sync::Arc;

use payments_model::{Payment, PaymentSource, PaymentStatus, Source};
use payments_sandbox::{Sandbox, SandboxConfig};
use payments_sqlite::{Filter, SqliteStore};
use payments_sync::{MemoryStore, Store, SyncOptions, Syncer};

fn sources(sandbox: &Sandbox) -> [Arc<dyn PaymentSource>; 2] {
    [
        payments_testkit::mkp(sandbox),
        payments_testkit::paypro(sandbox),
    ]
}

async fn sync<S: Store + 'static>(
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

fn all(store: &SqliteStore, filter: &Filter) -> Vec<Payment> {
    let mut payments = Vec::new();
    store
        .for_each_payment(filter, |p| {
            payments.push(p);
            Ok::<(), payments_sync::StoreError>(())
        })
        .unwrap();
    payments
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

#[tokio::test]
async fn a_sync_into_sqlite_matches_the_memory_store_and_survives_reopening() {
    let sandbox = Sandbox::start(sandbox_config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payments.db");
    let sqlite = Arc::new(SqliteStore::open(&path).unwrap());
    let memory = Arc::new(MemoryStore::new());
    sync(&sqlite, &sandbox, SyncOptions::default()).await;
    sync(&memory, &sandbox, SyncOptions::default()).await;
    let stored = all(&sqlite, &Filter::default());
    assert!(stored.len() > 700);
    assert_eq!(
        stored,
        memory.payments(),
        "same payments, same order (created_at, then id)"
    );
    drop(sqlite);

    let reopened = Arc::new(SqliteStore::open(&path).unwrap());
    assert_eq!(all(&reopened, &Filter::default()), stored);
    let checkpoint = reopened.checkpoint("paypro").unwrap().unwrap();
    assert!(checkpoint.cursor.is_none() && checkpoint.last_completed_at.is_some());

    // A full rerun finds everything unchanged and writes nothing new.
    let summaries = sync(&reopened, &sandbox, SyncOptions::full()).await;
    for summary in summaries {
        assert_eq!(
            (summary.counts.new, summary.counts.changed),
            (0, 0),
            "{summary:?}"
        );
    }
    assert_eq!(all(&reopened, &Filter::default()), stored);
}

#[tokio::test]
async fn status_changes_land_in_the_history_with_the_raw_words() {
    let sandbox = Sandbox::start(sandbox_config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("p.db")).unwrap());
    sync(&store, &sandbox, SyncOptions::default()).await;
    let paid = sandbox
        .paypro_payments()
        .into_iter()
        .find(|p| p.state == "paid" && p.refunded_amount == 0)
        .unwrap();
    sandbox.set_paypro_state(&paid.id, "chargeback", 0);
    sync(&store, &sandbox, SyncOptions::full()).await;
    sandbox.set_paypro_state(&paid.id, "paid", 0);
    sync(&store, &sandbox, SyncOptions::full()).await;
    let history = store.history(&format!("paypro:{}", paid.id)).unwrap();
    let moves: Vec<(PaymentStatus, PaymentStatus, bool)> = history
        .into_iter()
        .map(|h| (h.from, h.to, h.backwards))
        .collect();
    assert_eq!(
        moves,
        [
            (PaymentStatus::Paid, PaymentStatus::ChargedBack, false),
            (PaymentStatus::ChargedBack, PaymentStatus::Paid, true)
        ]
    );
}

#[tokio::test]
async fn filters_select_by_source_status_and_time() {
    let sandbox = Sandbox::start(sandbox_config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("p.db")).unwrap());
    sync(&store, &sandbox, SyncOptions::default()).await;
    let everything = all(&store, &Filter::default());
    let mkp_paid = all(
        &store,
        &Filter {
            sources: vec![Source::Mkp],
            statuses: vec!["paid".into()],
            ..Filter::default()
        },
    );
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
        &store,
        &Filter {
            since: Some(middle),
            ..Filter::default()
        },
    );
    let until = all(
        &store,
        &Filter {
            until: Some(middle),
            ..Filter::default()
        },
    );
    assert_eq!(since.len() + until.len(), everything.len());
    assert!(
        since.iter().all(|p| p.created_at >= middle) && until.iter().all(|p| p.created_at < middle)
    );
    let counts = store.counts_by_status(Source::PayPro).unwrap();
    assert_eq!(
        counts.iter().map(|(_, n)| n).sum::<u64>(),
        everything
            .iter()
            .filter(|p| p.source == Source::PayPro)
            .count() as u64
    );
}

#[tokio::test]
async fn quarantined_records_are_kept_once_with_their_reason() {
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
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("p.db")).unwrap());
    for _ in 0..2 {
        let mut syncer = Syncer::new(store.clone(), SyncOptions::full());
        syncer.add_source(Arc::new(OneBadRecord));
        let summary = syncer.run().await.remove(0).unwrap();
        assert_eq!(summary.quarantined, 1);
    }
    let quarantine = store.quarantine("paypro").unwrap();
    assert_eq!(
        quarantine.len(),
        1,
        "the same bad record twice is kept once"
    );
    let (id, reason, raw) = &quarantine[0];
    assert_eq!(id.as_deref(), Some("PPBAD"));
    assert!(reason.contains("field `created_at`"), "{reason}");
    assert!(raw.contains("30/06/2024"));
    assert_eq!(
        all(&store, &Filter::default()).len(),
        1,
        "the good record of the page was kept"
    );
}

#[test]
fn a_second_sync_is_refused_while_the_first_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let first = SqliteStore::open(&path).unwrap();
    let second = SqliteStore::open(&path).unwrap();
    let lock = first.lock_for_sync().unwrap();
    let err = second.lock_for_sync().unwrap_err();
    assert!(
        matches!(&err, payments_sync::StoreError::Locked { ledger } if ledger.ends_with("p.db")),
        "{err:?}"
    );
    let err = err.to_string();
    assert!(
        err.contains("another sync is running on") && err.contains("p.db"),
        "{err}"
    );
    drop(lock);
    second.lock_for_sync().unwrap();
}

#[test]
fn a_database_from_a_newer_version_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    drop(SqliteStore::open(&path).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            payments_sync::StoreError::NewerSchema {
                found: 99,
                supported: payments_sqlite::SCHEMA_VERSION,
                ..
            }
        ),
        "{err:?}"
    );
    let err = err.to_string();
    assert!(
        err.contains("schema version 99") && err.contains("newer"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_a_ledger_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    // Another program's SQLite database: no table is added, its version is not set.
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        .unwrap();
    let err = SqliteStore::open(&other).unwrap_err();
    assert!(
        matches!(&err, payments_sync::StoreError::NotALedger { detail, .. } if detail.contains("another program")),
        "{err:?}"
    );
    let connection = rusqlite::Connection::open(&other).unwrap();
    let tables: i64 = connection
        .query_row("SELECT COUNT(*) FROM sqlite_master", [], |row| row.get(0))
        .unwrap();
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!((tables, version), (1, 0));

    // A file that is not a database at all.
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "not a database, but a bookkeeper's notes ".repeat(100),
    )
    .unwrap();
    let err = SqliteStore::open(&text).unwrap_err();
    assert!(
        matches!(err, payments_sync::StoreError::NotALedger { .. }),
        "{err:?}"
    );
    assert!(
        std::fs::read_to_string(&text)
            .unwrap()
            .starts_with("not a database")
    );
}

#[tokio::test]
async fn a_version_1_database_is_migrated_with_its_payments_intact() {
    let sandbox = Sandbox::start(SandboxConfig {
        mkp_links: 5,
        paypro_payments: 120,
        ..sandbox_config()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        // A ledger as version 1 wrote it: its schema, and rows copied from a current store.
        let current = Arc::new(SqliteStore::open(dir.path().join("current.db")).unwrap());
        sync(&current, &sandbox, SyncOptions::default()).await;
        drop(current);
        let v1 = rusqlite::Connection::open(&path).unwrap();
        v1.execute_batch(include_str!("../../src/schema-1.sql"))
            .unwrap();
        v1.execute_batch(&format!(
            "ATTACH '{}' AS current;
             INSERT INTO payments SELECT * FROM current.payments;
             INSERT INTO checkpoints SELECT * FROM current.checkpoints;
             PRAGMA user_version = 1;",
            dir.path().join("current.db").display()
        ))
        .unwrap();
    }
    let migrated = Arc::new(SqliteStore::open(&path).unwrap());
    let expected = payments_testkit::data_set(&sandbox);
    assert_eq!(all(&migrated, &Filter::default()), expected);
    let rerun = sync(&migrated, &sandbox, SyncOptions::full()).await;
    assert!(
        rerun
            .iter()
            .all(|s| s.counts.new == 0 && s.counts.changed == 0)
    );
    assert_eq!(
        migrated.last_run("paypro").unwrap().unwrap().summary.pages,
        2
    );
}
