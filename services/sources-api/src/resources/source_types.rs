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
    name: "source_types",
    columns: &[
        Column::int("id"),
        Column::timestamp("created_at"),
        Column::timestamp("updated_at"),
        Column::text("category"),
        Column::text("name"),
        Column::text("product_name"),
        Column::text("vendor"),
        Column::text("icon_url"),
        Column::json("schema"),
    ],
    subresources: &[],
};

#[derive(Debug, sqlx::FromRow)]
struct SourceTypeRow {
    id: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    category: String,
    name: String,
    product_name: String,
    vendor: String,
    schema: Value,
    icon_url: Option<String>,
}

/// A kind of source (amazon, azure, openshift, …) and the form schema of its credentials.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceType {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    pub category: String,
    pub name: String,
    pub product_name: String,
    pub vendor: String,
    pub schema: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
}

impl From<SourceTypeRow> for SourceType {
    fn from(r: SourceTypeRow) -> Self {
        Self {
            id: wire::id(r.id),
            created_at: wire::timestamp(r.created_at),
            updated_at: wire::timestamp(r.updated_at),
            category: r.category,
            name: r.name,
            product_name: r.product_name,
            vendor: r.vendor,
            schema: r.schema,
            icon_url: wire::non_empty(r.icon_url),
        }
    }
}

/// List source types.
#[utoipa::path(get, path = "/source_types", tag = "source_types", params(ListQueryDoc),
    responses((status = 200, body = Collection<SourceType>), (status = 400, body = ErrorDocument)))]
async fn list(
    State(state): State<AppState>,
    params: ListParams,
) -> Result<Json<Collection<SourceType>>> {
    super::collection::<SourceTypeRow, SourceType>(&state, &TABLE, "t.*", vec![], &params)
        .await
        .map(Json)
}

/// Get a source type.
#[utoipa::path(get, path = "/source_types/{id}", tag = "source_types",
    params(("id" = String, Path, description = "Source type id")),
    responses((status = 200, body = SourceType), (status = 400, body = ErrorDocument),
        (status = 404, body = ErrorDocument)))]
async fn get(PathId(id): PathId, State(state): State<AppState>) -> Result<Json<SourceType>> {
    let row: SourceTypeRow = sqlx::query_as("SELECT * FROM source_types WHERE id = $1")
        .bind(id.get())
        .fetch_optional(&state.db)
        .await?
        .ok_or_else(|| Error::not_found("source type"))?;
    Ok(Json(row.into()))
}

pub(crate) async fn exists(db: &sqlx::PgPool, id: i64) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM source_types WHERE id = $1)")
            .bind(id)
            .fetch_one(db)
            .await?,
    )
}

/// List the tenant's sources of a source type.
#[utoipa::path(get, path = "/source_types/{source_type_id}/sources", tag = "source_types",
    params(("source_type_id" = String, Path, description = "Source type id"), ListQueryDoc),
    responses((status = 200, body = Collection<Source>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_sources(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Source>>> {
    if !exists(&state.db, id.get()).await? {
        return Err(Error::not_found("source type"));
    }
    sources::list_scoped(
        &state,
        &tenant,
        Scope::eq("t.source_type_id = ", id.get()),
        &params,
    )
    .await
    .map(Json)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(list_sources))
}
