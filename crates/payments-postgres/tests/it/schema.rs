use payments_postgres::{PgLedger, SCHEMA_VERSION};
use payments_sync::StoreError;
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
    assert_eq!(SCHEMA_VERSION, 1);
}
