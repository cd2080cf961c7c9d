//! Syncing the sandbox into a SQLite file: exact, durable, idempotent, locked.

use std::sync::Arc;

use payments_model::{Payment, PaymentStatus, Source};
use payments_sandbox::{Sandbox, SandboxConfig};
use payments_sqlite::{Filter, SqliteStore};
use payments_sync::Ledger;
use payments_sync::SyncOptions;

use payments_sync::codec::Stored;
use payments_testkit::store_suite::{Tamper, sync};

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

/// The released migrations, in order.
const RELEASED_SCHEMAS: [&str; 8] = [
    include_str!("../../src/schema-1.sql"),
    include_str!("../../src/schema-2.sql"),
    include_str!("../../src/schema-3.sql"),
    include_str!("../../src/schema-4.sql"),
    include_str!("../../src/schema-5.sql"),
    include_str!("../../src/schema-6.sql"),
    include_str!("../../src/schema-7.sql"),
    include_str!("../../src/schema-8.sql"),
];

/// A ledger as schema `version` wrote it: its migrations, and the payments and checkpoints of a
/// current store synced from `sandbox`; `then` is SQL run before `user_version` is set (it may
/// name the payments, which it is given).
async fn old_ledger(
    dir: &std::path::Path,
    sandbox: &Sandbox,
    version: usize,
    then: impl FnOnce(&[Payment]) -> String,
) -> std::path::PathBuf {
    let current_path = dir.join("current.db");
    let current = Arc::new(SqliteStore::open(&current_path).unwrap());
    sync(&current, sandbox, SyncOptions::default()).await;
    let payments = all(&current, &Filter::default());
    drop(current);
    let path = dir.join(format!("v{version}.db"));
    let old = rusqlite::Connection::open(&path).unwrap();
    for schema in &RELEASED_SCHEMAS[..version] {
        old.execute_batch(schema).unwrap();
    }
    old.execute_batch(&format!(
        "ATTACH '{}' AS current;
         INSERT INTO payments SELECT * FROM current.payments;
         INSERT INTO checkpoints SELECT * FROM current.checkpoints;
         {}
         PRAGMA user_version = {version};",
        current_path.display(),
        then(&payments)
    ))
    .unwrap();
    path
}

fn small_sandbox() -> SandboxConfig {
    SandboxConfig {
        mkp_links: 5,
        paypro_payments: 120,
        ..sandbox_config()
    }
}

#[tokio::test]
async fn a_version_1_database_is_migrated_with_its_payments_intact() {
    let sandbox = Sandbox::start(small_sandbox()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = old_ledger(dir.path(), &sandbox, 1, |_| String::new()).await;
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
        migrated
            .last_run("paypro")
            .await
            .unwrap()
            .unwrap()
            .summary
            .pages,
        2
    );
}

#[tokio::test]
async fn a_version_6_ledger_is_upgraded_on_open_and_its_inbox_and_books_work() {
    use payments_model::{Delivery, Hint};
    use payments_sync::{Inbox, Receipt};
    let sandbox = Sandbox::start(small_sandbox()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = old_ledger(dir.path(), &sandbox, 6, |_| String::new()).await;
    let refused = SqliteStore::open_read_only(&path).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("schema version 6 of an older release"),
        "{refused}"
    );
    let migrated = Arc::new(SqliteStore::open(&path).unwrap());
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!((version, payments_sqlite::SCHEMA_VERSION), (9, 9));
    assert_eq!(
        all(&migrated, &Filter::default()),
        payments_testkit::data_set(&sandbox),
        "the payments are kept"
    );
    let delivery = Delivery {
        key: "EV1".to_owned(),
        kind: "payment.paid".to_owned(),
        hints: vec![Hint::Payment {
            id: "PP1".to_owned(),
        }],
    };
    let at = chrono::Utc::now();
    assert_eq!(
        migrated.receive("paypro", &delivery, at).await.unwrap(),
        Receipt::New
    );
    assert_eq!(
        migrated.receive("paypro", &delivery, at).await.unwrap(),
        Receipt::Duplicate
    );
    let pending = migrated.pending("paypro").await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].delivery, delivery);
    // The books, added by version 8, start empty and take statements.
    use payments_sync::{Books, IssuedStatement};
    assert!(
        migrated
            .records(payments_model::Source::PayPro)
            .await
            .unwrap()
            .is_empty()
    );
    migrated
        .issue(vec![IssuedStatement {
            account: "PAYPRO-EUR".to_owned(),
            number: 1,
            day: chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            closing: "1.00".to_owned(),
            digest: "d".to_owned(),
            body: "{}".to_owned(),
            issued_at: at,
            bookings: vec![payments_sync::Booking {
                reference: "PP1".to_owned(),
                booked: None,
            }],
        }])
        .await
        .unwrap();
    assert_eq!(migrated.issued("PAYPRO-EUR").await.unwrap().len(), 1);
    drop(migrated);
    SqliteStore::open_read_only(&path).unwrap();
}

/// A ledger of version 8 with a statement issued: its bookings are kept, read as booked
/// before the ledger kept what and how much (so never corrected), and new ones keep both.
#[tokio::test]
async fn a_version_8_ledger_keeps_its_statements_and_their_bookings() {
    use payments_model::{Currency, Money, MovementKind};
    use payments_sync::{Booking, Books, IssuedStatement};
    let sandbox = Sandbox::start(small_sandbox()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = old_ledger(dir.path(), &sandbox, 8, |_| {
        "INSERT INTO statements VALUES ('PAYPRO-EUR', 1, '2026-10-01', '1.00', 'd', '{}', '2026-10-02T00:00:00.000000000Z');
         INSERT INTO statement_refs VALUES ('PAYPRO-EUR', 'PPOLD', 1);"
            .to_owned()
    })
    .await;
    let migrated = SqliteStore::open(&path).unwrap();
    assert_eq!(
        migrated.booked("PAYPRO-EUR").await.unwrap(),
        vec![Booking {
            reference: "PPOLD".to_owned(),
            booked: None
        }]
    );
    assert_eq!(
        migrated.issued("PAYPRO-EUR").await.unwrap()[0].closing,
        "1.00"
    );
    let booked = Some((MovementKind::Refund, Money::from_minor(-250, Currency::EUR)));
    migrated
        .issue(vec![IssuedStatement {
            account: "PAYPRO-EUR".to_owned(),
            number: 2,
            day: chrono::NaiveDate::from_ymd_opt(2026, 10, 2).unwrap(),
            closing: "-1.50".to_owned(),
            digest: "e".to_owned(),
            body: "{}".to_owned(),
            issued_at: chrono::Utc::now(),
            bookings: vec![Booking {
                reference: "PR1".to_owned(),
                booked,
            }],
        }])
        .await
        .unwrap();
    let all = migrated.booked("PAYPRO-EUR").await.unwrap();
    assert!(all.contains(&Booking {
        reference: "PR1".to_owned(),
        booked
    }));
}

/// A delivery is received while a sync of the same ledger commits pages from another task: it
/// takes the store's connection in turn, not the sync lock, and both finish.
#[tokio::test]
async fn a_delivery_is_received_while_a_sync_commits() {
    use payments_model::Delivery;
    use payments_sync::{Inbox, Receipt};
    let sandbox = Sandbox::start(sandbox_config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("p.db")).unwrap());
    let _lock = store.lock_for_sync().unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let syncing = async {
        let summaries = sync(&store, &sandbox, SyncOptions::default()).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        summaries
    };
    let receiving = async {
        let (mut received, mut while_syncing) = (0, 0);
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let delivery = Delivery {
                key: format!("EV{received}"),
                kind: "payment.paid".to_owned(),
                hints: Vec::new(),
            };
            let receipt = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                store.receive("paypro", &delivery, chrono::Utc::now()),
            )
            .await
            .expect("receiving does not wait for the sync to end")
            .unwrap();
            assert_eq!(receipt, Receipt::New);
            received += 1;
            if !done.load(std::sync::atomic::Ordering::SeqCst) {
                while_syncing += 1;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        (received, while_syncing)
    };
    let (summaries, (received, while_syncing)) = tokio::join!(syncing, receiving);
    assert!(summaries.iter().any(|s| s.pages > 1), "{summaries:?}");
    assert!(while_syncing > 0, "received while the sync committed");
    assert_eq!(store.pending("paypro").await.unwrap().len(), received);
}

#[tokio::test]
async fn a_version_5_ledger_keeps_its_status_history_as_versions() {
    let sandbox = Sandbox::start(small_sandbox()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut payment, mut quiet) = (None, None);
    // A ledger as version 5 wrote it, where a payment went pending → paid → chargeback → paid
    // and later changed in another field (03-05); version 5 kept only the status moves. Another
    // payment changed in a field other than its status (02-10) and never moved.
    let path = old_ledger(dir.path(), &sandbox, 5, |payments| {
        let mut paid = payments
            .iter()
            .filter(|p| p.source == Source::PayPro && p.status == PaymentStatus::Paid);
        let (moved, other) = (paid.next().unwrap(), paid.next().unwrap());
        payment = Some(moved.clone());
        quiet = Some(other.clone());
        format!(
            "UPDATE payments SET first_seen_at = '2026-01-01T10:00:00.000000Z',
                                 updated_at = '2026-03-05T10:00:00.000000Z'
             WHERE id = '{id}';
             UPDATE payments SET first_seen_at = '2026-01-01T10:00:00.000000Z',
                                 updated_at = '2026-02-10T10:00:00.000000Z'
             WHERE id = '{other}';
             INSERT INTO status_history (payment_id, from_status, to_status, from_provider_status,
                                         to_provider_status, observed_at, backwards) VALUES
               ('{id}', 'pending', 'paid', 'open', 'paid', '2026-01-02T10:00:00.000000Z', 0),
               ('{id}', 'paid', 'charged_back', 'paid', 'chargeback', '2026-02-01T10:00:00.000000Z', 0),
               ('{id}', 'charged_back', 'paid', 'chargeback', 'paid', '2026-03-01T10:00:00.000000Z', 1);",
            id = moved.id,
            other = other.id,
        )
    })
    .await;
    let (payment, quiet) = (payment.unwrap(), quiet.unwrap());
    let migrated = SqliteStore::open(&path).unwrap();
    let versions = migrated.versions(&payment.id).await.unwrap();
    let seen: Vec<(&str, &str, String, Option<String>, bool)> = versions
        .iter()
        .map(|v| {
            (
                v.payment.status.as_str(),
                v.payment.provider_status.as_str(),
                v.observed_at.to_rfc3339(),
                v.superseded_at.map(|at| at.to_rfc3339()),
                v.status_only,
            )
        })
        .collect();
    let at = |day: &str| format!("2026-{day}T10:00:00+00:00");
    assert_eq!(
        seen,
        [
            ("pending", "open", at("01-01"), Some(at("01-02")), true),
            ("paid", "paid", at("01-02"), Some(at("02-01")), true),
            (
                "charged_back",
                "chargeback",
                at("02-01"),
                Some(at("03-01")),
                true
            ),
            // The change of another field on 03-05 left no history row: bridged.
            ("paid", "paid", at("03-01"), Some(at("03-05")), true),
            ("paid", "paid", at("03-05"), None, false),
        ]
    );
    let quiet_versions: Vec<(String, Option<String>, bool)> = migrated
        .versions(&quiet.id)
        .await
        .unwrap()
        .iter()
        .map(|v| {
            (
                v.observed_at.to_rfc3339(),
                v.superseded_at.map(|at| at.to_rfc3339()),
                v.status_only,
            )
        })
        .collect();
    assert_eq!(
        quiet_versions,
        [
            (at("01-01"), Some(at("02-10")), true),
            (at("02-10"), None, false)
        ]
    );
    // The migrated versions answer "as of" questions about the past.
    let as_of = |text: &str| Filter {
        as_of: Some(text.parse().unwrap()),
        ..Filter::default()
    };
    let status_then = |text| {
        all(&migrated, &as_of(text))
            .into_iter()
            .find(|p| p.id == payment.id)
            .map(|p| p.status)
    };
    assert_eq!(status_then("2025-12-31T00:00:00Z"), None);
    assert_eq!(
        status_then("2026-01-01T12:00:00Z"),
        Some(PaymentStatus::Pending)
    );
    assert_eq!(
        status_then("2026-02-15T00:00:00Z"),
        Some(PaymentStatus::ChargedBack)
    );
    assert_eq!(
        status_then("2026-03-01T10:00:00Z"),
        Some(PaymentStatus::Paid)
    );
    assert_eq!(
        status_then("2026-03-03T00:00:00Z"),
        Some(PaymentStatus::Paid),
        "no gap between the last move and the current row"
    );
    let known_then = all(&migrated, &as_of("2026-01-15T00:00:00Z"));
    assert!(known_then.iter().any(|p| p.id == quiet.id));
    assert!(
        migrated
            .reconstructed_at("2026-01-15T00:00:00Z".parse().unwrap())
            .await
            .unwrap()
    );
    assert!(
        !migrated
            .reconstructed_at("2026-03-06T00:00:00Z".parse().unwrap())
            .await
            .unwrap()
    );
}

/// The SQLite file of a suite's test, which the suite's hook writes raw values into by SQL.
struct File {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

#[async_trait::async_trait]
impl Tamper for File {
    async fn write_raw(&self, place: Stored<'_>, value: &str) {
        let connection = rusqlite::Connection::open(&self.path).unwrap();
        let changed = match place {
            Stored::Checkpoint { source } => connection.execute(
                "UPDATE checkpoints SET checkpoint = ?2 WHERE source_name = ?1",
                (source, value),
            ),
            Stored::GroupState { source, id } => connection.execute(
                "UPDATE groups SET state = ?3 WHERE source_name = ?1 AND id = ?2",
                (source, id, value),
            ),
            Stored::LastRunStartedAt { source } => connection.execute(
                "UPDATE runs SET started_at = ?2
                 WHERE seq = (SELECT MAX(seq) FROM runs WHERE source_name = ?1)",
                (source, value),
            ),
            Stored::Record { id } => {
                connection.execute("UPDATE payments SET record = ?2 WHERE id = ?1", (id, value))
            }
            Stored::Hints { source, key } => connection.execute(
                "UPDATE inbox SET hints = ?3 WHERE source_name = ?1 AND key = ?2",
                (source, key, value),
            ),
            other => panic!("no hook for {other:?}"),
        };
        assert_eq!(changed.unwrap(), 1, "{place:?}");
    }
}

/// The shared store suite on a fresh SQLite file.
async fn fresh() -> Option<(Arc<SqliteStore>, File)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let store = SqliteStore::open(&path).unwrap();
    Some((Arc::new(store), File { path, _dir: dir }))
}

mod suite {
    payments_testkit::store_suite!(super::fresh);
}

#[tokio::test]
async fn a_ledger_survives_reopening() {
    let sandbox = Sandbox::start(sandbox_config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payments.db");
    let sqlite = Arc::new(SqliteStore::open(&path).unwrap());
    sync(&sqlite, &sandbox, SyncOptions::default()).await;
    let stored = all(&sqlite, &Filter::default());
    drop(sqlite);
    let reopened = Arc::new(SqliteStore::open(&path).unwrap());
    assert_eq!(all(&reopened, &Filter::default()), stored);
    let checkpoint = reopened.checkpoint("paypro").await.unwrap().unwrap();
    assert!(checkpoint.cursor.is_none() && checkpoint.last_completed_at.is_some());
}
