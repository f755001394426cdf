use std::sync::LazyLock;

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use keel_db::{Column, Scope, Table};
use keel_domain::AvailabilityStatus;
use keel_sources_http::{Collection, ErrorDocument, ListParams, ListQueryDoc, PathId, StrictJson};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::parse_flexible_id,
    error::{Error, Result, constraint, parse_time},
    events::{self, Event, opt_event_time, tenant_field},
    resources::authentications::{self, Authentication},
    state::AppState,
    tenant::{Tenant, Writer},
    wire,
};

pub static TABLE: Table = Table {
    name: "endpoints",
    columns: &[
        Column::int("id"),
        Column::timestamp("created_at"),
        Column::timestamp("updated_at"),
        Column::timestamp("paused_at"),
        Column::text("role"),
        Column::int("port"),
        Column::bool("default"),
        Column::text("scheme"),
        Column::text("host"),
        Column::text("path"),
        Column::bool("verify_ssl"),
        Column::text("certificate_authority"),
        Column::text("receptor_node"),
        Column::text("availability_status"),
        Column::timestamp("last_checked_at"),
        Column::timestamp("last_available_at"),
        Column::text("availability_status_error"),
        Column::int("source_id"),
    ],
    subresources: &[],
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct EndpointRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub paused_at: Option<DateTime<Utc>>,
    pub role: Option<String>,
    pub port: Option<i32>,
    pub default: bool,
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub verify_ssl: Option<bool>,
    pub certificate_authority: Option<String>,
    pub receptor_node: Option<String>,
    pub availability_status: String,
    pub availability_status_error: Option<String>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_available_at: Option<DateTime<Utc>>,
    pub source_id: i64,
}

impl EndpointRow {
    pub fn to_event(&self, tenant: &Tenant) -> Value {
        json!({
            "id": self.id,
            "created_at": events::event_time(self.created_at),
            "updated_at": events::event_time(self.updated_at),
            "paused_at": opt_event_time(self.paused_at),
            "role": self.role,
            "port": self.port,
            "default": self.default,
            "scheme": self.scheme,
            "host": self.host,
            "path": self.path,
            "verify_ssl": self.verify_ssl,
            "certificate_authority": self.certificate_authority,
            "receptor_node": self.receptor_node,
            "availability_status": self.availability_status,
            "last_checked_at": opt_event_time(self.last_checked_at),
            "last_available_at": opt_event_time(self.last_available_at),
            "availability_status_error": self.availability_status_error,
            "source_id": self.source_id,
            "tenant": tenant_field(tenant),
        })
    }
}

/// Where a source's service is reached (e.g. an OpenShift cluster's API).
#[derive(Debug, Serialize, ToSchema)]
pub struct Endpoint {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Omitted when false, as sources-api-go does.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_ssl: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receptor_node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_checked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_available_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_status_error: Option<String>,
    #[schema(pattern = r"^\d+$")]
    pub source_id: String,
}

impl From<EndpointRow> for Endpoint {
    fn from(r: EndpointRow) -> Self {
        Self {
            id: wire::id(r.id),
            created_at: wire::timestamp(r.created_at),
            updated_at: wire::timestamp(r.updated_at),
            paused_at: wire::opt_timestamp(r.paused_at),
            role: wire::non_empty(r.role),
            port: r.port,
            default: r.default,
            scheme: wire::non_empty(r.scheme),
            host: wire::non_empty(r.host),
            path: wire::non_empty(r.path),
            verify_ssl: r.verify_ssl,
            certificate_authority: wire::non_empty(r.certificate_authority),
            receptor_node: wire::non_empty(r.receptor_node),
            availability_status: wire::non_empty(Some(r.availability_status)),
            last_checked_at: wire::opt_timestamp(r.last_checked_at),
            last_available_at: wire::opt_timestamp(r.last_available_at),
            availability_status_error: wire::non_empty(r.availability_status_error),
            source_id: wire::id(r.source_id),
        }
    }
}

/// Create an endpoint. Defaults: scheme `https`, port 443, `verify_ssl` false; a source's first
/// endpoint is its default.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointCreateRequest {
    pub default: Option<bool>,
    pub receptor_node: Option<String>,
    pub role: Option<String>,
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<i64>,
    pub path: Option<String>,
    pub verify_ssl: Option<bool>,
    pub certificate_authority: Option<String>,
    /// `available` or `unavailable`; `in_progress` when empty.
    pub availability_status: Option<String>,
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub source_id: Option<Value>,
}

/// Edit an endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointEditRequest {
    pub default: Option<bool>,
    pub receptor_node: Option<String>,
    pub role: Option<String>,
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<i64>,
    pub path: Option<String>,
    pub verify_ssl: Option<bool>,
    pub certificate_authority: Option<String>,
    pub availability_status: Option<String>,
    pub availability_status_error: Option<String>,
    pub last_checked_at: Option<String>,
    pub last_available_at: Option<String>,
}

static FQDN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[a-zA-Z\d](?:[a-zA-Z\d-]*[a-zA-Z\d])?\.)+[a-zA-Z](?:[a-zA-Z\d-]*[a-zA-Z])?$")
        .expect("valid host pattern")
});
static SCHEME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z][a-zA-Z\d+\-.]*$").expect("valid scheme pattern"));

const MAX_HOST: usize = 255;
const MAX_LABEL: usize = 63;

fn validate_host(host: &str) -> std::result::Result<(), String> {
    if host.chars().count() > MAX_HOST {
        return Err(format!(
            "the provided host is longer than {MAX_HOST} characters"
        ));
    }
    if !FQDN.is_match(host) {
        return Err("the provided host is invalid".to_owned());
    }
    // sources-api-go measures the whole host here (a bug); Keel measures each label.
    if let Some(label) = host.split('.').find(|l| l.chars().count() > MAX_LABEL) {
        return Err(format!(
            "the label '{label}' is greater than {MAX_LABEL} characters"
        ));
    }
    Ok(())
}

fn scheme_or_default(scheme: Option<String>) -> String {
    scheme
        .filter(|s| SCHEME.is_match(s))
        .unwrap_or_else(|| "https".to_owned())
}

/// Endpoints accept only these two statuses, or none.
fn endpoint_status(raw: &str) -> std::result::Result<AvailabilityStatus, String> {
    match raw.parse() {
        Ok(s @ (AvailabilityStatus::Available | AvailabilityStatus::Unavailable)) => Ok(s),
        _ => Err("invalid availability status".to_owned()),
    }
}

pub(crate) async fn fetch(
    state: &AppState,
    scopes: Vec<Scope>,
    params: &ListParams,
) -> Result<Collection<Endpoint>> {
    super::collection::<EndpointRow, Endpoint>(state, &TABLE, "t.*", scopes, params).await
}

pub(crate) async fn find(conn: &mut PgConnection, tenant: &Tenant, id: i64) -> Result<EndpointRow> {
    sqlx::query_as("SELECT * FROM endpoints WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant.id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::not_found("endpoint"))
}

async fn source_has_default(conn: &mut PgConnection, source_id: i64, except: i64) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM endpoints WHERE source_id = $1 AND \"default\" AND id <> $2)",
    )
    .bind(source_id)
    .bind(except)
    .fetch_one(conn)
    .await?)
}

async fn role_taken(
    conn: &mut PgConnection,
    source_id: i64,
    role: &str,
    except: i64,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM endpoints WHERE source_id = $1 AND role = $2 AND id <> $3)",
    )
    .bind(source_id)
    .bind(role)
    .bind(except)
    .fetch_one(conn)
    .await?)
}

/// A concurrent writer can still win the race the checks above lost; the unique indexes
/// answer it with the same messages (wrapped in `Validation failed:` on create only).
fn unique_violation(e: sqlx::Error, on_create: bool) -> Error {
    let message = match constraint(&e) {
        Some("endpoints_default_per_source") => {
            "a default endpoint already exists for the provided source"
        }
        Some("endpoints_role_per_source") => "the role already exists for the given source",
        _ => return e.into(),
    };
    if on_create {
        Error::validation(message)
    } else {
        Error::bad_request(message)
    }
}

/// Validates and inserts an endpoint with sources-api-go's messages; shared with bulk create.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    tenant: &Tenant,
    req: EndpointCreateRequest,
) -> Result<EndpointRow> {
    let source_id = req
        .source_id
        .as_ref()
        .and_then(parse_flexible_id)
        .ok_or_else(|| Error::validation("the provided source ID is not valid"))?;
    if source_id < 1 {
        return Err(Error::validation("invalid source id"));
    }
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sources WHERE id = $1 AND tenant_id = $2)",
    )
    .bind(source_id)
    .bind(tenant.id)
    .fetch_one(&mut *conn)
    .await?;
    if !exists {
        return Err(Error::bad_request("source id not found"));
    }
    let mut default = req.default.unwrap_or(false);
    if default && source_has_default(conn, source_id, 0).await? {
        return Err(Error::validation(
            "a default endpoint already exists for the provided source",
        ));
    }
    let has_endpoints: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM endpoints WHERE source_id = $1)")
            .bind(source_id)
            .fetch_one(&mut *conn)
            .await?;
    if !has_endpoints {
        default = true;
    }
    if let Some(role) = req.role.as_deref()
        && role_taken(conn, source_id, role, 0).await?
    {
        return Err(Error::validation(
            "the role already exists for the given source",
        ));
    }
    let scheme = scheme_or_default(req.scheme);
    if let Some(host) = req.host.as_deref().filter(|h| !h.is_empty()) {
        validate_host(host).map_err(Error::validation)?;
    }
    let port = match req.port {
        None => 443,
        Some(p) if p <= 0 => 443,
        Some(p) if p > 65535 => return Err(Error::validation("invalid port number")),
        Some(p) => p,
    };
    let verify_ssl = req.verify_ssl.unwrap_or(false);
    if verify_ssl
        && req
            .certificate_authority
            .as_deref()
            .unwrap_or_default()
            .is_empty()
    {
        return Err(Error::validation(
            "the certificate authority cannot be empty",
        ));
    }
    let status = match req.availability_status.as_deref().unwrap_or_default() {
        "" => AvailabilityStatus::InProgress,
        raw => endpoint_status(raw).map_err(Error::validation)?,
    };
    sqlx::query_as(
        "INSERT INTO endpoints (tenant_id, source_id, \"default\", receptor_node, role, scheme, host, \
           port, path, verify_ssl, certificate_authority, availability_status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *",
    )
    .bind(tenant.id)
    .bind(source_id)
    .bind(default)
    .bind(&req.receptor_node)
    .bind(&req.role)
    .bind(&scheme)
    .bind(&req.host)
    .bind(port as i32)
    .bind(&req.path)
    .bind(verify_ssl)
    .bind(&req.certificate_authority)
    .bind(status.as_str())
    .fetch_one(conn)
    .await
    .map_err(|e| unique_violation(e, true))
}

/// List endpoints.
#[utoipa::path(get, path = "/endpoints", tag = "endpoints", params(ListQueryDoc),
    responses((status = 200, body = Collection<Endpoint>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Endpoint>>> {
    fetch(
        &state,
        vec![Scope::eq("t.tenant_id = ", tenant.id)],
        &params,
    )
    .await
    .map(Json)
}

/// Get an endpoint.
#[utoipa::path(get, path = "/endpoints/{id}", tag = "endpoints",
    params(("id" = String, Path, description = "Endpoint id")),
    responses((status = 200, body = Endpoint), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn get(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<Json<Endpoint>> {
    let mut conn = state.db.acquire().await?;
    find(&mut conn, &tenant, id.get())
        .await
        .map(|r| Json(r.into()))
}

/// Create an endpoint.
#[utoipa::path(post, path = "/endpoints", tag = "endpoints", request_body = EndpointCreateRequest,
    security(("psk" = [])),
    responses((status = 201, body = Endpoint), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<EndpointCreateRequest>,
) -> Result<(StatusCode, Json<Endpoint>)> {
    let mut tx = state.db.begin().await?;
    let row = insert(&mut tx, &tenant, req).await?;
    events::record(
        &mut tx,
        &tenant,
        &[Event::new("Endpoint.create", row.to_event(&tenant))],
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Edit an endpoint. Only the fields sent change.
#[utoipa::path(patch, path = "/endpoints/{id}", tag = "endpoints", request_body = EndpointEditRequest,
    params(("id" = String, Path, description = "Endpoint id")), security(("psk" = [])),
    responses((status = 200, body = Endpoint), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn edit(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<EndpointEditRequest>,
) -> Result<Json<Endpoint>> {
    let mut tx = state.db.begin().await?;
    let current = find(&mut tx, &tenant, id.get()).await?;
    if req.default == Some(true)
        && source_has_default(&mut tx, current.source_id, current.id).await?
    {
        return Err(Error::bad_request(
            "a default endpoint already exists for the provided source",
        ));
    }
    if let Some(role) = req.role.as_deref()
        && role_taken(&mut tx, current.source_id, role, current.id).await?
    {
        return Err(Error::bad_request(
            "the role already exists for the given source",
        ));
    }
    let scheme = req.scheme.map(|s| scheme_or_default(Some(s)));
    if let Some(host) = req.host.as_deref().filter(|h| !h.is_empty()) {
        validate_host(host).map_err(Error::bad_request)?;
    }
    let port = match req.port {
        Some(p) if p > 65535 => return Err(Error::bad_request("invalid port number")),
        Some(p) if p <= 0 => Some(443),
        other => other,
    };
    let verify_ssl = req
        .verify_ssl
        .unwrap_or(current.verify_ssl.unwrap_or(false));
    let ca = req
        .certificate_authority
        .clone()
        .or(current.certificate_authority.clone());
    if verify_ssl && ca.as_deref().unwrap_or_default().is_empty() {
        return Err(Error::bad_request(
            "the certificate authority cannot be empty",
        ));
    }
    let status = req
        .availability_status
        .as_deref()
        .map(endpoint_status)
        .transpose()
        .map_err(Error::bad_request)?;
    let (checked, available) = (
        parse_time(req.last_checked_at.as_deref())?,
        parse_time(req.last_available_at.as_deref())?,
    );
    let row: EndpointRow = sqlx::query_as(
        "UPDATE endpoints SET \"default\" = COALESCE($3, \"default\"), \
           receptor_node = COALESCE($4, receptor_node), role = COALESCE($5, role), \
           scheme = COALESCE($6, scheme), host = COALESCE($7, host), port = COALESCE($8, port), \
           path = COALESCE($9, path), verify_ssl = COALESCE($10, verify_ssl), \
           certificate_authority = COALESCE($11, certificate_authority), \
           availability_status = COALESCE($12, availability_status), \
           availability_status_error = COALESCE($13, availability_status_error), \
           last_checked_at = COALESCE($14, last_checked_at), \
           last_available_at = COALESCE($15, last_available_at) \
         WHERE id = $1 AND tenant_id = $2 RETURNING *",
    )
    .bind(id.get())
    .bind(tenant.id)
    .bind(req.default)
    .bind(&req.receptor_node)
    .bind(&req.role)
    .bind(&scheme)
    .bind(&req.host)
    .bind(port.map(|p| p as i32))
    .bind(&req.path)
    .bind(req.verify_ssl)
    .bind(&req.certificate_authority)
    .bind(status.map(AvailabilityStatus::as_str))
    .bind(&req.availability_status_error)
    .bind(checked)
    .bind(available)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| unique_violation(e, false))?;
    events::record(
        &mut tx,
        &tenant,
        &[Event::new("Endpoint.update", row.to_event(&tenant))],
    )
    .await?;
    tx.commit().await?;
    Ok(Json(row.into()))
}

/// Deletes an endpoint and its authentications; returns the events in order.
pub(crate) async fn delete_cascade(
    conn: &mut PgConnection,
    tenant: &Tenant,
    endpoint: &EndpointRow,
) -> Result<(Event, Vec<Event>)> {
    let auths = authentications::delete_for_resource(conn, tenant, "Endpoint", endpoint.id).await?;
    sqlx::query("DELETE FROM endpoints WHERE id = $1")
        .bind(endpoint.id)
        .execute(&mut *conn)
        .await?;
    Ok((
        Event::new("Endpoint.destroy", endpoint.to_event(tenant)),
        auths,
    ))
}

/// Delete an endpoint and its authentications.
#[utoipa::path(delete, path = "/endpoints/{id}", tag = "endpoints",
    params(("id" = String, Path, description = "Endpoint id")), security(("psk" = [])),
    responses((status = 204), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn delete(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    let endpoint = find(&mut tx, &tenant, id.get()).await?;
    let (destroyed, auths) = delete_cascade(&mut tx, &tenant, &endpoint).await?;
    let mut events = vec![destroyed];
    events.extend(auths);
    events::record(&mut tx, &tenant, &events).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List an endpoint's authentications.
#[utoipa::path(get, path = "/endpoints/{endpoint_id}/authentications", tag = "endpoints",
    params(("endpoint_id" = String, Path, description = "Endpoint id"), ListQueryDoc),
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
            "t.resource_type = 'Endpoint' AND t.resource_id = ",
            id.get(),
        ),
    ];
    authentications::fetch(&state, scopes, &params)
        .await
        .map(Json)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, edit, delete))
        .routes(routes!(list_authentications))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_checked_like_sources_api_go() {
        assert!(validate_host("api.cluster.example.com").is_ok());
        assert_eq!(
            validate_host("not a host").unwrap_err(),
            "the provided host is invalid"
        );
        assert_eq!(
            validate_host("localhost").unwrap_err(),
            "the provided host is invalid"
        );
        let long = format!("{}.com", "a".repeat(300));
        assert_eq!(
            validate_host(&long).unwrap_err(),
            "the provided host is longer than 255 characters"
        );
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(
            validate_host(&long_label)
                .unwrap_err()
                .starts_with("the label 'aaaa")
        );
    }

    #[test]
    fn schemes_default_to_https() {
        assert_eq!(scheme_or_default(None), "https");
        assert_eq!(scheme_or_default(Some("1bad".into())), "https");
        assert_eq!(scheme_or_default(Some("http".into())), "http");
    }
}
