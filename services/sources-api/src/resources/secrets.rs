//! Tenant secrets: credentials not tied to a source. Passwords are write-only here; only the
//! internal API returns them.

use axum::{Json, extract::State, http::StatusCode};
use keel_sources_http::{ErrorDocument, PathId, StrictJson};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::{authentication::Credentials, limits},
    error::{Error, Result},
    extract::Writer,
    state::AppState,
    store::secrets,
    wire::secrets::{Secret, SecretCreateRequest, SecretEditRequest},
};

/// A secret sent to create or edit; its name may be left out but not empty.
fn checked(credentials: Credentials) -> Result<Credentials> {
    if credentials.name.as_deref() == Some("") {
        return Err(Error::validation("secret name have to be populated"));
    }
    limits::check(&credentials.limits()).map_err(Error::validation)?;
    Ok(credentials)
}

tenant_list! {
    /// List the tenant's shared secrets and the caller's own.
    list: "/secrets", "secrets", Secret, secrets::list
}

tenant_get! {
    /// Get a secret (without its password).
    get: "/secrets/{id}", "secrets", "Secret id", Secret, secrets::find
}

/// Create a secret.
#[utoipa::path(post, path = "/secrets", tag = "secrets", request_body = SecretCreateRequest,
    security(("psk" = [])),
    responses((status = 201, body = Secret), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<SecretCreateRequest>,
) -> Result<(StatusCode, Json<Secret>)> {
    let credentials = checked(req.credentials)?;
    let row = secrets::insert(
        &state.db,
        &state.secrets,
        &tenant,
        &credentials,
        req.user_scoped,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Edit a secret.
#[utoipa::path(patch, path = "/secrets/{id}", tag = "secrets", request_body = SecretEditRequest,
    params(("id" = String, Path, description = "Secret id")), security(("psk" = [])),
    responses((status = 200, body = Secret), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn edit(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<SecretEditRequest>,
) -> Result<Json<Secret>> {
    let edit = checked(req.credentials)?;
    let row = secrets::update(&state.db, &state.secrets, &tenant, id.get(), &edit).await?;
    Ok(Json(row.into()))
}

/// Delete a secret.
#[utoipa::path(delete, path = "/secrets/{id}", tag = "secrets",
    params(("id" = String, Path, description = "Secret id")), security(("psk" = [])),
    responses((status = 204), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn delete(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
) -> Result<StatusCode> {
    secrets::delete(&state.db, &tenant, id.get()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, edit, delete))
}
