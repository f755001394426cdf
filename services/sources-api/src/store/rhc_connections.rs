//! Red Hat Connector connections, shared by the sources linked to them.

use chrono::{DateTime, Utc};
use keel_db::{Column, Page, Scope, Table};
use keel_domain::{listing::ListQuery, sources_events::Resource};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{
    Event, Tenant, Write, by_id,
    outbox::{event_time, opt_event_time},
};
use crate::{
    domain::status::StatusReport,
    error::{Error, Result},
};

pub static TABLE: Table = Table {
    name: "rhc_connections",
    columns: &[
        Column::int("id"),
        Column::text("rhc_id"),
        Column::json("extra"),
        Column::text("availability_status"),
        Column::timestamp("last_checked_at"),
        Column::timestamp("last_available_at"),
        Column::text("availability_status_error"),
        Column::timestamp("created_at"),
        Column::timestamp("updated_at"),
    ],
    subresources: &[],
};

/// Columns plus the linked source ids.
const SELECT: &str = "t.*, ARRAY(SELECT l.source_id FROM source_rhc_connections l \
    WHERE l.rhc_connection_id = t.id ORDER BY l.source_id) AS source_ids";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RhcConnectionRow {
    pub id: i64,
    pub rhc_id: String,
    pub extra: Option<Value>,
    pub availability_status: Option<String>,
    pub availability_status_error: Option<String>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_available_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub source_ids: Vec<i64>,
}

impl RhcConnectionRow {
    /// The `RhcConnection.*` payload: string ids, as sources-api-go sends them.
    pub fn to_event(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "rhc_id": self.rhc_id,
            "extra": self.extra,
            "availability_status": self.availability_status,
            "last_checked_at": opt_event_time(self.last_checked_at),
            "last_available_at": opt_event_time(self.last_available_at),
            "availability_status_error": self.availability_status_error,
            "source_ids": self.source_ids.iter().map(i64::to_string).collect::<Vec<_>>(),
            "created_at": event_time(self.created_at),
            "updated_at": event_time(self.updated_at),
        })
    }
}

/// What an edit sets; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct RhcConnectionEdit {
    pub extra: Option<Value>,
    pub report: StatusReport,
}

/// `of_source`: only the connections of that source.
pub async fn list(
    db: &PgPool,
    tenant: &Tenant,
    of_source: Option<i64>,
    query: &ListQuery,
) -> Result<Page<RhcConnectionRow>> {
    let scopes = of_source
        .map(|id| {
            vec![Scope::around(
                "t.id IN (SELECT l.rhc_connection_id FROM source_rhc_connections l WHERE l.source_id = ",
                id,
                ")",
            )]
        })
        .unwrap_or_default();
    super::tenant_page(db, tenant, &TABLE, SELECT, scopes, query).await
}

by_id!(RhcConnectionRow, SELECT, "rhc_connections", "rhcConnection");

/// Links `source_id` to the connection `rhc_id` (created on first use) and announces
/// `RhcConnection.create`.
pub async fn link(
    w: &mut Write<'_>,
    source_id: i64,
    rhc_id: &str,
    extra: Option<&Value>,
) -> Result<RhcConnectionRow> {
    let tenant = w.tenant();
    super::ensure_source_in(w, source_id).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO rhc_connections (tenant_id, rhc_id, extra) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, rhc_id) DO UPDATE SET rhc_id = excluded.rhc_id RETURNING id",
    )
    .bind(tenant.id())
    .bind(rhc_id)
    .bind(extra)
    .fetch_one(w.conn())
    .await?;
    let linked = sqlx::query(
        "INSERT INTO source_rhc_connections (source_id, rhc_connection_id, tenant_id) \
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(source_id)
    .bind(id)
    .bind(tenant.id())
    .execute(w.conn())
    .await?;
    if linked.rows_affected() == 0 {
        return Err(Error::bad_request("connection already exists"));
    }
    let row = fetch(w.conn(), tenant, id).await?;
    w.announce(Resource::RhcConnection.create(), row.to_event());
    Ok(row)
}

/// Applies an edit and announces `RhcConnection.update`.
pub async fn update(
    w: &mut Write<'_>,
    id: i64,
    edit: &RhcConnectionEdit,
) -> Result<RhcConnectionRow> {
    let tenant = w.tenant();
    fetch(w.conn(), tenant, id).await?;
    let update = sqlx::query_as::<_, (i64,)>(
        "UPDATE rhc_connections SET extra = COALESCE($3, extra), \
           availability_status = COALESCE($4, availability_status), \
           availability_status_error = COALESCE($5, availability_status_error), \
           last_checked_at = COALESCE($6, last_checked_at), \
           last_available_at = COALESCE($7, last_available_at) \
         WHERE id = $1 AND tenant_id = $2 RETURNING id",
    )
    .bind(id)
    .bind(tenant.id())
    .bind(&edit.extra);
    super::bind_report(update, &edit.report)
        .fetch_one(w.conn())
        .await?;
    let row = fetch(w.conn(), tenant, id).await?;
    w.announce(Resource::RhcConnection.update(), row.to_event());
    Ok(row)
}

/// Deletes a connection with its links and announces `RhcConnection.destroy`.
pub async fn delete(w: &mut Write<'_>, id: i64) -> Result<()> {
    let tenant = w.tenant();
    let row = fetch(w.conn(), tenant, id).await?;
    sqlx::query("DELETE FROM rhc_connections WHERE id = $1")
        .bind(row.id)
        .execute(w.conn())
        .await?;
    w.announce(Resource::RhcConnection.destroy(), row.to_event());
    Ok(())
}

/// Deletes the connections that only `source_id` uses (its cascade) and returns their events.
pub(super) async fn delete_for_source(w: &mut Write<'_>, source_id: i64) -> Result<Vec<Event>> {
    let tenant = w.tenant();
    let rows: Vec<RhcConnectionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SELECT} FROM rhc_connections t WHERE t.tenant_id = $2 AND EXISTS \
           (SELECT 1 FROM source_rhc_connections l WHERE l.rhc_connection_id = t.id AND l.source_id = $1) \
         AND NOT EXISTS (SELECT 1 FROM source_rhc_connections l \
           WHERE l.rhc_connection_id = t.id AND l.source_id <> $1)"
    )))
    .bind(source_id)
    .bind(tenant.id())
    .fetch_all(w.conn())
    .await?;
    let rows = by_id(rows, |r| r.id);
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    sqlx::query("DELETE FROM rhc_connections WHERE id = ANY($1)")
        .bind(&ids)
        .execute(w.conn())
        .await?;
    Ok(rows
        .iter()
        .map(|r| Event::new(Resource::RhcConnection.destroy(), r.to_event()))
        .collect())
}
