use axum::{Json, extract::State, http::StatusCode};
use keel_sources_http::{Collection, ErrorDocument, ListParams, ListQueryDoc, PathId, StrictJson};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{collection, endpoints::endpoint_source};
use crate::{
    domain::INVALID_STATUS,
    error::{Error, Result, parse_status, parse_time},
    extract::Writer,
    state::AppState,
    store::{
        Tenant, Write,
        rhc_connections::{self, RhcConnectionEdit},
        sources::{self, SourceFilter},
    },
    wire::{
        rhc_connections::{RhcConnection, RhcConnectionCreateRequest, RhcConnectionEditRequest},
        sources::Source,
    },
};

/// List connections.
#[utoipa::path(get, path = "/rhc_connections", tag = "rhc_connections", params(ListQueryDoc),
    responses((status = 200, body = Collection<RhcConnection>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<RhcConnection>>> {
    let page = rhc_connections::list(&state.db, &tenant, None, &params.query).await?;
    Ok(Json(collection(page, &params)))
}

/// Get a connection (needs a pre-shared key, as in sources-api-go).
#[utoipa::path(get, path = "/rhc_connections/{id}", tag = "rhc_connections",
    params(("id" = String, Path, description = "Connection id")), security(("psk" = [])),
    responses((status = 200, body = RhcConnection), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn get(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
) -> Result<Json<RhcConnection>> {
    let row = rhc_connections::find(&state.db, &tenant, id.get()).await?;
    Ok(Json(row.into()))
}

/// Link a source to a Red Hat Connector connection.
#[utoipa::path(post, path = "/rhc_connections", tag = "rhc_connections",
    request_body = RhcConnectionCreateRequest, security(("psk" = [])),
    responses((status = 201, body = RhcConnection), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<RhcConnectionCreateRequest>,
) -> Result<(StatusCode, Json<RhcConnection>)> {
    let rhc_id = req.rhc_id.as_deref().unwrap_or_default();
    if rhc_id.is_empty() {
        return Err(Error::validation(
            "the Red Hat Connector Connection's id is invalid",
        ));
    }
    let source_id = endpoint_source(req.source_id.as_ref())?;
    let mut w = Write::begin(&state.db, &tenant).await?;
    let row = rhc_connections::link(&mut w, source_id, rhc_id, req.extra.as_ref()).await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Edit a connection.
#[utoipa::path(patch, path = "/rhc_connections/{id}", tag = "rhc_connections",
    request_body = RhcConnectionEditRequest,
    params(("id" = String, Path, description = "Connection id")), security(("psk" = [])),
    responses((status = 200, body = RhcConnection), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn edit(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<RhcConnectionEditRequest>,
) -> Result<Json<RhcConnection>> {
    let edit = RhcConnectionEdit {
        availability_status: parse_status(req.availability_status.as_deref(), INVALID_STATUS)?,
        last_checked_at: parse_time(req.last_checked_at.as_deref())?,
        last_available_at: parse_time(req.last_available_at.as_deref())?,
        extra: req.extra,
        availability_status_error: req.availability_status_error,
    };
    let mut w = Write::begin(&state.db, &tenant).await?;
    let row = rhc_connections::update(&mut w, id.get(), &edit).await?;
    w.commit().await?;
    Ok(Json(row.into()))
}

/// Delete a connection and its links to sources.
#[utoipa::path(delete, path = "/rhc_connections/{id}", tag = "rhc_connections",
    params(("id" = String, Path, description = "Connection id")), security(("psk" = [])),
    responses((status = 204), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn delete(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
) -> Result<StatusCode> {
    let mut w = Write::begin(&state.db, &tenant).await?;
    rhc_connections::delete(&mut w, id.get()).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List the sources linked to a connection.
#[utoipa::path(get, path = "/rhc_connections/{id}/sources", tag = "rhc_connections",
    params(("id" = String, Path, description = "Connection id"), ListQueryDoc),
    responses((status = 200, body = Collection<Source>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_sources(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Source>>> {
    rhc_connections::find(&state.db, &tenant, id.get()).await?;
    let filter = SourceFilter::OfRhcConnection(id.get());
    let page = sources::list(&state.db, &tenant, filter, &params.query).await?;
    Ok(Json(collection(page, &params)))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, edit, delete))
        .routes(routes!(list_sources))
}
