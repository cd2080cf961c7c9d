//! Accounts with sealed keys, and the leases a fleet of workers takes them by.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use payments_postgres::{AccountError, KeyError, MasterKey, NewAccount, PgLedger, SourceOptions};
use payments_sync::{Commit, Store, StoreError};

use crate::sql;
use secrecy::{ExposeSecret, SecretString};

const KEY: &str = "pk_live_Recognisable_7Hq2";

fn new_account(name: &str, key: &str) -> NewAccount {
    NewAccount {
        webhook_secrets: Vec::new(),
        name: name.to_owned(),
        sources: vec![
            (
                "mkp".to_owned(),
                SecretString::from(format!("{key}-mkp")),
                SourceOptions {
                    base_url: Some("http://127.0.0.1:9/".to_owned()),
                    every_secs: Some(60),
                    ..SourceOptions::default()
                },
            ),
            (
                "paypro".to_owned(),
                SecretString::from(format!("{key}-paypro")),
                SourceOptions::default(),
            ),
        ],
    }
}

#[tokio::test]
async fn accounts_are_added_listed_disabled_and_removed_and_no_key_is_stored_in_clear() {
    let Some(cluster) = payments_testkit::postgres::Cluster::start() else {
        return;
    };
    let url = cluster.database("accounts");
    let ledger = PgLedger::connect(&url, 2).await.unwrap();
    let master = MasterKey::generate();
    let added = ledger
        .add_account(new_account("acme-bv", KEY), &master)
        .await
        .unwrap();
    assert_eq!(added.sources.len(), 2);
    assert_eq!(
        added.sources[0].1.base_url.as_deref(),
        Some("http://127.0.0.1:9/")
    );
    ledger
        .add_account(new_account("bakker.nl", "other-key"), &master)
        .await
        .unwrap();
    let names: Vec<String> = ledger
        .accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["acme-bv", "bakker.nl"]);

    // Refused: a duplicate, a bad name, no source, the same source twice, a wrong master key.
    let duplicate = ledger
        .add_account(new_account("acme-bv", KEY), &master)
        .await
        .unwrap_err();
    assert!(
        matches!(duplicate, AccountError::Duplicate(_)),
        "{duplicate}"
    );
    // Names that look alike, read as a flag or a path, or are too long: refused, and never
    // echoed whole.
    let long = "n".repeat(10_000);
    for bad in [
        "",
        "a b",
        "x/y",
        ".",
        "..",
        "--x",
        "-x",
        ".hidden",
        "Acme",
        "асме",
        "ａｃｍｅ",
        &long,
        &"n".repeat(65),
    ] {
        let error = ledger
            .add_account(new_account(bad, KEY), &master)
            .await
            .unwrap_err();
        assert!(matches!(error, AccountError::BadName(_)), "{bad}: {error}");
        assert!(error.to_string().len() < 400, "{error}");
    }
    let mut twice = new_account("twice", KEY);
    twice.sources[1].0 = "mkp".to_owned();
    assert!(matches!(
        ledger.add_account(twice, &master).await.unwrap_err(),
        AccountError::BadSources(_)
    ));
    let wrong = ledger
        .add_account(new_account("intruder", KEY), &MasterKey::generate())
        .await
        .unwrap_err();
    assert!(
        matches!(wrong, AccountError::Key(KeyError::WrongMasterKey)),
        "{wrong}"
    );
    assert!(wrong.to_string().contains("PAYMENTS_MASTER_KEY"), "{wrong}");
    assert!(ledger.account("intruder").await.unwrap().is_none());

    // The dump holds no key, in clear or in base64, and no master key.
    let dump = cluster.dump("accounts");
    assert!(dump.contains("acme-bv"), "the dump is the ledger's");
    for secret in [
        format!("{KEY}-mkp"),
        format!("{KEY}-paypro"),
        "Recognisable".to_owned(),
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY}-mkp")),
        master.to_base64(),
    ] {
        assert!(!dump.contains(&secret), "the dump holds `{secret}`");
    }

    assert!(ledger.set_disabled("acme-bv", true).await.unwrap());
    assert!(ledger.account("acme-bv").await.unwrap().unwrap().disabled);
    assert!(!ledger.set_disabled("nobody", true).await.unwrap());
    assert!(ledger.remove_account("bakker.nl").await.unwrap());
    assert!(!ledger.remove_account("bakker.nl").await.unwrap());
    assert_eq!(ledger.accounts().await.unwrap().len(), 1);
}

#[tokio::test]
async fn each_due_source_is_leased_once_expired_leases_move_on_and_a_lost_lease_commits_nothing() {
    let Some(cluster) = payments_testkit::postgres::Cluster::start() else {
        return;
    };
    let url = cluster.database("leases");
    let ledger = PgLedger::connect(&url, 10).await.unwrap();
    let master = MasterKey::generate();
    // Each with keys of its own (sources sharing a key are never leased at once).
    for name in ["a", "b", "c"] {
        ledger
            .add_account(new_account(name, &format!("{KEY}-{name}")), &master)
            .await
            .unwrap();
    }
    ledger.set_disabled("c", true).await.unwrap();

    // Eight workers at once share the four due sources of a and b: each exactly once.
    let ttl = Duration::from_secs(60);
    let takers = (0..8).map(|n| {
        let ledger = ledger.clone();
        async move {
            let mut taken = Vec::new();
            while let Some(lease) = ledger.lease_due(&format!("w{n}"), ttl).await.unwrap() {
                taken.push(lease);
            }
            taken
        }
    });
    let leases: Vec<_> = futures::future::join_all(takers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let taken: HashSet<(String, String)> = leases
        .iter()
        .map(|l| (l.account_name.clone(), l.source_name.clone()))
        .collect();
    assert_eq!(
        leases.len(),
        4,
        "each due source once, the disabled account's never"
    );
    assert_eq!(taken.len(), 4);
    let lease = leases
        .iter()
        .find(|l| l.account_name == "a" && l.source_name == "mkp")
        .unwrap()
        .clone();
    assert_eq!(
        lease.api_key(&master).unwrap().expose_secret(),
        format!("{KEY}-a-mkp")
    );
    assert!(lease.api_key(&MasterKey::generate()).is_err());
    assert!(ledger.renew(&lease, ttl).await.unwrap());

    // The lease expires (its worker died): another worker takes the source over, the first
    // can no longer renew it, and its commits are refused, landing nothing.
    let client = sql(&url).await;
    client
        .execute(
            "UPDATE ledger.account_sources SET lease_expires_at = now() - interval '1 second'
             WHERE account_id = $1 AND source_name = $2",
            &[&lease.account_id, &lease.source_name],
        )
        .await
        .unwrap();
    let taken_over = ledger.lease_due("w9", ttl).await.unwrap().unwrap();
    assert_eq!(
        (taken_over.account_id, taken_over.source_name.as_str()),
        (lease.account_id, "mkp")
    );
    assert!(!ledger.renew(&lease, ttl).await.unwrap());
    let stale = ledger.leased_store(&lease);
    let checkpoint = payments_sync::Checkpoint::started(payments_sync::RunKind::Full, Utc::now());
    let commit = Commit {
        source: "mkp".to_owned(),
        observed_at: Utc::now(),
        payments: Vec::new(),
        rejected: Vec::new(),
        resolved: Vec::new(),
        groups: Vec::new(),
        unknown_words: vec!["word".to_owned()],
        checkpoint: Some(checkpoint),
    };
    let refused = stale.commit(commit.clone()).await.unwrap_err();
    assert!(matches!(refused, StoreError::Locked { .. }), "{refused}");
    assert!(
        stale
            .source_state("mkp")
            .await
            .unwrap()
            .checkpoint
            .is_none()
    );
    ledger
        .leased_store(&taken_over)
        .commit(commit)
        .await
        .unwrap();

    // Released with its next due time, the source is not due until then; runs that ended
    // more than RUNS_KEPT_DAYS ago are dropped.
    client
        .execute(
            "INSERT INTO ledger.runs (account_id, source_name, started_at, finished_at)
             VALUES ($1, 'mkp', now() - interval '40 days', now() - interval '40 days')",
            &[&taken_over.account_id],
        )
        .await
        .unwrap();
    ledger
        .release(&taken_over, Duration::from_secs(3600))
        .await
        .unwrap();
    let old_runs: i64 = client
        .query_one(
            "SELECT count(*) FROM ledger.runs WHERE finished_at < now() - interval '30 days'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        old_runs,
        0,
        "runs older than {} days are dropped",
        payments_postgres::RUNS_KEPT_DAYS
    );
    ledger.release(&lease, Duration::ZERO).await.unwrap();
    let due_in = ledger.next_due().await.unwrap().unwrap();
    assert!(due_in > Duration::from_secs(59 * 60), "{due_in:?}");
    assert!(ledger.lease_due("w10", ttl).await.unwrap().is_none());
}

/// Stored options that do not read back (a hand edit, a newer version's format) are a named
/// error for the worker's lease as for the account list, never the defaults: those would send
/// the key to the provider's public URL at its documented rate instead of the stored ones.
#[tokio::test]
async fn stored_options_that_do_not_read_back_are_named_never_the_defaults() {
    let Some(cluster) = payments_testkit::postgres::Cluster::start() else {
        return;
    };
    let url = cluster.database("unreadable_options");
    let ledger = PgLedger::connect(&url, 2).await.unwrap();
    let master = MasterKey::generate();
    ledger
        .add_account(new_account("acme", KEY), &master)
        .await
        .unwrap();
    let client = sql(&url).await;
    client
        .execute(
            r#"UPDATE ledger.account_sources SET options = '{"base_url": "https://mkp.staging.example/v1", "rate_limit": 5000000000}'"#,
            &[],
        )
        .await
        .unwrap();
    let listed = ledger.accounts().await.unwrap_err();
    assert!(matches!(listed, StoreError::Corrupt { .. }), "{listed:?}");
    let lease = ledger
        .lease_due("w1", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("a source is due");
    let unreadable = lease.options.expect_err("the options do not read back");
    assert!(
        unreadable.contains(&format!("the options of {}", lease.source_name))
            && unreadable.contains("5000000000"),
        "{unreadable}"
    );
}

/// Eight first `add`s at once into a fresh database, with two different master keys: one key
/// wins, every add with the other is refused, and every key stored opens with the winner.
#[tokio::test]
async fn first_adds_racing_with_two_master_keys_leave_one_key_that_opens_every_account() {
    let Some(cluster) = payments_testkit::postgres::Cluster::start() else {
        return;
    };
    for round in 0..3 {
        let url = cluster.database(&format!("race{round}"));
        PgLedger::connect(&url, 2).await.unwrap();
        let keys = [MasterKey::generate(), MasterKey::generate()];
        let adds = (0..8).map(|n| {
            let url = url.clone();
            let master = MasterKey::from_base64(&keys[n % 2].to_base64()).unwrap();
            tokio::spawn(async move {
                let ledger = PgLedger::connect(&url, 2).await.unwrap();
                let added = ledger
                    .add_account(new_account(&format!("shop{n}"), KEY), &master)
                    .await;
                (n % 2, added)
            })
        });
        let mut won = HashSet::new();
        for add in futures::future::join_all(adds).await {
            let (key, added) = add.unwrap();
            match added {
                Ok(_) => {
                    won.insert(key);
                }
                Err(AccountError::Key(KeyError::WrongMasterKey)) => {}
                Err(other) => panic!("round {round}: {other}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: one key wins: {won:?}");
        let winner = &keys[*won.iter().next().unwrap()];
        let ledger = PgLedger::connect(&url, 2).await.unwrap();
        ledger.check_master_key(winner).await.unwrap();
        while let Some(lease) = ledger
            .lease_due("checker", Duration::from_secs(60))
            .await
            .unwrap()
        {
            lease
                .api_key(winner)
                .unwrap_or_else(|e| panic!("round {round}: {}: {e}", lease.account_name));
        }
    }
}

/// A rotation: workers switched to the new key with the previous one beside it open every
/// key before and after; the rotation seals every key and secret anew in one go; after it the
/// new key alone opens everything and the old one alone no longer does.
#[tokio::test]
async fn a_master_key_rotation_seals_every_key_anew_and_workers_with_both_keys_go_on() {
    let Some(cluster) = payments_testkit::postgres::Cluster::start() else {
        return;
    };
    let url = cluster.database("rotation");
    let ledger = PgLedger::connect(&url, 2).await.unwrap();
    let old = MasterKey::generate();
    let mut with_secret = new_account("with-secret", KEY);
    with_secret.webhook_secrets = vec![("paypro".to_owned(), SecretString::from("whsec_1"))];
    for account in [new_account("plain", KEY), with_secret] {
        ledger.add_account(account, &old).await.unwrap();
    }
    let new = || MasterKey::from_base64(&MasterKey::generate().to_base64()).unwrap();
    let new_key = new();
    let switched = MasterKey::from_base64(&new_key.to_base64())
        .unwrap()
        .with_previous(MasterKey::from_base64(&old.to_base64()).unwrap());
    // What a run saw of the keys' rate limit is noted under their fingerprints.
    let noted = payments_sync::LimiterSnapshot {
        remaining: 7,
        at: Utc::now(),
        requests: Vec::new(),
    };
    while let Some(lease) = ledger
        .lease_due("noter", Duration::from_secs(60))
        .await
        .unwrap()
    {
        ledger.note_rate_limit(&lease, &noted).await.unwrap();
        ledger.release(&lease, Duration::ZERO).await.unwrap();
        if lease.account_name == "with-secret" && lease.source_name == "paypro" {
            break;
        }
    }
    // A run that goes on through the rotation.
    let in_flight = ledger
        .lease_due("in-flight", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    // Before the rotation: the new key alone is refused, with the previous beside it accepted.
    assert!(ledger.check_master_key(&new_key).await.is_err());
    ledger.check_master_key(&switched).await.unwrap();
    let opened = |master: &MasterKey| {
        let ledger = &ledger;
        let master = MasterKey::from_base64(&master.to_base64()).unwrap();
        async move {
            let mut keys = Vec::new();
            while let Some(lease) = ledger
                .lease_due("rotator", Duration::from_secs(60))
                .await
                .unwrap()
            {
                keys.push(lease.api_key(&master).map(|k| k.expose_secret().to_owned()));
                assert_eq!(
                    lease.key_rate_limit.as_ref().map(|seen| seen.remaining),
                    Some(7),
                    "what was noted of the key follows its new fingerprint"
                );
                ledger.release(&lease, Duration::ZERO).await.unwrap();
                if keys.len() == 4 {
                    break;
                }
            }
            keys
        }
    };
    assert_eq!(
        ledger.rotate_master_key(&switched).await.unwrap(),
        5,
        "4 keys, 1 secret"
    );
    // What the run in flight saw is under a fingerprint no source has now: not noted, so no
    // row is left that nothing reads.
    ledger.note_rate_limit(&in_flight, &noted).await.unwrap();
    ledger.release(&in_flight, Duration::ZERO).await.unwrap();
    let client = sql(&url).await;
    let notes: i64 = client
        .query_one(
            "SELECT count(*) FROM ledger.key_limits k
             WHERE NOT EXISTS (SELECT 1 FROM ledger.account_sources s
                               WHERE s.key_fingerprint = k.key_fingerprint)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(notes, 0, "no note is left under an old fingerprint");
    // After: the new key alone opens every key; the old one no longer does.
    ledger.check_master_key(&new_key).await.unwrap();
    assert!(matches!(
        ledger.check_master_key(&old).await.unwrap_err(),
        AccountError::Key(KeyError::WrongMasterKey)
    ));
    let keys = opened(&new_key).await;
    assert_eq!(keys.len(), 4);
    assert!(
        keys.iter()
            .all(|k| k.as_ref().is_ok_and(|k| k.starts_with(KEY))),
        "{keys:?}"
    );
    // A rotation with a key that opens nothing changes nothing.
    let stranger = new();
    assert!(ledger.rotate_master_key(&stranger).await.is_err());
    ledger.check_master_key(&new_key).await.unwrap();
}

#[tokio::test]
async fn an_account_removed_while_a_worker_syncs_it_is_said_as_removed() {
    let Some(cluster) = payments_testkit::postgres::Cluster::start() else {
        return;
    };
    let ledger = PgLedger::connect(&cluster.database("removal"), 2)
        .await
        .unwrap();
    let master = MasterKey::generate();
    ledger
        .add_account(new_account("gone", KEY), &master)
        .await
        .unwrap();
    // An account removed while a worker syncs it: the worker's next commit says so (not
    // "another sync"), and commits nothing.
    let lease = ledger
        .lease_due("remover", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let store = ledger.leased_store(&lease);
    assert!(ledger.remove_account(&lease.account_name).await.unwrap());
    let refused = store
        .commit(Commit {
            source: lease.source_name.clone(),
            observed_at: Utc::now(),
            payments: Vec::new(),
            rejected: Vec::new(),
            resolved: Vec::new(),
            groups: Vec::new(),
            unknown_words: Vec::new(),
            checkpoint: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::Conflict { .. }) && refused.to_string().contains("removed"),
        "{refused}"
    );
}

/// One key, one lease: two accounts with the same MKP key are never leased at once, whichever
/// workers ask; the other account's source is leased once the first is released. `sharing_keys`
/// names them.
#[tokio::test]
async fn sources_sharing_a_key_are_never_leased_at_once() {
    let Some(cluster) = payments_testkit::postgres::Cluster::start() else {
        return;
    };
    let ledger = PgLedger::connect(&cluster.database("shared"), 10)
        .await
        .unwrap();
    let master = MasterKey::generate();
    for name in ["first", "second"] {
        let mut account = new_account(name, KEY);
        account.sources.truncate(1);
        ledger.add_account(account, &master).await.unwrap();
    }
    assert_eq!(
        ledger.sharing_keys("second").await.unwrap(),
        ["first/mkp"],
        "the key is named as shared"
    );
    let ttl = Duration::from_secs(60);
    let takers = (0..6).map(|n| {
        let ledger = ledger.clone();
        async move { ledger.lease_due(&format!("w{n}"), ttl).await.unwrap() }
    });
    let leases: Vec<_> = futures::future::join_all(takers)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(leases.len(), 1, "one key, one lease");
    // The other is due, but not before the lease on its key ends: an idle worker sleeps.
    let due_in = ledger.next_due().await.unwrap().unwrap();
    assert!(
        due_in > Duration::from_secs(50) && due_in <= ttl,
        "due when the key's lease ends, not now: {due_in:?}"
    );
    ledger
        .release(&leases[0], Duration::from_secs(3600))
        .await
        .unwrap();
    let next = ledger.lease_due("w9", ttl).await.unwrap().unwrap();
    assert_ne!(next.account_name, leases[0].account_name);
    // Nothing to wait for at all (every account disabled): no due time, not "due now".
    for name in ["first", "second"] {
        assert!(ledger.set_disabled(name, true).await.unwrap());
    }
    assert_eq!(ledger.next_due().await.unwrap(), None);
}

/// Sources added before fingerprints were kept have none, so one key, one lease could not see
/// them; a worker's start gives them one.
#[tokio::test]
async fn sources_without_a_fingerprint_are_given_one_and_then_share_one_lease() {
    let Some(cluster) = payments_testkit::postgres::Cluster::start() else {
        return;
    };
    let url = cluster.database("unfingerprinted");
    let ledger = PgLedger::connect(&url, 10).await.unwrap();
    let master = MasterKey::generate();
    for name in ["first", "second"] {
        let mut account = new_account(name, KEY);
        account.sources.truncate(1);
        ledger.add_account(account, &master).await.unwrap();
    }
    let client = sql(&url).await;
    client
        .execute(
            "UPDATE ledger.account_sources SET key_fingerprint = NULL",
            &[],
        )
        .await
        .unwrap();
    let ttl = Duration::from_secs(60);
    let both = [
        ledger.lease_due("w1", ttl).await.unwrap(),
        ledger.lease_due("w2", ttl).await.unwrap(),
    ];
    assert!(
        both.iter().all(Option::is_some),
        "without fingerprints, both are leased"
    );
    for lease in both.into_iter().flatten() {
        ledger.release(&lease, Duration::ZERO).await.unwrap();
    }

    // A key that does not open (restored from another ledger) is named and left: it does not
    // keep the others from their fingerprints, nor a worker from starting.
    let mut third = new_account("third", "mk_other");
    third.sources.truncate(1);
    ledger.add_account(third, &master).await.unwrap();
    assert!(ledger.set_disabled("third", true).await.unwrap());
    client
        .execute(
            "UPDATE ledger.account_sources SET key_fingerprint = NULL, sealed_key = '\\x00'::bytea
             WHERE account_id = (SELECT id FROM ledger.accounts WHERE name = 'third')",
            &[],
        )
        .await
        .unwrap();
    let done = ledger.fingerprint_keys(&master).await.unwrap();
    assert_eq!(done.given, 2);
    assert_eq!(done.unopened, ["third/mkp"]);
    assert_eq!(
        ledger.fingerprint_keys(&master).await.unwrap().given,
        0,
        "once"
    );
    assert!(ledger.lease_due("w1", ttl).await.unwrap().is_some());
    assert!(
        ledger.lease_due("w2", ttl).await.unwrap().is_none(),
        "one key, one lease"
    );
}

/// The options `change` gives in place of the stored ones (what `accounts update` asks).
fn over(
    change: SourceOptions,
) -> impl FnOnce(Option<&SourceOptions>) -> Result<SourceOptions, String> + Send {
    move |stored| {
        let stored = stored.cloned().unwrap_or_default();
        Ok(SourceOptions {
            base_url: change.base_url.or(stored.base_url),
            rate_limit: change.rate_limit.or(stored.rate_limit),
            rate_window_secs: change.rate_window_secs.or(stored.rate_window_secs),
            every_secs: change.every_secs.or(stored.every_secs),
        })
    }
}

/// The stored options of `account`'s `source`.
async fn options_of(ledger: &PgLedger, account: &str, source: &str) -> SourceOptions {
    let account = ledger.account(account).await.unwrap().unwrap();
    account
        .sources
        .into_iter()
        .find(|(name, _)| name == source)
        .unwrap_or_else(|| panic!("no source {source}"))
        .1
}

/// How many seconds after the database's now `account`'s `source` is due.
async fn due_in(client: &tokio_postgres::Client, account: &str, source: &str) -> f64 {
    client
        .query_one(
            "SELECT extract(epoch FROM s.next_run_at - now())::float8
             FROM ledger.account_sources s JOIN ledger.accounts a ON a.id = s.account_id
             WHERE a.name = $1 AND s.source_name = $2",
            &[&account, &source],
        )
        .await
        .unwrap()
        .get(0)
}

/// Each field of a source changes and reads back; a new key is sealed for its account and
/// source and fingerprinted as an added one is (`sharing_keys` sees it); a webhook secret is
/// sealed and removed; the other source is left as it was.
#[tokio::test]
async fn a_source_is_updated_field_by_field_and_its_new_key_is_sealed_as_an_added_one() {
    let Some(cluster) = payments_testkit::postgres::Cluster::start() else {
        return;
    };
    let ledger = PgLedger::connect(&cluster.database("update"), 2)
        .await
        .unwrap();
    let master = MasterKey::generate();
    ledger
        .add_account(new_account("acme", KEY), &master)
        .await
        .unwrap();
    let paypro_before = options_of(&ledger, "acme", "paypro").await;
    let changes = [
        SourceOptions {
            base_url: Some("http://127.0.0.1:7/v1".to_owned()),
            ..SourceOptions::default()
        },
        SourceOptions {
            rate_limit: Some(5),
            ..SourceOptions::default()
        },
        SourceOptions {
            rate_window_secs: Some(2),
            ..SourceOptions::default()
        },
        SourceOptions {
            every_secs: Some(900),
            ..SourceOptions::default()
        },
    ];
    let mut expected = options_of(&ledger, "acme", "mkp").await;
    for change in changes {
        let (before, after) = ledger
            .update_source("acme", "mkp", over(change.clone()), None, None, &master)
            .await
            .unwrap();
        assert_eq!(before.as_ref(), Some(&expected));
        expected = SourceOptions {
            base_url: change.base_url.or(expected.base_url),
            rate_limit: change.rate_limit.or(expected.rate_limit),
            rate_window_secs: change.rate_window_secs.or(expected.rate_window_secs),
            every_secs: change.every_secs.or(expected.every_secs),
        };
        assert_eq!(after, expected);
        assert_eq!(options_of(&ledger, "acme", "mkp").await, expected);
    }
    assert_eq!(
        expected,
        SourceOptions {
            base_url: Some("http://127.0.0.1:7/v1".to_owned()),
            rate_limit: Some(5),
            rate_window_secs: Some(2),
            every_secs: Some(900),
        }
    );
    assert_eq!(options_of(&ledger, "acme", "paypro").await, paypro_before);

    // A new key: the account named `twin`, added with it, shares it with acme/paypro only
    // once acme's key is replaced by it (the fingerprints are one computation).
    let new_key = SecretString::from("pk_live_Replaced_9Zx1");
    let twin = NewAccount {
        webhook_secrets: Vec::new(),
        name: "twin".to_owned(),
        sources: vec![(
            "paypro".to_owned(),
            new_key.clone(),
            SourceOptions::default(),
        )],
    };
    ledger.add_account(twin, &master).await.unwrap();
    assert!(ledger.sharing_keys("twin").await.unwrap().is_empty());
    let (before, after) = ledger
        .update_source(
            "acme",
            "paypro",
            over(SourceOptions::default()),
            Some(&new_key),
            None,
            &master,
        )
        .await
        .unwrap();
    assert_eq!(before, Some(after));
    assert_eq!(ledger.sharing_keys("twin").await.unwrap(), ["acme/paypro"]);
    assert_eq!(ledger.sharing_keys("acme").await.unwrap(), ["twin/paypro"]);
    // The worker's lease opens it with the master key, and with no other.
    ledger.set_disabled("twin", true).await.unwrap();
    let mut opened = None;
    while let Some(lease) = ledger
        .lease_due("w1", Duration::from_secs(60))
        .await
        .unwrap()
    {
        if lease.source_name == "paypro" {
            assert!(lease.api_key(&MasterKey::generate()).is_err());
            opened = Some(lease.api_key(&master).unwrap().expose_secret().to_owned());
        }
    }
    assert_eq!(opened.as_deref(), Some("pk_live_Replaced_9Zx1"));

    // A webhook secret sealed, then removed.
    let secret = SecretString::from("whsec_Recognisable");
    ledger
        .update_source(
            "acme",
            "mkp",
            over(SourceOptions::default()),
            None,
            Some(Some(&secret)),
            &master,
        )
        .await
        .unwrap();
    let opened = ledger.webhook_secret("acme", "mkp", &master).await.unwrap();
    assert_eq!(
        opened.as_ref().map(|s| s.expose_secret()),
        Some("whsec_Recognisable")
    );
    assert!(
        ledger
            .webhook_secret("acme", "paypro", &master)
            .await
            .unwrap()
            .is_none()
    );
    ledger
        .update_source(
            "acme",
            "mkp",
            over(SourceOptions::default()),
            None,
            Some(None),
            &master,
        )
        .await
        .unwrap();
    assert!(
        ledger
            .webhook_secret("acme", "mkp", &master)
            .await
            .unwrap()
            .is_none()
    );

    // Neither the new key nor the secret is in the database in clear.
    let dump = cluster.dump("update");
    for clear in ["Replaced_9Zx1", "whsec_Recognisable"] {
        assert!(!dump.contains(clear), "the dump holds `{clear}`");
    }
}

/// An account that lacks a source gets it with its key (sealed and leased as an added one),
/// and is refused it without one, naming the sources it has.
#[tokio::test]
async fn a_source_an_account_lacks_is_added_by_an_update_with_its_key() {
    let Some(cluster) = payments_testkit::postgres::Cluster::start() else {
        return;
    };
    let ledger = PgLedger::connect(&cluster.database("update_adds"), 2)
        .await
        .unwrap();
    let master = MasterKey::generate();
    let mut account = new_account("acme", KEY);
    account.sources.truncate(1);
    ledger.add_account(account, &master).await.unwrap();
    let keyless = ledger
        .update_source(
            "acme",
            "paypro",
            over(SourceOptions::default()),
            None,
            None,
            &master,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&keyless, AccountError::NoSource { source_name, .. } if source_name == "paypro"),
        "{keyless}"
    );
    assert!(keyless.to_string().contains("(it has mkp)"), "{keyless}");

    let key = SecretString::from("pk_paypro_Added");
    let secret = SecretString::from("whsec_added");
    let every = SourceOptions {
        every_secs: Some(120),
        ..SourceOptions::default()
    };
    let (before, after) = ledger
        .update_source(
            "acme",
            "paypro",
            over(every.clone()),
            Some(&key),
            Some(Some(&secret)),
            &master,
        )
        .await
        .unwrap();
    assert_eq!((before, after), (None, every.clone()));
    let sources: Vec<String> = ledger
        .account("acme")
        .await
        .unwrap()
        .unwrap()
        .sources
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(sources, ["mkp", "paypro"]);
    assert_eq!(options_of(&ledger, "acme", "paypro").await, every);
    assert!(
        ledger
            .webhook_secret("acme", "paypro", &master)
            .await
            .unwrap()
            .is_some()
    );
    let mut leased = Vec::new();
    while let Some(lease) = ledger
        .lease_due("w1", Duration::from_secs(60))
        .await
        .unwrap()
    {
        leased.push((
            lease.source_name.clone(),
            lease.api_key(&master).unwrap().expose_secret().to_owned(),
        ));
    }
    leased.sort();
    assert_eq!(
        leased,
        [
            ("mkp".to_owned(), format!("{KEY}-mkp")),
            ("paypro".to_owned(), "pk_paypro_Added".to_owned())
        ],
        "the added source is due at once, with its key"
    );
}

/// Refused, changing nothing: an unknown account, a bad name, a new key under a master key
/// that is not the database's, and options the caller's check refuses.
#[tokio::test]
async fn an_update_of_what_is_not_there_or_not_allowed_is_refused_and_changes_nothing() {
    let Some(cluster) = payments_testkit::postgres::Cluster::start() else {
        return;
    };
    let url = cluster.database("update_refused");
    let ledger = PgLedger::connect(&url, 2).await.unwrap();
    let master = MasterKey::generate();
    ledger
        .add_account(new_account("acme", KEY), &master)
        .await
        .unwrap();
    let before = ledger.account("acme").await.unwrap().unwrap();
    let base_url = SourceOptions {
        base_url: Some("http://127.0.0.1:7/v1".to_owned()),
        ..SourceOptions::default()
    };
    let key = SecretString::from("pk_new");

    let change_mkp = |name: &'static str| {
        let (ledger, master, options) = (&ledger, &master, base_url.clone());
        async move {
            ledger
                .update_source(name, "mkp", over(options), None, None, master)
                .await
        }
    };
    let missing = change_mkp("nobody").await.unwrap_err();
    assert!(
        matches!(&missing, AccountError::NoAccount(name) if name == "nobody"),
        "{missing}"
    );
    assert!(
        missing.to_string().contains("no account `nobody`"),
        "{missing}"
    );
    let bad = change_mkp("Acme\u{1b}[2J").await.unwrap_err();
    assert!(matches!(bad, AccountError::NoAccount(_)), "{bad}");
    assert!(!bad.to_string().contains('\u{1b}'), "{bad}");
    // An account named before the name rule is changed by its name as stored.
    ledger
        .add_account(new_account("legacy", KEY), &master)
        .await
        .unwrap();
    sql(&url)
        .await
        .execute(
            "UPDATE ledger.accounts SET name = 'Legacy Shop' WHERE name = 'legacy'",
            &[],
        )
        .await
        .unwrap();
    change_mkp("Legacy Shop")
        .await
        .expect("an account named under the older rule is updated");
    assert_eq!(
        options_of(&ledger, "Legacy Shop", "mkp").await.base_url,
        base_url.base_url
    );
    ledger.remove_account("Legacy Shop").await.unwrap();
    let wrong = ledger
        .update_source(
            "acme",
            "mkp",
            over(base_url.clone()),
            Some(&key),
            None,
            &MasterKey::generate(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(wrong, AccountError::Key(KeyError::WrongMasterKey)),
        "{wrong}"
    );
    let refused = ledger
        .update_source(
            "acme",
            "mkp",
            |_: Option<&SourceOptions>| Err("--every: at least 10s".to_owned()),
            Some(&key),
            None,
            &master,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, AccountError::BadOptions(said) if said == "--every: at least 10s"),
        "{refused}"
    );
    assert_eq!(ledger.account("acme").await.unwrap().unwrap(), before);
    assert!(ledger.sharing_keys("acme").await.unwrap().is_empty());
    let lease = ledger
        .lease_due("w1", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(
        lease
            .api_key(&master)
            .unwrap()
            .expose_secret()
            .starts_with(KEY),
        "the key is the one added"
    );
}

/// The schedule, by the database's clock: a shorter `every` brings the next run forward to at
/// most that long from now, a longer one leaves it, a rate limit moves nothing, and a new base
/// URL or key makes the source due now. A source leased while it changes: its worker's run goes
/// on with what it read, its release keeps the change's sooner due time, and the next lease
/// reads the change.
#[tokio::test]
async fn a_shorter_schedule_a_new_base_url_or_key_brings_the_next_run_forward() {
    let Some(cluster) = payments_testkit::postgres::Cluster::start() else {
        return;
    };
    let url = cluster.database("update_schedule");
    let ledger = PgLedger::connect(&url, 2).await.unwrap();
    let client = sql(&url).await;
    let master = MasterKey::generate();
    let mut account = new_account("acme", KEY);
    account.sources.truncate(1);
    ledger.add_account(account, &master).await.unwrap();
    let ttl = Duration::from_secs(60);
    let lease = ledger.lease_due("w1", ttl).await.unwrap().unwrap();
    ledger
        .release(&lease, Duration::from_secs(3600))
        .await
        .unwrap();
    let hour = due_in(&client, "acme", "mkp").await;
    assert!((3590.0..=3600.0).contains(&hour), "{hour}");
    let every = |secs| SourceOptions {
        every_secs: Some(secs),
        ..SourceOptions::default()
    };
    let rate_limit = |limit| SourceOptions {
        rate_limit: Some(limit),
        ..SourceOptions::default()
    };
    let update = |change: SourceOptions, key: Option<&'static str>| {
        let ledger = &ledger;
        let master = &master;
        async move {
            let key = key.map(SecretString::from);
            ledger
                .update_source("acme", "mkp", over(change), key.as_ref(), None, master)
                .await
                .unwrap()
        }
    };

    // A rate limit moves nothing; a longer schedule neither.
    update(rate_limit(5), None).await;
    update(every(7200), None).await;
    let still = due_in(&client, "acme", "mkp").await;
    assert!((3590.0..=3600.0).contains(&still), "{still}");
    // A shorter one: due in at most that long.
    update(every(120), None).await;
    let sooner = due_in(&client, "acme", "mkp").await;
    assert!((110.0..=120.0).contains(&sooner), "{sooner}");
    // A new base URL: due now.
    update(
        SourceOptions {
            base_url: Some("http://127.0.0.1:7/v1".to_owned()),
            ..SourceOptions::default()
        },
        None,
    )
    .await;
    assert!(due_in(&client, "acme", "mkp").await <= 0.0);

    // Leased while it changes (a new key and base URL): the run goes on with what it read and
    // renews its lease; its release sets the next run; the next lease reads the change.
    let lease = ledger.lease_due("w1", ttl).await.unwrap().unwrap();
    update(
        SourceOptions {
            base_url: Some("http://127.0.0.1:8/v1".to_owned()),
            ..SourceOptions::default()
        },
        Some("pk_live_While_Leased"),
    )
    .await;
    assert_eq!(
        lease.options.as_ref().unwrap().base_url.as_deref(),
        Some("http://127.0.0.1:7/v1")
    );
    assert!(ledger.renew(&lease, ttl).await.unwrap());
    assert!(
        ledger.lease_due("w2", ttl).await.unwrap().is_none(),
        "still leased"
    );
    ledger
        .release(&lease, Duration::from_secs(600))
        .await
        .unwrap();
    let released = due_in(&client, "acme", "mkp").await;
    assert!(
        released <= 0.0,
        "the change made it due now, and the release of the run that read the old key keeps that: {released}"
    );
    // A change that asks for no sooner run (a rate limit) while a run holds the source: the
    // release sets the next run as ever.
    let unchanged = ledger.lease_due("w1", ttl).await.unwrap().unwrap();
    update(rate_limit(9), None).await;
    ledger
        .release(&unchanged, Duration::from_secs(600))
        .await
        .unwrap();
    let released = due_in(&client, "acme", "mkp").await;
    assert!((590.0..=600.0).contains(&released), "{released}");
    update(SourceOptions::default(), Some("pk_live_After")).await;
    let next = ledger.lease_due("w2", ttl).await.unwrap().unwrap();
    assert_eq!(
        next.options.as_ref().unwrap().base_url.as_deref(),
        Some("http://127.0.0.1:8/v1")
    );
    assert_eq!(
        next.api_key(&master).unwrap().expose_secret(),
        "pk_live_After"
    );
}
