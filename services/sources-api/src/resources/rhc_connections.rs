use axum::{Json, extract::State, http::StatusCode};
use keel_sources_http::{ErrorDocument, PathId, StrictJson};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::endpoints::endpoint_source;
use crate::{
    domain::{
        INVALID_STATUS,
        limits::{self, Field},
        status::any_status,
    },
    error::{Error, Result},
    extract::Writer,
    state::AppState,
    store::{
        Write,
        rhc_connections::{self, RhcConnectionEdit},
        sources::{self, SourceFilter},
    },
    wire::{
        rhc_connections::{RhcConnection, RhcConnectionCreateRequest, RhcConnectionEditRequest},
        sources::Source,
    },
};

tenant_list! {
    /// List connections.
    list: "/rhc_connections", "rhc_connections", RhcConnection, rhc_connections::list, None
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
        (status = 401, body = ErrorDocument),
        (status = 404, description = "The source is not the tenant's", body = ErrorDocument)))]
async fn create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<RhcConnectionCreateRequest>,
) -> Result<(StatusCode, Json<RhcConnection>)> {
    limits::check(&[
        Field::Text("rhc_id", req.rhc_id.as_deref(), limits::SHORT),
        Field::Json("extra", req.extra.as_ref(), limits::DOCUMENT),
    ])
    .map_err(Error::validation)?;
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
    limits::check(&[Field::Json("extra", req.extra.as_ref(), limits::DOCUMENT)])
        .map_err(Error::bad_request)?;
    let edit = RhcConnectionEdit {
        extra: req.extra,
        report: req
            .status
            .parse(any_status(INVALID_STATUS))
            .map_err(Error::bad_request)?,
    };
    let mut w = Write::begin(&state.db, &tenant).await?;
    let row = rhc_connections::update(&mut w, id.get(), &edit).await?;
    w.commit().await?;
    Ok(Json(row.into()))
}

tenant_delete! {
    /// Delete a connection and its links to sources.
    delete: "/rhc_connections/{id}", "rhc_connections", "Connection id", rhc_connections::delete
}

tenant_sub_list! {
    /// List the sources linked to a connection.
    list_sources: "/rhc_connections/{id}/sources", "rhc_connections", "id", "Connection id",
        Source,
        |db, tenant, id| rhc_connections::find(db, tenant, id) => sources::list,
        SourceFilter::OfRhcConnection(id)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, edit, delete))
        .routes(routes!(list_sources))
}
