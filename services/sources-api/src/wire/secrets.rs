//! Secrets on the wire; the password is never in an answer but the internal API's.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{domain::authentication::Credentials, store::secrets::SecretRow, wire};

/// A secret; its password is never returned here.
#[derive(Debug, Serialize, ToSchema)]
pub struct Secret {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub authtype: String,
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// Create a secret: the tenant's, or with `user_scoped` the calling user's alone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretCreateRequest {
    #[serde(flatten)]
    pub credentials: Credentials,
    /// Only the creating user (the identity's `user_id`) sees and changes it.
    #[serde(default)]
    pub user_scoped: bool,
}

/// Edit a secret.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretEditRequest {
    #[serde(flatten)]
    pub credentials: Credentials,
}

impl From<SecretRow> for Secret {
    fn from(r: SecretRow) -> Self {
        Self {
            id: wire::id(r.id),
            name: wire::non_empty(r.name),
            authtype: r.authtype.unwrap_or_default(),
            username: r.username.unwrap_or_default(),
            extra: r.extra.filter(|e| !e.is_null()),
            user_id: r.user_id,
        }
    }
}
