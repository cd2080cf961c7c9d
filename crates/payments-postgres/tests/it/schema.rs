use payments_model::{Delivery, Hint};
use payments_postgres::{PgLedger, SCHEMA_VERSION};
use payments_sync::{Inbox, Ledger, Receipt, StoreError};
use payments_testkit::postgres::Cluster;

#[tokio::test]
async fn workers_starting_together_migrate_once_and_readers_refuse_a_database_without_a_ledger() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("ledger");
    let refused = PgLedger::open_existing(&url).await.unwrap_err();
    assert!(
        matches!(refused, StoreError::NotALedger { .. }),
        "{refused}"
    );
    let connects = (0..4).map(|_| PgLedger::connect(&url, 2));
    for ledger in futures::future::join_all(connects).await {
        ledger.unwrap();
    }
    let ledger = PgLedger::open_existing(&url).await.unwrap();
    assert_eq!(
        ledger.name(),
        format!("postgresql://postgres@127.0.0.1:{}/ledger", cluster.port())
    );
    assert_eq!(SCHEMA_VERSION, 5);
}

/// A ledger of schema version 1 (before the inbox), with an account and a payment, is upgraded
/// by the next worker to connect: its rows are kept and its inbox works.
#[tokio::test]
async fn a_version_1_ledger_is_upgraded_on_connect_and_its_inbox_works() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("old");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    client
        .batch_execute(include_str!("../../src/schema-1.sql"))
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO ledger.meta (key, value) VALUES ('schema_version', '1');
             INSERT INTO ledger.accounts (name) VALUES ('old');
             INSERT INTO ledger.checkpoints (account_id, source_name, checkpoint)
             SELECT id, 'paypro', 'kept as it was' FROM ledger.accounts;",
        )
        .await
        .unwrap();
    let refused = PgLedger::open_existing(&url).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("schema version 1 of an older release"),
        "{refused}"
    );

    let ledger = PgLedger::connect(&url, 2).await.unwrap();
    let version: String = client
        .query_one(
            "SELECT value FROM ledger.meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, "5");
    let account: i64 = client
        .query_one("SELECT id FROM ledger.accounts WHERE name = 'old'", &[])
        .await
        .unwrap()
        .get(0);
    drop(client);
    connection.await.unwrap().unwrap();
    PgLedger::open_existing(&url).await.unwrap();
    let store = ledger.store(account, "old");
    let (table, ..) = match store.checkpoint("paypro").await {
        Err(StoreError::Unreadable { table, column, .. }) => (table, column),
        other => panic!("the old row is kept as it was: {other:?}"),
    };
    assert_eq!(table, "checkpoints");
    let delivery = Delivery {
        key: "EV1".to_owned(),
        kind: "payment.paid".to_owned(),
        hints: vec![Hint::Payment {
            id: "PP1".to_owned(),
        }],
    };
    let at = chrono::Utc::now();
    assert_eq!(
        store.receive("paypro", &delivery, at).await.unwrap(),
        Receipt::New
    );
    assert_eq!(
        store.receive("paypro", &delivery, at).await.unwrap(),
        Receipt::Duplicate
    );
    let pending = store.pending("paypro").await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].delivery, delivery);
}
