use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use keel_db::{Column, Scope, Table};
use keel_domain::AvailabilityStatus;
use keel_sources_http::{Collection, ErrorDocument, ListParams, ListQueryDoc, PathId, StrictJson};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::{INVALID_STATUS, parse_flexible_id},
    error::{Error, Result, parse_status, parse_time},
    events::{self, Event, opt_event_time},
    resources::sources::{self, Source},
    state::AppState,
    tenant::{Tenant, Writer},
    wire,
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
pub(crate) struct RhcConnectionRow {
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
            "created_at": events::event_time(self.created_at),
            "updated_at": events::event_time(self.updated_at),
        })
    }
}

/// A Red Hat Connector connection, shared by the sources it is linked to.
#[derive(Debug, Serialize, ToSchema)]
pub struct RhcConnection {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    pub rhc_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_checked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_available_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_status_error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_ids: Vec<String>,
}

impl From<RhcConnectionRow> for RhcConnection {
    fn from(r: RhcConnectionRow) -> Self {
        Self {
            id: wire::id(r.id),
            rhc_id: r.rhc_id,
            extra: r.extra.filter(|e| !e.is_null()),
            availability_status: wire::non_empty(r.availability_status),
            last_checked_at: wire::opt_timestamp(r.last_checked_at),
            last_available_at: wire::opt_timestamp(r.last_available_at),
            availability_status_error: wire::non_empty(r.availability_status_error),
            source_ids: r.source_ids.into_iter().map(wire::id).collect(),
        }
    }
}

/// Link a source to a connection, creating the connection on first use.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RhcConnectionCreateRequest {
    pub rhc_id: Option<String>,
    pub extra: Option<Value>,
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub source_id: Option<Value>,
}

/// Edit a connection.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RhcConnectionEditRequest {
    pub extra: Option<Value>,
    pub availability_status: Option<String>,
    pub availability_status_error: Option<String>,
    pub last_checked_at: Option<String>,
    pub last_available_at: Option<String>,
}

pub(crate) async fn fetch(
    state: &AppState,
    scopes: Vec<Scope>,
    params: &ListParams,
) -> Result<Collection<RhcConnection>> {
    super::collection::<RhcConnectionRow, RhcConnection>(state, &TABLE, SELECT, scopes, params)
        .await
}

async fn find(conn: &mut PgConnection, tenant: &Tenant, id: i64) -> Result<RhcConnectionRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SELECT} FROM rhc_connections t WHERE t.id = $1 AND t.tenant_id = $2"
    )))
    .bind(id)
    .bind(tenant.id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| Error::not_found("rhcConnection"))
}

/// List connections.
#[utoipa::path(get, path = "/rhc_connections", tag = "rhc_connections", params(ListQueryDoc),
    responses((status = 200, body = Collection<RhcConnection>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<RhcConnection>>> {
    fetch(
        &state,
        vec![Scope::eq("t.tenant_id = ", tenant.id)],
        &params,
    )
    .await
    .map(Json)
}

/// Get a connection (needs a pre-shared key, as in sources-api-go).
#[utoipa::path(get, path = "/rhc_connections/{id}", tag = "rhc_connections",
    params(("id" = String, Path, description = "Connection id")), security(("psk" = [])),
    responses((status = 200, body = RhcConnection), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn get(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
) -> Result<Json<RhcConnection>> {
    let mut conn = state.db.acquire().await?;
    find(&mut conn, &tenant, id.get())
        .await
        .map(|r| Json(r.into()))
}

/// Link a source to a Red Hat Connector connection.
#[utoipa::path(post, path = "/rhc_connections", tag = "rhc_connections",
    request_body = RhcConnectionCreateRequest, security(("psk" = [])),
    responses((status = 201, body = RhcConnection), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<RhcConnectionCreateRequest>,
) -> Result<(StatusCode, Json<RhcConnection>)> {
    let rhc_id = req.rhc_id.as_deref().unwrap_or_default();
    if rhc_id.is_empty() {
        return Err(Error::validation(
            "the Red Hat Connector Connection's id is invalid",
        ));
    }
    let source_id = req
        .source_id
        .as_ref()
        .and_then(parse_flexible_id)
        .ok_or_else(|| Error::validation("the provided source ID is not valid"))?;
    if source_id < 1 {
        return Err(Error::validation("invalid source id"));
    }
    let mut tx = state.db.begin().await?;
    sources::find(&mut tx, &tenant, source_id).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO rhc_connections (tenant_id, rhc_id, extra) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, rhc_id) DO UPDATE SET rhc_id = excluded.rhc_id RETURNING id",
    )
    .bind(tenant.id)
    .bind(rhc_id)
    .bind(&req.extra)
    .fetch_one(&mut *tx)
    .await?;
    let linked = sqlx::query(
        "INSERT INTO source_rhc_connections (source_id, rhc_connection_id, tenant_id) \
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(source_id)
    .bind(id)
    .bind(tenant.id)
    .execute(&mut *tx)
    .await?;
    if linked.rows_affected() == 0 {
        return Err(Error::bad_request("connection already exists"));
    }
    let row = find(&mut tx, &tenant, id).await?;
    events::record(
        &mut tx,
        &tenant,
        &[Event::new("RhcConnection.create", row.to_event())],
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Edit a connection.
#[utoipa::path(patch, path = "/rhc_connections/{id}", tag = "rhc_connections",
    request_body = RhcConnectionEditRequest,
    params(("id" = String, Path, description = "Connection id")), security(("psk" = [])),
    responses((status = 200, body = RhcConnection), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn edit(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<RhcConnectionEditRequest>,
) -> Result<Json<RhcConnection>> {
    let status = parse_status(req.availability_status.as_deref(), INVALID_STATUS)?;
    let (checked, available) = (
        parse_time(req.last_checked_at.as_deref())?,
        parse_time(req.last_available_at.as_deref())?,
    );
    let mut tx = state.db.begin().await?;
    find(&mut tx, &tenant, id.get()).await?;
    sqlx::query(
        "UPDATE rhc_connections SET extra = COALESCE($3, extra), \
           availability_status = COALESCE($4, availability_status), \
           availability_status_error = COALESCE($5, availability_status_error), \
           last_checked_at = COALESCE($6, last_checked_at), \
           last_available_at = COALESCE($7, last_available_at) \
         WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id.get())
    .bind(tenant.id)
    .bind(&req.extra)
    .bind(status.map(AvailabilityStatus::as_str))
    .bind(&req.availability_status_error)
    .bind(checked)
    .bind(available)
    .execute(&mut *tx)
    .await?;
    let row = find(&mut tx, &tenant, id.get()).await?;
    events::record(
        &mut tx,
        &tenant,
        &[Event::new("RhcConnection.update", row.to_event())],
    )
    .await?;
    tx.commit().await?;
    Ok(Json(row.into()))
}

/// Delete a connection and its links to sources.
#[utoipa::path(delete, path = "/rhc_connections/{id}", tag = "rhc_connections",
    params(("id" = String, Path, description = "Connection id")), security(("psk" = [])),
    responses((status = 204), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn delete(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    let row = find(&mut tx, &tenant, id.get()).await?;
    sqlx::query("DELETE FROM rhc_connections WHERE id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    events::record(
        &mut tx,
        &tenant,
        &[Event::new("RhcConnection.destroy", row.to_event())],
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes the connections that only `source_id` uses (its cascade) and returns their events.
pub(crate) async fn delete_for_source(
    conn: &mut PgConnection,
    tenant: &Tenant,
    source_id: i64,
) -> Result<Vec<Event>> {
    let mut rows: Vec<RhcConnectionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SELECT} FROM rhc_connections t WHERE t.tenant_id = $2 AND EXISTS \
           (SELECT 1 FROM source_rhc_connections l WHERE l.rhc_connection_id = t.id AND l.source_id = $1) \
         AND NOT EXISTS (SELECT 1 FROM source_rhc_connections l \
           WHERE l.rhc_connection_id = t.id AND l.source_id <> $1)"
    )))
    .bind(source_id)
    .bind(tenant.id)
    .fetch_all(&mut *conn)
    .await?;
    rows.sort_by_key(|r| r.id);
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    sqlx::query("DELETE FROM rhc_connections WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .map(|r| Event::new("RhcConnection.destroy", r.to_event()))
        .collect())
}

/// List the sources linked to a connection.
#[utoipa::path(get, path = "/rhc_connections/{id}/sources", tag = "rhc_connections",
    params(("id" = String, Path, description = "Connection id"), ListQueryDoc),
    responses((status = 200, body = Collection<Source>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_sources(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Source>>> {
    let mut conn = state.db.acquire().await?;
    find(&mut conn, &tenant, id.get()).await?;
    drop(conn);
    let scope = Scope::around(
        "t.id IN (SELECT l.source_id FROM source_rhc_connections l WHERE l.rhc_connection_id = ",
        id.get(),
        ")",
    );
    sources::list_scoped(&state, &tenant, scope, &params)
        .await
        .map(Json)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, edit, delete))
        .routes(routes!(list_sources))
}
