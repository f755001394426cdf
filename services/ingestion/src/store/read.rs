//! The read API's queries: a provider's manifests with their files' progress.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::tenant::Tenant;

/// A manifest as the read API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ManifestView {
    pub id: i64,
    pub assembly_id: String,
    pub billing_period_start: DateTime<Utc>,
    pub creation_datetime: DateTime<Utc>,
    pub completed_datetime: Option<DateTime<Utc>>,
    pub export_datetime: Option<DateTime<Utc>>,
    /// `{download|processing|summary: {start, end, failed}}`, as Koku records it.
    #[schema(value_type = Object)]
    pub state: sqlx::types::Json<serde_json::Value>,
    /// `complete`, `failed`, `processing` or `waiting` (files not arrived).
    pub status: String,
    pub failure: Option<String>,
    pub num_total_files: i32,
    pub files_processed: i64,
    pub files_failed: i64,
    pub rows_loaded: i64,
    pub cluster_id: Option<String>,
}

pub async fn manifests(
    db: &sqlx::PgPool,
    t: &Tenant,
    provider: Uuid,
) -> Result<Vec<ManifestView>, sqlx::Error> {
    sqlx::query_as(t.sql(
        "SELECT m.id, m.assembly_id, m.billing_period_start_datetime AS billing_period_start, \
                m.creation_datetime, m.completed_datetime, m.export_datetime, m.state, m.failure, \
                m.num_total_files, m.cluster_id, \
                count(s.id) FILTER (WHERE s.completed_datetime IS NOT NULL) AS files_processed, \
                count(s.id) FILTER (WHERE s.status = 2) AS files_failed, \
                coalesce(sum(s.rows_loaded), 0)::bigint AS rows_loaded, \
                CASE WHEN m.completed_datetime IS NOT NULL AND m.failure IS NULL THEN 'complete' \
                     WHEN m.failure IS NOT NULL THEN 'failed' \
                     WHEN count(s.id) FILTER (WHERE s.object_key IS NOT NULL) < m.num_total_files THEN 'waiting' \
                     ELSE 'processing' END AS status \
         FROM {s}.reporting_common_costusagereportmanifest m \
         LEFT JOIN {s}.reporting_common_costusagereportstatus s ON s.manifest_id = m.id \
         WHERE m.provider_id = $1 GROUP BY m.id ORDER BY m.billing_period_start_datetime DESC, m.id DESC",
    ))
    .bind(provider)
    .fetch_all(db)
    .await
}
