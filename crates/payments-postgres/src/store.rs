//! One account's ledger: [`PgStore`], a `Store` and a `Ledger`.

use crate::PgLedger;

/// One account's ledger in a [`PgLedger`].
#[derive(Clone, Debug)]
pub struct PgStore {
    #[allow(dead_code)]
    ledger: PgLedger,
    #[allow(dead_code)]
    account_id: i64,
}
