//! Application authentications on the wire.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{store::application_authentications::ApplicationAuthenticationRow, wire};

/// A link between an application and an authentication it uses.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationAuthentication {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    #[schema(pattern = r"^\d+$")]
    pub application_id: String,
    #[schema(pattern = r"^\d+$")]
    pub authentication_id: String,
}

/// Link an authentication to an application. Ids may be numbers or numeric strings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationAuthenticationCreateRequest {
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub application_id: Option<Value>,
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub authentication_id: Option<Value>,
}

impl From<ApplicationAuthenticationRow> for ApplicationAuthentication {
    fn from(r: ApplicationAuthenticationRow) -> Self {
        Self {
            id: wire::id(r.id),
            created_at: wire::timestamp(r.created_at),
            updated_at: wire::timestamp(r.updated_at),
            application_id: wire::id(r.application_id),
            authentication_id: wire::id(r.authentication_id),
        }
    }
}
