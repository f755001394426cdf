//! Sources: the `sources` table, its events, and the cascade of a delete.

use chrono::{DateTime, Utc};
use keel_db::{Column, Page, Scope, Subresource, Table};
use keel_domain::{
    listing::ListQuery,
    sources_events::{EVENT_STREAM_TOPIC, EventType, Resource},
};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};

use super::{
    Event, Tenant, Write, application_authentications,
    applications::{self, ApplicationRow},
    authentications::{self, AuthenticationRow},
    by_id, catalogue,
    endpoints::{self, EndpointRow},
    outbox::{self, event_time, opt_event_time, tenant_field},
    rhc_connections,
};
use crate::{
    domain::source::{NewSource, SourceEdit},
    error::{Error, Result, constraint},
};

pub static TABLE: Table = Table {
    name: "sources",
    columns: &[
        Column::int("id"),
        Column::timestamp("created_at"),
        Column::timestamp("updated_at"),
        Column::timestamp("paused_at"),
        Column::text("name"),
        Column::text("uid"),
        Column::text("version"),
        Column::text("imported"),
        Column::text("source_ref"),
        Column::text("app_creation_workflow"),
        Column::int("source_type_id"),
        Column::text("availability_status"),
        Column::timestamp("last_checked_at"),
        Column::timestamp("last_available_at"),
    ],
    subresources: &[Subresource {
        name: "source_type",
        table: &catalogue::SOURCE_TYPES,
        foreign_key: "source_type_id",
    }],
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SourceRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub paused_at: Option<DateTime<Utc>>,
    pub name: String,
    pub uid: String,
    pub version: Option<String>,
    pub imported: Option<String>,
    pub source_ref: Option<String>,
    pub app_creation_workflow: String,
    pub availability_status: String,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_available_at: Option<DateTime<Utc>>,
    pub source_type_id: i64,
}

impl SourceRow {
    /// The `Source.*` payload: integer ids, explicit nulls, Go-layout timestamps.
    pub fn to_event(&self, tenant: &Tenant) -> Value {
        json!({
            "availability_status": self.availability_status,
            "last_checked_at": opt_event_time(self.last_checked_at),
            "last_available_at": opt_event_time(self.last_available_at),
            "id": self.id,
            "created_at": event_time(self.created_at),
            "updated_at": event_time(self.updated_at),
            "paused_at": opt_event_time(self.paused_at),
            "name": self.name,
            "uid": self.uid,
            "version": self.version,
            "imported": self.imported,
            "source_ref": self.source_ref,
            "app_creation_workflow": self.app_creation_workflow,
            "source_type_id": self.source_type_id,
            "tenant": tenant_field(tenant),
        })
    }
}

/// Which of a tenant's sources a list shows.
#[derive(Debug, Clone, Copy)]
pub enum SourceFilter {
    All,
    OfType(i64),
    /// Sources with an application of this type.
    WithApplicationType(i64),
    /// Sources linked to this Red Hat Connector connection.
    OfRhcConnection(i64),
}

pub async fn list(
    db: &PgPool,
    tenant: &Tenant,
    filter: SourceFilter,
    query: &ListQuery,
) -> Result<Page<SourceRow>> {
    let scopes = match filter {
        SourceFilter::All => vec![],
        SourceFilter::OfType(id) => vec![Scope::eq("t.source_type_id = ", id)],
        SourceFilter::WithApplicationType(id) => vec![Scope::around(
            "t.id IN (SELECT a.source_id FROM applications a WHERE a.application_type_id = ",
            id,
            ")",
        )],
        SourceFilter::OfRhcConnection(id) => vec![Scope::around(
            "t.id IN (SELECT l.source_id FROM source_rhc_connections l WHERE l.rhc_connection_id = ",
            id,
            ")",
        )],
    };
    super::tenant_page(db, tenant, &TABLE, "t.*", scopes, query).await
}

by_id!(SourceRow, "t.*", "sources", "source");

/// 404 unless the source exists in the tenant.
pub async fn ensure(db: &PgPool, tenant: &Tenant, id: i64) -> Result<()> {
    super::ensure_source(db, tenant, id).await
}

fn source_constraint(e: sqlx::Error) -> Error {
    match constraint(&e) {
        Some("sources_tenant_name_key") => Error::validation("name already exists in tenant"),
        Some("sources_source_type_id_fkey") => Error::validation("source type id not found"),
        _ => e.into(),
    }
}

/// Now as PostgreSQL stores it (microseconds): a payload must show the stored value.
pub(super) fn write_time() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_else(Utc::now)
}

impl SourceRow {
    /// The row a create will store at `now`, with a new uid; its id is [`outbox::PENDING_ID`]
    /// until the insert assigns one.
    pub(super) fn draft(source: &NewSource, now: DateTime<Utc>) -> Self {
        Self {
            id: outbox::PENDING_ID,
            created_at: now,
            updated_at: now,
            paused_at: None,
            name: source.name.clone(),
            uid: uuid::Uuid::new_v4().to_string(),
            version: source.version.clone(),
            imported: source.imported.clone(),
            source_ref: source.source_ref.clone(),
            app_creation_workflow: source.app_creation_workflow.as_str().to_owned(),
            availability_status: source.availability_status.as_str().to_owned(),
            last_checked_at: None,
            last_available_at: None,
            source_type_id: source.source_type_id,
        }
    }
}

/// Inserts a source and its `Source.create` event in one statement (one round trip, atomic,
/// no transaction needed): the hot path of the API. The event is rendered here and gets the
/// new id in SQL.
pub async fn insert_announced(
    conn: &mut PgConnection,
    tenant: &Tenant,
    source: &NewSource,
) -> Result<SourceRow> {
    let now = write_time();
    let draft = SourceRow::draft(source, now);
    let event_type = Resource::Source.create();
    let sql = format!(
        "WITH s AS ( \
           INSERT INTO sources (tenant_id, source_type_id, name, uid, version, imported, \
             source_ref, app_creation_workflow, availability_status, created_at, updated_at) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING *), \
         o AS ({}) \
         SELECT * FROM s",
        outbox::append_for_inserted("$11", "$12", "$13", "$14", "$15")
    );
    let row = sqlx::query_as::<_, SourceRow>(sqlx::AssertSqlSafe(sql))
        .bind(tenant.id())
        .bind(draft.source_type_id)
        .bind(&draft.name)
        .bind(&draft.uid)
        .bind(&draft.version)
        .bind(&draft.imported)
        .bind(&draft.source_ref)
        .bind(&draft.app_creation_workflow)
        .bind(&draft.availability_status)
        .bind(now)
        .bind(EVENT_STREAM_TOPIC)
        .bind(event_type.as_str())
        .bind(outbox::key(tenant))
        .bind(keel_events::outbox::headers_json(&outbox::headers(
            tenant, event_type,
        )))
        .bind(draft.to_event(tenant).to_string())
        .fetch_one(conn)
        .await
        .map_err(source_constraint)?;
    outbox::OUTBOX.committed();
    metrics::counter!("sources_events_recorded_total").increment(1);
    Ok(row)
}

/// Inserts a parsed source without its event (bulk create announces everything at the end).
pub async fn insert(w: &mut Write<'_>, source: &NewSource) -> Result<SourceRow> {
    let tenant_id = w.tenant().id();
    // One statement; the constraints answer "duplicate name" and "unknown type" race-free.
    sqlx::query_as(
        "INSERT INTO sources (tenant_id, source_type_id, name, uid, version, imported, \
           source_ref, app_creation_workflow, availability_status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
    )
    .bind(tenant_id)
    .bind(source.source_type_id)
    .bind(&source.name)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&source.version)
    .bind(&source.imported)
    .bind(&source.source_ref)
    .bind(source.app_creation_workflow.as_str())
    .bind(source.availability_status.as_str())
    .fetch_one(w.conn())
    .await
    .map_err(source_constraint)
}

/// Applies an edit and announces `Source.update`.
pub async fn update(w: &mut Write<'_>, id: i64, edit: &SourceEdit) -> Result<SourceRow> {
    let tenant = w.tenant();
    let row: SourceRow = sqlx::query_as(
        "UPDATE sources SET name = COALESCE($3, name), version = COALESCE($4, version), \
           imported = COALESCE($5, imported), source_ref = COALESCE($6, source_ref), \
           availability_status = COALESCE($7, availability_status), \
           last_checked_at = COALESCE($8, last_checked_at), \
           last_available_at = COALESCE($9, last_available_at) \
         WHERE id = $1 AND tenant_id = $2 RETURNING *",
    )
    .bind(id)
    .bind(tenant.id())
    .bind(&edit.name)
    .bind(&edit.version)
    .bind(&edit.imported)
    .bind(&edit.source_ref)
    .bind(edit.availability_status.map(|s| s.as_str()))
    .bind(edit.last_checked_at)
    .bind(edit.last_available_at)
    .fetch_optional(w.conn())
    .await
    .map_err(|e| match constraint(&e) {
        Some("sources_tenant_name_key") => {
            Error::bad_request("source name already exists in same tenant")
        }
        _ => e.into(),
    })?
    .ok_or_else(|| Error::not_found("source"))?;
    w.announce(Resource::Source.update(), row.to_event(tenant));
    Ok(row)
}

/// Deletes a source and everything under it, announcing sources-api-go's cascade:
/// ApplicationAuthentication.destroy*, Application.destroy*, Endpoint.destroy*,
/// RhcConnection.destroy* (connections no other source uses), Source.destroy, then
/// Authentication.destroy* for every authentication of the source.
pub async fn delete(w: &mut Write<'_>, id: i64) -> Result<()> {
    let tenant = w.tenant();
    // Locks the row so a concurrent child insert waits for the cascade.
    let source: SourceRow =
        sqlx::query_as("SELECT * FROM sources WHERE id = $1 AND tenant_id = $2 FOR UPDATE")
            .bind(id)
            .bind(tenant.id())
            .fetch_optional(w.conn())
            .await?
            .ok_or_else(|| Error::not_found("source"))?;
    let links = application_authentications::delete_for_source(w, source.id).await?;
    let auths: Vec<AuthenticationRow> = super::delete_of_source(
        w,
        &authentications::TABLE,
        authentications::COLUMNS,
        source.id,
    )
    .await?;
    let apps: Vec<ApplicationRow> =
        super::delete_of_source(w, &applications::TABLE, "t.*", source.id).await?;
    let endpoints: Vec<EndpointRow> =
        super::delete_of_source(w, &endpoints::TABLE, "t.*", source.id).await?;
    let connections = rhc_connections::delete_for_source(w, source.id).await?;
    sqlx::query("DELETE FROM sources WHERE id = $1")
        .bind(source.id)
        .execute(w.conn())
        .await?;
    let mut events: Vec<Event> = by_id(links, |r| r.id)
        .iter()
        .map(|l| {
            Event::new(
                Resource::ApplicationAuthentication.destroy(),
                l.to_event(tenant),
            )
        })
        .collect();
    events.extend(
        by_id(apps, |r| r.id)
            .iter()
            .map(|a| Event::new(Resource::Application.destroy(), a.to_event(tenant))),
    );
    events.extend(
        by_id(endpoints, |r| r.id)
            .iter()
            .map(|e| Event::new(Resource::Endpoint.destroy(), e.to_event(tenant))),
    );
    events.extend(connections);
    events.push(Event::new(
        Resource::Source.destroy(),
        source.to_event(tenant),
    ));
    events.extend(
        by_id(auths, |r| r.id)
            .iter()
            .map(|a| Event::new(Resource::Authentication.destroy(), a.to_event(tenant))),
    );
    tracing::info!(source_id = id, events = events.len(), "source deleted");
    w.announce_all(events);
    Ok(())
}

/// Pauses or resumes a source and its applications, announcing each.
pub async fn set_paused(w: &mut Write<'_>, id: i64, paused: bool) -> Result<()> {
    let tenant = w.tenant();
    let source: SourceRow = sqlx::query_as(
        "UPDATE sources SET paused_at = CASE WHEN $3 THEN now() ELSE NULL END \
         WHERE id = $1 AND tenant_id = $2 RETURNING *",
    )
    .bind(id)
    .bind(tenant.id())
    .bind(paused)
    .fetch_optional(w.conn())
    .await?
    .ok_or_else(|| Error::not_found("source"))?;
    w.announce(
        EventType::paused(Resource::Source, paused),
        source.to_event(tenant),
    );
    applications::set_paused(w, applications::Paused::OfSource(id), paused).await
}

/// Every tenant's sources, with each one's account and org: the internal API's list, the one
/// read that crosses tenants.
#[derive(Debug, sqlx::FromRow)]
pub struct AcrossTenantsRow {
    pub id: i64,
    pub availability_status: String,
    pub tenant: Option<String>,
    pub org_id: Option<String>,
}

static ACROSS_TENANTS: Table = Table {
    name: "sources",
    columns: &[Column::int("id"), Column::text("availability_status")],
    subresources: &[],
};

/// `skip_empty`: only sources with at least one application.
pub async fn list_across_tenants(
    db: &PgPool,
    skip_empty: bool,
    query: &ListQuery,
) -> Result<Page<AcrossTenantsRow>> {
    let mut scopes = Vec::new();
    if skip_empty {
        scopes.push(Scope::raw(
            "EXISTS (SELECT 1 FROM applications a WHERE a.source_id = t.id)",
        ));
    }
    super::page(
        db,
        &ACROSS_TENANTS,
        "t.id, t.availability_status, \
         (SELECT external_tenant FROM tenants WHERE id = t.tenant_id) AS tenant, \
         (SELECT org_id FROM tenants WHERE id = t.tenant_id) AS org_id",
        scopes,
        query,
    )
    .await
}
