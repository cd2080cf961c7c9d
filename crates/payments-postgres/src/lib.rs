//! The PostgreSQL [`Store`](payments_sync::Store) of `payments-sync`, for many accounts in one
//! database: every ledger row is keyed by account, each page is one transaction with its
//! checkpoint, every version of a payment is kept, and the database is also the queue that a
//! fleet of workers leases account-sources from (`FOR UPDATE SKIP LOCKED`), so nothing
//! home-made stands beside it.
//!
//! - [`PgLedger`] is one database: it migrates the schema (`ledger.*`), keeps the accounts and
//!   their sealed keys, and hands out leases.
//! - [`PgStore`] is one account's ledger in it: a [`Store`](payments_sync::Store) for a sync
//!   and a [`Ledger`](payments_sync::Ledger) for reading back. A store made from a [`Lease`]
//!   commits only while its worker still holds the lease.
#![forbid(unsafe_code)]

mod accounts;
mod books;
mod inbox;
mod ingress;
mod keys;
mod lease;
mod schedule;
mod store;
mod tls;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use payments_sync::{StoreError, codec};
use tokio_postgres::GenericClient;

pub use accounts::{Account, AccountError, FingerprintedKeys, NewAccount, SourceOptions};
pub use ingress::{DeliveryError, HINTS_CHANNEL, HintListener, HintsSeen};
pub use keys::{KeyError, MASTER_KEY_VARIABLE, MasterKey, PREVIOUS_MASTER_KEY_VARIABLE};
pub use lease::{Lease, RUNS_KEPT_DAYS};
pub use schedule::{Schedule, Scheduled};
pub use store::PgStore;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migration `n` brings a database from version `n` to `n + 1`; released ones never change.
const MIGRATIONS: [&str; 5] = [
    include_str!("schema-1.sql"),
    include_str!("schema-2.sql"),
    include_str!("schema-3.sql"),
    include_str!("schema-4.sql"),
    include_str!("schema-5.sql"),
];

/// The advisory lock key under which migrations run, so that workers starting together migrate
/// once ("PAYL").
const MIGRATION_LOCK: i64 = 0x5041_594C;

/// A payments ledger in one PostgreSQL database: a pool of connections to it.
#[derive(Clone)]
pub struct PgLedger {
    pool: Pool,
    /// The database as `postgresql://user@host:port/dbname`, without the password.
    name: String,
    /// How to connect, for the dedicated connection that listens for hints.
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// The URL's `sslmode`, or `prefer`.
    ssl_mode: &'static str,
}

impl std::fmt::Debug for PgLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLedger")
            .field("database", &self.name)
            .finish_non_exhaustive()
    }
}

/// Classifies a PostgreSQL failure as a backend failure while doing `context`.
pub(crate) fn pg_error(context: &str) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
    move |error| StoreError::backend(context, PgMessage::of(&error))
}

/// A PostgreSQL error in PostgreSQL's own words, with its SQLSTATE (tokio-postgres says only
/// "db error" for an error the server sent), or the client's error with its causes.
#[derive(Debug)]
struct PgMessage(String);

impl PgMessage {
    fn of(error: &tokio_postgres::Error) -> PgMessage {
        if let Some(db) = error.as_db_error() {
            let mut said = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                said.push_str(&format!("; {detail}"));
            }
            if let Some(hint) = db.hint() {
                said.push_str(&format!("; hint: {hint}"));
            }
            return PgMessage(said);
        }
        PgMessage(with_causes(error))
    }
}

/// `error` and its causes, each said once: `a: b: c` (a wrapper that already says its cause,
/// as the pool's errors do, does not repeat it).
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut said = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let words = match error.downcast_ref::<tokio_postgres::Error>() {
            Some(pg) if pg.as_db_error().is_some() => PgMessage::of(pg).0,
            _ => error.to_string(),
        };
        if !said.contains(&words) {
            said.push_str(&format!(": {words}"));
        }
        cause = error.source();
    }
    said
}

impl std::fmt::Display for PgMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PgMessage {}

impl PgLedger {
    /// Connects to the database at `url` (`postgresql://user:password@host:port/dbname`) with a
    /// pool of up to `max_connections`, and brings its schema up to date. Safe to call from
    /// many workers at once: one migrates, the others wait for it.
    pub async fn connect(url: &str, max_connections: usize) -> Result<PgLedger, StoreError> {
        let ledger = PgLedger::pool(url, max_connections)?;
        ledger.migrate().await?;
        Ok(ledger)
    }

    /// Connects to an existing ledger for reading it back (`status`, `export`, `show`): nothing
    /// is created or migrated, and a database without an up-to-date ledger is refused.
    pub async fn open_existing(url: &str) -> Result<PgLedger, StoreError> {
        let ledger = PgLedger::pool(url, 2)?;
        let version = ledger.schema_version().await?;
        match version {
            None => Err(StoreError::NotALedger {
                ledger: ledger.name.clone(),
                detail: "it has no `ledger` schema; start a worker (`payments worker`) or add an account (`payments accounts add`) to create it".to_owned(),
            }),
            Some(found) if found > SCHEMA_VERSION => Err(StoreError::NewerSchema {
                ledger: ledger.name.clone(),
                found,
                supported: SCHEMA_VERSION,
            }),
            Some(found) if found < SCHEMA_VERSION => Err(StoreError::NotALedger {
                ledger: ledger.name.clone(),
                detail: format!(
                    "it has schema version {found} of an older release; start a worker once to upgrade it to {SCHEMA_VERSION}"
                ),
            }),
            Some(_) => Ok(ledger),
        }
    }

    fn pool(url: &str, max_connections: usize) -> Result<PgLedger, StoreError> {
        let tls::Connection { config, tls, mode } = tls::connection(url)?;
        let name = describe(&config);
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .build()
            .map_err(|error| StoreError::backend(format!("cannot connect to {name}"), error))?;
        Ok(PgLedger {
            pool,
            name,
            config,
            tls,
            ssl_mode: mode,
        })
    }

    /// The database, without its password: `postgresql://user@host:port/dbname`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL's `sslmode` (`prefer` when it names none).
    pub fn ssl_mode(&self) -> &'static str {
        self.ssl_mode
    }

    /// Whether this connection to the database is encrypted (TLS), as the server sees it.
    pub async fn encrypted(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                &[],
            )
            .await
            .map_err(pg_error("cannot ask the database whether the connection is encrypted"))?;
        Ok(row.get(0))
    }

    /// Why the connection deserves a warning, if it does: it is not encrypted, though the URL
    /// did not ask for that (`sslmode=disable`) and the host is not this machine (`localhost`,
    /// a loopback address or a Unix socket), so `prefer` quietly fell back to plain text.
    pub async fn unencrypted_warning(&self) -> Result<Option<String>, StoreError> {
        // Local only when both say so: the address connected to (`hostaddr`, when given) is a
        // loopback one, and the host named (the name TLS is for) is this machine.
        let local = self
            .config
            .get_hostaddrs()
            .iter()
            .all(std::net::IpAddr::is_loopback)
            && self.config.get_hosts().iter().all(|host| match host {
                tokio_postgres::config::Host::Tcp(name) => {
                    name == "localhost"
                        || name
                            .trim_matches(['[', ']'])
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback())
                }
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(_) => true,
            });
        if self.ssl_mode == "disable" || local || self.encrypted().await? {
            return Ok(None);
        }
        Ok(Some(format!(
            "the connection to {} is not encrypted: the server offers no TLS and sslmode={} allows that; add sslmode=verify-full (or require) to the URL to refuse plain text",
            self.name, self.ssl_mode
        )))
    }

    /// A connection from the pool.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|error| {
            let said = with_causes(&error);
            let check = if said.contains("invalid peer certificate") {
                format!(
                    "the server's certificate is not trusted under sslmode={}: give the CA that signed it as sslrootcert=FILE, and with verify-full connect by the name the certificate is for",
                    self.ssl_mode
                )
            } else if said.contains("server does not support TLS") {
                format!(
                    "the server offers no TLS, which sslmode={} requires: turn ssl on there, or connect without TLS only on a trusted network",
                    self.ssl_mode
                )
            } else {
                "check that PostgreSQL runs there and the URL's user may connect".to_owned()
            };
            StoreError::backend(
                format!("cannot connect to {}; {check}", self.name),
                PgMessage(said),
            )
        })
    }

    /// The ledger's schema version, `None` when the database has no ledger.
    async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        let client = self.client().await?;
        stored_version(&**client).await
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let context = format!("cannot migrate the ledger in {}", self.name);
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error(&context))?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_error(&context))?;
        // No ledger yet: every migration applies.
        let version = stored_version(&*transaction).await?.unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                ledger: self.name.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            transaction
                .batch_execute(migration)
                .await
                .map_err(pg_error(&context))?;
            transaction
                .execute(
                    "INSERT INTO ledger.meta (key, value) VALUES ('schema_version', $1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&(index + 1).to_string()],
                )
                .await
                .map_err(pg_error(&context))?;
        }
        transaction.commit().await.map_err(pg_error(&context))
    }
}

/// The schema version a database's ledger has, `None` when it has none (no `ledger.meta`, or
/// no version in it yet).
async fn stored_version(client: &impl GenericClient) -> Result<Option<i64>, StoreError> {
    let context = "cannot read the ledger's schema version";
    let exists: bool = client
        .query_one("SELECT to_regclass('ledger.meta') IS NOT NULL", &[])
        .await
        .map_err(pg_error(context))?
        .try_get(0)
        .map_err(pg_error(context))?;
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT value FROM ledger.meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .map_err(pg_error(context))?;
    let Some(row) = row else { return Ok(None) };
    let text: String = row.try_get(0).map_err(pg_error(context))?;
    codec::read_schema_version(&text).map(Some)
}

/// `postgresql://user@host:port/dbname` of a connection config: never its password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgresql://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}
