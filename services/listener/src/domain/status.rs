//! The availability status the listener reports back to sources-api, and Koku's user-facing
//! texts for what went wrong.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const AWS_ROLE_ARN_MESSAGE: &str = "The role ARN was entered incorrectly for this source. Edit your AWS source and verify the name of your ARN.";
pub const DUPLICATE_MESSAGE: &str = "Cost management does not allow duplicate accounts. An integration already exists with these details. Edit integration settings to configure a new integration.";
pub const PROVIDER_MESSAGE: &str = "Something went wrong creating your source, please try again.";
const MISSING_FIELDS_MESSAGE: &str = "The source is missing one or more required fields.";

pub fn missing_fields_message() -> String {
    MISSING_FIELDS_MESSAGE.to_owned()
}

pub fn too_long_message(max: usize) -> String {
    format!("Ensure this field has no more than {max} characters.")
}

/// Why a source cannot become (or stay) a working provider: Koku's error key and the text
/// the user sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// Another provider already has these credentials and billing source.
    pub fn duplicate() -> Self {
        Self::new("source.duplicate", DUPLICATE_MESSAGE)
    }

    /// The provider could not be made for this source (its uuid belongs to another org).
    pub fn provider() -> Self {
        Self::new("source.provider", PROVIDER_MESSAGE)
    }
}

/// The body of `PATCH /applications/{id}`, exactly as Koku's `build_source_status` sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusBody {
    #[schema(example = "available")]
    pub availability_status: String,
    #[schema(example = "")]
    pub availability_status_error: String,
}

impl StatusBody {
    pub fn available() -> Self {
        Self {
            availability_status: "available".to_owned(),
            availability_status_error: String::new(),
        }
    }

    pub fn unavailable(problem: &Problem) -> Self {
        Self {
            availability_status: "unavailable".to_owned(),
            availability_status_error: problem.message.clone(),
        }
    }
}
