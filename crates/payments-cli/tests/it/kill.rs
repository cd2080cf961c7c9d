//! A sync process killed at any instant (mid-request, mid-transaction) and rerun ends exactly
//! where an uninterrupted run does: no duplicates, nothing missing, and the checkpoint never
//! ahead of the committed payments.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use payments_model::Source;
use payments_sandbox::Sandbox;
use payments_sqlite::{Filter, SqliteStore};
use payments_sync::Ledger;
use payments_testkit::data_set;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::{parse_ndjson, payments_for, run, unlimited};

/// PayPro pages hold 100 payments (`limit=100`).
const PAGE: usize = 100;

#[test]
fn a_sync_killed_at_any_point_and_rerun_ends_identical_to_an_uninterrupted_run() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sandbox = runtime
        .block_on(Sandbox::start(unlimited(13, 30, 6_000)))
        .unwrap();
    let expected = data_set(&sandbox);
    let listing: Vec<String> = sandbox
        .paypro_payments()
        .iter()
        .map(|p| p.id.clone())
        .collect();
    let dir = tempfile::tempdir().unwrap();

    // An uninterrupted run, timed only to spread the kill points over a run's length.
    let reference = dir.path().join("reference.db");
    let started = Instant::now();
    run(payments_for(&sandbox, &reference).arg("sync"), 0);
    let span = started.elapsed().as_millis().max(20) as u64;
    let exported = run(
        payments_for(&sandbox, &reference).args(["export", "--format", "ndjson"]),
        0,
    );
    assert_eq!(parse_ndjson(&exported.stdout), expected);

    let cases = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 16,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&(0..span, 0..3u8), |(kill_after_ms, kills)| {
        let db = dir.path().join(format!(
            "killed-{}.db",
            cases.fetch_add(1, Ordering::SeqCst)
        ));
        // Up to three kills in a row, each a little later, before the run that completes.
        for k in 0..=u64::from(kills) {
            let mut child = payments_for(&sandbox, &db)
                .arg("sync")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(kill_after_ms / (k + 1)));
            child.kill().unwrap();
            child.wait().unwrap();
            if db.exists() {
                paypro_holds_whole_pages_behind_its_checkpoint(&db, &listing)?;
            }
        }
        run(payments_for(&sandbox, &db).arg("sync"), 0);
        let exported = run(
            payments_for(&sandbox, &db).args(["export", "--format", "ndjson"]),
            0,
        );
        prop_assert_eq!(parse_ndjson(&exported.stdout), expected.clone());
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

/// The stored PayPro payments are the first whole pages of the listing, and the checkpoint
/// continues right after the last of them: never ahead of what was committed, never behind.
fn paypro_holds_whole_pages_behind_its_checkpoint(
    db: &std::path::Path,
    listing: &[String],
) -> Result<(), TestCaseError> {
    let store = SqliteStore::open(db).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut stored = Vec::new();
    store
        .for_each_payment(
            &Filter {
                sources: vec![Source::PayPro],
                ..Filter::default()
            },
            |p| {
                stored.push(p.source_id);
                Ok::<(), payments_sync::StoreError>(())
            },
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let n = stored.len();
    prop_assert!(
        n % PAGE == 0 || n == listing.len(),
        "{n} payments is not whole pages"
    );
    let mut prefix = listing[..n].to_vec();
    prefix.sort();
    stored.sort();
    prop_assert_eq!(
        &stored,
        &prefix,
        "the stored payments are the listing's first pages"
    );

    let checkpoint = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(store.checkpoint("paypro"))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    // Once everything is stored, later (incremental) runs re-verify: their walk over the
    // listing may stand anywhere in it.
    let first_walk = checkpoint
        .as_ref()
        .is_none_or(|c| c.run == payments_sync::RunKind::Full);
    let next = checkpoint
        .as_ref()
        .and_then(|c| c.cursor.as_ref())
        .filter(|_| first_walk);
    match next {
        None => prop_assert!(
            n == 0 || n == listing.len(),
            "{n} payments stored but no checkpoint to continue from"
        ),
        Some(cursor) => {
            let listing_url = cursor.listing.as_deref().unwrap_or_default();
            let token = listing_url
                .split("cursor=")
                .nth(1)
                .unwrap_or_default()
                .split('&')
                .next()
                .unwrap_or_default();
            let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .map_err(|e| TestCaseError::fail(format!("{listing_url}: {e}")))?;
            prop_assert!(n > 0, "a checkpoint ahead of an empty store: {listing_url}");
            prop_assert_eq!(
                String::from_utf8_lossy(&decoded).into_owned(),
                format!("after:{}", listing[n - 1]),
                "the checkpoint continues right after the last committed payment"
            );
        }
    }
    Ok(())
}
