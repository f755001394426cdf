//! OpenShift payloads received at the upload endpoint (`ingestion.uploads`).

use serde_json::Value;
use sqlx::{PgConnection, PgPool};

/// A payload as recorded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Upload {
    pub request_id: String,
    pub org_id: String,
    pub object_key: String,
    pub cluster_id: String,
    pub manifest: sqlx::types::Json<Value>,
    pub files: Vec<String>,
    pub state: String,
}

pub struct NewUpload<'a> {
    pub request_id: &'a str,
    pub org_id: &'a str,
    pub account: Option<&'a str>,
    pub object_key: &'a str,
    pub size: i64,
    pub cluster_id: &'a str,
    pub manifest: &'a Value,
    pub files: &'a [String],
}

pub async fn insert(conn: &mut PgConnection, u: &NewUpload<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ingestion.uploads \
           (request_id, org_id, account, object_key, size, cluster_id, manifest, files) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(u.request_id)
    .bind(u.org_id)
    .bind(u.account)
    .bind(u.object_key)
    .bind(u.size)
    .bind(u.cluster_id)
    .bind(sqlx::types::Json(u.manifest))
    .bind(u.files)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(
    conn: &mut PgConnection,
    request_id: &str,
) -> Result<Option<Upload>, sqlx::Error> {
    sqlx::query_as(
        "SELECT request_id, org_id, object_key, cluster_id, manifest, files, state \
         FROM ingestion.uploads WHERE request_id = $1",
    )
    .bind(request_id)
    .fetch_optional(conn)
    .await
}

pub async fn set_state(
    conn: &mut PgConnection,
    request_id: &str,
    state: &str,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE ingestion.uploads SET state = $2, reason = $3, updated_at = now() WHERE request_id = $1")
        .bind(request_id)
        .bind(state)
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// Waiting payloads whose cluster now has a provider of their org.
pub async fn claimable(db: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT u.request_id FROM ingestion.uploads u WHERE u.state = 'waiting' AND EXISTS ( \
           SELECT 1 FROM cost.api_provider p \
           JOIN cost.api_customer c ON c.id = p.customer_id \
           JOIN cost.api_providerauthentication a ON a.id = p.authentication_id \
           WHERE c.org_id = u.org_id AND p.type = 'OCP' \
             AND a.credentials = jsonb_build_object('cluster_id', u.cluster_id)) \
         ORDER BY u.created_at",
    )
    .fetch_all(db)
    .await
}
