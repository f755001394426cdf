//! Endpoints: where a source's service is reached; at most one default and one per role per
//! source.

use chrono::{DateTime, Utc};
use keel_db::{Column, Table};
use keel_domain::{AvailabilityStatus, sources_events::Resource};
use serde_json::{Value, json};
use sqlx::PgConnection;

use super::{
    Tenant, Write, authentications,
    outbox::{event_time, opt_event_time, tenant_field},
};
use crate::{
    domain::{
        endpoint::{self as rules, EndpointSettings},
        status::StatusFields,
    },
    error::{Error, Result, constraint},
};

pub static TABLE: Table = Table {
    name: "endpoints",
    columns: &[
        Column::int("id"),
        Column::timestamp("created_at"),
        Column::timestamp("updated_at"),
        Column::timestamp("paused_at"),
        Column::text("role"),
        Column::int("port"),
        Column::bool("default"),
        Column::text("scheme"),
        Column::text("host"),
        Column::text("path"),
        Column::bool("verify_ssl"),
        Column::text("certificate_authority"),
        Column::text("receptor_node"),
        Column::text("availability_status"),
        Column::timestamp("last_checked_at"),
        Column::timestamp("last_available_at"),
        Column::text("availability_status_error"),
        Column::int("source_id"),
    ],
    subresources: &[],
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub paused_at: Option<DateTime<Utc>>,
    pub role: Option<String>,
    pub port: Option<i32>,
    pub default: bool,
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub verify_ssl: Option<bool>,
    pub certificate_authority: Option<String>,
    pub receptor_node: Option<String>,
    pub availability_status: String,
    pub availability_status_error: Option<String>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_available_at: Option<DateTime<Utc>>,
    pub source_id: i64,
}

impl EndpointRow {
    pub fn to_event(&self, tenant: &Tenant) -> Value {
        json!({
            "id": self.id,
            "created_at": event_time(self.created_at),
            "updated_at": event_time(self.updated_at),
            "paused_at": opt_event_time(self.paused_at),
            "role": self.role,
            "port": self.port,
            "default": self.default,
            "scheme": self.scheme,
            "host": self.host,
            "path": self.path,
            "verify_ssl": self.verify_ssl,
            "certificate_authority": self.certificate_authority,
            "receptor_node": self.receptor_node,
            "availability_status": self.availability_status,
            "last_checked_at": opt_event_time(self.last_checked_at),
            "last_available_at": opt_event_time(self.last_available_at),
            "availability_status_error": self.availability_status_error,
            "source_id": self.source_id,
            "tenant": tenant_field(tenant),
        })
    }
}

by_id!(EndpointRow, "t.*", "endpoints", "endpoint");
list_by_source!(EndpointRow);

async fn source_has_default(conn: &mut PgConnection, source_id: i64, except: i64) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM endpoints WHERE source_id = $1 AND \"default\" AND id <> $2)",
    )
    .bind(source_id)
    .bind(except)
    .fetch_one(conn)
    .await?)
}

async fn role_taken(
    conn: &mut PgConnection,
    source_id: i64,
    role: &str,
    except: i64,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM endpoints WHERE source_id = $1 AND role = $2 AND id <> $3)",
    )
    .bind(source_id)
    .bind(role)
    .bind(except)
    .fetch_one(conn)
    .await?)
}

/// sources-api-go wraps create messages in `Validation failed:`, not edit messages.
fn refuse(message: impl std::fmt::Display, on_create: bool) -> Error {
    if on_create {
        Error::validation(message)
    } else {
        Error::bad_request(message)
    }
}

/// A concurrent writer can still win the race the checks lost; the unique indexes answer it
/// with the same messages.
fn unique_violation(e: sqlx::Error, on_create: bool) -> Error {
    let message = match constraint(&e) {
        Some("endpoints_default_per_source") => {
            "a default endpoint already exists for the provided source"
        }
        Some("endpoints_role_per_source") => "the role already exists for the given source",
        _ => return e.into(),
    };
    refuse(message, on_create)
}

/// Checks and inserts an endpoint of `source_id` with sources-api-go's messages, in its order;
/// announces nothing.
pub async fn insert(
    w: &mut Write<'_>,
    source_id: i64,
    f: EndpointSettings,
    status: Option<&str>,
) -> Result<EndpointRow> {
    let tenant = w.tenant();
    if !super::source_exists(w.conn(), tenant, source_id).await? {
        return Err(Error::bad_request("source id not found"));
    }
    let mut default = f.default.unwrap_or(false);
    if default && source_has_default(w.conn(), source_id, 0).await? {
        return Err(refuse(
            "a default endpoint already exists for the provided source",
            true,
        ));
    }
    let has_endpoints: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM endpoints WHERE source_id = $1)")
            .bind(source_id)
            .fetch_one(w.conn())
            .await?;
    if !has_endpoints {
        default = true;
    }
    if let Some(role) = f.role.as_deref()
        && role_taken(w.conn(), source_id, role, 0).await?
    {
        return Err(refuse("the role already exists for the given source", true));
    }
    let scheme = rules::scheme_or_default(f.scheme);
    if let Some(host) = f.host.as_deref().filter(|h| !h.is_empty()) {
        rules::validate_host(host).map_err(Error::validation)?;
    }
    let port = rules::port(f.port, true).map_err(Error::validation)?;
    let verify_ssl = f.verify_ssl.unwrap_or(false);
    if verify_ssl
        && f.certificate_authority
            .as_deref()
            .unwrap_or_default()
            .is_empty()
    {
        return Err(refuse("the certificate authority cannot be empty", true));
    }
    let status = match status.unwrap_or_default() {
        "" => AvailabilityStatus::InProgress,
        raw => rules::endpoint_status(raw).map_err(Error::validation)?,
    };
    sqlx::query_as(
        "INSERT INTO endpoints (tenant_id, source_id, \"default\", receptor_node, role, scheme, host, \
           port, path, verify_ssl, certificate_authority, availability_status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *",
    )
    .bind(tenant.id())
    .bind(source_id)
    .bind(default)
    .bind(&f.receptor_node)
    .bind(&f.role)
    .bind(&scheme)
    .bind(&f.host)
    .bind(port)
    .bind(&f.path)
    .bind(verify_ssl)
    .bind(&f.certificate_authority)
    .bind(status.as_str())
    .fetch_one(w.conn())
    .await
    .map_err(|e| unique_violation(e, true))
}

/// Checks and applies an edit (only the fields sent change) and announces `Endpoint.update`.
/// The status fields are checked last, as sources-api-go does.
pub async fn update(
    w: &mut Write<'_>,
    id: i64,
    f: EndpointSettings,
    status: StatusFields,
) -> Result<EndpointRow> {
    let tenant = w.tenant();
    let current = fetch(w.conn(), tenant, id).await?;
    if f.default == Some(true) && source_has_default(w.conn(), current.source_id, id).await? {
        return Err(refuse(
            "a default endpoint already exists for the provided source",
            false,
        ));
    }
    if let Some(role) = f.role.as_deref()
        && role_taken(w.conn(), current.source_id, role, id).await?
    {
        return Err(refuse(
            "the role already exists for the given source",
            false,
        ));
    }
    let scheme = f.scheme.map(|s| rules::scheme_or_default(Some(s)));
    if let Some(host) = f.host.as_deref().filter(|h| !h.is_empty()) {
        rules::validate_host(host).map_err(Error::bad_request)?;
    }
    let port = rules::port(f.port, false).map_err(Error::bad_request)?;
    let verify_ssl = f.verify_ssl.or(current.verify_ssl).unwrap_or(false);
    let ca = f
        .certificate_authority
        .as_ref()
        .or(current.certificate_authority.as_ref());
    if verify_ssl && ca.is_none_or(|ca| ca.is_empty()) {
        return Err(refuse("the certificate authority cannot be empty", false));
    }
    let report = status
        .parse(rules::endpoint_status)
        .map_err(Error::bad_request)?;
    let update = sqlx::query_as(
        "UPDATE endpoints SET \"default\" = COALESCE($3, \"default\"), \
           receptor_node = COALESCE($4, receptor_node), role = COALESCE($5, role), \
           scheme = COALESCE($6, scheme), host = COALESCE($7, host), port = COALESCE($8, port), \
           path = COALESCE($9, path), verify_ssl = COALESCE($10, verify_ssl), \
           certificate_authority = COALESCE($11, certificate_authority), \
           availability_status = COALESCE($12, availability_status), \
           availability_status_error = COALESCE($13, availability_status_error), \
           last_checked_at = COALESCE($14, last_checked_at), \
           last_available_at = COALESCE($15, last_available_at) \
         WHERE id = $1 AND tenant_id = $2 RETURNING *",
    )
    .bind(id)
    .bind(tenant.id())
    .bind(f.default)
    .bind(&f.receptor_node)
    .bind(&f.role)
    .bind(&scheme)
    .bind(&f.host)
    .bind(port)
    .bind(&f.path)
    .bind(f.verify_ssl)
    .bind(&f.certificate_authority);
    let row: EndpointRow = super::bind_report(update, &report)
        .fetch_one(w.conn())
        .await
        .map_err(|e| unique_violation(e, false))?;
    w.announce(Resource::Endpoint.update(), row.to_event(tenant));
    Ok(row)
}

/// Deletes an endpoint and its authentications, announcing the endpoint, then them.
pub async fn delete(w: &mut Write<'_>, id: i64) -> Result<()> {
    let tenant = w.tenant();
    let endpoint = fetch(w.conn(), tenant, id).await?;
    let auths = authentications::delete_for_resource(w, "Endpoint", endpoint.id).await?;
    sqlx::query("DELETE FROM endpoints WHERE id = $1")
        .bind(endpoint.id)
        .execute(w.conn())
        .await?;
    w.announce(Resource::Endpoint.destroy(), endpoint.to_event(tenant));
    w.announce_all(auths);
    Ok(())
}
