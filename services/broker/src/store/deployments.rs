//! Deployments: the desired spec, the phase, what was observed. Reads are scoped to a
//! namespace (the callers' unit of ownership), except by id, which is unguessable.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, types::Json};

use crate::domain::{phase::Phase, spec::Spec};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Deployment {
    pub id: String,
    pub namespace: String,
    pub resource_type: String,
    pub resource_name: String,
    pub team: String,
    pub owner: Option<String>,
    pub callback_url: String,
    pub spec: Json<Spec>,
    pub target: String,
    phase: String,
    pub message: String,
    pub health: Option<String>,
    pub endpoint: Option<String>,
    pub port: Option<i32>,
    pub connection_secret: Option<String>,
    pub actual: Option<Json<Value>>,
    pub drift: Json<Vec<String>>,
    pub last_checked: Option<DateTime<Utc>>,
    pub generation: i64,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Deployment {
    pub fn phase(&self) -> Phase {
        // The table's CHECK admits only the five phases.
        Phase::parse(&self.phase).unwrap_or(Phase::Failed)
    }
}

const COLUMNS: &str = "id, namespace, resource_type, resource_name, team, owner, callback_url, spec, target, \
     phase, message, health, endpoint, port, connection_secret, actual, drift, last_checked, generation, attempts, \
     created_at, updated_at";

fn sql(template: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(template.replace("{COLUMNS}", COLUMNS))
}

/// A provision request, checked.
#[derive(Debug, Clone)]
pub struct NewDeployment<'a> {
    pub id: &'a str,
    pub namespace: &'a str,
    pub resource_type: &'a str,
    pub resource_name: &'a str,
    pub team: &'a str,
    pub owner: Option<&'a str>,
    pub callback_url: &'a str,
    pub spec: &'a Spec,
    pub target: &'a str,
    pub message: &'a str,
}

/// Inserts the deployment unless a live one holds its natural key (then `None`: a concurrent
/// repeat or an earlier request won, and the caller decides on what is there).
pub async fn insert(
    conn: &mut PgConnection,
    d: &NewDeployment<'_>,
) -> Result<Option<Deployment>, sqlx::Error> {
    sqlx::query_as(sql(
        "INSERT INTO deployments (id, namespace, resource_type, resource_name, team, owner, callback_url, spec, target, phase, message) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'Provisioning', $10) \
         ON CONFLICT (namespace, resource_type, resource_name) WHERE phase <> 'Deleted' DO NOTHING \
         RETURNING {COLUMNS}",
    ))
    .bind(d.id)
    .bind(d.namespace)
    .bind(d.resource_type)
    .bind(d.resource_name)
    .bind(d.team)
    .bind(d.owner)
    .bind(d.callback_url)
    .bind(Json(d.spec))
    .bind(d.target)
    .bind(d.message)
    .fetch_optional(conn)
    .await
}

/// The live deployment under a natural key, locked until the transaction ends.
pub async fn lock_live(
    conn: &mut PgConnection,
    namespace: &str,
    resource_type: &str,
    resource_name: &str,
) -> Result<Option<Deployment>, sqlx::Error> {
    sqlx::query_as(sql(
        "SELECT {COLUMNS} FROM deployments \
         WHERE namespace = $1 AND resource_type = $2 AND resource_name = $3 AND phase <> 'Deleted' FOR UPDATE",
    ))
    .bind(namespace)
    .bind(resource_type)
    .bind(resource_name)
    .fetch_optional(conn)
    .await
}

/// A deployment by id, locked until the transaction ends.
/// The namespace's Ready deployment whose connection secret is `secret`, locked.
pub async fn lock_ready_by_secret(
    conn: &mut PgConnection,
    namespace: &str,
    secret: &str,
) -> Result<Option<Deployment>, sqlx::Error> {
    sqlx::query_as(sql("SELECT {COLUMNS} FROM deployments \
         WHERE namespace = $1 AND connection_secret = $2 AND phase = 'Ready' FOR UPDATE"))
    .bind(namespace)
    .bind(secret)
    .fetch_optional(conn)
    .await
}

pub async fn lock(conn: &mut PgConnection, id: &str) -> Result<Option<Deployment>, sqlx::Error> {
    sqlx::query_as(sql(
        "SELECT {COLUMNS} FROM deployments WHERE id = $1 FOR UPDATE",
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn find(db: &PgPool, id: &str) -> Result<Option<Deployment>, sqlx::Error> {
    sqlx::query_as(sql("SELECT {COLUMNS} FROM deployments WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// What `/v1/resources` filters by; the namespace is required.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub namespace: &'a str,
    pub resource_type: Option<&'a str>,
    pub resource_name: Option<&'a str>,
    pub deployment_id: Option<&'a str>,
}

/// The namespace's deployments, newest first; deleted ones are left out.
pub async fn list(db: &PgPool, f: &Filter<'_>) -> Result<Vec<Deployment>, sqlx::Error> {
    sqlx::query_as(sql("SELECT {COLUMNS} FROM deployments \
         WHERE namespace = $1 AND phase <> 'Deleted' \
           AND ($2::text IS NULL OR resource_type = $2) \
           AND ($3::text IS NULL OR resource_name = $3) \
           AND ($4::text IS NULL OR id = $4) \
         ORDER BY created_at DESC, id LIMIT 1000"))
    .bind(f.namespace)
    .bind(f.resource_type)
    .bind(f.resource_name)
    .bind(f.deployment_id)
    .fetch_all(db)
    .await
}

/// Moves a locked deployment to `phase` for new work (a retry, a deletion): a new generation,
/// attempts reset; returns the row.
pub async fn restart(
    conn: &mut PgConnection,
    id: &str,
    phase: Phase,
    message: &str,
) -> Result<Deployment, sqlx::Error> {
    sqlx::query_as(sql(
        "UPDATE deployments SET phase = $2, message = $3, generation = generation + 1, attempts = 0, \
                updated_at = now() \
         WHERE id = $1 RETURNING {COLUMNS}",
    ))
    .bind(id)
    .bind(phase.as_str())
    .bind(message)
    .fetch_one(conn)
    .await
}

/// Claims a deployment owed work whose lease is free, leaving alone namespaces that already
/// run `per_namespace` operations.
pub async fn claim(
    db: &PgPool,
    lease: Duration,
    per_namespace: u32,
) -> Result<Option<Deployment>, sqlx::Error> {
    sqlx::query_as(sql(
        "UPDATE deployments SET leased_until = now() + make_interval(secs => $1), attempts = attempts + 1 \
         WHERE id = (SELECT d.id FROM deployments d \
                     WHERE d.phase IN ('Provisioning', 'Deleting') \
                       AND (d.leased_until IS NULL OR d.leased_until < now()) \
                       AND (SELECT count(*) FROM deployments r WHERE r.namespace = d.namespace \
                              AND r.phase IN ('Provisioning', 'Deleting') AND r.leased_until >= now()) < $2 \
                     ORDER BY d.updated_at, d.id FOR UPDATE SKIP LOCKED LIMIT 1) \
         RETURNING {COLUMNS}",
    ))
    .bind(lease.as_secs_f64())
    .bind(i64::from(per_namespace))
    .fetch_optional(db)
    .await
}

pub async fn renew(db: &PgPool, id: &str, lease: Duration) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deployments SET leased_until = now() + make_interval(secs => $2) WHERE id = $1",
    )
    .bind(id)
    .bind(lease.as_secs_f64())
    .execute(db)
    .await?;
    Ok(())
}

/// Gives the lease back, the work due again after `delay` (a transient failure).
pub async fn release(
    db: &PgPool,
    id: &str,
    delay: Duration,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deployments SET leased_until = now() + make_interval(secs => $2), message = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(delay.as_secs_f64())
    .bind(message)
    .execute(db)
    .await?;
    Ok(())
}

/// How a finished operation leaves the deployment.
#[derive(Debug, Clone, Default)]
pub struct Outcome<'a> {
    pub message: &'a str,
    pub health: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    pub port: Option<i32>,
    pub connection_secret: Option<&'a str>,
    pub actual: Option<Value>,
}

/// Ends the operation of `generation` in `phase`, unless a newer request changed what is owed
/// (then `None`, and the newer work goes on).
pub async fn finish(
    conn: &mut PgConnection,
    id: &str,
    generation: i64,
    phase: Phase,
    o: &Outcome<'_>,
) -> Result<Option<Deployment>, sqlx::Error> {
    sqlx::query_as(sql(
        "UPDATE deployments SET phase = $3, message = $4, health = $5, \
                endpoint = coalesce($6, endpoint), port = coalesce($7, port), \
                connection_secret = coalesce($8, connection_secret), actual = coalesce($9, actual), \
                last_checked = CASE WHEN $9::jsonb IS NULL THEN last_checked ELSE now() END, \
                leased_until = NULL, updated_at = now() \
         WHERE id = $1 AND generation = $2 RETURNING {COLUMNS}",
    ))
    .bind(id)
    .bind(generation)
    .bind(phase.as_str())
    .bind(o.message)
    .bind(o.health)
    .bind(o.endpoint)
    .bind(o.port)
    .bind(o.connection_secret)
    .bind(o.actual.as_ref().map(Json))
    .fetch_optional(conn)
    .await
}

/// The current generation is still the one being worked on (a deprovision halts a creation).
pub async fn still_owed(db: &PgPool, id: &str, generation: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM deployments WHERE id = $1 AND generation = $2)",
    )
    .bind(id)
    .bind(generation)
    .fetch_one(db)
    .await
}

/// What a drift check saw.
pub async fn observed(
    db: &PgPool,
    id: &str,
    generation: i64,
    health: &str,
    message: &str,
    actual: &Value,
    drift: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deployments SET health = $2, message = $3, actual = $4, drift = $5, last_checked = now() \
         WHERE id = $1 AND phase = 'Ready' AND generation = $6",
    )
    .bind(id)
    .bind(health)
    .bind(message)
    .bind(Json(actual))
    .bind(Json(drift))
    .bind(generation)
    .execute(db)
    .await?;
    Ok(())
}

/// Claims up to `limit` Ready deployments not checked within `interval`, oldest check first,
/// stamping them checked now so another broker replica takes others.
pub async fn claim_checks(
    db: &PgPool,
    interval: Duration,
    limit: i64,
) -> Result<Vec<Deployment>, sqlx::Error> {
    sqlx::query_as(sql(
        "UPDATE deployments SET last_checked = now() \
         WHERE id IN (SELECT id FROM deployments \
                      WHERE phase = 'Ready' \
                        AND (last_checked IS NULL OR last_checked < now() - make_interval(secs => $1)) \
                      ORDER BY last_checked NULLS FIRST, id FOR UPDATE SKIP LOCKED LIMIT $2) \
         RETURNING {COLUMNS}",
    ))
    .bind(interval.as_secs_f64())
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Deployments per (namespace, type, phase), for the `broker_resources_total` gauge.
pub async fn counts(db: &PgPool) -> Result<Vec<(String, String, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT namespace, resource_type, phase, count(*) FROM deployments \
         WHERE phase <> 'Deleted' GROUP BY 1, 2, 3",
    )
    .fetch_all(db)
    .await
}

/// The broker's own database answers.
pub async fn ping(db: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(db).await.map(|_| ())
}
