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
        let expected = shares.then(|| seen.clone());
        assert_eq!(lease.key_rate_limit, expected, "{}", lease.account_name);
    }
    assert_eq!(later.len(), 2, "second and other were due");
}
