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
