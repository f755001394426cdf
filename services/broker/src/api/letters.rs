//! Dead letters: callbacks that exhausted their attempts, listed per namespace and sent again
//! on request (`/v1/dead-letters`).

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::provision::Accepted;
use super::{AppState, required};
use crate::{
    domain,
    error::{Error, ErrorBody, Result},
    store::callbacks,
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NamespaceQuery {
    /// Required.
    namespace: Option<String>,
}

/// A callback that exhausted its attempts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    id: String,
    deployment_id: String,
    /// The phase change it reported.
    phase: Option<String>,
    callback_url: String,
    attempts: i32,
    last_error: Option<String>,
    /// RFC 3339.
    created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterList {
    dead_letters: Vec<DeadLetter>,
    total: usize,
    namespace: String,
}

/// The namespace's dead letters, oldest first.
#[utoipa::path(
    get,
    path = "/v1/dead-letters",
    tag = "callbacks",
    params(NamespaceQuery),
    security(("bearer" = [])),
    responses((status = 200, body = DeadLetterList), (status = 400, body = ErrorBody))
)]
pub(super) async fn list(
    State(s): State<AppState>,
    Query(q): Query<NamespaceQuery>,
) -> Result<Json<DeadLetterList>> {
    let namespace = required("namespace", &q.namespace)?;
    let letters: Vec<DeadLetter> = callbacks::dead_letters(&s.db, namespace)
        .await?
        .into_iter()
        .map(|c| DeadLetter {
            // The body is what was signed and sent: its phase says which change it reported.
            phase: serde_json::from_str::<serde_json::Value>(&c.body)
                .ok()
                .and_then(|b| b["phase"].as_str().map(str::to_owned)),
            id: c.id.to_string(),
            deployment_id: c.deployment_id,
            callback_url: c.url,
            attempts: c.attempts,
            last_error: c.last_error,
            created_at: domain::callback::rfc3339(c.created_at),
        })
        .collect();
    Ok(Json(DeadLetterList {
        total: letters.len(),
        dead_letters: letters,
        namespace: namespace.to_owned(),
    }))
}

/// Queues a dead letter again with fresh attempts; it is delivered in its deployment's order.
#[utoipa::path(
    post,
    path = "/v1/dead-letters/{id}/resend",
    tag = "callbacks",
    params(("id" = String, Path, description = "The dead letter's id"), NamespaceQuery),
    security(("bearer" = [])),
    responses(
        (status = 202, body = Accepted),
        (status = 400, description = "No namespace", body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub(super) async fn resend(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> Result<(StatusCode, Json<Accepted>)> {
    let namespace = required("namespace", &q.namespace)?;
    let not_found = || {
        Error::NotFound(format!(
            "dead letter {id} not found in namespace {namespace}"
        ))
    };
    let number: i64 = id.parse().map_err(|_| not_found())?;
    if !callbacks::resend(&s.db, namespace, number).await? {
        return Err(not_found());
    }
    s.deliver.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            status: "accepted".to_owned(),
            deployment_id: None,
            message: format!("dead letter {id} queued again"),
        }),
    ))
}
