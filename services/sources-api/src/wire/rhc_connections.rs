//! Red Hat Connector connections on the wire.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{domain::status::StatusFields, store::rhc_connections::RhcConnectionRow, wire};

/// A Red Hat Connector connection, shared by the sources it is linked to.
#[derive(Debug, Serialize, ToSchema)]
pub struct RhcConnection {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    pub rhc_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
    #[serde(flatten)]
    pub availability: wire::Availability,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_ids: Vec<String>,
}

/// Link a source to a connection, creating the connection on first use.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RhcConnectionCreateRequest {
    pub rhc_id: Option<String>,
    pub extra: Option<Value>,
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub source_id: Option<Value>,
}

/// Edit a connection.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RhcConnectionEditRequest {
    pub extra: Option<Value>,
    #[serde(flatten)]
    pub status: StatusFields,
}

impl From<RhcConnectionRow> for RhcConnection {
    fn from(r: RhcConnectionRow) -> Self {
        Self {
            id: wire::id(r.id),
            rhc_id: r.rhc_id,
            extra: r.extra.filter(|e| !e.is_null()),
            availability: wire::Availability::new(
                r.availability_status,
                r.availability_status_error,
                r.last_checked_at,
                r.last_available_at,
            ),
            source_ids: r.source_ids.into_iter().map(wire::id).collect(),
        }
    }
}
