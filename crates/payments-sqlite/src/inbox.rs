//! The ledger's inbox of webhook deliveries: `impl Inbox for SqliteStore`, each method one
//! transaction on the store's one connection. A delivery is received while a sync commits pages
//! from another task: both take the connection in turn (one short transaction each), and
//! receiving never takes the sync lock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use payments_model::Delivery;
use payments_sync::codec::{self, InboxRow};
use payments_sync::{Inbox, Receipt, Received, StoreError};
use rusqlite::params;

use crate::{SqliteStore, store_error};

#[async_trait]
impl Inbox for SqliteStore {
    async fn receive(
        &self,
        source: &str,
        delivery: &Delivery,
        at: DateTime<Utc>,
    ) -> Result<Receipt, StoreError> {
        let source = source.to_owned();
        let key = delivery.key.clone();
        let kind = delivery.kind.clone();
        let hints = codec::encode_hints(&delivery.hints)?;
        let received_at = codec::instant(at);
        let file = self.file.clone();
        self.blocking(move |connection| {
            let context = "cannot store the webhook delivery";
            file.check()?;
            let transaction = connection.transaction().map_err(store_error(context))?;
            let inserted = transaction
                .execute(
                    "INSERT INTO inbox (source_name, key, hints, kind, received_at) VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT (source_name, key) DO NOTHING",
                    params![source, key, hints, kind, received_at],
                )
                .map_err(store_error(context))?;
            transaction.commit().map_err(store_error(context))?;
            Ok(if inserted == 1 {
                Receipt::New
            } else {
                Receipt::Duplicate
            })
        })
        .await
    }

    async fn pending(&self, source: &str) -> Result<Vec<Received>, StoreError> {
        let source = source.to_owned();
        self.blocking(move |connection| {
            let context = "cannot read the inbox";
            let mut statement = connection
                .prepare_cached(
                    "SELECT id, key, kind, hints, received_at FROM inbox
                     WHERE source_name = ? AND processed_at IS NULL ORDER BY received_at, id",
                )
                .map_err(store_error(context))?;
            let rows = statement
                .query_map([&source], |row| {
                    Ok(InboxRow {
                        id: row.get(0)?,
                        source_name: source.clone(),
                        key: row.get(1)?,
                        kind: row.get(2)?,
                        hints: row.get(3)?,
                        received_at: row.get(4)?,
                    })
                })
                .map_err(store_error(context))?
                .collect::<Result<Vec<InboxRow>, _>>()
                .map_err(store_error(context))?;
            rows.iter().map(InboxRow::decode).collect()
        })
        .await
    }

    async fn processed(&self, ids: &[i64], at: DateTime<Utc>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.to_vec();
        let at = codec::instant(at);
        self.blocking(move |connection| {
            let context = "cannot mark webhook deliveries processed";
            let transaction = connection.transaction().map_err(store_error(context))?;
            {
                let mut mark = transaction
                    .prepare_cached(
                        "UPDATE inbox SET processed_at = ? WHERE id = ? AND processed_at IS NULL",
                    )
                    .map_err(store_error(context))?;
                for id in &ids {
                    mark.execute(params![at, id])
                        .map_err(store_error(context))?;
                }
            }
            transaction.commit().map_err(store_error(context))
        })
        .await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = codec::instant(before);
        self.blocking(move |connection| {
            let context = "cannot prune the inbox";
            let deleted = connection
                .execute(
                    "DELETE FROM inbox WHERE processed_at IS NOT NULL AND processed_at < ?",
                    [&before],
                )
                .map_err(store_error(context))?;
            Ok(deleted as u64)
        })
        .await
    }
}
