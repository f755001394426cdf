//! What the ingestion tests share: a database with the listener's and the ingestion's
//! schemas, providers made the way the listener makes them, moto's S3 and Koku's nise.

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use chrono::{Datelike as _, NaiveDate, Utc};
use ingestion::{App, Config, PayloadStore, S3Settings};
use keel_db::testing::TestDatabase;
use keel_service::Shutdown;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

pub async fn database() -> TestDatabase {
    // The HTTP clients (ours and object_store's) use the process's one crypto provider.
    keel_service::tls::install_crypto_provider();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    TestDatabase::create(
        &url,
        &[listener::OWNER, listener::TEMPLATE, ingestion::OWNER],
    )
    .await
    .expect("a test database (is PostgreSQL running?)")
}

pub async fn pool(db: &TestDatabase) -> PgPool {
    keel_db::connect(&db.url, "ingestion", 5).await.unwrap()
}

/// moto's S3, started by scripts/test (`KEEL_MOTO_URL`).
pub fn moto_url() -> String {
    std::env::var("KEEL_MOTO_URL")
        .expect("KEEL_MOTO_URL is not set: run the tests with scripts/test, which starts moto's S3")
}

/// The virtualenv holding koku-nise and moto (`KEEL_INGEST_VENV`).
pub fn venv() -> PathBuf {
    PathBuf::from(std::env::var("KEEL_INGEST_VENV").expect(
        "KEEL_INGEST_VENV is not set: run the tests with scripts/test, which installs koku-nise",
    ))
}

pub fn s3_settings() -> S3Settings {
    S3Settings {
        endpoint: Some(moto_url()),
        region: "us-east-1".to_owned(),
        access_key_id: Some("testing".to_owned()),
        secret_access_key: Some(keel_service::config::Secret::new("testing")),
        session_token: None,
    }
}

/// A config against moto, polling often, payloads in `payload_dir`.
pub fn config(db: &TestDatabase, payload_dir: &Path) -> Config {
    let mut c = Config::for_database(&db.url);
    c.s3 = s3_settings();
    c.payloads = PayloadStore::Directory(payload_dir.to_owned());
    c
}

pub struct Running {
    pub addr: std::net::SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.unwrap().unwrap();
    }
}

pub async fn start(config: &Config) -> Running {
    let app = App::build(config).await.unwrap();
    let addr = app.local_addr();
    let shutdown = Shutdown::default();
    let task = tokio::spawn(app.run(shutdown.clone()));
    Running {
        addr,
        shutdown,
        task,
    }
}

/// The tenant schema of `org`, cloned from the template as the listener does.
pub async fn tenant(db: &PgPool, org: &str) -> String {
    let schema = format!("org{org}");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM cost.api_customer WHERE org_id = $1)")
            .bind(org)
            .fetch_one(db)
            .await
            .unwrap();
    if !exists {
        sqlx::query("SELECT cost.clone_schema('template0', $1)")
            .bind(&schema)
            .execute(db)
            .await
            .unwrap();
        sqlx::query("INSERT INTO cost.api_customer (org_id, schema_name) VALUES ($1, $2)")
            .bind(org)
            .bind(&schema)
            .execute(db)
            .await
            .unwrap();
        sqlx::query("INSERT INTO cost.api_tenant (schema_name) VALUES ($1)")
            .bind(&schema)
            .execute(db)
            .await
            .unwrap();
    }
    schema
}

/// A provider row as the listener writes it.
pub struct NewProvider<'a> {
    pub org: &'a str,
    pub kind: &'a str,
    pub credentials: Value,
    pub data_source: Value,
    pub active: bool,
    pub paused: bool,
}

pub async fn provider(db: &PgPool, p: NewProvider<'_>) -> Uuid {
    let schema = tenant(db, p.org).await;
    let uuid = Uuid::new_v4();
    let auth: i64 = sqlx::query_scalar(
        "INSERT INTO cost.api_providerauthentication (credentials, digest) VALUES ($1, $2) RETURNING id",
    )
    .bind(&p.credentials)
    .bind(uuid.to_string())
    .fetch_one(db)
    .await
    .unwrap();
    let billing: i64 = sqlx::query_scalar(
        "INSERT INTO cost.api_providerbillingsource (data_source) VALUES ($1) \
         ON CONFLICT (data_source) DO UPDATE SET data_source = excluded.data_source RETURNING id",
    )
    .bind(&p.data_source)
    .fetch_one(db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO cost.api_provider (uuid, name, type, authentication_id, billing_source_id, customer_id, active, paused) \
         SELECT $1, $2, $3, $4, $5, id, $6, $7 FROM cost.api_customer WHERE schema_name = $8",
    )
    .bind(uuid)
    .bind(format!("{} {}", p.kind, &uuid.to_string()[..8]))
    .bind(p.kind)
    .bind(auth)
    .bind(billing)
    .bind(p.active)
    .bind(p.paused)
    .bind(&schema)
    .execute(db)
    .await
    .unwrap();
    uuid
}

pub async fn aws_provider(db: &PgPool, org: &str, data_source: Value) -> Uuid {
    provider(
        db,
        NewProvider {
            org,
            kind: "AWS",
            credentials: json!({"role_arn": format!("arn:aws:iam::1:role/{}", Uuid::new_v4())}),
            data_source,
            active: true,
            paused: false,
        },
    )
    .await
}

pub async fn ocp_provider(db: &PgPool, org: &str, cluster: &str) -> Uuid {
    provider(
        db,
        NewProvider {
            org,
            kind: "OCP",
            credentials: json!({"cluster_id": cluster}),
            data_source: json!({}),
            active: true,
            paused: false,
        },
    )
    .await
}

/// A fresh bucket on moto.
pub async fn bucket(name_hint: &str) -> String {
    let name = format!("{name_hint}-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let status = Command::new(venv().join("bin/python"))
        .args([
            "-c",
            &format!("import boto3; boto3.client('s3').create_bucket(Bucket='{name}')"),
        ])
        .envs(aws_env())
        .status()
        .unwrap();
    assert!(status.success(), "cannot create bucket {name} on moto");
    name
}

pub fn aws_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", moto_url()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
    ]
}

/// The first day of the month `back` months before this one.
pub fn month_start(back: u32) -> NaiveDate {
    let first = Utc::now().date_naive().with_day(1).unwrap();
    first.checked_sub_months(chrono::Months::new(back)).unwrap()
}

/// Runs `nise report aws` for `start..=end` with a small static file, into `bucket`.
pub fn nise_aws(bucket: &str, prefix: &str, report: &str, start: NaiveDate, end: NaiveDate) {
    nise_aws_sized(bucket, prefix, report, start, end, 1);
}

/// The same with `instances` EC2 generators (about 24 rows a day each) in one file.
pub fn nise_aws_sized(
    bucket: &str,
    prefix: &str,
    report: &str,
    start: NaiveDate,
    end: NaiveDate,
    instances: usize,
) {
    let dir = tempfile_dir();
    let yaml = dir.join("aws.yml");
    let mut generators = String::new();
    for i in 0..instances {
        generators.push_str(&format!(
            "  - EC2Generator:\n      start_date: {start}\n      end_date: {end}\n      resource_id: i-{i:04}\n      region: us-east-1\n      tags:\n        resourceTags/user:app: web\n"
        ));
    }
    std::fs::write(
        &yaml,
        format!(
            "---\ngenerators:\n{generators}  - S3Generator:\n      start_date: {start}\n      end_date: {end}\n      resource_id: bucket-1\n      amount: 10\n      rate: 0.02\naccounts:\n  payer: 9999999999999\n  user:\n    - 9999999999999\n"
        ),
    )
    .unwrap();
    let out = Command::new(venv().join("bin/nise"))
        .args([
            "report",
            "aws",
            "-s",
            &start.to_string(),
            "-e",
            &end.to_string(),
        ])
        .arg("--static-report-file")
        .arg(&yaml)
        .args([
            "--aws-s3-bucket-name",
            bucket,
            "--aws-s3-report-name",
            report,
            "--aws-s3-report-prefix",
            prefix,
        ])
        .args(["--file-row-limit", "10000000"])
        .current_dir(&dir)
        // nise stages files under gettempdir()/None and /payload: concurrent runs sharing
        // /tmp overwrite each other's manifests.
        .env("TMPDIR", &dir)
        .envs(aws_env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nise failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A directory of its own under the system's temporary directory.
pub fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-ingestion-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `check` every 100 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn setup_complete(db: &PgPool, provider: Uuid) -> bool {
    sqlx::query_scalar("SELECT setup_complete FROM cost.api_provider WHERE uuid = $1")
        .bind(provider)
        .fetch_one(db)
        .await
        .unwrap()
}
