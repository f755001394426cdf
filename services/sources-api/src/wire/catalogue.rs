//! The catalogue on the wire: source types, application types, their metadata.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    store::catalogue::{ApplicationTypeRow, MetaDataRow, SourceTypeRow},
    wire,
};

/// A kind of source (amazon, azure, openshift, …) and the form schema of its credentials.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceType {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    pub category: String,
    pub name: String,
    pub product_name: String,
    pub vendor: String,
    pub schema: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
}

impl From<SourceTypeRow> for SourceType {
    fn from(r: SourceTypeRow) -> Self {
        Self {
            id: wire::id(r.id),
            created_at: wire::timestamp(r.created_at),
            updated_at: wire::timestamp(r.updated_at),
            category: r.category,
            name: r.name,
            product_name: r.product_name,
            vendor: r.vendor,
            schema: r.schema,
            icon_url: wire::non_empty(r.icon_url),
        }
    }
}

/// An application that sources can be attached to, e.g. `/insights/platform/cost-management`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationType {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    pub name: String,
    pub display_name: String,
    /// Always an array.
    pub dependent_applications: Value,
    /// Names of the source types this application supports.
    pub supported_source_types: Value,
    /// Authentication types per source type name.
    pub supported_authentication_types: Value,
}

impl From<ApplicationTypeRow> for ApplicationType {
    fn from(r: ApplicationTypeRow) -> Self {
        Self {
            id: wire::id(r.id),
            created_at: wire::timestamp(r.created_at),
            updated_at: wire::timestamp(r.updated_at),
            name: r.name,
            display_name: r.display_name,
            dependent_applications: match r.dependent_applications {
                Value::Array(_) => r.dependent_applications,
                _ => Value::Array(Vec::new()),
            },
            supported_source_types: r.supported_source_types,
            supported_authentication_types: r.supported_authentication_types,
        }
    }
}

/// A named value an application type publishes, e.g. cost-management's AWS account number.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppMetaData {
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
    pub name: String,
    pub payload: Value,
    #[schema(pattern = r"^\d+$")]
    pub application_type_id: String,
}

impl From<MetaDataRow> for AppMetaData {
    fn from(r: MetaDataRow) -> Self {
        Self {
            id: wire::id(r.id),
            created_at: wire::timestamp(r.created_at),
            updated_at: wire::timestamp(r.updated_at),
            name: r.name,
            payload: r.payload,
            application_type_id: wire::id(r.application_type_id),
        }
    }
}
