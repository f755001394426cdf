//! Serving an OpenAPI document and its interactive docs.

use std::sync::Arc;

use axum::{Router, http::header, routing::get};
use utoipa_swagger_ui::{Config as SwaggerConfig, SwaggerUi};

/// `GET <at>` answering `doc` as JSON. Serialized once; every request gets a copy of the bytes.
pub fn document<S: Clone + Send + Sync + 'static>(
    at: &str,
    doc: &utoipa::openapi::OpenApi,
) -> Router<S> {
    let body: Arc<str> = doc.to_pretty_json().unwrap_or_default().into();
    Router::new().route(
        at,
        get(move || {
            let body = body.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
            }
        }),
    )
}

/// The Swagger UI at `docs_path` (keep its trailing slash: see
/// [`crate::http::HttpOptions::keep_trailing_slash`]), reading the document at `document_url`.
pub fn docs<S: Clone + Send + Sync + 'static>(docs_path: &str, document_url: &str) -> Router<S> {
    Router::new().merge(
        SwaggerUi::new(docs_path.to_owned()).config(SwaggerConfig::new([document_url.to_owned()])),
    )
}
