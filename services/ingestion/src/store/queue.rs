//! The durable task queue (`ingestion.tasks`): one task per provider check, file, summary and
//! upload, claimed with `FOR UPDATE SKIP LOCKED` under a lease.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// What a task does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Look for a provider's reports (AWS).
    Check { provider: Uuid },
    /// Load one report file.
    File { schema: String, status_id: i64 },
    /// Summarize a manifest whose files are all loaded.
    Summary { schema: String, manifest_id: i64 },
    /// Match an uploaded OpenShift payload to its provider and queue its files.
    Upload { request_id: String },
}

impl Job {
    fn kind(&self) -> &'static str {
        match self {
            Self::Check { .. } => "check",
            Self::File { .. } => "file",
            Self::Summary { .. } => "summary",
            Self::Upload { .. } => "upload",
        }
    }

    /// At most one pending task per key.
    fn dedup_key(&self) -> String {
        match self {
            Self::Check { provider } => format!("check:{provider}"),
            Self::File { schema, status_id } => format!("file:{schema}:{status_id}"),
            Self::Summary {
                schema,
                manifest_id,
            } => format!("summary:{schema}:{manifest_id}"),
            Self::Upload { request_id } => format!("upload:{request_id}"),
        }
    }
}

/// A claimed task.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: i64,
    pub job: Job,
    pub attempts: i32,
}

/// Queues `job` unless the same one is already queued.
pub async fn enqueue(conn: &mut PgConnection, job: &Job) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ingestion.tasks (kind, dedup_key, payload) VALUES ($1, $2, $3) \
         ON CONFLICT (dedup_key) DO NOTHING",
    )
    .bind(job.kind())
    .bind(job.dedup_key())
    .bind(sqlx::types::Json(job))
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims the oldest due task for `lease`.
pub async fn claim(db: &PgPool, lease: Duration) -> Result<Option<Task>, sqlx::Error> {
    let row: Option<(i64, sqlx::types::Json<Job>, i32)> = sqlx::query_as(
        "UPDATE ingestion.tasks SET leased_until = now() + make_interval(secs => $1), attempts = attempts + 1 \
         WHERE id = (SELECT id FROM ingestion.tasks \
                     WHERE run_at <= now() AND (leased_until IS NULL OR leased_until < now()) \
                     ORDER BY run_at, id FOR UPDATE SKIP LOCKED LIMIT 1) \
         RETURNING id, payload, attempts",
    )
    .bind(lease.as_secs_f64())
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(id, job, attempts)| Task {
        id,
        job: job.0,
        attempts,
    }))
}

/// Extends a running task's lease (its worker is alive).
pub async fn renew(db: &PgPool, id: i64, lease: Duration) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE ingestion.tasks SET leased_until = now() + make_interval(secs => $2) WHERE id = $1",
    )
    .bind(id)
    .bind(lease.as_secs_f64())
    .execute(db)
    .await?;
    Ok(())
}

/// Removes a finished task (in the transaction that did its work).
pub async fn complete(conn: &mut PgConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ingestion.tasks WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Puts a task back, due after `delay`.
pub async fn retry(db: &PgPool, id: i64, delay: Duration, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE ingestion.tasks SET run_at = now() + make_interval(secs => $2), leased_until = NULL, last_error = $3 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(delay.as_secs_f64())
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}

/// Tasks waiting or running, for the gauge.
pub async fn depth(db: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM ingestion.tasks")
        .fetch_one(db)
        .await
}
