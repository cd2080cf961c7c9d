//! `payments accounts`: the accounts of a PostgreSQL ledger, their sources and sealed keys.

use std::time::Duration;

use payments_fleet::{OptionsError, spec_of};
use payments_postgres::{
    AccountError, KeyError, MASTER_KEY_VARIABLE, MasterKey, NewAccount,
    PREVIOUS_MASTER_KEY_VARIABLE, PgLedger, SourceOptions,
};
use payments_sources::{Source, SpecError};
use secrecy::SecretString;
use serde_json::json;

use crate::duration::parse_duration;
use crate::outcome::{CliError, Exit, print_report, printable};

/// Manages the accounts of a PostgreSQL ledger that `payments worker` keeps current.
///
/// Each account is a business with its own sources and API keys. The keys are sealed in the
/// database with the master key in PAYMENTS_MASTER_KEY (`payments accounts master-key` makes
/// one); they are never printed. The webhook secrets in PAYPRO_WEBHOOK_SECRET and
/// MKP_WEBHOOK_SECRET, when set, are sealed beside the keys for `payments worker --listen`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct AccountsArgs {
    #[command(subcommand)]
    command: AccountsCommand,
}

const EXAMPLES: &str = r#"Examples:
  payments accounts master-key > master.key
  export PAYMENTS_POSTGRES=postgresql://payments@db.internal/ledgers
  export PAYMENTS_MASTER_KEY=$(cat master.key)
  MKP_API_KEY=... PAYPRO_API_KEY=... payments accounts add acme-bv
  payments accounts list
  payments accounts disable acme-bv"#;

#[derive(Debug, clap::Subcommand)]
enum AccountsCommand {
    /// Prints a new random master key, to keep in PAYMENTS_MASTER_KEY.
    MasterKey,
    /// Seals every account's keys anew with PAYMENTS_MASTER_KEY, in one transaction, opening
    /// them with it or with PAYMENTS_MASTER_KEY_PREVIOUS. To rotate: make a new key; run every
    /// worker with PAYMENTS_MASTER_KEY=new and PAYMENTS_MASTER_KEY_PREVIOUS=old; run this;
    /// then drop PAYMENTS_MASTER_KEY_PREVIOUS. No run fails on the way.
    RotateMasterKey(RotateArgs),
    /// Adds an account, with a source for each key variable that is set.
    Add(AddArgs),
    /// Lists the accounts and their sources (never their keys).
    List(ListArgs),
    /// Removes an account and its whole ledger (its payments, versions and runs). On a terminal
    /// it asks for the account's name first; otherwise it needs --yes.
    Remove(RemoveArgs),
    /// Disables an account: it is kept, but no worker syncs it.
    Disable(NameArgs),
    /// Enables a disabled account.
    Enable(NameArgs),
}

/// The database, from --postgres or PAYMENTS_POSTGRES.
#[derive(Debug, clap::Args)]
pub(crate) struct PostgresArgs {
    /// The PostgreSQL database: postgresql://user:password@host:port/dbname, with TLS as libpq
    /// reads it (?sslmode=verify-full&sslrootcert=ca.pem; prefer when absent). Prefer the
    /// variable: flags show in the process list.
    #[arg(
        long,
        env = "PAYMENTS_POSTGRES",
        hide_env_values = true,
        value_name = "URL"
    )]
    postgres: String,
}

impl PostgresArgs {
    /// Connects with a pool of `connections`, creating or upgrading the ledger's schema.
    pub(crate) async fn connect_with(&self, connections: usize) -> Result<PgLedger, CliError> {
        PgLedger::connect(&self.postgres, connections)
            .await
            .map_err(|e| CliError::config(format!("{e}; check --postgres (or PAYMENTS_POSTGRES)")))
    }

    async fn connect(&self) -> Result<PgLedger, CliError> {
        self.connect_with(2).await
    }
}

#[derive(Debug, clap::Args)]
struct AddArgs {
    #[command(flatten)]
    db: PostgresArgs,
    /// The account's name: 1 to 64 lowercase letters, digits, `-`, `_` or `.`, not starting
    /// with `.` or `-`.
    name: String,
    /// The environment variable holding the MKP API key (keys never go on the command line).
    #[arg(long, value_name = "VAR", default_value = "MKP_API_KEY")]
    mkp_key_env: String,
    /// The environment variable holding the PayPro API key.
    #[arg(long, value_name = "VAR", default_value = "PAYPRO_API_KEY")]
    paypro_key_env: String,
    /// The MKP API, when not MKP's public one (read from the variable `payments sync` reads).
    #[arg(long, env = "MKP_BASE_URL", value_name = "URL")]
    mkp_base_url: Option<String>,
    /// The PayPro API, when not PayPro's public one (its test environment, say; read from the
    /// variable `payments sync` reads).
    #[arg(long, env = "PAYPRO_BASE_URL", value_name = "URL")]
    paypro_base_url: Option<String>,
    /// MKP requests allowed per rate-limit window, when the key's contract differs from MKP's
    /// documented 60 per minute.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    mkp_rate_limit: Option<u32>,
    /// The MKP rate-limit window in seconds.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    mkp_rate_window: Option<u64>,
    /// How long after a run the account's sources are due again (90s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    every: Duration,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    db: PostgresArgs,
    /// Print one JSON object: `{"accounts": [{"name", "disabled", "created_at", "sources":
    /// [{"source", "base_url", "every_secs", …}]}]}`.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct NameArgs {
    #[command(flatten)]
    db: PostgresArgs,
    /// The account's name.
    name: String,
}

/// What `accounts rotate-master-key` takes.
#[derive(Debug, clap::Args)]
struct RotateArgs {
    #[command(flatten)]
    db: PostgresArgs,
}

/// What `accounts remove` takes.
#[derive(Debug, clap::Args)]
struct RemoveArgs {
    #[command(flatten)]
    account: NameArgs,
    /// Remove without asking (needed where there is no terminal to ask on).
    #[arg(long)]
    yes: bool,
}

/// Whether the removal of `name` is confirmed: `--yes`, or its name typed again on a terminal.
fn confirmed(name: &str, yes: bool) -> Result<bool, CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::config(format!(
            "`accounts remove {}` deletes the account's whole ledger; pass --yes to confirm (there is no terminal to ask on)",
            printable(name)
        )));
    }
    eprint!(
        "This deletes the account {} and its whole ledger (payments, versions, runs). Type its name to confirm: ",
        printable(name)
    );
    let _ = std::io::stderr().flush();
    let mut typed = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut typed)
        .map_err(|e| CliError::config(format!("cannot read the confirmation: {e}")))?;
    Ok(typed.trim() == name)
}

/// The master key from PAYMENTS_MASTER_KEY.
pub(crate) fn master_key() -> Result<MasterKey, CliError> {
    let text = std::env::var(MASTER_KEY_VARIABLE).map_err(|_| {
        CliError::config(format!(
            "{MASTER_KEY_VARIABLE} is not set: it holds the master key that seals the account keys; make one with `payments accounts master-key` and keep it safe"
        ))
    })?;
    let master = MasterKey::from_base64(&text).map_err(|e| CliError::config(e.to_string()))?;
    // During a rotation: what the previous key sealed still opens.
    match std::env::var(PREVIOUS_MASTER_KEY_VARIABLE) {
        Ok(previous) if !previous.trim().is_empty() => {
            let previous = MasterKey::from_base64(&previous).map_err(|_| {
                CliError::config(format!(
                    "{PREVIOUS_MASTER_KEY_VARIABLE} is not a master key (32 bytes in base64, 44 characters)"
                ))
            })?;
            Ok(master.with_previous(previous))
        }
        _ => Ok(master),
    }
}

fn account_error(error: AccountError) -> CliError {
    match error {
        AccountError::Store(error) => error.into(),
        AccountError::Key(KeyError::WrongMasterKey) | AccountError::Key(_) => {
            CliError::config(error.to_string())
        }
        other => CliError::config(other.to_string()),
    }
}

pub(crate) async fn run(args: AccountsArgs) -> Result<Exit, CliError> {
    match args.command {
        AccountsCommand::MasterKey => {
            println!("{}", MasterKey::generate().to_base64());
            eprintln!(
                "keep it in {MASTER_KEY_VARIABLE} for `payments accounts add` and `payments worker`, somewhere safe: without it the keys in the database cannot be opened, and every account's keys must be added again"
            );
            Ok(Exit::Done)
        }
        AccountsCommand::RotateMasterKey(args) => {
            let master = master_key()?;
            if !master.has_previous() {
                return Err(CliError::config(format!(
                    "set {PREVIOUS_MASTER_KEY_VARIABLE} to the master key the database uses now and {MASTER_KEY_VARIABLE} to the new one (from `payments accounts master-key`)"
                )));
            }
            let ledger = args.db.connect().await?;
            let sealed = ledger
                .rotate_master_key(&master)
                .await
                .map_err(account_error)?;
            println!(
                "sealed {sealed} key(s) and secret(s) anew with {MASTER_KEY_VARIABLE}; {PREVIOUS_MASTER_KEY_VARIABLE} can be dropped from every worker now"
            );
            Ok(Exit::Done)
        }
        AccountsCommand::Add(args) => add(args).await,
        AccountsCommand::List(args) => list(args).await,
        AccountsCommand::Remove(RemoveArgs { account: args, yes }) => {
            if !confirmed(&args.name, yes)? {
                eprintln!(
                    "not removed: the name typed was not {}",
                    printable(&args.name)
                );
                return Ok(Exit::Failed);
            }
            let ledger = args.db.connect().await?;
            if !ledger.remove_account(&args.name).await? {
                return Err(no_account(&ledger, &args.name));
            }
            println!(
                "removed the account {} and its ledger",
                printable(&args.name)
            );
            Ok(Exit::Done)
        }
        AccountsCommand::Disable(args) => set_disabled(args, true).await,
        AccountsCommand::Enable(args) => set_disabled(args, false).await,
    }
}

fn no_account(ledger: &PgLedger, name: &str) -> CliError {
    CliError::config(format!(
        "{} has no account `{}`; `payments accounts list` lists them",
        ledger.name(),
        printable(name)
    ))
}

async fn set_disabled(args: NameArgs, disabled: bool) -> Result<Exit, CliError> {
    let ledger = args.db.connect().await?;
    if !ledger.set_disabled(&args.name, disabled).await? {
        return Err(no_account(&ledger, &args.name));
    }
    println!(
        "{} the account {}",
        if disabled { "disabled" } else { "enabled" },
        printable(&args.name)
    );
    Ok(Exit::Done)
}

async fn add(args: AddArgs) -> Result<Exit, CliError> {
    let master = master_key()?;
    let key = |variable: &str| {
        std::env::var(variable)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(SecretString::from)
    };
    let every_secs = Some(args.every.as_secs());
    // Each provider's flags: its key's variable, its base URL and the flag that gave it, and
    // its rate limit.
    let providers = [
        (
            Source::Mkp,
            &args.mkp_key_env,
            &args.mkp_base_url,
            "--mkp-base-url",
            args.mkp_rate_limit,
            args.mkp_rate_window,
        ),
        (
            Source::PayPro,
            &args.paypro_key_env,
            &args.paypro_base_url,
            "--paypro-base-url",
            None,
            None,
        ),
    ];
    let mut sources = Vec::new();
    for (provider, key_env, base_url, base_url_flag, rate_limit, rate_window_secs) in providers {
        let Some(api_key) = key(key_env) else {
            continue;
        };
        let options = SourceOptions {
            base_url: base_url.clone(),
            rate_limit,
            rate_window_secs,
            every_secs,
        };
        // Stored as given; checked as the worker will read it, by the registry's one rule.
        let flag = |error: &OptionsError| match error {
            OptionsError::Spec(SpecError::ShortEvery { .. } | SpecError::Fraction { .. }) => {
                "--every"
            }
            OptionsError::Spec(
                SpecError::ZeroRateLimit { .. }
                | SpecError::ShortWindow { .. }
                | SpecError::PartialRateLimit { .. },
            ) => "--mkp-rate-limit",
            _ => base_url_flag,
        };
        // `every` as given: reading a stored one tolerates what older versions stored, a new
        // one keeps the rule.
        spec_of(provider.as_str(), &options)
            .and_then(|spec| Ok(spec.with_every(args.every).validate()?))
            .map_err(|e| CliError::config(format!("{}: {e}", flag(&e))))?;
        sources.push((provider.as_str().to_owned(), api_key, options));
    }
    if sources.is_empty() {
        return Err(CliError::config(format!(
            "no key is set: put the account's MKP key in {} and/or its PayPro key in {}",
            args.mkp_key_env, args.paypro_key_env
        )));
    }
    // The webhook secrets, from the environment alone as the keys are; sealed like them.
    let webhook_secrets: Vec<(String, SecretString)> = [
        (Source::Mkp, "MKP_WEBHOOK_SECRET"),
        (Source::PayPro, "PAYPRO_WEBHOOK_SECRET"),
    ]
    .into_iter()
    .filter_map(|(provider, variable)| Some((provider.as_str().to_owned(), key(variable)?)))
    .collect();
    let signed: Vec<String> = webhook_secrets.iter().map(|(s, _)| s.clone()).collect();
    let ledger = args.db.connect().await?;
    let account = ledger
        .add_account(
            NewAccount {
                name: args.name,
                sources,
                webhook_secrets,
            },
            &master,
        )
        .await
        .map_err(account_error)?;
    let names: Vec<&str> = account.sources.iter().map(|(s, _)| s.as_str()).collect();
    let webhooks = if signed.is_empty() {
        String::new()
    } else {
        format!(" (webhook secret sealed for {})", signed.join(" and "))
    };
    println!(
        "added the account {} with {}{webhooks}; a worker syncs it as soon as it is due",
        printable(&account.name),
        names.join(" and ")
    );
    let shared = ledger.sharing_keys(&account.name).await?;
    if !shared.is_empty() {
        eprintln!(
            "warning: a key of {} is also the key of {}: they are synced one at a time, so that the key's rate limit holds (is that the same business twice?)",
            printable(&account.name),
            printable(&shared.join(", "))
        );
    }
    Ok(Exit::Done)
}

async fn list(args: ListArgs) -> Result<Exit, CliError> {
    let ledger = args.db.connect().await?;
    let accounts = ledger.accounts().await?;
    let report = if args.json {
        let accounts: Vec<_> = accounts
            .iter()
            .map(|a| {
                json!({
                    "name": a.name,
                    "disabled": a.disabled,
                    "created_at": a.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "sources": a.sources.iter().map(|(source, options)| {
                        let mut entry = serde_json::to_value(options).unwrap_or_default();
                        entry["source"] = json!(source);
                        entry
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        format!("{}\n", json!({ "accounts": accounts }))
    } else if accounts.is_empty() {
        format!(
            "{} has no account; add one with `payments accounts add NAME`\n",
            ledger.name()
        )
    } else {
        let mut text = String::new();
        for account in &accounts {
            let sources: Vec<String> = account
                .sources
                .iter()
                .map(|(source, options)| match &options.base_url {
                    Some(url) => format!("{source} ({url})"),
                    None => source.clone(),
                })
                .collect();
            text.push_str(&format!(
                "{}{}: {}\n",
                printable(&account.name),
                if account.disabled { " (disabled)" } else { "" },
                printable(&sources.join(", "))
            ));
        }
        text
    };
    print_report(&report, "the accounts")?;
    Ok(Exit::Done)
}
