//! Koku's provider builder: customer by org id, tenant schema `org<org_id>` cloned from the
//! migrated template, shared credential and billing-source rows, the provider and the tenant's
//! provider row, with Koku's duplicate rule. Everything runs in the caller's transaction.

use std::{sync::LazyLock, time::Instant};

use regex::Regex;
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::domain::{Object, Problem, ProviderType, too_long_message};

/// The schema every tenant is cloned from (Koku's `TEMPLATE_SCHEMA` default).
pub const TEMPLATE_SCHEMA: &str = "template0";

/// Koku's `create_schema_name`.
pub fn schema_name(org_id: &str) -> String {
    format!("org{org_id}")
}

static SCHEMA: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^org[A-Za-z0-9_]{1,60}$").expect("valid regex"));

/// What a provider is built from.
#[derive(Debug, Clone)]
pub struct ProviderSpec<'a> {
    pub uuid: Uuid,
    pub name: &'a str,
    pub ty: ProviderType,
    pub org_id: &'a str,
    pub account_id: Option<&'a str>,
    /// Sealed credentials, as stored.
    pub credentials: &'a Object,
    /// Digest of the plain credentials.
    pub digest: &'a str,
    pub data_source: &'a Object,
    pub paused: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The source cannot have a provider as it is (reported to the user).
    #[error("{}", .0.message)]
    Problem(Problem),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Creates the tenant schema by cloning the template unless it exists, and records the
/// tenant. Schemas are never dropped, so an existing one needs no lock. Clones take one lock
/// for the whole database (held to the end of the transaction): concurrent clones contend on
/// the catalogue and each gets many times slower, and the lock also keeps two sources of a
/// new org from cloning it twice.
pub async fn ensure_tenant(conn: &mut PgConnection, schema: &str) -> Result<(), BuildError> {
    if !SCHEMA.is_match(schema) {
        return Err(BuildError::Problem(Problem::new(
            "source.provider",
            format!("the org id does not make a valid schema name: {schema}"),
        )));
    }
    if schema_exists(conn, schema).await? {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('keel.tenant.clone'))")
        .execute(&mut *conn)
        .await?;
    if schema_exists(conn, schema).await? {
        return Ok(());
    }
    let started = Instant::now();
    sqlx::query("SELECT cost.clone_schema($1, $2)")
        .bind(TEMPLATE_SCHEMA)
        .bind(schema)
        .execute(&mut *conn)
        .await?;
    let took = started.elapsed();
    metrics::histogram!("tenant_schema_clone_seconds").record(took.as_secs_f64());
    tracing::info!(
        schema,
        took_ms = took.as_secs_f64() * 1e3,
        "cloned tenant schema"
    );
    sqlx::query("INSERT INTO api_tenant (schema_name) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(schema)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn schema_exists(conn: &mut PgConnection, schema: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(&mut *conn)
        .await
}

/// Longest org id and account number `api_customer` holds (Koku's columns).
const MAX_ORG_ID: usize = 36;
const MAX_ACCOUNT_ID: usize = 150;

/// The org's customer row. What the table cannot hold (an over-long org id or account, an
/// account that already belongs to another org) is the source's problem, reported to the user,
/// not a database error retried until the operation parks.
async fn customer(conn: &mut PgConnection, spec: &ProviderSpec<'_>) -> Result<i64, BuildError> {
    if spec.org_id.chars().count() > MAX_ORG_ID {
        return Err(BuildError::Problem(Problem::new(
            "source.org_id",
            too_long_message(MAX_ORG_ID),
        )));
    }
    if spec
        .account_id
        .is_some_and(|a| a.chars().count() > MAX_ACCOUNT_ID)
    {
        return Err(BuildError::Problem(Problem::new(
            "source.account_id",
            too_long_message(MAX_ACCOUNT_ID),
        )));
    }
    let inserted = sqlx::query_scalar(
        "INSERT INTO api_customer (org_id, account_id, schema_name) VALUES ($1, $2, $3) \
         ON CONFLICT (org_id) DO UPDATE SET date_updated = now() RETURNING id",
    )
    .bind(spec.org_id)
    .bind(spec.account_id)
    .bind(schema_name(spec.org_id))
    .fetch_one(&mut *conn)
    .await;
    match inserted {
        Ok(id) => Ok(id),
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("api_customer_account_id_key") => {
            Err(BuildError::Problem(Problem::new(
                "source.account_id",
                ACCOUNT_TAKEN_MESSAGE,
            )))
        }
        Err(e) => Err(e.into()),
    }
}

const ACCOUNT_TAKEN_MESSAGE: &str =
    "This account number already belongs to another organization in cost management.";

/// The shared credential and billing-source rows (found by equality, as Koku's
/// `get_or_create`).
async fn settings_rows(
    conn: &mut PgConnection,
    spec: &ProviderSpec<'_>,
) -> Result<(i64, i64), BuildError> {
    let auth: i64 = sqlx::query_scalar(
        "INSERT INTO api_providerauthentication (credentials, digest) VALUES ($1, $2) \
         ON CONFLICT (digest) DO UPDATE SET digest = excluded.digest RETURNING id",
    )
    .bind(Json(spec.credentials))
    .bind(spec.digest)
    .fetch_one(&mut *conn)
    .await?;
    let billing: i64 = sqlx::query_scalar(
        "INSERT INTO api_providerbillingsource (data_source) VALUES ($1) \
         ON CONFLICT (data_source) DO UPDATE SET data_source = excluded.data_source RETURNING id",
    )
    .bind(Json(spec.data_source))
    .fetch_one(&mut *conn)
    .await?;
    Ok((auth, billing))
}

/// Another provider of the customer with the same credentials and billing source.
async fn duplicate_of(
    conn: &mut PgConnection,
    uuid: Uuid,
    ids: (i64, i64),
    customer: i64,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT uuid FROM api_provider WHERE authentication_id = $1 AND billing_source_id = $2 \
         AND customer_id = $3 AND uuid <> $4",
    )
    .bind(ids.0)
    .bind(ids.1)
    .bind(customer)
    .bind(uuid)
    .fetch_optional(conn)
    .await
}

async fn tenant_row(
    conn: &mut PgConnection,
    schema: &str,
    spec: &ProviderSpec<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {}.reporting_tenant_api_provider (uuid, name, type, provider_id) \
         VALUES ($1, $2, $3, $1) ON CONFLICT (uuid) DO UPDATE SET name = excluded.name",
        keel_db::quote_ident(schema)
    )))
    .bind(spec.uuid)
    .bind(spec.name)
    .bind(spec.ty.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// Builds the provider of a source, or links the one that already exists for it (same uuid,
/// same org: an earlier attempt that committed but was not recorded).
pub async fn create(conn: &mut PgConnection, spec: &ProviderSpec<'_>) -> Result<(), BuildError> {
    let schema = schema_name(spec.org_id);
    let customer = customer(conn, spec).await?;
    ensure_tenant(conn, &schema).await?;
    let ids = settings_rows(conn, spec).await?;
    // The common case in one statement; a conflict (same uuid, or the same settings in the
    // org) is looked into only when it happens.
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO api_provider (uuid, name, type, authentication_id, billing_source_id, customer_id, paused) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING uuid",
    )
    .bind(spec.uuid)
    .bind(spec.name)
    .bind(spec.ty.as_str())
    .bind(ids.0)
    .bind(ids.1)
    .bind(customer)
    .bind(spec.paused)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_none() {
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT customer_id FROM api_provider WHERE uuid = $1")
                .bind(spec.uuid)
                .fetch_optional(&mut *conn)
                .await?;
        return match existing {
            Some(owner) if owner == customer => {
                tracing::info!(provider = %spec.uuid, "provider already exists for this source; linking it");
                update(conn, spec).await
            }
            Some(_) => Err(BuildError::Problem(Problem::provider())),
            // Same credentials and billing source as another provider of the org.
            None => Err(BuildError::Problem(Problem::duplicate())),
        };
    }
    tenant_row(conn, &schema, spec).await?;
    Ok(())
}

/// Brings the provider in line with its source (name, settings, pause) and reactivates it.
pub async fn update(conn: &mut PgConnection, spec: &ProviderSpec<'_>) -> Result<(), BuildError> {
    let schema = schema_name(spec.org_id);
    let customer = customer(conn, spec).await?;
    let ids = settings_rows(conn, spec).await?;
    if duplicate_of(conn, spec.uuid, ids, customer)
        .await?
        .is_some()
    {
        return Err(BuildError::Problem(Problem::duplicate()));
    }
    let (old_auth, old_billing): (i64, i64) = sqlx::query_as(
        "UPDATE api_provider p SET name = $2, authentication_id = $3, billing_source_id = $4, \
           paused = $5, active = true \
         FROM api_provider old WHERE p.uuid = $1 AND old.uuid = p.uuid \
         RETURNING old.authentication_id, old.billing_source_id",
    )
    .bind(spec.uuid)
    .bind(spec.name)
    .bind(ids.0)
    .bind(ids.1)
    .bind(spec.paused)
    .fetch_one(&mut *conn)
    .await?;
    tenant_row(conn, &schema, spec).await?;
    remove_orphans(conn, old_auth, old_billing).await?;
    Ok(())
}

/// A provider whose source became invalid keeps running paused as asked but inactive, as
/// Koku's update does when the cloud check fails.
pub async fn deactivate(
    conn: &mut PgConnection,
    uuid: Uuid,
    paused: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE api_provider SET active = false, paused = $2 WHERE uuid = $1")
        .bind(uuid)
        .bind(paused)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes the provider, its tenant row, and settings rows no provider uses any more.
pub async fn destroy(conn: &mut PgConnection, uuid: Uuid, org_id: &str) -> Result<(), sqlx::Error> {
    let schema = schema_name(org_id);
    let tenant_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(&schema)
            .fetch_one(&mut *conn)
            .await?;
    if tenant_exists {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {}.reporting_tenant_api_provider WHERE provider_id = $1",
            keel_db::quote_ident(&schema)
        )))
        .bind(uuid)
        .execute(&mut *conn)
        .await?;
    }
    let removed: Option<(i64, i64)> = sqlx::query_as(
        "DELETE FROM api_provider WHERE uuid = $1 RETURNING authentication_id, billing_source_id",
    )
    .bind(uuid)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((auth, billing)) = removed {
        remove_orphans(conn, auth, billing).await?;
    }
    Ok(())
}

async fn remove_orphans(
    conn: &mut PgConnection,
    auth: i64,
    billing: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM api_providerauthentication a WHERE a.id = $1 \
           AND NOT EXISTS (SELECT 1 FROM api_provider p WHERE p.authentication_id = a.id)",
    )
    .bind(auth)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM api_providerbillingsource b WHERE b.id = $1 \
           AND NOT EXISTS (SELECT 1 FROM api_provider p WHERE p.billing_source_id = b.id)",
    )
    .bind(billing)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every tenant schema, oldest first (each is migrated at start).
pub async fn tenant_schemas(db: &sqlx::PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT schema_name FROM api_tenant ORDER BY id")
        .fetch_all(db)
        .await
}
