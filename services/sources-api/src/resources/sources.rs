use axum::{Json, body::Bytes, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use keel_db::{Column, Scope, Subresource, Table};
use keel_sources_http::{
    Collection, ErrorDocument, ListParams, ListQueryDoc, PathId, StrictJson, decode_strict,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::http::HeaderMap;
use serde_json::json;
use sqlx::PgConnection;

use crate::{
    availability,
    domain::source::{NewSource, NewSourceFields, SourceEdit, SourceEditFields},
    error::{Error, Result, constraint},
    events::{self, Event, opt_event_time, tenant_field},
    resources::{
        application_authentications::ApplicationAuthenticationRow,
        application_types::{self, ApplicationType},
        applications::{self, Application, ApplicationRow},
        authentications::{self, Authentication, AuthenticationRow},
        endpoints::{self, Endpoint, EndpointRow},
        rhc_connections::{self, RhcConnection},
        source_types,
    },
    state::AppState,
    tenant::{Tenant, Writer},
    wire,
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
        table: &source_types::TABLE,
        foreign_key: "source_type_id",
    }],
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct SourceRow {
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
            "created_at": events::event_time(self.created_at),
            "updated_at": events::event_time(self.updated_at),
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

/// A source: one account, subscription, project or cluster that applications read data from.
/// Empty fields are omitted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Source {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "in_progress")]
    pub availability_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_checked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_available_at: Option<String>,
    #[schema(pattern = r"^\d+$")]
    pub id: String,
    #[schema(example = "2024-05-01T10:00:00Z")]
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<String>,
    pub name: String,
    pub uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<String>,
    #[schema(example = "manual_configuration")]
    pub app_creation_workflow: String,
    #[schema(pattern = r"^\d+$")]
    pub source_type_id: String,
}

impl From<SourceRow> for Source {
    fn from(r: SourceRow) -> Self {
        Self {
            availability_status: wire::non_empty(Some(r.availability_status)),
            last_checked_at: wire::opt_timestamp(r.last_checked_at),
            last_available_at: wire::opt_timestamp(r.last_available_at),
            id: wire::id(r.id),
            created_at: wire::timestamp(r.created_at),
            updated_at: wire::timestamp(r.updated_at),
            paused_at: wire::opt_timestamp(r.paused_at),
            name: r.name,
            uid: r.uid,
            version: wire::non_empty(r.version),
            imported: wire::non_empty(r.imported),
            source_ref: wire::non_empty(r.source_ref),
            app_creation_workflow: r.app_creation_workflow,
            source_type_id: wire::id(r.source_type_id),
        }
    }
}

/// Create a source. `uid` is ignored: the server generates one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceCreateRequest {
    pub name: Option<String>,
    pub uid: Option<String>,
    pub version: Option<String>,
    pub imported: Option<String>,
    pub source_ref: Option<String>,
    /// `manual_configuration` (default) or `account_authorization`.
    pub app_creation_workflow: Option<String>,
    /// `available`, `in_progress` (default), `partially_available` or `unavailable`.
    pub availability_status: Option<String>,
    /// A number or a numeric string.
    #[schema(value_type = Option<String>, pattern = r"^\d+$")]
    pub source_type_id: Option<Value>,
}

/// Edit a source. Only the status fields may be sent while the source is paused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceEditRequest {
    pub name: Option<String>,
    pub version: Option<String>,
    pub imported: Option<String>,
    pub source_ref: Option<String>,
    pub availability_status: Option<String>,
    /// `YYYY-MM-DD hh:mm:ss UTC`
    #[schema(example = "2024-05-01 10:00:00 UTC")]
    pub last_checked_at: Option<String>,
    /// `YYYY-MM-DD hh:mm:ss UTC`
    pub last_available_at: Option<String>,
}

/// The fields a paused source accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PausedSourceEditRequest {
    availability_status: Option<String>,
    last_checked_at: Option<String>,
    last_available_at: Option<String>,
}

/// Lists the tenant's sources within `scope`; shared by the sub-collections of other resources.
pub(crate) async fn list_scoped(
    state: &AppState,
    tenant: &Tenant,
    scope: Scope,
    params: &ListParams,
) -> Result<Collection<Source>> {
    let mut scopes = vec![Scope::eq("t.tenant_id = ", tenant.id)];
    scopes.push(scope);
    fetch(state, scopes, params).await
}

async fn fetch(
    state: &AppState,
    scopes: Vec<Scope>,
    params: &ListParams,
) -> Result<Collection<Source>> {
    super::collection::<SourceRow, Source>(state, &TABLE, "t.*", scopes, params).await
}

pub(crate) async fn find(conn: &mut PgConnection, tenant: &Tenant, id: i64) -> Result<SourceRow> {
    sqlx::query_as("SELECT * FROM sources WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant.id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| Error::not_found("source"))
}

/// 404 unless the source exists in the tenant.
async fn ensure(state: &AppState, tenant: &Tenant, id: i64) -> Result<()> {
    let mut conn = state.db.acquire().await?;
    find(&mut conn, tenant, id).await.map(drop)
}

/// Inserts a source and its `Source.create` event in one statement (one round trip, atomic):
/// the hot path of the API. The event is rendered here and gets the new id in SQL.
async fn insert_announced(
    conn: &mut PgConnection,
    tenant: &Tenant,
    source: &NewSource,
) -> Result<SourceRow> {
    // PostgreSQL keeps microseconds; the payload must show the stored value.
    let now = DateTime::<Utc>::from_timestamp_micros(Utc::now().timestamp_micros())
        .unwrap_or_else(Utc::now);
    let draft = SourceRow {
        id: events::PENDING_ID,
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
    };
    let payload = draft.to_event(tenant).to_string();
    let sql = format!(
        "WITH s AS ( \
           INSERT INTO sources (tenant_id, source_type_id, name, uid, version, imported, \
             source_ref, app_creation_workflow, availability_status, created_at, updated_at) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING *), \
         o AS ( \
           INSERT INTO outbox (topic, event_type, key, headers, payload) \
           SELECT $11, 'Source.create', $12, $13, {} FROM s) \
         SELECT * FROM s",
        events::with_inserted_id("$14")
    );
    let row = sqlx::query_as::<_, SourceRow>(sqlx::AssertSqlSafe(sql))
        .bind(tenant.id)
        .bind(draft.source_type_id)
        .bind(&draft.name)
        .bind(&draft.uid)
        .bind(&draft.version)
        .bind(&draft.imported)
        .bind(&draft.source_ref)
        .bind(&draft.app_creation_workflow)
        .bind(&draft.availability_status)
        .bind(now)
        .bind(events::EVENT_STREAM_TOPIC)
        .bind(events::key(tenant))
        .bind(events::headers_json(tenant, "Source.create"))
        .bind(payload)
        .fetch_one(conn)
        .await
        .map_err(source_constraint)?;
    metrics::counter!("sources_events_recorded_total").increment(1);
    Ok(row)
}

fn source_constraint(e: sqlx::Error) -> Error {
    match constraint(&e) {
        Some("sources_tenant_name_key") => Error::validation("name already exists in tenant"),
        Some("sources_source_type_id_fkey") => Error::validation("source type id not found"),
        _ => e.into(),
    }
}

/// Inserts a parsed source; shared with bulk create.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    tenant: &Tenant,
    source: &NewSource,
) -> Result<SourceRow> {
    // One statement; the constraints answer "duplicate name" and "unknown type" race-free.
    sqlx::query_as(
        "INSERT INTO sources (tenant_id, source_type_id, name, uid, version, imported, \
           source_ref, app_creation_workflow, availability_status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *",
    )
    .bind(tenant.id)
    .bind(source.source_type_id)
    .bind(&source.name)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&source.version)
    .bind(&source.imported)
    .bind(&source.source_ref)
    .bind(source.app_creation_workflow.as_str())
    .bind(source.availability_status.as_str())
    .fetch_one(conn)
    .await
    .map_err(source_constraint)
}

/// List sources.
#[utoipa::path(get, path = "/sources", tag = "sources", params(ListQueryDoc),
    responses((status = 200, body = Collection<Source>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Source>>> {
    fetch(
        &state,
        vec![Scope::eq("t.tenant_id = ", tenant.id)],
        &params,
    )
    .await
    .map(Json)
}

/// Get a source.
#[utoipa::path(get, path = "/sources/{id}", tag = "sources",
    params(("id" = String, Path, description = "Source id")),
    responses((status = 200, body = Source), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn get(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<Json<Source>> {
    let mut conn = state.db.acquire().await?;
    find(&mut conn, &tenant, id.get())
        .await
        .map(|r| Json(r.into()))
}

/// Create a source.
#[utoipa::path(post, path = "/sources", tag = "sources", request_body = SourceCreateRequest,
    security(("psk" = [])),
    responses((status = 201, body = Source), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument)))]
async fn create(
    State(state): State<AppState>,
    Writer(tenant): Writer,
    StrictJson(req): StrictJson<SourceCreateRequest>,
) -> Result<(StatusCode, Json<Source>)> {
    let source = NewSource::parse(NewSourceFields {
        name: req.name.as_deref(),
        version: req.version,
        imported: req.imported,
        source_ref: req.source_ref,
        app_creation_workflow: req.app_creation_workflow.as_deref(),
        availability_status: req.availability_status.as_deref(),
        source_type_id: req.source_type_id.as_ref(),
    })
    .map_err(Error::validation)?;

    let mut conn = state.db.acquire().await?;
    let row = insert_announced(&mut conn, &tenant, &source).await?;
    tracing::info!(source_id = row.id, "source created");
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Edit a source.
#[utoipa::path(patch, path = "/sources/{id}", tag = "sources", request_body = SourceEditRequest,
    params(("id" = String, Path, description = "Source id")),
    security(("psk" = [])),
    responses((status = 200, body = Source), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn edit(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
    body: Bytes,
) -> Result<Json<Source>> {
    let mut tx = state.db.begin().await?;
    let current = find(&mut tx, &tenant, id.get()).await?;
    let edit = if current.paused_at.is_some() {
        let req: PausedSourceEditRequest = decode_strict(&body)?;
        SourceEdit::parse_paused(SourceEditFields {
            availability_status: req.availability_status,
            last_checked_at: req.last_checked_at,
            last_available_at: req.last_available_at,
            ..Default::default()
        })
    } else {
        let req: SourceEditRequest = decode_strict(&body)?;
        SourceEdit::parse(SourceEditFields {
            name: req.name,
            version: req.version,
            imported: req.imported,
            source_ref: req.source_ref,
            availability_status: req.availability_status,
            last_checked_at: req.last_checked_at,
            last_available_at: req.last_available_at,
        })
    }
    .map_err(Error::bad_request)?;

    let row: SourceRow = sqlx::query_as(
        "UPDATE sources SET name = COALESCE($3, name), version = COALESCE($4, version), \
           imported = COALESCE($5, imported), source_ref = COALESCE($6, source_ref), \
           availability_status = COALESCE($7, availability_status), \
           last_checked_at = COALESCE($8, last_checked_at), \
           last_available_at = COALESCE($9, last_available_at) \
         WHERE id = $1 AND tenant_id = $2 RETURNING *",
    )
    .bind(id.get())
    .bind(tenant.id)
    .bind(&edit.name)
    .bind(&edit.version)
    .bind(&edit.imported)
    .bind(&edit.source_ref)
    .bind(edit.availability_status.map(|s| s.as_str()))
    .bind(edit.last_checked_at)
    .bind(edit.last_available_at)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match constraint(&e) {
        Some("sources_tenant_name_key") => {
            Error::bad_request("source name already exists in same tenant")
        }
        _ => e.into(),
    })?;
    events::record(
        &mut tx,
        &tenant,
        &[Event::new("Source.update", row.to_event(&tenant))],
    )
    .await?;
    tx.commit().await?;
    Ok(Json(row.into()))
}

/// Deletes a source and everything under it, recording sources-api-go's cascade:
/// ApplicationAuthentication.destroy*, Application.destroy*, Endpoint.destroy*,
/// RhcConnection.destroy* (connections no other source uses), Source.destroy, then Authentication.destroy* for every authentication of the source.
async fn delete_cascade(
    conn: &mut PgConnection,
    tenant: &Tenant,
    source: &SourceRow,
) -> Result<Vec<Event>> {
    let links: Vec<ApplicationAuthenticationRow> = sqlx::query_as(
        "DELETE FROM application_authentications l USING applications a \
         WHERE l.application_id = a.id AND a.source_id = $1 RETURNING l.*",
    )
    .bind(source.id)
    .fetch_all(&mut *conn)
    .await?;
    let auths: Vec<AuthenticationRow> =
        sqlx::query_as("DELETE FROM authentications t WHERE t.source_id = $1 RETURNING t.*")
            .bind(source.id)
            .fetch_all(&mut *conn)
            .await?;
    let apps: Vec<ApplicationRow> =
        sqlx::query_as("DELETE FROM applications WHERE source_id = $1 RETURNING *")
            .bind(source.id)
            .fetch_all(&mut *conn)
            .await?;
    let endpoints: Vec<EndpointRow> =
        sqlx::query_as("DELETE FROM endpoints WHERE source_id = $1 RETURNING *")
            .bind(source.id)
            .fetch_all(&mut *conn)
            .await?;
    let connections = rhc_connections::delete_for_source(conn, tenant, source.id).await?;
    sqlx::query("DELETE FROM sources WHERE id = $1")
        .bind(source.id)
        .execute(&mut *conn)
        .await?;

    fn sorted<T>(mut rows: Vec<T>, id: impl Fn(&T) -> i64) -> Vec<T> {
        rows.sort_by_key(|r| id(r));
        rows
    }
    let mut events = Vec::new();
    for l in sorted(links, |r| r.id) {
        events.push(Event::new(
            "ApplicationAuthentication.destroy",
            l.to_event(tenant),
        ));
    }
    for a in sorted(apps, |r| r.id) {
        events.push(Event::new("Application.destroy", a.to_event(tenant)));
    }
    for e in sorted(endpoints, |r| r.id) {
        events.push(Event::new("Endpoint.destroy", e.to_event(tenant)));
    }
    events.extend(connections);
    events.push(Event::new("Source.destroy", source.to_event(tenant)));
    for a in sorted(auths, |r| r.id) {
        events.push(Event::new("Authentication.destroy", a.to_event(tenant)));
    }
    Ok(events)
}

/// Delete a source with its applications, endpoints and authentications.
#[utoipa::path(delete, path = "/sources/{id}", tag = "sources",
    params(("id" = String, Path, description = "Source id")),
    security(("psk" = [])),
    responses((status = 204), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn delete(
    PathId(id): PathId,
    State(state): State<AppState>,
    Writer(tenant): Writer,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    // Locks the row so a concurrent child insert waits for the cascade.
    let source: SourceRow =
        sqlx::query_as("SELECT * FROM sources WHERE id = $1 AND tenant_id = $2 FOR UPDATE")
            .bind(id.get())
            .bind(tenant.id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::not_found("source"))?;
    let events = delete_cascade(&mut tx, &tenant, &source).await?;
    events::record(&mut tx, &tenant, &events).await?;
    tx.commit().await?;
    tracing::info!(
        source_id = id.get(),
        events = events.len(),
        "source deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}

async fn pause_or_unpause(
    state: &AppState,
    tenant: &Tenant,
    id: i64,
    paused: bool,
) -> Result<StatusCode> {
    let mut tx = state.db.begin().await?;
    let source: SourceRow = sqlx::query_as(
        "UPDATE sources SET paused_at = CASE WHEN $3 THEN now() ELSE NULL END \
         WHERE id = $1 AND tenant_id = $2 RETURNING *",
    )
    .bind(id)
    .bind(tenant.id)
    .bind(paused)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::not_found("source"))?;
    let event_type = if paused {
        "Source.pause"
    } else {
        "Source.unpause"
    };
    let mut events = vec![Event::new(event_type, source.to_event(tenant))];
    events.extend(applications::set_paused(&mut tx, tenant, ("source_id", id), paused).await?);
    events::record(&mut tx, tenant, &events).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pause a source and its applications: they then accept only status updates.
#[utoipa::path(post, path = "/sources/{source_id}/pause", tag = "sources",
    params(("source_id" = String, Path, description = "Source id")),
    responses((status = 204), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn pause(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<StatusCode> {
    pause_or_unpause(&state, &tenant, id.get(), true).await
}

/// Resume a paused source and its applications.
#[utoipa::path(post, path = "/sources/{source_id}/unpause", tag = "sources",
    params(("source_id" = String, Path, description = "Source id")),
    responses((status = 204), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn unpause(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<StatusCode> {
    pause_or_unpause(&state, &tenant, id.get(), false).await
}

/// Ask the source's applications to check it: answers 202 at once; each application whose
/// type has `<APP>_AVAILABILITY_CHECK_URL` is called in the background.
#[utoipa::path(post, path = "/sources/{source_id}/check_availability", tag = "sources",
    params(("source_id" = String, Path, description = "Source id")),
    responses((status = 202, description = "Checks requested", body = Object),
        (status = 400, body = ErrorDocument), (status = 401, body = ErrorDocument),
        (status = 404, body = ErrorDocument)))]
async fn check_availability(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Value>)> {
    ensure(&state, &tenant, id.get()).await?;
    let skip_cost = headers
        .get("x-rh-sources-skip-empty-sources")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    availability::request_checks(&state, &tenant, id.get(), skip_cost).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({}))))
}

/// List a source's applications.
#[utoipa::path(get, path = "/sources/{source_id}/applications", tag = "sources",
    params(("source_id" = String, Path, description = "Source id"), ListQueryDoc),
    responses((status = 200, body = Collection<Application>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_applications(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Application>>> {
    ensure(&state, &tenant, id.get()).await?;
    let scopes = vec![
        Scope::eq("t.tenant_id = ", tenant.id),
        Scope::eq("t.source_id = ", id.get()),
    ];
    applications::fetch(&state, scopes, &params).await.map(Json)
}

/// List a source's endpoints.
#[utoipa::path(get, path = "/sources/{source_id}/endpoints", tag = "sources",
    params(("source_id" = String, Path, description = "Source id"), ListQueryDoc),
    responses((status = 200, body = Collection<Endpoint>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_endpoints(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Endpoint>>> {
    ensure(&state, &tenant, id.get()).await?;
    let scopes = vec![
        Scope::eq("t.tenant_id = ", tenant.id),
        Scope::eq("t.source_id = ", id.get()),
    ];
    endpoints::fetch(&state, scopes, &params).await.map(Json)
}

/// List a source's Red Hat Connector connections.
#[utoipa::path(get, path = "/sources/{source_id}/rhc_connections", tag = "sources",
    params(("source_id" = String, Path, description = "Source id"), ListQueryDoc),
    responses((status = 200, body = Collection<RhcConnection>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_rhc_connections(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<RhcConnection>>> {
    ensure(&state, &tenant, id.get()).await?;
    let scopes = vec![
        Scope::eq("t.tenant_id = ", tenant.id),
        Scope::around(
            "t.id IN (SELECT l.rhc_connection_id FROM source_rhc_connections l WHERE l.source_id = ",
            id.get(),
            ")",
        ),
    ];
    rhc_connections::fetch(&state, scopes, &params)
        .await
        .map(Json)
}

/// List every authentication of a source (always the first 100, as sources-api-go does).
#[utoipa::path(get, path = "/sources/{source_id}/authentications", tag = "sources",
    params(("source_id" = String, Path, description = "Source id")),
    responses((status = 200, body = Collection<Authentication>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_authentications(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<Authentication>>> {
    ensure(&state, &tenant, id.get()).await?;
    let scopes = vec![
        Scope::eq("t.tenant_id = ", tenant.id),
        Scope::eq("t.source_id = ", id.get()),
    ];
    authentications::fetch(&state, scopes, &params.fixed_first_page())
        .await
        .map(Json)
}

/// List the application types of a source's applications.
#[utoipa::path(get, path = "/sources/{source_id}/application_types", tag = "sources",
    params(("source_id" = String, Path, description = "Source id"), ListQueryDoc),
    responses((status = 200, body = Collection<ApplicationType>), (status = 400, body = ErrorDocument),
        (status = 401, body = ErrorDocument), (status = 404, body = ErrorDocument)))]
async fn list_application_types(
    PathId(id): PathId,
    State(state): State<AppState>,
    tenant: Tenant,
    params: ListParams,
) -> Result<Json<Collection<ApplicationType>>> {
    ensure(&state, &tenant, id.get()).await?;
    let scope = Scope::around(
        "t.id IN (SELECT a.application_type_id FROM applications a WHERE a.source_id = ",
        id.get(),
        ")",
    );
    application_types::fetch(&state, vec![scope], &params)
        .await
        .map(Json)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, edit, delete))
        .routes(routes!(list_application_types))
        .routes(routes!(list_applications))
        .routes(routes!(list_endpoints))
        .routes(routes!(list_authentications))
        .routes(routes!(list_rhc_connections))
        .routes(routes!(pause))
        .routes(routes!(unpause))
        .routes(routes!(check_availability))
}
