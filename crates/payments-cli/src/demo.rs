//! `payments demo`: the whole tool against the in-process sandbox, no key, no network.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use payments_model::{Payment, Source};
use payments_sandbox::{Faults, RateLimitWindow, Sandbox, SandboxConfig};
use payments_sources::{RateLimitSpec, SourceSpec};
use payments_sqlite::{Filter, SqliteStore};
use payments_sync::{Ledger, Quarantined, SyncOptions};
use secrecy::SecretString;

use crate::outcome::{CliError, Exit, printable};
use crate::sync::sync_into;

/// Shows the tool working without a key or a network.
///
/// Starts the sandbox in-process, syncs both sources into a fresh database file, shows the newest
/// payments of each source, what `unknown` and a quarantined record mean, then lets the providers
/// change a few payments and runs again (incremental: only what can have changed is read) and
/// shows one payment's versions. It ends with next steps that work as printed.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct DemoArgs {
    /// Where to create the demo database (it must not exist yet; default: a new temporary
    /// directory). The demo never writes into an existing ledger.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
}

/// Printed after the options as written, line for line; each line fits in 80 columns.
const EXAMPLES: &str = r#"Examples:
  payments demo
  payments demo --db demo.db && payments status --db demo.db"#;

/// The demo's data set: big enough to need many pages, small enough to sync in seconds. The
/// MKP limit is scaled down (60 per 2 s instead of per minute) so the limiter's pacing shows
/// without a minute's wait.
fn demo_sandbox() -> SandboxConfig {
    SandboxConfig {
        seed: 2026,
        mkp_links: 40,
        paypro_payments: 3_000,
        anchor: chrono::Utc::now(),
        mkp_rate_limit: Some(DEMO_RATE),
        // One PayPro record (the oldest) with an amount that cannot be exact, to be quarantined.
        faults: Faults {
            bad_record_every: Some(3_000),
            ..Faults::default()
        },
        ..SandboxConfig::default()
    }
}

const DEMO_RATE: RateLimitWindow = RateLimitWindow {
    limit: 60,
    window: Duration::from_secs(2),
};

fn fresh_path(requested: Option<PathBuf>) -> Result<PathBuf, CliError> {
    if let Some(path) = requested {
        if path.exists() {
            return Err(CliError::config(format!(
                "{} already exists; the demo only writes a new database, so give a path that does not exist",
                path.display()
            )));
        }
        return Ok(path);
    }
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let dir = std::env::temp_dir().join(format!("payments-demo-{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| {
        CliError::config(format!(
            "cannot create {} ({e}); pass --db with a path you can write",
            dir.display()
        ))
    })?;
    Ok(dir.join("payments.db"))
}

pub(crate) async fn run(args: DemoArgs) -> Result<Exit, CliError> {
    let path = fresh_path(args.db)?;
    let sandbox = Sandbox::start(demo_sandbox())
        .await
        .map_err(|e| CliError::failed(format!("cannot start the sandbox on 127.0.0.1: {e}")))?;
    let config = sandbox.config();
    let refused = |e| CliError::failed(format!("the sandbox's address is refused: {e}"));
    let specs = [
        (
            SourceSpec::new(Source::Mkp)
                .with_base_url(sandbox.mkp_base_url())
                .with_rate_limit(RateLimitSpec::Per {
                    limit: DEMO_RATE.limit,
                    window: DEMO_RATE.window,
                }),
            SecretString::from(config.mkp_key.clone()),
        ),
        (
            SourceSpec::new(Source::PayPro).with_base_url(sandbox.paypro_base_url()),
            SecretString::from(config.paypro_key.clone()),
        ),
    ];
    let sources = || -> Result<Vec<_>, CliError> {
        specs
            .iter()
            .map(|(spec, key)| spec.build(key).map_err(refused))
            .collect()
    };
    let store = SqliteStore::open(&path)
        .map_err(|e| CliError::config(format!("{e}; pass --db with a path you can write")))?;
    let store = Arc::new(store);

    println!(
        "Syncing a sandbox (both APIs on {}, {} MKP links and {} PayPro payments) into {} …",
        sandbox.addr(),
        config.mkp_links,
        config.paypro_payments,
        path.display()
    );
    let exit = sync_into(store.clone(), sources()?, SyncOptions::default()).await?;
    if !matches!(exit, Exit::Done | Exit::Quarantined) {
        return Ok(exit);
    }

    println!("\nThe newest payments of each source:");
    for source in Source::ALL {
        for payment in newest(&store, source, 3)? {
            println!("  {}", row(&payment));
        }
    }
    explain_unknown_words(&*store).await?;
    explain_quarantine(&*store).await?;

    // The providers move on: a refund, a payment paid late, a new payment.
    let changed = change_the_providers(&sandbox);
    println!(
        "\nMeanwhile PayPro refunds part of {} and a new payment arrives. The second run is\n\
         incremental: it reads PayPro's change feed and what can have changed (the last day,\n\
         unsettled payments of the last week, open MKP links), plus a few pages of what was\n\
         verified longest ago, not everything again.",
        printable(&changed)
    );
    let exit = sync_into(store.clone(), sources()?, SyncOptions::default()).await?;
    if !matches!(exit, Exit::Done | Exit::Quarantined) {
        return Ok(exit);
    }

    let id = Source::PayPro.payment_id(&changed);
    println!("\nEvery version of a payment is kept. `payments show {id}`:\n");
    let versions = store.versions(&id).await?;
    print!(
        "{}",
        crate::show::human(&versions, chrono_tz::Europe::Amsterdam)?
    );

    let me = invocation();
    let db = quoted(&path.display().to_string());
    println!("\nThe ledger is at {db}. Next:");
    println!("  {me} status --db {db}");
    println!("  {me} show {id} --db {db}");
    // Beside the demo's ledger, not in whatever directory the demo was run from.
    let csv = quoted(&path.with_file_name("ledger.csv").display().to_string());
    println!("  {me} export --db {db} --dialect excel-nl --output {csv}");
    println!("  {me} sandbox    # the same APIs on a port of your own, for your scripts");
    println!(
        "  {me} check      # with MKP_API_KEY and/or PAYPRO_API_KEY set: proves your keys, one request each"
    );
    Ok(Exit::Done)
}

/// The `count` newest payments of `source`, newest first.
fn newest(store: &SqliteStore, source: Source, count: usize) -> Result<Vec<Payment>, CliError> {
    let mut rows = Vec::new();
    let filter = Filter {
        sources: vec![source],
        ..Filter::default()
    };
    store.for_each_payment(&filter, |payment| {
        rows.push(payment);
        if rows.len() > count {
            rows.remove(0);
        }
        Ok::<(), CliError>(())
    })?;
    rows.reverse();
    Ok(rows)
}

fn row(payment: &Payment) -> String {
    format!(
        "{:<26} {:<19} {:>10} {}  {}",
        printable(&payment.id),
        payment.status.as_str(),
        payment.amount.amount_string(),
        payment.currency().code(),
        payments_model::format_timestamp(&payment.created_at)
    )
}

/// What the payments with status `unknown` are.
async fn explain_unknown_words(store: &dyn Ledger) -> Result<(), CliError> {
    for source in Source::ALL {
        let words = store.unknown_words(source.as_str()).await?;
        if words.is_empty() {
            continue;
        }
        let count: u64 = store
            .counts_by_status(source)
            .await?
            .into_iter()
            .filter(|(status, _)| status == "unknown")
            .map(|(_, n)| n)
            .sum();
        let words: Vec<String> = words
            .iter()
            .map(|(word, _)| format!("`{}`", printable(word)))
            .collect();
        println!(
            "\n{count} {source} payments have status `unknown`: their status words ({}) are not in\n\
             the status table. Nothing is lost: each keeps its word in provider_status, a sync logs\n\
             a new word once, and `payments status` lists them.",
            words.join(", ")
        );
    }
    Ok(())
}

/// What a quarantined record is, with the one the demo met.
async fn explain_quarantine(store: &dyn Ledger) -> Result<(), CliError> {
    for source in Source::ALL {
        for Quarantined {
            source_id: id,
            reason,
            ..
        } in store.quarantine(source.as_str()).await?
        {
            println!(
                "\nOne {source} record could not be read, so it is quarantined, not guessed at:\n  {}: {}\n\
                 The rest of its page was kept. The record is stored as the provider sent it, the\n\
                 run exits 3 so that monitoring notices, and `payments status` lists it until a\n\
                 later run reads it correctly.",
                printable(id.as_deref().unwrap_or("(no id)")),
                printable(&reason)
            );
        }
    }
    Ok(())
}

/// Refunds part of the newest paid PayPro payment and adds a new one; returns the refunded
/// payment's PayPro id.
fn change_the_providers(sandbox: &Sandbox) -> String {
    let payments = sandbox.paypro_payments();
    let refunded = payments
        .iter()
        .find(|p| p.state == "paid" && p.refunded_amount == 0 && p.amount > 100)
        .map(|p| (p.id.clone(), p.amount / 4));
    sandbox.insert_paypro_payment();
    match refunded {
        Some((id, part)) => {
            sandbox.refund_paypro_payment(&id, part);
            id
        }
        None => payments.first().map(|p| p.id.clone()).unwrap_or_default(),
    }
}

/// How to run this binary again, as the user can type it here: through cargo when cargo ran
/// it (with `--manifest-path` outside the workspace), `payments` when that is the first
/// `payments` on PATH, its full path otherwise.
fn invocation() -> String {
    if std::env::var_os("CARGO").is_some()
        && let Some(manifest_dir) = std::env::var_os("CARGO_MANIFEST_DIR")
    {
        let manifest_dir = PathBuf::from(manifest_dir);
        let inside = std::env::current_dir()
            .ok()
            .zip(manifest_dir.ancestors().nth(2))
            .is_some_and(|(here, workspace)| here.starts_with(workspace));
        return if inside {
            "cargo run -q -p payments-cli --".to_owned()
        } else {
            let manifest = manifest_dir.join("Cargo.toml").display().to_string();
            format!("cargo run -q --manifest-path {} --", quoted(&manifest))
        };
    }
    let Ok(me) = std::env::current_exe().and_then(|p| p.canonicalize()) else {
        return "payments".to_owned();
    };
    // What a shell runs for `payments`: the first PATH entry that has one.
    let first_on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("payments"))
            .find(|candidate| candidate.is_file())
    });
    let on_path = first_on_path
        .and_then(|found| found.canonicalize().ok())
        .is_some_and(|found| found == me);
    if on_path {
        "payments".to_owned()
    } else {
        quoted(&me.display().to_string())
    }
}

/// `text` quoted for a POSIX shell when it holds anything but plain path characters.
fn quoted(text: &str) -> String {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:=,".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
