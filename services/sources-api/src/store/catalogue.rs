//! The catalogue every tenant shares: source types, application types and the metadata
//! application types publish. Seeded at start (`seed.rs`), read-only through the API.

use chrono::{DateTime, Utc};
use keel_db::{Column, Page, Scope, Table};
use keel_domain::listing::ListQuery;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use super::{Tenant, Write};
use crate::error::{Error, Result};

pub static SOURCE_TYPES: Table = Table {
    name: "source_types",
    columns: &[
        Column::int("id"),
        Column::timestamp("created_at"),
        Column::timestamp("updated_at"),
        Column::text("category"),
        Column::text("name"),
        Column::text("product_name"),
        Column::text("vendor"),
        Column::text("icon_url"),
        Column::json("schema"),
    ],
    subresources: &[],
};

pub static APPLICATION_TYPES: Table = Table {
    name: "application_types",
    columns: &[
        Column::int("id"),
        Column::timestamp("created_at"),
        Column::timestamp("updated_at"),
        Column::text("name"),
        Column::text("display_name"),
        Column::json("dependent_applications"),
        Column::json("supported_source_types"),
        Column::json("supported_authentication_types"),
        Column::text("resource_ownership"),
    ],
    subresources: &[],
};

pub static META_DATA: Table = Table {
    name: "meta_data",
    columns: &[
        Column::int("id"),
        Column::timestamp("created_at"),
        Column::timestamp("updated_at"),
        Column::text("name"),
        Column::json("payload"),
        Column::int("application_type_id"),
    ],
    subresources: &[],
};

#[derive(Debug, sqlx::FromRow)]
pub struct SourceTypeRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub category: String,
    pub name: String,
    pub product_name: String,
    pub vendor: String,
    pub schema: Value,
    pub icon_url: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
pub struct ApplicationTypeRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub name: String,
    pub display_name: String,
    pub dependent_applications: Value,
    pub supported_source_types: Value,
    pub supported_authentication_types: Value,
}

#[derive(Debug, sqlx::FromRow)]
pub struct MetaDataRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub name: String,
    pub payload: Value,
    pub application_type_id: i64,
}

pub async fn source_types(db: &PgPool, query: &ListQuery) -> Result<Page<SourceTypeRow>> {
    super::page(db, &SOURCE_TYPES, "t.*", vec![], query).await
}

pub async fn source_type(db: &PgPool, id: i64) -> Result<SourceTypeRow> {
    sqlx::query_as("SELECT * FROM source_types WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| Error::not_found("source type"))
}

/// Application types; `used_by_source`: only those of that source's applications (the
/// source is the tenant's).
pub async fn application_types(
    db: &PgPool,
    used_by_source: Option<(&Tenant, i64)>,
    query: &ListQuery,
) -> Result<Page<ApplicationTypeRow>> {
    let scopes = match used_by_source {
        None => vec![],
        Some((tenant, source_id)) => {
            super::ensure_source(db, tenant, source_id).await?;
            vec![Scope::around(
                "t.id IN (SELECT a.application_type_id FROM applications a WHERE a.source_id = ",
                source_id,
                ")",
            )]
        }
    };
    super::page(db, &APPLICATION_TYPES, "t.*", scopes, query).await
}

pub async fn application_type(db: &PgPool, id: i64) -> Result<ApplicationTypeRow> {
    sqlx::query_as("SELECT * FROM application_types WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| Error::not_found("application type"))
}

/// Metadata; `of_application_type`: only that type's (404 when it does not exist).
pub async fn meta_data(
    db: &PgPool,
    of_application_type: Option<i64>,
    query: &ListQuery,
) -> Result<Page<MetaDataRow>> {
    let scopes = match of_application_type {
        None => vec![],
        Some(id) => {
            ensure_application_type(db, id).await?;
            vec![Scope::eq("t.application_type_id = ", id)]
        }
    };
    super::page(db, &META_DATA, "t.*", scopes, query).await
}

pub async fn meta_data_entry(db: &PgPool, id: i64) -> Result<MetaDataRow> {
    sqlx::query_as("SELECT * FROM meta_data WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| Error::not_found("metadata"))
}

async fn exists(db: &PgPool, table: &str, id: i64) -> Result<bool> {
    let sql = format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1)");
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_one(db)
        .await?)
}

/// 404 unless the source type exists.
pub async fn ensure_source_type(db: &PgPool, id: i64) -> Result<()> {
    if exists(db, SOURCE_TYPES.name, id).await? {
        Ok(())
    } else {
        Err(Error::not_found("source type"))
    }
}

/// 404 unless the application type exists.
pub async fn ensure_application_type(db: &PgPool, id: i64) -> Result<()> {
    if exists(db, APPLICATION_TYPES.name, id).await? {
        Ok(())
    } else {
        Err(Error::not_found("application type"))
    }
}

/// Whether the application type supports the type of the source.
pub(super) async fn supports(
    conn: &mut PgConnection,
    application_type_id: i64,
    source_id: i64,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM application_types at, sources s \
           JOIN source_types st ON st.id = s.source_type_id \
         WHERE at.id = $1 AND s.id = $2 AND jsonb_exists(at.supported_source_types, st.name))",
    )
    .bind(application_type_id)
    .bind(source_id)
    .fetch_one(conn)
    .await?)
}

// Lookups by name or id, inside a write (bulk create): on its connection, so a write never
// waits for a second one from the pool.

/// The name of a source type, by id.
pub async fn source_type_name(w: &mut Write<'_>, id: i64) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT name FROM source_types WHERE id = $1")
            .bind(id)
            .fetch_optional(w.conn())
            .await?,
    )
}

/// The id of a source type, by name.
pub async fn source_type_id(w: &mut Write<'_>, name: &str) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM source_types WHERE name = $1")
            .bind(name)
            .fetch_optional(w.conn())
            .await?,
    )
}

/// The name of an application type, by id.
pub async fn application_type_name(w: &mut Write<'_>, id: i64) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT name FROM application_types WHERE id = $1")
            .bind(id)
            .fetch_optional(w.conn())
            .await?,
    )
}

/// The first application type whose name contains `part` (so "cost-management" finds
/// /insights/platform/cost-management, as sources-api-go's `LIKE %name%` does).
pub async fn application_type_like(w: &mut Write<'_>, part: &str) -> Result<Option<(i64, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, name FROM application_types WHERE name LIKE '%' || $1 || '%' ORDER BY id LIMIT 1",
    )
    .bind(part)
    .fetch_optional(w.conn())
    .await?)
}
