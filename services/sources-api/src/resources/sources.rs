use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use keel_sources_http::{
    Collection, ErrorDocument, ListParams, ListQueryDoc, PathId, StrictJson, decode_strict,
};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::collection;
use crate::{
    availability,
    domain::{
        limits,
        source::{NewSource, NewSourceFields, SourceEdit, SourceEditFields},
    },
    error::{Error, Result},
    extract::Writer,
    state::AppState,
    store::{
        Tenant, Write, applications, authentications,
        authentications::AuthenticationFilter,
        catalogue, endpoints, rhc_connections,
        sources::{self, SourceFilter},
    },
    wire::{
        applications::Application,
        authentications::Authentication,
        catalogue::ApplicationType,
        endpoints::Endpoint,
        rhc_connections::RhcConnection,
        sources::{PausedSourceEditRequest, Source, SourceCreateRequest, SourceEditRequest},
    },
};

/// A create request checked: the source to insert; shared with bulk create.
pub(crate) fn new_source(req: SourceCreateRequest) -> Result<NewSource> {
    limits::check(&req.limits()).map_err(Error::validation)?;
    NewSource::parse(NewSourceFields {
        name: req.name.as_deref(),
        version: req.version,
        imported: req.imported,
        source_ref: req.source_ref,
        app_creation_workflow: req.app_creation_workflow.as_deref(),
        availability_status: req.availability_status.as_deref(),
        source_type_id: req.source_type_id.as_ref(),
    })
    .map_err(Error::validation)
}

tenant_list! {
    /// List sources.
    list: "/sources", "sources", Source, sources::list, SourceFilter::All
}

tenant_get! {
    /// Get a source.
    get: "/sources/{id}", "sources", "Source id", Source, sources::find
}

/// Create a source.
#[utoipa::path(post, path = "/sources", tag = "sources", request_body = SourceCreateRequest,
    security(("psk" = [])),
    responses((status = 201, body = Source), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<SourceCreateRequest>,
) -> Result<(StatusCode, Json<Source>)> {
    let source = new_source(req)?;
    let row = state.creates.create(tenant, source).await?;
    tracing::info!(source_id = row.id, "source created");
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Edit a source.
#[utoipa::path(patch, path = "/sources/{id}", tag = "sources", request_body = SourceEditRequest,
    params(("id" = String, Path, description = "Source id")),
    security(("psk" = [])),
    responses((status = 200, body = Source), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn edit(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
    body: Bytes,
) -> Result<Json<Source>> {
    let mut w = Write::begin(&state.db, &tenant).await?;
    let current = sources::find_in(&mut w, id.get()).await?;
    // A paused source accepts only its status fields.
    let edit = if current.paused_at.is_some() {
        let req: PausedSourceEditRequest = decode_strict(&body)?;
        SourceEdit::parse_paused(SourceEditFields {
            availability_status: req.availability_status,
            last_checked_at: req.last_checked_at,
            last_available_at: req.last_available_at,
            ..Default::default()
        })
    } else {
        let req: SourceEditRequest = decode_strict(&body)?;
        limits::check(&req.limits()).map_err(Error::bad_request)?;
        SourceEdit::parse(SourceEditFields {
            name: req.name,
            version: req.version,
            imported: req.imported,
            source_ref: req.source_ref,
            availability_status: req.availability_status,
            last_checked_at: req.last_checked_at,
            last_available_at: req.last_available_at,
        })
    }
    .map_err(Error::bad_request)?;
    let row = sources::update(&mut w, id.get(), &edit).await?;
    w.commit().await?;
    Ok(Json(row.into()))
}

tenant_delete! {
    /// Delete a source with its applications, endpoints and authentications.
    delete: "/sources/{id}", "sources", "Source id", sources::delete
}

tenant_pause! {
    /// Pause a source and its applications: they then accept only status updates.
    pause: "/sources/{source_id}/pause", "sources", "source_id", "Source id",
        sources::set_paused, true
}

tenant_pause! {
    /// Resume a paused source and its applications.
    unpause: "/sources/{source_id}/unpause", "sources", "source_id", "Source id",
        sources::set_paused, false
}

/// Ask the source's applications to check it: answers 202 at once; each application whose
/// type has `<APP>_AVAILABILITY_CHECK_URL` is called in the background.
#[utoipa::path(post, path = "/sources/{source_id}/check_availability", tag = "sources",
    params(("source_id" = String, Path, description = "Source id")),
    responses((status = 202, description = "Checks requested", body = Object),
        (status = 400, body = ErrorDocument), (status = 401, body = ErrorDocument),
        (status = 404, body = ErrorDocument)))]
async fn check_availability(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>)> {
    sources::ensure(&state.db, &tenant, id.get()).await?;
    let skip_cost = headers
        .get("x-rh-sources-skip-empty-sources")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    availability::request_checks(&state, &tenant, id.get(), skip_cost).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({}))))
}

tenant_sub_list! {
    /// List a source's applications.
    list_applications: "/sources/{source_id}/applications", "sources", "source_id",
        "Source id", Application,
        |db, tenant, id| sources::ensure(db, tenant, id) => applications::list, Some(id)
}

tenant_sub_list! {
    /// List a source's endpoints.
    list_endpoints: "/sources/{source_id}/endpoints", "sources", "source_id", "Source id",
        Endpoint,
        |db, tenant, id| sources::ensure(db, tenant, id) => endpoints::list, Some(id)
}

tenant_sub_list! {
    /// List a source's Red Hat Connector connections.
    list_rhc_connections: "/sources/{source_id}/rhc_connections", "sources", "source_id",
        "Source id", RhcConnection,
        |db, tenant, id| sources::ensure(db, tenant, id) => rhc_connections::list, Some(id)
}

/// List every authentication of a source (always the first 100, as sources-api-go does).
#[utoipa::path(get, path = "/sources/{source_id}/authentications", tag = "sources",
    params(("source_id" = String, Path, description = "Source id")),
    responses((status = 200, body = Collection<Authentication>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_authentications(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Authentication>>> {
    sources::ensure(&state.db, &tenant, id.get()).await?;
    let params = params.fixed_first_page();
    let filter = AuthenticationFilter::OfSource(id.get());
    let page = authentications::list(&state.db, &tenant, filter, &params.query).await?;
    Ok(Json(collection(page, &params)))
}

/// List the application types of a source's applications.
#[utoipa::path(get, path = "/sources/{source_id}/application_types", tag = "sources",
    params(("source_id" = String, Path, description = "Source id"), ListQueryDoc),
    responses((status = 200, body = Collection<ApplicationType>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_application_types(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<ApplicationType>>> {
    let used = Some((&tenant, id.get()));
    let page = catalogue::application_types(&state.db, used, &params.query).await?;
    Ok(Json(collection(page, &params)))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, edit, delete))
        .routes(routes!(list_application_types))
        .routes(routes!(list_applications))
        .routes(routes!(list_endpoints))
        .routes(routes!(list_authentications))
        .routes(routes!(list_rhc_connections))
        .routes(routes!(pause))
        .routes(routes!(unpause))
        .routes(routes!(check_availability))
}
