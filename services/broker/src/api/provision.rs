//! `POST /v1/provision` and `POST /v1/deprovision`: checked at the edge, recorded with their
//! callback and audit record in one transaction, worked on by the workers.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse as _, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, Caller, check_url, decode, required, text};
use crate::{
    domain::{
        self,
        catalogue::served_version,
        phase::{self, Phase, Provision},
        spec::{ResourceType, Spec, SpecRequest, check_dns_label},
    },
    drivers::target_for,
    error::{Error, ErrorBody, Result},
    notify,
    store::deployments::{self, NewDeployment},
};

/// The seed's provision request. Every field but `owner` is required; each one missing is
/// named in the 400.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProvisionRequest {
    /// `database`, `cache`, `topic` or `queue`.
    #[schema(example = "database")]
    resource_type: Option<String>,
    /// A DNS label, unique per namespace and type.
    #[schema(example = "app-db")]
    resource_name: Option<String>,
    #[schema(example = "team-platform")]
    namespace: Option<String>,
    team: Option<String>,
    owner: Option<String>,
    /// Where phase changes are POSTed, signed.
    callback_url: Option<String>,
    spec: Option<SpecRequest>,
}

/// The seed's deprovision request; every field is required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeprovisionRequest {
    deployment_id: Option<String>,
    resource_type: Option<String>,
    resource_name: Option<String>,
    namespace: Option<String>,
    callback_url: Option<String>,
}

/// The seed's answer to a provision or deprovision request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// `accepted`, or `ready` for a repeat of a Ready resource.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "deploy-0123456789abcdef0123456789abcdef")]
    pub deployment_id: Option<String>,
    pub message: String,
}

/// Asks for a resource. Repeats follow the Open Service Broker API: the same request answers
/// the same deployment (202 while it is made, 200 once Ready), another spec for the same
/// name is 409.
#[utoipa::path(
    post,
    path = "/v1/provision",
    tag = "provisioning",
    request_body = ProvisionRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted: the resource is being made", body = Accepted),
        (status = 200, description = "Already provisioned with this spec", body = Accepted),
        (status = 400, description = "`validation_failed` or `invalid_request`", body = ErrorBody),
        (status = 401, description = "No accepted bearer token", body = ErrorBody),
        (status = 409, description = "The name is taken by another spec", body = ErrorBody),
        (status = 429, description = "Over the client's rate limit", body = ErrorBody),
        (status = 503, description = "`provisioning_failed`: no version was asked for and the target cannot tell which it runs", body = ErrorBody),
    )
)]
pub(super) async fn provision(
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
    if target == "kubernetes" && name.len() > 52 {
        return Err(Error::Validation(format!(
            "resourceName {name:?} is longer than 52 characters: a StatefulSet's pods add 11 to it on a Kubernetes target"
        )));
    }
    match s.drivers.served_version(target).await {
        Ok(Some(served)) => {
            spec.version = served_version(kind, spec.engine, asked.as_deref(), &served)
                .map_err(Error::Validation)?;
        }
        Ok(None) => {}
        // A version asked for is checked by the worker, which waits out the trouble; a
        // default cannot be chosen without knowing what the target runs.
        Err(e) if asked.is_none() => {
            return Err(Error::Target(format!(
                "no spec.version was given and the {target} target cannot tell which it runs: {e}"
            )));
        }
        Err(_) => {}
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
            owner: text("owner", req.owner.as_deref())?,
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
    s.deliver.notify_one();
    let message = if status == StatusCode::OK {
        format!("{kind}/{name} is already provisioned")
    } else {
        format!("Provisioning request accepted for {kind}/{name}")
    };
    Ok((
        status,
        Json(Accepted {
            status: answer.to_owned(),
            deployment_id: Some(row.id),
            message,
        }),
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

/// Removes a resource; idempotent, and a creation still running is stopped and undone.
#[utoipa::path(
    post,
    path = "/v1/deprovision",
    tag = "provisioning",
    request_body = DeprovisionRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted (also when already deleted)", body = Accepted),
        (status = 400, description = "`validation_failed` or `invalid_request`", body = ErrorBody),
        (status = 401, description = "No accepted bearer token", body = ErrorBody),
        (status = 404, description = "No such deployment in the namespace", body = ErrorBody),
        (status = 429, description = "Over the client's rate limit", body = ErrorBody),
    )
)]
pub(super) async fn deprovision(
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
    s.deliver.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            status: "accepted".to_owned(),
            deployment_id: None,
            message: format!("Deprovisioning request accepted for deployment {id}"),
        }),
    )
        .into_response())
}
