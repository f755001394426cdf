//! The durable work queue (`cost.operations`): one operation per source, claimed with
//! `FOR UPDATE SKIP LOCKED` under a lease, retried with backoff, parked after too many
//! failures that will not heal (those that heal only delay it).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, types::Json};

use super::sync_row::{SOURCE_COLUMNS_OF_S, SourceRow};
use crate::domain::{OpKind, StatusBody};

/// A queued operation absorbs a newer trigger: a delete wins, a create stays a create
/// ([`OpKind::merge`]), it re-reads what either needs ([`Reread::merge`]); the generation
/// moves on so a run in progress repeats.
pub(super) const ENQUEUE_CONFLICT: &str = "ON CONFLICT (source_id) DO UPDATE SET \
       kind = CASE WHEN operations.kind = 'delete' OR excluded.kind = 'delete' THEN 'delete' \
                   WHEN operations.kind = 'create' THEN 'create' ELSE excluded.kind END, \
       reread = CASE WHEN operations.reread = 'application' AND excluded.reread = 'application' \
                     THEN 'application' ELSE 'all' END, \
       generation = operations.generation + 1, attempts = 0, failures = 0, run_at = now(), \
       parked_at = NULL, reporting = false, updated_at = now()";

/// Queues an operation for a source, merging with one already queued; a new trigger gives
/// the operation fresh attempts and makes it due now (a running one keeps its lease).
pub async fn enqueue(
    conn: &mut PgConnection,
    source_id: i64,
    kind: OpKind,
) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO operations (source_id, kind) VALUES ($1, $2) {ENQUEUE_CONFLICT}"
    )))
    .bind(source_id)
    .bind(kind.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// A claimed operation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claim {
    pub source_id: i64,
    pub kind: String,
    pub generation: i64,
    pub attempts: i32,
    pub enqueued_at: DateTime<Utc>,
    /// `all` or `application` ([`Reread`]).
    pub reread: String,
}

/// A claimed operation with its source's sync row (an operation never outlives the row).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    #[sqlx(flatten)]
    pub claim: Claim,
    #[sqlx(flatten)]
    pub source: SourceRow,
}

/// Claims up to `limit` due operations for `lease`, with their sync rows; others skip them.
pub async fn claim(db: &PgPool, limit: i64, lease: Duration) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH c AS (UPDATE operations o SET leased_until = now() + make_interval(secs => $2), \
           attempts = o.attempts + 1, reporting = false, updated_at = now() \
         WHERE o.source_id IN ( \
           SELECT source_id FROM operations \
           WHERE parked_at IS NULL AND run_at <= now() \
             AND (leased_until IS NULL OR leased_until < now()) \
           ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING o.source_id, o.kind, o.generation, o.attempts, o.enqueued_at, o.reread) \
         SELECT c.kind, c.generation, c.attempts, c.enqueued_at, c.reread, {} \
         FROM c JOIN api_sources s ON s.source_id = c.source_id",
        *SOURCE_COLUMNS_OF_S
    )))
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(db)
    .await
}

/// The operation succeeded: removed, unless a newer trigger arrived while it ran (then it
/// runs again). `status`, when given, is the availability status just sent for the source.
pub async fn complete(
    conn: &mut PgConnection,
    claim: &Claim,
    status: Option<&StatusBody>,
) -> Result<(), sqlx::Error> {
    let removed = sqlx::query(
        "WITH sent AS (UPDATE api_sources SET status = $3 WHERE source_id = $1 AND $3 IS NOT NULL) \
         DELETE FROM operations WHERE source_id = $1 AND generation = $2",
    )
    .bind(claim.source_id)
    .bind(claim.generation)
    .bind(status.map(Json))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if removed == 0 {
        release(conn, claim.source_id).await?;
    }
    Ok(())
}

/// Puts a claimed operation back without counting the attempt, due again after `delay`
/// (behind the operations due before then).
pub async fn postpone(db: &PgPool, claim: &Claim, delay: Duration) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE operations SET leased_until = NULL, attempts = greatest(attempts - 1, 0), \
           run_at = greatest(run_at, now() + make_interval(secs => $2)), updated_at = now() \
         WHERE source_id = $1",
    )
    .bind(claim.source_id)
    .bind(delay.as_secs_f64())
    .execute(db)
    .await?;
    Ok(())
}

/// Gives up a claim without counting it (shutdown).
pub async fn release(conn: &mut PgConnection, source_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE operations SET leased_until = NULL, updated_at = now() WHERE source_id = $1",
    )
    .bind(source_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The operation failed: retried after `backoff`, or, when the failure will not heal
/// (`lasting`) and it was the last of `max_failures`, parked with its reason. A newer trigger
/// that arrived meanwhile keeps it due now with fresh attempts.
pub async fn fail(
    db: &PgPool,
    claim: &Claim,
    error: &str,
    backoff: Duration,
    lasting: bool,
    max_failures: i32,
) -> Result<bool, sqlx::Error> {
    let parked: Option<bool> = sqlx::query_scalar(
        "UPDATE operations SET leased_until = NULL, last_error = $3, updated_at = now(), \
           run_at = CASE WHEN generation = $2 THEN now() + make_interval(secs => $4) ELSE run_at END, \
           failures = CASE WHEN generation = $2 AND $5 THEN failures + 1 ELSE failures END, \
           parked_at = CASE WHEN generation = $2 AND $5 AND failures + 1 >= $6 THEN now() ELSE NULL END \
         WHERE source_id = $1 RETURNING parked_at IS NOT NULL",
    )
    .bind(claim.source_id)
    .bind(claim.generation)
    .bind(error)
    .bind(backoff.as_secs_f64())
    .bind(lasting)
    .bind(max_failures)
    .fetch_optional(db)
    .await?;
    Ok(parked.unwrap_or(false))
}

/// Operations waiting or running, and parked ones.
pub async fn queue_depth(db: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE parked_at IS NULL), count(*) FILTER (WHERE parked_at IS NOT NULL) \
         FROM operations",
    )
    .fetch_one(db)
    .await
}

/// Whether any operation is waiting or running.
pub async fn has_work(db: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM operations WHERE parked_at IS NULL)")
        .fetch_one(db)
        .await
}

/// The next time an operation is due, for the worker's sleep.
pub async fn next_due(db: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT min(greatest(run_at, coalesce(leased_until, run_at))) FROM operations WHERE parked_at IS NULL",
    )
    .fetch_one(db)
    .await
}
