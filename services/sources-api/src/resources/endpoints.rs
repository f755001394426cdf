use axum::{Json, extract::State, http::StatusCode};
use keel_domain::sources_events::Resource;
use keel_sources_http::{Collection, ErrorDocument, ListParams, ListQueryDoc, PathId, StrictJson};
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::collection;
use crate::{
    domain::parse_flexible_id,
    error::{Error, Result},
    extract::Writer,
    state::AppState,
    store::{
        Tenant, Write,
        authentications::{self, AuthenticationFilter},
        endpoints::{self, EndpointFields, EndpointRow},
    },
    wire::{
        authentications::Authentication,
        endpoints::{Endpoint, EndpointCreateRequest, EndpointEditRequest},
    },
};

/// The source an endpoint is created for, with sources-api-go's messages.
pub(crate) fn endpoint_source(raw: Option<&Value>) -> Result<i64> {
    let source_id = raw
        .and_then(parse_flexible_id)
        .ok_or_else(|| Error::validation("the provided source ID is not valid"))?;
    if source_id < 1 {
        return Err(Error::validation("invalid source id"));
    }
    Ok(source_id)
}

/// Checks and inserts the endpoint of a create request; shared with bulk create.
pub(crate) async fn insert(w: &mut Write<'_>, req: EndpointCreateRequest) -> Result<EndpointRow> {
    let source_id = endpoint_source(req.source_id.as_ref())?;
    let fields = EndpointFields {
        default: req.default,
        receptor_node: req.receptor_node,
        role: req.role,
        scheme: req.scheme,
        host: req.host,
        port: req.port,
        path: req.path,
        verify_ssl: req.verify_ssl,
        certificate_authority: req.certificate_authority,
        availability_status: req.availability_status,
        ..EndpointFields::default()
    };
    endpoints::insert(w, source_id, fields).await
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
    let page = endpoints::list(&state.db, &tenant, None, &params.query).await?;
    Ok(Json(collection(page, &params)))
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
    let row = endpoints::find(&state.db, &tenant, id.get()).await?;
    Ok(Json(row.into()))
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
    let mut w = Write::begin(&state.db, &tenant).await?;
    let row = insert(&mut w, req).await?;
    w.announce(Resource::Endpoint.create(), row.to_event(&tenant));
    w.commit().await?;
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
    let fields = EndpointFields {
        default: req.default,
        receptor_node: req.receptor_node,
        role: req.role,
        scheme: req.scheme,
        host: req.host,
        port: req.port,
        path: req.path,
        verify_ssl: req.verify_ssl,
        certificate_authority: req.certificate_authority,
        availability_status: req.availability_status,
        availability_status_error: req.availability_status_error,
        last_checked_at: req.last_checked_at,
        last_available_at: req.last_available_at,
    };
    let mut w = Write::begin(&state.db, &tenant).await?;
    let row = endpoints::update(&mut w, id.get(), fields).await?;
    w.commit().await?;
    Ok(Json(row.into()))
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
    let mut w = Write::begin(&state.db, &tenant).await?;
    endpoints::delete(&mut w, id.get()).await?;
    w.commit().await?;
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
    endpoints::find(&state.db, &tenant, id.get()).await?;
    let filter = AuthenticationFilter::OfEndpoint(id.get());
    let page = authentications::list(&state.db, &tenant, filter, &params.query).await?;
    Ok(Json(collection(page, &params)))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, edit, delete))
        .routes(routes!(list_authentications))
}
