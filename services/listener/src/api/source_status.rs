//! Koku's `GET|POST /source-status/?source_id=`: the availability status of a source, and a
//! request to check it again.

use axum::{
    Json,
    body::Bytes,
    extract::{Query, State},
    http::StatusCode,
};
use keel_sources_http::Tenancy;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::org_of;
use crate::{
    domain::{StatusBody, SyncState},
    error::{Error, Result},
    state::AppState,
    store,
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SourceIdParam {
    /// The platform source id.
    source_id: Option<String>,
}

fn parse_source_id(raw: Option<&str>) -> Result<i64> {
    let raw = raw
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::bad_request("source_id is required"))?;
    raw.parse()
        .map_err(|_| Error::bad_request(format!("source_id must be an integer, not {raw:?}")))
}

/// The source of the caller's org, or 404.
async fn find(state: &AppState, tenancy: &Tenancy, source_id: i64) -> Result<store::SourceRow> {
    let org = org_of(tenancy, &state.schema_suffix)?;
    store::sources::source_of_org(&state.db, &org, source_id)
        .await?
        .ok_or_else(|| Error::not_found(format!("Source {source_id} not found")))
}

/// The status a source has, as Koku computes it: 404 while its settings are incomplete or
/// it is being deleted.
fn status_of(row: &store::SourceRow) -> Result<StatusBody> {
    let sent: Option<StatusBody> = serde_json::from_value(row.status.0.clone()).ok();
    match row.state() {
        SyncState::New | SyncState::Details | SyncState::PendingDelete => {
            Err(Error::not_found(format!(
                "Source {} is not ready for a status: its settings are incomplete or it is being deleted",
                row.source_id
            )))
        }
        SyncState::Failed => Ok(sent.unwrap_or_else(|| StatusBody {
            availability_status: "unavailable".to_owned(),
            availability_status_error: row.state_reason.clone().unwrap_or_default(),
        })),
        SyncState::Linked | SyncState::PendingUpdate => {
            Ok(sent.unwrap_or_else(StatusBody::available))
        }
        SyncState::Creating => sent.ok_or_else(|| {
            Error::not_found(format!("Source {} has no provider yet", row.source_id))
        }),
    }
}

/// The availability status of one source.
#[utoipa::path(
    get,
    path = "/source-status",
    tag = "source-status",
    operation_id = "source_status_get",
    params(SourceIdParam),
    responses(
        (status = 200, description = "The status last reported to sources-api", body = StatusBody),
        (status = 400, description = "No or no integer source_id", body = keel_sources_http::ErrorDocument),
        (status = 401, description = "No org in the identity", body = keel_sources_http::ErrorDocument),
        (status = 404, description = "Unknown source, settings incomplete, or being deleted", body = keel_sources_http::ErrorDocument),
    )
)]
async fn get_status(
    State(state): State<AppState>,
    tenancy: Tenancy,
    Query(params): Query<SourceIdParam>,
) -> Result<Json<StatusBody>> {
    let source_id = parse_source_id(params.source_id.as_deref())?;
    let row = find(&state, &tenancy, source_id).await?;
    status_of(&row).map(Json)
}

/// Checks a source again: its settings are re-read from sources-api and its status re-sent
/// when it changed. Takes `source_id` from the JSON body or the query. Any followed source
/// can be checked, including one whose operation is parked after its last attempt.
#[utoipa::path(
    post,
    path = "/source-status",
    tag = "source-status",
    operation_id = "source_status_push",
    params(SourceIdParam),
    request_body(content = Object, description = "`{\"source_id\": <id>}` (or the query parameter)", content_type = "application/json"),
    responses(
        (status = 204, description = "The check is queued"),
        (status = 400, description = "No or no integer source_id", body = keel_sources_http::ErrorDocument),
        (status = 401, description = "No org in the identity", body = keel_sources_http::ErrorDocument),
        (status = 404, description = "Unknown source", body = keel_sources_http::ErrorDocument),
    )
)]
async fn push_status(
    State(state): State<AppState>,
    tenancy: Tenancy,
    Query(params): Query<SourceIdParam>,
    body: Bytes,
) -> Result<StatusCode> {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| Error::bad_request(format!("the body is not JSON: {e}")))?;
        match &value["source_id"] {
            Value::Null => None,
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => return Err(Error::bad_request("source_id must be an integer")),
        }
    };
    let source_id = parse_source_id(from_body.as_deref().or(params.source_id.as_deref()))?;
    find(&state, &tenancy, source_id).await?;
    store::enqueue_check(&state.db, source_id).await?;
    state.wake.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_status, push_status))
}
