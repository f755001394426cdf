//! The read routes: `/v1/resources`, `/v1/status`, `/v1/signing-key`, `/v1/secrets/{name}`.

use axum::{
    Json,
    extract::{Path, Query, State},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{AppState, decode, required};
use crate::{
    domain::{self, cost},
    drivers::Credentials,
    error::{Error, Result},
    store::{
        credentials::{self, Take},
        deployments::{self, Deployment, Filter},
    },
};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ResourcesQuery {
    namespace: Option<String>,
    resource_type: Option<String>,
    resource_name: Option<String>,
    deployment_id: Option<String>,
}

pub(super) async fn resources_get(
    State(s): State<AppState>,
    query: std::result::Result<Query<ResourcesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = query.map_err(|e| Error::InvalidRequest(e.body_text()))?;
    resources(&s, q).await
}

pub(super) async fn resources_post(
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>> {
    resources(&s, decode(&body)?).await
}

async fn resources(s: &AppState, q: ResourcesQuery) -> Result<Json<Value>> {
    let namespace = required("namespace", &q.namespace)?;
    let list = deployments::list(
        &s.db,
        &Filter {
            namespace,
            resource_type: q.resource_type.as_deref(),
            resource_name: q.resource_name.as_deref(),
            deployment_id: q.deployment_id.as_deref(),
        },
    )
    .await?;
    let resources: Vec<Value> = list.iter().map(resource_state).collect();
    Ok(Json(
        json!({"resources": resources, "total": resources.len(), "namespace": namespace}),
    ))
}

/// The seed's `ResourceState`; credentials are never part of it.
fn resource_state(d: &Deployment) -> Value {
    let spec = &d.spec.0;
    let actual = d.actual.as_ref().map(|a| a.0.clone());
    let usage = actual
        .as_ref()
        .and_then(|a| a.get("resourceUsage").cloned())
        .unwrap_or_else(|| json!({}));
    let actual_spec = actual
        .as_ref()
        .map(|a| json!({"engine": a["engine"], "version": a["version"], "size": a["size"]}));
    json!({
        "deploymentId": d.id,
        "resourceType": d.resource_type,
        "resourceName": d.resource_name,
        "namespace": d.namespace,
        "phase": d.phase().as_str(),
        "healthStatus": d.health,
        "message": d.message,
        "lastChecked": d.last_checked.map(domain::callback::rfc3339),
        "endpoint": d.endpoint,
        "port": d.port,
        "connectionSecret": d.connection_secret,
        "actualSpec": actual_spec,
        "desiredSpec": {"engine": spec.engine.as_str(), "version": spec.version, "size": spec.size.as_str()},
        "driftDetected": !d.drift.0.is_empty(),
        "driftDetails": d.drift.0,
        "resourceUsage": usage,
        "estimatedMonthlyCost": cost::monthly(spec),
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct StatusQuery {
    id: Option<String>,
}

pub(super) async fn status(
    State(s): State<AppState>,
    Query(q): Query<StatusQuery>,
) -> Result<Json<Value>> {
    let id = required("id", &q.id)?;
    let d = deployments::find(&s.db, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("deployment {id} not found")))?;
    Ok(Json(json!({
        "deploymentId": d.id,
        "phase": d.phase().as_str(),
        "message": d.message,
        "lastUpdated": domain::callback::rfc3339(d.updated_at),
    })))
}

pub(super) async fn signing_key(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"algorithm": "Ed25519", "publicKey": s.key.public_base64()}))
}

#[derive(Debug, Deserialize)]
pub(super) struct SecretQuery {
    namespace: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct SecretDocument {
    username: String,
    password: String,
    database: Option<String>,
    host: Option<String>,
    port: Option<i32>,
    #[serde(rename = "keyPrefix", skip_serializing_if = "Option::is_none")]
    key_prefix: Option<String>,
}

/// The credentials behind a `connectionSecret`, once; a second read is 410 Gone.
pub(super) async fn read_secret(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<SecretQuery>,
) -> Result<Json<SecretDocument>> {
    let namespace = required("namespace", &q.namespace)?;
    match credentials::take(&s.db, namespace, &name).await? {
        Take::Unknown => Err(Error::NotFound(format!(
            "secret {name} not found in namespace {namespace}"
        ))),
        Take::AlreadyRead => Err(Error::Gone(format!(
            "secret {name} was already read; rotate it to read new credentials"
        ))),
        Take::Fresh {
            deployment_id,
            sealed,
        } => {
            let text = s
                .secrets
                .open(&sealed, deployment_id.as_bytes())
                .map_err(Error::Internal)?;
            let c: Credentials =
                serde_json::from_str(&text).map_err(|e| Error::Internal(e.into()))?;
            let d = deployments::find(&s.db, &deployment_id).await?;
            Ok(Json(SecretDocument {
                username: c.username,
                password: c.password,
                database: c.database,
                key_prefix: c.key_prefix,
                host: d.as_ref().and_then(|d| d.endpoint.clone()),
                port: d.and_then(|d| d.port),
            }))
        }
    }
}
