//! `keel bench ingestion`: sources-api, the listener and ingestion in this process on a
//! scratch database. An AWS source is created through sources-api for a bucket (on moto's
//! S3) holding a month of nise CUR data; the bench measures creation to `setup_complete`, the
//! files' load rate and the summary, beside psql's `\copy` of the same decompressed CSV into
//! a table of text columns in the same run. Then an OpenShift source, and nise's operator
//! payloads (made beforehand, so that nise is not running while Keel is timed) POSTed to the
//! upload endpoint, measured the same way. Times are PostgreSQL clock
//! readings (the status and manifest rows' own timestamps).

mod data;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use chrono::Datelike as _;
use hdrhistogram::Histogram;
use keel_service::{Shutdown, config::Secret};
use object_store::{ObjectStoreExt as _, PutPayload, path::Path as ObjectPath};
use serde_json::json;
use sqlx::PgPool;

use super::{ScratchDatabase, histogram, latency_line, wait_until};
use crate::stack::StackConfig;

const PSK: &str = "keel-bench-ingestion";
const ORG: &str = "900000";

#[derive(Debug, Clone, clap::Args)]
pub struct IngestionBench {
    /// PostgreSQL server (a scratch database `keel_bench_ingestion` is created and dropped).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/keel"
    )]
    pub database_url: String,
    /// Line items in the AWS month (nise's data is cached per size and month).
    #[arg(long, default_value_t = 200_000)]
    pub rows: usize,
    /// Days of OpenShift data nise uploads (0: no OpenShift run).
    #[arg(long, default_value_t = 7)]
    pub ocp_days: u64,
    /// Ingestion tasks at a time.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// moto's S3; unset: one is started from the virtualenv.
    #[arg(long, env = "KEEL_MOTO_URL")]
    pub moto_url: Option<String>,
    /// The virtualenv with koku-nise and moto (default ~/.cache/keel/ingest-venv).
    #[arg(long, env = "KEEL_INGEST_VENV")]
    pub venv: Option<PathBuf>,
    /// Leave the scratch database for a look afterwards.
    #[arg(long)]
    pub keep_database: bool,
}

#[expect(clippy::print_stdout)]
pub async fn ingestion(b: IngestionBench) -> anyhow::Result<()> {
    let venv = data::venv(b.venv.as_deref());
    let today = chrono::Utc::now().date_naive();
    let month = today.with_day(1).context("day 1")? - chrono::Months::new(1);
    let (root, files) = data::aws_month(&venv, month, b.rows)?;
    let moto = data::Moto::start(b.moto_url.clone(), &venv).await?;
    let s3 = ingestion::S3Settings {
        endpoint: Some(moto.url.clone()),
        region: "us-east-1".to_owned(),
        access_key_id: Some("testing".to_owned()),
        secret_access_key: Some(Secret::new("testing")),
        session_token: None,
    };
    let bucket = format!("keel-bench-{}", uuid::Uuid::new_v4().simple());
    let http = reqwest::Client::new();
    let made = http.put(format!("{}/{bucket}", moto.url)).send().await?;
    if !made.status().is_success() {
        bail!("moto did not create bucket {bucket}: {}", made.status());
    }
    let store = ingestion::objects::Objects::new(s3.clone(), &ingestion::PayloadStore::Memory)?
        .bucket(&bucket, None)?;
    for f in &files {
        let key = f.strip_prefix(&root)?.to_string_lossy().into_owned();
        store
            .put(
                &ObjectPath::from(key.as_str()),
                PutPayload::from(std::fs::read(f)?),
            )
            .await?;
    }

    let scratch = ScratchDatabase::create(&b.database_url, "keel_bench_ingestion").await?;
    let payload_dir = std::env::temp_dir().join(format!(
        "keel-bench-payloads-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let stack = Box::pin(build_stack(&b, &scratch.url, s3, &payload_dir)).await?;
    let sources_url = format!("http://{}", stack.sources_addr().context("sources-api")?);
    let upload_url = format!(
        "http://{}/api/ingress/v1/upload",
        stack.ingestion_addr().context("ingestion")?
    );
    let stop = Shutdown::default();
    let running = tokio::spawn(stack.run(stop.clone()));
    let db = keel_db::connect(&scratch.url, "cost", 4).await?;

    println!(
        "AWS: a month of nise CUR data ({} files) in moto's S3, {} ingestion workers",
        files.len(),
        b.workers
    );
    let created = Instant::now();
    create_source(&http, &sources_url, json!({
        "sources": [{"name": "bench aws", "source_type_name": "amazon"}],
        "applications": [{"application_type_name": "cost-management", "source_name": "bench aws",
                          "extra": {"bucket": bucket, "bucket_region": "us-east-1"}}],
        "authentications": [{"resource_type": "application", "resource_name": "cost-management",
                             "authtype": "arn", "username": "arn:aws:iam::123456789012:role/Cost"}]
    }))
    .await?;
    let provider = wait_for_setup(&db, "AWS").await?;
    let to_setup = created.elapsed();
    let run = run_stats(&db, provider).await?;
    let floor_dir = payload_dir.join("floor");
    std::fs::create_dir_all(&floor_dir)?;
    let csvs = data::decompress(&files, &floor_dir)?;
    let floor = copy_floor(&scratch.url, &csvs, "bench_raw_cur").await?;
    let same = same_table_floor(&scratch.url, &floor_dir, "aws_line_items").await?;
    print_run("AWS CUR", &run, to_setup, &floor, &same);

    if b.ocp_days > 0 {
        println!();
        println!(
            "OpenShift: {} days of nise operator data, one payload per file, POSTed to the upload endpoint",
            b.ocp_days
        );
        create_source(&http, &sources_url, json!({
            "sources": [{"name": "bench ocp", "source_type_name": "openshift", "source_ref": "bench-cluster"}],
            "applications": [{"application_type_name": "cost-management", "source_name": "bench ocp"}]
        }))
        .await?;
        wait_until(Duration::from_secs(120), || async {
            Ok(sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM cost.api_provider WHERE type = 'OCP')",
            )
            .fetch_one(&db)
            .await?)
        })
        .await?;
        let payloads = data::ocp_payloads(&venv, month, b.ocp_days, "bench-cluster")?;
        let identity = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            json!({"identity": {"org_id": ORG, "account_number": "10001"}}).to_string(),
        );
        let sent = Instant::now();
        for payload in &payloads {
            post_payload(&http, &upload_url, &identity, payload).await?;
        }
        let generated = sent.elapsed();
        let provider = wait_for_setup(&db, "OCP").await?;
        let to_setup = sent.elapsed();
        let run = run_stats(&db, provider).await?;
        let csvs = extract_payloads(&payload_dir.join(ORG).join("bench-cluster"), &floor_dir)?;
        let floor = copy_floor(&scratch.url, &csvs, "bench_raw_ocp").await?;
        let same =
            same_table_floor(&scratch.url, &floor_dir, "openshift_pod_usage_line_items").await?;
        println!(
            "({} payloads made by nise beforehand, POSTed in {:.2} s)",
            payloads.len(),
            generated.as_secs_f64()
        );
        print_run("OpenShift payloads", &run, to_setup, &floor, &same);
    }

    db.close().await;
    stop.trigger();
    running.await??;
    let _ = std::fs::remove_dir_all(&payload_dir);
    if b.keep_database {
        println!("(scratch database kept: {})", scratch.url);
        return Ok(());
    }
    scratch.remove()
}

async fn build_stack(
    b: &IngestionBench,
    url: &str,
    s3: ingestion::S3Settings,
    payload_dir: &Path,
) -> anyhow::Result<crate::stack::Stack> {
    let key = Secret::new(keel_crypto::SecretBox::generate_key());
    let mut sources = sources_api::Config::for_database(url);
    sources.psks = vec![PSK.to_owned()];
    sources.common.encryption_key = Some(key.clone());
    let mut listener = listener::Config::for_database(url, "");
    listener.common.encryption_key = Some(key.clone());
    listener.credential_key = Some(listener::CredentialKey::Key(key));
    let mut ingestion = ingestion::Config::for_database(url);
    ingestion.s3 = s3;
    ingestion.payloads = ingestion::PayloadStore::Directory(payload_dir.to_owned());
    ingestion.workers = b.workers;
    ingestion.common.database_max_connections = (b.workers as u32 + 6).max(10);
    StackConfig {
        sources: Some(sources),
        listener: Some(listener),
        ingestion: Some(ingestion),
        broker: None,
    }
    .build()
    .await
}

/// One payload, as the operator sends it: multipart part `file` of the hccm type.
async fn post_payload(
    http: &reqwest::Client,
    url: &str,
    identity: &str,
    payload: &[u8],
) -> anyhow::Result<()> {
    let boundary = format!("keel-bench-{}", uuid::Uuid::new_v4().simple());
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"payload.tar.gz\"\r\n\
         Content-Type: application/vnd.redhat.hccm.tar+tgz\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(payload);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let reply = http
        .post(url)
        .header("x-rh-identity", identity)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await?;
    if reply.status().as_u16() != 202 {
        bail!(
            "the upload answered {}: {}",
            reply.status(),
            reply.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

async fn create_source(
    http: &reqwest::Client,
    sources_url: &str,
    body: serde_json::Value,
) -> anyhow::Result<()> {
    let reply = http
        .post(format!("{sources_url}/api/sources/v3.1/bulk_create"))
        .header("x-rh-sources-org-id", ORG)
        .header("x-rh-sources-psk", PSK)
        .json(&body)
        .send()
        .await?;
    if reply.status().as_u16() != 201 {
        bail!(
            "bulk_create answered {}: {}",
            reply.status(),
            reply.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

async fn wait_for_setup(db: &PgPool, kind: &str) -> anyhow::Result<uuid::Uuid> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let found: Option<uuid::Uuid> = sqlx::query_scalar(
            "SELECT uuid FROM cost.api_provider WHERE type = $1 AND setup_complete AND data_updated_timestamp IS NOT NULL",
        )
        .bind(kind)
        .fetch_optional(db)
        .await?;
        if let Some(uuid) = found {
            return Ok(uuid);
        }
        if Instant::now() > deadline {
            bail!("the {kind} provider was not set up within an hour");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One provider's run, from its rows' timestamps.
struct RunStats {
    files: i64,
    rows: i64,
    /// First file started to last file done.
    load: f64,
    /// The files' own durations added up (one worker's rate).
    busy: f64,
    summary: f64,
    per_file: Histogram<u64>,
}

async fn run_stats(db: &PgPool, provider: uuid::Uuid) -> anyhow::Result<RunStats> {
    let schema = format!("org{ORG}");
    let (files, rows, load, summary): (i64, i64, f64, f64) =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), coalesce(sum(s.rows_loaded), 0)::bigint, \
                extract(epoch FROM max(s.completed_datetime) - min(s.started_datetime))::float8, \
                extract(epoch FROM max(m.completed_datetime) - max(s.completed_datetime))::float8 \
         FROM {schema}.reporting_common_costusagereportstatus s \
         JOIN {schema}.reporting_common_costusagereportmanifest m ON m.id = s.manifest_id \
         WHERE m.provider_id = $1 AND s.rows_loaded > 0"
        )))
        .bind(provider)
        .fetch_one(db)
        .await?;
    let durations: Vec<f64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT extract(epoch FROM s.completed_datetime - s.started_datetime)::float8 \
         FROM {schema}.reporting_common_costusagereportstatus s \
         JOIN {schema}.reporting_common_costusagereportmanifest m ON m.id = s.manifest_id \
         WHERE m.provider_id = $1 AND s.rows_loaded > 0"
    )))
    .bind(provider)
    .fetch_all(db)
    .await?;
    let mut per_file = histogram();
    let busy: f64 = durations.iter().sum();
    for d in durations {
        per_file.record((d * 1e6).max(1.0) as u64).ok();
    }
    Ok(RunStats {
        files,
        rows,
        load,
        busy,
        summary,
        per_file,
    })
}

/// psql's `\copy` of each CSV into a table of as many text columns, timed one after another.
async fn copy_floor(url: &str, csvs: &[PathBuf], table: &str) -> anyhow::Result<(u64, f64)> {
    let mut rows = 0;
    let mut seconds = 0.0;
    for (i, csv) in csvs.iter().enumerate() {
        let header = std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(csv)?))
            .next()
            .context("a header")??;
        let columns = csv::ReaderBuilder::new()
            .from_reader(header.as_bytes())
            .headers()?
            .len();
        let name = format!("{table}_{i}");
        let cols: Vec<String> = (0..columns).map(|c| format!("c{c} text")).collect();
        super::psql(url, &format!("CREATE TABLE {name} ({})", cols.join(", ")))?;
        let started = Instant::now();
        let out = std::process::Command::new("psql")
            .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc"])
            .arg(format!(
                "\\copy {name} FROM '{}' WITH (FORMAT csv, HEADER true)",
                csv.display()
            ))
            .output()?;
        seconds += started.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!(
                "psql \\copy failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let db = keel_db::connect(url, "public", 1).await?;
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {name}")))
                .fetch_one(&db)
                .await?;
        db.close().await;
        rows += n as u64;
    }
    Ok((rows, seconds))
}

/// psql's `\copy` of the rows ingestion loaded into `table`, written out as CSV, into a table
/// like it (same columns, types and indexes): PostgreSQL's own rate for exactly what the
/// loader sends.
async fn same_table_floor(url: &str, dir: &Path, table: &str) -> anyhow::Result<(u64, f64)> {
    let csv = dir.join(format!("{table}.csv"));
    let source = format!("org{ORG}.{table}");
    let copy = format!("bench_same_{table}");
    super::psql(
        url,
        &format!("CREATE TABLE {copy} (LIKE {source} INCLUDING ALL)"),
    )?;
    super::psql(
        url,
        &format!("\\copy {source} TO '{}' WITH (FORMAT csv)", csv.display()),
    )?;
    let started = Instant::now();
    super::psql(
        url,
        &format!("\\copy {copy} FROM '{}' WITH (FORMAT csv)", csv.display()),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let db = keel_db::connect(url, "public", 1).await?;
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {copy}")))
        .fetch_one(&db)
        .await?;
    db.close().await;
    Ok((rows as u64, seconds))
}

/// The CSVs of the payloads kept under `dir` that ingestion loads (not the kept-only types),
/// written to `into`.
fn extract_payloads(dir: &Path, into: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let bytes = std::fs::read(entry?.path())?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        for file in archive.entries()? {
            let mut file = file?;
            let name = file.path()?.to_string_lossy().into_owned();
            if name.ends_with(".csv") {
                let mut text = Vec::new();
                std::io::Read::read_to_end(&mut file, &mut text)?;
                let header: Vec<String> = csv::Reader::from_reader(&text[..])
                    .headers()?
                    .iter()
                    .map(ingestion::domain::layout::normalize_header)
                    .collect();
                if ingestion::domain::layout::detect_ocp(&header)
                    .layout()
                    .is_none()
                {
                    continue;
                }
                let target = into.join(format!("ocp-{}.csv", out.len()));
                std::fs::write(&target, text)?;
                out.push(target);
            }
        }
    }
    Ok(out)
}

#[expect(clippy::print_stdout)]
fn print_run(
    name: &str,
    run: &RunStats,
    to_setup: Duration,
    floor: &(u64, f64),
    same: &(u64, f64),
) {
    let rate = run.rows as f64 / run.load.max(1e-9);
    let floor_rate = floor.0 as f64 / floor.1.max(1e-9);
    println!("{name}: {} files loaded, {} rows", run.files, run.rows);
    println!(
        "  create → setup_complete      {:>9.2} s",
        to_setup.as_secs_f64()
    );
    println!(
        "  load (first start → last done) {:>7.2} s  {rate:>10.0} rows/s",
        run.load
    );
    let serial = run.rows as f64 / run.busy.max(1e-9);
    println!(
        "  per file, one at a time      {:>9.2} s  {serial:>10.0} rows/s",
        run.busy
    );
    latency_line("  per file", "files  ", &run.per_file);
    println!("  summary                      {:>9.2} s", run.summary);
    println!(
        "  floor: psql \\copy of the decompressed CSV, text columns: {} rows in {:.2} s  {floor_rate:>10.0} rows/s",
        floor.0, floor.1
    );
    println!(
        "  loading at {:.1} % of raw COPY ({:.1} % one file at a time, as psql copies)",
        100.0 * rate / floor_rate,
        100.0 * serial / floor_rate
    );
    let same_rate = same.0 as f64 / same.1.max(1e-9);
    println!(
        "  floor: psql \\copy of the loaded {} rows into a table like theirs: {:.2} s  {same_rate:>10.0} rows/s (one file at a time: {:.1} % of it)",
        same.0,
        same.1,
        100.0 * serial / same_rate
    );
}
