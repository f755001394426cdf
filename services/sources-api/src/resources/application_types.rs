use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use keel_db::{Column, Scope, Table};
use keel_sources_http::{Collection, ErrorDocument, ListParams, ListQueryDoc, PathId};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::{Error, Result},
    resources::sources::{self, Source},
    state::AppState,
    tenant::Tenant,
    wire,
};

pub static TABLE: Table = Table {
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

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ApplicationTypeRow {
    id: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    name: String,
    display_name: String,
    dependent_applications: Value,
    supported_source_types: Value,
    supported_authentication_types: Value,
}

/// An application that sources can be attached to, e.g. `/insights/platform/cost-management`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationType {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    pub name: String,
    pub display_name: String,
    /// Always an array.
    pub dependent_applications: Value,
    /// Names of the source types this application supports.
    pub supported_source_types: Value,
    /// Authentication types per source type name.
    pub supported_authentication_types: Value,
}

impl From<ApplicationTypeRow> for ApplicationType {
    fn from(r: ApplicationTypeRow) -> Self {
        Self {
            id: wire::id(r.id),
            created_at: wire::timestamp(r.created_at),
            updated_at: wire::timestamp(r.updated_at),
            name: r.name,
            display_name: r.display_name,
            dependent_applications: match r.dependent_applications {
                Value::Array(_) => r.dependent_applications,
                _ => Value::Array(Vec::new()),
            },
            supported_source_types: r.supported_source_types,
            supported_authentication_types: r.supported_authentication_types,
        }
    }
}

/// Lists application types through `listing`; also serves `/sources/{id}/application_types`.
pub(crate) async fn fetch(
    state: &AppState,
    scopes: Vec<Scope>,
    params: &ListParams,
) -> Result<Collection<ApplicationType>> {
    super::collection::<ApplicationTypeRow, ApplicationType>(state, &TABLE, "t.*", scopes, params)
        .await
}

/// List application types.
#[utoipa::path(get, path = "/application_types", tag = "application_types", params(ListQueryDoc),
    responses((status = 200, body = Collection<ApplicationType>), (status = 400, body = ErrorDocument)))]
async fn list(
    State(state): State<AppState>,
    params: ListParams,
) -> Result<Json<Collection<ApplicationType>>> {
    fetch(&state, vec![], &params).await.map(Json)
}

/// Get an application type.
#[utoipa::path(get, path = "/application_types/{id}", tag = "application_types",
    params(("id" = String, Path, description = "Application type id")),
    responses((status = 200, body = ApplicationType), (status = 400, body = ErrorDocument),
        (status = 404, body = ErrorDocument)))]
async fn get(PathId(id): PathId, State(state): State<AppState>) -> Result<Json<ApplicationType>> {
    let row: ApplicationTypeRow = sqlx::query_as("SELECT * FROM application_types WHERE id = $1")
        .bind(id.get())
        .fetch_optional(&state.db)
        .await?
        .ok_or_else(|| Error::not_found("application type"))?;
    Ok(Json(row.into()))
}

pub(crate) async fn exists(db: &sqlx::PgPool, id: i64) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM application_types WHERE id = $1)")
            .bind(id)
            .fetch_one(db)
            .await?,
    )
}

/// List the tenant's sources that have an application of this type.
#[utoipa::path(get, path = "/application_types/{application_type_id}/sources",
    tag = "application_types",
    params(("application_type_id" = String, Path, description = "Application type id"), ListQueryDoc),
    responses((status = 200, body = Collection<Source>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_sources(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Source>>> {
    if !exists(&state.db, id.get()).await? {
        return Err(Error::not_found("application type"));
    }
    let scope = Scope::around(
        "t.id IN (SELECT a.source_id FROM applications a WHERE a.application_type_id = ",
        id.get(),
        ")",
    );
    sources::list_scoped(&state, &tenant, scope, &params)
        .await
        .map(Json)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(list_sources))
}
