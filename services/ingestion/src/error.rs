//! One error type for the ingestion service's HTTP API: client mistakes become the
//! `{"errors":[{"detail","status"}]}` document, anything else is logged and shown as a bland 500.

use axum::response::{IntoResponse, Response};
use keel_sources_http::HttpError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Self::Http(e) => e.into_response(),
            Self::Database(e) => {
                tracing::error!(error = %e, "request failed");
                HttpError::internal().into_response()
            }
            Self::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "request failed");
                HttpError::internal().into_response()
            }
        }
    }
}
