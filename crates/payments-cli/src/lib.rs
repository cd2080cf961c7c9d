//! The `payments` command: keeps one exact ledger of MijnKlantportaal (MKP) payment links and PayPro
//! payments in a SQLite file, and exports it as CSV or NDJSON.
//!
//! Run `payments --help`, or `payments demo` to see it work without a key or a network.
//!
//! `demo` and `sandbox` come with the default `sandbox` feature; built with
//! `--no-default-features`, the binary is the production tool alone (`sync`, `export`, `status`)
//! and does not link the sandbox server.
//!
//! This library is the binary's body, so that `cargo xtask man` can read the same command
//! definition the binary parses ([`command`]); its only other item is [`main`].
#![forbid(unsafe_code)]

mod accounts;
mod check;
mod completions;
#[cfg(feature = "sandbox")]
mod demo;
mod duration;
mod export;
mod logs;
mod outcome;
mod output;
mod providers;
mod quarantine;
mod report;
#[cfg(feature = "sandbox")]
mod sandbox;
mod serve;
mod show;
mod statement;
mod status;
mod sync;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::outcome::{CliError, Exit};

#[cfg(feature = "sandbox")]
const AFTER_HELP: &str = "\
Exit codes: 0 done; 1 failed (nothing committed past the last good page);
2 usage or configuration error; 3 done, but some records were quarantined
(see `payments status`).

Start with `payments demo`: it needs no key and no network.";

#[cfg(not(feature = "sandbox"))]
const AFTER_HELP: &str = "\
Exit codes: 0 done; 1 failed (nothing committed past the last good page);
2 usage or configuration error; 3 done, but some records were quarantined
(see `payments status`).";

/// Keeps one exact, up-to-date ledger of MijnKlantportaal and PayPro payments.
#[derive(Debug, Parser)]
#[command(name = "payments", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    output: output::OutputArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    Sync(sync::SyncArgs),
    Serve(serve::ServeArgs),
    Export(export::ExportArgs),
    Statement(statement::StatementArgs),
    Report(report::ReportArgs),
    Status(status::StatusArgs),
    Show(show::ShowArgs),
    Quarantine(quarantine::QuarantineArgs),
    Check(check::CheckArgs),
    #[cfg(feature = "sandbox")]
    Demo(demo::DemoArgs),
    #[cfg(feature = "sandbox")]
    Sandbox(sandbox::SandboxArgs),
    Accounts(accounts::AccountsArgs),
    Worker(worker::WorkerArgs),
    Completions(completions::CompletionsArgs),
}

/// Where the ledger lives.
#[derive(Debug, clap::Args)]
struct DbArgs {
    /// The SQLite database file.
    #[arg(
        long,
        env = "PAYMENTS_DB",
        default_value = "payments.db",
        value_name = "PATH"
    )]
    db: PathBuf,
}

impl DbArgs {
    /// Opens an existing ledger read-only (export, show and status never create, migrate or write
    /// one, and refuse a file that is not a ledger).
    fn open_existing(&self) -> Result<payments_sqlite::SqliteStore, CliError> {
        if !self.db.exists() {
            return Err(CliError::config(format!(
                "there is no database at {}; run `payments sync` first, or point --db (or PAYMENTS_DB) at your ledger",
                self.db.display()
            )));
        }
        Ok(payments_sqlite::SqliteStore::open_read_only(&self.db)?)
    }

    fn open(&self) -> Result<payments_sqlite::SqliteStore, CliError> {
        payments_sqlite::SqliteStore::open(&self.db).map_err(|e| {
            CliError::config(format!(
                "{e}; check that --db (or PAYMENTS_DB) names a payments database you can write"
            ))
        })
    }
}

/// Which ledger a reading command reads: a SQLite file (the default), or one account of a
/// PostgreSQL ledger kept by `payments worker`.
#[derive(Debug, clap::Args)]
struct LedgerArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Read one account of a PostgreSQL ledger instead of a SQLite file:
    /// postgresql://user:password@host:port/dbname, with --account (prefer the variable: flags
    /// show in the process list).
    #[arg(
        long,
        env = "PAYMENTS_POSTGRES",
        hide_env_values = true,
        value_name = "URL"
    )]
    postgres: Option<String>,
    /// The account to read in the PostgreSQL ledger (`payments accounts list` lists them).
    #[arg(long, value_name = "NAME")]
    account: Option<String>,
}

/// Whether `--long` was given on the command line (not taken from its variable).
fn on_the_command_line(long: &str) -> bool {
    let with_value = format!("{long}=");
    std::env::args_os().skip(1).any(|arg| {
        arg.to_str()
            .is_some_and(|arg| arg == long || arg.starts_with(&with_value))
    })
}

impl LedgerArgs {
    /// The PostgreSQL ledger to read, if any. A flag beats a variable: `--db` given with
    /// PAYMENTS_POSTGRES set reads the file (and `--postgres` with PAYMENTS_DB set the
    /// database); given both flags, the PostgreSQL ledger is read, and said.
    fn postgres(&self) -> Option<&str> {
        let url = self.postgres.as_deref()?;
        match (
            on_the_command_line("--postgres"),
            on_the_command_line("--db"),
        ) {
            (false, true) => None,
            (true, true) => {
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| {
                    eprintln!(
                        "note: both --db and --postgres are given; reading the PostgreSQL ledger"
                    );
                });
                Some(url)
            }
            _ => Some(url),
        }
    }

    /// Opens the ledger to read, refusing what is not one (never creating or migrating it).
    async fn open_existing(&self) -> Result<Box<dyn payments_sync::Ledger>, CliError> {
        match (self.postgres(), &self.account) {
            (Some(url), Some(name)) => Ok(Box::new(open_account(url, name).await?)),
            (None, None) => Ok(Box::new(self.db.open_existing()?)),
            (postgres, _) => Err(lone_flag(postgres.is_some())),
        }
    }
}

/// The error of `--postgres` without `--account` (`postgres`), or of `--account` alone.
fn lone_flag(postgres: bool) -> CliError {
    CliError::config(if postgres {
        "--postgres needs --account NAME, the account to read; `payments accounts list` lists them"
    } else {
        "--account names an account of a PostgreSQL ledger; give its database with --postgres URL (or PAYMENTS_POSTGRES)"
    })
}

/// A ledger with its books: what `statement` and `report` read, and where `statement`
/// records the statements it issues.
trait BooksLedger: payments_sync::Ledger + payments_sync::Books {}

impl<T: payments_sync::Ledger + payments_sync::Books> BooksLedger for T {}

/// The ledger `statement` and `report` use: as [`LedgerArgs`], but opened to record the
/// statements issued (a SQLite ledger older than its books is upgraded).
#[derive(Debug, clap::Args)]
struct BooksLedgerArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
}

impl BooksLedgerArgs {
    async fn open(&self) -> Result<Box<dyn BooksLedger>, CliError> {
        let ledger = &self.ledger;
        match (ledger.postgres(), &ledger.account) {
            (Some(url), Some(name)) => Ok(Box::new(open_account(url, name).await?)),
            (None, None) => {
                if !ledger.db.db.exists() {
                    return Err(CliError::config(format!(
                        "there is no database at {}; run `payments sync` first, or point --db (or PAYMENTS_DB) at your ledger",
                        ledger.db.db.display()
                    )));
                }
                Ok(Box::new(ledger.db.open()?))
            }
            (postgres, _) => Err(lone_flag(postgres.is_some())),
        }
    }
}

/// The account `name` of the PostgreSQL ledger at `url`, to read.
async fn open_account(url: &str, name: &str) -> Result<payments_postgres::PgStore, CliError> {
    let ledger = payments_postgres::PgLedger::open_existing(url)
        .await
        .map_err(|e| CliError::config(format!("{e}; check --postgres (or PAYMENTS_POSTGRES)")))?;
    let account = ledger.account(name).await?.ok_or_else(|| {
        CliError::config(format!(
            "{} has no account `{}`; `payments accounts list` lists them",
            ledger.name(),
            outcome::printable(name)
        ))
    })?;
    Ok(ledger.store(account.id, &account.name))
}

/// The command line `payments` parses, for generating its man page and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the `payments` command with the process's arguments and environment.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo explains what it meets (unknown status words, a quarantined record) in its own
    // words; its log shows errors only, unless RUST_LOG asks for more.
    #[cfg(feature = "sandbox")]
    let quiet = matches!(cli.command, Command::Demo(_));
    #[cfg(not(feature = "sandbox"))]
    let quiet = false;
    cli.output.apply();
    init_logging(&cli.output, if quiet { "error" } else { "warn" });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Failed as u8);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sync(args) => sync::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Export(args) => export::run(args).await,
            Command::Statement(args) => statement::run(args).await,
            Command::Report(args) => report::run(args).await,
            Command::Status(args) => status::run(args).await,
            Command::Show(args) => show::run(args).await,
            Command::Quarantine(args) => quarantine::run(args).await,
            Command::Check(args) => check::run(args).await,
            #[cfg(feature = "sandbox")]
            Command::Demo(args) => demo::run(args).await,
            #[cfg(feature = "sandbox")]
            Command::Sandbox(args) => sandbox::run(args).await,
            Command::Accounts(args) => accounts::run(args).await,
            Command::Worker(args) => worker::run(args).await,
            Command::Completions(args) => completions::run(args),
        }
    });
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(error) => {
            eprintln!("error: {}", outcome::printable(&error.message));
            ExitCode::from(error.exit as u8)
        }
    }
}

/// Warnings (unknown status words, unrecorded runs) go to stderr, above the progress display
/// while there is one; `-v` (or `RUST_LOG`, `RUST_LOG=payments_sync=debug`) shows more, `-q`
/// errors only.
fn init_logging(output: &output::OutputArgs, default_level: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_new(output.log_filter(default_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // A retry is counted in the progress display's line while one is drawn: its warning would
    // scroll the screen.
    let retries_shown = tracing_subscriber::filter::dynamic_filter_fn(|meta, _| {
        !(meta.target() == payments_sync::RETRY_TARGET && logs::drawing())
    });
    let lines = tracing_subscriber::fmt::layer()
        .fmt_fields(logs::EscapedFields)
        .with_writer(logs::LogLine::default)
        .with_ansi(output.colour(std::io::stderr().is_terminal()))
        .with_target(false)
        .with_filter(filter)
        .with_filter(retries_shown);
    tracing_subscriber::registry().with(lines).init();
}
