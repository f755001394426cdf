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
    resources::application_types,
    state::AppState,
    wire,
};

pub static TABLE: Table = Table {
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
struct MetaDataRow {
    id: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    name: String,
    payload: Value,
    application_type_id: i64,
}

/// A named value an application type publishes, e.g. cost-management's AWS account number.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppMetaData {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    pub name: String,
    pub payload: Value,
    #[schema(pattern = r"^\d+$")]
    pub application_type_id: String,
}

impl From<MetaDataRow> for AppMetaData {
    fn from(r: MetaDataRow) -> Self {
        Self {
            id: wire::id(r.id),
            created_at: wire::timestamp(r.created_at),
            updated_at: wire::timestamp(r.updated_at),
            name: r.name,
            payload: r.payload,
            application_type_id: wire::id(r.application_type_id),
        }
    }
}

async fn fetch(
    state: &AppState,
    scopes: Vec<Scope>,
    params: &ListParams,
) -> Result<Collection<AppMetaData>> {
    super::collection::<MetaDataRow, AppMetaData>(state, &TABLE, "t.*", scopes, params).await
}

/// List application metadata.
#[utoipa::path(get, path = "/app_meta_data", tag = "app_meta_data", params(ListQueryDoc),
    responses((status = 200, body = Collection<AppMetaData>), (status = 400, body = ErrorDocument)))]
async fn list(
    State(state): State<AppState>,
    params: ListParams,
) -> Result<Json<Collection<AppMetaData>>> {
    fetch(&state, vec![], &params).await.map(Json)
}

/// Get one application metadata entry.
#[utoipa::path(get, path = "/app_meta_data/{id}", tag = "app_meta_data",
    params(("id" = String, Path, description = "Metadata id")),
    responses((status = 200, body = AppMetaData), (status = 400, body = ErrorDocument),
        (status = 404, body = ErrorDocument)))]
async fn get(PathId(id): PathId, State(state): State<AppState>) -> Result<Json<AppMetaData>> {
    let row: MetaDataRow = sqlx::query_as("SELECT * FROM meta_data WHERE id = $1")
        .bind(id.get())
        .fetch_optional(&state.db)
        .await?
        .ok_or_else(|| Error::not_found("metadata"))?;
    Ok(Json(row.into()))
}

/// List the metadata of an application type.
#[utoipa::path(get, path = "/application_types/{application_type_id}/app_meta_data",
    tag = "app_meta_data",
    params(("application_type_id" = String, Path, description = "Application type id"), ListQueryDoc),
    responses((status = 200, body = Collection<AppMetaData>), (status = 400, body = ErrorDocument),
        (status = 404, body = ErrorDocument)))]
async fn list_for_application_type(
    PathId(id): PathId,
    State(state): State<AppState>,
    params: ListParams,
) -> Result<Json<Collection<AppMetaData>>> {
    if !application_types::exists(&state.db, id.get()).await? {
        return Err(Error::not_found("application type"));
    }
    fetch(
        &state,
        vec![Scope::eq("t.application_type_id = ", id.get())],
        &params,
    )
    .await
    .map(Json)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(list_for_application_type))
}
