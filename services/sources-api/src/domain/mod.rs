//! What a request means once parsed: validated values with sources-api-go's messages.

/// Authentications: what a create request must name.
pub mod authentication;
/// Endpoints: hosts, schemes, ports and statuses.
pub mod endpoint;
/// How large each field sent may be.
pub mod limits;
/// Sources: creation and edits.
pub mod source;
/// Availability reports sent on edits.
pub mod status;

use serde_json::Value;

/// Parses an id sent as a JSON number or a numeric string, as Go's `InterfaceToInt64` does.
pub fn parse_flexible_id(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A raw value as Go's `%v` prints it in messages: strings bare, anything else as JSON.
pub fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Timestamps clients may send on status fields: Go's `"2006-01-02 15:04:05 MST"` (UTC) or
/// RFC 3339.
pub fn parse_status_time(raw: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    source::parse_record_time(raw).or_else(|| {
        chrono::DateTime::parse_from_rfc3339(raw)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    })
}

/// sources-api-go's message for a bad `availability_status` on an edit.
pub const INVALID_STATUS: &str = "availability status invalid. Must be one of \"available\", \"in_progress\", \"partially_available\" or \"unavailable\"";

/// sources-api-go's message for a bad `availability_status` sent to a paused resource.
pub const PAUSED_INVALID_STATUS: &str = "invalid availability status. Must be one of \"available\", \"in_progress\", \"partially_available\" or \"unavailable\"";

/// sources-api-go's message for a bad `last_*_at`.
pub const INVALID_DATE: &str =
    "the provided date is in an invalid format. Expected format: \"2006-01-02 15:04:05 MST\"";
