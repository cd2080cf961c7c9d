//! `payments accounts`: the accounts of a PostgreSQL ledger, their sources and sealed keys.

use std::time::Duration;

use payments_fleet::{OptionsError, spec_of};
use payments_postgres::{
    AccountError, KeyError, MASTER_KEY_VARIABLE, MasterKey, NewAccount,
    PREVIOUS_MASTER_KEY_VARIABLE, PgLedger, SourceOptions,
};
use payments_sources::{DEFAULT_EVERY, Source, SpecError, default_base_url};
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
  payments accounts update acme-bv --every 15m
  MKP_API_KEY=... payments accounts update acme-bv --source mkp --key
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
    /// Changes an account's sources: base URL, rate limit, schedule, key or webhook secret,
    /// each only when its flag is given (a new key or secret from its variable, never from the
    /// command line). Adds a source the account lacks with --source and --key.
    Update(UpdateArgs),
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
    #[command(flatten)]
    keys: KeyVariables,
    /// The MKP API, when not MKP's public one (read from the variable `payments sync` reads).
    #[arg(long, env = "MKP_BASE_URL", value_name = "URL")]
    mkp_base_url: Option<String>,
    /// The PayPro API, when not PayPro's public one (its test environment, say; read from the
    /// variable `payments sync` reads).
    #[arg(long, env = "PAYPRO_BASE_URL", value_name = "URL")]
    paypro_base_url: Option<String>,
    #[command(flatten)]
    rate: RateLimitArgs,
    /// How long after a run the account's sources are due again (90s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    every: Duration,
}

// The flags `accounts add` and `accounts update` share, named and read alike.

/// The variables the API keys are read from.
#[derive(Debug, clap::Args)]
struct KeyVariables {
    /// The environment variable holding the MKP API key (keys never go on the command line).
    #[arg(long, value_name = "VAR", default_value = "MKP_API_KEY")]
    mkp_key_env: String,
    /// The environment variable holding the PayPro API key.
    #[arg(long, value_name = "VAR", default_value = "PAYPRO_API_KEY")]
    paypro_key_env: String,
}

impl KeyVariables {
    /// The variable `provider`'s key is read from.
    fn of(&self, provider: Source) -> &str {
        match provider {
            Source::Mkp => &self.mkp_key_env,
            Source::PayPro => &self.paypro_key_env,
        }
    }
}

/// MKP's rate limit.
#[derive(Debug, clap::Args)]
struct RateLimitArgs {
    /// MKP requests allowed per rate-limit window, when the key's contract differs from MKP's
    /// documented 60 per minute.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    mkp_rate_limit: Option<u32>,
    /// The MKP rate-limit window in seconds.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    mkp_rate_window: Option<u64>,
}

/// The variable a provider's webhook secret is read from (by `accounts add`, and by
/// `accounts update --webhook-secret`).
fn webhook_secret_variable(provider: Source) -> &'static str {
    match provider {
        Source::Mkp => "MKP_WEBHOOK_SECRET",
        Source::PayPro => "PAYPRO_WEBHOOK_SECRET",
    }
}

/// A key or secret from `variable`, when it is set and not blank (a blank one is none).
fn secret_from(variable: &str) -> Option<SecretString> {
    std::env::var(variable)
        .ok()
        .filter(|k| !k.trim().is_empty())
        .map(SecretString::from)
}

/// One provider's options as the flags give them (`accounts add` and `accounts update` name
/// them alike): its base URL and the flag that gives it, and its rate limit.
struct ProviderOptions<'a> {
    provider: Source,
    base_url: Option<&'a String>,
    base_url_flag: &'static str,
    rate_limit: Option<u32>,
    rate_window_secs: Option<u64>,
}

/// Each provider's options, in the order their sources are added and reported.
fn provider_options<'a>(
    mkp_base_url: &'a Option<String>,
    paypro_base_url: &'a Option<String>,
    rate: &RateLimitArgs,
) -> [ProviderOptions<'a>; 2] {
    [
        ProviderOptions {
            provider: Source::Mkp,
            base_url: mkp_base_url.as_ref(),
            base_url_flag: "--mkp-base-url",
            rate_limit: rate.mkp_rate_limit,
            rate_window_secs: rate.mkp_rate_window,
        },
        ProviderOptions {
            provider: Source::PayPro,
            base_url: paypro_base_url.as_ref(),
            base_url_flag: "--paypro-base-url",
            rate_limit: None,
            rate_window_secs: None,
        },
    ]
}

impl ProviderOptions<'_> {
    /// The flags given, by name (for `accounts update`, which changes only what they give).
    fn given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        if self.base_url.is_some() {
            given.push(self.base_url_flag);
        }
        if self.rate_limit.is_some() {
            given.push("--mkp-rate-limit");
        }
        if self.rate_window_secs.is_some() {
            given.push("--mkp-rate-window");
        }
        given
    }

    /// The options to store: `stored` with each option a flag gives (and `every`, when given)
    /// in its place, checked as the worker will read them, by the registry's one rule; a
    /// refusal names the flag to change. A new `every` keeps the rule; a stored one is read
    /// with the tolerance for what older versions stored.
    fn over(
        &self,
        stored: &SourceOptions,
        every: Option<Duration>,
    ) -> Result<SourceOptions, String> {
        let options = SourceOptions {
            base_url: self.base_url.or(stored.base_url.as_ref()).cloned(),
            rate_limit: self.rate_limit.or(stored.rate_limit),
            rate_window_secs: self.rate_window_secs.or(stored.rate_window_secs),
            every_secs: every.map(|every| every.as_secs()).or(stored.every_secs),
        };
        let flag = |error: &OptionsError| match error {
            OptionsError::Spec(SpecError::ShortEvery { .. } | SpecError::Fraction { .. }) => {
                "--every"
            }
            OptionsError::Spec(
                SpecError::ZeroRateLimit { .. }
                | SpecError::ShortWindow { .. }
                | SpecError::PartialRateLimit { .. },
            ) => "--mkp-rate-limit",
            _ => self.base_url_flag,
        };
        spec_of(self.provider.as_str(), &options)
            .and_then(|spec| {
                Ok(match every {
                    Some(every) => spec.with_every(every),
                    None => spec,
                }
                .validate()?)
            })
            .map_err(|e| format!("{}: {e}", flag(&e)))?;
        Ok(options)
    }
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

/// What `accounts update` takes: each change only when its flag is given.
#[derive(Debug, clap::Args)]
struct UpdateArgs {
    #[command(flatten)]
    db: PostgresArgs,
    /// The account's name.
    name: String,
    /// The source that --every, --key, --webhook-secret and --no-webhook-secret change (default:
    /// each source the account has). A source the account lacks is added, with --key.
    #[arg(long, value_name = "SOURCE", value_parser = source_word())]
    source: Option<Source>,
    /// Replace the API key with the one in the source's variable (MKP_API_KEY, PAYPRO_API_KEY,
    /// or as --mkp-key-env and --paypro-key-env name them).
    #[arg(long)]
    key: bool,
    #[command(flatten)]
    keys: KeyVariables,
    /// Seal the webhook secret in MKP_WEBHOOK_SECRET or PAYPRO_WEBHOOK_SECRET in place of the
    /// stored one.
    #[arg(long)]
    webhook_secret: bool,
    /// Remove the stored webhook secret: the source then takes no signed webhook.
    #[arg(long, conflicts_with = "webhook_secret")]
    no_webhook_secret: bool,
    /// The MKP API to use from now on (from this flag alone: MKP_BASE_URL, which `payments
    /// sync` reads, may be set for another purpose).
    #[arg(long, value_name = "URL")]
    mkp_base_url: Option<String>,
    /// The PayPro API to use from now on (from this flag alone).
    #[arg(long, value_name = "URL")]
    paypro_base_url: Option<String>,
    #[command(flatten)]
    rate: RateLimitArgs,
    /// How long after a run the sources are due again (90s, 5m, 1h). A shorter one applies at
    /// once, a longer one from the next run on.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    every: Option<Duration>,
}

/// `--source`: a provider's word, as `payments sync --source` takes it.
fn source_word() -> impl clap::builder::TypedValueParser<Value = Source> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Source::ALL.map(Source::as_str))
        .try_map(|word| Source::from_word(&word).ok_or("not a source"))
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
        AccountsCommand::Update(args) => update(args).await,
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
    let mut sources = Vec::new();
    for flags in provider_options(&args.mkp_base_url, &args.paypro_base_url, &args.rate) {
        let Some(api_key) = secret_from(args.keys.of(flags.provider)) else {
            continue;
        };
        let options = flags
            .over(&SourceOptions::default(), Some(args.every))
            .map_err(CliError::config)?;
        sources.push((flags.provider.as_str().to_owned(), api_key, options));
    }
    if sources.is_empty() {
        return Err(CliError::config(format!(
            "no key is set: put the account's MKP key in {} and/or its PayPro key in {}",
            args.keys.mkp_key_env, args.keys.paypro_key_env
        )));
    }
    // The webhook secrets, from the environment alone as the keys are; sealed like them.
    let webhook_secrets: Vec<(String, SecretString)> = Source::ALL
        .into_iter()
        .filter_map(|provider| {
            let secret = secret_from(webhook_secret_variable(provider))?;
            Some((provider.as_str().to_owned(), secret))
        })
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
    warn_of_shared_keys(&ledger, &account.name).await
}

/// Warns when a key of the account `name` is another account's key too (one key, one lease).
async fn warn_of_shared_keys(ledger: &PgLedger, name: &str) -> Result<Exit, CliError> {
    let shared = ledger.sharing_keys(name).await?;
    if !shared.is_empty() {
        eprintln!(
            "warning: a key of {} is also the key of {}: they are synced one at a time, so that the key's rate limit holds (is that the same business twice?)",
            printable(name),
            printable(&shared.join(", "))
        );
    }
    Ok(Exit::Done)
}

/// The flags that change something, for the error that none was given.
const UPDATE_FLAGS: &str = "--mkp-base-url, --paypro-base-url, --mkp-rate-limit, --mkp-rate-window, --every, --key, --webhook-secret or --no-webhook-secret";

/// One source's change, as `accounts update` asks for it.
struct SourceChange<'a> {
    flags: ProviderOptions<'a>,
    api_key: Option<SecretString>,
    /// `None` keeps it, `Some(None)` removes it.
    webhook_secret: Option<Option<SecretString>>,
}

async fn update(args: UpdateArgs) -> Result<Exit, CliError> {
    let every = args.every;
    let for_each_source =
        every.is_some() || args.key || args.webhook_secret || args.no_webhook_secret;
    let providers = provider_options(&args.mkp_base_url, &args.paypro_base_url, &args.rate);
    if !for_each_source && providers.iter().all(|flags| flags.given().is_empty()) {
        return Err(CliError::config(format!(
            "nothing to change: give {UPDATE_FLAGS} (with --source to change one source only)"
        )));
    }
    if let Some(source) = args.source
        && let Some(flag) = providers
            .iter()
            .filter(|flags| flags.provider != source)
            .find_map(|flags| flags.given().first().copied())
    {
        return Err(CliError::config(format!(
            "{flag} is not an option of {source}; leave out --source {source}, or {flag}"
        )));
    }
    let master = master_key()?;
    let ledger = args.db.connect().await?;
    let Some(account) = ledger.account(&args.name).await? else {
        return Err(no_account(&ledger, &args.name));
    };
    let has = |provider: Source| {
        account
            .sources
            .iter()
            .any(|(source, _)| source == provider.as_str())
    };
    // Everything is read and checked before anything is written: a refusal changes nothing.
    let mut changes = Vec::new();
    for flags in providers {
        let provider = flags.provider;
        let given = flags.given();
        let chosen = args.source.is_none_or(|source| source == provider);
        if given.is_empty() && !(for_each_source && chosen) {
            continue;
        }
        // Without --source, the flags for each source change the sources the account has.
        if !has(provider) && args.source != Some(provider) {
            if let Some(flag) = given.first() {
                return Err(CliError::config(format!(
                    "{flag} is an option of {provider}, which the account {} lacks; to add it, give its key with --source {provider} --key",
                    printable(&args.name)
                )));
            }
            continue;
        }
        let variable = args.keys.of(provider);
        if !has(provider) && !args.key {
            return Err(CliError::config(format!(
                "the account {} has no {provider} source; to add it, set {variable} to its key and give --source {provider} --key",
                printable(&args.name)
            )));
        }
        let api_key = args
            .key
            .then(|| {
                secret_from(variable).ok_or_else(|| {
                    CliError::config(format!(
                        "--key reads the new {provider} key from {variable}, which is not set; set it (keys never go on the command line), or choose another source with --source"
                    ))
                })
            })
            .transpose()?;
        let webhook_secret = if args.webhook_secret {
            let variable = webhook_secret_variable(provider);
            Some(Some(secret_from(variable).ok_or_else(|| {
                CliError::config(format!(
                    "--webhook-secret reads the new {provider} webhook secret from {variable}, which is not set; set it, or choose another source with --source"
                ))
            })?))
        } else if args.no_webhook_secret {
            Some(None)
        } else {
            None
        };
        let stored = account
            .sources
            .iter()
            .find(|(source, _)| source == provider.as_str())
            .map(|(_, options)| options.clone())
            .unwrap_or_default();
        flags.over(&stored, every).map_err(CliError::config)?;
        changes.push(SourceChange {
            flags,
            api_key,
            webhook_secret,
        });
    }
    if changes.is_empty() {
        return Err(CliError::config(format!(
            "the account {} has no source to change",
            printable(&args.name)
        )));
    }
    // Each source in its own transaction, with its options checked again on what is stored.
    for change in &changes {
        let provider = change.flags.provider;
        let (before, after) = ledger
            .update_source(
                &args.name,
                provider.as_str(),
                |stored| {
                    change
                        .flags
                        .over(stored.unwrap_or(&SourceOptions::default()), every)
                },
                change.api_key.as_ref(),
                change.webhook_secret.as_ref().map(|secret| secret.as_ref()),
                &master,
            )
            .await
            .map_err(|error| match error {
                AccountError::NoAccount(_) => no_account(&ledger, &args.name),
                other => account_error(other),
            })?;
        let mut said = match &before {
            Some(before) => changed_options(provider, before, &after),
            None => Vec::new(),
        };
        if change.api_key.is_some() {
            let done = if before.is_some() {
                "replaced"
            } else {
                "sealed"
            };
            said.push(format!("key {done}"));
        }
        match &change.webhook_secret {
            Some(Some(_)) => said.push("webhook secret sealed".to_owned()),
            Some(None) => said.push("webhook secret removed".to_owned()),
            None => {}
        }
        let who = format!("{}/{provider}", printable(&args.name));
        match before {
            None => println!(
                "added {who}: {}; a worker syncs it as soon as it is due",
                said.join(", ")
            ),
            Some(_) if said.is_empty() => println!("{who}: unchanged (it had these options)"),
            Some(_) => println!("updated {who}: {}", said.join(", ")),
        }
    }
    if changes.iter().any(|change| change.api_key.is_some()) {
        return warn_of_shared_keys(&ledger, &args.name).await;
    }
    Ok(Exit::Done)
}

/// What changed between `before` and `after`, one phrase each (`base URL A → B`).
fn changed_options(provider: Source, before: &SourceOptions, after: &SourceOptions) -> Vec<String> {
    let mut said = Vec::new();
    if before.base_url != after.base_url {
        let url = |url: &Option<String>| {
            printable(url.as_deref().unwrap_or(default_base_url(provider))).into_owned()
        };
        said.push(format!(
            "base URL {} → {}",
            url(&before.base_url),
            url(&after.base_url)
        ));
    }
    let documented = || "documented".to_owned();
    if before.rate_limit != after.rate_limit {
        let limit = |limit: Option<u32>| limit.map_or_else(documented, |n| n.to_string());
        said.push(format!(
            "rate limit {} → {} per window",
            limit(before.rate_limit),
            limit(after.rate_limit)
        ));
    }
    if before.rate_window_secs != after.rate_window_secs {
        let window = |secs: Option<u64>| secs.map_or_else(documented, |secs| format!("{secs}s"));
        said.push(format!(
            "rate window {} → {}",
            window(before.rate_window_secs),
            window(after.rate_window_secs)
        ));
    }
    if before.every_secs != after.every_secs {
        let every = |secs: Option<u64>| shown_duration(secs.unwrap_or(DEFAULT_EVERY.as_secs()));
        said.push(format!(
            "every {} → {}",
            every(before.every_secs),
            every(after.every_secs)
        ));
    }
    said
}

/// `secs` as `--every` takes it: `1d`, `2h`, `15m`, `90s`.
fn shown_duration(secs: u64) -> String {
    match secs {
        0 => "0".to_owned(),
        secs if secs % 86_400 == 0 => format!("{}d", secs / 86_400),
        secs if secs % 3600 == 0 => format!("{}h", secs / 3600),
        secs if secs % 60 == 0 => format!("{}m", secs / 60),
        secs => format!("{secs}s"),
    }
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
