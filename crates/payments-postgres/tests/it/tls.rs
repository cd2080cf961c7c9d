//! TLS to PostgreSQL against a real server with `ssl=on` and a CA generated here: what each
//! `sslmode` accepts, what it refuses, and that what it accepts is encrypted.

use payments_postgres::PgLedger;
use payments_testkit::postgres::{Cluster, TlsCluster};

/// Connects and says whether the connection is encrypted, or why it failed.
async fn encrypted(url: &str) -> Result<bool, String> {
    let ledger = PgLedger::connect(url, 1)
        .await
        .map_err(|error| error.to_string())?;
    ledger.encrypted().await.map_err(|error| error.to_string())
}

#[tokio::test]
async fn verify_full_needs_the_right_root_and_the_certificates_host_name() {
    let Some(tls) = TlsCluster::start() else {
        return;
    };
    assert_eq!(
        encrypted(&tls.url("db.test", "sslmode=verify-full&sslrootcert={ca}")).await,
        Ok(true)
    );

    let wrong_name = encrypted(&tls.url("127.0.0.1", "sslmode=verify-full&sslrootcert={ca}"))
        .await
        .unwrap_err();
    assert!(wrong_name.contains("not valid for name"), "{wrong_name}");
    assert!(wrong_name.contains("db.test"), "{wrong_name}");
    assert!(
        wrong_name.contains("not trusted under sslmode=verify-full"),
        "{wrong_name}"
    );

    let unknown_ca = encrypted(&tls.url("db.test", "sslmode=verify-full&sslrootcert={other}"))
        .await
        .unwrap_err();
    assert!(unknown_ca.contains("UnknownIssuer"), "{unknown_ca}");
}

#[tokio::test]
async fn verify_ca_checks_the_root_but_not_the_name() {
    let Some(tls) = TlsCluster::start() else {
        return;
    };
    assert_eq!(
        encrypted(&tls.url("127.0.0.1", "sslmode=verify-ca&sslrootcert={ca}")).await,
        Ok(true)
    );
    let unknown_ca = encrypted(&tls.url("127.0.0.1", "sslmode=verify-ca&sslrootcert={other}"))
        .await
        .unwrap_err();
    assert!(unknown_ca.contains("UnknownIssuer"), "{unknown_ca}");
    // As libpq: require with roots given checks them as verify-ca does.
    let unknown_ca = encrypted(&tls.url("127.0.0.1", "sslmode=require&sslrootcert={other}"))
        .await
        .unwrap_err();
    assert!(unknown_ca.contains("UnknownIssuer"), "{unknown_ca}");
}

#[tokio::test]
async fn prefer_and_require_encrypt_without_checking_and_disable_does_not_encrypt() {
    let Some(tls) = TlsCluster::start() else {
        return;
    };
    // No sslmode: libpq's default, prefer.
    assert_eq!(encrypted(&tls.url("127.0.0.1", "")).await, Ok(true));
    assert_eq!(
        encrypted(&tls.url("127.0.0.1", "sslmode=require")).await,
        Ok(true)
    );
    assert_eq!(
        encrypted(&tls.url("127.0.0.1", "sslmode=disable")).await,
        Ok(false)
    );
}

#[tokio::test]
async fn require_refuses_a_server_without_tls_which_prefer_accepts_unencrypted() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.database("ledger");
    let refused = encrypted(&format!("{url}?sslmode=require"))
        .await
        .unwrap_err();
    assert!(refused.contains("server does not support TLS"), "{refused}");
    assert!(refused.contains("sslmode=require requires"), "{refused}");
    assert_eq!(encrypted(&format!("{url}?sslmode=prefer")).await, Ok(false));

    // A server elsewhere that fell back to plain text is worth a warning; this machine, or
    // plain text asked for, is not.
    let port = cluster.port();
    let remote = format!("postgresql://postgres@db.test:{port}/ledger?hostaddr=127.0.0.1");
    let said = warning(&remote).await.expect("a warning");
    assert!(said.contains("is not encrypted"), "{said}");
    assert!(said.contains("sslmode=prefer"), "{said}");
    assert_eq!(warning(&format!("{remote}&sslmode=disable")).await, None);
    assert_eq!(warning(&url).await, None);
}

#[tokio::test]
async fn an_encrypted_connection_to_a_server_elsewhere_is_not_warned_about() {
    let Some(tls) = TlsCluster::start() else {
        return;
    };
    assert_eq!(warning(&tls.url("db.test", "")).await, None);
}

async fn warning(url: &str) -> Option<String> {
    let ledger = PgLedger::connect(url, 1).await.unwrap();
    ledger.unencrypted_warning().await.unwrap()
}
