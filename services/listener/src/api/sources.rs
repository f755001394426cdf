//! `GET /sources/`: every source the listener follows for the caller's org, with its sync
//! state, provider and queued operation.

use axum::{
    Json,
    extract::{Query, State},
};
use chrono::{DateTime, Utc};
use keel_sources_http::Tenancy;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{Page, PageParams, org_of};
use crate::{error::Result, secrets, state::AppState, store};

/// The queued or parked operation of a source.
#[derive(Debug, Serialize, ToSchema)]
pub struct Operation {
    #[schema(example = "create")]
    pub kind: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// Set when the operation ran out of attempts; it waits for the next change or a
    /// `POST /source-status/`.
    pub parked_at: Option<DateTime<Utc>>,
    pub run_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncedSource {
    pub source_id: i64,
    pub source_uuid: Option<Uuid>,
    pub name: Option<String>,
    /// `AWS`, `AWS-local`, `Azure`, `Azure-local`, `GCP`, `GCP-local`, `OCP`, or empty while unknown.
    pub source_type: String,
    /// new, details, creating, linked, failed, pending_update or pending_delete.
    #[schema(example = "linked")]
    pub state: String,
    /// Why the source is `failed`.
    pub state_reason: Option<String>,
    /// The provider's uuid once linked.
    pub koku_uuid: Option<String>,
    pub paused: bool,
    /// `{"credentials": {...}}` without secrets.
    #[schema(value_type = Object)]
    pub authentication: Value,
    /// `{"data_source": {...}}`.
    #[schema(value_type = Object)]
    pub billing_source: Value,
    /// The availability status last sent to sources-api.
    #[schema(value_type = Object)]
    pub status: Value,
    pub operation: Option<Operation>,
    pub created_timestamp: DateTime<Utc>,
    pub linked_timestamp: Option<DateTime<Utc>>,
}

fn redacted(authentication: Value) -> Value {
    match authentication.get("credentials").and_then(Value::as_object) {
        Some(c) => serde_json::json!({ "credentials": secrets::redact(c) }),
        None => authentication,
    }
}

/// The sources of the caller's org, by source id.
#[utoipa::path(
    get,
    path = "/sources",
    tag = "sources",
    operation_id = "sources_list",
    params(PageParams),
    responses(
        (status = 200, description = "Sources with their sync state", body = inline(Page<SyncedSource>)),
        (status = 400, description = "Bad paging parameters", body = keel_sources_http::ErrorDocument),
        (status = 401, description = "No org in the identity", body = keel_sources_http::ErrorDocument),
    )
)]
async fn list(
    State(state): State<AppState>,
    tenancy: Tenancy,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<SyncedSource>>> {
    let (limit, offset) = params.parse()?;
    let org = org_of(&tenancy, &state.schema_suffix)?;
    let (rows, count) = store::read::sources(&state.db, &org, limit, offset).await?;
    let data = rows
        .into_iter()
        .map(|r| SyncedSource {
            source_id: r.source_id,
            source_uuid: r.source_uuid,
            name: r.name,
            source_type: r.source_type,
            state: r.state,
            state_reason: r.state_reason,
            koku_uuid: r.koku_uuid,
            paused: r.paused,
            authentication: redacted(r.authentication.0),
            billing_source: r.billing_source.0,
            status: r.status.0,
            operation: r.kind.map(|kind| Operation {
                kind,
                attempts: r.attempts.unwrap_or(0),
                last_error: r.last_error,
                parked_at: r.parked_at,
                run_at: r.run_at.unwrap_or(r.created_timestamp),
            }),
            created_timestamp: r.created_timestamp,
            linked_timestamp: r.linked_timestamp,
        })
        .collect();
    Ok(Json(Page::new("/sources/", data, count, limit, offset)))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}
