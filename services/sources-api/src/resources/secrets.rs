//! Tenant secrets: credentials not tied to a source. Passwords are write-only here; only the
//! internal API returns them.

use axum::{Json, extract::State, http::StatusCode};
use keel_sources_http::{Collection, ErrorDocument, ListParams, ListQueryDoc, PathId, StrictJson};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::collection;
use crate::{
    error::{Error, Result},
    extract::Writer,
    state::AppState,
    store::{
        Tenant,
        secrets::{self, SecretFields},
    },
    wire::secrets::{Secret, SecretRequest},
};

fn fields(req: SecretRequest) -> Result<SecretFields> {
    if req.name.as_deref() == Some("") {
        return Err(Error::validation("secret name have to be populated"));
    }
    Ok(SecretFields {
        name: req.name,
        authtype: req.authtype,
        username: req.username,
        password: req.password,
        extra: req.extra,
    })
}

/// List the tenant's secrets.
#[utoipa::path(get, path = "/secrets", tag = "secrets", params(ListQueryDoc),
    responses((status = 200, body = Collection<Secret>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Secret>>> {
    let page = secrets::list(&state.db, &tenant, &params.query).await?;
    Ok(Json(collection(page, &params)))
}

/// Get a secret (without its password).
#[utoipa::path(get, path = "/secrets/{id}", tag = "secrets",
    params(("id" = String, Path, description = "Secret id")),
    responses((status = 200, body = Secret), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn get(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<Json<Secret>> {
    let row = secrets::find(&state.db, &tenant, id.get()).await?;
    Ok(Json(row.into()))
}

/// Create a secret.
#[utoipa::path(post, path = "/secrets", tag = "secrets", request_body = SecretRequest,
    security(("psk" = [])),
    responses((status = 201, body = Secret), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<SecretRequest>,
) -> Result<(StatusCode, Json<Secret>)> {
    let row = secrets::insert(&state.db, &state.secrets, &tenant, &fields(req)?).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Edit a secret.
#[utoipa::path(patch, path = "/secrets/{id}", tag = "secrets", request_body = SecretRequest,
    params(("id" = String, Path, description = "Secret id")), security(("psk" = [])),
    responses((status = 200, body = Secret), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn edit(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<SecretRequest>,
) -> Result<Json<Secret>> {
    let edit = fields(req)?;
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
