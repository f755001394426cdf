//! The events every write announces on `platform.sources.event-stream`, appended to the
//! outbox in the write's own transaction, with sources-api-go's headers, key and payload
//! conventions.

use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use keel_domain::sources_events::{EVENT_STREAM_TOPIC, EventType};
use keel_events::{
    NewMessage, Outbox,
    outbox::{AppendColumns, AppendError},
};
use serde_json::Value;
use sqlx::PgConnection;

use super::Tenant;

/// sources-api's outbox (`sources.outbox`, built by keel-events' migrations).
pub const OUTBOX: Outbox = Outbox::new("sources", "sources.outbox");

/// One event: its type (`Source.create`, …) and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_type: EventType,
    pub payload: Value,
}

impl Event {
    pub fn new(event_type: EventType, payload: Value) -> Self {
        Self {
            event_type,
            payload,
        }
    }
}

/// Event timestamps use Go's `"2006-01-02 15:04:05 MST"` layout, in UTC. Written out field by
/// field: every write renders several, and `format` parses its pattern on each call.
pub fn event_time(t: DateTime<Utc>) -> String {
    let (d, s) = (t.date_naive(), t.time());
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        d.year(),
        d.month(),
        d.day(),
        s.hour(),
        s.minute(),
        s.second()
    )
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
pub fn headers(tenant: &Tenant, event_type: EventType) -> Vec<(String, String)> {
    let mut headers = Vec::with_capacity(5);
    if let Some(account) = tenant.external_tenant.as_ref().filter(|v| !v.is_empty()) {
        headers.push(("x-rh-sources-account-number".to_owned(), account.clone()));
    }
    if let Some(org) = tenant.org_id.as_ref().filter(|v| !v.is_empty()) {
        headers.push(("x-rh-sources-org-id".to_owned(), org.clone()));
    }
    headers.push(("x-rh-identity".to_owned(), tenant.identity.header.clone()));
    headers.push(("event_type".to_owned(), event_type.as_str().to_owned()));
    headers.push(("encoding".to_owned(), "json".to_owned()));
    headers
}

/// The id written into the payload of a row that does not exist yet;
/// [`append_for_inserted`] replaces it with the id the insert assigns, in the same statement.
pub const PENDING_ID: i64 = i64::MIN;

/// The SQL of a CTE appending the event of each row inserted by the CTE `s`: parameters
/// `topic`, `event_type`, `key`, `headers` and `payload` (rendered with [`PENDING_ID`] as its
/// id, replaced by `s.id`) name the statement's parameters.
pub fn append_for_inserted(
    topic: &str,
    event_type: &str,
    key: &str,
    headers: &str,
    payload: &str,
) -> String {
    append_for_inserted_from(
        "s",
        AppendColumns {
            topic,
            event_type,
            key,
            headers,
            payload,
        },
    )
}

/// [`append_for_inserted`] for the rows of the CTE `from`, which has the inserted `id`.
pub fn append_for_inserted_from(from: &str, columns: AppendColumns<'_>) -> String {
    let payload = format!(
        "replace({}, '\"id\":{PENDING_ID}', '\"id\":' || {from}.id)::json",
        columns.payload
    );
    OUTBOX.append_from(
        from,
        AppendColumns {
            payload: &payload,
            ..columns
        },
    )
}

/// The value written in a payload for a time only the database knows yet;
/// [`append_with_time`] replaces it.
pub const PENDING_TIME: &str = "@keel-pending-time@";

/// The SQL of a CTE appending one message per row of `from` whose payload has
/// [`PENDING_TIME`] for `field`, replaced by `from.<field>` in the event time layout.
pub fn append_with_time(from: &str, field: &str, columns: AppendColumns<'_>) -> String {
    let payload = format!(
        "replace({}, '\"{field}\":\"{PENDING_TIME}\"', \
           '\"{field}\":\"' || to_char({from}.{field} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
           || ' UTC\"')::json",
        columns.payload
    );
    OUTBOX.append_from(
        from,
        AppendColumns {
            payload: &payload,
            ..columns
        },
    )
}

/// Writes `events` to the outbox, in order, inside the caller's transaction.
pub async fn record(
    conn: &mut PgConnection,
    tenant: &Tenant,
    events: &[Event],
) -> crate::error::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let key = key(tenant);
    let rendered: Vec<(Vec<(String, String)>, String)> = events
        .iter()
        .map(|e| (headers(tenant, e.event_type), e.payload.to_string()))
        .collect();
    let messages: Vec<NewMessage<'_>> = events
        .iter()
        .zip(&rendered)
        .map(|(e, (headers, payload))| NewMessage {
            topic: EVENT_STREAM_TOPIC,
            event_type: e.event_type.as_str(),
            key: &key,
            headers,
            payload,
        })
        .collect();
    OUTBOX.append(conn, &messages).await.map_err(|e| match e {
        AppendError::Database(e) => e.into(),
        too_large => crate::error::Error::bad_request(format_args!(
            "the change is too large to announce: {too_large}"
        )),
    })?;
    metrics::counter!("sources_events_recorded_total").increment(events.len() as u64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use keel_domain::sources_events::Resource;

    use super::*;

    fn tenant(account: Option<&str>, org: Option<&str>) -> Tenant {
        Tenant::for_tests(account, org, "eyJ9")
    }

    #[test]
    fn key_prefers_org_then_account_then_identity() {
        assert_eq!(key(&tenant(Some("a"), Some("o"))), "o");
        assert_eq!(key(&tenant(Some("a"), None)), "a");
        assert_eq!(key(&tenant(None, None)), "eyJ9");
    }

    #[test]
    fn headers_are_in_sources_api_go_order() {
        let names = |t: &Tenant| -> Vec<String> {
            headers(t, Resource::Source.create())
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(
            names(&tenant(Some("a"), Some("o"))),
            [
                "x-rh-sources-account-number",
                "x-rh-sources-org-id",
                "x-rh-identity",
                "event_type",
                "encoding"
            ]
        );
        assert_eq!(
            names(&tenant(None, Some("o"))),
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
