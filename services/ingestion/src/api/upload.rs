//! `POST /api/ingress/v1/upload`: the Insights ingress as the cost operator (and nise) use it.
//! The payload is checked before anything is kept: a gzip tarball with an operator
//! `manifest.json`; then it is stored, recorded and queued, and answered 202.

use std::io::Read as _;

use axum::{
    Json,
    extract::{Multipart, State, multipart::MultipartRejection},
    http::{HeaderMap, StatusCode},
};
use bytes::Bytes;
use keel_domain::identity::XRhIdentity;
use keel_sources_http::HttpError;
use object_store::{ObjectStoreExt as _, PutPayload, path::Path};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    domain::manifest::{OcpManifest, is_plain_file_name},
    error::{Error, Result},
    state::AppState,
    store::{
        queue::{self, Job},
        uploads::{self, NewUpload},
    },
};

pub const UPLOAD_PATH: &str = "/api/ingress/v1/upload";

/// What the ingress answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub request_id: String,
    pub upload: UploadIdentity,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadIdentity {
    pub account_number: Option<String>,
    pub org_id: String,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upload))
}

/// Accepts an OpenShift cost operator payload (`file` part, content type
/// `application/vnd.redhat.hccm.tar+tgz`).
#[utoipa::path(
    post,
    path = "/api/ingress/v1/upload",
    tag = "ingress",
    operation_id = "upload",
    request_body(content_type = "multipart/form-data", description = "part `file`: the payload"),
    responses(
        (status = 202, description = "Payload kept and queued", body = Accepted),
        (status = 400, description = "No payload, or not a valid operator payload", body = keel_sources_http::ErrorDocument),
        (status = 401, description = "No identity or no org in it", body = keel_sources_http::ErrorDocument),
        (status = 413, description = "Payload over the size limit", body = keel_sources_http::ErrorDocument),
        (status = 415, description = "Not an hccm payload", body = keel_sources_http::ErrorDocument),
    )
)]
async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    multipart: std::result::Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Accepted>)> {
    let identity = identity(&headers)?;
    let org_id = identity
        .identity
        .org_id
        .clone()
        .filter(|o| !o.is_empty())
        .or_else(|| {
            identity
                .identity
                .internal
                .as_ref()
                .and_then(|i| i.org_id.clone())
        })
        .filter(|o| !o.is_empty())
        .ok_or_else(|| Error::Http(HttpError::unauthorized("the identity names no org_id")))?;
    let account = identity
        .identity
        .account_number
        .clone()
        .filter(|a| !a.is_empty());
    // After the identity check, and in the service's error document (axum's own is plain text).
    let mut multipart = multipart.map_err(|e| {
        Error::Http(HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not a multipart upload: {}", e.body_text()),
        ))
    })?;
    let (content_type, body) = payload_part(&mut multipart, state.max_upload).await?;
    check_content_type(&content_type)?;
    let checked = tokio::task::spawn_blocking({
        let body = body.clone();
        move || inspect(&body)
    })
    .await
    .map_err(|e| Error::Internal(e.into()))?
    .map_err(|m| Error::Http(HttpError::new(StatusCode::BAD_REQUEST, m)))?;
    let request_id = headers
        .get("x-rh-insights-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    let key = format!(
        "{org_id}/{}/{request_id}.tar.gz",
        checked.manifest.cluster_id
    );
    let size = body.len() as i64;
    state
        .objects
        .payloads()
        .put(&Path::from(key.as_str()), PutPayload::from_bytes(body))
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    let manifest_json =
        serde_json::to_value(&checked.raw_manifest).map_err(|e| Error::Internal(e.into()))?;
    let mut tx = state.db.begin().await?;
    let inserted = uploads::insert(
        &mut tx,
        &NewUpload {
            request_id: &request_id,
            org_id: &org_id,
            account: account.as_deref(),
            object_key: &key,
            size,
            cluster_id: &checked.manifest.cluster_id,
            manifest: &manifest_json,
            files: &checked.files,
        },
    )
    .await;
    if let Err(e) = inserted {
        if e.as_database_error()
            .is_some_and(|d| d.is_unique_violation())
        {
            return Err(Error::Http(HttpError::new(
                StatusCode::CONFLICT,
                format!("request {request_id} was already received"),
            )));
        }
        return Err(e.into());
    }
    queue::enqueue(
        &mut tx,
        &Job::Upload {
            request_id: request_id.clone(),
        },
    )
    .await?;
    tx.commit().await?;
    state.wake.notify_one();
    metrics::counter!("ingestion_uploads_total", "outcome" => "accepted").increment(1);
    tracing::info!(request_id, org_id, cluster_id = %checked.manifest.cluster_id, size, files = checked.files.len(), "payload received");
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            request_id,
            upload: UploadIdentity {
                account_number: account,
                org_id,
            },
        }),
    ))
}

fn identity(headers: &HeaderMap) -> Result<XRhIdentity> {
    let header = headers
        .get("x-rh-identity")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Http(HttpError::unauthorized("x-rh-identity is missing")))?;
    XRhIdentity::decode(header).map_err(|e| Error::Http(HttpError::unauthorized(e.to_string())))
}

/// The `file` part (the ingress' fallback name `upload` too): its content type and bytes.
async fn payload_part(multipart: &mut Multipart, limit: usize) -> Result<(String, Bytes)> {
    let bad = |m: String| Error::Http(HttpError::new(StatusCode::BAD_REQUEST, m));
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| bad(format!("the body is not valid multipart: {e}")))?
    {
        if matches!(field.name(), Some("file" | "upload")) {
            let content_type = field.content_type().unwrap_or_default().to_owned();
            let body = field.bytes().await.map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Error::Http(HttpError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("the payload is larger than {limit} bytes"),
                    ))
                } else {
                    bad(format!("the payload could not be read: {e}"))
                }
            })?;
            if body.len() > limit {
                return Err(Error::Http(HttpError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the payload is larger than {limit} bytes"),
                )));
            }
            return Ok((content_type, body));
        }
    }
    Err(bad("the request has no `file` part".into()))
}

/// `application/vnd.redhat.<service>.<category>+tgz`: only service `hccm` is cost management's.
fn check_content_type(content_type: &str) -> Result<()> {
    let unsupported =
        |m: String| Error::Http(HttpError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, m));
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let Some(rest) = media.strip_prefix("application/vnd.redhat.") else {
        return Err(unsupported(format!(
            "{media:?} is not a Red Hat Insights payload type"
        )));
    };
    let service = rest.split(['.', '+']).next().unwrap_or_default();
    if service != "hccm" {
        return Err(unsupported(format!(
            "service {service:?} is not served here (only hccm)"
        )));
    }
    Ok(())
}

/// A payload that passed inspection.
pub struct Checked {
    pub manifest: OcpManifest,
    pub raw_manifest: serde_json::Value,
    /// The CSV files in the tarball.
    pub files: Vec<String>,
}

/// Reads the tarball through: it must decompress, hold a `manifest.json` the operator's
/// format, and only plain file names.
pub fn inspect(body: &[u8]) -> std::result::Result<Checked, String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(body));
    let mut manifest = None;
    let mut files = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| format!("the payload is not a tar.gz: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("the payload is not a valid tar.gz: {e}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| format!("a name in the payload is unreadable: {e}"))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "manifest.json" {
            let mut bytes = Vec::new();
            entry
                .by_ref()
                .take(1 << 20)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("manifest.json is unreadable: {e}"))?;
            let raw: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| format!("manifest.json is not JSON: {e}"))?;
            manifest = Some((OcpManifest::parse(&bytes).map_err(|e| e.0)?, raw));
        } else if name.ends_with(".csv") && is_plain_file_name(&name) {
            // Reading every entry through also checks the gzip stream to its end.
            std::io::copy(&mut entry, &mut std::io::sink())
                .map_err(|e| format!("{name} is damaged: {e}"))?;
            files.push(name);
        } else {
            std::io::copy(&mut entry, &mut std::io::sink())
                .map_err(|e| format!("the payload is damaged: {e}"))?;
        }
    }
    let (manifest, raw_manifest) = manifest.ok_or("the payload holds no manifest.json")?;
    Ok(Checked {
        manifest,
        raw_manifest,
        files,
    })
}
