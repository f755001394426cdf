//! PostgreSQL over TLS: `sslmode=verify-full` with the server's CA connects encrypted, creates
//! databases and migrates; a CA that did not sign the server's certificate is refused.
//! `scripts/test` starts the TLS server (`KEEL_TLS_DATABASE_URL`, `KEEL_TLS_CA`).

use std::str::FromStr as _;

use keel_db::testing::TestDatabase;
use sqlx::postgres::PgConnectOptions;

fn tls_url() -> String {
    std::env::var("KEEL_TLS_DATABASE_URL").expect(
        "KEEL_TLS_DATABASE_URL is not set: run the tests through scripts/test, which starts a TLS PostgreSQL",
    )
}

async fn encrypted(url: &str) -> bool {
    let db = keel_db::connect(url, "public", 1).await.unwrap();
    let (ssl, version): (bool, Option<String>) =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&db)
            .await
            .unwrap();
    ssl && version.is_some_and(|v| v.starts_with("TLS"))
}

#[tokio::test]
async fn verify_full_with_the_servers_ca_connects_encrypted_and_creates_databases() {
    assert!(encrypted(&tls_url()).await, "the session is encrypted");
    // A database of its own, created and migrated over the same verified connection settings.
    let database = TestDatabase::create(&tls_url(), &[])
        .await
        .expect("a database created over TLS");
    let name = PgConnectOptions::from_str(&database.url)
        .unwrap()
        .get_database()
        .unwrap()
        .to_owned();
    let url = tls_url().replacen("/postgres?", &format!("/{name}?"), 1);
    keel_db::ensure_database(&url).await.unwrap();
    keel_db::migrate_schema(&url, "tls_check", &sqlx::migrate::Migrator::DEFAULT)
        .await
        .unwrap();
    assert!(encrypted(&url).await);
}

#[tokio::test]
async fn a_ca_that_did_not_sign_the_server_is_refused() {
    let other_ca = std::env::temp_dir().join(format!("keel-other-ca-{}.pem", std::process::id()));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=Not the server's CA",
            "-keyout",
            "/dev/null",
            "-out",
        ])
        .arg(&other_ca)
        .output()
        .expect("openssl makes a CA");
    assert!(made.status.success());
    let url = tls_url();
    let (base, _) = url.split_once('?').unwrap();
    let wrong = format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        other_ca.display()
    );
    let refused = keel_db::connect(&wrong, "public", 1).await;
    let _ = std::fs::remove_file(&other_ca);
    let error = format!("{:#}", refused.expect_err("an unknown CA is refused")).to_lowercase();
    assert!(
        error.contains("certificate") || error.contains("tls") || error.contains("unknown issuer"),
        "{error}"
    );
}
