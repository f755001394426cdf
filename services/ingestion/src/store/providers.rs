//! The providers the listener made (`cost` schema): what the poll and the tasks read, and the
//! timestamps masu writes back (`polling_timestamp`, `setup_complete`,
//! `data_updated_timestamp`). Run failures are the ingestion's own (`ingestion.provider_runs`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::polling::Candidate;

/// A provider with what ingestion needs of its customer, credentials and billing source.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Provider {
    pub uuid: Uuid,
    pub name: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub schema_name: String,
    pub org_id: String,
    pub data_source: sqlx::types::Json<Value>,
    pub setup_complete: bool,
    pub active: bool,
    pub paused: bool,
    pub polling_timestamp: Option<DateTime<Utc>>,
    pub data_updated_timestamp: Option<DateTime<Utc>>,
}

impl Provider {
    pub fn is_ocp(&self) -> bool {
        self.kind == "OCP"
    }

    pub fn is_aws(&self) -> bool {
        self.kind == "AWS" || self.kind == "AWS-local"
    }

    /// A string field of the billing source.
    pub fn data_source_str(&self, key: &str) -> Option<&str> {
        self.data_source
            .0
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

const SELECT: &str = "SELECT p.uuid, p.name, p.type, c.schema_name, c.org_id, b.data_source, \
       p.setup_complete, p.active, p.paused, p.polling_timestamp, p.data_updated_timestamp \
     FROM cost.api_provider p \
     JOIN cost.api_customer c ON c.id = p.customer_id \
     JOIN cost.api_providerbillingsource b ON b.id = p.billing_source_id";

pub async fn find(db: &PgPool, uuid: Uuid) -> Result<Option<Provider>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE p.uuid = $1")))
        .bind(uuid)
        .fetch_optional(db)
        .await
}

/// The org's provider in `schema` (the read API's scope).
pub async fn find_in_schema(
    db: &PgPool,
    schema: &str,
    uuid: Uuid,
) -> Result<Option<Provider>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE p.uuid = $1 AND c.schema_name = $2"
    )))
    .bind(uuid)
    .bind(schema)
    .fetch_optional(db)
    .await
}

/// The org's providers in `schema`.
pub async fn list_in_schema(db: &PgPool, schema: &str) -> Result<Vec<Provider>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE c.schema_name = $1 ORDER BY p.created_timestamp, p.uuid"
    )))
    .bind(schema)
    .fetch_all(db)
    .await
}

/// The OpenShift provider of `org_id` whose credentials are exactly `{"cluster_id": …}`
/// (Koku's match for an operator payload).
pub async fn find_ocp(
    db: &PgPool,
    org_id: &str,
    cluster_id: &str,
) -> Result<Option<Provider>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} JOIN cost.api_providerauthentication a ON a.id = p.authentication_id \
         WHERE c.org_id = $1 AND p.type = 'OCP' \
           AND a.credentials = jsonb_build_object('cluster_id', $2::text) \
         ORDER BY p.created_timestamp LIMIT 1"
    )))
    .bind(org_id)
    .bind(cluster_id)
    .fetch_optional(db)
    .await
}

/// Koku's `polling_objects`: active, not paused, not OpenShift.
pub async fn poll_candidates(db: &PgPool) -> Result<Vec<Candidate>, sqlx::Error> {
    let rows: Vec<CandidateRow> = sqlx::query_as(
        "SELECT p.uuid, p.created_timestamp, p.polling_timestamp, p.data_updated_timestamp, \
                r.failed_at IS NOT NULL AS failed \
         FROM cost.api_provider p \
         LEFT JOIN ingestion.provider_runs r ON r.provider_uuid = p.uuid \
         WHERE p.active AND NOT p.paused AND p.type <> 'OCP'",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Candidate {
            uuid: r.uuid,
            created: r.created_timestamp,
            polling_timestamp: r.polling_timestamp,
            data_updated_timestamp: r.data_updated_timestamp,
            failed: r.failed,
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct CandidateRow {
    uuid: Uuid,
    created_timestamp: DateTime<Utc>,
    polling_timestamp: Option<DateTime<Utc>>,
    data_updated_timestamp: Option<DateTime<Utc>>,
    failed: bool,
}

/// Providers that never had a report check (new ones whose trigger was missed).
pub async fn never_polled(db: &PgPool) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT uuid FROM cost.api_provider \
         WHERE polling_timestamp IS NULL AND active AND NOT paused AND type <> 'OCP'",
    )
    .fetch_all(db)
    .await
}

pub async fn mark_polled(db: &PgPool, uuids: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE cost.api_provider SET polling_timestamp = now() WHERE uuid = ANY($1)")
        .bind(uuids)
        .execute(db)
        .await?;
    Ok(())
}

/// After a successful run: set up, data updated, no failure on record.
pub async fn mark_updated(conn: &mut PgConnection, uuid: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH cleared AS (DELETE FROM ingestion.provider_runs WHERE provider_uuid = $1) \
         UPDATE cost.api_provider SET setup_complete = true, data_updated_timestamp = now() \
         WHERE uuid = $1",
    )
    .bind(uuid)
    .execute(conn)
    .await?;
    Ok(())
}

/// A check found nothing new: the data is current as of now.
pub async fn mark_current(db: &PgPool, uuid: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE cost.api_provider SET data_updated_timestamp = now() WHERE uuid = $1 AND setup_complete")
        .bind(uuid)
        .execute(db)
        .await?;
    Ok(())
}

/// A run of the provider failed.
pub async fn mark_failed(
    db: impl sqlx::PgExecutor<'_>,
    uuid: Uuid,
    failure: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ingestion.provider_runs (provider_uuid, failed_at, failure) \
         VALUES ($1, now(), $2) \
         ON CONFLICT (provider_uuid) DO UPDATE SET failed_at = now(), failure = $2, updated_at = now()",
    )
    .bind(uuid)
    .bind(failure)
    .execute(db)
    .await?;
    Ok(())
}

/// The last failure on record, for the read API.
pub async fn last_failure(
    db: &PgPool,
    uuid: Uuid,
) -> Result<Option<(DateTime<Utc>, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT failed_at, failure FROM ingestion.provider_runs \
         WHERE provider_uuid = $1 AND failed_at IS NOT NULL",
    )
    .bind(uuid)
    .fetch_optional(db)
    .await
}
