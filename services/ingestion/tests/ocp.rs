//! OpenShift operator payloads POSTed by Koku's nise to the upload endpoint.

mod support;

use std::{collections::BTreeMap, io::Read as _, path::Path, process::Command, time::Duration};

use chrono::Datelike as _;
use sqlx::PgPool;
use support::*;

const GIB: f64 = 1_073_741_824.0;

/// `nise report ocp` for three days of last month, uploaded as org `org`'s operator would
/// (on a blocking thread: the service answers on this runtime).
async fn nise_upload(addr: std::net::SocketAddr, org: &str, cluster: &str) {
    let (org, cluster) = (org.to_owned(), cluster.to_owned());
    tokio::task::spawn_blocking(move || nise_upload_blocking(addr, &org, &cluster))
        .await
        .unwrap();
}

fn nise_upload_blocking(addr: std::net::SocketAddr, org: &str, cluster: &str) {
    let start = month_start(1);
    let end = start + chrono::Days::new(2);
    let dir = tempfile_dir();
    let out = Command::new(venv().join("bin/nise"))
        .args([
            "report",
            "ocp",
            "-s",
            &start.to_string(),
            "-e",
            &end.to_string(),
            "--ocp-cluster-id",
            cluster,
        ])
        .args([
            "--insights-upload",
            &format!("http://{addr}/api/ingress/v1/upload"),
        ])
        .env("INSIGHTS_ACCOUNT_ID", "10001")
        .env("INSIGHTS_ORG_ID", org)
        // nise stages the payload in gettempdir()/payload: one of its own per run.
        .env("TMPDIR", &dir)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nise failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Daily sums straight from the CSVs of the payloads kept under `dir/<org>/<cluster>`.
#[derive(Debug, Default, PartialEq)]
struct Sums {
    cpu_core_hours: BTreeMap<String, f64>,
    storage_gb_months: BTreeMap<String, f64>,
}

fn csv_sums(dir: &Path) -> Sums {
    let mut sums = Sums::default();
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        for file in archive.entries().unwrap() {
            let mut file = file.unwrap();
            if !file.path().unwrap().to_string_lossy().ends_with(".csv") {
                continue;
            }
            let mut text = String::new();
            file.read_to_string(&mut text).unwrap();
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let header = reader.headers().unwrap().clone();
            let col = |name: &str| header.iter().position(|h| h == name);
            let start = col("interval_start").unwrap();
            // Pod usage in core-hours; storage in GB-months (byte-seconds over the month's).
            let (storage, column) = match (
                col("pod_usage_cpu_core_seconds"),
                col("persistentvolumeclaim_usage_byte_seconds"),
            ) {
                (Some(c), _) => (false, c),
                (None, Some(c)) => (true, c),
                (None, None) => continue,
            };
            let divide = |day: &str| {
                if !storage {
                    return 3600.0;
                }
                let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
                let days = (d.with_day(1).unwrap() + chrono::Months::new(1))
                    .pred_opt()
                    .unwrap()
                    .day();
                86_400.0 * f64::from(days) * GIB
            };
            let target = if storage {
                &mut sums.storage_gb_months
            } else {
                &mut sums.cpu_core_hours
            };
            for r in reader.records() {
                let r = r.unwrap();
                let day = r[start][..10].to_owned();
                let v: f64 = r[column].parse().unwrap_or(0.0);
                *target.entry(day.clone()).or_default() += v / divide(&day);
            }
        }
    }
    sums
}

async fn summary_sums(db: &PgPool, schema: &str) -> Sums {
    let q = |column: &str, source: &str| {
        sqlx::query_as::<_, (chrono::NaiveDate, f64)>(sqlx::AssertSqlSafe(format!(
            "SELECT usage_start, sum({column})::float8 FROM {schema}.reporting_ocpusagelineitem_daily_summary \
             WHERE data_source = '{source}' GROUP BY 1 ORDER BY 1"
        )))
    };
    let to_map = |rows: Vec<(chrono::NaiveDate, f64)>| {
        rows.into_iter().map(|(d, v)| (d.to_string(), v)).collect()
    };
    Sums {
        cpu_core_hours: to_map(
            q("pod_usage_cpu_core_hours", "Pod")
                .fetch_all(db)
                .await
                .unwrap(),
        ),
        storage_gb_months: to_map(
            q("persistentvolumeclaim_usage_gigabyte_months", "Storage")
                .fetch_all(db)
                .await
                .unwrap(),
        ),
    }
}

fn assert_close(got: &BTreeMap<String, f64>, want: &BTreeMap<String, f64>, what: &str) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: days"
    );
    for (day, w) in want {
        let g = got[day];
        assert!(
            (g - w).abs() <= 1e-9 * w.abs().max(1.0),
            "{what} {day}: summary {g} vs CSV {w}"
        );
    }
    assert!(!want.is_empty(), "{what}: the CSVs hold data");
}

async fn manifest_complete(db: &PgPool, schema: &str) -> bool {
    sqlx::query_scalar::<_, bool>(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) = 1 AND bool_and(completed_datetime IS NOT NULL) FROM {schema}.reporting_common_costusagereportmanifest"
    )))
    .fetch_one(db)
    .await
    .unwrap()
}

#[tokio::test]
async fn nise_uploads_land_in_their_tenant_with_the_csvs_sums() {
    let db = database().await;
    let pool = pool(&db).await;
    let provider = ocp_provider(&pool, "3001", "shared-cluster").await;
    tenant(&pool, "3002").await;
    let dir = tempfile_dir();
    let app = start(&config(&db, &dir)).await;

    nise_upload(app.addr, "3001", "shared-cluster").await;
    eventually("the payload summarized", Duration::from_secs(60), || {
        manifest_complete(&pool, "org3001")
    })
    .await;
    assert!(setup_complete(&pool, provider).await);
    let want = csv_sums(&dir.join("3001/shared-cluster"));
    let got = summary_sums(&pool, "org3001").await;
    assert_close(
        &got.cpu_core_hours,
        &want.cpu_core_hours,
        "pod cpu core-hours",
    );
    assert_close(
        &got.storage_gb_months,
        &want.storage_gb_months,
        "storage GB-months",
    );
    // Every listed file is accounted for; vm and gpu reports are kept but not processed.
    let types: Vec<(String, i64)> = sqlx::query_as(
        "SELECT report_type, rows_loaded FROM org3001.reporting_common_costusagereportstatus \
         WHERE completed_datetime IS NOT NULL ORDER BY report_type",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let names: Vec<&str> = types.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        names,
        [
            "gpu_usage",
            "namespace_labels",
            "node_labels",
            "pod_usage",
            "storage_usage",
            "vm_usage"
        ]
    );

    // Another org's payload for a cluster of the same id does not land in org 3001.
    nise_upload(app.addr, "3002", "shared-cluster").await;
    eventually("the other org's payload waits", Duration::from_secs(30), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM ingestion.uploads WHERE org_id = '3002' AND state = 'waiting'")
            .fetch_one(&pool)
            .await
            .unwrap()
            > 0
    })
    .await;
    let after = summary_sums(&pool, "org3001").await;
    assert_eq!(after, got, "org 3001's data is unchanged");
    let foreign: i64 =
        sqlx::query_scalar("SELECT count(*) FROM org3002.reporting_common_costusagereportmanifest")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(foreign, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_payload_for_an_unknown_cluster_waits_for_its_provider() {
    let db = database().await;
    let pool = pool(&db).await;
    tenant(&pool, "3003").await;
    let dir = tempfile_dir();
    let app = start(&config(&db, &dir)).await;
    nise_upload(app.addr, "3003", "late-cluster").await;
    eventually("the payload waits", Duration::from_secs(30), || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM ingestion.uploads WHERE state = 'waiting'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
            == 6
    })
    .await;
    // The provider is created (the listener's insert notifies on commit).
    let provider = ocp_provider(&pool, "3003", "late-cluster").await;
    eventually("the payload summarized", Duration::from_secs(60), || {
        manifest_complete(&pool, "org3003")
    })
    .await;
    assert!(setup_complete(&pool, provider).await);
    let want = csv_sums(&dir.join("3003/late-cluster"));
    let got = summary_sums(&pool, "org3003").await;
    assert_close(
        &got.cpu_core_hours,
        &want.cpu_core_hours,
        "pod cpu core-hours",
    );
    app.stop().await;
}
