//! Endpoints on the wire.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    domain::{endpoint::EndpointSettings, status::StatusFields},
    store::endpoints::EndpointRow,
    wire,
};

/// Where a source's service is reached (e.g. an OpenShift cluster's API).
#[derive(Debug, Serialize, ToSchema)]
pub struct Endpoint {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Omitted when false, as sources-api-go does.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_ssl: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receptor_node: Option<String>,
    #[serde(flatten)]
    pub availability: wire::Availability,
    #[schema(pattern = r"^\d+$")]
    pub source_id: String,
}

/// Create an endpoint. Defaults: scheme `https`, port 443, `verify_ssl` false; a source's first
/// endpoint is its default.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointCreateRequest {
    #[serde(flatten)]
    pub settings: EndpointSettings,
    /// `available` or `unavailable`; `in_progress` when empty.
    pub availability_status: Option<String>,
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub source_id: Option<Value>,
}

/// Edit an endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointEditRequest {
    #[serde(flatten)]
    pub settings: EndpointSettings,
    #[serde(flatten)]
    pub status: StatusFields,
}

impl From<EndpointRow> for Endpoint {
    fn from(r: EndpointRow) -> Self {
        Self {
            id: wire::id(r.id),
            created_at: wire::timestamp(r.created_at),
            updated_at: wire::timestamp(r.updated_at),
            paused_at: wire::opt_timestamp(r.paused_at),
            role: wire::non_empty(r.role),
            port: r.port,
            default: r.default,
            scheme: wire::non_empty(r.scheme),
            host: wire::non_empty(r.host),
            path: wire::non_empty(r.path),
            verify_ssl: r.verify_ssl,
            certificate_authority: wire::non_empty(r.certificate_authority),
            receptor_node: wire::non_empty(r.receptor_node),
            availability: wire::Availability::new(
                Some(r.availability_status),
                r.availability_status_error,
                r.last_checked_at,
                r.last_available_at,
            ),
            source_id: wire::id(r.source_id),
        }
    }
}
