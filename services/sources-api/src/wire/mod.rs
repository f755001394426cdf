//! Wire formats: the JSON shapes of each resource (answers and requests), ids as strings,
//! whole-second RFC 3339 timestamps, empty fields omitted.

pub mod application_authentications;
pub mod applications;
pub mod authentications;
pub mod catalogue;
pub mod endpoints;
pub mod rhc_connections;
pub mod secrets;
pub mod sources;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// What a checked resource (application, endpoint, connection) reports about its
/// availability; each field is omitted when empty.
#[derive(Debug, Serialize, ToSchema)]
pub struct Availability {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_checked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_available_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_status_error: Option<String>,
}

impl Availability {
    pub fn new(
        status: Option<String>,
        error: Option<String>,
        last_checked_at: Option<DateTime<Utc>>,
        last_available_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            availability_status: non_empty(status),
            last_checked_at: opt_timestamp(last_checked_at),
            last_available_at: opt_timestamp(last_available_at),
            availability_status_error: non_empty(error),
        }
    }
}

/// Timestamps as sources-api-go writes them: RFC 3339, whole seconds, `Z`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn opt_timestamp(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(timestamp)
}

/// Ids and foreign keys travel as JSON strings.
pub fn id(value: i64) -> String {
    value.to_string()
}

/// sources-api-go omits empty strings as well as nulls.
pub fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_drop_fractions_and_use_z() {
        let t = "2024-05-01T10:00:00.987654Z".parse().unwrap();
        assert_eq!(timestamp(t), "2024-05-01T10:00:00Z");
    }
}
