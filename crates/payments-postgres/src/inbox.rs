//! The account's inbox of webhook deliveries: `impl Inbox for PgStore`, each method one
//! statement in its own transaction, keyed by the account. Any worker may receive a delivery for
//! any account while the lease holder commits pages: receiving takes no lease.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use payments_model::Delivery;
use payments_sync::codec::{self, Cell, InboxRow};
use payments_sync::{Inbox, Receipt, Received, StoreError};
use tokio_postgres::GenericClient;

use crate::pg_error;
use crate::store::{PgStore, get, instant_required};

/// Stores `delivery` in the inbox of account `account_id`, once per source and key, with
/// `client` (a connection, or the transaction it is part of).
pub(crate) async fn insert_delivery(
    client: &impl GenericClient,
    account_id: i64,
    source: &str,
    delivery: &Delivery,
    at: DateTime<Utc>,
) -> Result<Receipt, StoreError> {
    let hints = codec::encode_hints(&delivery.hints)?;
    let inserted = client
        .execute(
            "INSERT INTO ledger.inbox (account_id, source_name, key, hints, kind, received_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (account_id, source_name, key) DO NOTHING",
            &[
                &account_id,
                &source,
                &delivery.key,
                &hints,
                &delivery.kind,
                &at,
            ],
        )
        .await
        .map_err(pg_error("cannot store the webhook delivery"))?;
    Ok(if inserted == 1 {
        Receipt::New
    } else {
        Receipt::Duplicate
    })
}

#[async_trait]
impl Inbox for PgStore {
    async fn receive(
        &self,
        source: &str,
        delivery: &Delivery,
        at: DateTime<Utc>,
    ) -> Result<Receipt, StoreError> {
        let client = self.ledger.client().await?;
        insert_delivery(&**client, self.account_id, source, delivery, at).await
    }

    async fn pending(&self, source: &str) -> Result<Vec<Received>, StoreError> {
        let client = self.ledger.client().await?;
        client
            .query(
                "SELECT id, key, kind, hints, received_at FROM ledger.inbox
                 WHERE account_id = $1 AND source_name = $2 AND processed_at IS NULL
                 ORDER BY received_at, id",
                &[&self.account_id, &source],
            )
            .await
            .map_err(pg_error("cannot read the inbox"))?
            .iter()
            .map(|row| {
                let id: i64 = get(row, 0, Cell::new(codec::INBOX, "id", source))?;
                let key: String = get(row, 1, Cell::new(codec::INBOX, "key", source))?;
                let named = format!("delivery {key} of {source}");
                let cell = |column| Cell::new(codec::INBOX, column, &named);
                InboxRow {
                    id,
                    source_name: source.to_owned(),
                    kind: get(row, 2, cell("kind"))?,
                    hints: get(row, 3, cell("hints"))?,
                    received_at: instant_required(row, 4, cell("received_at"))?,
                    key,
                }
                .decode()
            })
            .collect()
    }

    async fn processed(&self, ids: &[i64], at: DateTime<Utc>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let client = self.ledger.client().await?;
        client
            .execute(
                "UPDATE ledger.inbox SET processed_at = $3
                 WHERE account_id = $1 AND id = ANY($2) AND processed_at IS NULL",
                &[&self.account_id, &ids, &at],
            )
            .await
            .map_err(pg_error("cannot mark webhook deliveries processed"))?;
        Ok(())
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let client = self.ledger.client().await?;
        client
            .execute(
                "DELETE FROM ledger.inbox
                 WHERE account_id = $1 AND processed_at IS NOT NULL AND processed_at < $2",
                &[&self.account_id, &before],
            )
            .await
            .map_err(pg_error("cannot prune the inbox"))
    }
}
