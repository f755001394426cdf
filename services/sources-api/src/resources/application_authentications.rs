use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use keel_db::{Column, Scope, Table};
use keel_sources_http::{Collection, ErrorDocument, ListParams, ListQueryDoc, PathId, StrictJson};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::{go_value, parse_flexible_id},
    error::{Error, Result, constraint},
    events::{self, Event, opt_event_time, tenant_field},
    resources::authentications::{self, Authentication},
    state::AppState,
    tenant::{Tenant, Writer},
    wire,
};

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
pub(crate) struct ApplicationAuthenticationRow {
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
            "created_at": events::event_time(self.created_at),
            "updated_at": events::event_time(self.updated_at),
            "paused_at": opt_event_time(self.paused_at),
            "application_id": self.application_id,
            "authentication_id": self.authentication_id,
            "tenant": tenant_field(tenant),
        })
    }
}

/// A link between an application and an authentication it uses.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationAuthentication {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    #[schema(pattern = r"^\d+$")]
    pub application_id: String,
    #[schema(pattern = r"^\d+$")]
    pub authentication_id: String,
}

impl From<ApplicationAuthenticationRow> for ApplicationAuthentication {
    fn from(r: ApplicationAuthenticationRow) -> Self {
        Self {
            id: wire::id(r.id),
            created_at: wire::timestamp(r.created_at),
            updated_at: wire::timestamp(r.updated_at),
            application_id: wire::id(r.application_id),
            authentication_id: wire::id(r.authentication_id),
        }
    }
}

/// Link an authentication to an application. Ids may be numbers or numeric strings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationAuthenticationCreateRequest {
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub application_id: Option<Value>,
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub authentication_id: Option<Value>,
}

async fn fetch(
    state: &AppState,
    scopes: Vec<Scope>,
    params: &ListParams,
) -> Result<Collection<ApplicationAuthentication>> {
    super::collection::<ApplicationAuthenticationRow, ApplicationAuthentication>(
        state, &TABLE, "t.*", scopes, params,
    )
    .await
}

async fn find(
    conn: &mut PgConnection,
    tenant: &Tenant,
    id: i64,
) -> Result<ApplicationAuthenticationRow> {
    sqlx::query_as("SELECT * FROM application_authentications WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant.id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::not_found("application authentication"))
}

/// Links an application and an authentication of the tenant; shared with bulk create.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    tenant: &Tenant,
    application_id: i64,
    authentication_id: i64,
) -> Result<ApplicationAuthenticationRow> {
    let (app, auth): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM applications WHERE id = $1 AND tenant_id = $3), \
                EXISTS (SELECT 1 FROM authentications WHERE id = $2 AND tenant_id = $3)",
    )
    .bind(application_id)
    .bind(authentication_id)
    .bind(tenant.id)
    .fetch_one(&mut *conn)
    .await?;
    if !app {
        return Err(Error::validation("application not found"));
    }
    if !auth {
        return Err(Error::validation("authentication not found"));
    }
    sqlx::query_as(
        "INSERT INTO application_authentications (tenant_id, application_id, authentication_id) \
         VALUES ($1, $2, $3) RETURNING *",
    )
    .bind(tenant.id)
    .bind(application_id)
    .bind(authentication_id)
    .fetch_one(conn)
    .await
    .map_err(|e| match constraint(&e) {
        Some("application_authentications_unique") => Error::bad_request(format_args!(
            "ApplicationAuthentication already exists for application id = {application_id} and authentication id = {authentication_id}"
        )),
        _ => e.into(),
    })
}

/// Deletes an application's links and returns their destroy events.
pub(crate) async fn delete_for_application(
    conn: &mut PgConnection,
    tenant: &Tenant,
    application_id: i64,
) -> Result<Vec<Event>> {
    let mut rows: Vec<ApplicationAuthenticationRow> = sqlx::query_as(
        "DELETE FROM application_authentications WHERE application_id = $1 AND tenant_id = $2 \
         RETURNING *",
    )
    .bind(application_id)
    .bind(tenant.id)
    .fetch_all(conn)
    .await?;
    rows.sort_by_key(|r| r.id);
    Ok(rows
        .iter()
        .map(|r| Event::new("ApplicationAuthentication.destroy", r.to_event(tenant)))
        .collect())
}

/// List application authentications.
#[utoipa::path(get, path = "/application_authentications", tag = "application_authentications",
    params(ListQueryDoc),
    responses((status = 200, body = Collection<ApplicationAuthentication>),
        (status = 400, body = ErrorDocument), (status = 401, body = ErrorDocument)))]
async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<ApplicationAuthentication>>> {
    fetch(
        &state,
        vec![Scope::eq("t.tenant_id = ", tenant.id)],
        &params,
    )
    .await
    .map(Json)
}

/// Get an application authentication.
#[utoipa::path(get, path = "/application_authentications/{id}", tag = "application_authentications",
    params(("id" = String, Path, description = "Application authentication id")),
    responses((status = 200, body = ApplicationAuthentication), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn get(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<Json<ApplicationAuthentication>> {
    let mut conn = state.db.acquire().await?;
    find(&mut conn, &tenant, id.get())
        .await
        .map(|r| Json(r.into()))
}

/// Link an authentication to an application.
#[utoipa::path(post, path = "/application_authentications", tag = "application_authentications",
    request_body = ApplicationAuthenticationCreateRequest, security(("psk" = [])),
    responses((status = 201, body = ApplicationAuthentication), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<ApplicationAuthenticationCreateRequest>,
) -> Result<(StatusCode, Json<ApplicationAuthentication>)> {
    let id = |raw: &Option<Value>, name: &str| -> Result<i64> {
        let raw = raw
            .as_ref()
            .filter(|v| !v.is_null())
            .ok_or_else(|| Error::validation(format_args!("missing required parameter {name}")))?;
        parse_flexible_id(raw)
            .ok_or_else(|| Error::validation(format_args!("invalid {name} {}", go_value(raw))))
    };
    let application_id = id(&req.application_id, "application_id")?;
    let authentication_id = id(&req.authentication_id, "authentication_id")?;
    let mut tx = state.db.begin().await?;
    let row = insert(&mut tx, &tenant, application_id, authentication_id).await?;
    events::record(
        &mut tx,
        &tenant,
        &[Event::new(
            "ApplicationAuthentication.create",
            row.to_event(&tenant),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Unlink an authentication from an application.
#[utoipa::path(delete, path = "/application_authentications/{id}", tag = "application_authentications",
    params(("id" = String, Path, description = "Application authentication id")),
    security(("psk" = [])),
    responses((status = 204), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn delete(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    let row = find(&mut tx, &tenant, id.get()).await?;
    sqlx::query("DELETE FROM application_authentications WHERE id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    events::record(
        &mut tx,
        &tenant,
        &[Event::new(
            "ApplicationAuthentication.destroy",
            row.to_event(&tenant),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The authentication an application authentication links to.
#[utoipa::path(get, path = "/application_authentications/{application_authentication_id}/authentications",
    tag = "application_authentications",
    params(("application_authentication_id" = String, Path, description = "Application authentication id"), ListQueryDoc),
    responses((status = 200, body = Collection<Authentication>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_authentications(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Authentication>>> {
    let mut conn = state.db.acquire().await?;
    let link = find(&mut conn, &tenant, id.get()).await?;
    drop(conn);
    let scopes = vec![
        Scope::eq("t.tenant_id = ", tenant.id),
        Scope::eq("t.id = ", link.authentication_id),
    ];
    authentications::fetch(&state, scopes, &params)
        .await
        .map(Json)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, delete))
        .routes(routes!(list_authentications))
}
