//! `GET /ingestion/providers[/{uuid}]`: per provider of the caller's org, the last poll,
//! whether it is set up, its last failure and its manifests with their files' progress.

use axum::{
    Json,
    extract::{Path, State},
};
use chrono::{DateTime, Utc};
use keel_sources_http::{HttpError, Tenancy};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    error::{Error, Result},
    state::AppState,
    store::{
        providers::{self, Provider},
        read::{self, ManifestView},
        tenant::Tenant,
    },
};

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderIngestion {
    pub uuid: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub active: bool,
    pub paused: bool,
    pub setup_complete: bool,
    /// When reports were last looked for.
    pub polling_timestamp: Option<DateTime<Utc>>,
    /// When loaded data last changed.
    pub data_updated_timestamp: Option<DateTime<Utc>>,
    pub last_failure: Option<Failure>,
    /// Newest billing month first (absent from the list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Vec<ManifestView>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Failure {
    pub at: DateTime<Utc>,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderList {
    pub data: Vec<ProviderIngestion>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(detail))
}

/// The ingestion state of the caller's providers.
#[utoipa::path(
    get,
    path = "/api/cost-management/v1/ingestion/providers",
    tag = "ingestion",
    operation_id = "ingestion_providers_list",
    responses(
        (status = 200, description = "Providers", body = ProviderList),
        (status = 401, description = "No org in the identity", body = keel_sources_http::ErrorDocument),
    )
)]
async fn list(State(state): State<AppState>, tenancy: Tenancy) -> Result<Json<ProviderList>> {
    let Some(schema) = schema_of(&state, &tenancy).await? else {
        return Ok(Json(ProviderList { data: Vec::new() }));
    };
    let mut data = Vec::new();
    for p in providers::list_in_schema(&state.db, &schema).await? {
        data.push(view(&state, p, None).await?);
    }
    Ok(Json(ProviderList { data }))
}

/// One provider's ingestion state with its manifests.
#[utoipa::path(
    get,
    path = "/api/cost-management/v1/ingestion/providers/{uuid}",
    tag = "ingestion",
    operation_id = "ingestion_provider_show",
    params(("uuid" = Uuid, Path, description = "The provider's uuid")),
    responses(
        (status = 200, description = "The provider", body = ProviderIngestion),
        (status = 400, description = "Not a uuid", body = keel_sources_http::ErrorDocument),
        (status = 401, description = "No org in the identity", body = keel_sources_http::ErrorDocument),
        (status = 404, description = "No such provider in the org", body = keel_sources_http::ErrorDocument),
    )
)]
async fn detail(
    State(state): State<AppState>,
    tenancy: Tenancy,
    Path(uuid): Path<String>,
) -> Result<Json<ProviderIngestion>> {
    let uuid = Uuid::parse_str(&uuid)
        .map_err(|_| Error::Http(HttpError::bad_request(format!("{uuid:?} is not a uuid"))))?;
    let not_found = || {
        Error::Http(HttpError::new(
            http::StatusCode::NOT_FOUND,
            "no such provider",
        ))
    };
    let schema = schema_of(&state, &tenancy).await?.ok_or_else(not_found)?;
    let provider = providers::find_in_schema(&state.db, &schema, uuid)
        .await?
        .ok_or_else(not_found)?;
    let t = Tenant::new(&schema).ok_or_else(not_found)?;
    let manifests = read::manifests(&state.db, &t, uuid).await?;
    Ok(Json(view(&state, provider, Some(manifests)).await?))
}

async fn view(
    state: &AppState,
    p: Provider,
    manifests: Option<Vec<ManifestView>>,
) -> Result<ProviderIngestion> {
    let last_failure = providers::last_failure(&state.db, p.uuid)
        .await?
        .map(|(at, reason)| Failure { at, reason });
    Ok(ProviderIngestion {
        uuid: p.uuid,
        name: p.name,
        ty: p.kind,
        active: p.active,
        paused: p.paused,
        setup_complete: p.setup_complete,
        polling_timestamp: p.polling_timestamp,
        data_updated_timestamp: p.data_updated_timestamp,
        last_failure,
        manifests,
    })
}

/// The caller's tenant schema, if the org has one.
async fn schema_of(state: &AppState, tenancy: &Tenancy) -> Result<Option<String>> {
    let org = tenancy
        .0
        .org_id
        .clone()
        .filter(|o| !o.is_empty())
        .ok_or_else(|| Error::Http(HttpError::unauthorized("the identity names no org_id")))?;
    Ok(crate::store::tenant::schema_of_org(&state.db, &org).await?)
}
