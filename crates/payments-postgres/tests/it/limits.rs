//! What the provider last said of a key's rate limit goes from one run with the key to the
//! next, under whichever account: a key shared by two accounts keeps its limit across them.

use std::time::Duration;

use chrono::Utc;
use payments_postgres::{MasterKey, NewAccount, PgLedger, SourceOptions};
use payments_sync::LimiterSnapshot;
use secrecy::SecretString;

fn mkp_account(name: &str, key: &str) -> NewAccount {
    NewAccount {
        webhook_secrets: Vec::new(),
        name: name.to_owned(),
        sources: vec![(
            "mkp".to_owned(),
            SecretString::from(key.to_owned()),
            SourceOptions::default(),
        )],
    }
}

#[tokio::test]
async fn the_rate_limit_a_run_saw_starts_the_next_run_with_its_key_under_another_account() {
    let Some(cluster) = payments_testkit::postgres::Cluster::start() else {
        return;
    };
    let ledger = PgLedger::connect(&cluster.database("limits"), 4)
        .await
        .unwrap();
    let master = MasterKey::generate();
    for (name, key) in [("first", "shared"), ("second", "shared"), ("other", "own")] {
        ledger
            .add_account(mkp_account(name, key), &master)
            .await
            .unwrap();
    }
    let ttl = Duration::from_secs(60);
    let first = ledger.lease_due("w1", ttl).await.unwrap().unwrap();
    assert_eq!(first.key_rate_limit, None, "nothing noted yet");
    let seen = LimiterSnapshot {
        remaining: 0,
        at: Utc::now(),
        requests: vec![Utc::now(); 3],
    };
    ledger.note_rate_limit(&first, &seen).await.unwrap();
    ledger
        .release(&first, Duration::from_secs(3600))
        .await
        .unwrap();

    let mut later = Vec::new();
    while let Some(lease) = ledger.lease_due("w2", ttl).await.unwrap() {
        later.push(lease);
    }
    for lease in &later {
        let shares = lease.account_name != "other";
        // Kept on the database's clock and read back on this one's: the same instants, to
        // within the time between the two readings of the clocks.
        match (&lease.key_rate_limit, shares) {
            (Some(read), true) => assert!(alike(read, &seen), "{read:?} against {seen:?}"),
            (None, false) => {}
            (read, _) => panic!("{}: {read:?}", lease.account_name),
        }
    }
    assert_eq!(later.len(), 2, "second and other were due");

    // A note of an earlier sight (a frozen worker's, whose lease was taken over) does not
    // replace a later one.
    let again = &later.iter().find(|l| l.account_name == "second").unwrap();
    let older = LimiterSnapshot {
        remaining: 30,
        at: seen.at - chrono::TimeDelta::seconds(30),
        requests: Vec::new(),
    };
    ledger.note_rate_limit(again, &older).await.unwrap();
    for lease in later {
        ledger.release(&lease, Duration::ZERO).await.unwrap();
    }
    let next = ledger.lease_due("w3", ttl).await.unwrap().unwrap();
    let next = if next.account_name == "other" {
        ledger.lease_due("w3", ttl).await.unwrap().unwrap()
    } else {
        next
    };
    assert!(
        alike(next.key_rate_limit.as_ref().unwrap(), &seen),
        "the later sight is kept: {:?}",
        next.key_rate_limit
    );
}

/// Whether `read` is `noted` to within a second of each instant.
fn alike(read: &LimiterSnapshot, noted: &LimiterSnapshot) -> bool {
    let close = |a: chrono::DateTime<Utc>, b: chrono::DateTime<Utc>| {
        (a - b).abs() < chrono::TimeDelta::seconds(1)
    };
    read.remaining == noted.remaining
        && close(read.at, noted.at)
        && read.requests.len() == noted.requests.len()
        && read
            .requests
            .iter()
            .zip(&noted.requests)
            .all(|(a, b)| close(*a, *b))
}
