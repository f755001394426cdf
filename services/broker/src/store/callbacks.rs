//! The callback outbox: written in the transaction that changes a deployment's phase,
//! delivered in order per deployment (a callback waits for the ones before it), retried,
//! then kept as a dead letter until re-sent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Callback {
    pub id: i64,
    pub deployment_id: String,
    pub url: String,
    pub body: String,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, deployment_id, url, body, state, attempts, last_error, created_at";

pub async fn enqueue(
    conn: &mut PgConnection,
    deployment_id: &str,
    url: &str,
    body: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO callbacks (deployment_id, url, body) VALUES ($1, $2, $3)")
        .bind(deployment_id)
        .bind(url)
        .bind(body)
        .execute(conn)
        .await?;
    Ok(())
}

/// Claims a due callback that is the first pending one of its deployment.
pub async fn claim(db: &PgPool, lease: Duration) -> Result<Option<Callback>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE callbacks SET leased_until = now() + make_interval(secs => $1), attempts = attempts + 1 \
         WHERE id = (SELECT c.id FROM callbacks c \
                     WHERE c.state = 'pending' AND c.next_attempt_at <= now() \
                       AND (c.leased_until IS NULL OR c.leased_until < now()) \
                       AND NOT EXISTS (SELECT 1 FROM callbacks e WHERE e.deployment_id = c.deployment_id \
                                         AND e.state = 'pending' AND e.id < c.id) \
                     ORDER BY c.next_attempt_at, c.id FOR UPDATE SKIP LOCKED LIMIT 1) \
         RETURNING {COLUMNS}"
    )))
    .bind(lease.as_secs_f64())
    .fetch_optional(db)
    .await
}

pub async fn delivered(db: &PgPool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE callbacks SET state = 'delivered', delivered_at = now(), leased_until = NULL, last_error = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// Another attempt after `delay`.
pub async fn retry_later(
    db: &PgPool,
    id: i64,
    delay: Duration,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE callbacks SET next_attempt_at = now() + make_interval(secs => $2), leased_until = NULL, last_error = $3 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(delay.as_secs_f64())
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}

/// Out of attempts: a dead letter (the deployment's later callbacks go on).
pub async fn dead(db: &PgPool, id: i64, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE callbacks SET state = 'dead', leased_until = NULL, last_error = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}

/// The namespace's dead letters, oldest first.
pub async fn dead_letters(db: &PgPool, namespace: &str) -> Result<Vec<Callback>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM callbacks c JOIN deployments d ON d.id = c.deployment_id \
         WHERE c.state = 'dead' AND d.namespace = $1 ORDER BY c.id LIMIT 1000",
        qualified("c")
    )))
    .bind(namespace)
    .fetch_all(db)
    .await
}

/// Puts the namespace's dead letter `id` back in the queue with fresh attempts; false when
/// the namespace has no such dead letter.
pub async fn resend(db: &PgPool, namespace: &str, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE callbacks c SET state = 'pending', attempts = 0, next_attempt_at = now(), leased_until = NULL \
         FROM deployments d \
         WHERE c.id = $2 AND c.state = 'dead' AND d.id = c.deployment_id AND d.namespace = $1",
    )
    .bind(namespace)
    .bind(id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

fn qualified(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Callbacks waiting, for the gauge.
pub async fn pending(db: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM callbacks WHERE state = 'pending'")
        .fetch_one(db)
        .await
}
