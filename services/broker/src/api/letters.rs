//! Dead letters: callbacks that exhausted their attempts, listed per namespace and sent again
//! on request (`/v1/dead-letters`).

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, required};
use crate::{
    domain,
    error::{Error, Result},
    store::callbacks,
};

#[derive(Debug, Deserialize)]
pub(super) struct NamespaceQuery {
    namespace: Option<String>,
}

pub(super) async fn list(
    State(s): State<AppState>,
    Query(q): Query<NamespaceQuery>,
) -> Result<Json<Value>> {
    let namespace = required("namespace", &q.namespace)?;
    let letters: Vec<Value> = callbacks::dead_letters(&s.db, namespace)
        .await?
        .into_iter()
        .map(|c| {
            // The body is what was signed and sent: its phase says which change it reported.
            let phase = serde_json::from_str::<Value>(&c.body)
                .ok()
                .and_then(|b| b["phase"].as_str().map(str::to_owned));
            json!({
                "id": c.id.to_string(),
                "deploymentId": c.deployment_id,
                "phase": phase,
                "callbackUrl": c.url,
                "attempts": c.attempts,
                "lastError": c.last_error,
                "createdAt": domain::callback::rfc3339(c.created_at),
            })
        })
        .collect();
    Ok(Json(
        json!({"deadLetters": letters, "total": letters.len(), "namespace": namespace}),
    ))
}

/// Queues a dead letter again with fresh attempts; it is delivered in its deployment's order.
pub(super) async fn resend(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> Result<(StatusCode, Json<Value>)> {
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
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "accepted", "message": format!("dead letter {id} queued again")})),
    ))
}
