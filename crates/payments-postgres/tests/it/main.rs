//! The integration tests of payments-postgres, against a throwaway PostgreSQL cluster of their
//! own (skipped, saying so, where PostgreSQL is not installed).

mod accounts;
mod limits;
mod schema;
mod suite;
mod tls;

use payments_postgres::{MasterKey, NewAccount, PgLedger, SourceOptions};
use secrecy::SecretString;

/// Adds the account `name` with one source and returns its id.
async fn account(ledger: &PgLedger, name: &str) -> i64 {
    ledger
        .add_account(
            NewAccount {
                webhook_secrets: Vec::new(),
                name: name.to_owned(),
                sources: vec![(
                    "paypro".to_owned(),
                    SecretString::from("key"),
                    SourceOptions::default(),
                )],
            },
            &MasterKey::generate(),
        )
        .await
        .unwrap()
        .id
}

/// A plain connection to the database at `url`, for what a test reads or writes beside the
/// ledger (a row tampered with, a count).
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}
