use axum::{Json, extract::State, http::StatusCode};
use keel_domain::sources_events::Resource;
use keel_sources_http::{ErrorDocument, PathId, StrictJson};
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::{limits, parse_flexible_id},
    error::{Error, Result},
    extract::Writer,
    state::AppState,
    store::{
        Write,
        authentications::{self, AuthenticationFilter},
        endpoints::{self, EndpointRow},
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
    limits::check(&req.settings.limits()).map_err(Error::validation)?;
    let source_id = endpoint_source(req.source_id.as_ref())?;
    endpoints::insert(
        w,
        source_id,
        req.settings,
        req.availability_status.as_deref(),
    )
    .await
}

tenant_list! {
    /// List endpoints.
    list: "/endpoints", "endpoints", Endpoint, endpoints::list, None
}

tenant_get! {
    /// Get an endpoint.
    get: "/endpoints/{id}", "endpoints", "Endpoint id", Endpoint, endpoints::find
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
    limits::check(&req.settings.limits()).map_err(Error::bad_request)?;
    let mut w = Write::begin(&state.db, &tenant).await?;
    let row = endpoints::update(&mut w, id.get(), req.settings, req.status).await?;
    w.commit().await?;
    Ok(Json(row.into()))
}

tenant_delete! {
    /// Delete an endpoint and its authentications.
    delete: "/endpoints/{id}", "endpoints", "Endpoint id", endpoints::delete
}

tenant_sub_list! {
    /// List an endpoint's authentications.
    list_authentications: "/endpoints/{endpoint_id}/authentications", "endpoints",
        "endpoint_id", "Endpoint id", Authentication,
        |db, tenant, id| endpoints::find(db, tenant, id) => authentications::list,
        AuthenticationFilter::OfEndpoint(id)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, edit, delete))
        .routes(routes!(list_authentications))
}
