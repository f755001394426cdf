//! A followed source's sync row (`cost.api_sources`) as the workers and the read API take it.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::{Object, SyncState};

/// A followed source, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SourceRow {
    pub source_id: i64,
    pub source_uuid: Option<Uuid>,
    pub name: Option<String>,
    pub auth_header: String,
    pub account_id: Option<String>,
    pub org_id: String,
    pub source_type: String,
    pub authentication: Json<Value>,
    pub billing_source: Json<Value>,
    pub koku_uuid: Option<String>,
    pub application_id: Option<i64>,
    pub paused: bool,
    pub status: Json<Value>,
    pub state: String,
    pub state_reason: Option<String>,
    pub created_timestamp: DateTime<Utc>,
    pub linked_timestamp: Option<DateTime<Utc>>,
}

impl SourceRow {
    pub fn state(&self) -> SyncState {
        SyncState::parse(&self.state).unwrap_or(SyncState::New)
    }

    /// The stored (sealed) credentials.
    pub fn credentials(&self) -> Object {
        self.authentication.0["credentials"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    pub fn data_source(&self) -> Object {
        self.billing_source.0["data_source"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }
}

pub(super) const SOURCE_COLUMNS: &str = "source_id, source_uuid, name, auth_header, account_id, org_id, source_type, \
     authentication, billing_source, koku_uuid, application_id, paused, status, state, state_reason, \
     created_timestamp, linked_timestamp";

/// [`SOURCE_COLUMNS`] of the table aliased `s`.
pub(super) static SOURCE_COLUMNS_OF_S: LazyLock<String> = LazyLock::new(|| {
    SOURCE_COLUMNS
        .split(',')
        .map(|c| format!("s.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
});
