//! Authentications: the `authentications` table (passwords sealed, never selected but by the
//! internal API), its events, and deletes by resource.

use chrono::{DateTime, SecondsFormat, Utc};
use keel_crypto::SecretBox;
use keel_db::{Column, Page, Scope, Table};
use keel_domain::{listing::ListQuery, sources_events::Resource};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{
    Event, Tenant, Write,
    application_authentications::ApplicationAuthenticationRow,
    by_id,
    outbox::{opt_event_time, tenant_field},
};
use crate::{
    domain::{authentication::Credentials, status::StatusReport},
    error::{Error, Result},
};

pub static TABLE: Table = Table {
    name: "authentications",
    columns: &[
        Column::int("id"),
        Column::text("name"),
        Column::text("authtype"),
        Column::text("username"),
        Column::text("availability_status"),
        Column::timestamp("last_checked_at"),
        Column::timestamp("last_available_at"),
        Column::text("availability_status_error"),
        Column::int("source_id"),
        Column::text("resource_type"),
        Column::int("resource_id"),
    ],
    subresources: &[],
};

/// Every column but the sealed password, which only the internal API reads.
pub(super) const COLUMNS: &str = "t.id, t.tenant_id, t.source_id, t.resource_type, t.resource_id, t.name, \
    t.authtype, t.username, t.extra, t.version, t.availability_status, \
    t.availability_status_error, t.last_checked_at, t.last_available_at, t.created_at, \
    t.updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuthenticationRow {
    pub id: i64,
    pub source_id: i64,
    pub resource_type: String,
    pub resource_id: i64,
    pub name: Option<String>,
    pub authtype: Option<String>,
    pub username: Option<String>,
    pub extra: Option<Value>,
    pub version: Option<String>,
    pub availability_status: Option<String>,
    pub availability_status_error: Option<String>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_available_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl AuthenticationRow {
    /// The `Authentication.*` payload: the id is a string, the other ids integers.
    pub fn to_event(&self, tenant: &Tenant) -> Value {
        json!({
            "id": self.id.to_string(),
            "created_at": self.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "name": self.name.clone().unwrap_or_default(),
            "authtype": self.authtype.clone().unwrap_or_default(),
            "username": self.username.clone().unwrap_or_default(),
            "extra": self.extra,
            "version": self.version.clone().unwrap_or_default(),
            "availability_status": self.availability_status.clone().unwrap_or_default(),
            "last_checked_at": opt_event_time(self.last_checked_at),
            "last_available_at": opt_event_time(self.last_available_at),
            "availability_status_error": self.availability_status_error,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "source_id": self.source_id,
            "tenant": tenant_field(tenant),
        })
    }
}

/// Which of a tenant's authentications a list shows.
#[derive(Debug, Clone, Copy)]
pub enum AuthenticationFilter {
    All,
    OfSource(i64),
    OfApplication(i64),
    OfEndpoint(i64),
    One(i64),
}

/// An authentication to create: its resource, and the fields sent.
#[derive(Debug, Clone, Default)]
pub struct NewAuthentication {
    /// `Source`, `Endpoint`, `Application` or `Authentication`.
    pub resource_type: String,
    pub resource_id: i64,
    pub credentials: Credentials,
    pub availability_status_error: Option<String>,
}

/// What an edit sets; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct AuthenticationEdit {
    pub credentials: Credentials,
    pub report: StatusReport,
}

pub async fn list(
    db: &PgPool,
    tenant: &Tenant,
    filter: AuthenticationFilter,
    query: &ListQuery,
) -> Result<Page<AuthenticationRow>> {
    let scopes = match filter {
        AuthenticationFilter::All => vec![],
        AuthenticationFilter::OfSource(id) => vec![Scope::eq("t.source_id = ", id)],
        AuthenticationFilter::OfApplication(id) => vec![Scope::eq(
            "t.resource_type = 'Application' AND t.resource_id = ",
            id,
        )],
        AuthenticationFilter::OfEndpoint(id) => vec![Scope::eq(
            "t.resource_type = 'Endpoint' AND t.resource_id = ",
            id,
        )],
        AuthenticationFilter::One(id) => vec![Scope::eq("t.id = ", id)],
    };
    super::tenant_page(db, tenant, &TABLE, COLUMNS, scopes, query).await
}

by_id!(
    AuthenticationRow,
    COLUMNS,
    "authentications",
    "authentication"
);

/// The source a resource belongs to, within the tenant: a query of `source_id` by `$3`
/// (the resource's id) and `$1` (the tenant's).
fn resource_source(resource_type: &str) -> &'static str {
    match resource_type {
        "Source" => "SELECT id AS source_id FROM sources WHERE id = $3 AND tenant_id = $1",
        "Application" => "SELECT source_id FROM applications WHERE id = $3 AND tenant_id = $1",
        "Endpoint" => "SELECT source_id FROM endpoints WHERE id = $3 AND tenant_id = $1",
        _ => "SELECT source_id FROM authentications WHERE id = $3 AND tenant_id = $1",
    }
}

/// Inserts an authentication (its password sealed to the tenant); announces nothing. The
/// resource is looked up by the insert itself, within the tenant.
pub async fn insert(
    w: &mut Write<'_>,
    secrets: &SecretBox,
    new: NewAuthentication,
) -> Result<AuthenticationRow> {
    let statement = format!("{} RETURNING {COLUMNS}", insert_sql(&new.resource_type));
    let sealed = w
        .tenant()
        .seal(secrets, new.credentials.password.as_deref());
    let inserted: Option<AuthenticationRow> = bind_insert(&statement, w.tenant(), &new, &sealed)
        .fetch_optional(w.conn())
        .await?;
    inserted.ok_or_else(|| not_found(&new))
}

/// An application's authentication and its link to the application, in one statement (the
/// link cannot exist before, its authentication being new); announces nothing.
pub async fn insert_for_application(
    w: &mut Write<'_>,
    secrets: &SecretBox,
    new: NewAuthentication,
) -> Result<(AuthenticationRow, ApplicationAuthenticationRow)> {
    let statement = format!(
        "WITH t AS ({} RETURNING {COLUMNS}), \
         l AS (INSERT INTO application_authentications (tenant_id, application_id, authentication_id) \
               SELECT $1, $3, t.id FROM t RETURNING *) \
         SELECT t.*, l.id AS link_id, l.created_at AS link_created_at, \
           l.updated_at AS link_updated_at, l.paused_at AS link_paused_at FROM t, l",
        insert_sql(&new.resource_type)
    );
    let sealed = w
        .tenant()
        .seal(secrets, new.credentials.password.as_deref());
    let inserted: Option<Linked> = bind_insert(&statement, w.tenant(), &new, &sealed)
        .fetch_optional(w.conn())
        .await?;
    let Linked {
        authentication,
        link_id,
        link_created_at,
        link_updated_at,
        link_paused_at,
    } = inserted.ok_or_else(|| not_found(&new))?;
    let link = ApplicationAuthenticationRow {
        id: link_id,
        created_at: link_created_at,
        updated_at: link_updated_at,
        paused_at: link_paused_at,
        application_id: new.resource_id,
        authentication_id: authentication.id,
    };
    Ok((authentication, link))
}

/// A row of [`insert_for_application`].
#[derive(sqlx::FromRow)]
struct Linked {
    #[sqlx(flatten)]
    authentication: AuthenticationRow,
    link_id: i64,
    link_created_at: DateTime<Utc>,
    link_updated_at: DateTime<Utc>,
    link_paused_at: Option<DateTime<Utc>>,
}

/// The insert of an authentication whose resource (`$3`, of `resource_type`) is the tenant's
/// (`$1`).
fn insert_sql(resource_type: &str) -> String {
    format!(
        "INSERT INTO authentications AS t (tenant_id, source_id, resource_type, resource_id, \
           name, authtype, username, password_encrypted, extra, availability_status_error) \
         SELECT $1, r.source_id, $2, $3, $4, $5, $6, $7, $8, $9 FROM ({}) r",
        resource_source(resource_type)
    )
}

/// Binds [`insert_sql`]'s parameters, the password as `sealed`.
fn bind_insert<'q, O>(
    statement: &'q str,
    tenant: &Tenant,
    new: &'q NewAuthentication,
    sealed: &'q Option<Vec<u8>>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    let insert = sqlx::query_as(sqlx::AssertSqlSafe(statement))
        .bind(tenant.id())
        .bind(&new.resource_type)
        .bind(new.resource_id);
    super::bind_credentials(insert, &new.credentials, sealed).bind(&new.availability_status_error)
}

fn not_found(new: &NewAuthentication) -> Error {
    Error::bad_request(format_args!(
        "resource not found with type [{}], id [{}]",
        new.resource_type, new.resource_id
    ))
}

/// Applies an edit and announces `Authentication.update`.
pub async fn update(
    w: &mut Write<'_>,
    secrets: &SecretBox,
    id: i64,
    edit: AuthenticationEdit,
) -> Result<AuthenticationRow> {
    let tenant = w.tenant();
    let sealed = tenant.seal(secrets, edit.credentials.password.as_deref());
    let update = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE authentications AS t SET name = COALESCE($3, name), authtype = COALESCE($4, authtype), \
           username = COALESCE($5, username), password_encrypted = COALESCE($6, password_encrypted), \
           extra = COALESCE($7, extra), availability_status = COALESCE($8, availability_status), \
           availability_status_error = COALESCE($9, availability_status_error), \
           last_checked_at = COALESCE($10, last_checked_at), \
           last_available_at = COALESCE($11, last_available_at) \
         WHERE t.id = $1 AND t.tenant_id = $2 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(tenant.id());
    let update = super::bind_credentials(update, &edit.credentials, &sealed);
    let row: AuthenticationRow = super::bind_report(update, &edit.report)
        .fetch_optional(w.conn())
        .await?
        .ok_or_else(|| Error::not_found("authentication"))?;
    w.announce(Resource::Authentication.update(), row.to_event(tenant));
    Ok(row)
}

/// Deletes one authentication and announces `Authentication.destroy`.
pub async fn delete(w: &mut Write<'_>, id: i64) -> Result<()> {
    let tenant = w.tenant();
    let row = fetch(w.conn(), tenant, id).await?;
    sqlx::query("DELETE FROM authentications WHERE id = $1")
        .bind(row.id)
        .execute(w.conn())
        .await?;
    w.announce(Resource::Authentication.destroy(), row.to_event(tenant));
    Ok(())
}

/// Deletes the authentications of one resource and returns their destroy events, in id order.
pub(super) async fn delete_for_resource(
    w: &mut Write<'_>,
    resource_type: &str,
    resource_id: i64,
) -> Result<Vec<Event>> {
    let tenant = w.tenant();
    let rows: Vec<AuthenticationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "DELETE FROM authentications AS t WHERE t.tenant_id = $1 AND t.resource_type = $2 \
           AND t.resource_id = $3 RETURNING {COLUMNS}"
    )))
    .bind(tenant.id())
    .bind(resource_type)
    .bind(resource_id)
    .fetch_all(w.conn())
    .await?;
    Ok(by_id(rows, |r| r.id)
        .iter()
        .map(|r| Event::new(Resource::Authentication.destroy(), r.to_event(tenant)))
        .collect())
}

/// The authentication with its password, for the internal API only.
pub async fn find_with_password(
    db: &PgPool,
    secrets: &SecretBox,
    tenant: &Tenant,
    id: i64,
    with_password: bool,
) -> Result<(AuthenticationRow, Option<String>)> {
    let mut conn = db.acquire().await?;
    let row = fetch(&mut conn, tenant, id).await?;
    if !with_password {
        return Ok((row, None));
    }
    let password = super::open_password(&mut conn, secrets, tenant, &TABLE, id).await?;
    Ok((row, password))
}
