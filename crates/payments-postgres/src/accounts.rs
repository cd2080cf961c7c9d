//! Accounts: each business whose ledger the database keeps, the sources it syncs, their options
//! and their sealed keys.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// An account as stored (its keys stay sealed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The database's id of the account.
    pub id: i64,
    /// Its unique name.
    pub name: String,
    /// A disabled account is kept but no worker syncs it.
    pub disabled: bool,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// The sources it syncs (`mkp`, `paypro`), each with its options, sorted by name.
    pub sources: Vec<(String, SourceOptions)>,
}

/// An account to add.
#[derive(Debug)]
pub struct NewAccount {
    /// Its unique name.
    pub name: String,
    /// The sources it syncs: `(source name, API key, options)`.
    pub sources: Vec<(String, SecretString, SourceOptions)>,
}

/// How one source of one account is synced. Every field is optional: absent ones take the
/// provider's and the engine's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceOptions {
    /// The provider's API (default: the provider's public URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Requests allowed per rate-limit window, when the key's contract differs from the
    /// provider's documented one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// The rate-limit window in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_window_secs: Option<u64>,
    /// How long after a run ends the next one is due, in seconds (default 300).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every_secs: Option<u64>,
}
