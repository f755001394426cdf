//! What the read API shows, one org at a time: its followed sources with their queued
//! operations, and its providers.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, types::Json};
use uuid::Uuid;

/// A followed source and its queued operation, if any.
#[derive(Debug, sqlx::FromRow)]
pub struct SourceWithOperation {
    pub source_id: i64,
    pub source_uuid: Option<Uuid>,
    pub name: Option<String>,
    pub source_type: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub koku_uuid: Option<String>,
    pub paused: bool,
    pub authentication: Json<Value>,
    pub billing_source: Json<Value>,
    pub status: Json<Value>,
    pub created_timestamp: DateTime<Utc>,
    pub linked_timestamp: Option<DateTime<Utc>>,
    pub kind: Option<String>,
    pub attempts: Option<i32>,
    pub last_error: Option<String>,
    pub parked_at: Option<DateTime<Utc>>,
    pub run_at: Option<DateTime<Utc>>,
    total: i64,
}

/// A provider with its settings and the source it was built from.
#[derive(Debug, sqlx::FromRow)]
pub struct ProviderWithSettings {
    pub uuid: Uuid,
    pub name: String,
    #[sqlx(rename = "type")]
    pub ty: String,
    pub active: bool,
    pub paused: bool,
    pub setup_complete: bool,
    pub created_timestamp: DateTime<Utc>,
    pub credentials: Json<Value>,
    pub data_source: Json<Value>,
    pub source_id: Option<i64>,
    total: i64,
}

/// The total behind a page read with `count(*) OVER ()`: from its first row, or counted when
/// the page is empty (an offset past the end).
async fn total(
    first_row: Option<i64>,
    count: impl Future<Output = Result<i64, sqlx::Error>>,
) -> Result<i64, sqlx::Error> {
    match first_row {
        Some(total) => Ok(total),
        None => count.await,
    }
}

/// One page of `org`'s followed sources by source id, and how many it has.
pub async fn sources(
    db: &PgPool,
    org: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<SourceWithOperation>, i64), sqlx::Error> {
    let rows: Vec<SourceWithOperation> = sqlx::query_as(
        "SELECT s.source_id, s.source_uuid, s.name, s.source_type, s.state, s.state_reason, s.koku_uuid, \
           s.paused, s.authentication, s.billing_source, s.status, s.created_timestamp, s.linked_timestamp, \
           o.kind, o.attempts, o.last_error, o.parked_at, o.run_at, count(*) OVER () AS total \
         FROM api_sources s LEFT JOIN operations o USING (source_id) \
         WHERE s.org_id = $1 ORDER BY s.source_id LIMIT $2 OFFSET $3",
    )
    .bind(org)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let count = total(
        rows.first().map(|r| r.total),
        sqlx::query_scalar("SELECT count(*) FROM api_sources WHERE org_id = $1")
            .bind(org)
            .fetch_one(db),
    )
    .await?;
    Ok((rows, count))
}

/// One page of `org`'s providers by creation time, and how many it has.
pub async fn providers(
    db: &PgPool,
    org: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<ProviderWithSettings>, i64), sqlx::Error> {
    let rows: Vec<ProviderWithSettings> = sqlx::query_as(
        "SELECT p.uuid, p.name, p.type, p.active, p.paused, p.setup_complete, p.created_timestamp, \
           a.credentials, b.data_source, s.source_id, count(*) OVER () AS total \
         FROM api_provider p \
         JOIN api_customer c ON c.id = p.customer_id \
         JOIN api_providerauthentication a ON a.id = p.authentication_id \
         JOIN api_providerbillingsource b ON b.id = p.billing_source_id \
         LEFT JOIN api_sources s ON s.provider_id = p.uuid \
         WHERE c.org_id = $1 ORDER BY p.created_timestamp, p.uuid LIMIT $2 OFFSET $3",
    )
    .bind(org)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let count = total(
        rows.first().map(|r| r.total),
        sqlx::query_scalar(
            "SELECT count(*) FROM api_provider p JOIN api_customer c ON c.id = p.customer_id WHERE c.org_id = $1",
        )
        .bind(org)
        .fetch_one(db),
    )
    .await?;
    Ok((rows, count))
}
