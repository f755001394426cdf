//! The artifact server: `GET /<path>` answers the stored tarball, so an ExternalArtifact's
//! `url` works without credentials whatever the storage backend (as Flux's source-controller
//! serves its own). The probes and metrics are served beside it.

use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::storage::Storage;

async fn artifact(State(storage): State<Storage>, Path(path): Path<String>) -> Response {
    // Only what the controller writes is served: `externalsource/<ns>/<name>/<hex>.tar.gz`.
    let served = path.starts_with("externalsource/")
        && path.ends_with(".tar.gz")
        && !path.split('/').any(|p| p.is_empty() || p == "..");
    if !served {
        return StatusCode::NOT_FOUND.into_response();
    }
    match storage.get(&path).await {
        Ok(Some(bytes)) => ([(header::CONTENT_TYPE, "application/gzip")], bytes).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read an artifact");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

pub fn router(storage: Storage) -> Router {
    Router::new()
        .route("/{*path}", get(artifact))
        .with_state(storage)
}
