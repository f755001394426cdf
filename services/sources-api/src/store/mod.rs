//! sources-api's persistence. One module per resource owns its table (with the columns a list
//! may filter and sort on), its row type, the payload its events carry, and its queries.
//!
//! Every query of a tenant's rows takes a [`Tenant`], which only [`tenants::get_or_create`]
//! makes and whose id nothing outside this module can read: a query without its tenant cannot
//! be written by accident, as svix's `secure_find` guarantees. Writes go through a [`Write`]:
//! one tenant's transaction whose announced events are appended to the outbox when it
//! commits, so a change and its events commit together or not at all.

/// `fetch`, `find` and `find_in` of one resource's rows by id, scoped to the tenant.
macro_rules! by_id {
    ($row:ty, $select:expr, $table:literal, $kind:literal) => {
        async fn fetch(
            conn: &mut sqlx::PgConnection,
            tenant: &super::Tenant,
            id: i64,
        ) -> crate::error::Result<$row> {
            super::fetch_by_id(conn, tenant, $select, $table, id, $kind).await
        }

        #[doc = concat!("The tenant's ", $kind, " `id`, or 404.")]
        pub async fn find(
            db: &sqlx::PgPool,
            tenant: &super::Tenant,
            id: i64,
        ) -> crate::error::Result<$row> {
            fetch(&mut *db.acquire().await?, tenant, id).await
        }

        #[doc = concat!("The tenant's ", $kind, " `id` as the write sees it, or 404.")]
        pub async fn find_in(w: &mut super::Write<'_>, id: i64) -> crate::error::Result<$row> {
            let tenant = w.tenant();
            fetch(w.conn(), tenant, id).await
        }
    };
}

pub mod application_authentications;
pub mod applications;
pub mod authentications;
pub mod catalogue;
pub mod endpoints;
pub mod outbox;
pub mod rhc_connections;
pub mod secrets;
pub mod sources;
pub mod status;
pub mod tenants;

use keel_db::{Listing, Page, Scope, Table};
use keel_domain::{listing::ListQuery, sources_events::EventType};
use serde_json::Value;
use sqlx::{FromRow, PgConnection, PgPool, Postgres, Transaction, postgres::PgRow};

pub use outbox::{Event, OUTBOX};
pub use tenants::{Tenant, TenantCache};

use crate::error::Result;

/// One tenant's transaction and the events it announces. Dropped without [`Write::commit`],
/// it rolls back and announces nothing.
pub struct Write<'t> {
    tx: Transaction<'static, Postgres>,
    tenant: &'t Tenant,
    events: Vec<Event>,
}

impl<'t> Write<'t> {
    pub async fn begin(db: &PgPool, tenant: &'t Tenant) -> Result<Self> {
        Ok(Self {
            tx: db.begin().await?,
            tenant,
            events: Vec::new(),
        })
    }

    pub fn tenant(&self) -> &'t Tenant {
        self.tenant
    }

    /// The transaction, for the store's queries only.
    pub(in crate::store) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Announces an event; events are recorded in the order announced.
    pub fn announce(&mut self, event_type: EventType, payload: Value) {
        self.events.push(Event::new(event_type, payload));
    }

    pub fn announce_all(&mut self, events: impl IntoIterator<Item = Event>) {
        self.events.extend(events);
    }

    /// Records the announced events in the outbox and commits, together.
    pub async fn commit(mut self) -> Result<()> {
        outbox::record(&mut self.tx, self.tenant, &self.events).await?;
        self.tx.commit().await?;
        Ok(())
    }
}

/// One page of the tenant's rows of `table` within `scopes`: every list of a tenant's
/// resource goes through here, the tenant condition first.
async fn tenant_page<Row>(
    db: &PgPool,
    tenant: &Tenant,
    table: &'static Table,
    select: &'static str,
    mut scopes: Vec<Scope>,
    query: &ListQuery,
) -> Result<Page<Row>>
where
    Row: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    scopes.insert(0, Scope::eq("t.tenant_id = ", tenant.id()));
    page(db, table, select, scopes, query).await
}

/// One page of a table shared by every tenant (the catalogue), or across tenants.
async fn page<Row>(
    db: &PgPool,
    table: &'static Table,
    select: &'static str,
    scopes: Vec<Scope>,
    query: &ListQuery,
) -> Result<Page<Row>>
where
    Row: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    Ok(Listing {
        table,
        select,
        scopes,
        query,
    }
    .fetch::<Row>(db)
    .await?)
}

/// The tenant's row `id` of `table` (alias `t`, columns `select`), or 404 `<kind> not found`.
async fn fetch_by_id<Row>(
    conn: &mut PgConnection,
    tenant: &Tenant,
    select: &str,
    table: &str,
    id: i64,
    kind: &str,
) -> Result<Row>
where
    Row: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let sql = format!("SELECT {select} FROM {table} t WHERE t.id = $1 AND t.tenant_id = $2");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(tenant.id())
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| crate::error::Error::not_found(kind))
}

// Whether a source is the tenant's, for its children's modules (a source's module depends on
// its children's for its cascade, never the other way round).

async fn source_exists(conn: &mut PgConnection, tenant: &Tenant, id: i64) -> Result<bool> {
    Ok(
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sources WHERE id = $1 AND tenant_id = $2)",
        )
        .bind(id)
        .bind(tenant.id())
        .fetch_one(conn)
        .await?,
    )
}

/// 404 `source not found` unless the source is the tenant's.
async fn ensure_source(db: &PgPool, tenant: &Tenant, id: i64) -> Result<()> {
    ensure_source_conn(&mut *db.acquire().await?, tenant, id).await
}

async fn ensure_source_in(w: &mut Write<'_>, id: i64) -> Result<()> {
    let tenant = w.tenant;
    ensure_source_conn(&mut w.tx, tenant, id).await
}

async fn ensure_source_conn(conn: &mut PgConnection, tenant: &Tenant, id: i64) -> Result<()> {
    if source_exists(conn, tenant, id).await? {
        Ok(())
    } else {
        Err(crate::error::Error::not_found("source"))
    }
}

/// The condition of a list of one source's children, or none.
fn of_source(source_id: Option<i64>) -> Vec<Scope> {
    source_id
        .map(|id| vec![Scope::eq("t.source_id = ", id)])
        .unwrap_or_default()
}

/// Rows sorted by id: a cascade's events go out in id order, as sources-api-go sends them.
fn by_id<T>(mut rows: Vec<T>, id: impl Fn(&T) -> i64) -> Vec<T> {
    rows.sort_by_key(|r| id(r));
    rows
}
