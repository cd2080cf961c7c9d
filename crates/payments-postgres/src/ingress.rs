//! The fleet's ingress: any worker takes any account's verified webhook delivery, stores it in
//! the account's inbox, marks the account-source hinted and wakes the fleet with
//! `NOTIFY payments_hints`, all in one transaction; the lease holder reads it. Also the webhook
//! secrets, opened for verifying, and the dedicated connection that listens for hints.

use chrono::Utc;
use futures::StreamExt;
use payments_model::Delivery;
use payments_sync::{Receipt, StoreError};
use secrecy::SecretString;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use crate::inbox::insert_delivery;
use crate::{KeyError, MasterKey, PgLedger, pg_error};

/// The channel on which a stored delivery wakes the fleet; the payload is the account's id.
pub const HINTS_CHANNEL: &str = "payments_hints";

/// Why a delivery could not be taken, or a webhook secret read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// No account has that name, or it has no such source (answer as a bad signature is).
    #[error("no account `{account}` with the source `{source_name}`")]
    Unknown {
        /// The account's name as the route gave it.
        account: String,
        /// The source.
        source_name: String,
    },
    /// The sealed secret does not open with the master key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a worker's read of an account-source's inbox saw, for [`PgLedger::release_hinted`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HintsSeen {
    /// The ids of every pending delivery the read saw (answered or deferred).
    pub pending: Vec<i64>,
    /// How long after the release, by the database's clock, the deliveries it deferred are
    /// to be read (`None`: it deferred none).
    pub again_in: Option<std::time::Duration>,
}

impl PgLedger {
    /// Takes a verified delivery for the source `source` of the account named `account`: in
    /// one transaction, stores it in the account's inbox (once per source and key), and, when
    /// it is new, sets the account-source's `hinted_at` to the database's clock and notifies
    /// [`HINTS_CHANNEL`]. Answer the provider 2xx only once this returns `Ok`.
    pub async fn receive_delivery(
        &self,
        account: &str,
        source: &str,
        delivery: &Delivery,
    ) -> Result<Receipt, DeliveryError> {
        let context = "cannot store the webhook delivery";
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error(context))?;
        let row = transaction
            .query_opt(
                "SELECT s.account_id FROM ledger.account_sources s
                 JOIN ledger.accounts a ON a.id = s.account_id
                 WHERE a.name = $1 AND s.source_name = $2",
                &[&account, &source],
            )
            .await
            .map_err(pg_error(context))?;
        let Some(row) = row else {
            return Err(DeliveryError::Unknown {
                account: account.to_owned(),
                source_name: source.to_owned(),
            });
        };
        let account_id: i64 = row.get(0);
        let receipt =
            insert_delivery(&*transaction, account_id, source, delivery, Utc::now()).await?;
        if receipt == Receipt::New {
            // The clock as this statement runs, late in the transaction: a release that reads
            // the inbox after this row is locked sees the delivery.
            transaction
                .execute(
                    "UPDATE ledger.account_sources SET hinted_at = clock_timestamp()
                     WHERE account_id = $1 AND source_name = $2",
                    &[&account_id, &source],
                )
                .await
                .map_err(pg_error(context))?;
            transaction
                .execute(
                    "SELECT pg_notify($1, $2)",
                    &[&HINTS_CHANNEL, &account_id.to_string()],
                )
                .await
                .map_err(pg_error(context))?;
        }
        transaction.commit().await.map_err(pg_error(context))?;
        Ok(receipt)
    }

    /// The webhook secret of the source `source` of the account named `account`, opened with
    /// `master`; `None` when it has none. An unknown account or source is
    /// [`DeliveryError::Unknown`].
    pub async fn webhook_secret(
        &self,
        account: &str,
        source: &str,
        master: &MasterKey,
    ) -> Result<Option<SecretString>, DeliveryError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT s.sealed_webhook_secret FROM ledger.account_sources s
                 JOIN ledger.accounts a ON a.id = s.account_id
                 WHERE a.name = $1 AND s.source_name = $2",
                &[&account, &source],
            )
            .await
            .map_err(pg_error("cannot read the webhook secret"))?;
        let Some(row) = row else {
            return Err(DeliveryError::Unknown {
                account: account.to_owned(),
                source_name: source.to_owned(),
            });
        };
        let sealed: Option<Vec<u8>> = row.get(0);
        Ok(sealed
            .map(|sealed| master.open_webhook_secret(&sealed, account, source))
            .transpose()?)
    }

    /// Whether the database answers now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(pg_error("the database does not answer"))?;
        Ok(())
    }

    /// A dedicated connection (outside the pool) that listens on [`HINTS_CHANNEL`].
    pub async fn listen_hints(&self) -> Result<HintListener, StoreError> {
        let context = format!("cannot listen for hints on {}", self.name);
        let (client, mut connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(pg_error(&context))?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(notification)) => {
                        if sender.send(notification.payload().to_owned()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // The connection dropped: the listener ends, and its owner listens again.
                    Err(_) => return,
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {HINTS_CHANNEL}"))
            .await
            .map_err(pg_error(&context))?;
        Ok(HintListener {
            _client: client,
            receiver,
            driver,
        })
    }
}

/// A connection listening on [`HINTS_CHANNEL`]; dropping it closes the connection.
pub struct HintListener {
    _client: tokio_postgres::Client,
    receiver: mpsc::UnboundedReceiver<String>,
    driver: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for HintListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HintListener").finish_non_exhaustive()
    }
}

impl HintListener {
    /// The next notification's payload (an account's id), `None` once the connection dropped
    /// (listen again: notifications sent meanwhile are lost, the hinted rows are not).
    pub async fn next(&mut self) -> Option<String> {
        self.receiver.recv().await
    }
}

impl Drop for HintListener {
    fn drop(&mut self) {
        self.driver.abort();
    }
}
