//! Availability reports from `platform.sources.status`: the resource's status fields, the
//! source following its application, and the `<Type>.update` + `Records.update` events
//! sources-api-go announces for them.

use chrono::Utc;
use keel_domain::{AvailabilityStatus, sources_events::Resource};
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::{
    Tenant, Write,
    application_authentications::ApplicationAuthenticationRow,
    applications::{self, ApplicationRow},
    authentications::AuthenticationRow,
    endpoints::EndpointRow,
    sources::SourceRow,
};
use crate::error::Result;

/// The kinds of resource a report may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    Source,
    Application,
    Endpoint,
    Authentication,
}

impl Reported {
    /// The `resource_type` of a report, in any case.
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw.to_ascii_lowercase().as_str() {
            "source" => Self::Source,
            "application" => Self::Application,
            "endpoint" => Self::Endpoint,
            "authentication" => Self::Authentication,
            _ => return None,
        })
    }

    pub fn resource(self) -> Resource {
        match self {
            Self::Source => Resource::Source,
            Self::Application => Resource::Application,
            Self::Endpoint => Resource::Endpoint,
            Self::Authentication => Resource::Authentication,
        }
    }

    fn table(self) -> &'static str {
        match self {
            Self::Source => "sources",
            Self::Application => "applications",
            Self::Endpoint => "endpoints",
            Self::Authentication => "authentications",
        }
    }
}

/// Applies a report to the tenant's resource `id`: `last_checked_at` now, the status when
/// given, the error (all but sources), `last_available_at` when available. `false` when the
/// tenant has no such resource.
pub async fn apply(
    w: &mut Write<'_>,
    kind: Reported,
    id: i64,
    status: Option<AvailabilityStatus>,
    error: Option<String>,
) -> Result<bool> {
    let tenant = w.tenant();
    let now = Utc::now();
    let available = status == Some(AvailabilityStatus::Available);
    let table = kind.table();
    let (error_sql, source_column) = match kind {
        Reported::Source => ("", "id"),
        _ => (", availability_status_error = $5", "source_id"),
    };
    if kind == Reported::Application && status.is_some() {
        // Its source's status follows: the source is locked first, as its delete does.
        applications::lock_source(w.conn(), tenant, id).await?;
    }
    let sql = format!(
        "UPDATE {table} SET availability_status = COALESCE($3, availability_status), \
           last_checked_at = $4, \
           last_available_at = CASE WHEN $6 THEN $4 ELSE last_available_at END{error_sql} \
         WHERE id = $1 AND tenant_id = $2 \
         RETURNING (SELECT availability_status FROM {table} WHERE id = $1) AS previous, \
           {source_column} AS source_id"
    );
    let updated: Option<(Option<String>, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(tenant.id())
        .bind(status.map(AvailabilityStatus::as_str))
        .bind(now)
        .bind(&error)
        .bind(available)
        .fetch_optional(w.conn())
        .await?;
    let Some((previous, source_id)) = updated else {
        return Ok(false);
    };
    let resource_event = match kind {
        Reported::Application => {
            let app: ApplicationRow = sqlx::query_as("SELECT * FROM applications WHERE id = $1")
                .bind(id)
                .fetch_one(w.conn())
                .await?;
            if status.is_some() {
                let previous = previous.unwrap_or_default();
                applications::adopt_status(w.conn(), &app, &previous).await?;
            }
            app.to_event(tenant)
        }
        other => resource_event(w.conn(), tenant, other, id).await?,
    };
    let mut fields = vec!["availability_status"];
    if kind != Reported::Source {
        fields.push("availability_status_error");
    }
    fields.extend(["last_available_at", "last_checked_at"]);
    let resource = kind.resource();
    let updated = json!({ resource.as_str(): { id.to_string(): fields } });
    let records = records_update(w.conn(), tenant, source_id, updated).await?;
    w.announce(resource.update(), resource_event);
    w.announce(Resource::Records.update(), records);
    metrics::counter!("sources_status_updates_total", "resource_type" => resource.as_str())
        .increment(1);
    Ok(true)
}

async fn resource_event(
    conn: &mut PgConnection,
    tenant: &Tenant,
    kind: Reported,
    id: i64,
) -> Result<Value> {
    Ok(match kind {
        Reported::Source => sqlx::query_as::<_, SourceRow>("SELECT * FROM sources WHERE id = $1")
            .bind(id)
            .fetch_one(conn)
            .await?
            .to_event(tenant),
        Reported::Application => {
            sqlx::query_as::<_, ApplicationRow>("SELECT * FROM applications WHERE id = $1")
                .bind(id)
                .fetch_one(conn)
                .await?
                .to_event(tenant)
        }
        Reported::Endpoint => {
            sqlx::query_as::<_, EndpointRow>("SELECT * FROM endpoints WHERE id = $1")
                .bind(id)
                .fetch_one(conn)
                .await?
                .to_event(tenant)
        }
        Reported::Authentication => {
            sqlx::query_as::<_, AuthenticationRow>("SELECT * FROM authentications WHERE id = $1")
                .bind(id)
                .fetch_one(conn)
                .await?
                .to_event(tenant)
        }
    })
}

/// The `Records.update` payload: the whole source with its children, and what changed.
async fn records_update(
    conn: &mut PgConnection,
    tenant: &Tenant,
    source_id: i64,
    updated: Value,
) -> Result<Value> {
    let source: SourceRow = sqlx::query_as("SELECT * FROM sources WHERE id = $1")
        .bind(source_id)
        .fetch_one(&mut *conn)
        .await?;
    let apps: Vec<ApplicationRow> =
        sqlx::query_as("SELECT * FROM applications WHERE source_id = $1 ORDER BY id")
            .bind(source_id)
            .fetch_all(&mut *conn)
            .await?;
    let links: Vec<ApplicationAuthenticationRow> = sqlx::query_as(
        "SELECT l.* FROM application_authentications l JOIN applications a ON a.id = l.application_id \
         WHERE a.source_id = $1 ORDER BY l.id",
    )
    .bind(source_id)
    .fetch_all(&mut *conn)
    .await?;
    let auths: Vec<AuthenticationRow> =
        sqlx::query_as("SELECT * FROM authentications WHERE source_id = $1 ORDER BY id")
            .bind(source_id)
            .fetch_all(&mut *conn)
            .await?;
    let endpoints: Vec<EndpointRow> =
        sqlx::query_as("SELECT * FROM endpoints WHERE source_id = $1 ORDER BY id")
            .bind(source_id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(json!({
        "applications": apps.iter().map(|a| a.to_event(tenant)).collect::<Vec<_>>(),
        "application_authentications": links.iter().map(|l| l.to_event(tenant)).collect::<Vec<_>>(),
        "authentications": auths.iter().map(|a| a.to_event(tenant)).collect::<Vec<_>>(),
        "endpoints": endpoints.iter().map(|e| e.to_event(tenant)).collect::<Vec<_>>(),
        "source": source.to_event(tenant),
        "updated": updated,
    }))
}
