//! The seed's routes: `/health`, `/readiness`, `/v1/provision`, `/v1/deprovision`,
//! `/v1/resources` (GET and POST), `/v1/status`; and Keel's `/v1/signing-key` and
//! `/v1/secrets/{name}` (credentials, once). Every `/v1` route needs a bearer token.

mod letters;
pub mod limit;
mod reads;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::{
    domain::{
        self,
        catalogue::served_version,
        phase::{self, Phase, Provision},
        spec::{ResourceType, Spec, SpecRequest, check_dns_label},
    },
    drivers::{Drivers, target_for},
    error::{Error, Result},
    notify,
    signing::SigningKey,
    store::deployments::{self, NewDeployment},
};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub drivers: Drivers,
    pub secrets: Arc<keel_crypto::SecretBox>,
    pub key: Arc<SigningKey>,
    /// SHA-256 of each accepted bearer token.
    pub tokens: Arc<Vec<[u8; 32]>>,
    pub limiter: Arc<limit::Limiter>,
    pub rate_limit_per_minute: u32,
    pub wake: Arc<Notify>,
}

pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/v1/provision", post(provision))
        .route("/v1/deprovision", post(deprovision))
        .route(
            "/v1/resources",
            get(reads::resources_get).post(reads::resources_post),
        )
        .route("/v1/status", get(reads::status))
        .route("/v1/signing-key", get(reads::signing_key))
        .route("/v1/secrets/{name}", get(reads::read_secret))
        .route("/v1/dead-letters", get(letters::list))
        .route("/v1/dead-letters/{id}/resend", post(letters::resend))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit::limit,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/readiness", get(readiness))
        .merge(v1)
        .with_state(state)
}

async fn health() -> Json<Value> {
    Json(
        json!({"status": "healthy", "version": VERSION, "time": domain::callback::rfc3339(chrono::Utc::now())}),
    )
}

/// Ready when the broker's database and every configured target answer.
async fn readiness(State(s): State<AppState>) -> Response {
    let mut reason = match deployments::ping(&s.db).await {
        Ok(_) => None,
        Err(e) => Some(format!("database not accessible: {e}")),
    };
    if reason.is_none()
        && let Err(e) = s.drivers.check_all().await
    {
        reason = Some(e);
    }
    let ready = reason.is_none();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({"ready": ready, "reason": reason.unwrap_or_else(|| "ok".into()), "version": VERSION}))).into_response()
}

/// Who made a request: the token's fingerprint, for the audit trail.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: String,
}

async fn authorize(
    State(s): State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response> {
    let token = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| Error::Unauthorized("a bearer token is required".into()))?;
    let hash: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
    // Comparing digests: equal-length values, so the time taken says nothing of the token.
    if !s
        .tokens
        .iter()
        .any(|t| bool::from(subtle::ConstantTimeEq::ct_eq(&t[..], &hash[..])))
    {
        return Err(Error::Unauthorized(
            "the bearer token is not accepted".into(),
        ));
    }
    let token: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    request.extensions_mut().insert(Caller { token });
    Ok(next.run(request).await)
}

/// Decodes a JSON body, answering `invalid_request` for what is not JSON of the right shape.
fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| Error::InvalidRequest(format!("invalid JSON body: {e}")))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProvisionRequest {
    resource_type: Option<String>,
    resource_name: Option<String>,
    namespace: Option<String>,
    team: Option<String>,
    owner: Option<String>,
    callback_url: Option<String>,
    spec: Option<SpecRequest>,
}

fn required<'a>(field: &str, v: &'a Option<String>) -> Result<&'a str> {
    v.as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| Error::Validation(format!("{field} is required")))
}

fn check_url(url: &str) -> Result<()> {
    let ok = reqwest::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if ok {
        Ok(())
    } else {
        Err(Error::Validation(format!(
            "callbackUrl {url:?} is not an http(s) URL"
        )))
    }
}

async fn provision(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Response> {
    let req: ProvisionRequest = decode(&body)?;
    let kind_text = required("resourceType", &req.resource_type)?;
    let kind = ResourceType::parse(kind_text).ok_or_else(|| {
        Error::Validation(format!(
            "resourceType {kind_text:?} is not one of database, cache, topic, queue"
        ))
    })?;
    let name = required("resourceName", &req.resource_name)?;
    check_dns_label("resourceName", name).map_err(|e| Error::Validation(e.0))?;
    let namespace = required("namespace", &req.namespace)?;
    check_dns_label("namespace", namespace).map_err(|e| Error::Validation(e.0))?;
    let team = required("team", &req.team)?;
    let callback_url = required("callbackUrl", &req.callback_url)?;
    check_url(callback_url)?;
    let spec_req = req
        .spec
        .ok_or_else(|| Error::Validation("spec is required".into()))?;
    let asked = spec_req.version.clone().filter(|v| !v.is_empty());
    let mut spec: Spec = spec_req.check(kind).map_err(|e| Error::Validation(e.0))?;
    let target = target_for(&s.drivers, kind, spec.engine).map_err(Error::Validation)?;
    if let Some(served) = s.drivers.served_version(target).await {
        spec.version = served_version(kind, spec.engine, asked.as_deref(), &served)
            .map_err(Error::Validation)?;
    }

    let mut tx = s.db.begin().await?;
    let id = domain::new_deployment_id();
    let message = format!("Provisioning request accepted for {kind}/{name}");
    let inserted = deployments::insert(
        &mut tx,
        &NewDeployment {
            id: &id,
            namespace,
            resource_type: kind.as_str(),
            resource_name: name,
            team,
            owner: req.owner.as_deref(),
            callback_url,
            spec: &spec,
            target,
            message: &message,
        },
    )
    .await?;
    // A new or restarted creation announces its Provisioning phase.
    let (row, status, answer, announce) = match inserted {
        Some(row) => (row, StatusCode::ACCEPTED, "accepted", true),
        None => {
            let existing = deployments::lock_live(&mut tx, namespace, kind.as_str(), name)
                .await?
                .ok_or_else(|| {
                    Error::Conflict("the resource changed meanwhile; try again".into())
                })?;
            let decision = phase::provision(
                Some(&phase::Existing {
                    id: &existing.id,
                    phase: existing.phase(),
                    spec: &existing.spec.0,
                }),
                &spec,
            );
            match decision {
                Provision::InProgress => (existing, StatusCode::ACCEPTED, "accepted", false),
                Provision::Done => (existing, StatusCode::OK, "ready", false),
                Provision::Retry => {
                    let row =
                        deployments::restart(&mut tx, &existing.id, Phase::Provisioning, &message)
                            .await?;
                    (row, StatusCode::ACCEPTED, "accepted", true)
                }
                Provision::Conflict(why) => {
                    audit(
                        &mut tx,
                        &caller,
                        "provision",
                        Some(&existing.id),
                        namespace,
                        "conflict",
                    )
                    .await?;
                    tx.commit().await?;
                    return Err(Error::Conflict(why));
                }
                Provision::Create => {
                    return Err(Error::Conflict(
                        "the resource changed meanwhile; try again".into(),
                    ));
                }
            }
        }
    };
    if announce {
        notify::queue(&mut tx, &row, None).await?;
    }
    audit(
        &mut tx,
        &caller,
        "provision",
        Some(&row.id),
        namespace,
        answer,
    )
    .await?;
    tx.commit().await?;
    s.wake.notify_one();
    let message = if status == StatusCode::OK {
        format!("{kind}/{name} is already provisioned")
    } else {
        format!("Provisioning request accepted for {kind}/{name}")
    };
    Ok((
        status,
        Json(json!({"status": answer, "deploymentId": row.id, "message": message})),
    )
        .into_response())
}

async fn audit(
    tx: &mut sqlx::PgConnection,
    caller: &Caller,
    action: &str,
    id: Option<&str>,
    namespace: &str,
    outcome: &str,
) -> Result<()> {
    crate::store::audit::record(
        tx,
        &crate::store::audit::Entry {
            client: "api",
            token: &caller.token,
            action,
            deployment_id: id,
            namespace: Some(namespace),
            outcome,
        },
    )
    .await?;
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeprovisionRequest {
    deployment_id: Option<String>,
    resource_type: Option<String>,
    resource_name: Option<String>,
    namespace: Option<String>,
    callback_url: Option<String>,
}

async fn deprovision(
    State(s): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Response> {
    let req: DeprovisionRequest = decode(&body)?;
    let id = required("deploymentId", &req.deployment_id)?;
    let kind = required("resourceType", &req.resource_type)?;
    let name = required("resourceName", &req.resource_name)?;
    let namespace = required("namespace", &req.namespace)?;
    let callback_url = required("callbackUrl", &req.callback_url)?;
    check_url(callback_url)?;
    if !domain::is_deployment_id(id) {
        return Err(Error::Validation(format!(
            "deploymentId {id:?} is not a deployment id (deploy-<32 hex digits>)"
        )));
    }
    let mut tx = s.db.begin().await?;
    let d = deployments::lock(&mut tx, id)
        .await?
        .filter(|d| d.namespace == namespace)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "deployment {id} not found in namespace {namespace}"
            ))
        })?;
    if d.resource_type != kind || d.resource_name != name {
        return Err(Error::Validation(format!(
            "deployment {id} is {}/{}, not {kind}/{name}",
            d.resource_type, d.resource_name
        )));
    }
    let outcome = match phase::deprovision(d.phase()) {
        phase::Deprovision::Delete => {
            let row = deployments::restart(
                &mut tx,
                id,
                Phase::Deleting,
                &format!("Deprovisioning {kind}/{name}"),
            )
            .await?;
            notify::queue(&mut tx, &row, None).await?;
            "accepted"
        }
        phase::Deprovision::Already => "already",
    };
    audit(
        &mut tx,
        &caller,
        "deprovision",
        Some(id),
        namespace,
        outcome,
    )
    .await?;
    tx.commit().await?;
    s.wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "accepted",
            "message": format!("Deprovisioning request accepted for deployment {id}"),
        })),
    )
        .into_response())
}
