//! `payments demo`: the whole tool against the in-process sandbox, no key, no network.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use payments_model::RateLimit;
use payments_sandbox::{RateLimitWindow, Sandbox, SandboxConfig};
use payments_sqlite::{Filter, SqliteStore};
use payments_sync::SyncOptions;

use crate::outcome::{CliError, Exit, printable};
use crate::sync::{mkp_source, paypro_source, sync_into};

/// Shows the tool working without a key or a network: starts the sandbox in-process, syncs both
/// sources into a fresh database file, and prints the summary, a few rows and where the file is.
///
/// Example: payments demo
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Where to create the demo database (it must not exist yet; default: a new temporary
    /// directory). The demo never writes into an existing ledger.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
}

/// The demo's data set: big enough to need many pages, small enough to sync in seconds. The
/// MKP limit is scaled down (60 per 2 s instead of per minute) so the limiter's pacing shows
/// without a minute's wait.
fn demo_sandbox() -> SandboxConfig {
    SandboxConfig {
        seed: 2026,
        mkp_links: 40,
        paypro_payments: 1_000,
        anchor: chrono::Utc::now(),
        mkp_rate_limit: Some(DEMO_RATE),
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
    let refused = |e: String| CliError::failed(format!("the sandbox's address is refused: {e}"));
    let rate = RateLimit::per(DEMO_RATE.limit, DEMO_RATE.window);
    let sources = vec![
        mkp_source(&sandbox.mkp_base_url(), &config.mkp_key, Some(rate)).map_err(refused)?,
        paypro_source(&sandbox.paypro_base_url(), &config.paypro_key).map_err(refused)?,
    ];
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
    let exit = sync_into(store.clone(), sources, SyncOptions::default()).await?;
    if exit != Exit::Done {
        return Ok(exit);
    }

    println!("\nThe newest payments:");
    let mut rows = Vec::new();
    store.for_each_payment(&Filter::default(), |payment| {
        rows.push(payment);
        if rows.len() > 5 {
            rows.remove(0);
        }
        Ok::<(), CliError>(())
    })?;
    for payment in rows.iter().rev() {
        println!(
            "  {:<26} {:<19} {:>10} {}  {}",
            printable(&payment.id),
            payment.status.as_str(),
            payment.amount.amount_string(),
            payment.currency().code(),
            payments_model::format_timestamp(&payment.created_at)
        );
    }
    let db = path.display();
    println!("\nThe ledger is at {db}. Next:");
    println!("  payments status --db {db}");
    println!("  payments export --db {db} --format csv --status paid");
    println!("  payments sandbox    # the same APIs on a port of your own, for your scripts");
    Ok(Exit::Done)
}
