use axum::{Json, body::Bytes, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use keel_db::{Column, Scope, Subresource, Table};
use keel_domain::AvailabilityStatus;
use keel_sources_http::{
    Collection, ErrorDocument, ListParams, ListQueryDoc, PathId, StrictJson, decode_strict,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::{INVALID_STATUS, go_value, parse_flexible_id},
    error::{Error, Result, constraint, parse_status, parse_time},
    events::{self, Event, opt_event_time, tenant_field},
    resources::{
        application_authentications, application_types,
        authentications::{self, Authentication},
    },
    state::AppState,
    tenant::{Tenant, Writer},
    wire,
};

pub static TABLE: Table = Table {
    name: "applications",
    columns: &[
        Column::int("id"),
        Column::timestamp("created_at"),
        Column::timestamp("updated_at"),
        Column::timestamp("paused_at"),
        Column::text("availability_status"),
        Column::timestamp("last_checked_at"),
        Column::timestamp("last_available_at"),
        Column::text("availability_status_error"),
        Column::json("extra"),
        Column::int("source_id"),
        Column::int("application_type_id"),
    ],
    subresources: &[Subresource {
        name: "application_type",
        table: &application_types::TABLE,
        foreign_key: "application_type_id",
    }],
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ApplicationRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub paused_at: Option<DateTime<Utc>>,
    pub availability_status: String,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_available_at: Option<DateTime<Utc>>,
    pub availability_status_error: Option<String>,
    pub extra: Value,
    pub superkey_data: Option<Value>,
    pub source_id: i64,
    pub application_type_id: i64,
}

impl ApplicationRow {
    /// The `Application.*` event payload: integer ids, explicit nulls.
    pub fn to_event(&self, tenant: &Tenant) -> Value {
        json!({
            "id": self.id,
            "created_at": events::event_time(self.created_at),
            "updated_at": events::event_time(self.updated_at),
            "paused_at": opt_event_time(self.paused_at),
            "availability_status": self.availability_status,
            "last_checked_at": opt_event_time(self.last_checked_at),
            "last_available_at": opt_event_time(self.last_available_at),
            "availability_status_error": self.availability_status_error,
            "extra": self.extra,
            "superkey_data": self.superkey_data,
            "source_id": self.source_id,
            "application_type_id": self.application_type_id,
            "tenant": tenant_field(tenant),
        })
    }
}

/// An application attached to a source, e.g. cost management reading an AWS account.
#[derive(Debug, Serialize, ToSchema)]
pub struct Application {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_checked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_available_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_status_error: Option<String>,
    /// Application-specific settings, e.g. `{"bucket": "my-bucket"}`.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub extra: Value,
    #[schema(pattern = r"^\d+$")]
    pub source_id: String,
    #[schema(pattern = r"^\d+$")]
    pub application_type_id: String,
}

impl From<ApplicationRow> for Application {
    fn from(r: ApplicationRow) -> Self {
        Self {
            id: wire::id(r.id),
            created_at: wire::timestamp(r.created_at),
            updated_at: wire::timestamp(r.updated_at),
            paused_at: wire::opt_timestamp(r.paused_at),
            availability_status: wire::non_empty(Some(r.availability_status)),
            last_checked_at: wire::opt_timestamp(r.last_checked_at),
            last_available_at: wire::opt_timestamp(r.last_available_at),
            availability_status_error: wire::non_empty(r.availability_status_error),
            extra: r.extra,
            source_id: wire::id(r.source_id),
            application_type_id: wire::id(r.application_type_id),
        }
    }
}

/// Attach an application to a source. Ids may be numbers or numeric strings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationCreateRequest {
    pub extra: Option<Value>,
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub source_id: Option<Value>,
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub application_type_id: Option<Value>,
}

/// Edit an application. A status change is copied to its source.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationEditRequest {
    pub extra: Option<Value>,
    pub availability_status: Option<String>,
    pub availability_status_error: Option<String>,
    pub last_checked_at: Option<String>,
    pub last_available_at: Option<String>,
}

/// What a paused application accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PausedApplicationEditRequest {
    availability_status: Option<String>,
    availability_status_error: Option<String>,
    last_checked_at: Option<String>,
    last_available_at: Option<String>,
}

pub(crate) async fn fetch(
    state: &AppState,
    scopes: Vec<Scope>,
    params: &ListParams,
) -> Result<Collection<Application>> {
    super::collection::<ApplicationRow, Application>(state, &TABLE, "t.*", scopes, params).await
}

pub(crate) async fn find(
    conn: &mut PgConnection,
    tenant: &Tenant,
    id: i64,
) -> Result<ApplicationRow> {
    sqlx::query_as("SELECT * FROM applications WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant.id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::not_found("application"))
}

/// List applications.
#[utoipa::path(get, path = "/applications", tag = "applications", params(ListQueryDoc),
    responses((status = 200, body = Collection<Application>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Application>>> {
    fetch(
        &state,
        vec![Scope::eq("t.tenant_id = ", tenant.id)],
        &params,
    )
    .await
    .map(Json)
}

/// Get an application.
#[utoipa::path(get, path = "/applications/{id}", tag = "applications",
    params(("id" = String, Path, description = "Application id")),
    responses((status = 200, body = Application), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn get(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<Json<Application>> {
    let mut conn = state.db.acquire().await?;
    find(&mut conn, &tenant, id.get())
        .await
        .map(|r| Json(r.into()))
}

/// The parsed ids of a create request, with sources-api-go's messages.
fn parse_create(req: &ApplicationCreateRequest) -> Result<(i64, i64)> {
    let source = req
        .source_id
        .as_ref()
        .filter(|v| !v.is_null())
        .ok_or_else(|| Error::validation("missing required parameter source_id"))?;
    let app_type = req
        .application_type_id
        .as_ref()
        .filter(|v| !v.is_null())
        .ok_or_else(|| Error::validation("missing required parameter application_type_id"))?;
    let app_type_id = parse_flexible_id(app_type).ok_or_else(|| {
        Error::validation(format_args!(
            "invalid application type id {}",
            go_value(app_type)
        ))
    })?;
    let source_id = parse_flexible_id(source)
        .ok_or_else(|| Error::validation(format_args!("invalid source id {}", go_value(source))))?;
    Ok((source_id, app_type_id))
}

/// Inserts an application after the checks sources-api-go makes; shared with bulk create.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    tenant: &Tenant,
    source_id: i64,
    application_type_id: i64,
    extra: Option<Value>,
    availability_status: Option<AvailabilityStatus>,
    incompatible: impl FnOnce() -> Error,
) -> Result<ApplicationRow> {
    let source_exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sources WHERE id = $1 AND tenant_id = $2)",
    )
    .bind(source_id)
    .bind(tenant.id)
    .fetch_one(&mut *conn)
    .await?;
    if !source_exists {
        return Err(Error::validation("source id not found"));
    }
    let compatible: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM application_types at, sources s \
           JOIN source_types st ON st.id = s.source_type_id \
         WHERE at.id = $1 AND s.id = $2 AND jsonb_exists(at.supported_source_types, st.name))",
    )
    .bind(application_type_id)
    .bind(source_id)
    .fetch_one(&mut *conn)
    .await?;
    if !compatible {
        return Err(incompatible());
    }
    let extra = extra.filter(|e| !e.is_null()).unwrap_or_else(|| json!({}));
    sqlx::query_as(
        "INSERT INTO applications (tenant_id, source_id, application_type_id, extra, availability_status) \
         VALUES ($1, $2, $3, $4, COALESCE($5, 'in_progress')) RETURNING *",
    )
    .bind(tenant.id)
    .bind(source_id)
    .bind(application_type_id)
    .bind(&extra)
    .bind(availability_status.map(AvailabilityStatus::as_str))
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match constraint(&e) {
        Some("applications_app_type_id_source_id_tenant_id_idx") => Error::bad_request(format_args!(
            "Application of application type = {application_type_id} already exists for the source id = {source_id}"
        )),
        _ => e.into(),
    })
}

/// Attach an application to a source.
#[utoipa::path(post, path = "/applications", tag = "applications",
    request_body = ApplicationCreateRequest, security(("psk" = [])),
    responses((status = 201, body = Application), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<ApplicationCreateRequest>,
) -> Result<(StatusCode, Json<Application>)> {
    let (source_id, app_type_id) = parse_create(&req)?;
    let mut tx = state.db.begin().await?;
    let row = insert(
        &mut tx,
        &tenant,
        source_id,
        app_type_id,
        req.extra,
        None,
        || Error::validation("source type is not compatible with this application type"),
    )
    .await?;
    events::record(
        &mut tx,
        &tenant,
        &[Event::new("Application.create", row.to_event(&tenant))],
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Edit an application.
#[utoipa::path(patch, path = "/applications/{id}", tag = "applications",
    request_body = ApplicationEditRequest,
    params(("id" = String, Path, description = "Application id")), security(("psk" = [])),
    responses((status = 200, body = Application), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn edit(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
    body: Bytes,
) -> Result<Json<Application>> {
    let mut tx = state.db.begin().await?;
    let current = find(&mut tx, &tenant, id.get()).await?;
    let (extra, status, status_error, checked, available) = if current.paused_at.is_some() {
        let req: PausedApplicationEditRequest = decode_strict(&body)?;
        let status = parse_status(
            req.availability_status.as_deref(),
            "invalid availability status. Must be one of \"available\", \"in_progress\", \"partially_available\" or \"unavailable\"",
        )?;
        (
            None,
            status,
            req.availability_status_error,
            req.last_checked_at,
            req.last_available_at,
        )
    } else {
        let req: ApplicationEditRequest = decode_strict(&body)?;
        let status = parse_status(
            req.availability_status.as_deref(),
            &format!("invalid payload: {INVALID_STATUS}"),
        )?;
        (
            req.extra,
            status,
            req.availability_status_error,
            req.last_checked_at,
            req.last_available_at,
        )
    };
    let checked = parse_time(checked.as_deref())?;
    let available = parse_time(available.as_deref())?;
    // `_superkey` in extra is the superkey worker's data, kept apart from the settings.
    let (extra, superkey) = match extra {
        Some(Value::Object(mut map)) => {
            let superkey = map.remove("_superkey");
            (Some(Value::Object(map)), superkey)
        }
        Some(Value::Null) | None => (None, None),
        Some(_) => {
            return Err(Error::bad_request(
                "invalid payload: extra must be an object",
            ));
        }
    };
    // Reporting a status is a check: it stamps last_checked_at (and last_available_at when
    // available) unless the caller sent its own.
    let now = Utc::now();
    let checked = checked.or(status.map(|_| now));
    let available = available.or(status
        .filter(|s| *s == AvailabilityStatus::Available)
        .map(|_| now));

    let row: ApplicationRow = sqlx::query_as(
        "UPDATE applications SET extra = COALESCE($3, extra), \
           superkey_data = COALESCE($4, superkey_data), \
           availability_status = COALESCE($5, availability_status), \
           availability_status_error = COALESCE($6, availability_status_error), \
           last_checked_at = COALESCE($7, last_checked_at), \
           last_available_at = COALESCE($8, last_available_at) \
         WHERE id = $1 AND tenant_id = $2 RETURNING *",
    )
    .bind(id.get())
    .bind(tenant.id)
    .bind(&extra)
    .bind(&superkey)
    .bind(status.map(AvailabilityStatus::as_str))
    .bind(&status_error)
    .bind(checked)
    .bind(available)
    .fetch_one(&mut *tx)
    .await?;

    // A changed application status becomes its source's status too (sources-api-go's
    // update_resource), so the source list shows what the application last reported.
    if let Some(status) = status.filter(|s| s.as_str() != current.availability_status) {
        sqlx::query(
            "UPDATE sources SET availability_status = $2, \
               last_checked_at = COALESCE($3, last_checked_at), \
               last_available_at = COALESCE($4, last_available_at) \
             WHERE id = $1",
        )
        .bind(row.source_id)
        .bind(status.as_str())
        .bind(row.last_checked_at)
        .bind(row.last_available_at)
        .execute(&mut *tx)
        .await?;
    }
    events::record(
        &mut tx,
        &tenant,
        &[Event::new("Application.update", row.to_event(&tenant))],
    )
    .await?;
    tx.commit().await?;
    Ok(Json(row.into()))
}

/// Deletes an application with its links and authentications, recording the events in
/// sources-api-go's order; shared with the source cascade.
pub(crate) async fn delete_cascade(
    conn: &mut PgConnection,
    tenant: &Tenant,
    app: &ApplicationRow,
) -> Result<(Vec<Event>, Vec<Event>)> {
    let links = application_authentications::delete_for_application(conn, tenant, app.id).await?;
    let auths = authentications::delete_for_resource(conn, tenant, "Application", app.id).await?;
    sqlx::query("DELETE FROM applications WHERE id = $1")
        .bind(app.id)
        .execute(&mut *conn)
        .await?;
    let mut before = links;
    before.push(Event::new("Application.destroy", app.to_event(tenant)));
    Ok((before, auths))
}

/// Delete an application, its links to authentications and its authentications.
#[utoipa::path(delete, path = "/applications/{id}", tag = "applications",
    params(("id" = String, Path, description = "Application id")), security(("psk" = [])),
    responses((status = 204), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn delete(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    let app = find(&mut tx, &tenant, id.get()).await?;
    let (mut events, auths) = delete_cascade(&mut tx, &tenant, &app).await?;
    events.extend(auths);
    events::record(&mut tx, &tenant, &events).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets or clears `paused_at` of applications and records one event per application.
pub(crate) async fn set_paused(
    conn: &mut PgConnection,
    tenant: &Tenant,
    filter: (&'static str, i64),
    paused: bool,
) -> Result<Vec<Event>> {
    let sql = format!(
        "UPDATE applications SET paused_at = CASE WHEN $2 THEN now() ELSE NULL END \
         WHERE tenant_id = $3 AND {} = $1 RETURNING *",
        filter.0
    );
    let mut rows: Vec<ApplicationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(filter.1)
        .bind(paused)
        .bind(tenant.id)
        .fetch_all(&mut *conn)
        .await?;
    rows.sort_by_key(|r| r.id);
    let event_type = if paused {
        "Application.pause"
    } else {
        "Application.unpause"
    };
    Ok(rows
        .iter()
        .map(|r| Event::new(event_type, r.to_event(tenant)))
        .collect())
}

async fn pause_or_unpause(
    state: &AppState,
    tenant: &Tenant,
    id: i64,
    paused: bool,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    find(&mut tx, tenant, id).await?;
    let events = set_paused(&mut tx, tenant, ("id", id), paused).await?;
    events::record(&mut tx, tenant, &events).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pause an application: it then accepts only status updates.
#[utoipa::path(post, path = "/applications/{id}/pause", tag = "applications",
    params(("id" = String, Path, description = "Application id")),
    responses((status = 204), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn pause(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<StatusCode> {
    pause_or_unpause(&state, &tenant, id.get(), true).await
}

/// Resume a paused application.
#[utoipa::path(post, path = "/applications/{id}/unpause", tag = "applications",
    params(("id" = String, Path, description = "Application id")),
    responses((status = 204), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn unpause(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<StatusCode> {
    pause_or_unpause(&state, &tenant, id.get(), false).await
}

/// List an application's authentications (always the first 100, as sources-api-go does).
#[utoipa::path(get, path = "/applications/{application_id}/authentications", tag = "applications",
    params(("application_id" = String, Path, description = "Application id")),
    responses((status = 200, body = Collection<Authentication>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_authentications(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Authentication>>> {
    let mut conn = state.db.acquire().await?;
    find(&mut conn, &tenant, id.get()).await?;
    drop(conn);
    let scopes = vec![
        Scope::eq("t.tenant_id = ", tenant.id),
        Scope::eq(
            "t.resource_type = 'Application' AND t.resource_id = ",
            id.get(),
        ),
    ];
    authentications::fetch(&state, scopes, &params.fixed_first_page())
        .await
        .map(Json)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, edit, delete))
        .routes(routes!(pause))
        .routes(routes!(unpause))
        .routes(routes!(list_authentications))
}
