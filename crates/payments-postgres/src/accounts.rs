//! Accounts: each business whose ledger the database keeps, the sources it syncs, their options
//! and their sealed keys.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use payments_sync::StoreError;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio_postgres::Transaction;

use crate::keys::CHECK_TEXT;
use crate::{KeyError, MasterKey, PgLedger, pg_error};

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

/// What [`PgLedger::fingerprint_keys`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FingerprintedKeys {
    /// How many sources were given a fingerprint.
    pub given: usize,
    /// The sources (`account/source`) whose key did not open with the master key.
    pub unopened: Vec<String>,
}

/// An account to add.
#[derive(Debug)]
pub struct NewAccount {
    /// Its unique name.
    pub name: String,
    /// The sources it syncs: `(source name, API key, options)`.
    pub sources: Vec<(String, SecretString, SourceOptions)>,
    /// The providers' webhook secrets: `(source name, secret)`, each for one of `sources`;
    /// sealed with the master key like the keys. A source without one takes no signed webhook.
    pub webhook_secrets: Vec<(String, SecretString)>,
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

/// Why an account could not be added or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// The name is not in the safe set: 1 to 64 lowercase ASCII letters, digits, `-`, `_`
    /// and `.`, not starting with `.` or `-`. It holds the name's first characters, escaped.
    #[error(
        "`{0}` is not an account name: use 1 to 64 lowercase letters (a-z), digits, `-`, `_` or `.`, not starting with `.` or `-` (so that no two names look alike, and none reads as a flag or a path)"
    )]
    BadName(String),
    /// An account has no source, or the same source twice.
    #[error("{0}")]
    BadSources(String),
    /// An account with this name exists.
    #[error("there is already an account `{0}`; remove it first, or choose another name")]
    Duplicate(String),
    /// There is no account with this name (to change).
    #[error("there is no account `{0}`")]
    NoAccount(String),
    /// The account has no such source, and no key was given to add it with.
    #[error(
        "the account `{account}` has no source `{source_name}` (it has {has}); give its key to add it"
    )]
    NoSource {
        /// The account.
        account: String,
        /// The source asked for.
        source_name: String,
        /// The sources it has, joined with `and`.
        has: String,
    },
    /// The options a change would store were refused by the caller's check; it says why.
    #[error("{0}")]
    BadOptions(String),
    /// The master key does not fit the database.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The most characters of a refused name an error shows.
const NAME_SHOWN: usize = 24;

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with(['.', '-'])
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

impl Account {
    /// Refuses a name no account can have ([`AccountError::BadName`], its first characters
    /// shown): the one rule of adding and changing an account, to check a name before asking
    /// the database too.
    pub fn check_name(name: &str) -> Result<(), AccountError> {
        if valid_name(name) {
            Ok(())
        } else {
            Err(AccountError::BadName(shown_name(name)))
        }
    }
}

/// The first characters of a refused name, control characters and the like escaped.
fn shown_name(name: &str) -> String {
    let mut shown: String = name
        .chars()
        .take(NAME_SHOWN)
        .flat_map(char::escape_default)
        .collect();
    if name.chars().count() > NAME_SHOWN {
        shown.push('…');
    }
    shown
}

impl PgLedger {
    /// Fails with [`KeyError::WrongMasterKey`] unless `master` is the key this database's
    /// account keys are sealed with. A database without accounts yet takes any key.
    pub async fn check_master_key(&self, master: &MasterKey) -> Result<(), AccountError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT value FROM ledger.meta WHERE key = 'master_key_check'",
                &[],
            )
            .await
            .map_err(pg_error("cannot read the master key check"))?;
        let Some(row) = row else { return Ok(()) };
        opens_check(&row.get::<_, String>(0), master)
    }

    /// Gives a keyed fingerprint to every source that has none (one added before fingerprints
    /// were kept), so that one key, one lease holds for it too; says how many, and which
    /// sources' keys did not open with `master` (they are left as they were: one such source
    /// does not stop the others, and its own runs say why they fail). Workers call it as they
    /// start, with the master key they run with.
    pub async fn fingerprint_keys(
        &self,
        master: &MasterKey,
    ) -> Result<FingerprintedKeys, AccountError> {
        let context = "cannot fingerprint the sources' keys";
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT s.account_id, a.name, s.source_name, s.sealed_key
                 FROM ledger.account_sources s JOIN ledger.accounts a ON a.id = s.account_id
                 WHERE s.key_fingerprint IS NULL",
                &[],
            )
            .await
            .map_err(pg_error(context))?;
        let mut done = FingerprintedKeys::default();
        for row in rows {
            let (id, name, source): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
            let Ok(key) = master.open_api_key(&row.get::<_, Vec<u8>>(3), &name, &source) else {
                done.unopened
                    .push(format!("{}/{source}", shown_name(&name)));
                continue;
            };
            done.given += client
                .execute(
                    "UPDATE ledger.account_sources SET key_fingerprint = $3
                     WHERE account_id = $1 AND source_name = $2 AND key_fingerprint IS NULL",
                    &[&id, &source, &master.key_fingerprint(&source, &key)],
                )
                .await
                .map_err(pg_error(context))? as usize;
        }
        Ok(done)
    }

    /// Adds an account with its sources, their keys sealed with `master`, in one transaction.
    /// The first account fixes the database's master key.
    pub async fn add_account(
        &self,
        account: NewAccount,
        master: &MasterKey,
    ) -> Result<Account, AccountError> {
        Account::check_name(&account.name)?;
        if account.sources.is_empty() {
            return Err(AccountError::BadSources(format!(
                "the account `{}` has no source: give it at least one key",
                account.name
            )));
        }
        let mut names: Vec<&str> = account.sources.iter().map(|(n, _, _)| n.as_str()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(AccountError::BadSources(format!(
                "the source `{}` is given twice",
                pair[0]
            )));
        }
        if let Some((source, _)) = account
            .webhook_secrets
            .iter()
            .find(|(source, _)| !names.contains(&source.as_str()))
        {
            return Err(AccountError::BadSources(format!(
                "a webhook secret is given for `{source}`, but the account has no key for it"
            )));
        }
        self.check_master_key(master).await?;
        let context = "cannot add the account";
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error(context))?;
        let check = STANDARD.encode(master.seal(CHECK_TEXT, b"master key check"));
        transaction
            .execute(
                "INSERT INTO ledger.meta (key, value) VALUES ('master_key_check', $1)
                 ON CONFLICT (key) DO NOTHING",
                &[&check],
            )
            .await
            .map_err(pg_error(context))?;
        // Two first adds at once: the second's insert waits for the first's commit and does
        // nothing; the check it reads then is the first's, which its key must open.
        let stored: String = transaction
            .query_one(
                "SELECT value FROM ledger.meta WHERE key = 'master_key_check'",
                &[],
            )
            .await
            .map_err(pg_error(context))?
            .get(0);
        opens_check(&stored, master)?;
        let row = transaction
            .query_opt(
                "INSERT INTO ledger.accounts (name) VALUES ($1)
                 ON CONFLICT (name) DO NOTHING RETURNING id",
                &[&account.name],
            )
            .await
            .map_err(pg_error(context))?;
        let Some(row) = row else {
            return Err(AccountError::Duplicate(account.name));
        };
        let id: i64 = row.get(0);
        for (source, key, options) in &account.sources {
            let webhook_secret = account
                .webhook_secrets
                .iter()
                .find(|(name, _)| name == source)
                .map(|(_, secret)| secret);
            NewSource {
                account_id: id,
                account: &account.name,
                source,
                key,
                webhook_secret,
                options,
            }
            .insert(&transaction, master, context)
            .await?;
        }
        transaction.commit().await.map_err(pg_error(context))?;
        self.account(&account.name).await?.ok_or_else(|| {
            StoreError::backend(context, "the account vanished as it was added").into()
        })
    }

    /// Every account, sorted by name (never their keys).
    pub async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.read_accounts(None).await
    }

    /// The account named `name`.
    pub async fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        Ok(self.read_accounts(Some(name)).await?.pop())
    }

    async fn read_accounts(&self, name: Option<&str>) -> Result<Vec<Account>, StoreError> {
        let context = "cannot read the accounts";
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT a.id, a.name, a.disabled, a.created_at, s.source_name, s.options
                 FROM ledger.accounts a
                 LEFT JOIN ledger.account_sources s ON s.account_id = a.id
                 WHERE $1::text IS NULL OR a.name = $1
                 ORDER BY a.name, s.source_name",
                &[&name],
            )
            .await
            .map_err(pg_error(context))?;
        let mut accounts: Vec<Account> = Vec::new();
        for row in rows {
            let id: i64 = row.get(0);
            if accounts.last().is_none_or(|a| a.id != id) {
                accounts.push(Account {
                    id,
                    name: row.get(1),
                    disabled: row.get(2),
                    created_at: row.get(3),
                    sources: Vec::new(),
                });
            }
            if let Some(source) = row.get::<_, Option<String>>(4) {
                let options = read_options(&source, row.get(5))?;
                if let Some(account) = accounts.last_mut() {
                    account.sources.push((source, options));
                }
            }
        }
        Ok(accounts)
    }

    /// Seals every account's keys and webhook secrets anew with `master`, and its check, in
    /// one transaction: each is opened with `master` or its previous key
    /// ([`MasterKey::with_previous`]), so that workers running with both keys go on throughout.
    /// How many keys and secrets were sealed anew. Refused, changing nothing, when a sealed
    /// key opens with neither key (named), or when neither opens the database's check.
    pub async fn rotate_master_key(&self, master: &MasterKey) -> Result<usize, AccountError> {
        let context = "cannot rotate the master key";
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error(context))?;
        // The check first, under lock: two rotations (or a first add) wait for each other.
        let check = transaction
            .query_opt(
                "SELECT value FROM ledger.meta WHERE key = 'master_key_check' FOR UPDATE",
                &[],
            )
            .await
            .map_err(pg_error(context))?;
        if let Some(check) = &check {
            opens_check(&check.get::<_, String>(0), master)?;
        }
        let rows = transaction
            .query(
                "SELECT s.account_id, a.name, s.source_name, s.sealed_key, s.sealed_webhook_secret,
                        s.key_fingerprint
                 FROM ledger.account_sources s JOIN ledger.accounts a ON a.id = s.account_id
                 FOR UPDATE OF s",
                &[],
            )
            .await
            .map_err(pg_error(context))?;
        let mut sealed_anew = 0;
        for row in rows {
            let (id, name, source): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
            let key = master.open_api_key(&row.get::<_, Vec<u8>>(3), &name, &source)?;
            let secret = row
                .get::<_, Option<Vec<u8>>>(4)
                .map(|sealed| master.open_webhook_secret(&sealed, &name, &source))
                .transpose()?;
            let (sealed_key, fingerprint) = sealed_key(master, &key, &name, &source);
            let sealed_secret = secret
                .as_ref()
                .map(|secret| master.seal_webhook_secret(secret, &name, &source));
            sealed_anew += 1 + usize::from(secret.is_some());
            transaction
                .execute(
                    "UPDATE ledger.account_sources
                     SET sealed_key = $3, sealed_webhook_secret = $4, key_fingerprint = $5
                     WHERE account_id = $1 AND source_name = $2",
                    &[&id, &source, &sealed_key, &sealed_secret, &fingerprint],
                )
                .await
                .map_err(pg_error(context))?;
            // What was noted of the key's rate limit follows its new fingerprint (the first
            // source of the key moves it; its others find it moved).
            let before: Option<String> = row.get(5);
            if let Some(before) = before.filter(|before| *before != fingerprint) {
                transaction
                    .execute(
                        "UPDATE ledger.key_limits SET key_fingerprint = $2
                         WHERE key_fingerprint = $1
                           AND NOT EXISTS (SELECT 1 FROM ledger.key_limits WHERE key_fingerprint = $2)",
                        &[&before, &fingerprint],
                    )
                    .await
                    .map_err(pg_error(context))?;
            }
        }
        let check = STANDARD.encode(master.seal(CHECK_TEXT, b"master key check"));
        transaction
            .execute(
                "INSERT INTO ledger.meta (key, value) VALUES ('master_key_check', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&check],
            )
            .await
            .map_err(pg_error(context))?;
        transaction.commit().await.map_err(pg_error(context))?;
        Ok(sealed_anew)
    }

    /// Changes the source `source` of the account `account`, in one transaction, and returns
    /// its options before (`None` when the source was added) and after.
    ///
    /// - `options` makes the options to store from the stored ones (`None` for a source the
    ///   account lacks); it is where the caller checks them, as it checks an added account's,
    ///   on exactly what is stored. Its `Err` refuses the change, writing nothing
    ///   ([`AccountError::BadOptions`]).
    /// - `api_key`, when given, replaces the key: sealed with `master` for this account and
    ///   source, and fingerprinted, as [`PgLedger::add_account`] does. A source the account
    ///   lacks is added when its key is given ([`AccountError::NoSource`] otherwise).
    /// - `webhook_secret`: `None` keeps it, `Some(None)` removes it, `Some(Some(secret))` seals
    ///   `secret` in its place.
    ///
    /// A new key or secret is sealed only when `master` opens the database's check
    /// ([`KeyError::WrongMasterKey`]), under a share lock on it, so that a rotation seals it
    /// anew too. The schedule, by the database's clock: a new key or base URL makes the source
    /// due now (a source that failed with the old ones is not left to its backoff); a new
    /// `every_secs` makes it due at the latest that long from now (a shorter schedule does not
    /// wait out the longer one; a longer one applies from the next run on).
    ///
    /// A source leased while it changes: the change waits for no run, and no run for it longer
    /// than the change's transaction. The running worker goes on with the options and the key
    /// it read when it leased the source, and notes what it saw of the rate limit under the
    /// key it leased; its release keeps the due time set here when that is sooner than its
    /// schedule's, so the next run, which reads the new options and key, is not put off.
    /// Meanwhile one key, one lease compares the new key's fingerprint: the old key's other
    /// sources may be leased while the run that still uses it goes on.
    pub async fn update_source<F>(
        &self,
        account: &str,
        source: &str,
        options: F,
        api_key: Option<&SecretString>,
        webhook_secret: Option<Option<&SecretString>>,
        master: &MasterKey,
    ) -> Result<(Option<SourceOptions>, SourceOptions), AccountError>
    where
        F: FnOnce(Option<&SourceOptions>) -> Result<SourceOptions, String> + Send,
    {
        // No name rule here: an account named before the rule existed is changed by its name
        // as stored; a name that is no account's is shown escaped and cut.
        let context = "cannot change the account";
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error(context))?;
        if api_key.is_some() || matches!(webhook_secret, Some(Some(_))) {
            // A share lock: a rotation (which takes it for update) seals this key anew after
            // this commits, or this waits for the rotation and reads the check it wrote.
            let check = transaction
                .query_opt(
                    "SELECT value FROM ledger.meta WHERE key = 'master_key_check' FOR SHARE",
                    &[],
                )
                .await
                .map_err(pg_error(context))?;
            if let Some(check) = check {
                opens_check(&check.get::<_, String>(0), master)?;
            }
        }
        let Some(row) = transaction
            .query_opt(
                "SELECT id FROM ledger.accounts WHERE name = $1",
                &[&account],
            )
            .await
            .map_err(pg_error(context))?
        else {
            return Err(AccountError::NoAccount(shown_name(account)));
        };
        let id: i64 = row.get(0);
        let stored = transaction
            .query_opt(
                "SELECT options FROM ledger.account_sources
                 WHERE account_id = $1 AND source_name = $2 FOR UPDATE",
                &[&id, &source],
            )
            .await
            .map_err(pg_error(context))?;
        let Some(stored) = stored else {
            let Some(key) = api_key else {
                let has: Vec<String> = transaction
                    .query(
                        "SELECT source_name FROM ledger.account_sources
                         WHERE account_id = $1 ORDER BY source_name",
                        &[&id],
                    )
                    .await
                    .map_err(pg_error(context))?
                    .iter()
                    .map(|row| row.get(0))
                    .collect();
                return Err(AccountError::NoSource {
                    account: shown_name(account),
                    source_name: source.to_owned(),
                    has: if has.is_empty() {
                        "none".to_owned()
                    } else {
                        has.join(" and ")
                    },
                });
            };
            let after = options(None).map_err(AccountError::BadOptions)?;
            NewSource {
                account_id: id,
                account,
                source,
                key,
                webhook_secret: webhook_secret.flatten(),
                options: &after,
            }
            .insert(&transaction, master, context)
            .await?;
            transaction.commit().await.map_err(pg_error(context))?;
            return Ok((None, after));
        };
        let before = read_options(source, stored.get(0))?;
        let after = options(Some(&before)).map_err(AccountError::BadOptions)?;
        let json = serde_json::to_value(&after).map_err(|e| StoreError::backend(context, e))?;
        let (sealed, fingerprint) = api_key
            .map(|key| sealed_key(master, key, account, source))
            .unzip();
        let sealed_secret = webhook_secret
            .flatten()
            .map(|secret| master.seal_webhook_secret(secret, account, source));
        let due_now = api_key.is_some() || after.base_url != before.base_url;
        let every = (after.every_secs != before.every_secs)
            .then_some(after.every_secs)
            .flatten()
            .map(|secs| secs as f64);
        transaction
            .execute(
                "UPDATE ledger.account_sources
                 SET options = $3,
                     sealed_key = COALESCE($4, sealed_key),
                     key_fingerprint = COALESCE($5, key_fingerprint),
                     sealed_webhook_secret =
                         CASE WHEN $6 THEN $7 ELSE sealed_webhook_secret END,
                     -- The time the change asks for (LEAST passes over the NULLs of what
                     -- did not change), when sooner; a leased run's past due time gives way
                     -- to it, so that its release sees the change (PgLedger::release_hinted).
                     next_run_at = CASE
                         WHEN NOT $8 AND $9::float8 IS NULL THEN next_run_at
                         WHEN lease_expires_at > now() AND next_run_at <= now()
                         THEN LEAST(CASE WHEN $8 THEN now() END, now() + make_interval(secs => $9))
                         ELSE LEAST(next_run_at, CASE WHEN $8 THEN now() END,
                                    now() + make_interval(secs => $9)) END
                 WHERE account_id = $1 AND source_name = $2",
                &[
                    &id,
                    &source,
                    &json,
                    &sealed,
                    &fingerprint,
                    &webhook_secret.is_some(),
                    &sealed_secret,
                    &due_now,
                    &every,
                ],
            )
            .await
            .map_err(pg_error(context))?;
        transaction.commit().await.map_err(pg_error(context))?;
        Ok((Some(before), after))
    }

    /// The other accounts whose source uses the same API key as a source of `name`, as
    /// `other/source`: they are never synced at once (one key, one lease), and `accounts add`
    /// warns of them.
    pub async fn sharing_keys(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT b.name, t.source_name
                 FROM ledger.account_sources s
                 JOIN ledger.accounts a ON a.id = s.account_id
                 JOIN ledger.account_sources t ON t.key_fingerprint = s.key_fingerprint
                 JOIN ledger.accounts b ON b.id = t.account_id
                 WHERE a.name = $1 AND b.id <> a.id
                 ORDER BY b.name, t.source_name",
                &[&name],
            )
            .await
            .map_err(pg_error("cannot read which accounts share a key"))?;
        Ok(rows
            .iter()
            .map(|row| format!("{}/{}", row.get::<_, String>(0), row.get::<_, String>(1)))
            .collect())
    }

    /// Removes the account `name` and its whole ledger; false when there is none.
    pub async fn remove_account(&self, name: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let removed = client
            .execute("DELETE FROM ledger.accounts WHERE name = $1", &[&name])
            .await
            .map_err(pg_error("cannot remove the account"))?;
        Ok(removed > 0)
    }

    /// Disables (no worker syncs it) or enables the account `name`; false when there is none.
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE ledger.accounts SET disabled = $2 WHERE name = $1",
                &[&name, &disabled],
            )
            .await
            .map_err(pg_error("cannot change the account"))?;
        Ok(changed > 0)
    }
}

/// An API key sealed for one source of one account, with its keyed fingerprint: the one way
/// a key is written, by an add, an update and a rotation alike (one key, one lease compares
/// the fingerprints).
fn sealed_key(
    master: &MasterKey,
    key: &SecretString,
    account: &str,
    source: &str,
) -> (Vec<u8>, String) {
    (
        master.seal_api_key(key, account, source),
        master.key_fingerprint(source, key),
    )
}

/// A source to add to an account: its key (and webhook secret, when given) sealed for it.
struct NewSource<'a> {
    account_id: i64,
    account: &'a str,
    source: &'a str,
    key: &'a SecretString,
    webhook_secret: Option<&'a SecretString>,
    options: &'a SourceOptions,
}

impl NewSource<'_> {
    /// Inserts the source in `transaction`, due at once.
    async fn insert(
        &self,
        transaction: &Transaction<'_>,
        master: &MasterKey,
        context: &str,
    ) -> Result<(), AccountError> {
        let (sealed, fingerprint) = sealed_key(master, self.key, self.account, self.source);
        let sealed_secret = self
            .webhook_secret
            .map(|secret| master.seal_webhook_secret(secret, self.account, self.source));
        let options =
            serde_json::to_value(self.options).map_err(|e| StoreError::backend(context, e))?;
        transaction
            .execute(
                "INSERT INTO ledger.account_sources
                     (account_id, source_name, options, sealed_key, sealed_webhook_secret,
                      key_fingerprint)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &self.account_id,
                    &self.source,
                    &options,
                    &sealed,
                    &sealed_secret,
                    &fingerprint,
                ],
            )
            .await
            .map_err(pg_error(context))?;
        Ok(())
    }
}

/// Whether `master` opens the stored master key check `text`.
fn opens_check(text: &str, master: &MasterKey) -> Result<(), AccountError> {
    let sealed = STANDARD.decode(text).unwrap_or_default();
    match master.open(&sealed, b"master key check") {
        Some(opened) if opened == CHECK_TEXT => Ok(()),
        _ => Err(KeyError::WrongMasterKey.into()),
    }
}

/// The options stored for `source`, read back: none stored are the defaults, and options that do
/// not read back (a hand edit, a newer version's format) are a named error, never the defaults
/// (which would send the key to the provider's public URL, paced by its documented limit).
pub(crate) fn read_options(
    source: &str,
    stored: Option<serde_json::Value>,
) -> Result<SourceOptions, StoreError> {
    stored
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| StoreError::Corrupt {
            what: format!("the options of {source}"),
            detail: format!("{e}; correct them in ledger.account_sources, or remove the source"),
        })
        .map(Option::unwrap_or_default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_of_the_safe_set_and_a_refused_one_is_shown_short() {
        for good in ["acme", "acme-bv", "shop_2", "a.b", "7", &"n".repeat(64)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "--x",
            ".a",
            "Acme",
            "асме",
            "ａｃｍｅ",
            "a b",
            &"n".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        let shown = shown_name(&format!("\u{1b}[2J{}", "x".repeat(10_000)));
        assert!(
            shown.starts_with("\\u{1b}[2J") && shown.ends_with('…'),
            "{shown}"
        );
        assert!(shown.len() < 60, "{shown}");
    }
}
