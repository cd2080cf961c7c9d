//! The shared store suite on a fresh PostgreSQL ledger (one account of a new database on a
//! throwaway cluster), skipped where PostgreSQL is not installed.

use std::sync::Arc;

use payments_postgres::{PgLedger, PgStore};
use payments_testkit::postgres::Cluster;

async fn fresh() -> Option<(Arc<PgStore>, Cluster)> {
    let cluster = Cluster::start()?;
    let url = cluster.database("suite");
    let ledger = PgLedger::connect(&url, 4).await.unwrap();
    let account = crate::account(&ledger, "suite").await;
    Some((Arc::new(ledger.store(account, "suite")), cluster))
}

payments_testkit::store_suite!(fresh);
