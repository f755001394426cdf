//! sources-api on the event stream: the outbox it writes, and the consumer of
//! `platform.sources.status` through which applications report availability (reference §3.5).

use chrono::Utc;
use keel_domain::{
    AvailabilityStatus,
    identity::{IdentityHeaders, RequestIdentity},
};
use keel_events::{Handler, Message, Outbox, Outcome};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::{
    domain::parse_flexible_id,
    events::{self, Event},
    resources::{
        application_authentications::ApplicationAuthenticationRow, applications::ApplicationRow,
        authentications::AuthenticationRow, endpoints::EndpointRow, sources::SourceRow,
    },
    state::AppState,
    tenant::{self, Tenant},
};

/// The outbox every sources-api write records its events in.
pub const OUTBOX: Outbox = Outbox {
    table: "sources.outbox",
};

pub use keel_domain::sources_events::STATUS_TOPIC;

#[derive(Debug, Deserialize)]
struct StatusMessage {
    resource_type: String,
    resource_id: Value,
    #[serde(default)]
    status: String,
    #[serde(default)]
    error: Option<String>,
}

/// Applies `availability_status` messages to sources, applications, endpoints and
/// authentications, and announces them as sources-api-go does: `<Type>.update` and
/// `Records.update`, in the same transaction as the change.
pub struct StatusHandler {
    pub state: AppState,
}

impl Handler for StatusHandler {
    async fn handle(&self, message: &Message) -> Outcome {
        if message.header("event_type") != Some("availability_status") {
            return Outcome::Done;
        }
        let identity = match RequestIdentity::from_headers(IdentityHeaders {
            x_rh_identity: message.header("x-rh-identity"),
            account_number: message.header("x-rh-sources-account-number"),
            org_id: message.header("x-rh-sources-org-id"),
            user_id: None,
        })
        .and_then(RequestIdentity::require_tenancy)
        {
            Ok(identity) => identity,
            Err(e) => return Outcome::Fail(format!("no tenant: {e}")),
        };
        let body: StatusMessage = match serde_json::from_slice(&message.payload) {
            Ok(body) => body,
            Err(e) => return Outcome::Fail(format!("invalid status message: {e}")),
        };
        let status = match body.status.as_str() {
            "" => None,
            s => match s.parse::<AvailabilityStatus>() {
                Ok(s) => Some(s),
                Err(()) => return Outcome::Fail(format!("invalid status {s:?}")),
            },
        };
        let Some(resource_id) = parse_flexible_id(&body.resource_id) else {
            return Outcome::Fail(format!("invalid resource_id {}", body.resource_id));
        };
        let kind = match body.resource_type.to_ascii_lowercase().as_str() {
            "source" => Kind::Source,
            "application" => Kind::Application,
            "endpoint" => Kind::Endpoint,
            "authentication" => Kind::Authentication,
            other => return Outcome::Fail(format!("invalid resource_type {other:?}")),
        };
        let tenant =
            match tenant::get_or_create(&self.state.db, &self.state.tenants, identity).await {
                Ok(t) => t,
                Err(e) => return Outcome::Retry(e.to_string()),
            };
        match apply(&self.state, &tenant, kind, resource_id, status, body.error).await {
            Ok(Some(())) => Outcome::Done,
            Ok(None) => Outcome::Fail(format!(
                "{} {resource_id} not found in the tenant",
                kind.name()
            )),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Source,
    Application,
    Endpoint,
    Authentication,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Source => "Source",
            Self::Application => "Application",
            Self::Endpoint => "Endpoint",
            Self::Authentication => "Authentication",
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

async fn apply(
    state: &AppState,
    tenant: &Tenant,
    kind: Kind,
    id: i64,
    status: Option<AvailabilityStatus>,
    error: Option<String>,
) -> Result<Option<()>, sqlx::Error> {
    let mut tx = state.db.begin().await?;
    let now = Utc::now();
    let available = status == Some(AvailabilityStatus::Available);
    // Sources have no error column.
    let error_sql = match kind {
        Kind::Source => "",
        _ => ", availability_status_error = $5",
    };
    let sql = format!(
        "UPDATE {} SET availability_status = COALESCE($3, availability_status), \
           last_checked_at = $4, \
           last_available_at = CASE WHEN $6 THEN $4 ELSE last_available_at END{error_sql} \
         WHERE id = $1 AND tenant_id = $2 \
         RETURNING (SELECT availability_status FROM {} WHERE id = $1) AS previous, \
           {} AS source_id",
        kind.table(),
        kind.table(),
        match kind {
            Kind::Source => "id",
            _ => "source_id",
        }
    );
    let updated: Option<(Option<String>, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(tenant.id)
        .bind(status.map(AvailabilityStatus::as_str))
        .bind(now)
        .bind(&error)
        .bind(available)
        .fetch_optional(&mut *tx)
        .await?;
    let Some((previous, source_id)) = updated else {
        return Ok(None);
    };
    // An application's changed status becomes its source's status, as with the REST PATCH.
    if let (Kind::Application, Some(status)) = (kind, status)
        && previous.as_deref() != Some(status.as_str())
    {
        sqlx::query(
            "UPDATE sources SET availability_status = $2, last_checked_at = $3, \
               last_available_at = CASE WHEN $4 THEN $3 ELSE last_available_at END \
             WHERE id = $1",
        )
        .bind(source_id)
        .bind(status.as_str())
        .bind(now)
        .bind(available)
        .execute(&mut *tx)
        .await?;
    }
    let resource_event = resource_event(&mut tx, tenant, kind, id).await?;
    let mut fields = vec!["availability_status"];
    if !matches!(kind, Kind::Source) {
        fields.push("availability_status_error");
    }
    fields.extend(["last_available_at", "last_checked_at"]);
    let updated = json!({ kind.name(): { id.to_string(): fields } });
    let records = records_update(&mut tx, tenant, source_id, updated).await?;
    events::record(
        &mut tx,
        tenant,
        &[
            Event::new(format!("{}.update", kind.name()), resource_event),
            Event::new("Records.update", records),
        ],
    )
    .await?;
    tx.commit().await?;
    metrics::counter!("sources_status_updates_total", "resource_type" => kind.name()).increment(1);
    Ok(Some(()))
}

async fn resource_event(
    conn: &mut PgConnection,
    tenant: &Tenant,
    kind: Kind,
    id: i64,
) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        Kind::Source => sqlx::query_as::<_, SourceRow>("SELECT * FROM sources WHERE id = $1")
            .bind(id)
            .fetch_one(conn)
            .await?
            .to_event(tenant),
        Kind::Application => {
            sqlx::query_as::<_, ApplicationRow>("SELECT * FROM applications WHERE id = $1")
                .bind(id)
                .fetch_one(conn)
                .await?
                .to_event(tenant)
        }
        Kind::Endpoint => sqlx::query_as::<_, EndpointRow>("SELECT * FROM endpoints WHERE id = $1")
            .bind(id)
            .fetch_one(conn)
            .await?
            .to_event(tenant),
        Kind::Authentication => {
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
) -> Result<Value, sqlx::Error> {
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
