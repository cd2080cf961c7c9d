//! Never stuck, never silently wrong, as a property: for each fault class, a sandbox that *keeps*
//! misbehaving that way is synced twice, and
//!
//! - both runs succeed (an un-healed system fails every run at the same place);
//! - every payment the fault does not spoil is stored, exactly ([`readable_data_set`]);
//! - the quarantine holds exactly the spoiled records and links, once each, each reason naming
//!   its record ([`spoiled_ids`]);
//! - the second run quarantines nothing new, completes, and moves the checkpoint on;
//! - no request is refused as a wrong address (400/404/422): a link with path characters is never
//!   requested, relative next links are followed where they point.
//!
//! Seeds, sizes and each fault's period or rate are drawn by proptest; retries are fast.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use payments_model::Payment;
use payments_sandbox::{
    Api, Burst, ContentFaults, Faults, OversizedLinks, OversizedPages, RetryAfterForm, Sandbox,
    SandboxConfig,
};
use payments_sync::{MemoryStore, RetryPolicy, RunKind, Summary, SyncOptions, Syncer};
use payments_testkit::{mkp_with_body_cap, paypro_with_body_cap, readable_data_set, spoiled_ids};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

/// A sandbox that keeps misbehaving one way, and the clients' body caps.
#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    links: usize,
    paypro: usize,
    faults: Faults,
    content: ContentFaults,
    mkp_cap: Option<usize>,
    paypro_cap: Option<usize>,
}

impl Case {
    fn new(seed: u64, links: usize, paypro: usize) -> Case {
        Case {
            seed,
            links,
            paypro,
            faults: Faults::default(),
            content: ContentFaults::default(),
            mkp_cap: None,
            paypro_cap: None,
        }
    }
}

/// What two runs left, for the checks of one class.
struct Outcome {
    sandbox: Sandbox,
    named: BTreeSet<String>,
    /// The summaries of both runs.
    summaries: Vec<Summary>,
    /// How many requests the sandbox saw by the end of the first run.
    first_requests: usize,
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 16,
        ..Config::default()
    }
}

fn options() -> SyncOptions {
    SyncOptions {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
            max_attempts: 20,
            max_total_wait: Duration::from_secs(60),
        },
        ..SyncOptions::default()
    }
}

/// Runs the property for `case` on a runtime of its own.
fn check(case: Case) -> Result<Outcome, TestCaseError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(two_runs(case))
}

async fn sync(
    store: &Arc<MemoryStore>,
    sandbox: &Sandbox,
    case: &Case,
    run: &str,
) -> Result<Vec<Summary>, TestCaseError> {
    let mut syncer = Syncer::new(store.clone(), options());
    syncer
        .add_source(mkp_with_body_cap(sandbox, case.mkp_cap))
        .add_source(paypro_with_body_cap(sandbox, case.paypro_cap));
    syncer
        .run()
        .await
        .into_iter()
        .map(|result| result.map_err(|e| TestCaseError::fail(format!("{run}: {e}"))))
        .collect()
}

async fn two_runs(case: Case) -> Result<Outcome, TestCaseError> {
    let sandbox = Sandbox::start(SandboxConfig {
        seed: case.seed,
        mkp_links: case.links,
        paypro_payments: case.paypro,
        anchor: chrono::Utc::now(),
        mkp_rate_limit: None,
        faults: case.faults.clone(),
        content_faults: case.content.clone(),
        ..SandboxConfig::default()
    })
    .await
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let expected = readable_data_set(&sandbox);
    let named = spoiled_ids(&sandbox);
    let store = Arc::new(MemoryStore::new());

    let first = sync(&store, &sandbox, &case, "first run").await?;
    for summary in &first {
        prop_assert_eq!(summary.run, Some(RunKind::Full));
    }
    check_store(&store, &expected, &named, "first run")?;
    let completed = |store: &MemoryStore, source: &str| {
        store
            .checkpoint(source)
            .filter(|c| !c.in_progress())
            .and_then(|c| c.last_completed_at)
    };
    let first_completed = [completed(&store, "mkp"), completed(&store, "paypro")];
    let first_requests = sandbox.requests().len();

    let second = sync(&store, &sandbox, &case, "second run").await?;
    for summary in &second {
        prop_assert_eq!(summary.run, Some(RunKind::Incremental));
        prop_assert!(summary.requests > 0);
    }
    check_store(&store, &expected, &named, "second run")?;
    for (source, before) in ["mkp", "paypro"].into_iter().zip(first_completed) {
        let after = completed(&store, source);
        prop_assert!(
            before.is_some() && after > before,
            "{source}: the second run did not complete ({before:?} → {after:?})"
        );
    }
    for api in [Api::Mkp, Api::PayPro] {
        for status in [400, 404, 422] {
            prop_assert_eq!(
                sandbox.count_status(api, status),
                0,
                "{:?} answered {} to: {:?}",
                api,
                status,
                sandbox
                    .requests()
                    .iter()
                    .filter(|r| r.status == status)
                    .map(|r| r.path_and_query.clone())
                    .collect::<Vec<_>>()
            );
        }
    }
    Ok(Outcome {
        sandbox,
        named,
        summaries: first.into_iter().chain(second).collect(),
        first_requests,
    })
}

/// The store holds exactly the readable payments, and its quarantine exactly the spoiled ids,
/// once each, each reason naming its record.
fn check_store(
    store: &MemoryStore,
    expected: &[Payment],
    named: &BTreeSet<String>,
    run: &str,
) -> Result<(), TestCaseError> {
    let stored = store.payments();
    if stored != expected {
        let ids = |payments: &[Payment]| -> BTreeSet<String> {
            payments.iter().map(|p| p.id.clone()).collect()
        };
        let (have, want) = (ids(&stored), ids(expected));
        let changed: Vec<&String> = stored
            .iter()
            .filter(|p| want.contains(&p.id) && !expected.contains(p))
            .map(|p| &p.id)
            .collect();
        return Err(TestCaseError::fail(format!(
            "{run}: the store differs from the readable data set: missing {:?}, unexpected {:?}, different {:?}",
            want.difference(&have).collect::<Vec<_>>(),
            have.difference(&want).collect::<Vec<_>>(),
            changed
        )));
    }
    let rejected = store.rejected();
    let quarantined: BTreeSet<String> = rejected
        .iter()
        .map(|r| r.source_id.clone().unwrap_or_default())
        .collect();
    prop_assert_eq!(&quarantined, named, "{}: quarantined ≠ spoiled", run);
    prop_assert_eq!(
        rejected.len(),
        named.len(),
        "{}: a record quarantined twice: {:?}",
        run,
        rejected
    );
    for r in &rejected {
        let id = r.source_id.as_deref().unwrap_or_default();
        prop_assert!(
            r.reason.contains(id),
            "{}: the reason does not name {}: {}",
            run,
            id,
            r.reason
        );
    }
    Ok(())
}

fn sizes() -> impl Strategy<Value = (u64, usize, usize)> {
    // 8 links or more: link 7 has hundreds of payments, so a link spans pages.
    (any::<u64>(), 8usize..=24, 120usize..=400)
}

proptest! {
    #![proptest_config(config(6))]

    #[test]
    fn bad_amounts_are_named_and_the_rest_kept((seed, links, paypro) in sizes(), every in 1u64..=40) {
        let mut case = Case::new(seed, links, paypro);
        case.faults.bad_record_every = Some(every);
        let outcome = check(case)?;
        prop_assert!(!outcome.named.is_empty());
    }

    #[test]
    fn bytes_that_are_not_utf8_cost_only_their_record(
        (seed, links, paypro) in sizes(),
        paypro_every in 1u64..=40,
        mkp_every in 1u64..=12,
    ) {
        let mut case = Case::new(seed, links, paypro);
        case.content.paypro_invalid_utf8_every = Some(paypro_every);
        case.content.mkp_invalid_utf8_every = Some(mkp_every);
        let outcome = check(case)?;
        let spoiled = outcome.sandbox.spoiled();
        prop_assert!(!spoiled.paypro_payments.is_empty() && !spoiled.mkp_payments.is_empty());
    }

    #[test]
    fn a_link_id_with_path_characters_is_named_and_never_requested(
        (seed, links, paypro) in sizes(),
        every in 1u64..=6,
    ) {
        let mut case = Case::new(seed, links, paypro);
        case.content.mkp_path_id_every = Some(every);
        let outcome = check(case)?;
        let spoiled = outcome.sandbox.spoiled();
        prop_assert!(!spoiled.mkp_path_links.is_empty());
        for request in outcome.sandbox.requests() {
            let path = request.path_and_query.to_ascii_lowercase();
            prop_assert!(
                !path.contains("/../") && !path.contains("%2f") && !path.contains("/x/payments"),
                "requested {}",
                request.path_and_query
            );
        }
    }

    #[test]
    fn a_link_whose_payments_are_over_the_body_cap_is_set_aside_by_name(
        (seed, links, paypro) in sizes(),
        every in 1u64..=6,
    ) {
        let mut case = Case::new(seed, links, paypro);
        case.content.mkp_oversized_links = Some(OversizedLinks { every, bytes: 100_000 });
        case.mkp_cap = Some(64 * 1024);
        let outcome = check(case)?;
        let oversized = outcome.sandbox.spoiled().mkp_oversized_links;
        prop_assert!(!oversized.is_empty());
        // Set aside, not forgotten: the second run reads each such link again.
        let second_run = &outcome.sandbox.requests()[outcome.first_requests..];
        for link in &oversized {
            let path = format!("/mkp/v1/payment-links/{link}/payments");
            prop_assert!(
                second_run.iter().any(|r| r.path_and_query == path),
                "the second run did not read {} again",
                link
            );
        }
    }

    #[test]
    fn paypro_pages_over_the_body_cap_get_through_with_a_smaller_limit(
        (seed, links, paypro) in sizes(),
        above_limit in 20usize..=99,
    ) {
        let mut case = Case::new(seed, links, paypro);
        case.content.paypro_oversized_pages = Some(OversizedPages { above_limit, bytes: 300_000 });
        case.paypro_cap = Some(200_000);
        let outcome = check(case)?;
        prop_assert!(outcome.named.is_empty());
        let smaller = outcome.sandbox.requests().iter().any(|r| {
            r.api == Api::PayPro
                && r.status == 200
                && r.path_and_query
                    .split(['?', '&'])
                    .filter_map(|pair| pair.strip_prefix("limit="))
                    .any(|limit| limit.parse::<usize>().is_ok_and(|l| l <= above_limit))
        });
        prop_assert!(smaller, "no page was asked for with a limit of {above_limit} or less");
    }

    #[test]
    fn php_envelopes_read_like_the_documented_ones((seed, links, paypro) in sizes()) {
        let mut case = Case::new(seed, links, paypro);
        case.content.php_envelopes = true;
        let outcome = check(case)?;
        prop_assert!(outcome.named.is_empty());
    }

    #[test]
    fn server_errors_are_retried_through((seed, links, paypro) in sizes(), rate in 0.05f64..0.4) {
        let mut case = Case::new(seed, links, paypro);
        case.faults.server_error_rate = rate;
        check(case)?;
    }

    #[test]
    fn truncated_bodies_are_retried_through((seed, links, paypro) in sizes(), rate in 0.05f64..0.35) {
        let mut case = Case::new(seed, links, paypro);
        case.faults.truncate_rate = rate;
        check(case)?;
    }

    #[test]
    fn dropped_connections_are_retried_through((seed, links, paypro) in sizes(), rate in 0.05f64..0.3) {
        let mut case = Case::new(seed, links, paypro);
        case.faults.reset_rate = rate;
        check(case)?;
    }
}

proptest! {
    // Each 429 costs its `Retry-After` of a whole second: few cases, small accounts.
    #![proptest_config(config(2))]

    #[test]
    fn bursts_of_429_are_waited_out(
        seed in any::<u64>(),
        links in 8usize..=10,
        paypro in 100usize..=200,
        every in 12u64..=25,
        length in 1u64..=2,
    ) {
        let mut case = Case::new(seed, links, paypro);
        case.faults.burst_429 = Some(Burst {
            every,
            length,
            retry_after: Duration::from_secs(1),
            form: RetryAfterForm::Seconds,
        });
        let outcome = check(case)?;
        prop_assert!(outcome.sandbox.count_status(Api::Mkp, 429) + outcome.sandbox.count_status(Api::PayPro, 429) > 0);
        let waited: Duration = outcome.summaries.iter().map(|s| s.waited).sum();
        prop_assert!(waited >= Duration::from_secs(1), "waited {waited:?}");
    }
}
