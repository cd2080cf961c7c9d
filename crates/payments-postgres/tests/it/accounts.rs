//! Accounts with sealed keys, and the leases a fleet of workers takes them by.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use payments_postgres::{AccountError, KeyError, MasterKey, NewAccount, PgLedger, SourceOptions};
use payments_sync::{Commit, Store, StoreError};
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
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
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
    let due = ledger.next_due().await.unwrap().unwrap();
    assert!(due > Utc::now() + chrono::Duration::minutes(59), "{due}");
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
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
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
    ledger
        .release(&leases[0], Duration::from_secs(3600))
        .await
        .unwrap();
    let next = ledger.lease_due("w9", ttl).await.unwrap().unwrap();
    assert_ne!(next.account_name, leases[0].account_name);
}
