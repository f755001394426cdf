//! Applications on the wire.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    domain::{
        limits::{self, Field},
        status::StatusFields,
    },
    store::applications::ApplicationRow,
    wire,
};

/// An application attached to a source, e.g. cost management reading an AWS account.
#[derive(Debug, Serialize, ToSchema)]
pub struct Application {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<String>,
    #[serde(flatten)]
    pub availability: wire::Availability,
    /// Application-specific settings, e.g. `{"bucket": "my-bucket"}`.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub extra: Value,
    #[schema(pattern = r"^\d+$")]
    pub source_id: String,
    #[schema(pattern = r"^\d+$")]
    pub application_type_id: String,
}

/// Attach an application to a source. Ids may be numbers or numeric strings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationCreateRequest {
    pub extra: Option<Value>,
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub source_id: Option<Value>,
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub application_type_id: Option<Value>,
}

/// Edit an application. A status change is copied to its source. A paused application
/// accepts the status fields only.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationEditRequest {
    pub extra: Option<Value>,
    #[serde(flatten)]
    pub status: StatusFields,
}

/// What a paused application accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PausedApplicationEditRequest {
    #[serde(flatten)]
    pub status: StatusFields,
}

impl ApplicationCreateRequest {
    pub fn limits(&self) -> Vec<Field<'_>> {
        vec![Field::Json("extra", self.extra.as_ref(), limits::DOCUMENT)]
    }
}

impl ApplicationEditRequest {
    pub fn limits(&self) -> Vec<Field<'_>> {
        vec![Field::Json("extra", self.extra.as_ref(), limits::DOCUMENT)]
    }
}

impl From<ApplicationRow> for Application {
    fn from(r: ApplicationRow) -> Self {
        Self {
            id: wire::id(r.id),
            created_at: wire::timestamp(r.created_at),
            updated_at: wire::timestamp(r.updated_at),
            paused_at: wire::opt_timestamp(r.paused_at),
            availability: wire::Availability::new(
                Some(r.availability_status),
                r.availability_status_error,
                r.last_checked_at,
                r.last_available_at,
            ),
            extra: r.extra,
            source_id: wire::id(r.source_id),
            application_type_id: wire::id(r.application_type_id),
        }
    }
}
