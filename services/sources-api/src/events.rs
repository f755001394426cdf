//! The event outbox. Every write that sources-api-go announces on
//! `platform.sources.event-stream` records its events here, in the same transaction as the
//! change: a failed write leaves no event and a committed one always has its events. A relay
//! moves the rows to Kafka.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;

use crate::tenant::Tenant;

pub use keel_domain::sources_events::EVENT_STREAM_TOPIC;

/// One event: its type (`Source.create`, …) and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_type: String,
    pub payload: Value,
}

impl Event {
    pub fn new(event_type: impl Into<String>, payload: Value) -> Self {
        Self {
            event_type: event_type.into(),
            payload,
        }
    }
}

/// Event timestamps use Go's `"2006-01-02 15:04:05 MST"` layout, in UTC.
pub fn event_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn opt_event_time(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| Value::String(event_time(t)))
}

/// The EBS account number sent as `tenant` in payloads ("" when the tenant has none).
pub fn tenant_field(tenant: &Tenant) -> Value {
    Value::String(tenant.external_tenant.clone().unwrap_or_default())
}

/// Org id, else account number, else the identity header: one org's events share a key.
pub fn key(tenant: &Tenant) -> String {
    tenant
        .org_id
        .clone()
        .filter(|v| !v.is_empty())
        .or_else(|| tenant.external_tenant.clone().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| tenant.identity.header.clone())
}

/// Headers in sources-api-go's order; account and org are the tenant's stored values.
pub fn headers(tenant: &Tenant, event_type: &str) -> Vec<(String, String)> {
    let mut headers = Vec::with_capacity(5);
    if let Some(account) = tenant.external_tenant.as_ref().filter(|v| !v.is_empty()) {
        headers.push(("x-rh-sources-account-number".to_owned(), account.clone()));
    }
    if let Some(org) = tenant.org_id.as_ref().filter(|v| !v.is_empty()) {
        headers.push(("x-rh-sources-org-id".to_owned(), org.clone()));
    }
    headers.push(("x-rh-identity".to_owned(), tenant.identity.header.clone()));
    headers.push(("event_type".to_owned(), event_type.to_owned()));
    headers.push(("encoding".to_owned(), "json".to_owned()));
    headers
}

/// The id written into the payload of a row that does not exist yet; [`NEW_ROW_ID_SQL`]
/// replaces it with the id the insert assigns, in the same statement.
pub const PENDING_ID: i64 = i64::MIN;

/// SQL that turns a payload rendered with [`PENDING_ID`] (bound as `$payload`) into the
/// payload of the inserted row `s`: `replace(<payload>, '"id":<PENDING_ID>', '"id":' || s.id)`.
pub fn with_inserted_id(payload_param: &str) -> String {
    format!("replace({payload_param}, '\"id\":{PENDING_ID}', '\"id\":' || s.id)::json")
}

/// The headers column value for one event.
pub fn headers_json(tenant: &Tenant, event_type: &str) -> sqlx::types::Json<Vec<[String; 2]>> {
    sqlx::types::Json(
        headers(tenant, event_type)
            .into_iter()
            .map(|(k, v)| [k, v])
            .collect(),
    )
}

/// Writes `events` to the outbox, in order, inside the caller's transaction.
pub async fn record(
    conn: &mut PgConnection,
    tenant: &Tenant,
    events: &[Event],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let key = key(tenant);
    let mut qb =
        sqlx::QueryBuilder::new("INSERT INTO outbox (topic, event_type, key, headers, payload) ");
    qb.push_values(events, |mut row, event| {
        row.push_bind(EVENT_STREAM_TOPIC)
            .push_bind(event.event_type.clone())
            .push_bind(key.clone())
            .push_bind(headers_json(tenant, &event.event_type))
            .push_bind(event.payload.to_string())
            .push_unseparated("::json");
    });
    qb.build().execute(conn).await?;
    metrics::counter!("sources_events_recorded_total").increment(events.len() as u64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use keel_domain::RequestIdentity;

    use super::*;

    fn tenant(account: Option<&str>, org: Option<&str>) -> Tenant {
        Tenant {
            id: 1,
            external_tenant: account.map(str::to_owned),
            org_id: org.map(str::to_owned),
            identity: RequestIdentity {
                header: "eyJ9".into(),
                account_number: None,
                org_id: None,
                user_id: None,
                identity: Default::default(),
            },
        }
    }

    #[test]
    fn key_prefers_org_then_account_then_identity() {
        assert_eq!(key(&tenant(Some("a"), Some("o"))), "o");
        assert_eq!(key(&tenant(Some("a"), None)), "a");
        assert_eq!(key(&tenant(None, None)), "eyJ9");
    }

    #[test]
    fn headers_are_in_sources_api_go_order() {
        let names: Vec<String> = headers(&tenant(Some("a"), Some("o")), "Source.create")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            names,
            [
                "x-rh-sources-account-number",
                "x-rh-sources-org-id",
                "x-rh-identity",
                "event_type",
                "encoding"
            ]
        );
        let only_org: Vec<String> = headers(&tenant(None, Some("o")), "x")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            only_org,
            [
                "x-rh-sources-org-id",
                "x-rh-identity",
                "event_type",
                "encoding"
            ]
        );
    }

    #[test]
    fn event_times_use_the_go_layout() {
        let t = "2021-12-06T18:06:05.123Z".parse().unwrap();
        assert_eq!(event_time(t), "2021-12-06 18:06:05 UTC");
        assert_eq!(opt_event_time(None), Value::Null);
    }
}
