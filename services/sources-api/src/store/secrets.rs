//! Tenant secrets: credentials not tied to a source, owned by the user who created them when
//! a user is known. Passwords are sealed like authentications'; secrets announce nothing, as in
//! sources-api-go.

use keel_crypto::SecretBox;
use keel_db::{Column, Page, Table};
use keel_domain::listing::ListQuery;
use serde_json::Value;
use sqlx::PgPool;

use super::Tenant;
use crate::error::{Error, Result, constraint};

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

/// A secret's fields as sent; `None` keeps the stored value on an edit.
#[derive(Debug, Clone, Default)]
pub struct SecretFields {
    pub name: Option<String>,
    pub authtype: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub extra: Option<Value>,
}

pub async fn list(db: &PgPool, tenant: &Tenant, query: &ListQuery) -> Result<Page<SecretRow>> {
    super::tenant_page(db, tenant, &TABLE, COLUMNS, vec![], query).await
}

by_id!(SecretRow, COLUMNS, "secrets", "secret");

fn name_errors(e: sqlx::Error, name: Option<&str>) -> Error {
    match constraint(&e) {
        Some("secrets_tenant_name_key") => Error::validation(format_args!(
            "secret name {} exists in current tenant",
            name.unwrap_or_default()
        )),
        _ => e.into(),
    }
}

/// Creates a secret owned by the caller's user (when the identity names one).
pub async fn insert(
    db: &PgPool,
    secrets: &SecretBox,
    tenant: &Tenant,
    f: &SecretFields,
) -> Result<SecretRow> {
    let sealed = f
        .password
        .as_deref()
        .map(|p| secrets.seal(p, &tenant.seal_binding()));
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO secrets AS t (tenant_id, user_id, name, authtype, username, password_encrypted, extra) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    )))
    .bind(tenant.id())
    .bind(&tenant.identity.user_id)
    .bind(&f.name)
    .bind(&f.authtype)
    .bind(&f.username)
    .bind(&sealed)
    .bind(&f.extra)
    .fetch_one(db)
    .await
    .map_err(|e| name_errors(e, f.name.as_deref()))
}

pub async fn update(
    db: &PgPool,
    secrets: &SecretBox,
    tenant: &Tenant,
    id: i64,
    f: &SecretFields,
) -> Result<SecretRow> {
    let sealed = f
        .password
        .as_deref()
        .map(|p| secrets.seal(p, &tenant.seal_binding()));
    let row: Option<SecretRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE secrets AS t SET name = COALESCE($3, name), authtype = COALESCE($4, authtype), \
           username = COALESCE($5, username), password_encrypted = COALESCE($6, password_encrypted), \
           extra = COALESCE($7, extra) \
         WHERE t.id = $1 AND t.tenant_id = $2 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(tenant.id())
    .bind(&f.name)
    .bind(&f.authtype)
    .bind(&f.username)
    .bind(&sealed)
    .bind(&f.extra)
    .fetch_optional(db)
    .await
    .map_err(|e| name_errors(e, f.name.as_deref()))?;
    row.ok_or_else(|| Error::not_found("secret"))
}

pub async fn delete(db: &PgPool, tenant: &Tenant, id: i64) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM secrets WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant.id())
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
    let row = fetch(&mut conn, tenant, id).await?;
    let sealed: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT password_encrypted FROM secrets WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id)
    .bind(tenant.id())
    .fetch_one(&mut *conn)
    .await?;
    let password = sealed
        .map(|s| secrets.open(&s, &tenant.seal_binding()))
        .transpose()
        .map_err(Error::Internal)?;
    Ok((row, password))
}
