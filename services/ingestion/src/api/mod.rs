//! The ingestion service's HTTP API: the ingress upload endpoint at its own path, and the
//! read API under `/api/cost-management/v1`, scoped to the caller's org.

pub mod providers;
pub mod upload;

use utoipa::OpenApi;

pub const PREFIX: &str = "/api/cost-management/v1";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keel ingestion",
        description = "The Insights ingress upload endpoint for OpenShift cost operator payloads, and the ingestion state of cost-management providers."
    ),
    components(schemas(keel_sources_http::ErrorDocument, keel_sources_http::ErrorObject))
)]
pub struct ApiDoc;
