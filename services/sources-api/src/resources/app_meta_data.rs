use axum::{Json, extract::State};
use keel_sources_http::{Collection, ErrorDocument, ListParams, ListQueryDoc, PathId};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::collection;
use crate::{error::Result, state::AppState, store::catalogue, wire::catalogue::AppMetaData};

/// List application metadata.
#[utoipa::path(get, path = "/app_meta_data", tag = "app_meta_data", params(ListQueryDoc),
    responses((status = 200, body = Collection<AppMetaData>), (status = 400, body = ErrorDocument)))]
async fn list(
    State(state): State<AppState>,
    params: ListParams,
) -> Result<Json<Collection<AppMetaData>>> {
    let page = catalogue::meta_data(&state.db, None, &params.query).await?;
    Ok(Json(collection(page, &params)))
}

/// Get one application metadata entry.
#[utoipa::path(get, path = "/app_meta_data/{id}", tag = "app_meta_data",
    params(("id" = String, Path, description = "Metadata id")),
    responses((status = 200, body = AppMetaData), (status = 400, body = ErrorDocument),
        (status = 404, body = ErrorDocument)))]
async fn get(PathId(id): PathId, State(state): State<AppState>) -> Result<Json<AppMetaData>> {
    let row = catalogue::meta_data_entry(&state.db, id.get()).await?;
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
    let page = catalogue::meta_data(&state.db, Some(id.get()), &params.query).await?;
    Ok(Json(collection(page, &params)))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(list_for_application_type))
}
