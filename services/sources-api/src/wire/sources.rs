//! Sources on the wire: the answer, and what create and edit requests may send.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    domain::limits::{self, Field},
    store::sources::SourceRow,
    wire,
};

/// A source: one account, subscription, project or cluster that applications read data from.
/// Empty fields are omitted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Source {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "in_progress")]
    pub availability_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_checked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_available_at: Option<String>,
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    #[schema(example = "2024-05-01T10:00:00Z")]
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<String>,
    pub name: String,
    pub uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<String>,
    #[schema(example = "manual_configuration")]
    pub app_creation_workflow: String,
    #[schema(pattern = r"^\d+$")]
    pub source_type_id: String,
}

/// Create a source. `uid` is ignored: the server generates one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceCreateRequest {
    pub name: Option<String>,
    pub uid: Option<String>,
    pub version: Option<String>,
    pub imported: Option<String>,
    pub source_ref: Option<String>,
    /// `manual_configuration` (default) or `account_authorization`.
    pub app_creation_workflow: Option<String>,
    /// `available`, `in_progress` (default), `partially_available` or `unavailable`.
    pub availability_status: Option<String>,
    /// A number or a numeric string.
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub source_type_id: Option<Value>,
}

/// Edit a source. Only the status fields may be sent while the source is paused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceEditRequest {
    pub name: Option<String>,
    pub version: Option<String>,
    pub imported: Option<String>,
    pub source_ref: Option<String>,
    pub availability_status: Option<String>,
    /// `YYYY-MM-DD hh:mm:ss UTC`
    #[schema(example = "2024-05-01 10:00:00 UTC")]
    pub last_checked_at: Option<String>,
    /// `YYYY-MM-DD hh:mm:ss UTC`
    pub last_available_at: Option<String>,
}

/// The fields a paused source accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PausedSourceEditRequest {
    pub availability_status: Option<String>,
    pub last_checked_at: Option<String>,
    pub last_available_at: Option<String>,
}

/// The caps of a source's text fields, on create and edit alike.
fn source_limits<'a>(
    name: &'a Option<String>,
    version: &'a Option<String>,
    imported: &'a Option<String>,
    source_ref: &'a Option<String>,
) -> Vec<Field<'a>> {
    vec![
        Field::Text("name", name.as_deref(), limits::SHORT),
        Field::Text("version", version.as_deref(), limits::SHORT),
        Field::Text("imported", imported.as_deref(), limits::SHORT),
        Field::Text("source_ref", source_ref.as_deref(), limits::SHORT),
    ]
}

impl SourceCreateRequest {
    pub fn limits(&self) -> Vec<Field<'_>> {
        source_limits(&self.name, &self.version, &self.imported, &self.source_ref)
    }
}

impl SourceEditRequest {
    pub fn limits(&self) -> Vec<Field<'_>> {
        source_limits(&self.name, &self.version, &self.imported, &self.source_ref)
    }
}

impl From<SourceRow> for Source {
    fn from(r: SourceRow) -> Self {
        Self {
            availability_status: wire::non_empty(Some(r.availability_status)),
            last_checked_at: wire::opt_timestamp(r.last_checked_at),
            last_available_at: wire::opt_timestamp(r.last_available_at),
            id: wire::id(r.id),
            created_at: wire::timestamp(r.created_at),
            updated_at: wire::timestamp(r.updated_at),
            paused_at: wire::opt_timestamp(r.paused_at),
            name: r.name,
            uid: r.uid,
            version: wire::non_empty(r.version),
            imported: wire::non_empty(r.imported),
            source_ref: wire::non_empty(r.source_ref),
            app_creation_workflow: r.app_creation_workflow,
            source_type_id: wire::id(r.source_type_id),
        }
    }
}
