//! A worker process killed with SIGKILL in the middle of a file's COPY: another process takes
//! the file up once the lease ends, and the line items are neither lost nor doubled.

mod support;

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::json;
use support::*;

fn ingestion(db_url: &str, dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ingestion"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db_url)
        .env("PORT", "0")
        .env("METRICS_PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("INGESTION_DATA_DIR", dir)
        .env("INGESTION_LEASE_SECONDS", "2")
        .env("SCHEDULE_REPORT_CHECKS", "false")
        .env("RUST_LOG", "warn")
        .envs(aws_env())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the ingestion binary starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_file_loses_and_doubles_nothing() {
    let db = database().await;
    let pool = pool(&db).await;
    let bucket = bucket("kill").await;
    let month = month_start(1);
    let end = month + chrono::Days::new(9);
    // One file of some 40 instances x 10 days x 24 hours: long enough to be caught in COPY.
    tokio::task::spawn_blocking({
        let bucket = bucket.clone();
        move || nise_aws_sized(&bucket, "p", "r", month, end, 40)
    })
    .await
    .unwrap();
    let dir = tempfile_dir();
    let mut first = ingestion(&db.url, &dir);
    let provider = aws_provider(&pool, "5001", json!({"bucket": bucket})).await;

    let copying = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
             WHERE datname = current_database() AND state = 'active' AND query LIKE 'COPY %aws_line_items%')",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    eventually("a COPY in progress", Duration::from_secs(60), copying).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let rows_after_kill: i64 = sqlx::query_scalar("SELECT count(*) FROM org5001.aws_line_items")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows_after_kill, 0, "the killed COPY committed nothing");
    assert!(!setup_complete(&pool, provider).await);

    let mut second = ingestion(&db.url, &dir);
    eventually(
        "setup_complete after the restart",
        Duration::from_secs(120),
        || setup_complete(&pool, provider),
    )
    .await;
    second.kill().unwrap();
    second.wait().unwrap();

    let (rows, files_done, file_rows): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM org5001.aws_line_items), count(*), sum(rows_loaded)::bigint \
         FROM org5001.reporting_common_costusagereportstatus WHERE status = 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(files_done, 1);
    assert_eq!(rows, file_rows, "the line items are the file's rows, once");
    // nise wrote 40 instances x 24 hours x 9 days (its end day is exclusive) of EC2 usage,
    // besides the S3 rows.
    assert!(rows >= 40 * 24 * 9, "{rows} rows");
    let summarized: f64 = sqlx::query_scalar(
        "SELECT ((SELECT sum(unblended_cost) FROM org5001.reporting_awscostentrylineitem_daily_summary) \
              - (SELECT sum(lineitem_unblendedcost) FROM org5001.aws_line_items))::float8",
    )
    .fetch_one(&pool)
    .await
    .map(|d: Option<f64>| d.unwrap_or(f64::NAN))
    .unwrap();
    assert!(
        summarized.abs() < 1e-6,
        "summary and line items differ by {summarized}"
    );
}
