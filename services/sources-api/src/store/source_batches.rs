//! Source creates of many requests inserted together (the group commit of `POST /sources`,
//! driven by `crate::creates`).

use std::collections::HashMap;

use keel_domain::sources_events::{EVENT_STREAM_TOPIC, Resource};
use keel_events::outbox::AppendColumns;
use sqlx::PgConnection;

use super::{
    Tenant, outbox,
    sources::{SourceRow, write_time},
};
use crate::{domain::source::NewSource, error::Result};

/// The source a create request asks for, in its tenant.
#[derive(Debug, Clone)]
pub struct Draft {
    pub tenant: Tenant,
    pub source: NewSource,
}

/// Inserts the sources of many create requests (of any tenants) with their `Source.create`
/// events in one statement, so concurrent creates share one commit. Answers, per draft in
/// order, the stored row, or `None` when it was not inserted (its name is taken in its tenant,
/// or its type is unknown): the caller runs those alone with
/// [`super::sources::insert_announced`], which names the reason.
pub async fn insert_many_announced(
    conn: &mut PgConnection,
    drafts: &[&Draft],
) -> Result<Vec<Option<SourceRow>>> {
    let now = write_time();
    let event_type = Resource::Source.create();
    let mut columns = ManyColumns::default();
    for &Draft { tenant, source } in drafts {
        let row = SourceRow::draft(source, now);
        columns.tenant_ids.push(tenant.id());
        columns.keys.push(outbox::key(tenant));
        columns
            .headers
            .push(keel_events::outbox::headers_json(&outbox::headers(
                tenant, event_type,
            )));
        columns.payloads.push(row.to_event(tenant).to_string());
        columns.rows.push(row);
    }
    let sql = format!(
        "WITH v AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], \
             $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::jsonb[], \
             $12::text[]) AS v(tenant_id, source_type_id, name, uid, version, imported, source_ref, \
             workflow, status, key, headers, payload)), \
         s AS (INSERT INTO sources (tenant_id, source_type_id, name, uid, version, imported, \
             source_ref, app_creation_workflow, availability_status, created_at, updated_at) \
           SELECT v.tenant_id, v.source_type_id, v.name, v.uid, v.version, v.imported, \
             v.source_ref, v.workflow, v.status, $13, $13 \
           FROM v JOIN source_types t ON t.id = v.source_type_id \
           ON CONFLICT (tenant_id, name) DO NOTHING RETURNING *), \
         e AS (SELECT v.key, v.headers, v.payload, s.id FROM s JOIN v ON v.uid = s.uid), \
         o AS ({}) \
         SELECT * FROM s",
        outbox::append_for_inserted_from(
            "e",
            AppendColumns {
                topic: "$14",
                event_type: "$15",
                key: "e.key",
                headers: "e.headers",
                payload: "e.payload",
            }
        )
    );
    let rows = &columns.rows;
    let stored: Vec<SourceRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&columns.tenant_ids)
        .bind(rows.iter().map(|r| r.source_type_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.uid.as_str()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.version.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.imported.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.source_ref.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.app_creation_workflow.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.availability_status.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(&columns.keys)
        .bind(&columns.headers)
        .bind(&columns.payloads)
        .bind(now)
        .bind(EVENT_STREAM_TOPIC)
        .bind(event_type.as_str())
        .fetch_all(conn)
        .await?;
    outbox::OUTBOX.committed();
    metrics::counter!("sources_events_recorded_total").increment(stored.len() as u64);
    let mut by_uid: HashMap<String, SourceRow> =
        stored.into_iter().map(|r| (r.uid.clone(), r)).collect();
    Ok(rows.iter().map(|r| by_uid.remove(&r.uid)).collect())
}

/// The columns of [`insert_many_announced`]'s arrays.
#[derive(Default)]
struct ManyColumns {
    rows: Vec<SourceRow>,
    tenant_ids: Vec<i64>,
    keys: Vec<String>,
    headers: Vec<sqlx::types::Json<Vec<[String; 2]>>>,
    payloads: Vec<String>,
}
