//! `GET /providers/`: the caller's cost-management providers.

use axum::{
    Json,
    extract::{Query, State},
};
use chrono::{DateTime, Utc};
use keel_sources_http::Tenancy;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{Page, PageParams, org_of};
use crate::{error::Result, secrets, state::AppState, store};

#[derive(Debug, Serialize, ToSchema)]
pub struct Provider {
    pub uuid: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    #[schema(example = "AWS")]
    pub ty: String,
    pub active: bool,
    pub paused: bool,
    pub setup_complete: bool,
    pub created_timestamp: DateTime<Utc>,
    /// The platform source this provider was made from.
    pub source_id: Option<i64>,
    /// `{"credentials": {...}}` without secrets.
    #[schema(value_type = Object)]
    pub authentication: Value,
    /// `{"data_source": {...}}`.
    #[schema(value_type = Object)]
    pub billing_source: Value,
}

/// The providers of the caller's org, by creation time.
#[utoipa::path(
    get,
    path = "/providers",
    tag = "providers",
    operation_id = "providers_list",
    params(PageParams),
    responses(
        (status = 200, description = "Providers", body = inline(Page<Provider>)),
        (status = 400, description = "Bad paging parameters", body = keel_sources_http::ErrorDocument),
        (status = 401, description = "No org in the identity", body = keel_sources_http::ErrorDocument),
    )
)]
async fn list(
    State(state): State<AppState>,
    tenancy: Tenancy,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<Provider>>> {
    let (limit, offset) = params.parse()?;
    let org = org_of(&tenancy, &state.schema_suffix)?;
    let (rows, count) = store::read::providers(&state.db, &org, limit, offset).await?;
    let data = rows
        .into_iter()
        .map(|r| Provider {
            uuid: r.uuid,
            name: r.name,
            ty: r.ty,
            active: r.active,
            paused: r.paused,
            setup_complete: r.setup_complete,
            created_timestamp: r.created_timestamp,
            source_id: r.source_id,
            authentication: json!({
                "credentials": r.credentials.0.as_object().map(secrets::redact).unwrap_or_default()
            }),
            billing_source: json!({ "data_source": r.data_source.0 }),
        })
        .collect();
    Ok(Json(Page::new("/providers/", data, count, limit, offset)))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}
