//! The read routes: `/v1/resources`, `/v1/status`, `/v1/signing-key`, `/v1/secrets/{name}`.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Query, State},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AppState, decode, required, text};
use crate::{
    domain::{self, cost, drift::Usage},
    error::{Error, ErrorBody, Result},
    store::deployments::{self, Deployment, Filter},
};

/// Which resources to list: the namespace's, optionally narrowed.
#[derive(Debug, Default, Deserialize, ToSchema, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResourcesQuery {
    /// Required.
    namespace: Option<String>,
    resource_type: Option<String>,
    resource_name: Option<String>,
    deployment_id: Option<String>,
}

/// The seed's resource list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceList {
    resources: Vec<ResourceState>,
    total: usize,
    namespace: String,
}

/// Engine, version and size, as asked (`desiredSpec`) or as observed (`actualSpec`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SpecSummary {
    engine: String,
    version: String,
    size: String,
}

/// The seed's `ResourceState`; credentials are never part of it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceState {
    deployment_id: String,
    resource_type: String,
    resource_name: String,
    namespace: String,
    /// Provisioning, Ready, Failed, Deleting or Deleted.
    phase: &'static str,
    /// Healthy, Degraded or Unhealthy.
    health_status: Option<String>,
    message: String,
    /// RFC 3339: the last drift check.
    last_checked: Option<String>,
    endpoint: Option<String>,
    port: Option<i32>,
    /// The name to read the credentials by, once (`/v1/secrets/{name}`).
    connection_secret: Option<String>,
    /// `team`, `owner` and `target` (the server kind it runs on).
    metadata: BTreeMap<&'static str, String>,
    actual_spec: Option<SpecSummary>,
    desired_spec: SpecSummary,
    drift_detected: bool,
    /// In the seed's words: `Version mismatch: desired=15, actual=15.2 (patch update)`.
    drift_details: Vec<String>,
    resource_usage: Usage,
    /// From the price table in the README.
    estimated_monthly_cost: f64,
}

/// Lists the namespace's resources with their observed state and drift.
#[utoipa::path(
    get,
    path = "/v1/resources",
    tag = "resources",
    params(ResourcesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ResourceList),
        (status = 400, description = "No namespace, or an unknown parameter", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn resources_get(
    State(s): State<AppState>,
    query: std::result::Result<Query<ResourcesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ResourceList>> {
    let Query(q) = query.map_err(|e| Error::InvalidRequest(e.body_text()))?;
    resources(&s, q).await
}

/// The same list, the filters in a JSON body (the seed offers both).
#[utoipa::path(
    post,
    path = "/v1/resources",
    tag = "resources",
    request_body = ResourcesQuery,
    security(("bearer" = [])),
    responses(
        (status = 200, body = ResourceList),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub(super) async fn resources_post(
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<ResourceList>> {
    resources(&s, decode(&body)?).await
}

async fn resources(s: &AppState, q: ResourcesQuery) -> Result<Json<ResourceList>> {
    let namespace = required("namespace", &q.namespace)?;
    let list = deployments::list(
        &s.db,
        &Filter {
            namespace,
            resource_type: text("resourceType", q.resource_type.as_deref())?,
            resource_name: text("resourceName", q.resource_name.as_deref())?,
            deployment_id: text("deploymentId", q.deployment_id.as_deref())?,
        },
    )
    .await?;
    let resources: Vec<ResourceState> = list.iter().map(resource_state).collect();
    Ok(Json(ResourceList {
        total: resources.len(),
        resources,
        namespace: namespace.to_owned(),
    }))
}

fn resource_state(d: &Deployment) -> ResourceState {
    let spec = &d.spec.0;
    let actual = d.actual.as_ref().map(|a| &a.0);
    let text = |v: &serde_json::Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
    let mut metadata = BTreeMap::from([("team", d.team.clone()), ("target", d.target.clone())]);
    if let Some(owner) = &d.owner {
        metadata.insert("owner", owner.clone());
    }
    ResourceState {
        deployment_id: d.id.clone(),
        resource_type: d.resource_type.clone(),
        resource_name: d.resource_name.clone(),
        namespace: d.namespace.clone(),
        phase: d.phase().as_str(),
        health_status: d.health.clone(),
        message: d.message.clone(),
        last_checked: d.last_checked.map(domain::callback::rfc3339),
        endpoint: d.endpoint.clone(),
        port: d.port,
        connection_secret: d.connection_secret.clone(),
        metadata,
        actual_spec: actual.map(|a| SpecSummary {
            engine: text(a, "engine"),
            version: text(a, "version"),
            size: text(a, "size"),
        }),
        desired_spec: SpecSummary {
            engine: spec.engine.as_str().to_owned(),
            version: spec.version.clone(),
            size: spec.size.as_str().to_owned(),
        },
        drift_detected: !d.drift.0.is_empty(),
        drift_details: d.drift.0.clone(),
        resource_usage: actual
            .and_then(|a| serde_json::from_value(a["resourceUsage"].clone()).ok())
            .unwrap_or_default(),
        estimated_monthly_cost: cost::monthly(spec),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// The deployment id (required).
    id: Option<String>,
}

/// The seed's status document.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusDocument {
    deployment_id: String,
    phase: &'static str,
    message: String,
    /// RFC 3339.
    last_updated: String,
}

/// A deployment's phase by id.
#[utoipa::path(
    get,
    path = "/v1/status",
    tag = "resources",
    params(StatusQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = StatusDocument),
        (status = 400, description = "No id", body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub(super) async fn status(
    State(s): State<AppState>,
    Query(q): Query<StatusQuery>,
) -> Result<Json<StatusDocument>> {
    let id = required("id", &q.id)?;
    let d = deployments::find(&s.db, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("deployment {id} not found")))?;
    Ok(Json(StatusDocument {
        deployment_id: d.id.clone(),
        phase: d.phase().as_str(),
        message: d.message.clone(),
        last_updated: domain::callback::rfc3339(d.updated_at),
    }))
}

/// The key callbacks are verified with.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyDocument {
    #[schema(example = "Ed25519")]
    algorithm: &'static str,
    /// Base64 of the 32-byte public key.
    public_key: String,
}

/// The Ed25519 public key that verifies `X-KIDP-Signature` (over timestamp + "." + body).
#[utoipa::path(
    get,
    path = "/v1/signing-key",
    tag = "callbacks",
    security(("bearer" = [])),
    responses((status = 200, body = SigningKeyDocument))
)]
pub(super) async fn signing_key(State(s): State<AppState>) -> Json<SigningKeyDocument> {
    Json(SigningKeyDocument {
        algorithm: "Ed25519",
        public_key: s.key.public_base64(),
    })
}
