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
    wire::{catalogue::ApplicationType, sources::Source},
};

/// List application types.
#[utoipa::path(get, path = "/application_types", tag = "application_types", params(ListQueryDoc),
    responses((status = 200, body = Collection<ApplicationType>), (status = 400, body = ErrorDocument)))]
async fn list(
    State(state): State<AppState>,
    params: ListParams,
) -> Result<Json<Collection<ApplicationType>>> {
    let page = catalogue::application_types(&state.db, None, &params.query).await?;
    Ok(Json(collection(page, &params)))
}

/// Get an application type.
#[utoipa::path(get, path = "/application_types/{id}", tag = "application_types",
    params(("id" = String, Path, description = "Application type id")),
    responses((status = 200, body = ApplicationType), (status = 400, body = ErrorDocument),
        (status = 404, body = ErrorDocument)))]
async fn get(PathId(id): PathId, State(state): State<AppState>) -> Result<Json<ApplicationType>> {
    let row = catalogue::application_type(&state.db, id.get()).await?;
    Ok(Json(row.into()))
}

tenant_sub_list! {
    /// List the tenant's sources that have an application of this type.
    list_sources: "/application_types/{application_type_id}/sources", "application_types",
        "application_type_id", "Application type id", Source,
        |db, _tenant, id| catalogue::ensure_application_type(db, id) => sources::list,
        SourceFilter::WithApplicationType(id)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(list_sources))
}
