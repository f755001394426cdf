//! A tenant schema's bookkeeping: manifests, their files' status rows, AWS bills and OpenShift
//! report periods. Every query goes through a [`Tenant`], whose schema name was checked when
//! it was made, so no query can reach outside the org it was made for.

use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use regex::Regex;
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

/// Koku's file status codes.
pub mod status {
    pub const WAITING: i16 = 0;
    pub const DONE: i16 = 1;
    pub const FAILED: i16 = 2;
    pub const PROCESSING: i16 = 4;
}

static SCHEMA: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^org[A-Za-z0-9_]{1,60}$").expect("valid regex"));

/// One tenant schema (`org<org_id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    schema: String,
}

impl Tenant {
    /// `None` for a name that is not a tenant schema.
    pub fn new(schema: &str) -> Option<Self> {
        SCHEMA.is_match(schema).then(|| Self {
            schema: schema.to_owned(),
        })
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// `template` with every `{s}` replaced by the quoted schema.
    pub fn sql(&self, template: &str) -> AssertSqlSafe<String> {
        AssertSqlSafe(template.replace("{s}", &keel_db::quote_ident(&self.schema)))
    }
}

/// Whether the template tenant has the ingestion's tables (the listener migrates it).
pub async fn template_migrated(db: &sqlx::PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT to_regclass('template0.reporting_common_costusagereportmanifest') IS NOT NULL",
    )
    .fetch_one(db)
    .await
}

/// The tenant schema of an org, if it has one.
pub async fn schema_of_org(db: &sqlx::PgPool, org_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT schema_name FROM cost.api_customer WHERE org_id = $1")
        .bind(org_id)
        .fetch_optional(db)
        .await
}

/// The summary kept failing: the manifest says why.
pub async fn fail_summary(
    conn: &mut PgConnection,
    t: &Tenant,
    manifest_id: i64,
    reason: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(t.sql(
        "UPDATE {s}.reporting_common_costusagereportmanifest \
         SET failure = 'summary: ' || $2, \
             state = state || jsonb_build_object('summary', jsonb_build_object('failed', true, 'end', now())) \
         WHERE id = $1 RETURNING provider_id",
    ))
    .bind(manifest_id)
    .bind(reason)
    .fetch_optional(conn)
    .await
}

/// What registering a manifest found.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Manifest {
    pub id: i64,
    pub provider_id: Uuid,
    pub assembly_id: String,
    pub billing_period_start_datetime: DateTime<Utc>,
    pub num_total_files: i32,
    pub completed_datetime: Option<DateTime<Utc>>,
    pub failure: Option<String>,
    pub cluster_id: Option<String>,
    pub operator_daily_reports: bool,
}

const MANIFEST_COLUMNS: &str = "id, provider_id, assembly_id, billing_period_start_datetime, \
     num_total_files, completed_datetime, failure, cluster_id, operator_daily_reports";

/// The fields a new manifest row gets.
#[derive(Debug, Clone, Default)]
pub struct NewManifest<'a> {
    pub provider: Uuid,
    pub assembly_id: &'a str,
    pub billing_month: NaiveDate,
    pub num_total_files: i32,
    pub export: Option<DateTime<Utc>>,
    pub cluster_id: Option<&'a str>,
    pub operator_version: Option<&'a str>,
    pub operator_certified: Option<bool>,
    pub daily_reports: bool,
    pub report_start: Option<DateTime<Utc>>,
    pub report_end: Option<DateTime<Utc>>,
}

/// The manifest row for (provider, assembly id), made if new; a known one keeps its files and
/// gets the file count the producer now states.
pub async fn upsert_manifest(
    conn: &mut PgConnection,
    t: &Tenant,
    m: &NewManifest<'_>,
) -> Result<Manifest, sqlx::Error> {
    sqlx::query_as(t.sql(&format!(
        "INSERT INTO {{s}}.reporting_common_costusagereportmanifest \
           (provider_id, assembly_id, billing_period_start_datetime, num_total_files, export_datetime, \
            cluster_id, operator_version, operator_certified, operator_daily_reports, report_start, report_end) \
         VALUES ($1, $2, $3::date::timestamp AT TIME ZONE 'UTC', $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (provider_id, assembly_id) DO UPDATE SET num_total_files = excluded.num_total_files \
         RETURNING {MANIFEST_COLUMNS}"
    )))
    .bind(m.provider)
    .bind(m.assembly_id)
    .bind(m.billing_month)
    .bind(m.num_total_files)
    .bind(m.export)
    .bind(m.cluster_id)
    .bind(m.operator_version)
    .bind(m.operator_certified)
    .bind(m.daily_reports)
    .bind(m.report_start)
    .bind(m.report_end)
    .fetch_one(conn)
    .await
}

/// The manifest, locked until the transaction ends (completions of its files and its summary
/// take turns on it, so the last file always sees the others done).
pub async fn lock_manifest(
    conn: &mut PgConnection,
    t: &Tenant,
    id: i64,
) -> Result<Option<Manifest>, sqlx::Error> {
    sqlx::query_as(t.sql(&format!(
        "SELECT {MANIFEST_COLUMNS} FROM {{s}}.reporting_common_costusagereportmanifest \
         WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Adds the status rows of `files` (`(report name, object key)`) that are not there yet, and
/// points unfinished ones at the given object. Returns the ids of the files to load.
pub async fn register_files(
    conn: &mut PgConnection,
    t: &Tenant,
    manifest_id: i64,
    files: &[(String, Option<String>)],
) -> Result<Vec<i64>, sqlx::Error> {
    let (names, keys): (Vec<&str>, Vec<Option<&str>>) = files
        .iter()
        .map(|(n, k)| (n.as_str(), k.as_deref()))
        .unzip();
    sqlx::query_scalar(t.sql(
        "WITH f AS (SELECT * FROM unnest($2::text[], $3::text[]) AS f(name, key)), \
              added AS (INSERT INTO {s}.reporting_common_costusagereportstatus (manifest_id, report_name, object_key) \
                        SELECT $1, name, key FROM f ON CONFLICT (manifest_id, report_name) DO NOTHING \
                        RETURNING id, object_key), \
              pointed AS (UPDATE {s}.reporting_common_costusagereportstatus s SET object_key = f.key \
                          FROM f WHERE s.manifest_id = $1 AND s.report_name = f.name \
                            AND s.completed_datetime IS NULL AND f.key IS NOT NULL \
                          RETURNING s.id, s.object_key) \
         SELECT id FROM added WHERE object_key IS NOT NULL UNION SELECT id FROM pointed",
    ))
    .bind(manifest_id)
    .bind(names)
    .bind(keys)
    .fetch_all(conn)
    .await
}

/// Files of the manifest not loaded yet (waiting, failed or in progress).
pub async fn files_left(
    conn: &mut PgConnection,
    t: &Tenant,
    manifest_id: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(t.sql(
        "SELECT (SELECT num_total_files FROM {s}.reporting_common_costusagereportmanifest WHERE id = $1) \
              - count(*) FILTER (WHERE completed_datetime IS NOT NULL) \
         FROM {s}.reporting_common_costusagereportstatus WHERE manifest_id = $1",
    ))
    .bind(manifest_id)
    .fetch_one(conn)
    .await
}

/// A file to load, with its manifest.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileRow {
    pub id: i64,
    pub manifest_id: i64,
    pub report_name: String,
    pub object_key: Option<String>,
    pub completed: bool,
    pub provider_id: Uuid,
    pub billing_period_start: DateTime<Utc>,
    pub cluster_id: Option<String>,
}

pub async fn file(
    conn: &mut PgConnection,
    t: &Tenant,
    id: i64,
) -> Result<Option<FileRow>, sqlx::Error> {
    sqlx::query_as(t.sql(
        "SELECT s.id, s.manifest_id, s.report_name, s.object_key, s.completed_datetime IS NOT NULL AS completed, \
                m.provider_id, m.billing_period_start_datetime AS billing_period_start, m.cluster_id \
         FROM {s}.reporting_common_costusagereportstatus s \
         JOIN {s}.reporting_common_costusagereportmanifest m ON m.id = s.manifest_id WHERE s.id = $1",
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The file is being processed (visible at once, outside the load's transaction). The
/// manifest is locked first, as every writer of a manifest and its files does: a report check
/// re-registering the files at the same time would otherwise deadlock with it.
pub async fn start_file(
    conn: &mut PgConnection,
    t: &Tenant,
    file: &FileRow,
) -> Result<(), sqlx::Error> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    lock_manifest(&mut tx, t, file.manifest_id).await?;
    sqlx::query(t.sql(
        "WITH s AS (UPDATE {s}.reporting_common_costusagereportstatus \
                    SET status = 4, started_datetime = clock_timestamp(), failure = NULL, failed_status = NULL WHERE id = $1) \
         UPDATE {s}.reporting_common_costusagereportmanifest \
         SET state = CASE WHEN state->'processing' ? 'start' AND NOT state->'processing' ? 'failed' THEN state \
                          ELSE state || jsonb_build_object('processing', jsonb_build_object('start', now())) END, \
             failure = NULL \
         WHERE id = $2",
    ))
    .bind(file.id)
    .bind(file.manifest_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The file loaded: done, with its type and row count. False when it was already done (by a
/// worker that took the task over): the caller must then roll its rows back.
pub async fn finish_file(
    conn: &mut PgConnection,
    t: &Tenant,
    id: i64,
    report_type: &str,
    rows: i64,
    etag: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(t.sql(
        "UPDATE {s}.reporting_common_costusagereportstatus \
         SET status = 1, completed_datetime = clock_timestamp(), report_type = $2, rows_loaded = $3, etag = $4 \
         WHERE id = $1 AND completed_datetime IS NULL",
    ))
    .bind(id)
    .bind(report_type)
    .bind(rows)
    .bind(etag)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Lifts the session's statement timeout for this transaction (a large file's COPY, or a
/// month's summary, may run longer than any request should) and gives its aggregations room
/// to hash in memory.
pub async fn long_transaction(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(conn)
        .await?;
    Ok(())
}

/// The file failed: the file and its manifest say why (in the caller's transaction).
pub async fn fail_file(
    conn: &mut PgConnection,
    t: &Tenant,
    file: &FileRow,
    step: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let failure = format!("{}: {reason}", file.report_name);
    // The manifest first, in the order every writer takes (see `start_file`).
    lock_manifest(conn, t, file.manifest_id).await?;
    sqlx::query(t.sql(
        "WITH s AS (UPDATE {s}.reporting_common_costusagereportstatus \
                    SET status = 2, failed_status = $3, failure = $4 WHERE id = $1) \
         UPDATE {s}.reporting_common_costusagereportmanifest \
         SET failure = $5, state = state || jsonb_build_object($3::text, \
               coalesce(state->$3::text, '{}'::jsonb) || jsonb_build_object('failed', true, 'end', now())) \
         WHERE id = $2",
    ))
    .bind(file.id)
    .bind(file.manifest_id)
    .bind(step)
    .bind(reason)
    .bind(failure)
    .execute(conn)
    .await?;
    Ok(())
}

/// The AWS bill of a provider's month, made if new (an upsert, so concurrent callers both
/// get the row).
pub async fn ensure_bill(
    conn: &mut PgConnection,
    t: &Tenant,
    provider: Uuid,
    month: NaiveDate,
    payer: Option<&str>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(t.sql(
        "INSERT INTO {s}.reporting_awscostentrybill AS b \
           (provider_id, billing_period_start, billing_period_end, payer_account_id) \
         VALUES ($1, $2::date::timestamp AT TIME ZONE 'UTC', \
                 ($2::date + interval '1 month' - interval '1 day')::timestamp AT TIME ZONE 'UTC', $3) \
         ON CONFLICT (provider_id, billing_period_start) \
         DO UPDATE SET payer_account_id = coalesce(b.payer_account_id, excluded.payer_account_id) \
         RETURNING id",
    ))
    .bind(provider)
    .bind(month)
    .bind(payer)
    .fetch_one(conn)
    .await
}

/// The OpenShift report period of a cluster's month, made if new.
pub async fn ensure_report_period(
    conn: &mut PgConnection,
    t: &Tenant,
    provider: Uuid,
    cluster_id: &str,
    alias: &str,
    month: NaiveDate,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(t.sql(
        "INSERT INTO {s}.reporting_ocpusagereportperiod \
           (provider_id, cluster_id, cluster_alias, report_period_start, report_period_end) \
         VALUES ($1, $2, $3, $4::date::timestamp AT TIME ZONE 'UTC', \
                 ($4::date + interval '1 month')::timestamp AT TIME ZONE 'UTC') \
         ON CONFLICT (cluster_id, report_period_start, provider_id) \
         DO UPDATE SET cluster_alias = excluded.cluster_alias \
         RETURNING id",
    ))
    .bind(provider)
    .bind(cluster_id)
    .bind(alias)
    .bind(month)
    .fetch_one(conn)
    .await
}

/// The bill's id, read without a lock when it exists (files of one month load side by side).
pub async fn bill_id(
    conn: &mut PgConnection,
    t: &Tenant,
    provider: Uuid,
    month: NaiveDate,
) -> Result<i64, sqlx::Error> {
    let found: Option<i64> = sqlx::query_scalar(t.sql(
        "SELECT id FROM {s}.reporting_awscostentrybill \
         WHERE provider_id = $1 AND billing_period_start = $2::date::timestamp AT TIME ZONE 'UTC'",
    ))
    .bind(provider)
    .bind(month)
    .fetch_optional(&mut *conn)
    .await?;
    match found {
        Some(id) => Ok(id),
        None => ensure_bill(conn, t, provider, month, None).await,
    }
}

/// The report period's id, read without a lock when it exists.
pub async fn report_period_id(
    conn: &mut PgConnection,
    t: &Tenant,
    provider: Uuid,
    cluster_id: &str,
    alias: &str,
    month: NaiveDate,
) -> Result<i64, sqlx::Error> {
    let found: Option<i64> = sqlx::query_scalar(t.sql(
        "SELECT id FROM {s}.reporting_ocpusagereportperiod \
         WHERE provider_id = $1 AND cluster_id = $2 \
           AND report_period_start = $3::date::timestamp AT TIME ZONE 'UTC'",
    ))
    .bind(provider)
    .bind(cluster_id)
    .bind(month)
    .fetch_optional(&mut *conn)
    .await?;
    match found {
        Some(id) => Ok(id),
        None => ensure_report_period(conn, t, provider, cluster_id, alias, month).await,
    }
}
