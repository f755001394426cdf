//! One error type for the listener's HTTP API: client mistakes become the
//! `{"errors":[{"detail","status"}]}` document, anything else is logged and shown as a bland 500.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use keel_sources_http::HttpError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::Http(HttpError::new(StatusCode::BAD_REQUEST, detail))
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::Http(HttpError::new(StatusCode::NOT_FOUND, detail))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Self::Http(e) => e.into_response(),
            Self::Database(e) => {
                tracing::error!(error = %e, "request failed");
                HttpError::internal().into_response()
            }
        }
    }
}
