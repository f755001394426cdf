use axum::{Json, extract::State, http::StatusCode};
use keel_domain::sources_events::Resource;
use keel_sources_http::{ErrorDocument, PathId, StrictJson};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::{INVALID_STATUS, authentication::validate_create, limits, status::any_status},
    error::{Error, Result},
    extract::Writer,
    state::AppState,
    store::{
        Write,
        authentications::{self, AuthenticationEdit, AuthenticationFilter, NewAuthentication},
    },
    wire::authentications::{
        Authentication, AuthenticationCreateRequest, AuthenticationEditRequest,
    },
};

/// A create request checked: the store's new authentication.
pub(crate) fn new_authentication(req: AuthenticationCreateRequest) -> Result<NewAuthentication> {
    limits::check(&req.limits()).map_err(Error::bad_request)?;
    let target = validate_create(
        req.resource_type.as_deref(),
        req.resource_id.as_ref(),
        req.credentials.authtype.as_deref(),
        req.credentials.username.as_deref(),
    )
    .map_err(Error::bad_request)?;
    Ok(NewAuthentication {
        resource_type: target.resource_type.to_owned(),
        resource_id: target.resource_id,
        credentials: req.credentials,
        availability_status_error: req.availability_status_error,
    })
}

tenant_list! {
    /// List authentications.
    list: "/authentications", "authentications", Authentication, authentications::list,
        AuthenticationFilter::All
}

tenant_get! {
    /// Get an authentication (without its password).
    get: "/authentications/{id}", "authentications", "Authentication id", Authentication,
        authentications::find
}

/// Create an authentication.
#[utoipa::path(post, path = "/authentications", tag = "authentications",
    request_body = AuthenticationCreateRequest, security(("psk" = [])),
    responses((status = 201, body = Authentication), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<AuthenticationCreateRequest>,
) -> Result<(StatusCode, Json<Authentication>)> {
    let new = new_authentication(req)?;
    let mut w = Write::begin(&state.db, &tenant).await?;
    let row = authentications::insert(&mut w, &state.secrets, new).await?;
    w.announce(Resource::Authentication.create(), row.to_event(&tenant));
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Edit an authentication.
#[utoipa::path(patch, path = "/authentications/{id}", tag = "authentications",
    request_body = AuthenticationEditRequest,
    params(("id" = String, Path, description = "Authentication id")), security(("psk" = [])),
    responses((status = 200, body = Authentication), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn edit(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<AuthenticationEditRequest>,
) -> Result<Json<Authentication>> {
    limits::check(&req.credentials.limits()).map_err(Error::bad_request)?;
    let edit = AuthenticationEdit {
        credentials: req.credentials,
        report: req
            .status
            .parse(any_status(INVALID_STATUS))
            .map_err(Error::bad_request)?,
    };
    let mut w = Write::begin(&state.db, &tenant).await?;
    let row = authentications::update(&mut w, &state.secrets, id.get(), edit).await?;
    w.commit().await?;
    Ok(Json(row.into()))
}

tenant_delete! {
    /// Delete an authentication.
    delete: "/authentications/{id}", "authentications", "Authentication id",
        authentications::delete
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, edit, delete))
}
