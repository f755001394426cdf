use axum::{Json, extract::State};
use keel_sources_http::{Collection, ErrorDocument, ListParams, ListQueryDoc, PathId};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::collection;
use crate::{
    error::Result,
    state::AppState,
    store::{
        catalogue,
        sources::{self, SourceFilter},
    },
    wire::{catalogue::SourceType, sources::Source},
};

/// List source types.
#[utoipa::path(get, path = "/source_types", tag = "source_types", params(ListQueryDoc),
    responses((status = 200, body = Collection<SourceType>), (status = 400, body = ErrorDocument)))]
async fn list(
    State(state): State<AppState>,
    params: ListParams,
) -> Result<Json<Collection<SourceType>>> {
    let page = catalogue::source_types(&state.db, &params.query).await?;
    Ok(Json(collection(page, &params)))
}

/// Get a source type.
#[utoipa::path(get, path = "/source_types/{id}", tag = "source_types",
    params(("id" = String, Path, description = "Source type id")),
    responses((status = 200, body = SourceType), (status = 400, body = ErrorDocument),
        (status = 404, body = ErrorDocument)))]
async fn get(PathId(id): PathId, State(state): State<AppState>) -> Result<Json<SourceType>> {
    let row = catalogue::source_type(&state.db, id.get()).await?;
    Ok(Json(row.into()))
}

tenant_sub_list! {
    /// List the tenant's sources of a source type.
    list_sources: "/source_types/{source_type_id}/sources", "source_types", "source_type_id",
        "Source type id", Source,
        |db, _tenant, id| catalogue::ensure_source_type(db, id) => sources::list,
        SourceFilter::OfType(id)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(list_sources))
}
