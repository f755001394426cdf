use axum::{
    Json,
    response::{IntoResponse, Response},
};
use http::StatusCode;
use keel_service::http::ErrorFormat;
use serde::Serialize;
use utoipa::ToSchema;

/// `{"errors":[{"detail":"…","status":"400"}]}`: the Sources API error document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDocument {
    pub errors: Vec<ErrorObject>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorObject {
    pub detail: String,
    /// The HTTP status code, as a string.
    #[schema(example = "400")]
    pub status: String,
    /// Present on 500 responses when the request carried `x-rh-insights-request-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A client-facing error: a status and the exact detail text the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {detail}")]
pub struct HttpError {
    pub status: StatusCode,
    pub detail: String,
}

impl HttpError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    /// 400 with sources-api-go's `bad request: ` prefix.
    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, format!("bad request: {message}"))
    }

    /// 404 `<kind> not found`.
    pub fn not_found(kind: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{kind} not found"))
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// The bland 500 clients see; the cause is logged where it happened.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }
}

/// The Sources error document for errors the service kit answers itself (panics, timeouts,
/// oversized bodies), and echo's `{"message":…}` for unknown routes and methods, as
/// sources-api-go answers them.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourcesErrors;

impl ErrorFormat for SourcesErrors {
    fn error(&self, status: StatusCode, message: &str) -> Response {
        HttpError::new(status, message).into_response()
    }

    fn not_found(&self) -> Response {
        echo(StatusCode::NOT_FOUND, "Not Found")
    }

    fn method_not_allowed(&self) -> Response {
        echo(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
    }
}

fn echo(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "message": message }))).into_response()
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let request_id = if self.status.is_server_error() {
            // The caller's `x-rh-insights-request-id`, echoed in 500s as sources-api-go does.
            keel_service::http::current_request_id()
        } else {
            None
        };
        let document = ErrorDocument {
            errors: vec![ErrorObject {
                detail: self.detail,
                status: self.status.as_u16().to_string(),
                request_id,
            }],
        };
        (self.status, Json(document)).into_response()
    }
}
