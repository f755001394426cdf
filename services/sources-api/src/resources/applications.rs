use axum::{Json, body::Bytes, extract::State, http::StatusCode};
use chrono::Utc;
use keel_domain::sources_events::Resource;
use keel_sources_http::{Collection, ErrorDocument, ListParams, PathId, StrictJson, decode_strict};
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::collection;
use crate::{
    domain::{
        INVALID_STATUS, PAUSED_INVALID_STATUS, go_value, limits, parse_flexible_id,
        status::any_status,
    },
    error::{Error, Result},
    extract::Writer,
    state::AppState,
    store::{
        Tenant, Write,
        applications::{self, ApplicationEdit, ApplicationRow, NewApplication},
        authentications::{self, AuthenticationFilter},
    },
    wire::{
        applications::{
            Application, ApplicationCreateRequest, ApplicationEditRequest,
            PausedApplicationEditRequest,
        },
        authentications::Authentication,
    },
};

tenant_list! {
    /// List applications.
    list: "/applications", "applications", Application, applications::list, None
}

tenant_get! {
    /// Get an application.
    get: "/applications/{id}", "applications", "Application id", Application, applications::find
}

/// The parsed ids of a create request, with sources-api-go's messages.
fn parse_create(req: &ApplicationCreateRequest) -> Result<(i64, i64)> {
    let source = req
        .source_id
        .as_ref()
        .filter(|v| !v.is_null())
        .ok_or_else(|| Error::validation("missing required parameter source_id"))?;
    let app_type = req
        .application_type_id
        .as_ref()
        .filter(|v| !v.is_null())
        .ok_or_else(|| Error::validation("missing required parameter application_type_id"))?;
    let app_type_id = parse_flexible_id(app_type).ok_or_else(|| {
        Error::validation(format_args!(
            "invalid application type id {}",
            go_value(app_type)
        ))
    })?;
    let source_id = parse_flexible_id(source)
        .ok_or_else(|| Error::validation(format_args!("invalid source id {}", go_value(source))))?;
    Ok((source_id, app_type_id))
}

/// Attach an application to a source.
#[utoipa::path(post, path = "/applications", tag = "applications",
    request_body = ApplicationCreateRequest, security(("psk" = [])),
    responses((status = 201, body = Application), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<ApplicationCreateRequest>,
) -> Result<(StatusCode, Json<Application>)> {
    let (source_id, application_type_id) = parse_create(&req)?;
    limits::check(&req.limits()).map_err(Error::validation)?;
    let mut w = Write::begin(&state.db, &tenant).await?;
    let new = NewApplication {
        source_id,
        application_type_id,
        extra: req.extra,
        availability_status: None,
    };
    let row = applications::insert(&mut w, new, || {
        Error::validation("source type is not compatible with this application type")
    })
    .await?;
    w.announce(Resource::Application.create(), row.to_event(&tenant));
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Edit an application.
#[utoipa::path(patch, path = "/applications/{id}", tag = "applications",
    request_body = ApplicationEditRequest,
    params(("id" = String, Path, description = "Application id")), security(("psk" = [])),
    responses((status = 200, body = Application), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn edit(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
    body: Bytes,
) -> Result<Json<Application>> {
    // Read, then written in one statement that fails if the row changed meanwhile.
    for _ in 0..OPTIMISTIC_ATTEMPTS {
        let current = applications::find_versioned(&state.db, &tenant, id.get()).await?;
        let edit = parse_edit(&body, &current.row)?;
        if let Some(row) =
            applications::update_announced(&state.db, &tenant, &current, &edit).await?
        {
            return Ok(Json(row.into()));
        }
    }
    // Edited by others at every attempt: in a transaction, with the rows locked.
    let mut w = Write::begin(&state.db, &tenant).await?;
    let current = applications::find_for_edit(&mut w, id.get()).await?;
    let edit = parse_edit(&body, &current)?;
    let row = applications::update(&mut w, &current, &edit).await?;
    w.commit().await?;
    Ok(Json(row.into()))
}

/// Optimistic attempts of an edit before it locks the rows.
const OPTIMISTIC_ATTEMPTS: usize = 3;

/// The edit a body asks of `current`: a paused application accepts only its status fields.
fn parse_edit(body: &[u8], current: &ApplicationRow) -> Result<ApplicationEdit> {
    let (extra, status) = if current.paused_at.is_some() {
        let req: PausedApplicationEditRequest = decode_strict(body)?;
        (None, req.status.parse(any_status(PAUSED_INVALID_STATUS)))
    } else {
        let req: ApplicationEditRequest = decode_strict(body)?;
        limits::check(&req.limits()).map_err(Error::bad_request)?;
        let invalid = format!("invalid payload: {INVALID_STATUS}");
        (req.extra, req.status.parse(any_status(&invalid)))
    };
    let report = status.map_err(Error::bad_request)?;
    // `_superkey` in extra is the superkey worker's data, kept apart from the settings.
    let (extra, superkey_data) = match extra {
        Some(Value::Object(mut map)) => {
            let superkey = map.remove("_superkey");
            (Some(Value::Object(map)), superkey)
        }
        Some(Value::Null) | None => (None, None),
        Some(_) => {
            return Err(Error::bad_request(
                "invalid payload: extra must be an object",
            ));
        }
    };
    Ok(ApplicationEdit {
        extra,
        superkey_data,
        report: report.stamped(Utc::now()),
    })
}

tenant_delete! {
    /// Delete an application, its links to authentications and its authentications.
    delete: "/applications/{id}", "applications", "Application id", applications::delete
}

tenant_pause! {
    /// Pause an application: it then accepts only status updates.
    pause: "/applications/{id}/pause", "applications", "id", "Application id",
        applications::pause, true
}

tenant_pause! {
    /// Resume a paused application.
    unpause: "/applications/{id}/unpause", "applications", "id", "Application id",
        applications::pause, false
}

/// List an application's authentications (always the first 100, as sources-api-go does).
#[utoipa::path(get, path = "/applications/{application_id}/authentications", tag = "applications",
    params(("application_id" = String, Path, description = "Application id")),
    responses((status = 200, body = Collection<Authentication>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_authentications(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Authentication>>> {
    applications::find(&state.db, &tenant, id.get()).await?;
    let params = params.fixed_first_page();
    let filter = AuthenticationFilter::OfApplication(id.get());
    let page = authentications::list(&state.db, &tenant, filter, &params.query).await?;
    Ok(Json(collection(page, &params)))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, edit, delete))
        .routes(routes!(pause))
        .routes(routes!(unpause))
        .routes(routes!(list_authentications))
}
