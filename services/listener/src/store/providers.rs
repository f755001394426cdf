//! Provider rows: the shared credential and billing-source rows, the provider and the
//! tenant's provider row, with Koku's duplicate rule. Everything runs in the caller's
//! transaction, after the org's tenant exists ([`super::tenants::ensure`]).
//!
//! Lock order: shared settings rows (never updated, so only key-share locked), then
//! `cost.api_provider`, then the tenant's provider row, then the source's sync row
//! (`cost.api_sources`), then its queued operation. Settings rows left without a provider are
//! removed after the provider transaction commits ([`remove_orphans`]), never inside it, so
//! no transaction holds a shared row while it waits for another. A delete takes its source's
//! sync row first; only one operation of a source runs at a time, so nothing else holds that
//! source's provider rows meanwhile.

use std::sync::LazyLock;

use sqlx::{PgConnection, PgPool, types::Json};
use uuid::Uuid;

use super::tenants::{TenantError, schema_name};
use crate::domain::{Object, Problem, ProviderType};

/// What a provider is built from.
#[derive(Debug, Clone)]
pub struct ProviderSpec<'a> {
    pub uuid: Uuid,
    pub name: &'a str,
    pub ty: ProviderType,
    pub org_id: &'a str,
    /// The org's customer ([`super::tenants::ensure`]).
    pub customer: i64,
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

impl From<TenantError> for BuildError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::Problem(p) => Self::Problem(p),
            TenantError::Database(e) => Self::Database(e),
        }
    }
}

/// Settings rows a provider stopped using: removed after its transaction commits, when no
/// other provider took them meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "orphaned settings rows are removed after the commit"]
pub struct Released {
    pub authentication: i64,
    pub billing_source: i64,
}

/// CTEs ending in `{name}`: the id of the `table` row whose `key` equals `value`, found or
/// inserted with `columns` = `values`. Shared settings rows are found by equality, as Koku's
/// `get_or_create`. An existing row is only key-share locked, as the provider's foreign key
/// would lock it: concurrent providers with the same settings (every OpenShift provider has
/// the billing source `{}`) never wait for each other. An insert that loses a race to another
/// finds nothing, and the statement answers no row.
fn settings_cte(
    name: &str,
    table: &str,
    key: &str,
    value: &str,
    columns: &str,
    values: &str,
) -> String {
    format!(
        "{name}_found AS (SELECT id FROM {table} WHERE {key} = {value} FOR KEY SHARE), \
         {name}_made AS (INSERT INTO {table} ({columns}) SELECT {values} \
           WHERE NOT EXISTS (SELECT 1 FROM {name}_found) ON CONFLICT ({key}) DO NOTHING RETURNING id), \
         {name} AS (SELECT id FROM {name}_found UNION ALL SELECT id FROM {name}_made)"
    )
}

fn authentication_cte(credentials: &str, digest: &str) -> String {
    settings_cte(
        "auth",
        "api_providerauthentication",
        "digest",
        digest,
        "credentials, digest",
        &format!("{credentials}, {digest}"),
    )
}

fn billing_source_cte(data_source: &str) -> String {
    settings_cte(
        "billing",
        "api_providerbillingsource",
        "data_source",
        data_source,
        "data_source",
        data_source,
    )
}

static AUTHENTICATION_ROW: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {} SELECT id FROM auth",
        authentication_cte("$1", "$2")
    )
});
static BILLING_SOURCE_ROW: LazyLock<String> =
    LazyLock::new(|| format!("WITH {} SELECT id FROM billing", billing_source_cte("$1")));

/// Runs a settings-row statement until it answers (a lost race answers nothing once).
async fn settings_row<'q>(
    conn: &mut PgConnection,
    query: impl Fn() -> sqlx::query::QueryScalar<'q, sqlx::Postgres, i64, sqlx::postgres::PgArguments>,
) -> Result<i64, sqlx::Error> {
    for _ in 0..3 {
        if let Some(id) = query().fetch_optional(&mut *conn).await? {
            return Ok(id);
        }
    }
    Err(sqlx::Error::Protocol(
        "a shared settings row kept disappearing while it was read".to_owned(),
    ))
}

/// The shared credential and billing-source rows.
async fn settings_rows(
    conn: &mut PgConnection,
    spec: &ProviderSpec<'_>,
) -> Result<(i64, i64), sqlx::Error> {
    let auth = settings_row(conn, || {
        sqlx::query_scalar(sqlx::AssertSqlSafe(AUTHENTICATION_ROW.as_str()))
            .bind(Json(spec.credentials))
            .bind(spec.digest)
    })
    .await?;
    let billing = settings_row(conn, || {
        sqlx::query_scalar(sqlx::AssertSqlSafe(BILLING_SOURCE_ROW.as_str()))
            .bind(Json(spec.data_source))
    })
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

/// The tenant's provider row (uuid, name, type, provider id), its name kept up, through
/// `put_tenant_provider`: the statement's text is the same for every tenant.
async fn tenant_row(
    conn: &mut PgConnection,
    schema: &str,
    spec: &ProviderSpec<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT put_tenant_provider($1, $2, $3, $4)")
        .bind(schema)
        .bind(spec.uuid)
        .bind(spec.name)
        .bind(spec.ty.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// Notifies [`keel_domain::PROVIDER_CREATED_CHANNEL`] of a committed provider, in a
/// transaction of its own (see `Worker::announce_created`).
pub async fn announce_created(db: &sqlx::PgPool, uuid: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(keel_domain::PROVIDER_CREATED_CHANNEL)
        .bind(uuid.to_string())
        .execute(db)
        .await?;
    Ok(())
}

/// The settings rows and the provider, as CTEs ending in `provider` (its uuid when made).
static NEW_PROVIDER_CTES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{auth}, {billing}, \
         provider AS (INSERT INTO api_provider \
             (uuid, name, type, authentication_id, billing_source_id, customer_id, paused) \
           SELECT $1, $2, $3, auth.id, billing.id, $7, $8 FROM auth, billing \
           ON CONFLICT DO NOTHING RETURNING uuid)",
        auth = authentication_cte("$4", "$5"),
        billing = billing_source_cte("$6"),
    )
});

/// [`try_create_linked`]'s statement: the same text for every tenant (its schema is `$21`, for
/// `put_tenant_provider`), so each connection prepares it once and soon runs a generic plan.
/// The tenant row is counted: one per provider made.
static CREATE_LINKED: LazyLock<String> = LazyLock::new(|| {
    let (reporting, link) = super::sources::save_parts(9, "EXISTS (SELECT 1 FROM provider)");
    format!(
        "WITH {new}, tenant AS (SELECT put_tenant_provider($21, uuid, $2, $3) FROM provider), \
           {reporting}, linked AS ({link}) \
         SELECT (SELECT count(*) FROM tenant), (SELECT first_link FROM linked)",
        new = NEW_PROVIDER_CTES.as_str(),
    )
});

/// The common case of [`create`] and the source's link in one statement: the settings rows, the
/// provider, the tenant's provider row and the sync row commit together. `None` when something stood
/// in the way of the provider (nothing was written but settings rows, which [`create`] then
/// finds); else whether this was the source's first link, as [`super::sources::save`].
pub async fn try_create_linked(
    conn: &mut PgConnection,
    spec: &ProviderSpec<'_>,
    source_id: i64,
    saved: &super::sources::Saved<'_>,
) -> Result<Option<Option<chrono::DateTime<chrono::Utc>>>, sqlx::Error> {
    let query = sqlx::query_as(sqlx::AssertSqlSafe(CREATE_LINKED.as_str()))
        .bind(spec.uuid)
        .bind(spec.name)
        .bind(spec.ty.as_str())
        .bind(Json(spec.credentials))
        .bind(spec.digest)
        .bind(Json(spec.data_source))
        .bind(spec.customer)
        .bind(spec.paused);
    let (made, first_link): (i64, Option<chrono::DateTime<chrono::Utc>>) =
        super::sources::bind_saved(query, source_id, saved)
            .bind(schema_name(spec.org_id))
            .fetch_one(&mut *conn)
            .await?;
    Ok((made == 1).then_some(first_link))
}

/// Builds the provider of a source, or links the one that already exists for it (same uuid,
/// same org: an earlier attempt that committed but was not recorded).
pub async fn create(
    conn: &mut PgConnection,
    spec: &ProviderSpec<'_>,
) -> Result<Option<Released>, BuildError> {
    let schema = schema_name(spec.org_id);
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
    .bind(spec.customer)
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
            Some(owner) if owner == spec.customer => {
                tracing::info!(provider = %spec.uuid, "provider already exists for this source; linking it");
                update(conn, spec).await
            }
            Some(_) => Err(BuildError::Problem(Problem::provider())),
            // Same credentials and billing source as another provider of the org.
            None => Err(BuildError::Problem(Problem::duplicate())),
        };
    }
    tenant_row(conn, &schema, spec).await?;
    Ok(None)
}

/// Brings the provider in line with its source (name, settings, pause) and reactivates it;
/// answers the settings rows it no longer uses.
pub async fn update(
    conn: &mut PgConnection,
    spec: &ProviderSpec<'_>,
) -> Result<Option<Released>, BuildError> {
    let schema = schema_name(spec.org_id);
    let ids = settings_rows(conn, spec).await?;
    if duplicate_of(conn, spec.uuid, ids, spec.customer)
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
    Ok((old_auth, old_billing).ne(&ids).then_some(Released {
        authentication: old_auth,
        billing_source: old_billing,
    }))
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

/// Removes the provider and its tenant row; answers the settings rows it used.
pub async fn destroy(
    conn: &mut PgConnection,
    uuid: Uuid,
    org_id: &str,
) -> Result<Option<Released>, sqlx::Error> {
    let schema = schema_name(org_id);
    if super::tenants::exists(conn, &schema).await? {
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
    Ok(removed.map(|(authentication, billing_source)| Released {
        authentication,
        billing_source,
    }))
}

/// Removes released settings rows no provider uses, each in a statement of its own after the
/// provider's transaction committed. A provider that took a row meanwhile keeps it: the
/// delete then finds it used, or is refused by the foreign key.
pub async fn remove_orphans(db: &PgPool, released: Released) -> Result<(), sqlx::Error> {
    let statements = [
        (
            "DELETE FROM api_providerauthentication a WHERE a.id = $1 \
               AND NOT EXISTS (SELECT 1 FROM api_provider p WHERE p.authentication_id = a.id)",
            released.authentication,
        ),
        (
            "DELETE FROM api_providerbillingsource b WHERE b.id = $1 \
               AND NOT EXISTS (SELECT 1 FROM api_provider p WHERE p.billing_source_id = b.id)",
            released.billing_source,
        ),
    ];
    for (sql, id) in statements {
        match sqlx::query(sql).bind(id).execute(db).await {
            Ok(_) => {}
            Err(sqlx::Error::Database(e))
                if e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
