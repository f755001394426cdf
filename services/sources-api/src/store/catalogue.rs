//! The catalogue every tenant shares: source types, application types and the metadata
//! application types publish. Seeded at start (`seed.rs`), read-only through the API.

use chrono::{DateTime, Utc};
use keel_db::{Column, Page, Scope, Table};
use keel_domain::listing::ListQuery;
use serde_json::Value;
use sqlx::PgPool;

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

/// Every source and application type's id and name, read once by a bulk create: one round
/// trip for all its lookups (the catalogue is a few dozen rows), on the write's connection so
/// that a write never waits for a second one from the pool.
#[derive(Debug, Default)]
pub struct TypeNames {
    sources: Vec<(i64, String)>,
    /// In id order, as the first match of a name is the lowest id.
    applications: Vec<(i64, String)>,
}

pub async fn type_names(w: &mut Write<'_>) -> Result<TypeNames> {
    let rows: Vec<(bool, i64, String)> = sqlx::query_as(
        "SELECT true, id, name FROM source_types \
         UNION ALL SELECT false, id, name FROM application_types ORDER BY 1, 2",
    )
    .fetch_all(w.conn())
    .await?;
    let (sources, applications): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.0);
    let pairs =
        |rows: Vec<(bool, i64, String)>| rows.into_iter().map(|(_, id, n)| (id, n)).collect();
    Ok(TypeNames {
        sources: pairs(sources),
        applications: pairs(applications),
    })
}

impl TypeNames {
    pub fn source_type_name(&self, id: i64) -> Option<&str> {
        self.sources
            .iter()
            .find_map(|(i, n)| (*i == id).then_some(n.as_str()))
    }

    pub fn source_type_id(&self, name: &str) -> Option<i64> {
        self.sources
            .iter()
            .find_map(|(i, n)| (n == name).then_some(*i))
    }

    pub fn application_type_name(&self, id: i64) -> Option<&str> {
        self.applications
            .iter()
            .find_map(|(i, n)| (*i == id).then_some(n.as_str()))
    }

    /// The first application type whose name contains `part`, as sources-api-go's
    /// `LIKE %name%` finds it (so "cost-management" finds /insights/platform/cost-management).
    /// A `part` with LIKE's own characters in it is matched by PostgreSQL.
    pub async fn application_type_like(
        &self,
        w: &mut Write<'_>,
        part: &str,
    ) -> Result<Option<(i64, String)>> {
        if !part.contains(['%', '_', '\\']) {
            return Ok(self
                .applications
                .iter()
                .find(|(_, n)| n.contains(part))
                .cloned());
        }
        Ok(sqlx::query_as(
            "SELECT id, name FROM application_types WHERE name LIKE '%' || $1 || '%' ORDER BY id LIMIT 1",
        )
        .bind(part)
        .fetch_optional(w.conn())
        .await?)
    }
}
