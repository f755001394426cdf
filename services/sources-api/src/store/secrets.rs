//! Tenant secrets: credentials not tied to a source. A secret is shared by the tenant, or
//! (created with `user_scoped`) its creating user's alone: every read and write sees the
//! tenant's shared secrets and the caller's own, as sources-api-go does (`user_id IS NULL OR
//! user_id = caller`). Passwords are sealed like authentications'; secrets announce nothing.

use keel_crypto::SecretBox;
use keel_db::{Column, Page, Scope, Table};
use keel_domain::listing::ListQuery;
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};

use super::Tenant;
use crate::{
    domain::authentication::Credentials,
    error::{Error, Result, constraint},
};

pub static TABLE: Table = Table {
    name: "secrets",
    columns: &[
        Column::int("id"),
        Column::text("name"),
        Column::text("authtype"),
        Column::text("username"),
        Column::text("user_id"),
    ],
    subresources: &[],
};

const COLUMNS: &str = "t.id, t.user_id, t.name, t.authtype, t.username, t.extra";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SecretRow {
    pub id: i64,
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub authtype: Option<String>,
    pub username: Option<String>,
    pub extra: Option<Value>,
}

/// The condition, against `t`, of the secrets the caller may see, with the caller's user as
/// parameter `$n` (NULL without one: the shared secrets only).
fn visible(n: usize) -> String {
    format!("(t.user_id IS NULL OR t.user_id = ${n})")
}

fn caller(tenant: &Tenant) -> Option<&str> {
    tenant.identity.user_id.as_deref()
}

pub async fn list(db: &PgPool, tenant: &Tenant, query: &ListQuery) -> Result<Page<SecretRow>> {
    let visible = match caller(tenant) {
        Some(user) => Scope::around_text("(t.user_id IS NULL OR t.user_id = ", user, ")"),
        None => Scope::raw("t.user_id IS NULL"),
    };
    super::tenant_page(db, tenant, &TABLE, COLUMNS, vec![visible], query).await
}

/// The secret `id`, if the caller may see it, or 404.
pub async fn find(db: &PgPool, tenant: &Tenant, id: i64) -> Result<SecretRow> {
    fetch(db, tenant, id).await
}

async fn fetch(db: impl PgExecutor<'_>, tenant: &Tenant, id: i64) -> Result<SecretRow> {
    let sql = format!(
        "SELECT {COLUMNS} FROM secrets t WHERE t.id = $1 AND t.tenant_id = $2 AND {}",
        visible(3)
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(tenant.id())
        .bind(caller(tenant))
        .fetch_optional(db)
        .await?
        .ok_or_else(|| Error::not_found("secret"))
}

fn name_errors(e: sqlx::Error, name: Option<&str>) -> Error {
    match constraint(&e) {
        Some("secrets_tenant_name_key") => Error::validation(format_args!(
            "secret name {} exists in current tenant",
            name.unwrap_or_default()
        )),
        _ => e.into(),
    }
}

/// Creates a secret: the caller's own with `user_scoped` (when the identity names a user),
/// else the tenant's.
pub async fn insert(
    db: &PgPool,
    secrets: &SecretBox,
    tenant: &Tenant,
    f: &Credentials,
    user_scoped: bool,
) -> Result<SecretRow> {
    let sealed = tenant.seal(secrets, f.password.as_deref());
    let insert = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO secrets AS t (tenant_id, user_id, name, authtype, username, password_encrypted, extra) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    )))
    .bind(tenant.id())
    .bind(caller(tenant).filter(|_| user_scoped));
    super::bind_credentials(insert, f, &sealed)
        .fetch_one(db)
        .await
        .map_err(|e| name_errors(e, f.name.as_deref()))
}

pub async fn update(
    db: &PgPool,
    secrets: &SecretBox,
    tenant: &Tenant,
    id: i64,
    f: &Credentials,
) -> Result<SecretRow> {
    let sealed = tenant.seal(secrets, f.password.as_deref());
    let update = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE secrets AS t SET name = COALESCE($3, name), authtype = COALESCE($4, authtype), \
           username = COALESCE($5, username), password_encrypted = COALESCE($6, password_encrypted), \
           extra = COALESCE($7, extra) \
         WHERE t.id = $1 AND t.tenant_id = $2 AND {} RETURNING {COLUMNS}",
        visible(8)
    )))
    .bind(id)
    .bind(tenant.id());
    let row: Option<SecretRow> = super::bind_credentials(update, f, &sealed)
        .bind(caller(tenant))
        .fetch_optional(db)
        .await
        .map_err(|e| name_errors(e, f.name.as_deref()))?;
    row.ok_or_else(|| Error::not_found("secret"))
}

pub async fn delete(db: &PgPool, tenant: &Tenant, id: i64) -> Result<()> {
    let sql = format!(
        "DELETE FROM secrets t WHERE t.id = $1 AND t.tenant_id = $2 AND {}",
        visible(3)
    );
    let deleted = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(tenant.id())
        .bind(caller(tenant))
        .execute(db)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::not_found("secret"));
    }
    Ok(())
}

/// The secret with its password, for the internal API only.
pub async fn find_with_password(
    db: &PgPool,
    secrets: &SecretBox,
    tenant: &Tenant,
    id: i64,
) -> Result<(SecretRow, Option<String>)> {
    let mut conn = db.acquire().await?;
    let row = fetch(&mut *conn, tenant, id).await?;
    let password = super::open_password(&mut conn, secrets, tenant, &TABLE, id).await?;
    Ok((row, password))
}
