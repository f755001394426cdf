//! Links between applications and the authentications they use.

use chrono::{DateTime, Utc};
use keel_db::{Column, Page, Table};
use keel_domain::{listing::ListQuery, sources_events::Resource};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{
    Event, Tenant, Write, by_id,
    outbox::{event_time, opt_event_time, tenant_field},
};
use crate::error::{Error, Result, constraint};

pub static TABLE: Table = Table {
    name: "application_authentications",
    columns: &[
        Column::int("id"),
        Column::timestamp("created_at"),
        Column::timestamp("updated_at"),
        Column::timestamp("paused_at"),
        Column::int("application_id"),
        Column::int("authentication_id"),
    ],
    subresources: &[],
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApplicationAuthenticationRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub paused_at: Option<DateTime<Utc>>,
    pub application_id: i64,
    pub authentication_id: i64,
}

impl ApplicationAuthenticationRow {
    pub fn to_event(&self, tenant: &Tenant) -> Value {
        json!({
            "id": self.id,
            "created_at": event_time(self.created_at),
            "updated_at": event_time(self.updated_at),
            "paused_at": opt_event_time(self.paused_at),
            "application_id": self.application_id,
            "authentication_id": self.authentication_id,
            "tenant": tenant_field(tenant),
        })
    }
}

pub async fn list(
    db: &PgPool,
    tenant: &Tenant,
    query: &ListQuery,
) -> Result<Page<ApplicationAuthenticationRow>> {
    super::tenant_page(db, tenant, &TABLE, "t.*", vec![], query).await
}

by_id!(
    ApplicationAuthenticationRow,
    "t.*",
    "application_authentications",
    "application authentication"
);

/// Links an application and an authentication of the tenant; announces nothing.
pub async fn insert(
    w: &mut Write<'_>,
    application_id: i64,
    authentication_id: i64,
) -> Result<ApplicationAuthenticationRow> {
    let tenant = w.tenant();
    // Both rows being the tenant's is a condition of the insert: one round trip; only a
    // refused insert asks which one is missing.
    let inserted: Option<ApplicationAuthenticationRow> = sqlx::query_as(
        "INSERT INTO application_authentications (tenant_id, application_id, authentication_id) \
         SELECT $1, $2, $3 \
         WHERE EXISTS (SELECT 1 FROM applications WHERE id = $2 AND tenant_id = $1) \
           AND EXISTS (SELECT 1 FROM authentications WHERE id = $3 AND tenant_id = $1) \
         RETURNING *",
    )
    .bind(tenant.id())
    .bind(application_id)
    .bind(authentication_id)
    .fetch_optional(w.conn())
    .await
    .map_err(|e| match constraint(&e) {
        Some("application_authentications_unique") => Error::bad_request(format_args!(
            "ApplicationAuthentication already exists for application id = {application_id} and authentication id = {authentication_id}"
        )),
        _ => e.into(),
    })?;
    if let Some(row) = inserted {
        return Ok(row);
    }
    let app: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM applications WHERE id = $1 AND tenant_id = $2)",
    )
    .bind(application_id)
    .bind(tenant.id())
    .fetch_one(w.conn())
    .await?;
    Err(Error::validation(if app {
        "authentication not found"
    } else {
        "application not found"
    }))
}

/// Deletes one link and announces `ApplicationAuthentication.destroy`.
pub async fn delete(w: &mut Write<'_>, id: i64) -> Result<()> {
    let tenant = w.tenant();
    let row = fetch(w.conn(), tenant, id).await?;
    sqlx::query("DELETE FROM application_authentications WHERE id = $1")
        .bind(row.id)
        .execute(w.conn())
        .await?;
    w.announce(
        Resource::ApplicationAuthentication.destroy(),
        row.to_event(tenant),
    );
    Ok(())
}

/// Deletes an application's links and returns their destroy events, in id order.
pub(super) async fn delete_for_application(
    w: &mut Write<'_>,
    application_id: i64,
) -> Result<Vec<Event>> {
    let tenant = w.tenant();
    let rows: Vec<ApplicationAuthenticationRow> = sqlx::query_as(
        "DELETE FROM application_authentications WHERE application_id = $1 AND tenant_id = $2 \
         RETURNING *",
    )
    .bind(application_id)
    .bind(tenant.id())
    .fetch_all(w.conn())
    .await?;
    Ok(by_id(rows, |r| r.id)
        .iter()
        .map(|r| {
            Event::new(
                Resource::ApplicationAuthentication.destroy(),
                r.to_event(tenant),
            )
        })
        .collect())
}

/// Deletes the links of every application of a source (its cascade) and returns them.
pub(super) async fn delete_for_source(
    w: &mut Write<'_>,
    source_id: i64,
) -> Result<Vec<ApplicationAuthenticationRow>> {
    Ok(sqlx::query_as(
        "DELETE FROM application_authentications l USING applications a \
         WHERE l.application_id = a.id AND a.source_id = $1 RETURNING l.*",
    )
    .bind(source_id)
    .fetch_all(w.conn())
    .await?)
}
