//! Credentials: `GET /v1/secrets/{name}` hands a resource's over once; `POST
//! /v1/secrets/{name}/rotate` sets new ones on the target and makes them readable once more.

use axum::{
    Json,
    extract::{Path, Query, State},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AppState, provision::Accepted, required, text};
use crate::{
    drivers::{Credentials, Names},
    error::{Error, ErrorBody, Result},
    store::{
        credentials::{self, Take},
        deployments,
    },
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SecretQuery {
    /// The namespace the secret belongs to (required).
    namespace: Option<String>,
}

/// What a client connects with.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretDocument {
    /// Empty for a Kafka topic: the cluster's own authentication applies.
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    password: String,
    database: Option<String>,
    host: Option<String>,
    port: Option<i32>,
    /// Redis: every key and channel must start with it.
    #[serde(rename = "keyPrefix", skip_serializing_if = "Option::is_none")]
    key_prefix: Option<String>,
    /// Kafka: the topic's name (the host and port are a bootstrap server).
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
}

/// The credentials behind a `connectionSecret`, once; a second read is 410 Gone.
#[utoipa::path(
    get,
    path = "/v1/secrets/{name}",
    tag = "resources",
    params(("name" = String, Path, description = "The resource's connectionSecret"), SecretQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = SecretDocument),
        (status = 400, description = "No namespace", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 410, description = "Already read", body = ErrorBody),
    )
)]
pub(super) async fn read_secret(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<SecretQuery>,
) -> Result<Json<SecretDocument>> {
    let namespace = required("namespace", &q.namespace)?;
    text("name", Some(&name))?;
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
                topic: c.topic,
                host: d.as_ref().and_then(|d| d.endpoint.clone()),
                port: d.and_then(|d| d.port),
            }))
        }
    }
}

/// Sets new credentials on the target (holding the deployment's row, so no drift repair or
/// deprovision runs meanwhile) and makes them readable once at `GET /v1/secrets/{name}`; the
/// old ones stop working.
#[utoipa::path(
    post,
    path = "/v1/secrets/{name}/rotate",
    tag = "resources",
    params(("name" = String, Path, description = "The resource's connectionSecret"), SecretQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Accepted),
        (status = 400, description = "No namespace, or a resource without credentials of its own", body = ErrorBody),
        (status = 404, description = "No Ready resource has this secret", body = ErrorBody),
        (status = 503, description = "`provisioning_failed`: the target refused or did not answer", body = ErrorBody),
    )
)]
pub(super) async fn rotate(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<SecretQuery>,
) -> Result<Json<Accepted>> {
    let namespace = required("namespace", &q.namespace)?;
    text("name", Some(&name))?;
    let mut tx = s.db.begin().await?;
    let d = deployments::lock_ready_by_secret(&mut tx, namespace, &name)
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!("secret {name} not found in namespace {namespace}"))
        })?;
    if d.target == "kubernetes" {
        // The engines' images read the password only when their data is first made.
        return Err(Error::Validation(format!(
            "{}/{} runs on Kubernetes, where credentials are not rotated in place",
            d.resource_type, d.resource_name
        )));
    }
    let names = Names::of(&d.id, &d.namespace, &d.resource_name);
    let fresh = s.drivers.new_credentials(&d.target, &names, &d.spec.0);
    if fresh.password.is_empty() {
        return Err(Error::Validation(format!(
            "{}/{} has no credentials of its own to rotate",
            d.resource_type, d.resource_name
        )));
    }
    s.drivers
        .apply(&d.target, &names, &d.spec.0, &fresh)
        .await
        .map_err(|e| Error::Target(format!("the target refused the new credentials: {e}")))?;
    let sealed = s.secrets.seal(
        &serde_json::to_string(&fresh).map_err(|e| Error::Internal(e.into()))?,
        d.id.as_bytes(),
    );
    credentials::replace(&mut tx, &d.id, sealed).await?;
    tx.commit().await?;
    tracing::info!(deployment = %d.id, "credentials rotated");
    Ok(Json(Accepted {
        status: "rotated".to_owned(),
        deployment_id: Some(d.id),
        message: format!("new credentials for {name}: read them once at /v1/secrets/{name}"),
    }))
}
