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

use super::{Page, PageParams, org_of, total};
use crate::{error::Result, secrets, state::AppState};

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

#[derive(sqlx::FromRow)]
struct Row {
    uuid: Uuid,
    name: String,
    #[sqlx(rename = "type")]
    ty: String,
    active: bool,
    paused: bool,
    setup_complete: bool,
    created_timestamp: DateTime<Utc>,
    credentials: sqlx::types::Json<Value>,
    data_source: sqlx::types::Json<Value>,
    source_id: Option<i64>,
    total: i64,
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
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT p.uuid, p.name, p.type, p.active, p.paused, p.setup_complete, p.created_timestamp, \
           a.credentials, b.data_source, s.source_id, count(*) OVER () AS total \
         FROM api_provider p \
         JOIN api_customer c ON c.id = p.customer_id \
         JOIN api_providerauthentication a ON a.id = p.authentication_id \
         JOIN api_providerbillingsource b ON b.id = p.billing_source_id \
         LEFT JOIN api_sources s ON s.provider_id = p.uuid \
         WHERE c.org_id = $1 ORDER BY p.created_timestamp, p.uuid LIMIT $2 OFFSET $3",
    )
    .bind(&org)
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.db)
    .await?;
    let count = total(
        rows.first().map(|r| r.total),
        sqlx::query_scalar(
            "SELECT count(*) FROM api_provider p JOIN api_customer c ON c.id = p.customer_id WHERE c.org_id = $1",
        )
        .bind(&org)
        .fetch_one(&state.db),
    )
    .await?;
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
