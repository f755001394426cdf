//! The document POSTed to a deployment's `callbackUrl` on each phase change (the seed's body,
//! with the KIDP broker's `status` and `error`), and what its signature covers.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use super::phase::Phase;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Callback {
    pub deployment_id: String,
    pub resource_type: String,
    pub resource_name: String,
    pub namespace: String,
    /// `success`, `failed` or `in-progress` (the KIDP broker's callback client).
    pub status: &'static str,
    pub phase: Phase,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_metadata: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_monthly_cost: Option<f64>,
}

/// `in-progress` while work is owed, `failed` for Failed, else `success`.
pub fn status(phase: Phase) -> &'static str {
    match phase {
        Phase::Provisioning | Phase::Deleting => "in-progress",
        Phase::Failed => "failed",
        Phase::Ready | Phase::Deleted => "success",
    }
}

/// RFC 3339 in UTC with seconds, as Go's `time.RFC3339` prints (`2025-10-03T09:30:00Z`).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What `X-KIDP-Signature` signs: the `X-KIDP-Timestamp` value, `.`, the exact body bytes.
pub fn signed_message(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(timestamp.len() + 1 + body.len());
    m.extend_from_slice(timestamp.as_bytes());
    m.push(b'.');
    m.extend_from_slice(body);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_times() {
        assert_eq!(status(Phase::Provisioning), "in-progress");
        assert_eq!(status(Phase::Failed), "failed");
        assert_eq!(status(Phase::Deleted), "success");
        let t = "2025-10-03T09:30:00.123Z".parse().unwrap();
        assert_eq!(rfc3339(t), "2025-10-03T09:30:00Z");
        assert_eq!(signed_message("T", b"{}"), b"T.{}");
    }
}
