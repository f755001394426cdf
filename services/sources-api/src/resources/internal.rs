//! The internal API (`/internal/v1.0`, `/internal/v2.0`): what other platform services read and
//! clients must not. Every route needs a pre-shared key; none is in the public OpenAPI document.

use axum::{
    Json, Router,
    extract::{FromRequestParts, Query, State},
    http::{HeaderMap, request::Parts},
    routing::get,
};
use keel_sources_http::{AuthPolicy, Collection, ListParams, PathId};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    state::AppState,
    store::{Tenant, authentications, secrets, sources},
    wire::{authentications::InternalAuthentication, secrets::Secret},
};

pub const PREFIXES: [&str; 2] = ["/internal/v1.0", "/internal/v2.0"];

/// A caller holding a listed PSK, whatever `BYPASS_RBAC` says ([`AuthPolicy::check_internal`]);
/// tenancy is not required (the sources list crosses tenants).
struct InternalCaller;

impl FromRequestParts<AppState> for InternalCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        AuthPolicy::check_internal(&state.auth, &parts.headers)?;
        Ok(Self)
    }
}

/// The same caller, naming its tenant.
struct InternalTenant(Tenant);

impl FromRequestParts<AppState> for InternalTenant {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        InternalCaller::from_request_parts(parts, state).await?;
        Tenant::from_request_parts(parts, state).await.map(Self)
    }
}

#[derive(Debug, Deserialize)]
struct ExposeQuery {
    #[serde(rename = "expose_encrypted_attribute[]", default)]
    expose: Option<String>,
}

/// GET /authentications/{id}: with `expose_encrypted_attribute[]=password`, the decrypted
/// password too (what Koku reads for Azure and AWS credentials).
async fn get_authentication(
    PathId(id): PathId,
    State(state): State<AppState>,
    InternalTenant(tenant): InternalTenant,
    Query(query): Query<ExposeQuery>,
) -> Result<Json<InternalAuthentication>> {
    let expose = query.expose.as_deref() == Some("password");
    let (row, password) =
        authentications::find_with_password(&state.db, &state.secrets, &tenant, id.get(), expose)
            .await?;
    tracing::info!(
        authentication_id = row.id,
        exposed = password.is_some(),
        "internal authentication read"
    );
    Ok(Json(InternalAuthentication::new(row, password)))
}

/// A secret with its password (no `Debug`: nothing prints it).
#[derive(Serialize)]
struct InternalSecret {
    #[serde(flatten)]
    secret: Secret,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

/// GET /secrets/{id}: the secret with its decrypted password.
async fn get_secret(
    PathId(id): PathId,
    State(state): State<AppState>,
    InternalTenant(tenant): InternalTenant,
) -> Result<Json<InternalSecret>> {
    let (row, password) =
        secrets::find_with_password(&state.db, &state.secrets, &tenant, id.get()).await?;
    Ok(Json(InternalSecret {
        secret: row.into(),
        password,
    }))
}

/// The compact cross-tenant view of a source.
#[derive(Debug, Serialize)]
struct InternalSource {
    id: String,
    availability_status: String,
    tenant: String,
    org_id: String,
}

/// GET /sources: every tenant's sources; `x-rh-sources-skip-empty-sources: true` leaves out
/// sources without applications.
async fn list_sources(
    State(state): State<AppState>,
    _caller: InternalCaller,
    headers: HeaderMap,
    params: ListParams,
) -> Result<Json<Collection<InternalSource>>> {
    let skip_empty = headers
        .get("x-rh-sources-skip-empty-sources")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    let page = sources::list_across_tenants(&state.db, skip_empty, &params.query).await?;
    let data = page
        .rows
        .into_iter()
        .map(|r| InternalSource {
            id: r.id.to_string(),
            availability_status: r.availability_status,
            tenant: r.tenant.unwrap_or_default(),
            org_id: r.org_id.unwrap_or_default(),
        })
        .collect();
    Ok(Json(Collection::new(data, page.count, &params)))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/authentications/{id}", get(get_authentication))
        .route("/sources", get(list_sources))
        .route("/secrets/{id}", get(get_secret))
}
