//! One error type for the whole service. Handlers return `Result<_, Error>`; client mistakes
//! become the Sources error document with the exact texts of sources-api-go, and anything else
//! is logged with its cause and shown to the client as a bland 500.

use axum::response::{IntoResponse, Response};
use keel_db::ListingError;
use keel_sources_http::HttpError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client-facing error with its exact status and detail.
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// `bad request: <message>`
    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        Self::Http(HttpError::bad_request(message))
    }

    /// `bad request: Validation failed: <message>`
    pub fn validation(message: impl std::fmt::Display) -> Self {
        Self::bad_request(format_args!("Validation failed: {message}"))
    }

    /// `<kind> not found`
    pub fn not_found(kind: &str) -> Self {
        Self::Http(HttpError::not_found(kind))
    }
}

impl From<ListingError> for Error {
    fn from(e: ListingError) -> Self {
        match e {
            ListingError::Query(e) => Self::bad_request(e),
            ListingError::Database(e) => Self::Database(e),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Self::Http(e) => e.into_response(),
            Self::Database(e) => {
                tracing::error!(error = %e, "database error");
                HttpError::internal().into_response()
            }
            Self::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                HttpError::internal().into_response()
            }
        }
    }
}

/// The constraint a database error names, if any.
pub fn constraint(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

/// Maps a unique-constraint violation on `constraint` to a client error.
pub trait ResultExt<T> {
    fn on_constraint(self, constraint: &str, to: impl FnOnce() -> Error) -> Result<T>;
}

impl<T> ResultExt<T> for std::result::Result<T, sqlx::Error> {
    fn on_constraint(self, constraint: &str, to: impl FnOnce() -> Error) -> Result<T> {
        self.map_err(|e| match &e {
            sqlx::Error::Database(db) if db.constraint() == Some(constraint) => to(),
            _ => Error::Database(e),
        })
    }
}
