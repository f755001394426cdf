use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, SecondsFormat, Utc};
use keel_db::{Column, Scope, Table};
use keel_domain::AvailabilityStatus;
use keel_sources_http::{Collection, ErrorDocument, ListParams, ListQueryDoc, PathId, StrictJson};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use keel_crypto::SecretBox;

use crate::{
    domain::{INVALID_STATUS, parse_flexible_id},
    error::{Error, Result, parse_status, parse_time},
    events::{self, Event, opt_event_time, tenant_field},
    state::AppState,
    tenant::{Tenant, Writer},
    wire,
};

pub static TABLE: Table = Table {
    name: "authentications",
    columns: &[
        Column::int("id"),
        Column::text("name"),
        Column::text("authtype"),
        Column::text("username"),
        Column::text("availability_status"),
        Column::timestamp("last_checked_at"),
        Column::timestamp("last_available_at"),
        Column::text("availability_status_error"),
        Column::int("source_id"),
        Column::text("resource_type"),
        Column::int("resource_id"),
    ],
    subresources: &[],
};

/// Every column but the sealed password, which only the internal API reads.
const COLUMNS: &str = "t.id, t.tenant_id, t.source_id, t.resource_type, t.resource_id, t.name, \
    t.authtype, t.username, t.extra, t.version, t.availability_status, \
    t.availability_status_error, t.last_checked_at, t.last_available_at, t.created_at, \
    t.updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct AuthenticationRow {
    pub id: i64,
    pub source_id: i64,
    pub resource_type: String,
    pub resource_id: i64,
    pub name: Option<String>,
    pub authtype: Option<String>,
    pub username: Option<String>,
    pub extra: Option<Value>,
    pub version: Option<String>,
    pub availability_status: Option<String>,
    pub availability_status_error: Option<String>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_available_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl AuthenticationRow {
    /// The `Authentication.*` payload: the id is a string, the other ids integers.
    pub fn to_event(&self, tenant: &Tenant) -> Value {
        json!({
            "id": self.id.to_string(),
            "created_at": self.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "name": self.name.clone().unwrap_or_default(),
            "authtype": self.authtype.clone().unwrap_or_default(),
            "username": self.username.clone().unwrap_or_default(),
            "extra": self.extra,
            "version": self.version.clone().unwrap_or_default(),
            "availability_status": self.availability_status.clone().unwrap_or_default(),
            "last_checked_at": opt_event_time(self.last_checked_at),
            "last_available_at": opt_event_time(self.last_available_at),
            "availability_status_error": self.availability_status_error,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "source_id": self.source_id,
            "tenant": tenant_field(tenant),
        })
    }
}

/// Credentials of a source, application or endpoint. The password is never returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct Authentication {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub authtype: String,
    /// Always present; "" when unset.
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_status_error: Option<String>,
    /// `Source`, `Endpoint`, `Application` or `Authentication`.
    pub resource_type: String,
    #[schema(pattern = r"^\d+$")]
    pub resource_id: String,
}

impl From<AuthenticationRow> for Authentication {
    fn from(r: AuthenticationRow) -> Self {
        Self {
            id: wire::id(r.id),
            name: wire::non_empty(r.name),
            authtype: r.authtype.unwrap_or_default(),
            username: r.username.unwrap_or_default(),
            extra: r.extra.filter(|e| !e.is_null()),
            availability_status: wire::non_empty(r.availability_status),
            availability_status_error: wire::non_empty(r.availability_status_error),
            resource_type: r.resource_type,
            resource_id: wire::id(r.resource_id),
        }
    }
}

/// Create an authentication for a resource. The password is stored encrypted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationCreateRequest {
    pub name: Option<String>,
    pub authtype: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub extra: Option<Value>,
    pub availability_status_error: Option<String>,
    /// `Source`, `Endpoint`, `Application` or `Authentication` (any case).
    pub resource_type: Option<String>,
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub resource_id: Option<Value>,
}

/// Edit an authentication.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationEditRequest {
    pub name: Option<String>,
    pub authtype: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
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
) -> Result<Collection<Authentication>> {
    super::collection::<AuthenticationRow, Authentication>(state, &TABLE, COLUMNS, scopes, params)
        .await
}

pub(crate) async fn find(
    conn: &mut PgConnection,
    tenant: &Tenant,
    id: i64,
) -> Result<AuthenticationRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM authentications t WHERE t.id = $1 AND t.tenant_id = $2"
    )))
    .bind(id)
    .bind(tenant.id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| Error::not_found("authentication"))
}

/// The validated parts of a create request.
#[derive(Debug)]
pub(crate) struct NewAuthentication {
    pub resource_type: String,
    pub resource_id: i64,
}

/// sources-api-go's `ValidateAuthenticationCreationRequest`, same messages and order.
pub(crate) fn validate_create(req: &AuthenticationCreateRequest) -> Result<NewAuthentication> {
    let resource_type = req.resource_type.as_deref().unwrap_or_default();
    if resource_type.is_empty() {
        return Err(Error::bad_request("resource_type is required"));
    }
    let raw_id = req
        .resource_id
        .as_ref()
        .filter(|v| !v.is_null())
        .ok_or_else(|| Error::bad_request("resource_id is required"))?;
    let resource_id = parse_flexible_id(raw_id)
        .ok_or_else(|| Error::bad_request("resource_id must be a valid integer or string"))?;
    let resource_type = match resource_type.to_ascii_lowercase().as_str() {
        "source" => "Source",
        "endpoint" => "Endpoint",
        "application" => "Application",
        "authentication" => "Authentication",
        _ => {
            return Err(Error::bad_request(
                "invalid resource_type - must be one of [Source|Endpoint|Application|Authentication]",
            ));
        }
    };
    if req.authtype.as_deref() == Some("lighthouse_subscription_id") {
        let problem = match req.username.as_deref().map(str::trim) {
            None => Some("username is required for Azure Source Types"),
            Some("") => Some("username must not be blank or empty for Azure Source Types"),
            Some(u) if uuid::Uuid::parse_str(u).is_err() => {
                Some("the username must be a valid UUID for Azure Source Types")
            }
            Some(_) => None,
        };
        if let Some(problem) = problem {
            return Err(Error::bad_request(format_args!(
                "subscription ID is invalid: {problem}"
            )));
        }
    }
    Ok(NewAuthentication {
        resource_type: resource_type.to_owned(),
        resource_id,
    })
}

/// The source a resource belongs to, within the tenant.
pub(crate) async fn resource_source_id(
    conn: &mut PgConnection,
    tenant: &Tenant,
    resource_type: &str,
    resource_id: i64,
) -> Result<i64> {
    let sql = match resource_type {
        "Source" => "SELECT id FROM sources WHERE id = $1 AND tenant_id = $2",
        "Application" => "SELECT source_id FROM applications WHERE id = $1 AND tenant_id = $2",
        "Endpoint" => "SELECT source_id FROM endpoints WHERE id = $1 AND tenant_id = $2",
        _ => "SELECT source_id FROM authentications WHERE id = $1 AND tenant_id = $2",
    };
    let found: Option<i64> = sqlx::query_scalar(sql)
        .bind(resource_id)
        .bind(tenant.id)
        .fetch_optional(conn)
        .await?;
    found.ok_or_else(|| {
        Error::bad_request(format_args!(
            "resource not found with type [{resource_type}], id [{resource_id}]"
        ))
    })
}

/// Inserts a validated authentication; shared with bulk create.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    tenant: &Tenant,
    new: &NewAuthentication,
    req: AuthenticationCreateRequest,
) -> Result<AuthenticationRow> {
    let source_id = resource_source_id(conn, tenant, &new.resource_type, new.resource_id).await?;
    let sealed = req
        .password
        .as_deref()
        .map(|p| secrets.seal(p, &tenant.id.to_be_bytes()));
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO authentications AS t (tenant_id, source_id, resource_type, resource_id, \
           name, authtype, username, password_encrypted, extra, availability_status_error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    )))
    .bind(tenant.id)
    .bind(source_id)
    .bind(&new.resource_type)
    .bind(new.resource_id)
    .bind(&req.name)
    .bind(&req.authtype)
    .bind(&req.username)
    .bind(&sealed)
    .bind(&req.extra)
    .bind(&req.availability_status_error)
    .fetch_one(conn)
    .await
    .map_err(Error::from)
}

/// List authentications.
#[utoipa::path(get, path = "/authentications", tag = "authentications", params(ListQueryDoc),
    responses((status = 200, body = Collection<Authentication>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Authentication>>> {
    fetch(
        &state,
        vec![Scope::eq("t.tenant_id = ", tenant.id)],
        &params,
    )
    .await
    .map(Json)
}

/// Get an authentication (without its password).
#[utoipa::path(get, path = "/authentications/{id}", tag = "authentications",
    params(("id" = String, Path, description = "Authentication id")),
    responses((status = 200, body = Authentication), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn get(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<Json<Authentication>> {
    let mut conn = state.db.acquire().await?;
    find(&mut conn, &tenant, id.get())
        .await
        .map(|r| Json(r.into()))
}

/// Create an authentication.
#[utoipa::path(post, path = "/authentications", tag = "authentications",
    request_body = AuthenticationCreateRequest, security(("psk" = [])),
    responses((status = 201, body = Authentication), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<AuthenticationCreateRequest>,
) -> Result<(StatusCode, Json<Authentication>)> {
    let new = validate_create(&req)?;
    let mut tx = state.db.begin().await?;
    let row = insert(&mut tx, &state.secrets, &tenant, &new, req).await?;
    events::record(
        &mut tx,
        &tenant,
        &[Event::new("Authentication.create", row.to_event(&tenant))],
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Edit an authentication.
#[utoipa::path(patch, path = "/authentications/{id}", tag = "authentications",
    request_body = AuthenticationEditRequest,
    params(("id" = String, Path, description = "Authentication id")), security(("psk" = [])),
    responses((status = 200, body = Authentication), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn edit(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<AuthenticationEditRequest>,
) -> Result<Json<Authentication>> {
    let status = parse_status(req.availability_status.as_deref(), INVALID_STATUS)?;
    let (checked, available) = (
        parse_time(req.last_checked_at.as_deref())?,
        parse_time(req.last_available_at.as_deref())?,
    );
    let mut tx = state.db.begin().await?;
    find(&mut tx, &tenant, id.get()).await?;
    let sealed = req
        .password
        .as_deref()
        .map(|p| state.secrets.seal(p, &tenant.id.to_be_bytes()));
    let row: AuthenticationRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE authentications AS t SET name = COALESCE($3, name), authtype = COALESCE($4, authtype), \
           username = COALESCE($5, username), password_encrypted = COALESCE($6, password_encrypted), \
           extra = COALESCE($7, extra), availability_status = COALESCE($8, availability_status), \
           availability_status_error = COALESCE($9, availability_status_error), \
           last_checked_at = COALESCE($10, last_checked_at), \
           last_available_at = COALESCE($11, last_available_at) \
         WHERE t.id = $1 AND t.tenant_id = $2 RETURNING {COLUMNS}"
    )))
    .bind(id.get())
    .bind(tenant.id)
    .bind(&req.name)
    .bind(&req.authtype)
    .bind(&req.username)
    .bind(&sealed)
    .bind(&req.extra)
    .bind(status.map(AvailabilityStatus::as_str))
    .bind(&req.availability_status_error)
    .bind(checked)
    .bind(available)
    .fetch_one(&mut *tx)
    .await?;
    events::record(
        &mut tx,
        &tenant,
        &[Event::new("Authentication.update", row.to_event(&tenant))],
    )
    .await?;
    tx.commit().await?;
    Ok(Json(row.into()))
}

/// Delete an authentication.
#[utoipa::path(delete, path = "/authentications/{id}", tag = "authentications",
    params(("id" = String, Path, description = "Authentication id")), security(("psk" = [])),
    responses((status = 204), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn delete(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    let row = find(&mut tx, &tenant, id.get()).await?;
    sqlx::query("DELETE FROM authentications WHERE id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    events::record(
        &mut tx,
        &tenant,
        &[Event::new("Authentication.destroy", row.to_event(&tenant))],
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes the authentications of one resource and returns their destroy events, in id order.
pub(crate) async fn delete_for_resource(
    conn: &mut PgConnection,
    tenant: &Tenant,
    resource_type: &str,
    resource_id: i64,
) -> Result<Vec<Event>> {
    let mut rows: Vec<AuthenticationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "DELETE FROM authentications AS t WHERE t.tenant_id = $1 AND t.resource_type = $2 \
           AND t.resource_id = $3 RETURNING {COLUMNS}"
    )))
    .bind(tenant.id)
    .bind(resource_type)
    .bind(resource_id)
    .fetch_all(conn)
    .await?;
    rows.sort_by_key(|r| r.id);
    Ok(rows
        .iter()
        .map(|r| Event::new("Authentication.destroy", r.to_event(tenant)))
        .collect())
}

/// The password of an authentication, for the internal API only.
pub(crate) async fn password(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    tenant_id: i64,
    id: i64,
) -> Result<Option<String>> {
    let sealed: Option<Option<Vec<u8>>> = sqlx::query_scalar(
        "SELECT password_encrypted FROM authentications WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(conn)
    .await?;
    sealed
        .flatten()
        .map(|s| secrets.open(&s, &tenant_id.to_be_bytes()))
        .transpose()
        .map_err(Error::Internal)
}

/// The internal representation: adds `created_at`, `version` and, when asked, `password`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InternalAuthentication {
    #[serde(flatten)]
    pub authentication: Authentication,
    pub created_at: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl InternalAuthentication {
    pub(crate) fn new(row: AuthenticationRow, password: Option<String>) -> Self {
        Self {
            created_at: row.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            version: row.version.clone().unwrap_or_default(),
            authentication: row.into(),
            password,
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, edit, delete))
}
