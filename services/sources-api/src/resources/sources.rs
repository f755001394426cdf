use axum::{Json, body::Bytes, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use keel_db::{Column, Listing, Scope, Subresource, Table};
use keel_http::{
    Collection, ErrorDocument, ListParams, ListQueryDoc, PathId, StrictJson, decode_strict,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::source::{NewSource, NewSourceFields, SourceEdit, SourceEditFields},
    error::{Error, Result},
    resources::{application_types, application_types::ApplicationType, source_types},
    state::AppState,
    tenant::{Tenant, Writer},
    wire,
};

pub static TABLE: Table = Table {
    name: "sources",
    columns: &[
        Column::int("id"),
        Column::timestamp("created_at"),
        Column::timestamp("updated_at"),
        Column::timestamp("paused_at"),
        Column::text("name"),
        Column::text("uid"),
        Column::text("version"),
        Column::text("imported"),
        Column::text("source_ref"),
        Column::text("app_creation_workflow"),
        Column::int("source_type_id"),
        Column::text("availability_status"),
        Column::timestamp("last_checked_at"),
        Column::timestamp("last_available_at"),
    ],
    subresources: &[Subresource {
        name: "source_type",
        table: &source_types::TABLE,
        foreign_key: "source_type_id",
    }],
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct SourceRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub paused_at: Option<DateTime<Utc>>,
    pub name: String,
    pub uid: String,
    pub version: Option<String>,
    pub imported: Option<String>,
    pub source_ref: Option<String>,
    pub app_creation_workflow: String,
    pub availability_status: String,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_available_at: Option<DateTime<Utc>>,
    pub source_type_id: i64,
}

/// A source: one account, subscription, project or cluster that applications read data from.
/// Empty fields are omitted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Source {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "in_progress")]
    pub availability_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_checked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_available_at: Option<String>,
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    #[schema(example = "2024-05-01T10:00:00Z")]
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<String>,
    pub name: String,
    pub uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<String>,
    #[schema(example = "manual_configuration")]
    pub app_creation_workflow: String,
    #[schema(pattern = r"^\d+$")]
    pub source_type_id: String,
}

impl From<SourceRow> for Source {
    fn from(r: SourceRow) -> Self {
        Self {
            availability_status: wire::non_empty(Some(r.availability_status)),
            last_checked_at: wire::opt_timestamp(r.last_checked_at),
            last_available_at: wire::opt_timestamp(r.last_available_at),
            id: wire::id(r.id),
            created_at: wire::timestamp(r.created_at),
            updated_at: wire::timestamp(r.updated_at),
            paused_at: wire::opt_timestamp(r.paused_at),
            name: r.name,
            uid: r.uid,
            version: wire::non_empty(r.version),
            imported: wire::non_empty(r.imported),
            source_ref: wire::non_empty(r.source_ref),
            app_creation_workflow: r.app_creation_workflow,
            source_type_id: wire::id(r.source_type_id),
        }
    }
}

/// Create a source. `uid` is ignored: the server generates one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceCreateRequest {
    pub name: Option<String>,
    pub uid: Option<String>,
    pub version: Option<String>,
    pub imported: Option<String>,
    pub source_ref: Option<String>,
    /// `manual_configuration` (default) or `account_authorization`.
    pub app_creation_workflow: Option<String>,
    /// `available`, `in_progress` (default), `partially_available` or `unavailable`.
    pub availability_status: Option<String>,
    /// A number or a numeric string.
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub source_type_id: Option<Value>,
}

/// Edit a source. Only the status fields may be sent while the source is paused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceEditRequest {
    pub name: Option<String>,
    pub version: Option<String>,
    pub imported: Option<String>,
    pub source_ref: Option<String>,
    pub availability_status: Option<String>,
    /// `YYYY-MM-DD hh:mm:ss UTC`
    #[schema(example = "2024-05-01 10:00:00 UTC")]
    pub last_checked_at: Option<String>,
    /// `YYYY-MM-DD hh:mm:ss UTC`
    pub last_available_at: Option<String>,
}

/// The fields a paused source accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PausedSourceEditRequest {
    availability_status: Option<String>,
    last_checked_at: Option<String>,
    last_available_at: Option<String>,
}

/// Lists the tenant's sources within `scope`; shared by the sub-collections of other resources.
pub(crate) async fn list_scoped(
    state: &AppState,
    tenant: &Tenant,
    scope: Scope,
    params: &ListParams,
) -> Result<Collection<Source>> {
    let mut scopes = vec![Scope::eq("t.tenant_id = ", tenant.id)];
    scopes.push(scope);
    fetch(state, scopes, params).await
}

async fn fetch(
    state: &AppState,
    scopes: Vec<Scope>,
    params: &ListParams,
) -> Result<Collection<Source>> {
    let page = Listing {
        table: &TABLE,
        select: "t.*",
        scopes,
        query: &params.query,
    }
    .fetch::<SourceRow>(&state.db)
    .await?;
    let data = page.rows.into_iter().map(Source::from).collect();
    Ok(Collection::new(data, page.count, params))
}

pub(crate) async fn find(db: &sqlx::PgPool, tenant: &Tenant, id: i64) -> Result<SourceRow> {
    sqlx::query_as("SELECT * FROM sources WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant.id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| Error::not_found("source"))
}

/// List sources.
#[utoipa::path(get, path = "/sources", tag = "sources", params(ListQueryDoc),
    responses((status = 200, body = Collection<Source>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Source>>> {
    fetch(
        &state,
        vec![Scope::eq("t.tenant_id = ", tenant.id)],
        &params,
    )
    .await
    .map(Json)
}

/// Get a source.
#[utoipa::path(get, path = "/sources/{id}", tag = "sources",
    params(("id" = String, Path, description = "Source id")),
    responses((status = 200, body = Source), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn get(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<Json<Source>> {
    find(&state.db, &tenant, id.get())
        .await
        .map(|r| Json(r.into()))
}

/// Create a source.
#[utoipa::path(post, path = "/sources", tag = "sources", request_body = SourceCreateRequest,
    security(("psk" = [])),
    responses((status = 201, body = Source), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<SourceCreateRequest>,
) -> Result<(StatusCode, Json<Source>)> {
    let source = NewSource::parse(NewSourceFields {
        name: req.name.as_deref(),
        version: req.version,
        imported: req.imported,
        source_ref: req.source_ref,
        app_creation_workflow: req.app_creation_workflow.as_deref(),
        availability_status: req.availability_status.as_deref(),
        source_type_id: req.source_type_id.as_ref(),
    })
    .map_err(Error::validation)?;

    // One statement; the constraints answer "duplicate name" and "unknown type" race-free.
    let row: SourceRow = sqlx::query_as(
        "INSERT INTO sources (tenant_id, source_type_id, name, uid, version, imported, \
           source_ref, app_creation_workflow, availability_status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
    )
    .bind(tenant.id)
    .bind(source.source_type_id)
    .bind(&source.name)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&source.version)
    .bind(&source.imported)
    .bind(&source.source_ref)
    .bind(source.app_creation_workflow.as_str())
    .bind(source.availability_status.as_str())
    .fetch_one(&state.db)
    .await
    .map_err(|e| match constraint(&e) {
        Some("sources_tenant_name_key") => Error::validation("name already exists in tenant"),
        Some("sources_source_type_id_fkey") => Error::validation("source type id not found"),
        _ => e.into(),
    })?;
    tracing::info!(source_id = row.id, "source created");
    Ok((StatusCode::CREATED, Json(row.into())))
}

fn constraint(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

/// Edit a source.
#[utoipa::path(patch, path = "/sources/{id}", tag = "sources", request_body = SourceEditRequest,
    params(("id" = String, Path, description = "Source id")),
    security(("psk" = [])),
    responses((status = 200, body = Source), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn edit(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
    body: Bytes,
) -> Result<Json<Source>> {
    let current = find(&state.db, &tenant, id.get()).await?;
    let edit = if current.paused_at.is_some() {
        let req: PausedSourceEditRequest = decode_strict(&body)?;
        SourceEdit::parse_paused(SourceEditFields {
            availability_status: req.availability_status,
            last_checked_at: req.last_checked_at,
            last_available_at: req.last_available_at,
            ..Default::default()
        })
    } else {
        let req: SourceEditRequest = decode_strict(&body)?;
        SourceEdit::parse(SourceEditFields {
            name: req.name,
            version: req.version,
            imported: req.imported,
            source_ref: req.source_ref,
            availability_status: req.availability_status,
            last_checked_at: req.last_checked_at,
            last_available_at: req.last_available_at,
        })
    }
    .map_err(Error::bad_request)?;

    let row: SourceRow = sqlx::query_as(
        "UPDATE sources SET name = COALESCE($3, name), version = COALESCE($4, version), \
           imported = COALESCE($5, imported), source_ref = COALESCE($6, source_ref), \
           availability_status = COALESCE($7, availability_status), \
           last_checked_at = COALESCE($8, last_checked_at), \
           last_available_at = COALESCE($9, last_available_at) \
         WHERE id = $1 AND tenant_id = $2 RETURNING *",
    )
    .bind(id.get())
    .bind(tenant.id)
    .bind(&edit.name)
    .bind(&edit.version)
    .bind(&edit.imported)
    .bind(&edit.source_ref)
    .bind(edit.availability_status.map(|s| s.as_str()))
    .bind(edit.last_checked_at)
    .bind(edit.last_available_at)
    .fetch_optional(&state.db)
    .await
    .map_err(|e| match constraint(&e) {
        Some("sources_tenant_name_key") => {
            Error::bad_request("source name already exists in same tenant")
        }
        _ => e.into(),
    })?
    // Deleted between the read and the update.
    .ok_or_else(|| Error::not_found("source"))?;
    Ok(Json(row.into()))
}

/// Delete a source.
#[utoipa::path(delete, path = "/sources/{id}", tag = "sources",
    params(("id" = String, Path, description = "Source id")),
    security(("psk" = [])),
    responses((status = 204), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn delete(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
) -> Result<StatusCode> {
    let deleted = sqlx::query("DELETE FROM sources WHERE id = $1 AND tenant_id = $2")
        .bind(id.get())
        .bind(tenant.id)
        .execute(&state.db)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::not_found("source"));
    }
    tracing::info!(source_id = id.get(), "source deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// List the application types of a source's applications.
#[utoipa::path(get, path = "/sources/{source_id}/application_types", tag = "sources",
    params(("source_id" = String, Path, description = "Source id"), ListQueryDoc),
    responses((status = 200, body = Collection<ApplicationType>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_application_types(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<ApplicationType>>> {
    find(&state.db, &tenant, id.get()).await?;
    let scope = Scope {
        before: "t.id IN (SELECT a.application_type_id FROM applications a WHERE a.source_id = ",
        value: id.get(),
        after: ")",
    };
    application_types::fetch(&state, vec![scope], &params)
        .await
        .map(Json)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, edit, delete))
        .routes(routes!(list_application_types))
}
