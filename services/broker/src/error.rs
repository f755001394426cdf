//! The broker's one error type and its one `IntoResponse`: the seed's
//! `{"error": code, "message": text, "code": status}`.

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

/// The seed's error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorBody {
    /// `validation_failed`, `invalid_request`, `resource_not_found`, `provisioning_failed`,
    /// `kubernetes_error`, `conflict`, `unauthorized`, `rate_limited`, `gone`,
    /// `internal_error`.
    pub error: String,
    pub message: String,
    pub code: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    RateLimited(String),
    /// A target would not do what was asked (or could not be reached).
    #[error("{0}")]
    Target(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Validation(_) => (StatusCode::BAD_REQUEST, "validation_failed"),
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "resource_not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::Gone(_) => (StatusCode::GONE, "gone"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Target(_) => (StatusCode::SERVICE_UNAVAILABLE, "provisioning_failed"),
            Self::Database(_) | Self::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
        }
    }
}

/// The body for `status` with `error` and `message`.
pub fn body(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        Json(ErrorBody {
            error: error.to_owned(),
            message: message.to_owned(),
            code: status.as_u16(),
        }),
    )
        .into_response()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        // What went wrong inside stays in the log; a target's refusal is the caller's to know.
        let message = if matches!(self, Self::Database(_) | Self::Internal(_)) {
            tracing::error!(error = %self, "request failed");
            "internal error".to_owned()
        } else {
            self.to_string()
        };
        let mut response = body(status, code, &message);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Errors the kit's layers produce (panics, timeouts, bodies over the limit, unknown routes)
/// in the broker's format.
#[derive(Debug, Clone, Copy)]
pub struct BrokerErrors;

impl keel_service::http::ErrorFormat for BrokerErrors {
    fn error(&self, status: StatusCode, message: &str) -> Response {
        let code = match status.as_u16() {
            404 => "resource_not_found",
            405 | 413 | 415 => "invalid_request",
            400..=499 => "invalid_request",
            _ => "internal_error",
        };
        body(status, code, message)
    }
}
