//! The HTTP side of every service: the layers each router gets (panics, timeouts and oversized
//! bodies answered in the service's own error format, request spans and metrics), and the
//! server that serves until shutdown, then drains.

mod layers;
mod observe;
mod server;

use std::time::Duration;

use axum::response::Response;
use http::StatusCode;

pub use layers::apply;
pub use observe::{RequestId, current_request_id};
pub use server::{HttpServer, Listeners};

/// How a service renders an error it did not produce itself (a panic, a timeout, a body over
/// the limit, an unknown route): each service keeps its own error document.
pub trait ErrorFormat: Clone + Send + Sync + 'static {
    /// The service's error document for `status` with `message`.
    fn error(&self, status: StatusCode, message: &str) -> Response;

    /// An unknown route.
    fn not_found(&self) -> Response {
        self.error(StatusCode::NOT_FOUND, "Not Found")
    }

    /// A known route with another method.
    fn method_not_allowed(&self) -> Response {
        self.error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
    }
}

/// Limits every request is held to.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// A handler still running after this answers 503 in the service's error format.
    pub request_timeout: Duration,
    /// Larger bodies answer 413 in the service's error format.
    pub body_limit: usize,
    /// Strip one trailing slash before routing (as echo's `RemoveTrailingSlash` and Django
    /// clients expect), except under these path prefixes.
    pub trim_trailing_slash: bool,
    pub keep_trailing_slash: Vec<String>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            body_limit: 2 * 1024 * 1024,
            trim_trailing_slash: true,
            keep_trailing_slash: Vec::new(),
        }
    }
}
