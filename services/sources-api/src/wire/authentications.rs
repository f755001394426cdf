//! Authentications on the wire; the password is never in an answer but the internal API's.

use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    domain::{
        authentication::Credentials,
        limits::{self, Field},
        status::StatusFields,
    },
    store::authentications::AuthenticationRow,
    wire,
};

/// Credentials of a source, application or endpoint. The password is never returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct Authentication {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub authtype: String,
    /// Always present; "" when unset.
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_status_error: Option<String>,
    /// `Source`, `Endpoint`, `Application` or `Authentication`.
    pub resource_type: String,
    #[schema(pattern = r"^\d+$")]
    pub resource_id: String,
}

/// Create an authentication for a resource. The password is stored encrypted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationCreateRequest {
    #[serde(flatten)]
    pub credentials: Credentials,
    pub availability_status_error: Option<String>,
    /// `Source`, `Endpoint`, `Application` or `Authentication` (any case).
    pub resource_type: Option<String>,
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub resource_id: Option<Value>,
}

/// Edit an authentication.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationEditRequest {
    #[serde(flatten)]
    pub credentials: Credentials,
    #[serde(flatten)]
    pub status: StatusFields,
}

/// The internal representation: adds `created_at`, `version` and, when asked, `password`.
#[derive(Serialize, ToSchema)]
pub struct InternalAuthentication {
    #[serde(flatten)]
    pub authentication: Authentication,
    pub created_at: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for InternalAuthentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalAuthentication")
            .field("authentication", &self.authentication)
            .field("created_at", &self.created_at)
            .field("version", &self.version)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl AuthenticationCreateRequest {
    pub fn limits(&self) -> Vec<Field<'_>> {
        let mut fields = self.credentials.limits();
        fields.push(Field::Text(
            "availability_status_error",
            self.availability_status_error.as_deref(),
            limits::MESSAGE,
        ));
        fields.push(Field::Text(
            "resource_type",
            self.resource_type.as_deref(),
            limits::SHORT,
        ));
        fields
    }
}

impl From<AuthenticationRow> for Authentication {
    fn from(r: AuthenticationRow) -> Self {
        Self {
            id: wire::id(r.id),
            name: wire::non_empty(r.name),
            authtype: r.authtype.unwrap_or_default(),
            username: r.username.unwrap_or_default(),
            extra: r.extra.filter(|e| !e.is_null()),
            availability_status: wire::non_empty(r.availability_status),
            availability_status_error: wire::non_empty(r.availability_status_error),
            resource_type: r.resource_type,
            resource_id: wire::id(r.resource_id),
        }
    }
}

impl InternalAuthentication {
    pub fn new(row: AuthenticationRow, password: Option<String>) -> Self {
        Self {
            created_at: row.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            version: row.version.clone().unwrap_or_default(),
            authentication: row.into(),
            password,
        }
    }
}
