//! Tenant secrets: credentials not tied to a source, owned by the user who created them when a
//! user is known. Passwords are encrypted like authentications'; creating and editing a secret
//! announces nothing, as in sources-api-go.

use axum::{Json, extract::State, http::StatusCode};
use keel_db::{Column, Scope, Table};
use keel_sources_http::{Collection, ErrorDocument, ListParams, ListQueryDoc, PathId, StrictJson};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use keel_crypto::SecretBox;

use crate::{
    error::{Error, Result, constraint},
    state::AppState,
    tenant::{Tenant, Writer},
    wire,
};

pub static TABLE: Table = Table {
    name: "secrets",
    columns: &[
        Column::int("id"),
        Column::text("name"),
        Column::text("authtype"),
        Column::text("username"),
        Column::text("user_id"),
    ],
    subresources: &[],
};

const COLUMNS: &str = "t.id, t.user_id, t.name, t.authtype, t.username, t.extra";

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct SecretRow {
    pub id: i64,
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub authtype: Option<String>,
    pub username: Option<String>,
    pub extra: Option<Value>,
}

/// A secret; its password is never returned here.
#[derive(Debug, Serialize, ToSchema)]
pub struct Secret {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub authtype: String,
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

impl From<SecretRow> for Secret {
    fn from(r: SecretRow) -> Self {
        Self {
            id: wire::id(r.id),
            name: wire::non_empty(r.name),
            authtype: r.authtype.unwrap_or_default(),
            username: r.username.unwrap_or_default(),
            extra: r.extra.filter(|e| !e.is_null()),
            user_id: r.user_id,
        }
    }
}

/// Create or edit a secret.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRequest {
    pub name: Option<String>,
    pub authtype: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub extra: Option<Value>,
}

async fn fetch(
    state: &AppState,
    scopes: Vec<Scope>,
    params: &ListParams,
) -> Result<Collection<Secret>> {
    super::collection::<SecretRow, Secret>(state, &TABLE, COLUMNS, scopes, params).await
}

pub(crate) async fn find(conn: &mut PgConnection, tenant: &Tenant, id: i64) -> Result<SecretRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM secrets t WHERE t.id = $1 AND t.tenant_id = $2"
    )))
    .bind(id)
    .bind(tenant.id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| Error::not_found("secret"))
}

fn name_errors(e: sqlx::Error, name: Option<&str>) -> Error {
    match constraint(&e) {
        Some("secrets_tenant_name_key") => Error::validation(format_args!(
            "secret name {} exists in current tenant",
            name.unwrap_or_default()
        )),
        _ => e.into(),
    }
}

fn check_name(name: Option<&str>) -> Result<()> {
    if name == Some("") {
        return Err(Error::validation("secret name have to be populated"));
    }
    Ok(())
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
    fetch(
        &state,
        vec![Scope::eq("t.tenant_id = ", tenant.id)],
        &params,
    )
    .await
    .map(Json)
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
    let mut conn = state.db.acquire().await?;
    find(&mut conn, &tenant, id.get())
        .await
        .map(|r| Json(r.into()))
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
    check_name(req.name.as_deref())?;
    let sealed = req
        .password
        .as_deref()
        .map(|p| state.secrets.seal(p, &tenant.id.to_be_bytes()));
    let row: SecretRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO secrets AS t (tenant_id, user_id, name, authtype, username, password_encrypted, extra) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    )))
    .bind(tenant.id)
    .bind(&tenant.identity.user_id)
    .bind(&req.name)
    .bind(&req.authtype)
    .bind(&req.username)
    .bind(&sealed)
    .bind(&req.extra)
    .fetch_one(&state.db)
    .await
    .map_err(|e| name_errors(e, req.name.as_deref()))?;
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
    check_name(req.name.as_deref())?;
    let sealed = req
        .password
        .as_deref()
        .map(|p| state.secrets.seal(p, &tenant.id.to_be_bytes()));
    let row: Option<SecretRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE secrets AS t SET name = COALESCE($3, name), authtype = COALESCE($4, authtype), \
           username = COALESCE($5, username), password_encrypted = COALESCE($6, password_encrypted), \
           extra = COALESCE($7, extra) \
         WHERE t.id = $1 AND t.tenant_id = $2 RETURNING {COLUMNS}"
    )))
    .bind(id.get())
    .bind(tenant.id)
    .bind(&req.name)
    .bind(&req.authtype)
    .bind(&req.username)
    .bind(&sealed)
    .bind(&req.extra)
    .fetch_optional(&state.db)
    .await
    .map_err(|e| name_errors(e, req.name.as_deref()))?;
    row.map(|r| Json(r.into()))
        .ok_or_else(|| Error::not_found("secret"))
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
    let deleted = sqlx::query("DELETE FROM secrets WHERE id = $1 AND tenant_id = $2")
        .bind(id.get())
        .bind(tenant.id)
        .execute(&state.db)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::not_found("secret"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The password of a secret, for the internal API only.
pub(crate) async fn password(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    tenant_id: i64,
    id: i64,
) -> Result<Option<String>> {
    let sealed: Option<Option<Vec<u8>>> = sqlx::query_scalar(
        "SELECT password_encrypted FROM secrets WHERE id = $1 AND tenant_id = $2",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(conn)
    .await?;
    sealed
        .flatten()
        .map(|s| secrets.open(&s, &tenant_id.to_be_bytes()))
        .transpose()
        .map_err(Error::Internal)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, edit, delete))
}
