//! The shared store suite on a fresh PostgreSQL ledger (one account of a new database on a
//! throwaway cluster), skipped where PostgreSQL is not installed.

use std::sync::Arc;

use payments_postgres::{PgLedger, PgStore};
use payments_sync::codec::Stored;
use payments_testkit::postgres::Cluster;
use payments_testkit::store_suite::Tamper;

/// The suite's database, which its hook writes raw values into by SQL.
struct Database {
    url: String,
    account: i64,
    _cluster: Cluster,
}

#[async_trait::async_trait]
impl Tamper for Database {
    async fn write_raw(&self, place: Stored<'_>, value: &str) {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        let account = &self.account;
        let changed = match place {
            Stored::Checkpoint { source } => {
                client
                    .execute(
                        "UPDATE ledger.checkpoints SET checkpoint = $3
                         WHERE account_id = $1 AND source_name = $2",
                        &[account, &source, &value],
                    )
                    .await
            }
            Stored::GroupState { source, id } => {
                client
                    .execute(
                        "UPDATE ledger.groups SET state = $4::text::jsonb
                         WHERE account_id = $1 AND source_name = $2 AND id = $3",
                        &[account, &source, &id, &value],
                    )
                    .await
            }
            Stored::LastRunStartedAt { source } => {
                client
                    .execute(
                        "UPDATE ledger.runs SET started_at = $3::text::timestamptz
                         WHERE seq = (SELECT max(seq) FROM ledger.runs
                                      WHERE account_id = $1 AND source_name = $2)",
                        &[account, &source, &value],
                    )
                    .await
            }
            Stored::Record { id } => {
                client
                    .execute(
                        "UPDATE ledger.payments SET record = $3::text::jsonb
                         WHERE account_id = $1 AND id = $2",
                        &[account, &id, &value],
                    )
                    .await
            }
            Stored::Hints { source, key } => {
                client
                    .execute(
                        "UPDATE ledger.inbox SET hints = $4
                         WHERE account_id = $1 AND source_name = $2 AND key = $3",
                        &[account, &source, &key, &value],
                    )
                    .await
            }
            other => panic!("no hook for {other:?}"),
        };
        assert_eq!(changed.unwrap(), 1, "{place:?}");
        drop(client);
        connection.await.unwrap().unwrap();
    }
}

async fn fresh() -> Option<(Arc<PgStore>, Database)> {
    let cluster = Cluster::start()?;
    let url = cluster.database("suite");
    let ledger = PgLedger::connect(&url, 4).await.unwrap();
    let account = crate::account(&ledger, "suite").await;
    Some((
        Arc::new(ledger.store(account, "suite")),
        Database {
            url,
            account,
            _cluster: cluster,
        },
    ))
}

payments_testkit::store_suite!(fresh);
