//! Applications: the `applications` table, its events, pausing, and the cascade of a delete.

use chrono::{DateTime, Utc};
use keel_db::{Column, Subresource, Table};
use keel_domain::{
    AvailabilityStatus,
    sources_events::{EVENT_STREAM_TOPIC, EventType, Resource},
};
use keel_events::outbox::AppendColumns;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};

use super::{
    Event, Tenant, Write, application_authentications, authentications, by_id, catalogue, jsonb,
    outbox::{self, event_time, opt_event_time, tenant_field},
};
use crate::{
    domain::status::StatusReport,
    error::{Error, Result, constraint},
};

pub static TABLE: Table = Table {
    name: "applications",
    columns: &[
        Column::int("id"),
        Column::timestamp("created_at"),
        Column::timestamp("updated_at"),
        Column::timestamp("paused_at"),
        Column::text("availability_status"),
        Column::timestamp("last_checked_at"),
        Column::timestamp("last_available_at"),
        Column::text("availability_status_error"),
        Column::json("extra"),
        Column::int("source_id"),
        Column::int("application_type_id"),
    ],
    subresources: &[Subresource {
        name: "application_type",
        table: &catalogue::APPLICATION_TYPES,
        foreign_key: "application_type_id",
    }],
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApplicationRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub paused_at: Option<DateTime<Utc>>,
    pub availability_status: String,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_available_at: Option<DateTime<Utc>>,
    pub availability_status_error: Option<String>,
    pub extra: Value,
    pub superkey_data: Option<Value>,
    pub source_id: i64,
    pub application_type_id: i64,
}

impl ApplicationRow {
    /// The `Application.*` event payload: integer ids, explicit nulls.
    pub fn to_event(&self, tenant: &Tenant) -> Value {
        json!({
            "id": self.id,
            "created_at": event_time(self.created_at),
            "updated_at": event_time(self.updated_at),
            "paused_at": opt_event_time(self.paused_at),
            "availability_status": self.availability_status,
            "last_checked_at": opt_event_time(self.last_checked_at),
            "last_available_at": opt_event_time(self.last_available_at),
            "availability_status_error": self.availability_status_error,
            "extra": self.extra,
            "superkey_data": self.superkey_data,
            "source_id": self.source_id,
            "application_type_id": self.application_type_id,
            "tenant": tenant_field(tenant),
        })
    }
}

/// An application to create, its ids parsed.
#[derive(Debug, Clone)]
pub struct NewApplication {
    pub source_id: i64,
    pub application_type_id: i64,
    pub extra: Option<Value>,
    /// `None`: `in_progress`.
    pub availability_status: Option<AvailabilityStatus>,
}

/// What an edit sets; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct ApplicationEdit {
    pub extra: Option<Value>,
    pub superkey_data: Option<Value>,
    pub report: StatusReport,
}

by_id!(ApplicationRow, "t.*", "applications", "application");
list_by_source!(ApplicationRow);

/// Inserts an application after the checks sources-api-go makes (`incompatible` is the
/// message when the source's type does not support the application type); announces nothing.
pub async fn insert(
    w: &mut Write<'_>,
    new: NewApplication,
    incompatible: impl FnOnce() -> Error,
) -> Result<ApplicationRow> {
    let tenant = w.tenant();
    let extra = new
        .extra
        .filter(|e| !e.is_null())
        .unwrap_or_else(|| json!({}));
    let (source_id, type_id) = (new.source_id, new.application_type_id);
    // The source's tenant and the type's support are conditions of the insert itself: one
    // round trip; only a refused insert asks which condition failed.
    let inserted: Option<ApplicationRow> = sqlx::query_as(
        "INSERT INTO applications (tenant_id, source_id, application_type_id, extra, availability_status) \
         SELECT $1, s.id, at.id, $4, COALESCE($5, 'in_progress') \
         FROM sources s JOIN source_types st ON st.id = s.source_type_id, application_types at \
         WHERE s.id = $2 AND s.tenant_id = $1 AND at.id = $3 \
           AND jsonb_exists(at.supported_source_types, st.name) \
         RETURNING *",
    )
    .bind(tenant.id())
    .bind(source_id)
    .bind(type_id)
    .bind(&extra)
    .bind(new.availability_status.map(AvailabilityStatus::as_str))
    .fetch_optional(w.conn())
    .await
    .map_err(|e| match constraint(&e) {
        Some("applications_app_type_id_source_id_tenant_id_idx") => Error::bad_request(format_args!(
            "Application of application type = {type_id} already exists for the source id = {source_id}"
        )),
        _ => e.into(),
    })?;
    match inserted {
        Some(row) => Ok(row),
        None if !super::source_exists(w.conn(), tenant, source_id).await? => {
            Err(Error::validation("source id not found"))
        }
        None => Err(incompatible()),
    }
}

/// Applies an edit, lets the source follow a changed status, and announces
/// `Application.update`.
pub async fn update(
    w: &mut Write<'_>,
    current: &ApplicationRow,
    edit: &ApplicationEdit,
) -> Result<ApplicationRow> {
    let tenant = w.tenant();
    let update = sqlx::query_as(
        "UPDATE applications SET extra = COALESCE($3, extra), \
           superkey_data = COALESCE($4, superkey_data), \
           availability_status = COALESCE($5, availability_status), \
           availability_status_error = COALESCE($6, availability_status_error), \
           last_checked_at = COALESCE($7, last_checked_at), \
           last_available_at = COALESCE($8, last_available_at) \
         WHERE id = $1 AND tenant_id = $2 RETURNING *",
    )
    .bind(current.id)
    .bind(tenant.id())
    .bind(&edit.extra)
    .bind(&edit.superkey_data);
    let row: ApplicationRow = super::bind_report(update, &edit.report)
        .fetch_optional(w.conn())
        .await?
        .ok_or_else(|| Error::not_found("application"))?;
    adopt_status(w.conn(), &row, &current.availability_status).await?;
    w.announce(Resource::Application.update(), row.to_event(tenant));
    Ok(row)
}

/// The tenant's application `id` for an edit, or 404. Its source's row is locked first, as a
/// source's delete locks it before its applications: an edit that then changes the source's
/// status takes the two rows in the same order and cannot deadlock with the delete.
pub async fn find_for_edit(w: &mut Write<'_>, id: i64) -> Result<ApplicationRow> {
    let tenant_id = w.tenant().id();
    sqlx::query_as(
        "SELECT t.* FROM applications t JOIN sources s ON s.id = t.source_id \
         WHERE t.id = $1 AND t.tenant_id = $2 FOR NO KEY UPDATE OF s",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(w.conn())
    .await?
    .ok_or_else(|| Error::not_found("application"))
}

/// Locks the source of the tenant's application `id` (see [`find_for_edit`]).
pub(super) async fn lock_source(conn: &mut PgConnection, tenant: &Tenant, id: i64) -> Result<()> {
    sqlx::query(
        "SELECT 1 FROM sources s JOIN applications a ON a.source_id = s.id \
         WHERE a.id = $1 AND a.tenant_id = $2 FOR NO KEY UPDATE OF s",
    )
    .bind(id)
    .bind(tenant.id())
    .execute(conn)
    .await?;
    Ok(())
}

/// An application read for an optimistic edit, with its row version (`xmin`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Versioned {
    #[sqlx(flatten)]
    pub row: ApplicationRow,
    version: String,
}

/// The tenant's application `id` with its row version, or 404.
pub async fn find_versioned(db: &PgPool, tenant: &Tenant, id: i64) -> Result<Versioned> {
    sqlx::query_as(
        "SELECT t.xmin::text AS version, t.* FROM applications t \
         WHERE t.id = $1 AND t.tenant_id = $2",
    )
    .bind(id)
    .bind(tenant.id())
    .fetch_optional(db)
    .await?
    .ok_or_else(|| Error::not_found("application"))
}

impl ApplicationRow {
    /// The row `edit` makes of this one (`updated_at` aside, which the database sets).
    fn edited(&self, edit: &ApplicationEdit) -> Self {
        let report = &edit.report;
        Self {
            extra: edit
                .extra
                .as_ref()
                .map_or_else(|| self.extra.clone(), jsonb::stored),
            superkey_data: edit
                .superkey_data
                .as_ref()
                .map(jsonb::stored)
                .or_else(|| self.superkey_data.clone()),
            availability_status: report.status.map_or_else(
                || self.availability_status.clone(),
                |s| s.as_str().to_owned(),
            ),
            availability_status_error: report
                .error
                .clone()
                .or_else(|| self.availability_status_error.clone()),
            last_checked_at: report.last_checked_at.or(self.last_checked_at),
            last_available_at: report.last_available_at.or(self.last_available_at),
            ..self.clone()
        }
    }
}

/// [`update`] in one statement and its own transaction, for an application read with
/// [`find_versioned`]: its source locked first (as a source's delete does), the application,
/// the source's status when the application's changed ([`adopt_status`]'s rule), and the
/// `Application.update` event, rendered here from the edited row. `None` when the row changed
/// since it was read: read it again.
pub async fn update_announced(
    db: &PgPool,
    tenant: &Tenant,
    current: &Versioned,
    edit: &ApplicationEdit,
) -> Result<Option<ApplicationRow>> {
    let next = current.row.edited(edit);
    let adopt = next.availability_status != current.row.availability_status;
    let mut event = next.to_event(tenant);
    event["updated_at"] = Value::String(outbox::PENDING_TIME.to_owned());
    let event_type = Resource::Application.update();
    let sql = format!(
        "WITH locked AS (SELECT id FROM sources WHERE id = $9 FOR NO KEY UPDATE), \
         app AS (UPDATE applications a SET extra = $3, superkey_data = $4, \
             availability_status = $5, availability_status_error = $6, \
             last_checked_at = $7, last_available_at = $8 \
           FROM locked WHERE a.id = $1 AND a.tenant_id = $2 AND a.source_id = locked.id \
             AND a.xmin = $10::text::xid \
           RETURNING a.*), \
         adopted AS (UPDATE sources s SET {adopt} FROM app WHERE s.id = app.source_id AND $11), \
         o AS ({append}) \
         SELECT * FROM app",
        adopt = ADOPT_SET.replace("{new}", "app").replace("{old}", "s"),
        append = outbox::append_with_time(
            "app",
            "updated_at",
            AppendColumns {
                topic: "$12",
                event_type: "$13",
                key: "$14",
                headers: "$15",
                payload: "$16",
            }
        ),
    );
    let row: Option<ApplicationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(next.id)
        .bind(tenant.id())
        .bind(&next.extra)
        .bind(&next.superkey_data)
        .bind(&next.availability_status)
        .bind(&next.availability_status_error)
        .bind(next.last_checked_at)
        .bind(next.last_available_at)
        .bind(next.source_id)
        .bind(&current.version)
        .bind(adopt)
        .bind(EVENT_STREAM_TOPIC)
        .bind(event_type.as_str())
        .bind(outbox::key(tenant))
        .bind(keel_events::outbox::headers_json(&outbox::headers(
            tenant, event_type,
        )))
        .bind(event.to_string())
        .fetch_optional(db)
        .await?;
    if row.is_some() {
        outbox::OUTBOX.committed();
        metrics::counter!("sources_events_recorded_total").increment(1);
    }
    Ok(row)
}

/// How a source takes its application's new status: `{new}` names the application's new
/// row, `{old}` the source's.
const ADOPT_SET: &str = "availability_status = {new}.availability_status, \
    last_checked_at = COALESCE({new}.last_checked_at, {old}.last_checked_at), \
    last_available_at = COALESCE({new}.last_available_at, {old}.last_available_at)";

/// An application's changed status becomes its source's, as sources-api-go's
/// `UpdateSourceFromApplicationAvailabilityStatus` does: the status, and the application's
/// `last_checked_at` / `last_available_at` where it has them. The one place that rule lives,
/// for the REST edit and the status consumer alike.
pub async fn adopt_status(
    conn: &mut PgConnection,
    app: &ApplicationRow,
    previous_status: &str,
) -> Result<()> {
    if app.availability_status == previous_status {
        return Ok(());
    }
    let set = ADOPT_SET
        .replace("{new}.availability_status", "$2")
        .replace("{new}.last_checked_at", "$3")
        .replace("{new}.last_available_at", "$4")
        .replace("{old}.", "");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE sources SET {set} WHERE id = $1"
    )))
    .bind(app.source_id)
    .bind(&app.availability_status)
    .bind(app.last_checked_at)
    .bind(app.last_available_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes an application with its links and authentications, announcing them in
/// sources-api-go's order: links, the application, its authentications.
pub async fn delete(w: &mut Write<'_>, id: i64) -> Result<()> {
    let tenant = w.tenant();
    let app = fetch(w.conn(), tenant, id).await?;
    let links = application_authentications::delete_for_application(w, app.id).await?;
    let auths = authentications::delete_for_resource(w, "Application", app.id).await?;
    sqlx::query("DELETE FROM applications WHERE id = $1")
        .bind(app.id)
        .execute(w.conn())
        .await?;
    w.announce_all(links);
    w.announce(Resource::Application.destroy(), app.to_event(tenant));
    w.announce_all(auths);
    Ok(())
}

/// Which applications a pause concerns.
#[derive(Debug, Clone, Copy)]
pub enum Paused {
    One(i64),
    OfSource(i64),
}

/// Sets or clears `paused_at` and announces one event per application, in id order. Pausing
/// one application that does not exist is a 404.
pub async fn set_paused(w: &mut Write<'_>, which: Paused, paused: bool) -> Result<()> {
    let tenant = w.tenant();
    let (column, id) = match which {
        Paused::One(id) => ("id", id),
        Paused::OfSource(id) => ("source_id", id),
    };
    let sql = format!(
        "UPDATE applications SET paused_at = CASE WHEN $2 THEN now() ELSE NULL END \
         WHERE tenant_id = $3 AND {column} = $1 RETURNING *"
    );
    let rows: Vec<ApplicationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(paused)
        .bind(tenant.id())
        .fetch_all(w.conn())
        .await?;
    if rows.is_empty() && matches!(which, Paused::One(_)) {
        return Err(Error::not_found("application"));
    }
    let event_type = EventType::paused(Resource::Application, paused);
    w.announce_all(
        by_id(rows, |r| r.id)
            .iter()
            .map(|r| Event::new(event_type, r.to_event(tenant))),
    );
    Ok(())
}

/// Pauses or resumes one application.
pub async fn pause(w: &mut Write<'_>, id: i64, paused: bool) -> Result<()> {
    set_paused(w, Paused::One(id), paused).await
}

/// The application type names of a source's applications, in id order.
pub async fn type_names_of_source(
    db: &PgPool,
    tenant: &Tenant,
    source_id: i64,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT at.name FROM applications a JOIN application_types at ON at.id = a.application_type_id \
         WHERE a.source_id = $1 AND a.tenant_id = $2 ORDER BY a.id",
    )
    .bind(source_id)
    .bind(tenant.id())
    .fetch_all(db)
    .await?)
}
